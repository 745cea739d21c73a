"""Which landed rows normalisation loads: valid, timed, and the first copy of each log_id."""

from __future__ import annotations

import pyarrow as pa

from vault_pipeline.defs.analytics.normalisation import _rows_to_load

LOG_IDS = ["a", "b", "a", "c", "d", "e", "e", "f"]
TIMESTAMPS = [
    "2026-01-01T00:10:00.000000Z", "2026-01-01T00:20:00.000000Z", "2026-01-01T00:10:00.000000Z",
    None, "2025-12-31T23:59:00.000000Z", None, "2026-01-01T00:30:00.000000Z", "2026-01-01T00:40:00.000000Z",
]


def _batches(size: int) -> list[pa.RecordBatch]:
    table = pa.table({"log_id": LOG_IDS, "timestamp": pa.array(TIMESTAMPS, pa.string())})
    return table.to_batches(max_chunksize=size)


def test_rows_to_load_keeps_first_valid_timed_copy_and_names_its_partitions() -> None:
    asked: list[list[str]] = []

    def dead_lettered(log_ids: list[str]) -> set[str]:
        asked.append(log_ids)
        return {"f"} & set(log_ids)

    for size in (8, 3, 1):  # one batch, copies across batches, a row per batch
        asked.clear()
        choice = _rows_to_load(_batches(size), len(LOG_IDS), dead_lettered)
        # a: first copy only; c: no time; e: its untimed copy is skipped, its timed copy loads; f: dead letter
        assert choice.keep.tolist() == [True, True, False, False, True, False, True, False], size
        assert choice.partitions == [("2025-12-31", "23"), ("2026-01-01", "00")]
        assert choice.skipped == 3 and choice.rejected == {"f"}
        assert [log_id for batch in asked for log_id in batch] == LOG_IDS  # every row asked about once


def test_a_rejected_first_copy_leaves_no_later_copy_loaded_and_its_hour_undeclared() -> None:
    table = pa.table({"log_id": ["x", "y", "x"], "timestamp": ["2026-01-01T05:00:00Z", "2026-01-01T06:00:00Z",
                                                              "2026-01-01T07:00:00Z"]})
    choice = _rows_to_load(table.to_batches(max_chunksize=2), 3, lambda ids: {"x"} & set(ids))
    assert choice.keep.tolist() == [False, True, False]
    assert choice.partitions == [("2026-01-01", "06")] and choice.skipped == 2


def test_rows_to_load_of_an_empty_snapshot() -> None:
    empty = pa.table({"log_id": pa.array([], pa.string()), "timestamp": pa.array([], pa.string())})
    choice = _rows_to_load(empty.to_batches(), 0, lambda ids: set())
    assert choice.keep.tolist() == [] and choice.partitions == [] and choice.skipped == 0 and choice.rejected == set()
