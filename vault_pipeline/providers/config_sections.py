"""The ``lake:``, ``reports:``, ``notifications:`` and ``alerts:`` sections of ``vault.yaml``.

The lake's lifecycle, compliance reports, and who is told what when something goes wrong
(alert targets, SLA, quality and promotion thresholds, delivery retries).

Split from ``providers/config.py`` (which re-exports every name here) so the providers'
configuration reads on its own; validated with pydantic the same way, every model strict and
frozen, so a mistake names the section and the key to fix.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


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


# notifications: and alerts: ------------------------------------------------------------------
# Who is told (``notifications:``, a list of targets) and when (``alerts:``). A target names the
# environment variable holding its secret (a webhook's URL, a Slack token), never the secret; the
# outbox, logs and the API know a target only by its ``name``.
ALERT_EVENTS = ("run_failure", "run_success", "sla_miss", "quality", "promotion", "test")  # core/alerts.py EVENT_KINDS
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:#@-]{0,79}$")
_SLACK_CHANNEL = re.compile(r"^(?:#[a-z0-9][a-z0-9._\-]{0,79}|[CGDU][A-Z0-9]{6,20})$")


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name (letters, digits and '_', not starting "
                         "with a digit): name the variable holding the secret, not the secret itself")
    return value


class _Target(_Strict):
    name: str | None = None  # default: "<type>:<env var>" (webhook) or "slack:<channel>"
    # Which alerts this target receives (default: all of them).
    events: list[Literal[ALERT_EVENTS]] = Field(default_factory=lambda: list(ALERT_EVENTS))  # type: ignore[valid-type]
    timeout_s: float = Field(default=5.0, gt=0, le=60)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _TARGET_NAME.match(value):
            raise ValueError(f"{value!r} is not a target name (1-80 of letters, digits, '_.:#@-')")
        return value



class WebhookTarget(_Target):
    """``{type: webhook, url_env: NAME}``: a JSON POST of every alert to the URL in ``$NAME``."""

    type: Literal["webhook"]
    url_env: str

    @field_validator("url_env")
    @classmethod
    def _url_env(cls, value: str) -> str:
        return _env_name(value)

    @property
    def secret_env(self) -> str:
        return self.url_env

    @property
    def target_name(self) -> str:
        return self.name or f"webhook:{self.url_env}"


class SlackTarget(_Target):
    """``{type: slack, token_env: NAME, channel: "#c"}``: chat.postMessage through dagster-slack.
    ``api_url`` is Slack's Web API base (another one for GovSlack, or a test double)."""

    type: Literal["slack"]
    token_env: str
    channel: str
    api_url: str = Field(default="https://slack.com/api/", pattern=r"^https?://[^\s]+/$")

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, value: str) -> str:
        return _env_name(value)

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        if not _SLACK_CHANNEL.match(value):
            raise ValueError(f"{value!r} is not a Slack channel: give '#name' (lower case) or a channel id "
                             "such as C0123456789")
        return value

    @property
    def secret_env(self) -> str:
        return self.token_env

    @property
    def target_name(self) -> str:
        return self.name or f"slack:{self.channel}"


NotificationTarget = WebhookTarget | SlackTarget
_TARGET_TYPES = {"webhook": WebhookTarget, "slack": SlackTarget}


def notification_targets(value: object) -> list[NotificationTarget]:
    """``notifications:`` as targets; ValueError naming ``notifications[i].<key>`` and what to fix."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("notifications must be a list of targets, e.g. "
                         "notifications: [{type: webhook, url_env: VAULT_ALERT_WEBHOOK_URL}]")
    targets: list[NotificationTarget] = []
    for index, entry in enumerate(value):
        where = f"notifications[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be a mapping such as {{type: webhook, url_env: NAME}}")
        model = _TARGET_TYPES.get(entry.get("type"))  # type: ignore[arg-type]
        if model is None:
            raise ValueError(f"{where}.type: {entry.get('type')!r} is not a target type; use "
                             f"{' or '.join(_TARGET_TYPES)}")
        try:
            targets.append(model(**entry))
        except ValidationError as exc:
            details = "; ".join(f"{where}.{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}"
                                for e in exc.errors())
            raise ValueError(details) from None
    names = [t.target_name for t in targets]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"notifications: the target name(s) {', '.join(twice)} are used twice; give each "
                         "target its own 'name'")
    return targets


class RunAlerts(_Strict):
    """``alerts.runs``: a message when a run of the vault fails, and when one succeeds."""

    on_failure: bool = True
    on_success: bool = True


class SlaAlerts(_Strict):
    """``alerts.sla``: each provider's ``sla_minutes`` (default 10) is checked at every deadline;
    ``lookback_hours`` bounds how far back a sensor that was stopped catches up."""

    enabled: bool = True
    lookback_hours: int = Field(default=6, ge=1, le=168)


class QualityAlerts(_Strict):
    """``alerts.quality``: an alert when a validation suite's pass rate falls under its threshold:
    ``min_pass_rate`` per suite (e.g. ``audit_event.input: 0.995``), else the check's own threshold
    (``policies.input_pass_rate`` / a provider's ``input_pass_rate``, ``policies.output_pass_rate``)."""

    enabled: bool = True
    min_pass_rate: dict[str, float] = Field(default_factory=dict)

    @field_validator("min_pass_rate")
    @classmethod
    def _suites(cls, value: dict[str, float]) -> dict[str, float]:
        from vault_pipeline.providers.config import KINDS  # at validation: config.py imports this module

        suites = [f"{kind}.{direction}" for kind in KINDS for direction in ("input", "output")]
        for suite, rate in value.items():
            if suite not in suites:
                raise ValueError(f"{suite!r} is not a suite; suites are <kind>.input or <kind>.output: {', '.join(suites)}")
            if not 0 <= rate <= 1:
                raise ValueError(f"{suite}: {rate} is not a rate between 0 and 1")
        return value


class PromotionAlerts(_Strict):
    """``alerts.promotion``: over the last ``window_minutes`` of promotions of a provider, an
    alert when more than ``max_quarantine_rate`` of the records were quarantined (given at least
    ``min_records`` records), or more than ``max_digest_mismatches`` records no longer matched
    their digests (checksum or ledger mismatch). At most one alert per metric and window."""

    enabled: bool = True
    window_minutes: int = Field(default=60, ge=5, le=7 * 24 * 60)
    max_quarantine_rate: float = Field(default=0.05, ge=0, le=1)
    min_records: int = Field(default=100, ge=1)
    max_digest_mismatches: int = Field(default=0, ge=0)


class DeliveryPolicy(_Strict):
    """``alerts.delivery``: attempts per target, doubling from ``backoff_s`` up to ``backoff_max_s``
    (with jitter), each bounded by the target's ``timeout_s``; then the alert is kept as failed."""

    max_attempts: int = Field(default=8, ge=1, le=50)
    backoff_s: float = Field(default=30.0, gt=0, le=3600)
    backoff_max_s: float = Field(default=3600.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _order(self) -> DeliveryPolicy:
        if self.backoff_max_s < self.backoff_s:
            raise ValueError("backoff_max_s must be at least backoff_s")
        return self


class AlertsConfig(_Strict):
    """``alerts:``: what raises an alert and how delivery is retried."""

    runs: RunAlerts = RunAlerts()
    sla: SlaAlerts = SlaAlerts()
    quality: QualityAlerts = QualityAlerts()
    promotion: PromotionAlerts = PromotionAlerts()
    delivery: DeliveryPolicy = DeliveryPolicy()
