"""What one compliance report reads, and how a failing source stops it.

``ReportContext`` carries a report's period and its sources (the lake, catalog, object store,
the ledger's verifier, vault.yaml) and pins each lake table to the version first read, so every
section of one report sees the same data; it also collects what the report says it read
(``sources``) and the lineage and audit lists the report keeps at its top level.
``ReportSourceError`` names the section whose source failed: the service then stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from vault_pipeline.api.analytics_queries import AnalyticsQueries, Snapshot, Window
from vault_pipeline.core.kinds import FACT_TABLES
from vault_pipeline.core.report_model import Table
from vault_pipeline.storage.lake import DeltaLake, LakeError

MAX_ROWS = 2000  # per listing table; beyond it the table says how many were left out


class ReportSourceError(RuntimeError):
    """A section's data source failed; the message names the section and the cause."""

    def __init__(self, section: str, cause: str) -> None:
        super().__init__(f"section {section!r}: {cause}")
        self.section = section


@dataclass
class ReportContext:
    """What a report reads, for one period ``[start, end)``; filled in as sections are built."""

    catalog: Any
    store: Any
    lake: DeltaLake | None
    verifier: Any
    config: Any  # VaultConfig
    start: datetime
    end: datetime
    now: datetime
    record_ids: list[str] | None = None  # lineage of these, else a sample
    lineage_sample: int = 20
    sources: dict[str, Any] = field(default_factory=dict)  # table versions read, counts of what was read
    data_lineage: list[dict[str, Any]] = field(default_factory=list)
    audit_events: list[dict[str, Any]] = field(default_factory=list)
    _versions: dict[str, int | None] = field(default_factory=dict)

    def require_lake(self, section: str) -> DeltaLake:
        """The lake, or ReportSourceError: a lake that is gone must not read as "no usage"."""
        if self.lake is None:
            raise ReportSourceError(section, "this vault was given no lake to read")
        if "lake_checked" not in self.sources:
            try:
                tables = [t for t in FACT_TABLES.values() if self.lake.exists(t)]
                indexed = self.catalog.count_records()
            except Exception as exc:  # noqa: BLE001 - any storage failure fails the section, named
                raise ReportSourceError(section, f"{type(exc).__name__}: {exc}") from None
            if not tables and indexed:
                raise ReportSourceError(section, f"the catalog indexes {indexed} records but the lake at "
                                                 f"{self.lake.root} holds no fact table: is the lake reachable "
                                                 "(VAULT_ENV, VAULT_LAKE_ROOT), or was it deleted?")
            self.sources["lake_checked"] = {"fact_tables": tables}
        return self.lake

    @property
    def window(self) -> Window:
        return Window.of(self.start, self.end)

    @property
    def queries(self) -> AnalyticsQueries:
        return AnalyticsQueries(self.lake, self.catalog, self.store)

    def version(self, table: str) -> int | None:
        """The version of ``table`` every section of this report reads (fixed at first use)."""
        if table not in self._versions:
            try:
                self._versions[table] = None if self.lake is None else self.lake.resolve_version(table)
            except LakeError as exc:
                raise ReportSourceError("usage", f"the lake cannot be read: {exc}") from None
            self.sources.setdefault("lake_versions", {})[table] = self._versions[table]
        return self._versions[table]

    def snapshot(self, table: str) -> Snapshot:
        version = self.version(table)
        return Snapshot() if version is None else Snapshot(version=version)


def pct(value: float | None) -> str | None:
    return None if value is None else f"{value * 100:.2f} %"


def listing(title: str, columns: list[str], rows: list[list[Any]], notes: list[str], what: str) -> Table:
    if len(rows) > MAX_ROWS:
        notes.append(f"{title}: the first {MAX_ROWS:,} of {len(rows):,} {what} are listed; the CSV and the "
                     "report JSON hold the counts above for all of them.")
        rows = rows[:MAX_ROWS]
    return Table(title, columns, rows)


def series_interval(ctx: ReportContext) -> str:
    return "hour" if ctx.end - ctx.start <= timedelta(days=2) else "day"
