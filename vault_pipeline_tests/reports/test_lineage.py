"""Data lineage re-proved at report time: a real record of a real hourly run is ok at every
step, and each kind of tampering shows as a problem of exactly the step it touches."""

from __future__ import annotations

import sqlite3

import pytest
from deltalake import DeltaTable

from vault_pipeline.reports.lineage import STEPS, sample_records, sealed_partitions, trace_record, trace_records

HOUR = "2026-01-01-05:00"
PARTITION = f"{HOUR}|lin"


@pytest.fixture
def landed(vault):
    vault.write_providers({"lin": {"type": "simulator", "kind": "test_result", "records_per_hour": 30, "seed": 5,
                                   "lookback_hours": 0, "invalid_fraction": 0, "page_size": 10}})
    assert vault.run(HOUR, "lin").success
    return vault


def _trace(vault, log_id):
    return trace_record(catalog=vault.catalog, store=vault.store, lake=vault.lake,
                        verifier=vault.resource.ledger_signer().verifier(), log_id=log_id)


def _problems(trace):
    return {step["step"]: step["reason"] for step in trace["steps"] if step["status"] == "problem"}


def _records(vault):
    return list(vault.catalog.iter_partition_records(PARTITION))


def test_every_step_of_a_real_record_is_ok(landed):
    record = _records(landed)[7]
    trace = _trace(landed, record.log_id)
    assert trace["ok"], _problems(trace)
    steps = {step["step"]: step for step in trace["steps"]}
    assert list(steps) == list(STEPS)
    assert steps["raw_object"]["key"] == record.object_key
    assert steps["raw_object"]["record_checksum"] == record.checksum
    assert steps["raw_object"]["object_checksum"] == steps["raw_object"]["committed_checksum"]
    assert steps["catalog_entry"]["partition"] == PARTITION and steps["catalog_entry"]["record_status"] == "valid"
    assert steps["delta_row"]["table"] == "test_results" and steps["delta_row"]["rows"] == 1
    assert steps["delta_row"]["version"] == landed.lake.version("test_results")
    assert steps["golden_copy"]["decision"] in ("clean", "masked") and steps["golden_copy"]["golden_key"]
    assert steps["ledger_entry"]["proof_verified"] and steps["ledger_entry"]["signature_verified"]
    assert steps["ledger_entry"]["sequence"] == 1 and len(steps["ledger_entry"]["entry_hash"]) == 64


def test_a_tampered_raw_object_is_a_raw_object_problem(landed):
    record = _records(landed)[3]
    path = landed.home / "objects" / record.object_key
    data = bytearray(path.read_bytes())
    data[record.offset + 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    problems = _problems(_trace(landed, record.log_id))
    assert "raw_object" in problems and "hash to" in problems["raw_object"]
    # the ledger's leaf no longer matches the bytes either; the catalog and lake steps are untouched
    assert "catalog_entry" not in problems and "delta_row" not in problems


def test_a_deleted_delta_row_is_a_delta_row_problem(landed):
    record = _records(landed)[4]
    DeltaTable(landed.lake.table_uri("test_results")).delete(f"log_id = '{record.log_id}'")
    trace = _trace(landed, record.log_id)
    assert set(_problems(trace)) == {"delta_row"}
    assert "no row in test_results" in _problems(trace)["delta_row"]
    # another record of the partition is still whole
    assert _trace(landed, _records(landed)[5].log_id)["ok"]


def test_a_broken_proof_is_a_ledger_entry_problem(landed):
    victim, other = _records(landed)[1], _records(landed)[2]
    with sqlite3.connect(landed.home / "catalog.db") as db:  # a sibling's checksum rewritten: the root no longer holds
        db.execute('UPDATE records SET "checksum" = ? WHERE "log_id" = ?', ("sha256:" + "0" * 64, other.log_id))
    problems = _problems(_trace(landed, victim.log_id))
    assert set(problems) == {"ledger_entry"} and "no valid inclusion proof" in problems["ledger_entry"]


def test_an_unknown_id_is_a_catalog_problem():
    from vault_pipeline.storage.sqlite_catalog import SqliteCatalog

    class _Nowhere:
        def get(self, key):
            raise AssertionError("nothing is read for an unknown id")

    import tempfile

    with tempfile.TemporaryDirectory() as home:
        trace = trace_records(catalog=SqliteCatalog(f"{home}/c.db"), store=_Nowhere(), lake=None, verifier=None,
                              log_ids=["log_" + "f" * 32])[0]
    assert not trace["ok"] and trace["steps"][2]["status"] == "problem"


def test_many_records_of_a_partition_are_traced_with_one_read_of_each_object(landed, monkeypatch):
    records = _records(landed)
    store = landed.store
    reads = []
    original = type(store).get
    monkeypatch.setattr(type(store), "get", lambda self, key: reads.append(key) or original(self, key))
    traces = trace_records(catalog=landed.catalog, store=store, lake=landed.lake,
                           verifier=landed.resource.ledger_signer().verifier(), log_ids=[r.log_id for r in records])
    assert all(t["ok"] for t in traces) and len(traces) == len(records)
    assert len(reads) == len(set(reads))  # every object (raw, golden, manifests) read once


def test_samples_spread_over_the_period_and_repeat_for_a_seed(landed):
    assert landed.run("2026-01-01-06:00", "lin").success
    assert sealed_partitions(landed.catalog, "2026-01-01T05:00Z", "2026-01-01T07:00Z") == [
        (PARTITION, 30), ("2026-01-01-06:00|lin", 30)]
    picked = sample_records(landed.catalog, "2026-01-01T05:00Z", "2026-01-01T07:00Z", 6, seed=11)
    assert picked == sample_records(landed.catalog, "2026-01-01T05:00Z", "2026-01-01T07:00Z", 6, seed=11)
    assert len(set(picked)) == 6
    partitions = [landed.catalog.get_record(log_id).partition for log_id in picked]
    assert partitions.count(PARTITION) == 3
    assert sample_records(landed.catalog, "2026-01-01T05:00Z", "2026-01-01T07:00Z", 6, seed=12) != picked
    assert len(sample_records(landed.catalog, "2026-01-01T05:00Z", "2026-01-01T06:00Z", 500, seed=1)) == 30
    assert sample_records(landed.catalog, "2026-01-02T00:00Z", "2026-01-02T05:00Z", 5, seed=1) == []
