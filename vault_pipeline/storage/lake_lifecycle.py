"""The Delta lake's lifecycle: time travel, history and maintenance of a table.

Every read can time-travel (``as_of`` a moment, or a ``version``) as far back as the log and the
removed files reach; ``history`` lists a table's versions; maintenance deletes rows past the
retention (a Delta DELETE kept in the history), compacts and z-orders one date partition at a
time (z-order is not incremental), vacuums unreferenced files past the retention (for real:
delta-rs defaults to a dry run), checkpoints and cleans up the log, and sets the retention
properties that keep time travel as long as the policy promises.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, QueryBuilder
from deltalake.exceptions import DeltaError

from vault_pipeline.storage.lake_common import (
    _DATE,
    _TARGET_FILE_SIZE,
    PARTITION_COLUMNS,
    LakeError,
    _ident,
    _literal,
    _writer_properties,
)

# -- the policy, the stats and the time parsing of the lifecycle ---------------------------------

@dataclass(frozen=True, slots=True)
class TablePolicy:
    """How one table is maintained (``lake:`` in vault.yaml)."""

    retention_days: int | None = 90  # rows whose date is older are deleted; None keeps every row
    vacuum_retention_hours: int = 168  # removed files are deleted this long after their removal
    zorder: tuple[str, ...] = ()
    vacuum_dry_run: bool = False  # list what vacuum would delete, delete nothing

    @property
    def log_retention_days(self) -> int:
        """Log kept as long as rows are (so the retention DELETE stays in the history) and at
        least as long as removed files, so every version whose files exist can be loaded."""
        return max(self.retention_days or 0, -(-self.vacuum_retention_hours // 24), 1)


@dataclass(slots=True)
class MaintenanceStats:
    table: str
    skipped: str | None = None
    version_before: int | None = None
    version_after: int | None = None
    properties_changed: bool = False
    expired_before: str | None = None
    rows_expired: int = 0
    dates_optimized: list[str] = field(default_factory=list)
    files_compacted: int = 0  # files rewritten by compaction / z-order
    files_written: int = 0
    bytes_compacted: int = 0
    bytes_written: int = 0
    files_vacuumed: int = 0
    checkpoint_version: int | None = None
    rows: int | None = None


def as_of_time(value: str | datetime) -> datetime:
    """An ``as_of`` argument as an aware UTC datetime: ISO-8601 (``Z`` or an offset; no zone
    means UTC, as in delta-rs) or a datetime."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"as_of must be an ISO-8601 time such as 2026-01-01T00:00:00Z, got {value!r}") from None
    else:
        raise TypeError(f"as_of must be an ISO-8601 time or a datetime, got {value!r}")
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_ms(ms: int) -> str:
    return _iso(datetime.fromtimestamp(ms / 1000, UTC))


def _metric(metrics: dict[str, Any], *names: str) -> int | None:
    for name in names:
        if metrics.get(name) is not None:
            return int(metrics[name])
    return None


def _total_size(summary: Any) -> int:
    """``totalSize`` of a delta-rs optimize file summary (a JSON string or a dict)."""
    if isinstance(summary, str):
        import json

        try:
            summary = json.loads(summary)
        except ValueError:
            return 0
    return int(summary.get("totalSize", 0)) if isinstance(summary, dict) else 0


