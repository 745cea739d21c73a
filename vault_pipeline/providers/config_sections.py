"""The ``lake:`` and ``reports:`` sections of ``vault.yaml``: the lake's lifecycle and compliance reports.

Split from ``providers/config.py`` (which re-exports every name here) so the providers'
configuration reads on its own; validated with pydantic the same way, every model strict and
frozen, so a mistake names the section and the key to fix.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    """Every section of vault.yaml: unknown keys are mistakes, and a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_Strict = Strict


# Columns each fact table is z-ordered by within a date partition: what analytics filter on.
DEFAULT_ZORDER: dict[str, list[str]] = {
    "audit_events": ["event_source", "event_name"],
    "generation_events": ["llm_provider", "model"],
    "test_results": ["suite", "test"],
}
_LAKE_TABLE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class LakeTableConfig(_Strict):
    """``lake.tables.<table>``: what differs for one table from the ``lake:`` defaults."""

    retention_days: int | None = Field(default=None, ge=1)
    zorder: list[str] | None = None


class LakeConfig(_Strict):
    """``lake:``: the lifecycle of the Delta tables (``lake_maintenance``, daily). Rows whose event
    date is older than ``retention_days`` are deleted (a Delta DELETE kept in the history); files
    removed longer than ``vacuum_retention_hours`` ago are deleted (time travel reaches that far
    back); dead letters expire after ``dead_letter_days``. The raw zone and the ledger are never
    touched. ``vacuum_dry_run: true`` lists what vacuum would delete and deletes nothing."""

    retention_days: int = Field(default=90, ge=1)
    vacuum_retention_hours: int = Field(default=168, ge=1)
    vacuum_dry_run: bool = False
    dead_letter_days: int = Field(default=7, ge=1)
    zorder: dict[str, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_ZORDER.items()})
    tables: dict[str, LakeTableConfig] = Field(default_factory=dict)
    cron: str = "30 3 * * *"  # daily, UTC, after the night's hours are loaded

    @field_validator("zorder", "tables")
    @classmethod
    def _table_names(cls, value: dict) -> dict:
        for name in value:
            if not _LAKE_TABLE.match(str(name)):
                raise ValueError(f"{name!r} is not a lake table name (^[a-z][a-z0-9_]{{0,62}}$)")
        return value

    def retention_days_of(self, table: str) -> int:
        override = self.tables.get(table)
        return override.retention_days if override and override.retention_days is not None else self.retention_days

    def zorder_of(self, table: str) -> list[str]:
        override = self.tables.get(table)
        return list(override.zorder) if override and override.zorder is not None else list(self.zorder.get(table, []))


# What a custom report metric may be: the analytics API's time-series metrics and aggregations
# (api/analytics_queries.py; a test keeps the two lists equal).
REPORT_METRICS = ("requests", "latency_ms", "tokens", "cost_usd", "success")
REPORT_AGGREGATIONS = ("count", "sum", "avg", "min", "max", "p50", "p95", "p99")
REPORT_SECTIONS = ("usage", "retention", "access_logs", "data_lineage", "audit_trail", "data_quality", "integrity")
_SECTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class ReportMetric(_Strict):
    """One series of a custom report section: an aggregation of a generation-event metric."""

    metric: Literal[REPORT_METRICS]  # type: ignore[valid-type]
    aggregation: Literal[REPORT_AGGREGATIONS]  # type: ignore[valid-type]
    provider: str | None = Field(default=None, min_length=1, max_length=64)  # one LLM provider only
    label: str | None = Field(default=None, min_length=1, max_length=80)


class CustomReportSection(_Strict):
    """``reports.custom_sections.<name>``: a section of metrics per hour or day, no code needed."""

    title: str = Field(min_length=1, max_length=120)
    description: str | None = Field(default=None, max_length=2000)
    interval: Literal["hour", "day"] = "day"
    metrics: list[ReportMetric] = Field(min_length=1, max_length=20)


class ReportSchedules(_Strict):
    """Which compliance report schedules are on (``compliance_report_weekly`` etc.): weekly on
    Mondays 00:00 UTC by default; a start or stop in the UI wins, as for the other schedules."""

    daily: bool = False
    weekly: bool = True
    monthly: bool = False


class ReportsConfig(_Strict):
    """``reports:``: compliance reports (``vault report``, ``/api/v1/analytics/reports``)."""

    sections: list[str] = Field(default_factory=lambda: list(REPORT_SECTIONS))  # when a request names none
    formats: list[Literal["html", "pdf", "csv"]] = Field(default_factory=lambda: ["html", "pdf", "csv"], min_length=1)
    lineage_sample: int = Field(default=20, ge=0, le=1000)  # records traced when a request names none
    max_period_days: int = Field(default=366, ge=1, le=3660)
    schedules: ReportSchedules = ReportSchedules()
    custom_sections: dict[str, CustomReportSection] = Field(default_factory=dict)

    @field_validator("custom_sections")
    @classmethod
    def _section_names(cls, value: dict) -> dict:
        for name in value:
            if not _SECTION_NAME.match(str(name)):
                raise ValueError(f"{name!r} is not a section name (^[a-z][a-z0-9_]{{0,39}}$)")
            if name in REPORT_SECTIONS:
                raise ValueError(f"{name!r} is a built-in section; give the custom section another name")
        return value

    @model_validator(mode="after")
    def _known_sections(self) -> ReportsConfig:
        unknown = [n for n in self.sections if n not in REPORT_SECTIONS and n not in self.custom_sections]
        if unknown:
            raise ValueError(f"sections {unknown} are neither built in ({', '.join(REPORT_SECTIONS)}) nor in "
                             "custom_sections")
        return self

    def section_names(self) -> list[str]:
        """Every section a request may name: the built-in ones, then the custom ones."""
        return [*REPORT_SECTIONS, *self.custom_sections]
