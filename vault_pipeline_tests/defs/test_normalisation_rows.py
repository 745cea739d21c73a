"""Which landed rows normalisation loads: valid, timed, and the first copy of each log_id."""

from __future__ import annotations

import pyarrow as pa

from vault_pipeline.defs.analytics.normalisation import _rows_to_load


def test_rows_to_load_keeps_first_valid_timed_copy_and_names_its_partitions() -> None:
    snapshot = pa.table({
        "log_id": ["a", "b", "a", "c", "d", "e", "e", "f"],
        "timestamp": [
            "2026-01-01T00:10:00.000000Z", "2026-01-01T00:20:00.000000Z", "2026-01-01T00:10:00.000000Z",
            None, "2025-12-31T23:59:00.000000Z", None, "2026-01-01T00:30:00.000000Z", "2026-01-01T00:40:00.000000Z",
        ],
    })
    keep, partitions, skipped = _rows_to_load(snapshot, pa.array(["f"], pa.string()))
    # a: first copy only; c: no time; e: its untimed copy is skipped, its timed copy loads; f: dead letter
    assert keep.tolist() == [True, True, False, False, True, False, True, False]
    assert partitions == [("2025-12-31", "23"), ("2026-01-01", "00")]
    assert skipped == 3


def test_rows_to_load_of_an_empty_snapshot() -> None:
    keep, partitions, skipped = _rows_to_load(
        pa.table({"log_id": pa.array([], pa.string()), "timestamp": pa.array([], pa.string())}), pa.array([], pa.string())
    )
    assert keep.tolist() == [] and partitions == [] and skipped == 0
