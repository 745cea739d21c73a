"""``/api/v1/analytics/*`` on HTTP: provider metrics, technique effectiveness, time series and data quality.

The queries and where each number comes from are in ``api/analytics_queries.py`` (DataFusion
inside delta-rs, answers cached per table version); this module declares the response models
and parameters and puts the queries on ``create_app``'s auth and error conventions.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import Query
from pydantic import BaseModel

from vault_pipeline.api.analytics_queries import (  # noqa: F401 - re-exported: the analytics API's query layer
    AGGREGATIONS,
    INTERVALS,
    METRIC_NAMES,
    REPORT_KINDS,
    SERIES_METRICS,
    AnalyticsError,
    AnalyticsQueries,
    ResultCache,
    Snapshot,
    Window,
    check_range,
    check_snapshot,
    lake_row_counts,
    latest_pass_rates,
)
from vault_pipeline.api.schemas import Timestamp, error_responses


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


def register_analytics_routes(app, api, requires, api_error: type[Exception], durations=None) -> None:
    """The analytics endpoints, on ``create_app``'s auth and error conventions; ``api.lake`` None
    answers 503 ``lake_unavailable``. ``durations`` (a prometheus Histogram labelled by endpoint)
    times every query. Answers are cached per table version in ``app.state.analytics_cache``,
    which the dashboard shares."""
    cache = ResultCache()
    app.state.analytics_cache = cache

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
            return call(AnalyticsQueries(api.lake, api.catalog, api.store, cache), window, snapshot)
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
