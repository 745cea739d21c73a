"""The integrity snapshot diff names each kind of damage done after a partition was ingested.

A clean partition, then one change at a time to what landing recorded: a byte of a stored
page, a catalog entry deleted, planted, moved, given other bytes or held by another hour, a
lake row deleted. Each must come
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


def test_pages_altered_and_deleted_are_each_named_in_landing_order(ingested) -> None:
    # The pages are re-hashed on several threads; the findings still come in landing's order.
    objects = LandedPartition(ingested.store, PROVIDER, HourWindow.for_hour_key(HOUR)).objects
    assert len(objects) >= 3
    altered, deleted = objects[-1], objects[0]
    path = ingested.home / "objects" / altered.key
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes() + b" ")
    os.chmod(ingested.home / "objects" / deleted.key, 0o644)
    os.remove(ingested.home / "objects" / deleted.key)
    report = _diff(ingested)
    pages = [f for f in report.findings if f["type"] in ("changed_object", "missing_object")]
    assert pages == [{"type": "missing_object", "key": deleted.key},
                     {"type": "changed_object", "key": altered.key, "expected": altered.checksum,
                      "found": pages[1]["found"]}]
    assert pages[1]["found"] != altered.checksum and not report.clean


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


def test_an_altered_catalog_checksum_is_a_checksum_mismatch_naming_both(ingested) -> None:
    record = _second_record(ingested)
    _catalog_sql(ingested, "UPDATE records SET checksum = ? WHERE log_id = ?", "sha256:" + "0" * 64, record.log_id)
    report = _diff(ingested)
    assert _kinds(report) == {"catalog_checksum_mismatch": 1}
    assert report.findings == [{"type": "catalog_checksum_mismatch", "log_id": record.log_id,
                                "expected": record.checksum, "found": "sha256:" + "0" * 64}]


def test_a_catalog_entry_nothing_landed_is_orphaned_and_miscounts_the_partition(ingested) -> None:
    record = _second_record(ingested)
    _catalog_sql(ingested, "INSERT INTO records SELECT 'log_zz_planted', provider, partition, natural_id, object_key, "
                 '"offset", length, checksum, timestamp, run_id, status, ingested_at FROM records WHERE log_id = ?',
                 record.log_id)
    report = _diff(ingested)
    assert _kinds(report) == {"orphaned_in_catalog": 1, "count_mismatch": 1}
    assert {"type": "orphaned_in_catalog", "log_id": "log_zz_planted"} in report.findings


@pytest.mark.parametrize("held_by", ["2026-01-01-08:00", "2026-01-03-00:00"], ids=["overlapping_hour", "far_hour"])
def test_a_record_another_partition_indexed_first_is_matched_and_other_bytes_are_a_revision_conflict(
    ingested, held_by
) -> None:
    """With a one-hour lookback the next hour's fetch overlaps this one and may index its records
    first; a record indexed far away (a late re-delivery) is found by its log_id. Either way the
    record is held; other bytes there are a revision conflict, a warning that does not fail."""
    window = HourWindow.for_hour_key(HOUR)
    record, other = _second_record(ingested), f"{held_by}|{PROVIDER}"
    _catalog_sql(ingested, "UPDATE records SET partition = ? WHERE log_id = ?", other, record.log_id)

    def diff():
        return diff_partition(store=ingested.store, catalog=ingested.catalog, lake=ingested.lake, kind="test_result",
                              provider=PROVIDER, window=window, fetch_window=window.with_lookback(1), partition=PARTITION)

    report = diff()
    assert report.clean and _kinds(report) == {}
    assert report.counts["catalog_matched"] == report.counts["unique_records"]
    _catalog_sql(ingested, "UPDATE records SET checksum = ? WHERE log_id = ?", "sha256:" + "1" * 64, record.log_id)
    report = diff()
    assert report.clean and _kinds(report) == {"revision_conflict": 1}
    assert report.findings == [{"type": "revision_conflict", "log_id": record.log_id, "indexed_by": other}]


def test_catalog_pages_smaller_than_the_hour_find_each_damage_once(ingested, monkeypatch) -> None:
    """The catalog is read 7 entries a page here: damage on several pages is found exactly once each."""
    from vault_pipeline.defs.integrity import snapshot_diff

    monkeypatch.setattr(snapshot_diff, "_CATALOG_PAGE", 7)
    records = sorted(ingested.catalog.iter_partition_records(PARTITION), key=lambda r: r.log_id)
    deleted, altered, moved = records[0], records[150], records[-1]
    _catalog_sql(ingested, "DELETE FROM records WHERE log_id = ?", deleted.log_id)
    _catalog_sql(ingested, "UPDATE records SET checksum = ? WHERE log_id = ?", "sha256:" + "2" * 64, altered.log_id)
    _catalog_sql(ingested, 'UPDATE records SET length = length - 1 WHERE log_id = ?', moved.log_id)
    report = _diff(ingested)
    assert _kinds(report) == {"missing_in_catalog": 1, "catalog_checksum_mismatch": 1, "catalog_pointer_mismatch": 1}
    assert {(f["type"], f["log_id"]) for f in report.findings} == {
        ("missing_in_catalog", deleted.log_id), ("catalog_checksum_mismatch", altered.log_id),
        ("catalog_pointer_mismatch", moved.log_id)}
    assert report.counts["catalog_matched"] == len(records) - 1


def test_a_deleted_lake_row_is_missing_in_lake(ingested) -> None:
    record = _second_record(ingested)
    DeltaTable(ingested.lake.table_uri("test_results")).delete(f"log_id = '{record.log_id}'")
    report = _diff(ingested)
    assert _kinds(report) == {"missing_in_lake": 1}
    assert report.findings == [{"type": "missing_in_lake", "log_id": record.log_id}]


def test_lake_rows_deleted_from_a_big_hour_are_each_counted_and_the_first_named_in_landing_order(
    ingested, monkeypatch
) -> None:
    """Five rows deleted across the hour are five missing, named in landing order, two of them
    (the cap, lowered)."""
    from vault_pipeline.defs.integrity import snapshot_diff

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


def test_records_input_validation_rejected_are_not_expected_in_the_lake(vault) -> None:
    vault.write_providers({PROVIDER: {"type": "simulator", "kind": "test_result", "records_per_hour": 2000, "seed": 5,
                                      "page_size": 500, "invalid_fraction": 0.004, "lookback_hours": 0}})
    assert vault.run(HOUR, PROVIDER).success
    rejected = vault.catalog.count_dead_letters(partition=PARTITION)
    assert rejected > 0
    report = _diff(vault)
    assert report.clean
    assert report.counts["lake_expected"] == report.counts["lake_matched"] == report.counts["unique_records"] - rejected


def test_snapshot_rows_are_taken_chunk_by_chunk_in_the_order_asked() -> None:
    """The catalog check takes each page's rows from the snapshot's batches, each with its own
    dictionary of object keys, and holds checksums as digests: the same rows as one combined
    table would give, including checksums that are not canonical (null, invalid, upper case),
    which come back exactly as landed so the comparison with the catalog still sees them."""
    import numpy as np
    import pyarrow as pa

    from vault_pipeline.defs.integrity.snapshot_diff import _Rows

    def checksum(g: int, i: int) -> str | None:
        canonical = "sha256:" + f"{g:02d}{i:02d}".rjust(64, "a")
        return {(0, 2): None, (2, 4): "sha256:not-hex", (3, 0): canonical.upper(), (2, 6): "md5:" + "0" * 67}.get(
            (g, i), canonical)

    batches = [pa.record_batch({"checksum": pa.array([checksum(g, i) for i in range(size)], pa.string()),
                                "object_key": pa.array([f"raw/{g}/{i % 3}" for i in range(size)]).dictionary_encode(),
                                "offset": pa.array(range(g * 100, g * 100 + size), pa.int64()),
                                "length": pa.array([g + i for i in range(size)], pa.int64())})
               for g, size in enumerate([5, 1, 7, 3])]
    table = pa.Table.from_batches(batches)
    by_row = _Rows.from_batches(iter(batches), table.num_rows)
    assert sorted(by_row.odd) == [2, 10, 12, 13]
    rng = np.random.default_rng(5)
    for rows in (rng.integers(0, table.num_rows, 40), np.array([15, 0, 15, 5, 2, 13]), np.arange(table.num_rows),
                 np.array([], dtype=np.int64)):
        expected = table.combine_chunks().take(pa.array(rows, pa.int64())).to_pylist()
        assert by_row.take(rows).to_pylist() == expected
    assert _Rows.from_batches(iter([]), 0).take(np.array([], dtype=np.int64)).num_rows == 0
