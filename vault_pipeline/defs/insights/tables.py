"""The insights tables: a window of test results in, the detectors' findings out, as Delta tables.

``refresh_tables`` is the whole refresh without Dagster (the asset and its tests call it): it
reads the ``test_results`` fact table over ``[start, end)`` (event time; date partitions pruned),
runs the ``core.insights`` detectors, and replaces the rows of ``insights_flaky_tests``,
``insights_failure_clusters``, ``insights_regressions`` and ``insights_suite_trends``: the whole
table, or with a ``suite`` only that suite's rows (the other suites keep what their last refresh
found). No ``refreshed`` column is kept: a table holds the latest findings, history is the Delta
log (``DeltaLake.read(..., version=)``, ``vault lake history``), and a refresh that finds the same
thing adds no version. Failure clusters are mined per suite (a ``suite`` column ahead of the
detector's), so every table filters and refreshes by suite alike; the same problem in two
suites is two rows with one ``cluster_id`` (the template's digest). Each write takes the
table's lake-writer lease, and lands a JSON summary under ``reports/_vault/insights/`` with an
artifact index entry (kind ``insights_<name>``, provider ``_vault``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from vault_pipeline.core.checksums import checksum
from vault_pipeline.core.insights import (
    CLUSTER_SCHEMA,
    FLAKY_SCHEMA,
    REGRESSION_SCHEMA,
    SUITE_TREND_SCHEMA,
    duration_regressions,
    failure_clusters,
    flaky_tests,
    suite_trends,
)
from vault_pipeline.core.insights._columns import TS
from vault_pipeline.core.kinds import fact_table_name
from vault_pipeline.defs.analytics.lake_lease import exclusive_table_writer, holder_name
from vault_pipeline.defs.integrity.artifacts import artifact_id
from vault_pipeline.storage.catalog import Artifact, Catalog, fixed_width_timestamp
from vault_pipeline.storage.lake import DeltaLake
from vault_pipeline.storage.object_store import ObjectStore

SOURCE_TABLE = fact_table_name("test_result")
PROVIDER = "_vault"
SUMMARY_PREFIX = "reports/_vault/insights"
TOP = 5

#: The detectors' input: what a test-result row of the fact table becomes.
RESULTS_SCHEMA = pa.schema([
    ("suite", pa.string()), ("test", pa.string()), ("status", pa.string()), ("duration_ms", pa.float64()),
    ("commit", pa.string()), ("branch", pa.string()), ("build", pa.int64()), ("timestamp", TS),
    ("error_type", pa.string()), ("error_message", pa.string()), ("error_text", pa.string()),
    ("log_id", pa.string()),
])
# fact column -> detector column; columns the table lacks (commit before the schema evolved, error_text) read as null
_SOURCE_COLUMNS = {"suite": "suite", "test": "test", "status": "status", "duration_ms": "duration_ms",
                   "commit": "commit", "branch": "branch", "build": "build", "event_time": "timestamp",
                   "error_type": "error_type", "error_message": "error_message", "error_text": "error_text",
                   "log_id": "log_id"}


@dataclass(frozen=True)
class Insight:
    name: str  # the asset
    table: str  # the Delta table
    schema: pa.Schema
    key: tuple[str, ...]  # what makes a row "the same finding" across refreshes
    time_column: str  # what since/until filter on
    order: tuple[tuple[str, str], ...]  # the ranking the API pages through

    @property
    def kind(self) -> str:
        return f"insights_{self.name}"


INSIGHTS = {
    "flaky_tests": Insight("flaky_tests", "insights_flaky_tests", FLAKY_SCHEMA, ("suite", "test"), "last_seen",
                           (("flip_rate", "descending"), ("fail_count", "descending"), ("suite", "ascending"),
                            ("test", "ascending"))),
    "failure_clusters": Insight("failure_clusters", "insights_failure_clusters",
                                pa.schema([("suite", pa.string()), *CLUSTER_SCHEMA]), ("suite", "cluster_id"),
                                "last_seen", (("count", "descending"), ("suite", "ascending"),
                                              ("template", "ascending"))),
    "duration_regressions": Insight("duration_regressions", "insights_regressions",
                                    pa.schema([*REGRESSION_SCHEMA, ("build_time", TS)]), ("suite", "test"),
                                    "build_time", (("ratio", "descending"), ("suite", "ascending"),
                                                   ("test", "ascending"))),
    "suite_trends": Insight("suite_trends", "insights_suite_trends",
                            pa.schema([*SUITE_TREND_SCHEMA, ("build_time", TS)]), ("suite",), "build_time",
                            (("ratio", "descending"), ("suite", "ascending"))),
}


@dataclass
class Window:
    start: datetime
    end: datetime  # exclusive

    @classmethod
    def days_before(cls, end: datetime, days: int) -> Window:
        end = end.astimezone(UTC)
        return cls(end - timedelta(days=days), end)

    def as_dict(self) -> dict[str, Any]:
        return {"start": _iso(self.start), "end": _iso(self.end),
                "days": round((self.end - self.start) / timedelta(days=1), 6)}


@dataclass
class TableRefresh:
    insight: Insight
    rows: pa.Table
    previous: pa.Table | None  # the rows in scope before this refresh; None: the table did not exist
    version: int | None
    changed: bool
    artifact: Artifact | None = None

    def keys(self, table: pa.Table | None) -> set[tuple]:
        if table is None or table.num_rows == 0:
            return set()
        return set(zip(*(table.column(c).to_pylist() for c in self.insight.key), strict=True))

    @property
    def new(self) -> list[tuple]:
        """Findings the previous refresh did not have (none on the first refresh: it is the baseline)."""
        if self.previous is None:
            return []
        return sorted(self.keys(self.rows) - self.keys(self.previous), key=lambda k: tuple(str(v) for v in k))


@dataclass
class Refresh:
    window: Window
    suite: str | None
    results: int  # test-result rows analysed
    refreshed_at: datetime
    tables: dict[str, TableRefresh] = field(default_factory=dict)


# -- reading --------------------------------------------------------------------------------------

def read_results(lake: DeltaLake, window: Window, suite: str | None = None) -> pa.Table:
    """The test results of ``window`` (by event time) as ``RESULTS_SCHEMA`` rows; rows without a
    suite or test cannot be told apart and are left out."""
    last = (window.end - timedelta(microseconds=1)).date()
    raw = lake.read(SOURCE_TABLE, dates=(window.start.date().isoformat(), last.isoformat()))
    if raw.num_rows == 0:
        return RESULTS_SCHEMA.empty_table()
    columns = {}
    for source, target in _SOURCE_COLUMNS.items():
        kind = RESULTS_SCHEMA.field(target).type
        columns[target] = (pc.cast(raw.column(source), kind) if source in raw.column_names
                           else pa.nulls(raw.num_rows, kind))
    table = pa.table(columns, schema=RESULTS_SCHEMA)
    start, end = pa.scalar(window.start, TS), pa.scalar(window.end, TS)
    keep = pc.and_(pc.greater_equal(table["timestamp"], start), pc.less(table["timestamp"], end))
    keep = pc.and_(keep, pc.and_(pc.is_valid(table["suite"]), pc.is_valid(table["test"])))
    if suite is not None:
        keep = pc.and_(keep, pc.equal(table["suite"], suite))
    return table.filter(pc.fill_null(keep, False))


# -- detecting ------------------------------------------------------------------------------------

def detect(results: pa.Table, *, recovery_passes: int) -> dict[str, pa.Table]:
    """Every insight of ``results``, as rows of its table's schema."""
    found = {
        "flaky_tests": flaky_tests(results, recovery_passes=recovery_passes),
        "failure_clusters": _clusters_by_suite(results),
        "duration_regressions": _with_build_time(duration_regressions(results), results, ("suite", "test")),
        "suite_trends": _with_build_time(suite_trends(results), results, ("suite",)),
    }
    return {name: rows.select(INSIGHTS[name].schema.names).cast(INSIGHTS[name].schema) for name, rows in found.items()}


