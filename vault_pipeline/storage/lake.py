"""The Lake adapter: the vault's analytics fact tables as Delta tables (delta-rs).

Tables are partitioned by event ``date`` and ``hour`` under a local directory
(``$VAULT_HOME/lake``) or an ``s3://bucket/prefix`` root. Loading inserts only rows whose
record id the hour's partitions do not hold yet (an anti-join on the key column and one
streamed append), so re-running an hourly partition never duplicates a row and, when nothing
is new, adds no table version. Reads run in delta-rs's own query engine (``QueryBuilder``), never
through pyarrow (``to_pyarrow_table`` or its dataset), which can make the process abort at exit
on deltalake 1.6. For S3 the caller passes delta-rs ``storage_options`` (credentials,
``AWS_REGION``, plus ``AWS_ENDPOINT_URL``/``AWS_ALLOW_HTTP`` for S3-compatible endpoints);
deltalake 1.x commits with S3 conditional puts, so no DynamoDB lock and no
``AWS_S3_ALLOW_UNSAFE_RENAME`` are needed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, QueryBuilder, WriterProperties, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

PARTITION_COLUMNS = ("date", "hour")
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOUR = re.compile(r"^(?:[01]\d|2[0-3])$")
_STRING_TYPES = (pa.string(), pa.large_string(), pa.string_view())


class LakeError(RuntimeError):
    """A lake operation failed; the message names the table and the cause."""


@dataclass(frozen=True, slots=True)
class MergeStats:
    inserted: int
    unchanged: int  # source rows already in the table (or repeated within the source)
    version: int | None  # table version after the merge; None when the table does not exist
    repaired: int = 0  # rows removed first: keys held twice, or keys the load excludes


class DeltaLake:
    def __init__(self, root: str, storage_options: dict[str, str] | None = None) -> None:
        root = str(root)
        if "://" in root:
            scheme = root.split("://", 1)[0].lower()
            if scheme not in ("s3", "s3a"):
                raise ValueError(f"unsupported lake root {root!r}: use a local directory or s3://bucket/prefix")
            self.root = root.rstrip("/")
        else:
            self.root = str(Path(root).resolve())
        self.storage_options = dict(storage_options or {})

    def __repr__(self) -> str:  # never show storage_options: they may hold credentials
        return f"DeltaLake({self.root!r})"

    def table_uri(self, table: str) -> str:
        if not isinstance(table, str) or not _TABLE_NAME.match(table):
            raise ValueError(f"invalid lake table name {table!r}: expected ^[a-z][a-z0-9_]{{0,62}}$")
        return f"{self.root}/{table}"

    def _open(self, table: str) -> DeltaTable | None:
        uri = self.table_uri(table)
        try:
            return DeltaTable(uri, storage_options=self.storage_options or None)
        except TableNotFoundError:
            return None
        except (DeltaError, OSError) as exc:
            raise LakeError(f"cannot open lake table {table!r} at {uri}: {exc}") from exc

    def _require(self, table: str) -> DeltaTable:
        dt = self._open(table)
        if dt is None:
            raise LakeError(f"lake table {table!r} does not exist at {self.table_uri(table)}")
        return dt

    def exists(self, table: str) -> bool:
        # DeltaTable.is_deltatable fails with "Generic S3 error" on S3-compatible endpoints.
        return self._open(table) is not None

    def version(self, table: str) -> int | None:
        dt = self._open(table)
        return None if dt is None else dt.version()

    # -- writing -------------------------------------------------------------------------

    def merge(self, table: str, rows: pa.Table, key: str = "log_id") -> MergeStats:
        """Insert the rows whose ``key`` is not in the table yet; never update or delete.

        ``merge_batches`` for rows already in memory, declared to fall into their own (date,
        hour) partitions. The table is created (partitioned by date, hour) on first use; rows
        repeating a key within ``rows`` are collapsed to the first one.
        """
        if rows.num_rows == 0:
            return MergeStats(0, 0, self.version(table))
        rows = self._checked(table, rows, key)
        hours = pc.unique(pc.binary_join_element_wise(rows.column("date"), rows.column("hour"), "|")).to_pylist()
        return self.merge_batches(table, rows.to_batches(), rows.schema,
                                  partitions=[tuple(h.split("|", 1)) for h in hours], key=key)

    def merge_batches(
        self,
        table: str,
        batches: Iterable[pa.RecordBatch],
        schema: pa.Schema,
        *,
        partitions: list[tuple[str, str]],
        key: str = "log_id",
        exclude: pa.Array | None = None,
    ) -> MergeStats:
        """``merge`` for a stream of batches: one commit, idempotent, memory bounded by a batch.

        An anti-join rather than a delta-rs merge: only the ``key`` column of the declared
        ``partitions`` is read (about 40 MB per million rows), each batch is stripped of keys
        the table or an earlier batch already holds, and what is left is streamed into one
        append. A delta-rs merge of a new hour held the target partition and every insert
        until commit (1.4 GB for a million rows). ``partitions`` are the (date, hour) pairs the
        rows fall into; a row outside them fails the load and nothing is committed. Keys
        repeated anywhere in the stream are collapsed to the first row; nothing new adds no
        table version.

        ``exclude`` holds keys that must never be in the table (dead letters): source rows
        with them are dropped, and a declared partition already holding one, or holding a key
        twice (a load that raced another before loads were exclusive), is repaired first by
        rewriting just that partition without them.

        One loader per table at a time (the caller holds the table's lake-writer lease): two
        appends do not conflict in Delta, so a concurrent load of the same records by a writer
        outside the lease is detected after the commit and reported.
        """
        uri = self.table_uri(table)
        if not _COLUMN_NAME.match(key):
            raise ValueError(f"invalid merge key column {key!r}")
        pairs = sorted({_partition(table, p) for p in partitions})
        stream = iter(batches)
        first = next((b for b in stream if b.num_rows), None)
        if first is None:
            return MergeStats(0, 0, self.version(table))
        dt = self._open(table) or self._create(table, schema)
        read_version = dt.version()
        target = pa.schema(dt.schema().to_arrow())
        allowed = pa.array([f"{d}|{h}" for d, h in pairs], pa.string())
        exclude = exclude.cast(pa.string()) if exclude is not None and len(exclude) else None
        present = self._keys_in(table, dt, key, pairs)
        repaired = self._repair(table, dt, key, pairs, present, exclude)
        if repaired:
            dt.update_incremental()
            read_version = dt.version()
            present = self._keys_in(table, dt, key, pairs)
        counts = {"source": 0, "inserted": 0}

        def new_rows() -> Iterator[pa.RecordBatch]:
            nonlocal present
            for batch in itertools.chain([first], stream):
                if not batch.num_rows:
                    continue
                counts["source"] += batch.num_rows
                rows = self._conform(table, dt, _dedupe(self._checked(table, pa.Table.from_batches([batch]), key), key))
                where = pc.binary_join_element_wise(rows.column("date"), rows.column("hour"), "|")
                if not pc.all(pc.is_in(where, value_set=allowed)).as_py():
                    outside = sorted(set(pc.filter(where, pc.invert(pc.is_in(where, value_set=allowed))).to_pylist()))
                    raise LakeError(f"rows for lake table {table!r} fall outside the declared partitions: {outside[:5]}")
                if exclude is not None:
                    rows = rows.filter(pc.invert(pc.is_in(rows.column(key), value_set=exclude)))
                if len(present):
                    rows = rows.filter(pc.invert(pc.is_in(rows.column(key), value_set=present)))
                if rows.num_rows:
                    present = pa.concat_arrays([present, rows.column(key).combine_chunks().cast(pa.string())])
                    counts["inserted"] += rows.num_rows
                    yield from rows.to_batches()

        rows = new_rows()
        try:
            # Peek: a load with nothing new must not add an empty table version.
            head = next(rows, None)
            if head is None:
                return MergeStats(0, counts["source"], read_version, repaired)
            write_deltalake(
                dt, pa.RecordBatchReader.from_batches(target, itertools.chain([head], rows)),
                mode="append", partition_by=list(PARTITION_COLUMNS), storage_options=self.storage_options or None,
                target_file_size=_TARGET_FILE_SIZE, writer_properties=_writer_properties(),
            )
        except LakeError:
            raise
        except Exception as exc:  # DeltaError, OSError, ArrowException
            raise LakeError(f"load into lake table {table!r} at {uri} failed: {exc}") from exc
        dt.update_incremental()
        if dt.version() != read_version + 1:
            self._refuse_duplicates(table, dt, key, pairs)
        return MergeStats(inserted=counts["inserted"], unchanged=counts["source"] - counts["inserted"],
                          version=dt.version(), repaired=repaired)

    def _repair(self, table: str, dt: DeltaTable, key: str, pairs: list[tuple[str, str]], present: pa.Array,
                exclude: pa.Array | None) -> int:
        """Rewrite each declared partition that holds a key twice or an excluded key, keeping one
        row per key; the rows removed. Only the damaged partitions are read and rewritten."""
        doubled = pc.count_distinct(present).as_py() < len(present) if len(present) else False
        banned = exclude is not None and len(present) and pc.any(pc.is_in(present, value_set=exclude)).as_py()
        if not (doubled or banned):
            return 0
        target = pa.schema(dt.schema().to_arrow())
        removed = 0
        for date, hour in pairs:
            where = f"{_ident('date')} = '{date}' AND {_ident('hour')} = '{hour}'"
            try:
                rows = pa.table(QueryBuilder().register(table, dt).execute(f"SELECT * FROM {_ident(table)} WHERE {where}"))
            except (DeltaError, OSError, pa.ArrowException) as exc:
                raise LakeError(f"cannot read partition {date}/{hour} of lake table {table!r} to repair it: {exc}") from exc
            rows = rows.select(target.names).cast(target)  # DataFusion's string views back to the table's types
            kept = _dedupe(rows, key) if rows.num_rows else rows
            if exclude is not None and kept.num_rows:
                kept = kept.filter(pc.invert(pc.is_in(kept.column(key), value_set=exclude)))
            if kept.num_rows == rows.num_rows:
                continue
            try:
                write_deltalake(dt, kept, mode="overwrite", predicate=where,
                                partition_by=list(PARTITION_COLUMNS), storage_options=self.storage_options or None,
                                target_file_size=_TARGET_FILE_SIZE, writer_properties=_writer_properties())
            except Exception as exc:  # DeltaError, OSError, ArrowException
                raise LakeError(f"repair of partition {date}/{hour} of lake table {table!r} failed: {exc}") from exc
            removed += rows.num_rows - kept.num_rows
            dt.update_incremental()
        return removed

    def _keys_in(self, table: str, dt: DeltaTable, key: str, pairs: list[tuple[str, str]]) -> pa.Array:
        hours = " OR ".join(f"({_ident('date')} = '{d}' AND {_ident('hour')} = '{h}')" for d, h in pairs)
        sql = f"SELECT {_ident(key)} FROM {_ident(table)} WHERE {hours or 'FALSE'}"
        try:
            found = pa.table(QueryBuilder().register(table, dt).execute(sql)).column(0)
        except (DeltaError, OSError, pa.ArrowException) as exc:
            raise LakeError(f"cannot read keys of lake table {table!r} at {self.table_uri(table)}: {exc}") from exc
        return found.combine_chunks().cast(pa.string()) if found.num_chunks else pa.array([], pa.string())

    def _refuse_duplicates(self, table: str, dt: DeltaTable, key: str, pairs: list[tuple[str, str]]) -> None:
        """Another writer committed while this load ran: make sure it did not load the same rows."""
        hours = " OR ".join(f"({_ident('date')} = '{d}' AND {_ident('hour')} = '{h}')" for d, h in pairs)
        sql = (f"SELECT {_ident(key)} FROM {_ident(table)} WHERE {hours} GROUP BY {_ident(key)} "
               f"HAVING COUNT(*) > 1 LIMIT 5")
        twice = pa.table(QueryBuilder().register(table, dt).execute(sql)).column(0).to_pylist()
        if twice:
            raise LakeError(
                f"lake table {table!r}: another load of the same partitions committed concurrently and "
                f"{key}s now appear twice (e.g. {twice}); run one loader per table (the vault_lake_writer pool)"
            )

    def _checked(self, table: str, rows: pa.Table, key: str) -> pa.Table:
        missing = [c for c in (*PARTITION_COLUMNS, key) if c not in rows.column_names]
        if missing:
            raise LakeError(f"rows for lake table {table!r} lack required columns {missing}")
        for column in PARTITION_COLUMNS:
            if rows.schema.field(column).type not in _STRING_TYPES:
                raise LakeError(
                    f"rows for lake table {table!r}: partition column {column!r} must be a string "
                    f"(e.g. '2026-01-01' / '07'), got {rows.schema.field(column).type}"
                )
        for column in (*PARTITION_COLUMNS, key):
            # A null never equals anything in the merge predicate, so it would be re-inserted
            # on every run: refuse it instead of silently breaking idempotency.
            if rows.column(column).null_count:
                raise LakeError(f"rows for lake table {table!r} have nulls in {column!r}")
        return rows

    def _create(self, table: str, schema: pa.Schema) -> DeltaTable:
        uri = self.table_uri(table)
        try:
            return DeltaTable.create(
                uri,
                schema,
                mode="ignore",
                partition_by=list(PARTITION_COLUMNS),
                storage_options=self.storage_options or None,
            )
        except (DeltaError, OSError) as exc:
            # A concurrent run may have created it first; that is fine, merge into theirs.
            existing = self._open(table)
            if existing is not None:
                return existing
            raise LakeError(f"cannot create lake table {table!r} at {uri}: {exc}") from exc

    def _conform(self, table: str, dt: DeltaTable, rows: pa.Table) -> pa.Table:
        """Cast ``rows`` to the table's schema, or say exactly how they differ.

        delta-rs would otherwise insert nulls for missing columns and drop unknown ones.
        """
        target = pa.schema(dt.schema().to_arrow())
        missing = [n for n in target.names if n not in rows.column_names]
        extra = [n for n in rows.column_names if n not in target.names]
        if missing or extra:
            raise LakeError(
                f"rows do not match the schema of lake table {table!r}: missing columns {missing}, "
                f"unexpected columns {extra}"
            )
        try:
            return rows.select(target.names).cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            found = {f.name: str(f.type) for f in rows.schema}
            wanted = {f.name: str(f.type) for f in target}
            diff = {n: f"{found[n]} -> {wanted[n]}" for n in wanted if found[n] != wanted[n]}
            raise LakeError(f"rows do not match the schema of lake table {table!r}: {diff}: {exc}") from exc

    # -- reading -------------------------------------------------------------------------

    def _select(
        self,
        table: str,
        what: str | list[str],
        partitions: list[tuple[str, str]] | None,
        provider: str | None,
        key_bucket: tuple[str, int, int] | None = None,
        order_by: list[str] | None = None,
        limit: int | None = None,
    ) -> tuple[pa.Table, pa.Schema] | None:
        """Run one SELECT over ``table`` in delta-rs's own engine (DataFusion).

        Reads go through QueryBuilder, not a pyarrow dataset: the dataset path does its I/O
        through a Python filesystem shim called from Arrow's C++ threads, and a thread still
        inside such a call when the interpreter shuts down aborts the process (rc 134).
        DataFusion does all I/O in Rust. Filters on date and hour prune whole files.
        """
        pairs = None if partitions is None else [_partition(table, p) for p in partitions]
        dt = self._open(table)
        if dt is None:
            return None
        schema = pa.schema(dt.schema().to_arrow())
        if isinstance(what, list):
            unknown = [c for c in what if c not in schema.names]
            if unknown or not what:
                raise LakeError(f"lake table {table!r} has no columns {unknown or what}; it has {schema.names}")
            projection = ", ".join(_ident(c) for c in what)
        else:
            projection = what
        clauses = []
        if pairs is not None:
            hours = [f"({_ident('date')} = '{d}' AND {_ident('hour')} = '{h}')" for d, h in pairs]
            clauses.append("(" + " OR ".join(hours) + ")" if hours else "FALSE")
        if provider is not None:
            if "provider" not in schema.names:
                raise LakeError(f"lake table {table!r} has no 'provider' column to filter on")
            clauses.append(f"{_ident('provider')} = {_literal(provider)}")
        if key_bucket is not None:
            clauses.append(_bucket_clause(table, schema, *key_bucket))
        sql = f"SELECT {projection} FROM {_ident(table)}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        if order_by:
            unknown = [c for c in order_by if c not in schema.names]
            if unknown:
                raise LakeError(f"lake table {table!r} has no columns {unknown} to order by; it has {schema.names}")
            sql += " ORDER BY " + ", ".join(_ident(c) for c in order_by)
        if limit is not None:
            sql += f" LIMIT {int(limit)}"  # a top-k in DataFusion: the rows beyond it are never held
        try:
            return pa.table(QueryBuilder().register(table, dt).execute(sql)), schema
        except (DeltaError, OSError, pa.ArrowException) as exc:
            raise LakeError(f"cannot read lake table {table!r} at {self.table_uri(table)}: {exc}") from exc

    def read(
        self,
        table: str,
        *,
        columns: list[str] | None = None,
        partitions: list[tuple[str, str]] | None = None,
        provider: str | None = None,
        order_by: list[str] | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """Rows of ``table``, optionally only some ``(date, hour)`` partitions and one provider
        (and the first ``limit`` by ``order_by``, e.g. a preview).

        A table that does not exist yet reads as an empty table with no columns (``num_rows``
        0), so callers can treat "never loaded" like "nothing loaded". Columns come back in
        the table's own types (DataFusion's string views are cast back to strings).
        """
        selected = self._select(table, list(columns) if columns is not None else "*", partitions, provider,
                                order_by=order_by, limit=limit)
        if selected is None:
            return pa.table({})
        result, schema = selected
        return result.cast(pa.schema([schema.field(name) for name in result.column_names]))

    def read_in_buckets(
        self,
        table: str,
        *,
        key: str,
        buckets: int,
        partitions: list[tuple[str, str]] | None = None,
        provider: str | None = None,
        columns: list[str] | None = None,
    ) -> Iterator[pa.Table]:
        """``read`` in ``buckets`` (1, 2, 4, 8 or 16) slices by the last hex digit of ``key``.

        Every copy of a key lands in the same slice, so a check of uniqueness per slice is a
        check over all rows, while only one slice is in memory at a time.
        """
        if buckets not in (1, 2, 4, 8, 16):
            raise ValueError(f"buckets must be 1, 2, 4, 8 or 16, got {buckets!r}")
        what = list(columns) if columns is not None else "*"
        for bucket in range(buckets):
            selected = self._select(table, what, partitions, provider, (key, buckets, bucket))
            if selected is None:
                return
            result, schema = selected
            yield result.cast(pa.schema([schema.field(name) for name in result.column_names]))

    def count(self, table: str, *, partitions: list[tuple[str, str]] | None = None, provider: str | None = None) -> int:
        selected = self._select(table, "COUNT(*) AS n", partitions, provider)
        return 0 if selected is None else int(selected[0].column("n")[0].as_py())

    # -- maintenance ---------------------------------------------------------------------

    def optimize(self, table: str) -> dict[str, Any]:
        """Compact small files (one per merge and hour) into larger ones; delta-rs metrics."""
        dt = self._require(table)
        try:
            return dt.optimize.compact()
        except (DeltaError, OSError) as exc:
            raise LakeError(f"optimize of lake table {table!r} failed: {exc}") from exc

    def vacuum(self, table: str, retention_hours: int = 168, *, dry_run: bool = False) -> list[str]:
        """Delete files no longer referenced and older than ``retention_hours``; their paths."""
        dt = self._require(table)
        try:
            return dt.vacuum(retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=True)
        except (DeltaError, OSError) as exc:
            raise LakeError(f"vacuum of lake table {table!r} failed: {exc}") from exc


# delta-rs buffers a file's row groups until it closes the file: 64k-row groups in files of
# at most 64 MB keep a load's memory flat (1M rows: 1.41 -> 1.19 GB peak for the step) and
# ZSTD halves the table on disk next to the default Snappy.
_TARGET_FILE_SIZE = 64 * 2**20


def _writer_properties() -> WriterProperties:
    return WriterProperties(max_row_group_size=65_536, compression="ZSTD")


def _ident(name: str) -> str:
    # Names reaching SQL are table names and schema columns, checked against fixed patterns
    # or the table's schema; quoting keeps keywords such as date and hour plain columns.
    return '"' + name.replace('"', '""') + '"'


def _bucket_clause(table: str, schema: pa.Schema, key: str, buckets: int, bucket: int) -> str:
    if key not in schema.names:
        raise LakeError(f"lake table {table!r} has no column {key!r} to slice by")
    digits = [d for d in "0123456789abcdef" if int(d, 16) % buckets == bucket]
    last = f"lower(right({_ident(key)}, 1))"
    clause = f"{last} IN ({', '.join(_literal(d) for d in digits)})"
    if bucket == 0:  # keys not ending in a hex digit still belong to exactly one slice
        others = ", ".join(_literal(d) for d in "0123456789abcdef")
        clause = f"({clause} OR {last} NOT IN ({others}) OR {_ident(key)} IS NULL)"
    return clause


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _partition(table: str, value: tuple[str, str]) -> tuple[str, str]:
    try:
        date, hour = value
    except (TypeError, ValueError):
        raise ValueError(f"partition for lake table {table!r} must be a (date, hour) pair, got {value!r}") from None
    if not (isinstance(date, str) and _DATE.match(date) and isinstance(hour, str) and _HOUR.match(hour)):
        raise ValueError(f"partition for lake table {table!r} must look like ('2026-01-01', '07'), got {value!r}")
    return date, hour


def _dedupe(rows: pa.Table, key: str) -> pa.Table:
    """Keep the first row of each key (a lookback window can fetch a record twice)."""
    if pc.count_distinct(rows.column(key)).as_py() == rows.num_rows:
        return rows
    first = (
        rows.select([key])
        .append_column("__row", pa.array(range(rows.num_rows), pa.int64()))
        .group_by(key, use_threads=False)
        .aggregate([("__row", "min")])
        .column("__row_min")
        .combine_chunks()
    )
    return rows.take(first.take(pc.sort_indices(first)))
