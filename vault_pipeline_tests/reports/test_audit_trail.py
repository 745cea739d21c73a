"""The audit trail: configuration and key-ring changes as signed, redacted ledger entries.

Scenarios on a fresh vault each: a change appends exactly one signed entry of the vault chain
and an unchanged configuration none; secrets written into vault.yaml (a URL's userinfo, a key
in a header) never reach any stored byte; `vault verify` checks the vault chain and catches it
being tampered with; the trail lists what changed, with attribution, next to the promotions.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import yaml

from vault_pipeline.api.auth import parse_api_keys
from vault_pipeline.core.ledger import (
    KIND_CONFIG_SNAPSHOT,
    KIND_KEY_RING_SNAPSHOT,
    VAULT_CHAIN,
    LedgerEntry,
    verify_entry_signature,
)
from vault_pipeline.defs.integrity.ledger_stage import entry_key
from vault_pipeline.defs.integrity.verification import verify_vault
from vault_pipeline.defs.reports.config_audit import build_config_audit_sensor
from vault_pipeline.providers.config import PROVIDER_NAME, ConfigError, load_config, parse_config
from vault_pipeline.reports.audit_trail import (
    REDACTED,
    audit_trail,
    config_snapshot,
    record_config,
    record_key_ring,
    redact,
)
from vault_pipeline.storage.catalog import Artifact

URL_PASSWORD = "hunter2-url-password"
HEADER_KEY = "sk-live-9f8e7d6c5b4a39281706"
QUERY_TOKEN = "qtok-5555-abcdef-0123"
API_KEY = "auditor-secret-key-0123456789"
SIMULATOR = {"type": "simulator", "kind": "test_result", "records_per_hour": 20, "seed": 3, "lookback_hours": 0,
             "invalid_fraction": 0}
REST = {"type": "rest", "kind": "audit_event", "url": f"https://svc:{URL_PASSWORD}@audit.example.com/events?token={QUERY_TOKEN}&page=1",
        "headers": {"X-Api-Key": HEADER_KEY, "User-Agent": "vault"},
        "auth": {"type": "bearer", "token_env": "ACME_TOKEN"}}


def _write(vault, providers):
    vault.config_path.write_text(yaml.safe_dump({"providers": providers}))
    return load_config(vault.config_path)


def _record(vault, config, run_id="test"):
    return record_config(store=vault.store, catalog=vault.catalog, signer=vault.resource.ledger_signer(),
                         config=config, run_id=run_id)


def _vault_entries(vault):
    return [LedgerEntry.from_json(text) for _, text in vault.catalog.ledger_entries(VAULT_CHAIN)]


def _stored_bytes(vault) -> bytes:
    """Every byte the vault keeps on disk: objects, catalog (with its WAL), lake."""
    return b"".join(path.read_bytes() for path in sorted(vault.home.rglob("*")) if path.is_file())


def test_vault_chain_name_can_never_be_a_provider():
    assert not PROVIDER_NAME.match(VAULT_CHAIN)
    with pytest.raises(ConfigError):
        parse_config({"providers": {VAULT_CHAIN: SIMULATOR}})


def test_a_change_appends_one_signed_entry_and_an_unchanged_config_none(vault):
    first = _record(vault, _write(vault, {"qa": SIMULATOR}))
    assert first is not None and first.kind == KIND_CONFIG_SNAPSHOT and first.provider == VAULT_CHAIN
    assert verify_entry_signature(first, vault.resource.ledger_signer().verifier())
    assert first.body["fingerprint"].startswith("sha256:") and first.body["previous_fingerprint"] is None
    assert _record(vault, load_config(vault.config_path)) is None  # unchanged: nothing
    assert len(_vault_entries(vault)) == 1

    second = _record(vault, _write(vault, {"qa": {**SIMULATOR, "records_per_hour": 21}}))
    assert second is not None and second.sequence == 2
    assert second.previous_hash == first.entry_hash
    assert second.body["previous_fingerprint"] == first.body["fingerprint"]
    assert vault.store.exists(entry_key(VAULT_CHAIN, 2))
    assert [e.sequence for e in _vault_entries(vault)] == [1, 2]


def test_secrets_put_into_vault_yaml_never_reach_the_ledger(vault):
    config = _write(vault, {"acme": REST, "qa": SIMULATOR})
    entry = _record(vault, config)
    snapshot = entry.body["snapshot"]["providers"]["acme"]
    assert snapshot["auth"]["token_env"] == "ACME_TOKEN"  # env names are what an auditor needs
    assert snapshot["headers"] == {"X-Api-Key": REDACTED, "User-Agent": "vault"}
    assert snapshot["url"].startswith(f"https://{REDACTED}@audit.example.com/events?token=")
    assert "page=1" in snapshot["url"]
    stored = _stored_bytes(vault)
    for secret in (URL_PASSWORD, HEADER_KEY, QUERY_TOKEN):
        assert secret.encode() not in stored, secret


@pytest.mark.parametrize("document, secret", [
    ({"api_key": "sk-abcdef123456"}, "sk-abcdef123456"),
    ({"db": {"password": "p4ss"}}, "p4ss"),
    ({"note": "Bearer abc.def"}, "abc.def"),
    ({"value_env": "not an env name!"}, "not an env name!"),
    ({"endpoints": ["https://u:pw@h/x"]}, "pw"),
    ({"id": "AKIAIOSFODNN7EXAMPLE"}, "AKIAIOSFODNN7EXAMPLE"),
])
def test_credential_shapes_are_masked_wherever_they_appear(document, secret):
    assert secret not in json.dumps(redact(document))


def test_redaction_keeps_what_is_no_secret():
    document = {"token_env": "ACME_TOKEN", "url": "https://api.example.com/v1?since=x", "records_per_hour": 5,
                "auth": {"type": "header", "name": "X-Api-Key", "value_env": "K"}}
    assert redact(document) == document


def test_a_config_change_is_in_the_trail_as_a_diff_with_attribution(vault):
    before = datetime.now(UTC) - timedelta(seconds=1)
    _record(vault, _write(vault, {"qa": SIMULATOR}))
    _record(vault, _write(vault, {"qa": {**SIMULATOR, "seed": 4}, "acme": REST}), run_id="cli:vault run")
    trail = audit_trail(vault.catalog, before, datetime.now(UTC) + timedelta(seconds=1))
    changes = [e for e in trail if e["kind"] == "config_change"]
    assert [e["initial"] for e in changes] == [True, False]
    latest = changes[-1]
    assert latest["actor"] == "configuration file" and latest["run_id"] == "cli:vault run"
    assert latest["changes"]["providers_added"] == ["acme"] and latest["changes"]["providers_removed"] == []
    assert {"path": "providers.qa.seed", "change": "changed", "before": 3, "after": 4} in latest["changes"]["diff"]
    assert latest["ledger"]["provider"] == VAULT_CHAIN and latest["ledger"]["sequence"] == 2
    assert latest["ledger"]["entry_hash"] == _vault_entries(vault)[1].entry_hash
    assert URL_PASSWORD not in json.dumps(trail)
    # a period after the changes holds none of them
    assert not audit_trail(vault.catalog, datetime.now(UTC) + timedelta(hours=1), datetime.now(UTC) + timedelta(hours=2))


def test_the_key_ring_is_recorded_as_names_and_roles_only(vault):
    signer = vault.resource.ledger_signer()
    since = datetime.now(UTC) - timedelta(seconds=1)

    def record(text):
        return record_key_ring(store=vault.store, catalog=vault.catalog, signer=signer, keys=parse_api_keys(text),
                               run_id="cli:vault serve", source="VAULT_API_KEYS")

    first = record(f"alice:{API_KEY}:read,bob:{API_KEY[::-1]}:ingest")
    assert first.kind == KIND_KEY_RING_SNAPSHOT
    assert first.body["snapshot"] == {"keys": [{"name": "alice", "roles": ["read"]}, {"name": "bob", "roles": ["ingest"]}]}
    assert record(f"bob:{API_KEY[::-1]}:ingest,alice:{API_KEY}:read") is None  # same ring, other order
    assert record(f"alice:{API_KEY}:read+audit,carol:{'c' * 20}:admin") is not None
    stored = _stored_bytes(vault)
    assert API_KEY.encode() not in stored and API_KEY[::-1].encode() not in stored
    event = [e for e in audit_trail(vault.catalog, since, datetime.now(UTC) + timedelta(seconds=1))
             if e["kind"] == "key_ring_change"][-1]
    assert event["changes"]["keys_added"] == ["carol"] and event["changes"]["keys_removed"] == ["bob"]
    assert event["changes"]["role_changes"] == [{"name": "alice", "before": [["read"]], "after": [["audit", "read"]]}]
    assert event["actor"] == "VAULT_API_KEYS"


def test_verify_checks_the_vault_chain_and_finds_it_tampered(vault):
    vault.write_providers({"qa": SIMULATOR})
    assert vault.run("2026-01-01-05:00", "qa").success
    _record(vault, load_config(vault.config_path))
    _record(vault, _write(vault, {"qa": {**SIMULATOR, "seed": 9}}))
    verifier = vault.resource.ledger_signer().verifier()
    report = verify_vault(store=vault.store, catalog=vault.catalog, verifier=verifier)
    assert report.clean, [f.to_dict() for f in report.findings]
    assert report.providers == 1  # the vault chain is no provider
    assert report.entries == 2 + 2  # the provider's partition + decision entries, and the vault chain's two

    with sqlite3.connect(vault.home / "catalog.db") as db:  # an edited snapshot in the catalog
        (text,) = db.execute('SELECT "entry" FROM ledger WHERE "provider" = ? AND "sequence" = 1', (VAULT_CHAIN,)).fetchone()
        forged = json.loads(text)
        forged["body"]["snapshot"]["providers"]["qa"]["seed"] = 1
        db.execute('UPDATE ledger SET "entry" = ? WHERE "provider" = ? AND "sequence" = 1', (json.dumps(forged), VAULT_CHAIN))
    found = verify_vault(store=vault.store, catalog=vault.catalog, verifier=verifier).findings
    assert {(f.type, f.provider) for f in found} >= {("signature_invalid", VAULT_CHAIN), ("chain_broken", VAULT_CHAIN),
                                                     ("ledger_object_mismatch", VAULT_CHAIN)}


def test_the_trail_holds_promotions_and_maintenance_runs_in_time_order(vault):
    since = datetime.now(UTC) - timedelta(seconds=1)
    vault.write_providers({"qa": SIMULATOR})
    _record(vault, load_config(vault.config_path))
    assert vault.run("2026-01-01-05:00", "qa").success
    now = datetime.now(UTC)
    vault.catalog.put_artifacts([Artifact("art_m1", "lake_maintenance", "lake", now.strftime("%Y-%m-%d"), "lake/x",
                                          None, None, "run-maint", now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), [],
                                          {"table": "test_results"})])
    trail = audit_trail(vault.catalog, since, datetime.now(UTC) + timedelta(seconds=1))
    kinds = [e["kind"] for e in trail]
    assert kinds == ["config_change", "promotion", "maintenance_run"]
    promotion = trail[1]
    assert promotion["partition"] == "2026-01-01-05:00|qa" and promotion["ledger"]["provider"] == "qa"
    assert promotion["actor"] and promotion["run_id"]
    assert trail[2]["run_id"] == "run-maint" and trail[2]["ledger"] is None


def test_the_sensor_records_a_change_even_when_nothing_runs(vault):
    vault.write_providers({"qa": SIMULATOR})
    sensor = build_config_audit_sensor()
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert vault.definitions().resolve_sensor_def(sensor.name)  # registered with the definitions

    def tick():
        with dg.build_sensor_context(resources={"vault": vault.resource.model_copy()}) as context:
            return sensor(context)

    assert "recorded" in tick().skip_message
    assert "unchanged" in tick().skip_message
    _write(vault, {"qa": {**SIMULATOR, "seed": 5}})
    assert "recorded" in tick().skip_message
    assert [e.run_id for e in _vault_entries(vault)] == ["sensor:vault_config_audit"] * 2


def test_vault_run_records_the_configuration_once(operator):
    from vault_pipeline.storage.sqlite_catalog import SqliteCatalog

    for _ in range(2):
        assert operator("run", "--provider", "qa", "--hour", "2026-01-01T05")[0] == 0
    config = operator.config
    catalog = SqliteCatalog(operator.home / "catalog.db")
    entries = [LedgerEntry.from_json(t) for _, t in catalog.ledger_entries(VAULT_CHAIN)]
    assert [(e.kind, e.run_id) for e in entries] == [(KIND_CONFIG_SNAPSHOT, "cli:vault run")]
    assert entries[0].body["snapshot"] == config_snapshot(load_config(config))
