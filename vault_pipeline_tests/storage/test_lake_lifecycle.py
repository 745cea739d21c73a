"""The lake's lifecycle on real Delta tables: time travel (``as_of`` / ``version``), history,
row retention, compaction and z-order per date, vacuum of only unreferenced files past the
retention, retention table properties and checkpoints; locally and on moto's S3 server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from vault_pipeline.storage.lake import DeltaLake, LakeError, TablePolicy
from vault_pipeline.storage.s3_store import make_s3_client
from vault_pipeline_tests.fixtures.aws import REGION, MotoS3

TABLE = "audit_events"
NOW = datetime.now(UTC)


def day(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%d")


def rows(ids: range | list[int], date: str, hour: str = "05") -> pa.Table:
    ids = list(ids)
    return pa.table({
        "log_id": pa.array([f"log-{i:06d}" for i in ids]),
        "date": pa.array([date] * len(ids)),
        "hour": pa.array([hour] * len(ids)),
        "provider": pa.array(["acme"] * len(ids)),
        "event_name": pa.array([f"Event{i % 5}" for i in ids]),
        "bytes": pa.array([i * 10 for i in ids], pa.int64()),
    })


@pytest.fixture
def lake(tmp_path: Path) -> DeltaLake:
    return DeltaLake(str(tmp_path / "lake"))


def parquet_files(lake: DeltaLake, table: str = TABLE) -> set[str]:
    root = Path(lake.table_uri(table))
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet") if "_delta_log" not in p.parts}


def live_files(lake: DeltaLake, table: str = TABLE) -> set[str]:
    return set(pa.table(DeltaTable(lake.table_uri(table)).get_add_actions(flatten=True)).column("path").to_pylist())


# time travel ------------------------------------------------------------------------------
def test_time_travel_returns_the_earlier_numbers_after_a_later_load(lake: DeltaLake) -> None:
    first = lake.merge(TABLE, rows(range(10), day(1)))
    time.sleep(0.05)
    between = datetime.now(UTC)
    time.sleep(0.05)
    second = lake.merge(TABLE, rows(range(10, 30), day(1)))
    assert (first.version, second.version) == (1, 2)

    assert lake.count(TABLE) == 30
    assert lake.count(TABLE, version=1) == 10
    assert lake.count(TABLE, as_of=between) == 10
    assert lake.count(TABLE, as_of=between.isoformat().replace("+00:00", "Z")) == 10
    assert lake.count(TABLE, as_of=datetime.now(UTC) + timedelta(hours=1)) == 30
    assert lake.count(TABLE, version=0) == 0  # the empty table as created
    earlier = lake.read(TABLE, columns=["log_id", "bytes"], version=1, order_by=["log_id"])
    assert earlier.column("log_id").to_pylist() == [f"log-{i:06d}" for i in range(10)]
    assert earlier.schema.field("log_id").type == pa.string()  # the table's own types, as latest reads
    assert sum(b.num_rows for b in lake.read_in_buckets(TABLE, key="log_id", buckets=4, version=1)) == 10
    assert sum(b.num_rows for b in lake.read_in_buckets(TABLE, key="log_id", buckets=4, as_of=between)) == 10
    assert lake.count(TABLE, provider="acme", partitions=[(day(1), "05")], as_of=between) == 10


def test_a_version_or_time_before_the_table_existed_is_a_clear_error(lake: DeltaLake) -> None:
    before = datetime.now(UTC) - timedelta(days=1)
    with pytest.raises(LakeError, match="does not exist"):
        lake.count(TABLE, version=0)  # no table at all
    lake.merge(TABLE, rows(range(5), day(1)))
    with pytest.raises(LakeError, match="did not exist yet as of"):
        lake.read(TABLE, as_of=before)
    with pytest.raises(LakeError, match="no version 7: its latest is 1"):
        lake.count(TABLE, version=7)
    with pytest.raises(LakeError, match="versions start at 0"):
        lake.count(TABLE, version=-1)
    with pytest.raises(ValueError, match="ISO-8601"):
        lake.count(TABLE, as_of="yesterday")
    with pytest.raises(ValueError, match="not both"):
        lake.count(TABLE, as_of=before, version=1)


def test_history_lists_versions_with_operation_time_and_row_counts(lake: DeltaLake) -> None:
    lake.merge(TABLE, rows(range(10), day(100)))
    lake.merge(TABLE, rows(range(10, 25), day(1)))
    lake.expire_rows(TABLE, before_date=day(90))
    history = lake.history(TABLE)
    assert [h["version"] for h in history] == [3, 2, 1, 0]
    assert [h["operation"] for h in history] == ["DELETE", "WRITE", "WRITE", "CREATE TABLE"]
    assert [h["rows"] for h in history] == [15, 25, 10, 0]
    assert [h["rows_added"] for h in history[1:3]] == [15, 10]
    assert history[0]["rows_deleted"] == 10
    assert "predicate" in history[0]["detail"]
    assert all(h["timestamp"].endswith("Z") for h in history)
    assert [h["version"] for h in lake.history(TABLE, limit=2)] == [3, 2]


# row retention ------------------------------------------------------------------------------
def test_row_retention_deletes_only_rows_past_it_and_stays_in_history(lake: DeltaLake) -> None:
    lake.merge(TABLE, rows(range(7), day(120)))
    lake.merge(TABLE, rows(range(7, 10), day(91)))
    lake.merge(TABLE, rows(range(10, 14), day(89)))
    lake.merge(TABLE, rows(range(14, 20), day(0)))
    loaded = lake.version(TABLE)

    stats = lake.maintain(TABLE, TablePolicy(retention_days=90), now=NOW)
    assert stats.rows_expired == 10 and stats.expired_before == day(90)
    assert lake.count(TABLE) == 10 == stats.rows
    dates = set(lake.read(TABLE, columns=["date"]).column("date").to_pylist())
    assert dates == {day(89), day(0)}
    assert lake.count(TABLE, version=loaded) == 20  # the expired rows are still reachable by time travel
    assert "DELETE" in [h["operation"] for h in lake.history(TABLE)]
    # a second pass has nothing left to expire and adds no DELETE
    again = lake.maintain(TABLE, TablePolicy(retention_days=90), now=NOW)
    assert again.rows_expired == 0
    assert [h["operation"] for h in lake.history(TABLE)].count("DELETE") == 1
    # a table configured to keep rows longer keeps them
    lake.merge("test_results", rows(range(5), day(120)))
    assert lake.maintain("test_results", TablePolicy(retention_days=365), now=NOW).rows_expired == 0
    assert lake.count("test_results") == 5


def test_retention_properties_keep_time_travel_as_long_as_promised(lake: DeltaLake) -> None:
    lake.merge(TABLE, rows(range(5), day(1)))
    lake.maintain(TABLE, TablePolicy(retention_days=90, vacuum_retention_hours=240))
    configuration = DeltaTable(lake.table_uri(TABLE)).metadata().configuration
    assert configuration["delta.logRetentionDuration"] == "interval 90 days"
    assert configuration["delta.deletedFileRetentionDuration"] == "interval 240 hours"
    version = lake.version(TABLE)
    assert not lake.retention_properties(TABLE, log_retention_days=90, deleted_file_retention_hours=240)
    assert lake.version(TABLE) == version  # unchanged properties add no version
    assert TablePolicy(retention_days=3, vacuum_retention_hours=24 * 10).log_retention_days == 10


# compaction and z-order ----------------------------------------------------------------------
def test_compaction_and_zorder_rewrite_only_fragmented_dates(lake: DeltaLake) -> None:
    for start in range(0, 40, 10):  # four loads into one hour of yesterday: four files
        lake.merge(TABLE, rows(range(start, start + 10), day(1), "03"))
    lake.merge(TABLE, rows(range(100, 110), day(2), "07"))  # one file: nothing to compact
    untouched = {f for f in live_files(lake) if f"date={day(2)}" in f}
    stats = lake.maintain(TABLE, TablePolicy(retention_days=90, zorder=("event_name",)), now=NOW)
    assert stats.dates_optimized == [day(1)]
    assert (stats.files_compacted, stats.files_written) == (4, 1)
    assert stats.bytes_compacted > 0 and stats.bytes_written > 0
    assert {f for f in live_files(lake) if f"date={day(2)}" in f} == untouched
    assert len(live_files(lake)) == 2
    assert lake.count(TABLE) == 50 and stats.rows == 50
    optimized = next(h for h in lake.history(TABLE) if h["operation"] == "OPTIMIZE")
    assert optimized["detail"]["strategy"] == "zOrder"
    with pytest.raises(LakeError, match="cannot z-order by"):
        lake.optimize(TABLE, zorder=["no_such_column"])
    with pytest.raises(LakeError, match="cannot z-order by"):
        lake.optimize(TABLE, zorder=["date"])


# vacuum ---------------------------------------------------------------------------------------
def _age_removals(lake: DeltaLake, version: int, hours: float) -> None:
    """Make the files version ``version`` removed look removed ``hours`` ago (the log's clock)."""
    commit = Path(lake.table_uri(TABLE)) / "_delta_log" / f"{version:020d}.json"
    actions = [json.loads(line) for line in commit.read_text().splitlines() if line.strip()]
    aged = int((time.time() - hours * 3600) * 1000)
    for action in actions:
        if "remove" in action:
            action["remove"]["deletionTimestamp"] = aged
    commit.write_text("\n".join(json.dumps(a) for a in actions) + "\n")


def test_vacuum_removes_only_unreferenced_files_past_retention(lake: DeltaLake) -> None:
    for start in range(0, 30, 10):
        lake.merge(TABLE, rows(range(start, start + 10), day(3), "01"))
    old_files = parquet_files(lake)
    lake.optimize(TABLE)  # removes the three load files of day(3)
    compacted_at = lake.version(TABLE)
    _age_removals(lake, compacted_at, hours=8 * 24)  # removed eight days ago: past 7 days
    for start in range(30, 60, 10):
        lake.merge(TABLE, rows(range(start, start + 10), day(1), "02"))
    lake.optimize(TABLE)  # removes the three load files of day(1) now: within retention
    recent_files = {f for f in parquet_files(lake) if f"date={day(1)}" in f} - live_files(lake)
    assert len(old_files) == 3 and len(recent_files) == 3

    assert sorted(lake.vacuum(TABLE, 168, dry_run=True)) == sorted(old_files)
    assert parquet_files(lake) >= old_files  # a dry run deletes nothing
    assert sorted(lake.vacuum(TABLE, 168)) == sorted(old_files)
    on_disk = parquet_files(lake)
    assert not (on_disk & old_files)
    assert recent_files <= on_disk  # removed within the retention: kept for time travel
    assert live_files(lake) <= on_disk  # referenced files are never vacuumed
    assert lake.count(TABLE) == 60
    assert lake.count(TABLE, version=compacted_at + 3) == 60  # loads of day(1), before its compaction
    with pytest.raises(LakeError):
        lake.read(TABLE, version=3)  # the files of the first loads are gone: a clear error, no abort
    lake.vacuum(TABLE, 168)  # again: nothing else is past the retention
    assert parquet_files(lake) == on_disk


def test_maintain_checkpoints_and_skips_a_missing_table(lake: DeltaLake) -> None:
    assert lake.maintain("never_loaded", TablePolicy()).skipped == "table does not exist yet"
    lake.merge(TABLE, rows(range(5), day(1)))
    stats = lake.maintain(TABLE, TablePolicy())
    log = Path(lake.table_uri(TABLE)) / "_delta_log"
    assert (log / "_last_checkpoint").exists()
    assert json.loads((log / "_last_checkpoint").read_text())["version"] == stats.checkpoint_version
    assert stats.version_after == stats.checkpoint_version and stats.files_vacuumed == 0
    assert lake.count(TABLE, version=1) == 5  # time travel across the checkpoint


# on S3 (moto server) ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_process() -> Iterator[str]:
    """moto's S3 server in its own process. delta-rs's ``alter.set_table_properties`` keeps the
    GIL while it waits on S3, so the in-process ThreadedMotoServer can never answer it (the
    request times out after 180 s); a real S3 has no such problem."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def moto_s3_process(moto_process: str, aws_env: None) -> MotoS3:
    client = make_s3_client(max_attempts=2, endpoint_url=moto_process, region_name=REGION)
    name = f"vault-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    return MotoS3(moto_process, name, client)


def test_maintenance_and_time_travel_on_s3(moto_s3_process: MotoS3) -> None:
    moto_s3 = moto_s3_process
    lake = DeltaLake(f"s3://{moto_s3.bucket}/lake", storage_options=moto_s3.storage_options)
    lake.merge(TABLE, rows(range(8), day(100), "04"))
    for start in range(8, 38, 10):
        lake.merge(TABLE, rows(range(start, start + 10), day(2), "04"))
    loaded = lake.version(TABLE)
    stats = lake.maintain(TABLE, TablePolicy(retention_days=90, zorder=("event_name",)), now=NOW)
    assert stats.rows_expired == 8
    assert stats.dates_optimized == [day(2)] and stats.files_compacted == 3
    assert stats.checkpoint_version == stats.version_after
    assert lake.count(TABLE) == 30
    assert lake.count(TABLE, version=loaded) == 38
    assert [h["operation"] for h in lake.history(TABLE, limit=3)][:2] == ["OPTIMIZE", "DELETE"]
    keys = [o["Key"] for o in moto_s3.client.list_objects_v2(Bucket=moto_s3.bucket, Prefix="lake/")["Contents"]]
    assert any(k.endswith(".checkpoint.parquet") for k in keys)
    assert lake.vacuum(TABLE, 168) == []  # everything removed today is within retention
    assert lake.count(TABLE) == 30
