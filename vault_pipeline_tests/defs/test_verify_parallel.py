"""`vault verify` split between processes finds exactly what it finds in one process.

A large partition is cut into slices of its log order verified side by side (this process
plus spawned workers); these tests force that on small vaults (no size threshold, slices cut
at multiples of 4 or 8 records) and compare every finding and every figure of the report with
the single-process run, on a vault tampered in every way the ledger tells apart. Vaults that
worker processes cannot open (S3 with MongoDB; here moto and mongomock) fall back to one
process, as does a slice whose worker fails.
"""

import logging
import os
import sqlite3
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from vault_pipeline.defs.integrity import verification
from vault_pipeline.defs.integrity.verification import _PartitionVerifier, verify_vault
from vault_pipeline.storage.local_store import LocalObjectStore
from vault_pipeline.storage.sqlite_catalog import SqliteCatalog
from vault_pipeline_tests.defs.test_verify import HOURS, PROVIDER
from vault_pipeline_tests.defs.test_verify import _landed_vault as _landed


def _records(harness, hour):
    return list(harness.catalog.iter_partition_records(f"{hour}|{PROVIDER}"))


def _sql(harness, statement, *params):
    with sqlite3.connect(harness.home / "catalog.db") as db:
        db.execute(statement, params)


def _verify(harness, **options):
    report = verify_vault(store=harness.store, catalog=harness.catalog,
                          verifier=harness.resource.ledger_signer().verifier(), **options)
    figures = (report.providers, report.entries, report.partitions, report.objects, report.records, report.bytes_hashed)
    return [f.to_dict() for f in report.findings], figures


def _tamper(harness):
    """One kind of tampering per hour, plus two records only the byte check can catch."""
    first = _records(harness, HOURS[0])
    _sql(harness, "DELETE FROM records WHERE log_id = ?", first[5].log_id)
    # The range runs past the end of its object, the checksum untouched: the root still matches.
    _sql(harness, "UPDATE records SET length = 10000000 WHERE log_id = ?", first[30].log_id)
    second = _records(harness, HOURS[1])
    path = harness.home / "objects" / second[17].object_key
    data = bytearray(path.read_bytes())
    data[second[17].offset + 2] ^= 0x01
    path.write_bytes(bytes(data))
    # Upper-case hex names the same digest (same Merkle leaf) but is not the record's checksum.
    _sql(harness, "UPDATE records SET checksum = 'sha256:' || upper(substr(checksum, 8)) WHERE log_id = ?",
         second[33].log_id)
    (harness.home / "objects" / _records(harness, HOURS[2])[0].object_key).unlink()
    one, other = _records(harness, HOURS[3])[:2]
    for target, source in ((one, other), (other, one)):
        _sql(harness, 'UPDATE records SET checksum = ?, object_key = ?, "offset" = ?, length = ? WHERE log_id = ?',
             source.checksum, source.object_key, source.offset, source.length, target.log_id)
    return first[30].log_id, second[17].log_id, second[33].log_id


@pytest.fixture
def tampered(prebuilt):
    harness = prebuilt(_landed)
    return harness, _tamper(harness)


def test_the_partition_is_cut_into_aligned_slices(tampered):
    harness, _ = tampered
    partition = f"{HOURS[1]}|{PROVIDER}"
    with _PartitionVerifier(harness.store, harness.catalog, 3, 0, 4) as verifier:
        assert verifier._slices(partition) == [(0, 12), (12, 28), (28, None)]
    with _PartitionVerifier(harness.store, harness.catalog, 2, 1000, 4) as verifier:
        assert verifier._slices(partition) == [(0, None)]  # below the threshold: one process
    with _PartitionVerifier(harness.store, harness.catalog, 1, 0, 4) as verifier:
        assert verifier._slices(partition) == [(0, None)]


@pytest.mark.parametrize(("workers", "alignment"), [(2, 8), (3, 4)])
def test_slices_in_worker_processes_find_exactly_what_one_process_finds(tampered, workers, alignment, caplog):
    harness, (overlong, edited, shouted) = tampered
    alone = _verify(harness, workers=1)
    findings, _ = alone
    assert sorted({f["type"] for f in findings}) == [
        "object_altered", "object_missing", "record_bytes_altered", "record_deleted", "records_reordered"]
    altered = [f["detail"] for f in findings if f["type"] == "record_bytes_altered"]
    assert [sum(log_id in detail for detail in altered) for log_id in (overlong, edited, shouted)] == [1, 1, 1]
    with caplog.at_level(logging.WARNING, logger=verification.__name__):
        assert _verify(harness, workers=workers, parallel_min_records=0, slice_alignment=alignment) == alone
    assert not caplog.records  # the workers did their slices: nothing fell back to this process


def test_a_failing_worker_leaves_its_slice_to_this_process(tampered, monkeypatch, caplog):
    harness, _ = tampered
    alone = _verify(harness, workers=1)
    # Workers told to open a vault that cannot exist fail; their slices are redone here.
    openers = (partial(LocalObjectStore, "/dev/null/objects"), partial(SqliteCatalog, "/dev/null/catalog.db"))
    monkeypatch.setattr(verification, "_shareable", lambda store, catalog: openers)
    with caplog.at_level(logging.WARNING, logger=verification.__name__):
        assert _verify(harness, workers=2, parallel_min_records=0, slice_alignment=8) == alone
    assert len(caplog.records) == len(HOURS) and "in-process" in caplog.records[0].getMessage()


def test_a_vault_workers_cannot_open_is_verified_in_one_process(vault_on_s3):
    harness = _landed(vault_on_s3)
    assert verification._shareable(harness.store, harness.catalog) is None
    record = _records(harness, HOURS[2])[3]
    data = bytearray(harness.store.get(record.object_key))
    data[record.offset + 1] ^= 0x20
    harness.store.client.put_object(Bucket=harness.store.bucket, Key=record.object_key, Body=bytes(data))
    alone = _verify(harness, workers=1)
    assert {f["type"] for f in alone[0]} == {"object_altered", "record_bytes_altered"}
    assert _verify(harness, workers=2, parallel_min_records=0, slice_alignment=4) == alone


def test_vault_verify_workers_option(vault, tmp_path):
    harness = _landed(vault)
    env = {**os.environ, "VAULT_HOME": str(harness.home), "VAULT_CONFIG": str(harness.config_path), "VAULT_ENV": "local"}
    cli = str(Path(sys.executable).with_name("vault"))
    run = subprocess.run([cli, "verify", "--workers", "2"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("OK"), run.stdout + run.stderr
    refused = subprocess.run([cli, "verify", "--workers", "0"], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