def _clusters_by_suite(results: pa.Table) -> pa.Table:
    schema = INSIGHTS["failure_clusters"].schema
    parts = []
    for suite in sorted(s for s in pc.unique(results["suite"]).to_pylist() if s is not None):
        clusters = failure_clusters(results.filter(pc.equal(results["suite"], suite)))
        if clusters.num_rows:
            parts.append(clusters.add_column(0, "suite", pa.array([suite] * clusters.num_rows, pa.string())))
    return pa.concat_tables(parts).cast(schema) if parts else schema.empty_table()


def _with_build_time(found: pa.Table, results: pa.Table, by: tuple[str, ...]) -> pa.Table:
    """``found`` plus ``build_time``: when its change-point build first ran (for since/until)."""
    first = results.group_by([*by, "build"]).aggregate([("timestamp", "min")]).rename_columns(
        [*by, "build", "build_time"])
    if found.num_rows == 0:
        return found.append_column("build_time", pa.array([], TS))
    joined = found.join(first, keys=[*by, "build"], join_type="left outer")
    return joined


# -- writing --------------------------------------------------------------------------------------

def refresh_tables(*, lake: DeltaLake, catalog: Catalog, store: ObjectStore, window: Window,
                   suite: str | None = None, recovery_passes: int = 50, run_id: str,
                   now: datetime | None = None) -> Refresh:
    """Read, detect, replace each insights table (or its ``suite`` rows), and index a summary."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    results = read_results(lake, window, suite)
    found = detect(results, recovery_passes=recovery_passes)
    refresh = Refresh(window, suite, results.num_rows, now)
    for name, rows in found.items():
        insight = INSIGHTS[name]
        with exclusive_table_writer(catalog, insight.table, holder_name(run_id)):
            previous = _scope(lake.read(insight.table), insight, suite) if lake.exists(insight.table) else None
            stats = lake.replace_partition(insight.table, rows, predicate_partitions={"suite": suite} if suite else {},
                                           schema=insight.schema, partition_by=())
        table = TableRefresh(insight, rows, previous, stats.version, stats.changed)
        table.artifact = _index(store, catalog, refresh, table, run_id)
        refresh.tables[name] = table
    return refresh


def _scope(current: pa.Table, insight: Insight, suite: str | None) -> pa.Table:
    if current.num_columns == 0:
        return insight.schema.empty_table()
    current = current.select(insight.schema.names).cast(insight.schema)
    return current if suite is None else current.filter(pc.fill_null(pc.equal(current["suite"], suite), False))


def rows_json(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as JSON values: times as RFC 3339 UTC text, NaN and infinities as null."""
    return [_jsonable(row) for row in table.to_pylist()]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summary(refresh: Refresh, table: TableRefresh) -> dict[str, Any]:
    top = table.rows.sort_by(list(table.insight.order)).slice(0, TOP)
    if "occurrences" in top.column_names:  # the summary names the clusters; the table keeps every occurrence
        top = top.drop_columns(["occurrences"])
    return {
        "insight": table.insight.name, "table": table.insight.table, "table_version": table.version,
        "refreshed_at": _iso(refresh.refreshed_at), "window": refresh.window.as_dict(), "suite": refresh.suite,
        "results_analysed": refresh.results, "count": table.rows.num_rows, "top": rows_json(top),
        "new": [list(k) for k in table.new], "baseline": table.previous is None,
    }


