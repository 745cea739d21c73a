"""Streamed loads (``DeltaLake.merge_batches``): one commit per hour, fed batch by batch.

Normalisation streams a whole hour into one merge instead of materialising it; the merge must
still be idempotent, collapse keys repeated anywhere in the stream, read only the declared
partitions and refuse rows outside them without committing anything.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pytest

from vault_pipeline.storage.lake import DeltaLake, LakeError

SCHEMA = pa.schema([("log_id", pa.string()), ("date", pa.string()), ("hour", pa.string()), ("n", pa.int64())])
HOUR = [("2026-01-01", "00")]


def batch(ids: list[int], *, hour: str = "00", n: int = 0) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"log_id": [f"log-{i:04d}" for i in ids], "date": ["2026-01-01"] * len(ids), "hour": [hour] * len(ids),
         "n": [n] * len(ids)}, schema=SCHEMA,
    )


@pytest.fixture
def lake(tmp_path: Path) -> DeltaLake:
    return DeltaLake(str(tmp_path / "lake"))


def test_stream_is_one_merge_and_a_rerun_changes_nothing(lake: DeltaLake) -> None:
    stats = lake.merge_batches("t", iter([batch([1, 2, 3]), batch([4, 5])]), SCHEMA, partitions=HOUR)
    assert (stats.inserted, stats.unchanged) == (5, 0)
    version = lake.version("t")
    again = lake.merge_batches("t", iter([batch([1, 2, 3]), batch([4, 5])]), SCHEMA, partitions=HOUR)
    assert (again.inserted, again.unchanged) == (0, 5)
    assert lake.count("t") == 5
    assert lake.version("t") == version  # nothing new: no new table version


def test_keys_repeated_within_and_across_batches_keep_the_first_row(lake: DeltaLake) -> None:
    stats = lake.merge_batches("t", iter([batch([1, 1, 2], n=1), batch([2, 3], n=2), batch([3, 1], n=3)]), SCHEMA, partitions=HOUR)
    assert (stats.inserted, stats.unchanged) == (3, 4)
    table = lake.read("t").sort_by("log_id")
    assert table.column("n").to_pylist() == [1, 1, 2]


def test_a_stream_vouched_distinct_is_checked_against_the_table_alone(lake: DeltaLake) -> None:
    lake.merge_batches("t", iter([batch([1, 2], n=1)]), SCHEMA, partitions=HOUR)
    stats = lake.merge_batches("t", iter([batch([2, 3], n=2), batch([4, 1], n=2)]), SCHEMA, partitions=HOUR,
                               distinct=True)
    assert (stats.inserted, stats.unchanged) == (2, 2)
    table = lake.read("t").sort_by("log_id")
    assert table.column("log_id").to_pylist() == [f"log-{i:04d}" for i in (1, 2, 3, 4)]
    assert table.column("n").to_pylist() == [1, 1, 2, 2]  # rows already held are not replaced
    again = lake.merge_batches("t", iter([batch([3, 4, 5])]), SCHEMA, partitions=HOUR, distinct=True)
    assert (again.inserted, again.unchanged) == (1, 2)
    assert lake.count("t") == 5


def test_overlap_with_rows_already_in_the_table_inserts_only_new_ids(lake: DeltaLake) -> None:
    lake.merge_batches("t", iter([batch([1, 2])]), SCHEMA, partitions=HOUR)
    stats = lake.merge_batches("t", iter([batch([2, 3]), batch([4])]), SCHEMA, partitions=HOUR)
    assert (stats.inserted, stats.unchanged) == (2, 1)
    assert lake.count("t") == 4


def test_other_partitions_are_neither_read_nor_touched(lake: DeltaLake) -> None:
    lake.merge_batches("t", iter([batch([1, 2], hour="01")]), SCHEMA, partitions=[("2026-01-01", "01")])
    stats = lake.merge_batches("t", iter([batch([3])]), SCHEMA, partitions=HOUR)
    assert stats.inserted == 1
    assert lake.count("t", partitions=[("2026-01-01", "01")]) == 2


def test_a_row_outside_the_declared_partitions_fails_the_merge_and_commits_nothing(lake: DeltaLake) -> None:
    lake.merge_batches("t", iter([batch([1])]), SCHEMA, partitions=HOUR)
    version = lake.version("t")
    with pytest.raises(LakeError, match="outside the declared partitions"):
        lake.merge_batches("t", iter([batch([2]), batch([3], hour="05")]), SCHEMA, partitions=HOUR)
    assert lake.version("t") == version
    assert lake.count("t") == 1


def test_empty_stream_is_a_no_op_and_bad_partitions_are_refused(lake: DeltaLake) -> None:
    stats = lake.merge_batches("t", iter([batch([])]), SCHEMA, partitions=HOUR)
    assert (stats.inserted, stats.unchanged, stats.version) == (0, 0, None)
    assert not lake.exists("t")
    with pytest.raises(ValueError):
        lake.merge_batches("t", iter([batch([1])]), SCHEMA, partitions=[("2026-01-01", "7")])


def test_nulls_in_the_key_fail_the_merge(lake: DeltaLake) -> None:
    bad = pa.RecordBatch.from_pydict({"log_id": [None], "date": ["2026-01-01"], "hour": ["00"], "n": [1]}, schema=SCHEMA)
    with pytest.raises(LakeError, match="nulls"):
        lake.merge_batches("t", iter([batch([1]), bad]), SCHEMA, partitions=HOUR)


def _in_another_thread(work) -> None:
    # The batches are pulled from inside delta-rs's runtime, which cannot be re-entered from
    # that thread: the "other run" commits from a thread of its own, as another process would.
    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()


def test_a_concurrent_load_of_the_same_rows_is_reported_not_silently_duplicated(lake: DeltaLake, tmp_path: Path) -> None:
    other_writer = DeltaLake(str(tmp_path / "lake"))
    lake.merge_batches("t", iter([batch([1])]), SCHEMA, partitions=HOUR)

    def racing_batches():
        yield batch([2, 3])
        # Another run loads the same records after this load read the table's keys.
        _in_another_thread(lambda: other_writer.merge_batches("t", iter([batch([2, 3])]), SCHEMA, partitions=HOUR))
        yield batch([4])

    with pytest.raises(LakeError, match="appear twice"):
        lake.merge_batches("t", racing_batches(), SCHEMA, partitions=HOUR)


def test_a_concurrent_load_of_other_rows_is_fine(lake: DeltaLake, tmp_path: Path) -> None:
    other_writer = DeltaLake(str(tmp_path / "lake"))

    def racing_batches():
        yield batch([1, 2])
        _in_another_thread(lambda: other_writer.merge_batches("t", iter([batch([7, 8])]), SCHEMA, partitions=HOUR))

    stats = lake.merge_batches("t", racing_batches(), SCHEMA, partitions=HOUR)
    assert stats.inserted == 2
    assert sorted(lake.read("t").column("log_id").to_pylist()) == ["log-0001", "log-0002", "log-0007", "log-0008"]


def test_a_key_loaded_under_another_hour_does_not_hide_this_hour_row(lake: DeltaLake) -> None:
    lake.merge_batches("t", iter([batch([1], hour="01")]), SCHEMA, partitions=[("2026-01-01", "01")])
    stats = lake.merge_batches("t", iter([batch([1])]), SCHEMA, partitions=HOUR)
    assert stats.inserted == 1  # the key is only looked up in the partitions being loaded


@pytest.mark.parametrize("buckets", [1, 2, 4, 8, 16])
def test_bucketed_reads_return_every_row_exactly_once_with_copies_together(lake: DeltaLake, buckets: int) -> None:
    ids = [f"log_{i:031x}{d}" for i, d in enumerate("0123456789abcdefABCDEF")] + ["odd-id", "log_x"]
    lake.merge_batches("t", iter([pa.RecordBatch.from_pydict(
        {"log_id": ids, "date": ["2026-01-01"] * len(ids), "hour": ["00"] * len(ids), "n": list(range(len(ids)))},
        schema=SCHEMA)]), SCHEMA, partitions=HOUR)
    slices = [part.column("log_id").to_pylist() for part in lake.read_in_buckets("t", key="log_id", buckets=buckets)]
    assert len(slices) == buckets
    assert sorted(sum(slices, [])) == sorted(ids)
    for part in slices:  # the last hex digit decides, whatever its case
        assert len({i[-1].lower() for i in part if i[-1].lower() in "0123456789abcdef"}) <= 16 // buckets


def test_bucketed_reads_refuse_other_bucket_counts(lake: DeltaLake) -> None:
    with pytest.raises(ValueError, match="buckets"):
        list(lake.read_in_buckets("t", key="log_id", buckets=3))