class LakeLifecycle:
    """DeltaLake's lifecycle methods (a mixin: ``_open``, ``_require``, ``count`` and ``table_uri`` are DeltaLake's)."""

    # -- lifecycle ---------------------------------------------------------------------------
    # Time travel (``as_of``/``version`` on every read), the table's history, and maintenance:
    # row retention, compaction and z-order per date partition, vacuum, checkpoints and log
    # cleanup. Maintenance rewrites and removes files, which conflicts with a concurrent load's
    # repair (an overwrite): the caller holds the table's lake-writer lease, as loads do
    # (defs/analytics/maintenance.py).

    def _open_at(self, table: str, as_of: str | datetime | None, version: int | None) -> DeltaTable:
        """The table as it was at ``version`` or at the time ``as_of`` (the last commit at or
        before it); a LakeError when the table did not exist then or its log no longer reaches it."""
        if as_of is not None and version is not None:
            raise ValueError("read a lake table as_of a time or at a version, not both")
        asked = f"version {version}" if version is not None else f"as of {as_of}"
        dt = self._open(table)
        if dt is None:
            raise LakeError(f"lake table {table!r} does not exist at {self.table_uri(table)}, so it has no {asked}")
        commits = self._commits(table, dt)  # (version, commit time in ms), oldest first
        first_version, first_ms = commits[0] if commits else (dt.version(), None)
        if version is not None:
            if isinstance(version, bool) or not isinstance(version, int):
                raise ValueError(f"version must be an int, got {version!r}")
            if version > dt.version():
                raise LakeError(f"lake table {table!r} has no version {version}: its latest is {dt.version()}")
            if version < 0:
                raise LakeError(f"lake table {table!r} has no version {version}: versions start at 0")
            if version < first_version:
                raise LakeError(f"lake table {table!r}: version {version} is no longer in its log, which now "
                                f"starts at version {first_version} (delta.logRetentionDuration)")
            target = version
        else:
            moment = as_of_time(as_of)
            at_ms = moment.timestamp() * 1000
            earlier = [v for v, ms in commits if ms is not None and ms <= at_ms]
            if not earlier:
                since = _iso_ms(first_ms) if first_ms is not None else "unknown"
                raise LakeError(f"lake table {table!r} did not exist yet as of {_iso(moment)}: its first kept "
                                f"version {first_version} was committed at {since}")
            target = max(earlier)
        if target == dt.version():
            return dt
        try:
            dt.load_as_version(target)
        except (DeltaError, OSError) as exc:
            raise LakeError(f"lake table {table!r}: cannot load version {target} ({asked}): {exc}") from exc
        return dt

    def _commits(self, table: str, dt: DeltaTable) -> list[tuple[int, int | None]]:
        try:
            kept = dt.history()
        except (DeltaError, OSError) as exc:
            raise LakeError(f"cannot read the history of lake table {table!r}: {exc}") from exc
        return sorted((int(c["version"]), c.get("timestamp")) for c in kept if "version" in c)

    def history(self, table: str, *, limit: int | None = None, row_counts: bool = True) -> list[dict[str, Any]]:
        """The table's versions, newest first: version, ISO time, operation, rows added and
        deleted by it, the table's row count at it (None once its files are vacuumed; not looked
        up unless ``row_counts``: it loads each version), files added/removed, and the
        operation's predicate or mode."""
        dt = self._require(table)
        try:
            commits = dt.history(limit=limit)
        except (DeltaError, OSError) as exc:
            raise LakeError(f"cannot read the history of lake table {table!r}: {exc}") from exc
        entries = []
        for commit in sorted(commits, key=lambda c: -int(c.get("version", -1))):
            metrics = commit.get("operationMetrics") or {}
            parameters = commit.get("operationParameters") or {}
            number = int(commit["version"])
            entries.append({
                "version": number,
                "timestamp": _iso_ms(commit["timestamp"]) if commit.get("timestamp") is not None else None,
                "operation": commit.get("operation", "?"),
                "rows_added": _metric(metrics, "num_added_rows", "num_inserted_rows"),
                "rows_deleted": _metric(metrics, "num_deleted_rows"),
                "rows": self._rows_at(table, number) if row_counts else None,
                "files_added": _metric(metrics, "num_added_files", "numFilesAdded"),
                "files_removed": _metric(metrics, "num_removed_files", "numFilesRemoved", "numDeletedFiles"),
                "detail": {**{k: v for k, v in parameters.items() if k in ("mode", "predicate")},
                           **({"strategy": metrics["plannerStrategy"]} if "plannerStrategy" in metrics else {})},
            })
        return entries

    def _rows_at(self, table: str, version: int) -> int | None:
        """Rows of the table at ``version`` from the log's file statistics (no data read); None
        when that version can no longer be loaded."""
        try:
            dt = DeltaTable(self.table_uri(table), version=version, storage_options=self.storage_options or None)
            counts = pa.table(dt.get_add_actions(flatten=True)).column("num_records")
        except Exception:  # noqa: BLE001 - a version cleaned from the log has no count
            return None
        if counts.null_count:
            return self.count(table, version=version)
        return int(pc.sum(counts).as_py() or 0)

    def retention_properties(self, table: str, *, log_retention_days: int, deleted_file_retention_hours: int) -> bool:
        """Set ``delta.logRetentionDuration`` and ``delta.deletedFileRetentionDuration`` so time
        travel reaches as far back as the vault promises (delta-rs cuts logs after 30 days and
        vacuumed files after 7 by default); True when they changed (one table version)."""
        wanted = {"delta.logRetentionDuration": f"interval {int(log_retention_days)} days",
                  "delta.deletedFileRetentionDuration": f"interval {int(deleted_file_retention_hours)} hours"}
        dt = self._require(table)
        current = dt.metadata().configuration or {}
        if all(current.get(k) == v for k, v in wanted.items()):
            return False
        try:
            dt.alter.set_table_properties(wanted, raise_if_not_exists=False)
        except (DeltaError, OSError) as exc:
            raise LakeError(f"cannot set retention properties of lake table {table!r}: {exc}") from exc
        return True

    def expire_rows(self, table: str, *, before_date: str) -> int:
        """Delete the rows whose ``date`` partition is before ``before_date`` (YYYY-MM-DD) as one
        Delta DELETE, which stays in the history (time travel still sees the rows until vacuum
        removes their files); the rows deleted. Nothing to delete adds no version."""
        if not (isinstance(before_date, str) and _DATE.match(before_date)):
            raise ValueError(f"before_date must look like 2026-01-01, got {before_date!r}")
        dt = self._require(table)
        predicate = f"{_ident('date')} < {_literal(before_date)}"
        try:
            due = pa.table(QueryBuilder().register(table, dt).execute(
                f"SELECT COUNT(*) AS n FROM {_ident(table)} WHERE {predicate}")).column("n")[0].as_py()
            if not due:
                return 0
            metrics = dt.delete(f"date < {_literal(before_date)}", writer_properties=_writer_properties())
        except (DeltaError, OSError, pa.ArrowException) as exc:
            raise LakeError(f"row retention of lake table {table!r} (date < {before_date}) failed: {exc}") from exc
        return int(metrics.get("num_deleted_rows", due))

    def optimize(self, table: str, *, zorder: Iterable[str] = (), dates: Iterable[str] | None = None) -> dict[str, Any]:
        """Compact small files (one per load and hour), z-ordered by ``zorder`` when given, one
        date partition at a time (z-order is not incremental and holds what it rewrites).

        ``dates``: the date partitions to rewrite; by default those with an hour holding more
        than one file, so a date nobody loaded into since its last optimize is not rewritten.
        Returns summed delta-rs metrics plus ``dates``."""
        dt = self._require(table)
        columns = list(zorder)
        schema = pa.schema(dt.schema().to_arrow())
        unknown = [c for c in columns if c not in schema.names or c in PARTITION_COLUMNS]
        if unknown:
            raise LakeError(f"lake table {table!r}: cannot z-order by {unknown}; its data columns are "
                            f"{[n for n in schema.names if n not in PARTITION_COLUMNS]}")
        chosen = sorted(set(dates) if dates is not None else self._fragmented_dates(table, dt))
        totals: dict[str, Any] = {"numFilesAdded": 0, "numFilesRemoved": 0, "bytesAdded": 0, "bytesRemoved": 0,
                                  "partitionsOptimized": 0, "dates": chosen, "zorder": columns}
        for date in chosen:
            if not _DATE.match(date):
                raise ValueError(f"date partition must look like 2026-01-01, got {date!r}")
            where = [("date", "=", date)]
            try:
                if columns:
                    metrics = dt.optimize.z_order(columns, partition_filters=where, target_size=_TARGET_FILE_SIZE,
                                                  writer_properties=_writer_properties())
                else:
                    metrics = dt.optimize.compact(partition_filters=where, target_size=_TARGET_FILE_SIZE,
                                                  writer_properties=_writer_properties())
            except (DeltaError, OSError) as exc:
                raise LakeError(f"optimize of lake table {table!r}, date {date}, failed: {exc}") from exc
            totals["numFilesAdded"] += int(metrics.get("numFilesAdded", 0))
            totals["numFilesRemoved"] += int(metrics.get("numFilesRemoved", 0))
            totals["partitionsOptimized"] += int(metrics.get("partitionsOptimized", 0))
            totals["bytesAdded"] += _total_size(metrics.get("filesAdded"))
            totals["bytesRemoved"] += _total_size(metrics.get("filesRemoved"))
            dt.update_incremental()
        return totals

    def _fragmented_dates(self, table: str, dt: DeltaTable) -> list[str]:
        try:
            files = pa.table(dt.get_add_actions(flatten=True)).select(["partition.date", "partition.hour"])
        except (DeltaError, OSError, KeyError, pa.ArrowException) as exc:
            raise LakeError(f"cannot list the files of lake table {table!r}: {exc}") from exc
        per_hour = files.group_by(["partition.date", "partition.hour"], use_threads=False).aggregate([([], "count_all")])
        crowded = per_hour.filter(pc.greater(per_hour.column("count_all"), 1))
        return sorted(set(crowded.column("partition.date").to_pylist()))

    def vacuum(self, table: str, retention_hours: int = 168, *, dry_run: bool = False) -> list[str]:
        """Delete files no longer referenced and removed more than ``retention_hours`` ago; their
        paths. Deletes for real unless ``dry_run`` (delta-rs's own default is a dry run)."""
        dt = self._require(table)
        try:
            return dt.vacuum(retention_hours=int(retention_hours), dry_run=dry_run, enforce_retention_duration=True)
        except (DeltaError, OSError) as exc:
            raise LakeError(f"vacuum of lake table {table!r} failed: {exc}") from exc

    def checkpoint(self, table: str) -> int:
        """Write a checkpoint of the current version and delete log entries older than
        ``delta.logRetentionDuration`` that it makes unnecessary; the version checkpointed."""
        dt = self._require(table)
        try:
            dt.create_checkpoint()
            dt.cleanup_metadata()
        except (DeltaError, OSError) as exc:
            raise LakeError(f"checkpoint of lake table {table!r} failed: {exc}") from exc
        return dt.version()

    def maintain(self, table: str, policy: TablePolicy, *, now: datetime | None = None) -> MaintenanceStats:
        """One maintenance pass over ``table``: retention properties, row retention, compaction
        and z-order per date, vacuum, checkpoint and log cleanup, in that order (rows expire
        before compaction so it never rewrites them; vacuum after, so today's compaction leaves
        its removed files for time travel until they are past the retention). The caller holds
        the table's lake-writer lease."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        before = self.version(table)
        if before is None:
            return MaintenanceStats(table=table, skipped="table does not exist yet")
        stats = MaintenanceStats(table=table, version_before=before)
        stats.properties_changed = self.retention_properties(
            table, log_retention_days=policy.log_retention_days,
            deleted_file_retention_hours=policy.vacuum_retention_hours)
        if policy.retention_days is not None:
            stats.expired_before = (now - timedelta(days=policy.retention_days)).strftime("%Y-%m-%d")
            stats.rows_expired = self.expire_rows(table, before_date=stats.expired_before)
        compacted = self.optimize(table, zorder=policy.zorder)
        stats.dates_optimized = compacted["dates"]
        stats.files_compacted, stats.files_written = compacted["numFilesRemoved"], compacted["numFilesAdded"]
        stats.bytes_compacted, stats.bytes_written = compacted["bytesRemoved"], compacted["bytesAdded"]
        stats.files_vacuumed = len(self.vacuum(table, policy.vacuum_retention_hours, dry_run=policy.vacuum_dry_run))
        stats.checkpoint_version = self.checkpoint(table)
        stats.version_after = self.version(table)
        stats.rows = self.count(table)
        return stats



# delta-rs buffers a file's row groups until it closes the file: 64k-row groups in files of
# at most 64 MB keep a load's memory flat (1M rows: 1.41 -> 1.19 GB peak for the step) and
