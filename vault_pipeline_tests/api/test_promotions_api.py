"""`/v1/promotions` and `/v1/quarantine`: admin-only requests, tracking, approvals that stay audited."""

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from vault_pipeline.api.app import VaultApi, create_app
from vault_pipeline.api.auth import parse_api_keys
from vault_pipeline.api.jobs import JobService
from vault_pipeline.api.promotions import PromotionService
from vault_pipeline.api.runs import Runner
from vault_pipeline.core.ledger import KIND_PROMOTION_DECISION, LedgerEntry
from vault_pipeline.defs.promotion.masking import masking_settings
from vault_pipeline.defs.promotion.promotion import iter_manifest_rows
from vault_pipeline.providers.config import load_config

ADMIN, READER, AUDITOR = "admin-key-0123456789abcdef", "reader-key-0123456789abcdef", "auditor-key-0123456789abcdef"
HOUR = "2026-01-01-05:00"
PARTITION = f"{HOUR}|qa"
PREFIX = "golden/test_result/qa/2026-01-01/05/"


class _NoRuns(Runner):
    def launch(self, **_):
        raise AssertionError("no ingestion jobs in this test")

    def runs_for_job(self, job_id):
        return []


def _headers(key):
    return {"X-API-Key": key}


@pytest.fixture
def api(vault):
    vault.write_providers({"qa": {"type": "simulator", "kind": "test_result", "records_per_hour": 30, "seed": 3,
                                  "lookback_hours": 0, "invalid_fraction": 0.1}}, input_pass_rate=0.5)
    # The graph promotes once (as "dagster"); the API's requests then re-promote under their own names.
    assert vault.run(HOUR, "qa").success
    catalog, store = vault.catalog, vault.store
    promotions = PromotionService(
        catalog=catalog, store=store, signer=vault.resource.ledger_signer, config=lambda: load_config(vault.config_path),
        masking=lambda config: masking_settings(config.policies, Path(vault.home)),
    )
    app_api = VaultApi(catalog=catalog, store=store, jobs=JobService(_NoRuns()),
                       keys=parse_api_keys(f"root:{ADMIN}:admin,reader:{READER}:read,auditor:{AUDITOR}:audit"),
                       config=lambda: load_config(vault.config_path), promotions=promotions)
    client = TestClient(create_app(app_api))
    yield client, vault, promotions
    promotions.close()
    app_api.jobs.close()


