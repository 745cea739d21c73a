"""The access-log section's source: counts by key, endpoint and status, and every failed
authentication, from requests made to the real API (whose access log never holds a key)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from vault_pipeline.api.app import VaultApi, create_app
from vault_pipeline.api.auth import parse_api_keys
from vault_pipeline.api.jobs import JobService
from vault_pipeline.api.runs import Runner
from vault_pipeline.providers.config import load_config
from vault_pipeline.reports.access import access_summary, endpoint_of
from vault_pipeline.storage.catalog import AccessEntry
from vault_pipeline_tests.storage.test_catalog_access_summary import generated

READER_KEY = "reader-key-0123456789abcdef"
INGEST_KEY = "ingest-key-fedcba9876543210"
WRONG_KEY = "not-a-key-but-a-guess-42424242"


class _NoRuns(Runner):
    def launch(self, **_):
        raise AssertionError("no jobs in this test")

    def runs_for_job(self, job_id):
        return []


def test_endpoints_name_their_identifiers():
    assert endpoint_of("/v1/logs/log_" + "0" * 32 + "/raw") == "/v1/logs/{log_id}/raw"
    assert endpoint_of("/v1/jobs/6f1c2a34-1b2c-4d5e-8f90-0123456789ab") == "/v1/jobs/{job_id}"
    assert endpoint_of("/v1/promotions/prm_" + "1" * 24) == "/v1/promotions/{promotion_id}"
    assert endpoint_of("/api/v1/analytics/metrics") == "/api/v1/analytics/metrics"


def test_the_summary_of_generated_entries_equals_a_count_by_hand(catalog):
    entries = generated(300, seed=7)
    catalog.log_access(entries)
    summary = access_summary(catalog, "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z")
    inside = [e for e in entries if e.at < "2026-01-03"]
    assert summary["total"] == len(inside)
    by_key = {row["principal"]: row["requests"] for row in summary["by_principal"]}
    assert by_key == {p: sum(e.principal == p for e in inside) for p in {e.principal for e in inside}}
    raw = {row["endpoint"]: row["requests"] for row in summary["by_endpoint"] if row["method"] == "GET"}
    assert raw["/v1/logs/{log_id}/raw"] == sum(e.path.endswith("/raw") for e in inside)
    assert sum(row["requests"] for row in summary["by_status"]) == len(inside)
    failed = [e for e in inside if e.status in (401, 403)]
    assert summary["failed_authentications_total"] == len(failed) == len(summary["failed_authentications"])
    assert summary["failed_authentications"][0]["at"] == min(e.at for e in failed)
    capped = access_summary(catalog, "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z", max_failures=2)
    assert len(capped["failed_authentications"]) == 2 and capped["failed_authentications_truncated"]


def test_failed_authentications_of_the_real_api_are_listed_without_any_key(vault):
    vault.write_providers({"qa": {"type": "simulator", "kind": "test_result"}})
    catalog = vault.catalog
    api = VaultApi(catalog=catalog, store=vault.store, jobs=JobService(_NoRuns()),
                   keys=parse_api_keys(f"reader:{READER_KEY}:read,loader:{INGEST_KEY}:ingest"),
                   config=lambda: load_config(vault.config_path))
    client = TestClient(create_app(api))
    started = datetime.now(UTC) - timedelta(seconds=1)
    assert client.get("/v1/logs", headers={"X-API-Key": READER_KEY}).status_code == 200
    assert client.get(f"/v1/logs?api_key={READER_KEY}").status_code == 401  # a key in the query is no key
    assert client.get("/v1/logs", headers={"X-API-Key": WRONG_KEY}).status_code == 401
    assert client.get("/v1/logs/log_" + "0" * 32 + "/raw", headers={"X-API-Key": INGEST_KEY}).status_code == 403
    api.jobs.close()
    summary = access_summary(catalog, started, datetime.now(UTC) + timedelta(seconds=1))
    assert summary["total"] == 4
    assert [(f["principal"], f["status"], f["path"]) for f in summary["failed_authentications"]] == [
        ("anonymous", 401, "/v1/logs"), ("anonymous", 401, "/v1/logs"),
        ("loader", 403, "/v1/logs/log_" + "0" * 32 + "/raw")]
    assert all(f["client"] for f in summary["failed_authentications"])
    assert {row["status"]: row["requests"] for row in summary["by_status"]} == {200: 1, 401: 2, 403: 1}
    text = repr(summary) + repr(catalog.list_access(limit=100))
    stored = b"".join(p.read_bytes() for p in vault.home.rglob("catalog.db*"))
    for key in (READER_KEY, INGEST_KEY, WRONG_KEY):
        assert key not in text and key.encode() not in stored
    assert isinstance(catalog.list_access(limit=1)[0], AccessEntry)
