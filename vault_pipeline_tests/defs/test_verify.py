"""Tampering with a vault is detected by `vault verify`, each change by its exact finding."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from vault_pipeline.defs.integrity.ledger_stage import checkpoint_key, entry_key
from vault_pipeline.defs.integrity.verification import verify_vault

HOURS = ["2026-01-01-05:00", "2026-01-01-06:00", "2026-01-01-07:00", "2026-01-01-08:00"]
PROVIDER = "tamper"
# Each hour appends a partition entry and, once promoted, a promotion_decision entry.
NEWEST = 2 * len(HOURS)


def _landed_vault(harness):
    harness.write_providers({PROVIDER: {"type": "simulator", "kind": "test_result", "records_per_hour": 40, "seed": 4,
                                        "lookback_hours": 0, "invalid_fraction": 0, "page_size": 15}})
    for hour in HOURS:
        assert harness.run(hour, PROVIDER).success
    return harness


def _verify(harness):
    return verify_vault(store=harness.store, catalog=harness.catalog, verifier=harness.resource.ledger_signer().verifier())


def _types(report):
    return sorted({finding.type for finding in report.findings})


def _partition(hour):
    return f"{hour}|{PROVIDER}"


@pytest.fixture
def landed(prebuilt):
    return prebuilt(_landed_vault)


def _sql(harness, statement, *params):
    with sqlite3.connect(harness.home / "catalog.db") as db:
        return db.execute(statement, params).fetchall()


def test_an_untouched_vault_verifies_clean(landed):
    report = _verify(landed)
    assert report.clean, [f.to_dict() for f in report.findings]
    assert (report.providers, report.entries, report.partitions) == (1, NEWEST, 4)
    assert report.records == sum(landed.catalog.count_records(partition=_partition(h)) for h in HOURS)


def test_an_edited_byte_is_found(landed):
    record = next(landed.catalog.iter_partition_records(_partition(HOURS[1])))
    path = landed.home / "objects" / record.object_key
    data = bytearray(path.read_bytes())
    data[record.offset + 2] ^= 0x01
    path.write_bytes(bytes(data))
    report = _verify(landed)
    assert _types(report) == ["object_altered", "record_bytes_altered"]
    assert all(f.partition == _partition(HOURS[1]) for f in report.findings)
    assert any(record.log_id in f.detail for f in report.findings)


def test_a_deleted_object_is_found(landed):
    record = next(landed.catalog.iter_partition_records(_partition(HOURS[2])))
    (landed.home / "objects" / record.object_key).unlink()
    assert _types(_verify(landed)) == ["object_missing"]


def test_a_deleted_catalog_row_is_found(landed):
    record = next(landed.catalog.iter_partition_records(_partition(HOURS[0])))
    _sql(landed, "DELETE FROM records WHERE log_id = ?", record.log_id)
    assert _types(_verify(landed)) == ["record_deleted"]


def test_a_catalog_checksum_that_is_not_a_digest_is_a_finding_not_a_crash(landed):
    record = next(landed.catalog.iter_partition_records(_partition(HOURS[0])))
    _sql(landed, "UPDATE records SET checksum = 'rewritten by hand' WHERE log_id = ?", record.log_id)
    report = _verify(landed)
    assert _types(report) == ["record_altered", "record_bytes_altered"]
    assert any(f.type == "record_bytes_altered" and record.log_id in f.detail for f in report.findings)


def test_an_injected_record_is_found(landed):
    record = next(landed.catalog.iter_partition_records(_partition(HOURS[0])))
    _sql(landed, "INSERT INTO records (log_id, provider, partition, natural_id, object_key, \"offset\", length, checksum,"
                 " timestamp, run_id, status, ingested_at) SELECT 'log_' || 'f' || substr(log_id, 6), provider, partition,"
                 " natural_id || 'x', object_key, \"offset\", length, checksum, timestamp, run_id, status, ingested_at"
                 " FROM records WHERE log_id = ?", record.log_id)
    assert _types(_verify(landed)) == ["record_inserted"]


def test_swapped_records_are_found_as_a_reorder(landed):
    first, second = list(landed.catalog.iter_partition_records(_partition(HOURS[3])))[:2]
    for target, source in ((first, second), (second, first)):
        _sql(landed, 'UPDATE records SET checksum = ?, object_key = ?, "offset" = ?, length = ? WHERE log_id = ?',
             source.checksum, source.object_key, source.offset, source.length, target.log_id)
    assert _types(_verify(landed)) == ["records_reordered"]


def _delete_entries(harness, *sequences):
    for sequence in sequences:
        _sql(harness, "DELETE FROM ledger WHERE provider = ? AND sequence = ?", PROVIDER, sequence)
        (harness.home / "objects" / entry_key(PROVIDER, sequence)).unlink()


def test_a_deleted_middle_ledger_entry_is_found(landed):
    _delete_entries(landed, 2)
    report = _verify(landed)
    assert "entry_missing" in _types(report)
    assert {f.sequence for f in report.findings if f.type == "entry_missing"} == {2}


def test_two_consecutive_deleted_ledger_entries_are_found(landed):
    _delete_entries(landed, 2, 3)
    report = _verify(landed)
    assert {f.sequence for f in report.findings if f.type == "entry_missing"} == {2, 3}


def test_the_newest_deleted_ledger_entry_is_found_through_the_checkpoint(landed):
    _delete_entries(landed, NEWEST)
    assert "ledger_truncated" in _types(_verify(landed))


def test_a_rewritten_catalog_ledger_row_is_found(landed):
    text = _sql(landed, "SELECT entry FROM ledger WHERE provider = ? AND sequence = 2", PROVIDER)[0][0]
    forged = json.loads(text)
    forged["record_count"] += 1
    _sql(landed, "UPDATE ledger SET entry = ? WHERE provider = ? AND sequence = 2", json.dumps(forged), PROVIDER)
    types = _types(_verify(landed))
    assert "signature_invalid" in types and "ledger_object_mismatch" in types


def test_tampering_on_s3_and_mongodb_is_found(vault_on_s3):
    harness = _landed_vault(vault_on_s3)
    assert _verify(harness).clean
    store = harness.store
    record = next(harness.catalog.iter_partition_records(_partition(HOURS[1])))
    data = bytearray(store.get(record.object_key))
    data[record.offset + 1] ^= 0x20
    store.client.put_object(Bucket=store.bucket, Key=record.object_key, Body=bytes(data))
    store.client.delete_object(Bucket=store.bucket, Key=checkpoint_key(PROVIDER))
    harness.catalog.ledger.delete_one({"provider": PROVIDER, "sequence": NEWEST})
    harness.catalog.ledger_checkpoints.delete_many({})
    types = _types(_verify(harness))
    assert {"object_altered", "record_bytes_altered", "checkpoint_missing"} <= set(types)


def test_vault_verify_exit_codes(landed, tmp_path):
    env = {**os.environ, "VAULT_HOME": str(landed.home), "VAULT_CONFIG": str(landed.config_path), "VAULT_ENV": "local"}
    vault = str(Path(sys.executable).with_name("vault"))
    clean = subprocess.run([vault, "verify"], env=env, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.startswith("OK")
    usage = subprocess.run([vault, "verify", "--since", "yesterday-ish"], env=env, capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2
    _delete_entries(landed, NEWEST)
    found = subprocess.run([vault, "verify", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert found.returncode == 1
    assert "ledger_truncated" in {f["type"] for f in json.loads(found.stdout)["findings"]}