def _wait(client, promotion_id, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/v1/promotions/{promotion_id}", headers=_headers(ADMIN)).json()
        if body["state"] in ("completed", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"promotion {promotion_id} did not finish: {body}")


def test_only_admins_request_promotions_and_the_tracking_id_reports_the_outcome(api):
    client, vault, _service = api
    body = {"scope": "partition", "partition": PARTITION, "tier": "gold"}
    assert client.post("/v1/promotions", json=body).status_code == 401
    for key in (READER, AUDITOR):
        denied = client.post("/v1/promotions", json=body, headers=_headers(key))
        assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
    accepted = client.post("/v1/promotions", json=body, headers=_headers(ADMIN))
    assert accepted.status_code == 202 and accepted.json()["status"] == "queued"
    promotion_id = accepted.json()["promotion_id"]
    status = _wait(client, promotion_id)
    assert status["state"] == "completed" and status["requested_by"] == "root"
    assert status["golden_prefixes"] == ["golden/test_result/qa/2026-01-01/05/"]
    assert sum(status["counts"].values()) == vault.catalog.count_records(partition=PARTITION)
    assert status["counts"]["quarantined"] > 0  # the simulator's invalid records: failed input validation
    assert client.get(f"/v1/promotions/{promotion_id}", headers=_headers(READER)).status_code == 200
    assert client.get(f"/v1/promotions/{promotion_id}", headers=_headers(AUDITOR)).status_code == 403
    missing = client.get("/v1/promotions/prm_" + "0" * 24, headers=_headers(ADMIN))
    assert missing.status_code == 404 and missing.json()["error"] == "promotion_not_found"
    manifest = json.loads(vault.store.get("golden/test_result/qa/2026-01-01/05/manifest.json"))
    assert manifest["requested_by"] == "root" and manifest["policy_tier"] == "gold"
    assert manifest["promotion_id"] == promotion_id


@pytest.mark.parametrize("body, status, error", [
    ({"scope": "partition"}, 422, "invalid_request"),
    ({"scope": "partition", "partition": "2026-13-01-05:00|qa"}, 422, "invalid_partition"),
    ({"scope": "partition", "partition": f"{HOUR}|nobody"}, 404, "unknown_provider"),
    ({"scope": "provider", "provider": "nobody"}, 404, "unknown_provider"),
    ({"scope": "log", "log_id": "log_" + "0" * 32}, 404, "log_not_found"),
    ({"scope": "galaxy"}, 422, "invalid_request"),
])
def test_bad_requests_are_refused_before_anything_is_queued(api, body, status, error):
    client, _vault, _service = api
    response = client.post("/v1/promotions", json=body, headers=_headers(ADMIN))
    assert (response.status_code, response.json()["error"]) == (status, error)


def test_provider_and_log_scopes(api):
    client, vault, _service = api
    record = next(vault.catalog.iter_partition_records(PARTITION))
    by_log = client.post("/v1/promotions", json={"scope": "log", "log_id": record.log_id}, headers=_headers(ADMIN))
    status = _wait(client, by_log.json()["promotion_id"])
    assert status["log_id"] == record.log_id and status["log_decision"] in ("clean", "masked", "quarantined")
    by_provider = client.post("/v1/promotions", json={"scope": "provider", "provider": "qa", "since": "2026-01-01T00:00:00Z"},
                              headers=_headers(ADMIN))
    assert by_provider.json()["partitions"] == [PARTITION]
    assert _wait(client, by_provider.json()["promotion_id"])["state"] == "completed"


def test_quarantined_records_are_listed_and_an_approval_is_audited_and_promotes_verified_bytes(api):
    client, vault, _service = api
    assert _wait(client, client.post("/v1/promotions", json={"scope": "partition", "partition": PARTITION},
                                     headers=_headers(ADMIN)).json()["promotion_id"])["state"] == "completed"
    assert client.get("/v1/quarantine", headers=_headers(READER)).status_code == 403
    listed = client.get("/v1/quarantine", params={"provider_id": "qa"}, headers=_headers(AUDITOR))
    assert listed.status_code == 200
    items = listed.json()["data"]
    assert items and all(i["reason"] == "failed_input_validation" and i["status"] == "quarantined" for i in items)
    log_id = items[0]["log_id"]

    assert client.post(f"/v1/quarantine/{log_id}/approve", json={"reason_code": "false_positive"},
                       headers=_headers(AUDITOR)).status_code == 403
    assert client.post(f"/v1/quarantine/{log_id}/approve", json={}, headers=_headers(ADMIN)).status_code == 422
    approved = client.post(f"/v1/quarantine/{log_id}/approve", json={"reason_code": "false_positive", "note": "vendor fix"},
                           headers=_headers(ADMIN))
    assert approved.status_code == 200, approved.json()
    assert approved.json()["outcome"] == "promoted" and approved.json()["approved_by"] == "root"
    item = vault.catalog.get_quarantine(log_id)
    assert (item["status"], item["approved_by"], item["reason_code"]) == ("released", "root", "false_positive")
    row = next(r for r in iter_manifest_rows(vault.store, PREFIX) if r["log_id"] == log_id)
    assert row["decision"] in ("clean", "masked") and row["approval"]["reason_code"] == "false_positive"
    decisions = [LedgerEntry.from_json(t) for _, t in vault.catalog.ledger_entries("qa")]
    audit = [e for e in decisions if e.kind == KIND_PROMOTION_DECISION][-1]
    assert audit.body["action"] == "quarantine_approval"
    assert audit.body["approval"]["log_id"] == log_id and audit.body["approval"]["approved_by"] == "root"
    missing = client.post("/v1/quarantine/log_" + "0" * 32 + "/approve", json={"reason_code": "x"},
                          headers=_headers(ADMIN))
    assert missing.status_code == 404


def test_an_approval_never_lets_altered_bytes_into_golden(api):
    client, vault, _service = api
    victim = next(r for r in vault.catalog.iter_partition_records(PARTITION) if r.status == "valid")
    path = vault.home / "objects" / victim.object_key
    data = bytearray(path.read_bytes())
    data[victim.offset + 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert _wait(client, client.post("/v1/promotions", json={"scope": "partition", "partition": PARTITION},
                                     headers=_headers(ADMIN)).json()["promotion_id"])["state"] == "completed"
    refused = client.post(f"/v1/quarantine/{victim.log_id}/approve", json={"reason_code": "trust_me"},
                          headers=_headers(ADMIN))
    assert refused.status_code == 409 and refused.json()["error"] == "verification_failed"
    assert refused.json()["detail"]["reason"] == "checksum_mismatch"
    item = vault.catalog.get_quarantine(victim.log_id)
    assert item["status"] == "approved" and item["approved_by"] == "root"  # the attempt stays on record
    assert next(r for r in iter_manifest_rows(vault.store, PREFIX) if r["log_id"] == victim.log_id)["golden"] is None
    last = LedgerEntry.from_json(list(vault.catalog.ledger_entries("qa"))[-1][1])
    assert last.body["action"] == "quarantine_approval" and last.body["approval"]["reason_code"] == "trust_me"
