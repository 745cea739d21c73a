"""`/api/v1/analytics/*`: the numbers agree with an independent pandas/numpy computation over the
fact rows real simulator partitions loaded; bad parameters are 422 naming them; time travel."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

LLM = {"llm": {"type": "simulator", "kind": "generation_event", "records_per_hour": 80, "seed": 5, "lookback_hours": 0,
               "invalid_fraction": 0.0}}
HOURS = ("2026-01-01-03:00", "2026-01-01-04:00")
LATER = "2026-01-01-05:00"
START, END = "2026-01-01T03:00:00Z", "2026-01-01T05:00:00Z"
BASE = "/api/v1/analytics"


@pytest.fixture
def service(vault_service_factory):
    service = vault_service_factory(stack="embedded", providers=LLM)
    for hour in HOURS:
        assert service.harness.run(hour, "llm").success
    return service


def _get(service, path, principal="reader", **params):
    return service.client(principal).request("GET", f"{BASE}/{path}", params=params)


def _ok(service, path, **params):
    response = _get(service, path, **params)
    assert response.status_code == 200, response.text
    return response.json()


def _facts(service, first="2026-01-01T03", stop="2026-01-01T05") -> pd.DataFrame:
    frame = service.harness.lake.read("generation_events").to_pandas()
    key = frame["date"] + "T" + frame["hour"]
    frame = frame[(key >= first) & (key < stop)].copy()
    frame["tokens"] = frame["total_tokens"].fillna(frame.get("tokens_used")).fillna(0)
    frame["ok"] = frame["success"].fillna(False).astype(bool)
    return frame


def _assert_percentile(value: float, values, q: float) -> None:
    """numpy's linear percentile, within DataFusion's documented bound: its interpolation weight
    is truncated to six decimals, so the value may lie up to 1e-6 of the gap between the two
    neighbouring ranks below numpy's (api/analytics_queries.py)."""
    ordered = np.sort(np.asarray(values, dtype=float))
    rank = (len(ordered) - 1) * q
    low, high = ordered[int(np.floor(rank))], ordered[int(np.ceil(rank))]
    assert value == pytest.approx(np.percentile(ordered, q * 100), rel=1e-12, abs=1e-6 * (high - low) + 1e-9)


def test_metrics_and_providers_match_an_independent_computation(service):
    facts = _facts(service)
    assert len(facts) > 50
    by_name = {m["metric_name"]: m for m in _ok(service, "metrics", start_date=START, end_date=END)}
    latency = facts["latency_ms"].dropna().to_numpy(dtype=float)
    assert by_name["total_requests"]["value"] == len(facts)
    assert by_name["success_rate"]["value"] == pytest.approx(facts["ok"].mean())
    assert by_name["avg_latency_ms"]["value"] == pytest.approx(latency.mean())
    _assert_percentile(by_name["p95_latency_ms"]["value"], latency, 0.95)
    assert by_name["total_tokens"]["value"] == pytest.approx(facts["tokens"].sum())
    assert by_name["total_cost_usd"]["value"] == pytest.approx(facts["cost_usd"].fillna(0).sum())
    assert by_name["total_requests"]["change_percent"] is None  # nothing in the previous two hours
    assert by_name["total_requests"]["period"] == f"{START}/{END}"

    # against the previous period: 04:00-05:00 compared with 03:00-04:00
    one = {m["metric_name"]: m for m in _ok(service, "metrics", start_date="2026-01-01T04:00:00Z", end_date=END)}
    n3, n4 = len(_facts(service, stop="2026-01-01T04")), len(_facts(service, first="2026-01-01T04"))
    assert one["total_requests"]["change_percent"] == pytest.approx((n4 - n3) / n3 * 100)

    providers = _ok(service, "providers", start_date=START, end_date=END)
    assert {p["provider_id"] for p in providers} == set(facts["llm_provider"].dropna())
    for row in providers:
        group = facts[facts["llm_provider"] == row["provider_id"]]
        lat = group["latency_ms"].dropna().to_numpy(dtype=float)
        assert row["total_requests"] == len(group)
        assert row["successful_requests"] == int(group["ok"].sum())
        assert row["failed_requests"] == len(group) - int(group["ok"].sum())
        assert row["avg_latency_ms"] == pytest.approx(lat.mean())
        for name, q in (("p50_latency_ms", 0.5), ("p95_latency_ms", 0.95), ("p99_latency_ms", 0.99)):
            _assert_percentile(row[name], lat, q)
        assert row["total_tokens"] == int(group["tokens"].sum())
        assert row["total_cost_usd"] == pytest.approx(group["cost_usd"].fillna(0).sum())
        assert row["request_share"] == pytest.approx(len(group) / len(facts))
    # one provider filter on metrics
    chosen = providers[0]["provider_id"]
    only = {m["metric_name"]: m for m in _ok(service, "metrics", start_date=START, end_date=END, provider=chosen)}
    assert only["total_requests"]["value"] == providers[0]["total_requests"]


