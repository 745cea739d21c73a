"""Scenario: a QA lead reads the insights over HTTP, pages and filters them, and asks for a refresh.

The app is ``create_app`` on a vault whose lake holds the labelled history of
``test_insights_assets`` (a flaky ``shop::test_pay``, ``shop::test_render`` three times slower
from build 13, one timeout cluster in ``lookup``). Before the first refresh every list is empty;
after it the endpoints page in each table's ranking and filter by suite and time; a refresh is
202 with a run id that can be followed to completion; ``read`` keys read, ``ingest`` keys
refresh, and an API without a lake answers 503.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from vault_pipeline.api.app import VaultApi, create_app
from vault_pipeline.api.auth import parse_api_keys
from vault_pipeline.api.insights import InsightsRefresher
from vault_pipeline.api.jobs import JobService
from vault_pipeline.api.runs import RunInfo, Runner
from vault_pipeline.defs.insights.cli import refresh_insights
from vault_pipeline.providers.config import load_config
from vault_pipeline_tests.defs.test_insights_assets import (
    AS_OF,
    _refresh,
    _vault_with_history,
)

READ, INGEST = {"X-API-Key": "reader-key-0123456789"}, {"X-API-Key": "ingest-key-0123456789"}


class _NoRuns(Runner):
    def launch(self, *, job_id, partition_key, priority, run_id=None) -> str:
        raise AssertionError("no ingestion here")

    def runs_for_job(self, job_id) -> list[RunInfo]:
        return []


@pytest.fixture
def client(vault):
    vault.write_providers({"qa": {"type": "simulator", "kind": "test_result", "records_per_hour": 80, "seed": 3,
                                  "lookback_hours": 0, "invalid_fraction": 0}})
    jobs = JobService(_NoRuns())
    api = VaultApi(catalog=vault.catalog, store=vault.store, jobs=jobs,
                   keys=parse_api_keys("reader:reader-key-0123456789:read,ingester:ingest-key-0123456789:ingest"),
                   config=lambda: load_config(vault.config_path), lake=vault.lake)
    app = create_app(api)
    app.state.insights_refresher = InsightsRefresher(lambda suite, run_id: refresh_insights(
        suite=suite, run_id=run_id, as_of=AS_OF, definitions=vault.definitions(), instance=vault.instance))
    with TestClient(app) as test_client:
        yield test_client
    jobs.close()


def _get(client, path: str, **params) -> dict:
    response = client.get(path, params=params, headers=READ)
    assert response.status_code == 200, response.text
    return response.json()


def test_before_the_first_refresh_every_list_is_empty(client):
    summary = _get(client, "/v1/insights")
    assert summary["refreshed_at"] is None and summary["window"] is None
    assert set(summary["counts"].values()) == {0} and summary["flaky_tests"] == []
    for path in ("flaky-tests", "failure-clusters", "regressions"):
        assert _get(client, f"/v1/insights/{path}") == {
            "data": [], "meta": {"total_count": 0, "has_more": False, "limit": 50, "offset": 0}}


def test_the_insights_page_and_filter_by_suite_and_time(client, vault):
    _vault_with_history(vault)
    _refresh(vault)
    summary = _get(client, "/v1/insights")
    assert summary["window"]["days"] == 30 and summary["refreshed_at"]
    assert summary["counts"]["flaky_tests"] >= 1 and len(summary["flaky_tests"]) <= 5

    flaky = _get(client, "/v1/insights/flaky-tests", suite="shop")
    assert [(r["suite"], r["test"]) for r in flaky["data"]] == [("shop", "test_pay")]
    assert flaky["data"][0]["flaky_commits"] == ["c004", "c008"]
    everything = _get(client, "/v1/insights/flaky-tests", limit=1000)["data"]
    first = _get(client, "/v1/insights/flaky-tests", limit=1)
    assert first["meta"]["total_count"] == len(everything) and first["data"] == everything[:1]
    assert first["meta"]["has_more"] == (len(everything) > 1)
    # test_pay was last seen flaky on build 16, 2026-01-01T08:00:46Z
    assert _get(client, "/v1/insights/flaky-tests", suite="shop", since="2026-01-01T08:00:46Z")["data"]
    assert not _get(client, "/v1/insights/flaky-tests", suite="shop", since="2026-01-01T08:00:47Z")["data"]
    assert not _get(client, "/v1/insights/flaky-tests", suite="shop", until="2026-01-01T08:00:46+00:00")["data"]

    regressions = _get(client, "/v1/insights/regressions", suite="shop")["data"]
    assert [(r["suite"], r["test"], r["build"]) for r in regressions] == [("shop", "test_render", 13)]
    assert regressions[0]["ratio"] > 2.5 and regressions[0]["build_time"] == "2026-01-01T06:30:38.000000Z"
    assert not _get(client, "/v1/insights/regressions", suite="shop", until="2026-01-01T07:30:38+01:00")["data"]

    clusters = _get(client, "/v1/insights/failure-clusters", suite="lookup")["data"]
    assert len(clusters) == 1 and clusters[0]["template"] == "TimeoutError no answer from <IP> after <NUM>s"
    assert clusters[0]["occurrences"][0] == {"test": "test_query", "build": 4}
    assert _get(client, "/v1/insights/failure-clusters", offset=10_000)["data"] == []


def test_a_refresh_is_accepted_followed_and_lands_in_the_tables(client, vault):
    _vault_with_history(vault)
    accepted = client.post("/v1/insights/refresh", params={"suite": "shop"}, headers=INGEST)
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]
    deadline = time.monotonic() + 120
    while (state := client.get(f"/v1/insights/refresh/{run_id}", headers=READ).json())["status"] in (
            "pending", "processing"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert state["status"] == "completed" and state["counts"]["flaky_tests"] == 1
    assert vault.instance.get_run_by_id(run_id) is not None  # a Dagster run, visible in the UI
    assert [r["test"] for r in _get(client, "/v1/insights/flaky-tests")["data"]] == ["test_pay"]


def test_roles_bad_parameters_and_a_missing_lake(client, vault):
    assert client.get("/v1/insights").status_code == 401
    refused = client.post("/v1/insights/refresh", headers=READ)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    for params in ({"limit": 0}, {"offset": -1}, {"since": "yesterday"}, {"until": "2026-01-01"}, {"suite": ""}):
        response = client.get("/v1/insights/flaky-tests", params=params, headers=READ)
        assert response.status_code == 422 and response.json()["error"] == "invalid_request", params
    assert client.get("/v1/insights/refresh/nope", headers=READ).json()["error"] == "refresh_not_found"
    client.app.state.vault.lake = None
    for path in ("/v1/insights", "/v1/insights/regressions"):
        response = client.get(path, headers=READ)
        assert response.status_code == 503 and response.json()["error"] == "lake_unavailable"
    assert client.post("/v1/insights/refresh", headers=INGEST).status_code == 503


def test_the_default_refresher_runs_the_cli_in_a_subprocess(vault, monkeypatch):
    vault.write_providers({"qa": {"type": "simulator", "kind": "test_result"}})
    monkeypatch.setenv("VAULT_CONFIG", str(vault.config_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    refresher = InsightsRefresher()
    job, joined = refresher.submit("shop")
    assert not joined
    deadline = time.monotonic() + 180
    while refresher.get(job.run_id).status in ("pending", "processing"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    done = refresher.get(job.run_id)
    assert done.status == "completed", done.error
    assert done.counts == {"flaky_tests": 0, "failure_clusters": 0, "duration_regressions": 0, "suite_trends": 0}
    assert (vault.home / "dagster").is_dir()  # the run is on the vault's own instance
