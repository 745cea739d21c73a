"""The integrity snapshot diff names each kind of damage done after a partition was ingested.

A clean partition, then one change at a time to what landing recorded: a byte of a stored
page, a catalog entry deleted, a catalog pointer moved, a lake row deleted. Each must come
out as its own finding naming the record, on the real local store, SQLite catalog and Delta.
"""

from __future__ import annotations

import os
import sqlite3

import pytest
from deltalake import DeltaTable

from vault_pipeline.core.windows import HourWindow
from vault_pipeline.defs.ingestion.landed import LandedPartition
from vault_pipeline.defs.integrity.snapshot_diff import diff_partition

HOUR = "2026-01-01-07:00"
PROVIDER = "sim_tests"
PARTITION = f"{HOUR}|{PROVIDER}"


@pytest.fixture
def ingested(vault):
    vault.write_providers({PROVIDER: {"type": "simulator", "kind": "test_result", "records_per_hour": 300, "seed": 2,
                                      "page_size": 100, "invalid_fraction": 0.0, "lookback_hours": 0}})
    assert vault.run(HOUR, PROVIDER).success
    return vault


def _diff(vault):
    window = HourWindow.for_hour_key(HOUR)
    return diff_partition(store=vault.store, catalog=vault.catalog, lake=vault.lake, kind="test_result",
                          provider=PROVIDER, window=window, fetch_window=window, partition=PARTITION)


def _kinds(report) -> dict[str, int]:
    return dict(report.finding_counts)


def _catalog_sql(vault, statement: str, *params) -> None:
    with sqlite3.connect(vault.home / "catalog.db") as db:
        db.execute(statement, params)


def _second_record(vault):
    return sorted(vault.catalog.iter_partition_records(PARTITION), key=lambda r: (r.object_key, r.offset))[1]


def test_an_untouched_partition_is_clean_and_fully_matched(ingested) -> None:
    report = _diff(ingested)
    assert report.clean and _kinds(report) == {}
    assert report.counts["catalog_matched"] == report.counts["unique_records"] == report.counts["landed_records"]
    assert report.counts["lake_matched"] == report.counts["lake_expected"] > 0


def test_one_edited_byte_names_the_page_and_the_record(ingested) -> None:
    record = _second_record(ingested)
    path = ingested.home / "objects" / record.object_key
    os.chmod(path, 0o644)  # landed pages are kept read-only
    data = bytearray(path.read_bytes())
    position = record.offset + record.length // 2
    data[position] = ord("X") if data[position] != ord("X") else ord("Y")
    path.write_bytes(bytes(data))
    report = _diff(ingested)
    assert not report.clean
    assert _kinds(report) == {"changed_object": 1, "changed_record": 1}
    assert {"type": "changed_record", "log_id": record.log_id, "key": record.object_key} in report.findings


def test_a_deleted_catalog_entry_is_missing_in_catalog(ingested) -> None:
    record = _second_record(ingested)
    _catalog_sql(ingested, "DELETE FROM records WHERE log_id = ?", record.log_id)
    report = _diff(ingested)
    assert _kinds(report) == {"missing_in_catalog": 1}
    assert report.findings == [{"type": "missing_in_catalog", "log_id": record.log_id}]


def test_a_moved_catalog_pointer_is_a_pointer_mismatch(ingested) -> None:
    record = _second_record(ingested)
    _catalog_sql(ingested, 'UPDATE records SET "offset" = "offset" + 1 WHERE log_id = ?', record.log_id)
    report = _diff(ingested)
    assert _kinds(report) == {"catalog_pointer_mismatch": 1}
    assert report.findings[0]["log_id"] == record.log_id


@pytest.mark.parametrize("slice_keys", [1_250_000, 40], ids=["one_read", "read_in_slices"])
def test_a_deleted_lake_row_is_missing_in_lake(ingested, slice_keys, monkeypatch) -> None:
    """Also when the lake's keys are read a slice at a time (a big hour): 300 keys, 40 a slice."""
    from vault_pipeline.defs.integrity import snapshot_diff

    monkeypatch.setattr(snapshot_diff, "_LAKE_SLICE_KEYS", slice_keys)
    record = _second_record(ingested)
    DeltaTable(ingested.lake.table_uri("test_results")).delete(f"log_id = '{record.log_id}'")
    report = _diff(ingested)
    assert _kinds(report) == {"missing_in_lake": 1}
    assert report.findings == [{"type": "missing_in_lake", "log_id": record.log_id}]


def test_lake_rows_deleted_across_probe_slices_are_each_counted_and_the_first_named(ingested, monkeypatch) -> None:
    """The hour's keys are checked against the lake's 70 at a time here: five rows deleted in
    different slices are five missing, in landing order, two of them named (the cap, lowered)."""
    from vault_pipeline.defs.integrity import snapshot_diff

    monkeypatch.setattr(snapshot_diff, "_PROBE_KEYS", 70)
    monkeypatch.setattr(snapshot_diff, "_LAKE_SLICE_KEYS", 100)
    monkeypatch.setattr(snapshot_diff, "_MISSING_LISTED", 2)
    records = list(ingested.catalog.iter_partition_records(PARTITION))
    gone = [records[i] for i in (3, 71, 150, 222, len(records) - 1)]
    table = DeltaTable(ingested.lake.table_uri("test_results"))
    table.delete("log_id IN (" + ", ".join(f"'{r.log_id}'" for r in gone) + ")")
    report = _diff(ingested)
    assert _kinds(report) == {"missing_in_lake": 5}
    assert report.counts["lake_expected"] == len(records) > 250
    assert report.counts["lake_matched"] == len(records) - 5
    landed = LandedPartition(ingested.store, PROVIDER, HourWindow.for_hour_key(HOUR)).snapshot_table(["log_id"])
    in_landing_order = [log_id for log_id in landed["log_id"].to_pylist() if log_id in {r.log_id for r in gone}]
    assert report.findings == [{"type": "missing_in_lake", "log_id": log_id} for log_id in in_landing_order[:2]]