def test_timeseries_fills_empty_buckets(service):
    facts = _facts(service)
    series = _ok(service, "timeseries", metric="latency_ms", aggregation="p95", start_date="2026-01-01T02:00:00Z",
                 end_date="2026-01-01T06:00:00Z", interval="hour")
    assert [p["timestamp"] for p in series] == [f"2026-01-01T0{h}:00:00Z" for h in (2, 3, 4, 5)]
    assert series[0]["value"] is None and series[3]["value"] is None and series[0]["label"] == "all"
    for point, hour in zip(series[1:3], ("03", "04")):
        lat = facts[facts["hour"] == hour]["latency_ms"].dropna().to_numpy(dtype=float)
        _assert_percentile(point["value"], lat, 0.95)
    counts = _ok(service, "timeseries", metric="requests", aggregation="count", start_date="2026-01-01T02:00:00Z",
                 end_date="2026-01-01T06:00:00Z")
    assert [p["value"] for p in counts] == [0, (facts["hour"] == "03").sum(), (facts["hour"] == "04").sum(), 0]
    daily = _ok(service, "timeseries", metric="cost_usd", aggregation="sum", start_date=START,
                end_date="2026-01-03T00:00:00Z", interval="day")
    assert [p["timestamp"] for p in daily] == ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]
    assert daily[0]["value"] == pytest.approx(facts["cost_usd"].sum()) and daily[1]["value"] == 0


def test_techniques_match_the_fact_rows(service):
    facts = _facts(service)
    exploded = facts[["llm_provider", "ok", "latency_ms", "techniques_applied", "log_id"]].copy()
    exploded["technique"] = exploded["techniques_applied"].apply(lambda v: sorted(set(v)) if v is not None else [])
    exploded = exploded.explode("technique").dropna(subset=["technique"])
    rows = {r["technique"]: r for r in _ok(service, "techniques", start_date=START, end_date=END)}
    assert set(rows) == set(exploded["technique"])
    for technique, group in exploded.groupby("technique"):
        assert rows[technique]["uses"] == len(group)
        assert rows[technique]["successes"] == int(group["ok"].sum())
        assert rows[technique]["success_rate"] == pytest.approx(group["ok"].mean())
        if group["latency_ms"].notna().all():  # the use-weighted hourly means are exact then
            assert rows[technique]["avg_latency_ms"] == pytest.approx(group["latency_ms"].mean())


def test_data_quality_reports(service):
    results = _ok(service, "data-quality", start_date=START, end_date=END)
    assert {r["kind"] for r in results} == {"input_validation", "output_validation"}
    assert {r["partition"].split("|")[0] for r in results} == set(HOURS)
    for r in results:
        assert r["failed"] == r["row_count"] - r["passed"] and r["row_count"] > 0
    assert _ok(service, "data-quality", start_date="2025-06-01T00:00:00Z", end_date="2025-06-02T00:00:00Z") == []


def test_parameter_errors_name_the_parameter(service):
    day = {"start_date": START, "end_date": END}
    cases = [
        ("metrics", {"end_date": END}, "start_date"),
        ("metrics", {**day, "start_date": "2026-01-01"}, "start_date"),
        ("providers", {**day, "end_date": START}, "end_date"),
        ("providers", {**day, "end_date": "2027-01-03T00:00:00Z", "start_date": "2026-01-01T00:00:00Z"}, "end_date"),
        ("techniques", {**day, "version": -1}, "version"),
        ("techniques", {**day, "version": 0, "as_of": END}, "version"),
        ("timeseries", {**day, "metric": "latency_ms", "aggregation": "median"}, "aggregation"),
        ("timeseries", {**day, "metric": "bogus", "aggregation": "avg"}, "metric"),
        ("timeseries", {**day, "metric": "latency_ms", "aggregation": "avg", "interval": "week"}, "interval"),
        ("timeseries", {**day, "metric": "latency_ms", "aggregation": "avg", "version": 999}, "version"),
        ("data-quality", {**day, "as_of": "yesterday"}, "as_of"),
        ("data-quality", {**day, "version": 1}, "version"),
    ]
    for path, params, name in cases:
        response = _get(service, path, **params)
        assert response.status_code == 422, (path, params, response.text)
        assert name in response.text, (path, params, response.text)
    choice = _get(service, "timeseries", **day, metric="latency_ms", aggregation="median")
    assert "'p95'" in choice.text and "'count'" in choice.text  # the valid values
    assert _get(service, "metrics", principal="ingester", **day).status_code == 403
    assert _get(service, "metrics", principal=None, **day).status_code == 401


