"""The analytics API's queries: provider metrics, techniques, time series and data quality.

Knows nothing of FastAPI: ``AnalyticsQueries`` reads the lake through its port and the catalog's
artifact index and returns plain dicts; ``api/analytics.py`` puts it on HTTP.

The engine is DataFusion, the SQL engine inside delta-rs (``DeltaLake.sql``): every aggregate
runs in Rust next to the Parquet files, pruned to the range's date and hour partitions, and only
its result (a row per provider, hour or technique) reaches Python. Reading the columns into
Python and grouping there took 4-11 s over 30 days of 10M events; the same answers from
DataFusion take 0.2-0.4 s (benchmarks/analytics.py, docs/performance.md).

Where each number comes from:

- ``metrics``, ``providers`` and ``timeseries`` read the fact table ``generation_events`` over the
  range: percentiles over a range cannot be combined from hourly ones, so they are computed
  over the range's rows, with the counts and sums in the same scan. Percentiles are
  DataFusion's ``percentile_cont``: linear interpolation between the two nearest ranks, as
  numpy's default; DataFusion rounds the interpolation weight to six decimals, so a value can
  differ from numpy's by at most 1e-6 of the gap between those two ranks (measured: 5e-8
  relative at p95 of lognormal latencies). Nulls (and NaN latencies) are left out of averages
  and percentiles; null success counts as a failure, null tokens and cost as 0 in sums, as in
  core/marts.py.
- ``techniques`` reads the mart ``agg_technique_effectiveness`` (no list explosion per request):
  uses and successes are summed; ``avg_latency_ms`` and ``attack_success_rate`` are the
  use-weighted means of the hourly values.
- ``data-quality`` reads the ``input_validation`` / ``output_validation`` reports the artifact
  index names.

A range ``[start_date, end_date)`` covers the hours (partitions) whose start lies in
``[start_date floored to the hour, end_date)``. Every read first fixes the table's version
(the latest, or the one ``as_of``/``version`` names), so one answer reads one version, and a
``ResultCache`` keyed by that version answers a repeated question without running it again.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from vault_pipeline.storage.lake import DeltaLake, LakeError, sql_ident, sql_literal
from vault_pipeline.storage.object_store import ObjectMissingError

FACT_TABLE = "generation_events"
TECHNIQUE_MART = "agg_technique_effectiveness"
MAX_RANGE_DAYS = 366
METRIC_NAMES = ("total_requests", "success_rate", "avg_latency_ms", "p95_latency_ms", "total_tokens", "total_cost_usd")
SERIES_METRICS = ("requests", "latency_ms", "tokens", "cost_usd", "success")
AGGREGATIONS = ("count", "sum", "avg", "min", "max", "p50", "p95", "p99")
INTERVALS = ("hour", "day")
REPORT_KINDS = ("input_validation", "output_validation")


class AnalyticsError(Exception):
    def __init__(self, status: int, code: str, detail: object) -> None:
        super().__init__(code)
        self.status, self.code, self.detail = status, code, detail


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hour_key(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}"


@dataclass(frozen=True)
class Window:
    """The hours ``[first, stop)`` a request covers (UTC, whole hours), or none at all."""

    start: datetime
    end: datetime
    first: datetime | None  # None: the range lies outside what datetime holds in UTC (no data there)
    stop: datetime | None

    @classmethod
    def of(cls, start: datetime, end: datetime) -> Window:
        try:
            first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            end_utc = end.astimezone(UTC)
            stop = end_utc.replace(minute=0, second=0, microsecond=0)
            if stop < end_utc:
                stop += timedelta(hours=1)
        except OverflowError:
            return cls(start, end, None, None)
        return cls(start, end, first, stop)

    def previous(self) -> Window:
        try:
            length = self.end - self.start
            return Window.of(self.start - length, self.start)
        except OverflowError:
            return Window(self.start, self.start, None, None)

    @property
    def empty(self) -> bool:
        return self.first is None or self.stop is None or self.stop <= self.first

    def hours(self, interval: str = "hour") -> list[datetime]:
        if self.empty:
            return []
        step = timedelta(hours=1) if interval == "hour" else timedelta(days=1)
        moment = self.first if interval == "hour" else self.first.replace(hour=0)
        out = []
        while moment < self.stop:
            out.append(moment)
            moment += step
        return out

    def period(self) -> str:
        try:
            return f"{iso_z(self.start)}/{iso_z(self.end)}"
        except (OverflowError, ValueError):
            return f"{self.start.isoformat()}/{self.end.isoformat()}"

    def where(self) -> str:
        """SQL keeping the window's hours; the date bounds let DataFusion skip other partitions."""
        last = self.stop - timedelta(hours=1)
        d0, h0 = self.first.strftime("%Y-%m-%d"), f"{self.first.hour:02d}"
        d1, h1 = last.strftime("%Y-%m-%d"), f"{last.hour:02d}"
        date, hour = sql_ident("date"), sql_ident("hour")
        return (f"{date} >= {sql_literal(d0)} AND {date} <= {sql_literal(d1)}"
                f" AND ({date} > {sql_literal(d0)} OR {hour} >= {sql_literal(h0)})"
                f" AND ({date} < {sql_literal(d1)} OR {hour} <= {sql_literal(h1)})")