def _index(store: ObjectStore, catalog: Catalog, refresh: Refresh, table: TableRefresh, run_id: str) -> Artifact:
    document = summary(refresh, table)
    data = json.dumps(document, sort_keys=True, ensure_ascii=False, indent=1).encode()
    digest = checksum(data)
    stamp = refresh.refreshed_at.strftime("%Y%m%dT%H%M%S%fZ")
    key = f"{SUMMARY_PREFIX}/{table.insight.name}/{stamp}-{digest.removeprefix('sha256:')[:16]}.json"
    put = store.put(key, data, known_checksum=digest)
    day = refresh.refreshed_at.strftime("%Y-%m-%d")
    artifact = Artifact(
        artifact_id(table.insight.kind, day, key), table.insight.kind, PROVIDER, day, key, put.checksum, put.size,
        run_id, fixed_width_timestamp(refresh.refreshed_at), [],
        {"table": table.insight.table, "table_version": table.version, "count": table.rows.num_rows,
         "window_start": document["window"]["start"], "window_end": document["window"]["end"],
         "window_days": document["window"]["days"], "suite": refresh.suite or "", "new": len(table.new),
         "refreshed_at": document["refreshed_at"], "results_analysed": refresh.results})
    catalog.put_artifacts([artifact])
    return artifact


def latest_summary(catalog: Catalog, name: str) -> Artifact | None:
    """The newest summary artifact of an insight (the artifact index, newest by creation)."""
    kind, newest, offset = INSIGHTS[name].kind, None, 0
    while True:
        page = catalog.search_artifacts(provider=PROVIDER, kind=kind, limit=1000, offset=offset)
        for artifact in page:
            if newest is None or (artifact.created_at, artifact.artifact_id) > (newest.created_at, newest.artifact_id):
                newest = artifact
        if len(page) < 1000:
            return newest
        offset += 1000


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
