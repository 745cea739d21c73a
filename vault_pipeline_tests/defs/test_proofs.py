"""An inclusion proof from the API verifies with a few lines of hashlib and the public key."""

from fastapi.testclient import TestClient

from vault_pipeline.api.app import VaultApi, create_app
from vault_pipeline.api.auth import parse_api_keys
from vault_pipeline.api.jobs import JobService
from vault_pipeline.api.runs import Runner
from vault_pipeline.providers.config import load_config
from vault_pipeline_tests.fixtures.auditor import independent_verify

KEY = "auditor-key-0123456789abcdef"


class _NoRuns(Runner):
    def launch(self, **_):
        raise AssertionError("no jobs in this test")

    def runs_for_job(self, job_id):
        return []


def test_every_record_of_a_partition_has_a_proof_an_auditor_can_check(vault):
    vault.write_providers({"proved": {"type": "simulator", "kind": "generation_event", "records_per_hour": 37,
                                      "seed": 9, "lookback_hours": 0, "invalid_fraction": 0}})
    assert vault.run("2026-01-01-05:00", "proved").success
    api = VaultApi(catalog=vault.catalog, store=vault.store, jobs=JobService(_NoRuns()),
                   keys=parse_api_keys(f"auditor:{KEY}:audit"), config=lambda: load_config(vault.config_path))
    client = TestClient(create_app(api))
    public_key = (vault.home / "ledger.pub").read_bytes()
    records = list(vault.catalog.iter_partition_records("2026-01-01-05:00|proved"))
    assert len(records) > 30
    for record in records:
        proof = client.get(f"/v1/logs/{record.log_id}/proof", headers={"X-API-Key": KEY})
        assert proof.status_code == 200
        raw = client.get(f"/v1/logs/{record.log_id}/raw", headers={"X-API-Key": KEY}).content
        assert independent_verify(raw, proof.json(), public_key)
        assert not independent_verify(raw + b" ", proof.json(), public_key)
    tampered = proof.json()
    tampered["entry"]["record_count"] += 1
    tampered["tree_size"] += 1
    assert not independent_verify(raw, tampered, public_key)
    assert client.get("/v1/logs/log_" + "0" * 32 + "/proof", headers={"X-API-Key": KEY}).status_code == 404
    api.jobs.close()