@dataclass(frozen=True)
class Snapshot:
    as_of: datetime | None = None
    version: int | None = None


def check_range(start: datetime, end: datetime) -> Window:
    # Compared as given: aware datetimes compare and subtract across offsets without overflow.
    if end <= start:
        raise AnalyticsError(422, "invalid_range", {"parameter": "end_date", "msg": "end_date must be after start_date"})
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise AnalyticsError(422, "range_too_large", {"parameter": "end_date",
                                                      "msg": f"a range may cover at most {MAX_RANGE_DAYS} days"})
    return Window.of(start, end)


def check_snapshot(as_of: datetime | None, version: int | None) -> Snapshot:
    if as_of is not None and version is not None:
        raise AnalyticsError(422, "as_of_with_version", {"parameter": "version",
                                                         "msg": "give as_of or version, not both"})
    return Snapshot(as_of, version)


class ResultCache:
    """Answers by (query, parameters, table, version): a table version never changes, so an
    entry is right for as long as it is kept. Least recently used entries go first."""

    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
            self.misses += 1
        value = compute()  # outside the lock: a slow query does not hold up cached answers
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value


def _nan_to_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) or np.isinf(value) else value


def _or_zero(value) -> float:
    return 0.0 if value is None else float(value)


class _Columns:
    """SQL for the fact columns, following core/marts.py's conventions; a column the table's
    version does not have yet reads as null."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def column(self, name: str, sql_type: str) -> str:
        return f"CAST({sql_ident(name)} AS {sql_type})" if name in self.names else f"CAST(NULL AS {sql_type})"

    @property
    def latency(self) -> str:
        value = self.column("latency_ms", "DOUBLE")
        return f"CASE WHEN isnan({value}) THEN NULL ELSE {value} END"

    @property
    def success(self) -> str:
        return f"COALESCE({self.column('success', 'BOOLEAN')}, false)"

    @property
    def tokens(self) -> str:  # nullable: summed as 0, left out of averages
        return f"COALESCE({self.column('total_tokens', 'BIGINT')}, {self.column('tokens_used', 'BIGINT')})"

    @property
    def cost(self) -> str:
        return self.column("cost_usd", "DOUBLE")

    def provider_filter(self, provider: str | None) -> str:
        if provider is None:
            return ""
        return f" AND {self.column('llm_provider', 'VARCHAR')} = {sql_literal(provider)}"


def _percentile(q: float, value: str) -> str:
    return f"percentile_cont({q}) WITHIN GROUP (ORDER BY {value})"


def _figures(c: _Columns) -> str:
    """The ProviderMetrics aggregates over the selected rows."""
    return (f"COUNT(*) AS requests, SUM(CASE WHEN {c.success} THEN 1 ELSE 0 END) AS successes, "
            f"AVG({c.latency}) AS avg_latency, {_percentile(0.5, c.latency)} AS p50, "
            f"{_percentile(0.95, c.latency)} AS p95, {_percentile(0.99, c.latency)} AS p99, "
            f"SUM(COALESCE({c.tokens}, 0)) AS tokens, SUM(COALESCE({c.cost}, 0.0)) AS cost")


_SERIES_VALUES = {
    "requests": lambda c: "1",
    "latency_ms": lambda c: c.latency,
    "tokens": lambda c: f"CAST({c.tokens} AS DOUBLE)",
    "cost_usd": lambda c: c.cost,
    "success": lambda c: f"CASE WHEN {c.success} THEN 1.0 ELSE 0.0 END",
}
_AGGREGATES = {
    "count": lambda v: f"COUNT({v})", "sum": lambda v: f"SUM({v})", "avg": lambda v: f"AVG({v})",
    "min": lambda v: f"MIN({v})", "max": lambda v: f"MAX({v})", "p50": lambda v: _percentile(0.5, v),
    "p95": lambda v: _percentile(0.95, v), "p99": lambda v: _percentile(0.99, v),
}


class AnalyticsQueries:
    def __init__(self, lake: DeltaLake, catalog, store, cache: ResultCache | None = None) -> None:
        self.lake, self.catalog, self.store, self.cache = lake, catalog, store, cache

    # -- reading ------------------------------------------------------------------------
    def _version(self, table: str, snapshot: Snapshot) -> int | None:
        """The version of ``table`` this answer reads; None: no such table (then, or yet)."""
        try:
            return self.lake.resolve_version(table, as_of=snapshot.as_of, version=snapshot.version)
        except LakeError as exc:
            if snapshot.version is not None:
                raise AnalyticsError(422, "invalid_version", {"parameter": "version", "msg": str(exc)}) from None
            raise AnalyticsError(503, "lake_unavailable", str(exc)) from None

    def _query(self, table: str, version: int | None, compose: Callable[[_Columns], str]) -> list[dict[str, Any]]:
        if version is None:
            return []
        try:
            return self.lake.sql(table, lambda names: compose(_Columns(names)), version=version).to_pylist()
        except LakeError as exc:
            raise AnalyticsError(503, "lake_unavailable", str(exc)) from None

    def _cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        return compute() if self.cache is None else self.cache.get_or_compute(key, compute)

    # -- endpoints ----------------------------------------------------------------------
    def _summary(self, window: Window, version: int | None, provider: str | None) -> dict[str, float | None]:
        rows = [] if window.empty else self._query(FACT_TABLE, version, lambda c: (
            f"SELECT {_figures(c)} FROM {sql_ident(FACT_TABLE)} WHERE {window.where()}{c.provider_filter(provider)}"))
        row = rows[0] if rows else {}
        total = int(row.get("requests") or 0)
        return {
            "total_requests": float(total),
            "success_rate": _or_zero(row.get("successes")) / total if total else 0.0,
            "avg_latency_ms": row.get("avg_latency"),
            "p95_latency_ms": row.get("p95"),
            "total_tokens": _or_zero(row.get("tokens")),
            "total_cost_usd": _or_zero(row.get("cost")),
        }

    def metrics(self, window: Window, snapshot: Snapshot, provider: str | None) -> list[dict[str, Any]]:
        version = self._version(FACT_TABLE, snapshot)
        return self._cached(("metrics", window, provider, version), lambda: self._metrics(window, version, provider))

    def _metrics(self, window: Window, version: int | None, provider: str | None) -> list[dict[str, Any]]:
        current = self._summary(window, version, provider)
        previous = self._summary(window.previous(), version, provider)
        out = []
        for name in METRIC_NAMES:
            value, before = current[name], previous[name]
            change = None if value is None or not before else (value - before) / before * 100.0
            out.append({"metric_name": name, "value": _nan_to_none(value), "change_percent": _nan_to_none(change),
                        "period": window.period(), "previous_value": _nan_to_none(before)})  # not in MetricValue
        return out

    def providers(self, window: Window, snapshot: Snapshot) -> list[dict[str, Any]]:
        version = self._version(FACT_TABLE, snapshot)
        return self._cached(("providers", window, version), lambda: self._providers(window, version))

    def _providers(self, window: Window, version: int | None) -> list[dict[str, Any]]:
        if window.empty:
            return []
        rows = self._query(FACT_TABLE, version, lambda c: (
            f"SELECT {c.column('llm_provider', 'VARCHAR')} AS provider_id, {_figures(c)} "
            f"FROM {sql_ident(FACT_TABLE)} WHERE {window.where()} GROUP BY 1"))
        grand_total = sum(int(r["requests"]) for r in rows)
        out = []
        for r in sorted(rows, key=lambda r: (r["provider_id"] is None, r["provider_id"] or "")):
            requests, successes = int(r["requests"]), int(r["successes"] or 0)
            out.append({
                "provider_id": r["provider_id"], "total_requests": requests, "successful_requests": successes,
                "failed_requests": requests - successes, "avg_latency_ms": _nan_to_none(r["avg_latency"]),
                "p50_latency_ms": _nan_to_none(r["p50"]), "p95_latency_ms": _nan_to_none(r["p95"]),
                "p99_latency_ms": _nan_to_none(r["p99"]), "total_tokens": int(r["tokens"] or 0),
                "total_cost_usd": _or_zero(r["cost"]), "request_share": requests / grand_total,
            })
        return out

    def models(self, window: Window, snapshot: Snapshot) -> list[dict[str, Any]]:
        """Requests, successes, average latency, tokens and cost per LLM provider and model."""
        version = self._version(FACT_TABLE, snapshot)
        return self._cached(("models", window, version), lambda: self._models(window, version))

    def _models(self, window: Window, version: int | None) -> list[dict[str, Any]]:
        if window.empty:
            return []
        rows = self._query(FACT_TABLE, version, lambda c: (
            f"SELECT {c.column('llm_provider', 'VARCHAR')} AS provider_id, {c.column('model', 'VARCHAR')} AS model, "
            f"COUNT(*) AS requests, SUM(CASE WHEN {c.success} THEN 1 ELSE 0 END) AS successes, "
            f"AVG({c.latency}) AS avg_latency, SUM(COALESCE({c.tokens}, 0)) AS tokens, "
            f"SUM(COALESCE({c.cost}, 0.0)) AS cost FROM {sql_ident(FACT_TABLE)} WHERE {window.where()} GROUP BY 1, 2"))
        return [{"provider_id": r["provider_id"], "model": r["model"], "total_requests": int(r["requests"]),
                 "successful_requests": int(r["successes"] or 0), "avg_latency_ms": _nan_to_none(r["avg_latency"]),
                 "total_tokens": int(r["tokens"] or 0), "total_cost_usd": _or_zero(r["cost"])}
                for r in sorted(rows, key=lambda r: (r["provider_id"] or "", r["model"] or ""))]

    def techniques(self, window: Window, snapshot: Snapshot, provider: str | None) -> list[dict[str, Any]]:
        version = self._version(TECHNIQUE_MART, snapshot)
        return self._cached(("techniques", window, provider, version),
                            lambda: self._techniques(window, version, provider))

    def _techniques(self, window: Window, version: int | None, provider: str | None) -> list[dict[str, Any]]:
        if window.empty:
            return []

        def compose(c: _Columns) -> str:
            uses = f"COALESCE({c.column('uses', 'BIGINT')}, 0)"
            latency, asr = c.column("avg_latency_ms", "DOUBLE"), c.column("attack_success_rate", "DOUBLE")
            return (f"SELECT {c.column('technique', 'VARCHAR')} AS technique, {c.column('source', 'VARCHAR')} AS source, "
                    f"SUM({uses}) AS uses, SUM(COALESCE({c.column('successes', 'BIGINT')}, 0)) AS successes, "
                    f"SUM(CASE WHEN {latency} IS NOT NULL THEN {latency} * {uses} END) AS lat_sum, "
                    f"SUM(CASE WHEN {latency} IS NOT NULL THEN {uses} END) AS lat_w, "
                    f"SUM(CASE WHEN {asr} IS NOT NULL THEN {asr} * {uses} END) AS asr_sum, "
                    f"SUM(CASE WHEN {asr} IS NOT NULL THEN {uses} END) AS asr_w "
                    f"FROM {sql_ident(TECHNIQUE_MART)} WHERE {window.where()}{c.provider_filter(provider)} GROUP BY 1, 2")

        out = []
        for r in sorted(self._query(TECHNIQUE_MART, version, compose),
                        key=lambda r: (r["technique"] or "", r["source"] or "")):
            uses, successes = int(r["uses"] or 0), int(r["successes"] or 0)
            out.append({
                "technique": r["technique"], "source": r["source"], "uses": uses, "successes": successes,
                "success_rate": successes / uses if uses else 0.0,
                "avg_latency_ms": r["lat_sum"] / r["lat_w"] if r["lat_w"] else None,
                "attack_success_rate": r["asr_sum"] / r["asr_w"] if r["asr_w"] else None,
            })
        return out

    def timeseries(self, window: Window, snapshot: Snapshot, metric: str, aggregation: str, interval: str,
                   provider: str | None) -> list[dict[str, Any]]:
        version = self._version(FACT_TABLE, snapshot)
        return self._cached(("timeseries", window, metric, aggregation, interval, provider, version),
                            lambda: self._timeseries(window, version, metric, aggregation, interval, provider))

    def _timeseries(self, window: Window, version: int | None, metric: str, aggregation: str, interval: str,
                    provider: str | None) -> list[dict[str, Any]]:
        by_bucket: dict[str, float | None] = {}
        if not window.empty:
            bucket = (f"{sql_ident('date')} || 'T' || {sql_ident('hour')}" if interval == "hour"
                      else sql_ident("date"))
            rows = self._query(FACT_TABLE, version, lambda c: (
                f"SELECT {bucket} AS bucket, {_AGGREGATES[aggregation](_SERIES_VALUES[metric](c))} AS value "
                f"FROM {sql_ident(FACT_TABLE)} WHERE {window.where()}{c.provider_filter(provider)} GROUP BY 1"))
            by_bucket = {r["bucket"]: r["value"] for r in rows}
        empty = 0.0 if aggregation in ("count", "sum") else None
        label = provider if provider is not None else "all"
        out = []
        for moment in window.hours(interval):
            key = _hour_key(moment) if interval == "hour" else moment.strftime("%Y-%m-%d")
            value = by_bucket.get(key)
            out.append({"timestamp": iso_z(moment), "value": empty if value is None else _nan_to_none(value),
                        "label": label})
        return out

    def data_quality(self, window: Window, snapshot: Snapshot) -> list[dict[str, Any]]:
        if snapshot.version is not None:
            raise AnalyticsError(422, "invalid_version", {"parameter": "version", "msg": "data-quality reads the "
                                 "catalog's reports, not a Delta table: use as_of"})
        if window.empty:
            return []
        low, high = _hour_key(window.first), _hour_key(window.stop)
        as_of = None if snapshot.as_of is None else snapshot.as_of.astimezone(UTC)
        out = []
        for kind in REPORT_KINDS:
            offset = 0
            while True:
                page = self.catalog.search_artifacts(kind=kind, limit=1000, offset=offset)
                offset += len(page)
                for artifact in page:
                    hour_text = artifact.partition.partition("|")[0]
                    try:
                        hour = datetime.strptime(hour_text, "%Y-%m-%d-%H:%M")
                    except ValueError:
                        continue
                    if not low <= _hour_key(hour) < high:
                        continue
                    if as_of is not None and _created(artifact.created_at) > as_of:
                        continue
                    try:
                        report = json.loads(self.store.get(artifact.location))
                    except (ObjectMissingError, ValueError):
                        continue
                    evaluated, passed = int(report.get("evaluated") or 0), int(report.get("passed") or 0)
                    out.append({
                        "suite": report.get("suite"), "kind": kind, "partition": artifact.partition,
                        "row_count": evaluated, "passed": passed, "failed": evaluated - passed,
                        "pass_rate": _nan_to_none(report.get("pass_rate")),
                        "failing_expectations": [
                            {"type": e.get("type"), "column": e.get("column"),
                             "unexpected_count": e.get("unexpected_count")}
                            for e in report.get("expectations", []) if not e.get("success")],
                    })
                if len(page) < 1000:
                    break
        return sorted(out, key=lambda r: (r["partition"], r["kind"], r["suite"] or ""))


def _created(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


LAKE_TABLES = ("audit_events", "generation_events", "test_results", "jailbreak_tests",
               "agg_provider_metrics", "agg_technique_effectiveness", "dim_providers")


def lake_row_counts(lake: DeltaLake) -> dict[str, int]:
    """Rows of every fact table and mart that exists (for ``delta_lake_row_count``)."""
    return {table: lake.count(table) for table in LAKE_TABLES if lake.exists(table)}


def latest_pass_rates(queries: AnalyticsQueries, now: datetime, hours: int = 24) -> dict[tuple[str, str], float]:
    """{(suite, provider): pass rate of its newest validated partition in the last ``hours``}, for
    ``data_quality_pass_rate``: what an alert on a falling pass rate watches."""
    stop = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    window = check_range(stop - timedelta(hours=hours), stop)
    newest: dict[tuple[str, str], tuple[str, float]] = {}
    for row in queries.data_quality(window, Snapshot(None, None)):
        if row["suite"] is None or row["pass_rate"] is None:
            continue
        key = (row["suite"], row["partition"].rpartition("|")[2])
        if key not in newest or row["partition"] > newest[key][0]:
            newest[key] = (row["partition"], float(row["pass_rate"]))
    return {key: rate for key, (_, rate) in newest.items()}
