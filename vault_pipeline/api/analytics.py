"""``/api/v1/analytics/*``: provider metrics, technique effectiveness, time series and data quality.

The query logic (``AnalyticsQueries``) knows nothing of FastAPI: it reads the lake through its
port (``DeltaLake.read``, QueryBuilder inside, pruned to the range's date partitions) and the
catalog's artifact index, and returns plain dicts. ``register_analytics_routes`` puts it on
``create_app``'s auth and error conventions.

Where each number comes from (docs/api.md says the same):

- ``metrics``, ``providers`` and ``timeseries`` read the fact table ``generation_events`` over the
  range: exact percentiles over a range cannot be combined from hourly ones, so its ``latency_ms``
  is read anyway, and the counts and sums come from the same single scan (cheaper than a second
  scan of ``agg_provider_metrics`` plus a join). The arithmetic is the mart's (core/marts.py).
- ``techniques`` reads the mart ``agg_technique_effectiveness`` (no list explosion per request):
  uses and successes are summed; ``avg_latency_ms`` and ``attack_success_rate`` are the
  use-weighted means of the hourly values.
- ``data-quality`` reads the ``input_validation`` / ``output_validation`` reports the artifact
  index names.

A range ``[start_date, end_date)`` covers the hours (partitions) whose start lies in
``[start_date floored to the hour, end_date)``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import Query
from pydantic import BaseModel

from vault_pipeline.api.schemas import Timestamp, error_responses
from vault_pipeline.core.marts import GENERATION_COLUMNS
from vault_pipeline.storage.lake import DeltaLake, LakeError
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


def _nan_to_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) or np.isinf(value) else value


class AnalyticsQueries:
    def __init__(self, lake: DeltaLake, catalog, store) -> None:
        self.lake, self.catalog, self.store = lake, catalog, store

    # -- reading ------------------------------------------------------------------------
    def _rows(self, table: str, columns: tuple[str, ...], window: Window, snapshot: Snapshot) -> pa.Table:
        """The window's rows of ``table`` (only the wanted columns it has), as of the snapshot.

        A table that does not exist (now, or yet at ``as_of``) reads as no rows."""
        empty = pa.table({})
        if window.empty or not self.lake.exists(table):
            return empty
        at = {"as_of": snapshot.as_of, "version": snapshot.version}
        try:
            names = self.lake.read(table, limit=0, **at).column_names
            wanted = [c for c in ("date", "hour", *columns) if c in names]
            last = window.stop - timedelta(hours=1)
            rows = self.lake.read(table, columns=wanted, dates=(window.first.strftime("%Y-%m-%d"),
                                                                last.strftime("%Y-%m-%d")), **at)
        except LakeError as exc:
            if snapshot.version is not None:
                raise AnalyticsError(422, "invalid_version", {"parameter": "version", "msg": str(exc)}) from None
            if snapshot.as_of is not None and "did not exist yet" in str(exc):
                return empty
            raise AnalyticsError(503, "lake_unavailable", str(exc)) from None
        if rows.num_rows == 0:
            return rows
        keys = pc.binary_join_element_wise(rows.column("date"), rows.column("hour"), "T")
        inside = pc.and_(pc.greater_equal(keys, _hour_key(window.first)), pc.less(keys, _hour_key(window.stop)))
        return rows.filter(inside)

    @staticmethod
    def _column(rows: pa.Table, name: str, type_: pa.DataType) -> pa.Array:
        if name not in rows.column_names:
            return pa.nulls(rows.num_rows, type_)
        return rows.column(name).combine_chunks().cast(type_)

    def _facts(self, window: Window, snapshot: Snapshot, provider: str | None) -> pa.Table:
        rows = self._rows(FACT_TABLE, GENERATION_COLUMNS, window, snapshot)
        if provider is not None and rows.num_rows:
            rows = rows.filter(pc.fill_null(pc.equal(self._column(rows, "llm_provider", pa.string()), provider), False))
        return rows

    def _fact_arrays(self, rows: pa.Table) -> dict[str, np.ndarray]:
        """Per row: success (bool), latency (float, NaN = null), tokens and cost (nulls as 0),
        following core/marts.py's conventions."""
        tokens = pc.coalesce(self._column(rows, "total_tokens", pa.int64()), self._column(rows, "tokens_used", pa.int64()))
        return {
            "success": self._column(rows, "success", pa.bool_()).fill_null(False).to_numpy(zero_copy_only=False),
            "latency": self._column(rows, "latency_ms", pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64),
            "tokens": tokens.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64),
            "tokens_nullable": tokens.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64),
            "cost": self._column(rows, "cost_usd", pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False),
            "cost_nullable": self._column(rows, "cost_usd", pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64),
        }

    # -- endpoints ----------------------------------------------------------------------
    def _summary(self, window: Window, snapshot: Snapshot, provider: str | None) -> dict[str, float | None]:
        rows = self._facts(window, snapshot, provider)
        a = self._fact_arrays(rows)
        total = rows.num_rows
        latency = a["latency"][~np.isnan(a["latency"])]
        return {
            "total_requests": float(total),
            "success_rate": float(a["success"].sum()) / total if total else 0.0,
            "avg_latency_ms": float(latency.mean()) if latency.size else None,
            "p95_latency_ms": float(np.percentile(latency, 95)) if latency.size else None,
            "total_tokens": float(a["tokens"].sum()),
            "total_cost_usd": float(a["cost"].sum()),
        }

    def metrics(self, window: Window, snapshot: Snapshot, provider: str | None) -> list[dict[str, Any]]:
        current = self._summary(window, snapshot, provider)
        previous = self._summary(window.previous(), snapshot, provider)
        out = []
        for name in METRIC_NAMES:
            value, before = current[name], previous[name]
            change = None if value is None or not before else (value - before) / before * 100.0
            out.append({"metric_name": name, "value": _nan_to_none(value), "change_percent": _nan_to_none(change),
                        "period": window.period()})
        return out

    def providers(self, window: Window, snapshot: Snapshot) -> list[dict[str, Any]]:
        rows = self._facts(window, snapshot, None)
        if rows.num_rows == 0:
            return []
        a = self._fact_arrays(rows)
        ids = self._column(rows, "llm_provider", pa.string()).to_pylist()
        groups: dict[str | None, list[int]] = {}
        for index, provider_id in enumerate(ids):
            groups.setdefault(provider_id, []).append(index)
        grand_total = rows.num_rows
        out = []
        for provider_id in sorted(groups, key=lambda p: (p is None, p or "")):
            at = np.asarray(groups[provider_id])
            latency = a["latency"][at]
            latency = latency[~np.isnan(latency)]
            successful = int(a["success"][at].sum())

            out.append({
                "provider_id": provider_id, "total_requests": int(at.size), "successful_requests": successful,
                "failed_requests": int(at.size) - successful,
                "avg_latency_ms": float(latency.mean()) if latency.size else None,
                **{f"p{q}_latency_ms": _percentile(latency, q) for q in (50, 95, 99)},
                "total_tokens": int(a["tokens"][at].sum()), "total_cost_usd": float(a["cost"][at].sum()),
                "request_share": at.size / grand_total,
            })
        return out

    def techniques(self, window: Window, snapshot: Snapshot, provider: str | None) -> list[dict[str, Any]]:
        columns = ("source", "technique", "llm_provider", "uses", "successes", "avg_latency_ms", "attack_success_rate")
        rows = self._rows(TECHNIQUE_MART, columns, window, snapshot)
        if rows.num_rows == 0:
            return []
        if provider is not None:
            rows = rows.filter(pc.fill_null(pc.equal(self._column(rows, "llm_provider", pa.string()), provider), False))
        groups: dict[tuple, dict[str, float]] = {}
        records = zip(*(self._column(rows, c, t).to_pylist() for c, t in (
            ("technique", pa.string()), ("source", pa.string()), ("uses", pa.int64()), ("successes", pa.int64()),
            ("avg_latency_ms", pa.float64()), ("attack_success_rate", pa.float64()))))
        for technique, source, uses, successes, latency, asr in records:
            g = groups.setdefault((technique, source), {"uses": 0, "successes": 0, "lat_sum": 0.0, "lat_w": 0,
                                                        "asr_sum": 0.0, "asr_w": 0})
            uses, successes = uses or 0, successes or 0
            g["uses"] += uses
            g["successes"] += successes
            if latency is not None:
                g["lat_sum"] += latency * uses
                g["lat_w"] += uses
            if asr is not None:
                g["asr_sum"] += asr * uses
                g["asr_w"] += uses
        out = []
        for (technique, source), g in sorted(groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1] or "")):
            out.append({
                "technique": technique, "source": source, "uses": int(g["uses"]), "successes": int(g["successes"]),
                "success_rate": g["successes"] / g["uses"] if g["uses"] else 0.0,
                "avg_latency_ms": g["lat_sum"] / g["lat_w"] if g["lat_w"] else None,
                "attack_success_rate": g["asr_sum"] / g["asr_w"] if g["asr_w"] else None,
            })
        return out

    def timeseries(self, window: Window, snapshot: Snapshot, metric: str, aggregation: str, interval: str,
                   provider: str | None) -> list[dict[str, Any]]:
        buckets = window.hours(interval)
        rows = self._facts(window, snapshot, provider)
        a = self._fact_arrays(rows)
        values = {"requests": np.ones(rows.num_rows), "latency_ms": a["latency"], "tokens": a["tokens_nullable"],
                  "cost_usd": a["cost_nullable"], "success": a["success"].astype(np.float64)}[metric]
        by_bucket: dict[str, list[float]] = {}
        if rows.num_rows:
            dates = rows.column("date").to_pylist()
            hours = rows.column("hour").to_pylist()
            for date, hour, value in zip(dates, hours, values.tolist()):
                key = f"{date}T{hour}" if interval == "hour" else date
                if not np.isnan(value):
                    by_bucket.setdefault(key, []).append(value)
                else:
                    by_bucket.setdefault(key, [])
        label = provider if provider is not None else "all"
        out = []
        for moment in buckets:
            key = _hour_key(moment) if interval == "hour" else moment.strftime("%Y-%m-%d")
            present = np.asarray(by_bucket.get(key, []), dtype=np.float64)
            out.append({"timestamp": iso_z(moment), "value": aggregate(present, aggregation), "label": label})
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


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def _created(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def aggregate(values: np.ndarray, aggregation: str) -> float | None:
    """One bucket's value: count and sum are 0 for no values, the others null."""
    if aggregation == "count":
        return float(values.size)
    if aggregation == "sum":
        return float(values.sum()) if values.size else 0.0
    if not values.size:
        return None
    if aggregation == "avg":
        return float(values.mean())
    if aggregation == "min":
        return float(values.min())
    if aggregation == "max":
        return float(values.max())
    return float(np.percentile(values, {"p50": 50, "p95": 95, "p99": 99}[aggregation]))


# -- HTTP -----------------------------------------------------------------------------------
class MetricValue(BaseModel):
    metric_name: Literal[METRIC_NAMES]  # type: ignore[valid-type]
    value: float | None
    change_percent: float | None
    period: str


class ProviderMetrics(BaseModel):
    provider_id: str | None
    total_requests: int
    successful_requests: int
    failed_requests: int
    avg_latency_ms: float | None
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    p99_latency_ms: float | None
    total_tokens: int
    total_cost_usd: float
    request_share: float


class TechniqueEffectiveness(BaseModel):
    technique: str | None
    source: str | None
    uses: int
    successes: int
    success_rate: float
    avg_latency_ms: float | None
    attack_success_rate: float | None


class TimePoint(BaseModel):
    timestamp: str
    value: float | None
    label: str


class FailingExpectation(BaseModel):
    type: str | None
    column: str | None
    unexpected_count: int | None


class SuiteResult(BaseModel):
    suite: str | None
    kind: Literal[REPORT_KINDS]  # type: ignore[valid-type]
    partition: str
    row_count: int
    passed: int
    failed: int
    pass_rate: float | None
    failing_expectations: list[FailingExpectation]


_ERRORS = error_responses({
    422: "invalid_request (a parameter is missing or malformed; detail names it and, for a choice, the valid "
         "values), invalid_range (end_date not after start_date), range_too_large (over 366 days), "
         "as_of_with_version (give one), invalid_version (the table has no such version; data-quality takes "
         "as_of only)",
    503: "lake_unavailable: this API has no lake, or the lake cannot be read",
})
_START = Query(description="inclusive; an RFC 3339 timestamp with a UTC offset")
_END = Query(description="exclusive; after start_date, at most 366 days later")
_AS_OF = Query(None, description="read the tables as they were at this time (RFC 3339)")
_VERSION = Query(None, ge=0, le=2**31, description="read the endpoint's table at this Delta version")
_PROVIDER = Query(None, min_length=1, max_length=64, description="only this LLM provider (ProviderMetrics.provider_id)")


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


def register_analytics_routes(app, api, requires, api_error: type[Exception], durations=None) -> None:
    """The analytics endpoints, on ``create_app``'s auth and error conventions; ``api.lake`` None
    answers 503 ``lake_unavailable``. ``durations`` (a prometheus Histogram labelled by endpoint)
    times every query."""

    def run(query: str, call, start, end, as_of, version):
        started = time.perf_counter()
        try:
            return _run(call, start, end, as_of, version)
        finally:
            if durations is not None:
                durations.labels(query).observe(time.perf_counter() - started)

    def _run(call, start, end, as_of, version):
        try:
            window = check_range(start, end)
            snapshot = check_snapshot(as_of, version)
            if api.lake is None:
                raise AnalyticsError(503, "lake_unavailable", "this API was started without a lake")
            return call(AnalyticsQueries(api.lake, api.catalog, api.store), window, snapshot)
        except AnalyticsError as exc:
            raise api_error(exc.status, exc.code, exc.detail) from None

    @app.get("/api/v1/analytics/metrics", response_model=list[MetricValue], responses=_ERRORS,
             summary="headline metrics over a range, with the change against the previous period")
    def analytics_metrics(start_date: Timestamp = _START, end_date: Timestamp = _END,
                          provider: str | None = _PROVIDER, as_of: Timestamp | None = _AS_OF,
                          version: int | None = _VERSION, _p=requires("read")) -> list[dict[str, Any]]:
        return run("metrics", lambda q, w, s: q.metrics(w, s, provider), start_date, end_date, as_of, version)

    @app.get("/api/v1/analytics/providers", response_model=list[ProviderMetrics], responses=_ERRORS,
             summary="ProviderMetrics per LLM provider over a range")
    def analytics_providers(start_date: Timestamp = _START, end_date: Timestamp = _END,
                            as_of: Timestamp | None = _AS_OF, version: int | None = _VERSION,
                            _p=requires("read")) -> list[dict[str, Any]]:
        return run("providers", lambda q, w, s: q.providers(w, s), start_date, end_date, as_of, version)

    @app.get("/api/v1/analytics/techniques", response_model=list[TechniqueEffectiveness], responses=_ERRORS,
             summary="technique effectiveness over a range")
    def analytics_techniques(start_date: Timestamp = _START, end_date: Timestamp = _END,
                             provider: str | None = _PROVIDER, as_of: Timestamp | None = _AS_OF,
                             version: int | None = _VERSION, _p=requires("read")) -> list[dict[str, Any]]:
        return run("techniques", lambda q, w, s: q.techniques(w, s, provider), start_date, end_date, as_of, version)

    @app.get("/api/v1/analytics/timeseries", response_model=list[TimePoint], responses=_ERRORS,
             summary="a metric of the generation events per hour or day")
    def analytics_timeseries(metric: Literal[SERIES_METRICS] = Query(),  # type: ignore[valid-type]
                             aggregation: Literal[AGGREGATIONS] = Query(),  # type: ignore[valid-type]
                             start_date: Timestamp = _START, end_date: Timestamp = _END,
                             interval: Literal[INTERVALS] = Query("hour"),  # type: ignore[valid-type]
                             provider: str | None = _PROVIDER, as_of: Timestamp | None = _AS_OF,
                             version: int | None = _VERSION, _p=requires("read")) -> list[dict[str, Any]]:
        return run("timeseries", lambda q, w, s: q.timeseries(w, s, metric, aggregation, interval, provider),
                   start_date, end_date, as_of, version)

    @app.get("/api/v1/analytics/data-quality", response_model=list[SuiteResult], responses=_ERRORS,
             summary="validation results per suite and partition, from the stored check reports")
    def analytics_data_quality(start_date: Timestamp = _START, end_date: Timestamp = _END,
                               as_of: Timestamp | None = _AS_OF, version: int | None = _VERSION,
                               _p=requires("read")) -> list[dict[str, Any]]:
        return run("data_quality", lambda q, w, s: q.data_quality(w, s), start_date, end_date, as_of, version)