def test_an_empty_range_answers_zeros(service):
    empty = {"start_date": "2025-06-01T00:00:00Z", "end_date": "2025-06-01T02:00:00Z"}
    metrics = {m["metric_name"]: m for m in _ok(service, "metrics", **empty)}
    assert metrics["total_requests"]["value"] == 0 and metrics["total_cost_usd"]["value"] == 0
    assert metrics["avg_latency_ms"]["value"] is None and metrics["total_requests"]["change_percent"] is None
    assert _ok(service, "providers", **empty) == [] and _ok(service, "techniques", **empty) == []
    series = _ok(service, "timeseries", **empty, metric="requests", aggregation="sum")
    assert [p["value"] for p in series] == [0, 0]


def test_as_of_and_version_read_earlier_numbers(service):
    window = {"start_date": START, "end_date": "2026-01-01T06:00:00Z"}
    before = {m["metric_name"]: m["value"] for m in _ok(service, "metrics", **window)}
    version = service.harness.lake.version("generation_events")
    time.sleep(0.05)
    moment = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    time.sleep(0.05)
    assert service.harness.run(LATER, "llm").success
    after = {m["metric_name"]: m["value"] for m in _ok(service, "metrics", **window)}
    assert after["total_requests"] > before["total_requests"]
    assert {m["metric_name"]: m["value"] for m in _ok(service, "metrics", **window, as_of=moment)} == before
    assert {m["metric_name"]: m["value"] for m in _ok(service, "metrics", **window, version=version)} == before
    providers_then = _ok(service, "providers", **window, as_of=moment)
    assert sum(p["total_requests"] for p in providers_then) == before["total_requests"]
    # before the table existed: nothing, not an error
    assert _ok(service, "providers", **window, as_of="2020-01-01T00:00:00Z") == []


def test_without_a_lake_the_routes_answer_503(service):
    from fastapi.testclient import TestClient

    from vault_pipeline.api.app import VaultApi, create_app
    from vault_pipeline.api.auth import parse_api_keys
    from vault_pipeline.api.jobs import JobService
    from vault_pipeline.api.runs import Runner

    class NoRuns(Runner):
        def launch(self, **_):
            raise AssertionError("no ingestion jobs in this test")

        def runs_for_job(self, job_id):
            return []

    api = VaultApi(catalog=service.harness.catalog, store=service.harness.store, jobs=JobService(NoRuns()),
                   keys=parse_api_keys("r:reader-key-0123456789abcdef:read"), config=lambda: None)
    try:
        answer = TestClient(create_app(api)).get(f"{BASE}/providers", params={"start_date": START, "end_date": END},
                                                 headers={"X-API-Key": "reader-key-0123456789abcdef"})
        assert answer.status_code == 503 and answer.json()["error"] == "lake_unavailable"
    finally:
        api.jobs.close()


def test_metrics_exposes_lake_rows_pass_rates_and_query_durations(service):
    _ok(service, "metrics", start_date=START, end_date=END)
    text = service.client("reader").request("GET", "/metrics").text

    rows = service.harness.lake.count("generation_events")
    assert f'delta_lake_row_count{{table="generation_events"}} {float(rows)}' in text
    newest = json.loads(service.harness.store.get("reports/llm/2026/01/01/04/input-validation.json"))
    assert f'data_quality_pass_rate{{provider="llm",suite="generation_event.input"}} {float(newest["pass_rate"])}' in text
    assert 'analytics_query_duration_seconds_count{query="metrics"} 1.0' in text


def test_answers_are_cached_per_table_version(service):
    from vault_pipeline.api.analytics_queries import AnalyticsQueries, ResultCache, Snapshot, check_range

    cache = ResultCache()
    queries = AnalyticsQueries(service.harness.lake, service.harness.catalog, service.harness.store, cache)
    window = check_range(datetime(2026, 1, 1, 3, tzinfo=UTC), datetime(2026, 1, 1, 6, tzinfo=UTC))
    first = queries.providers(window, Snapshot())
    assert queries.providers(window, Snapshot()) == first and (cache.hits, cache.misses) == (1, 1)
    version = service.harness.lake.version("generation_events")
    assert queries.providers(window, Snapshot(version=version)) == first and cache.hits == 2  # same version

    assert service.harness.run(LATER, "llm").success  # a new table version: asked again, answered anew
    after = queries.providers(window, Snapshot())
    assert cache.misses == 2
    assert sum(p["total_requests"] for p in after) > sum(p["total_requests"] for p in first)
    assert queries.providers(window, Snapshot(version=version)) == first and cache.hits == 3
