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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, QueryBuilder, WriterProperties, write_deltalake
from deltalake import Field as DeltaField
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


@dataclass(frozen=True, slots=True)
class ReplaceStats:  # -- marts: replace_partition
    rows: int  # rows the partition holds now
    replaced: int  # rows it held before
    version: int | None  # table version after; None when the table does not exist
    changed: bool  # False: the rows were already there, no version was added


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

    def merge(self, table: str, rows: pa.Table, key: str = "log_id", *, evolve: bool = False) -> MergeStats:
        """Insert the rows whose ``key`` is not in the table yet; never update or delete.

        ``merge_batches`` for rows already in memory, declared to fall into their own (date,
        hour) partitions. The table is created (partitioned by date, hour) on first use; rows
        repeating a key within ``rows`` are collapsed to the first one. Columns ``rows`` adds to the
        table are refused unless ``evolve`` (see ``merge_batches``).
        """
        if rows.num_rows == 0:
            return MergeStats(0, 0, self.version(table))
        rows = self._checked(table, rows, key)
        hours = pc.unique(pc.binary_join_element_wise(rows.column("date"), rows.column("hour"), "|")).to_pylist()
        return self.merge_batches(table, rows.to_batches(), rows.schema,
                                  partitions=[tuple(h.split("|", 1)) for h in hours], key=key, evolve=evolve)

    def merge_batches(
        self,
        table: str,
        batches: Iterable[pa.RecordBatch],
        schema: pa.Schema,
        *,
        partitions: list[tuple[str, str]],
        key: str = "log_id",
        exclude: pa.Array | None = None,
        evolve: bool = True,
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

        With ``evolve`` the table first gains the declared ``schema``'s new columns (rows written
        before read them as null) and has integer columns it declares float64 widened (``_evolve``).
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
        if evolve:
            self._evolve(table, dt, schema)
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

    def _evolve(self, table: str, dt: DeltaTable, schema: pa.Schema) -> None:
        """Schema evolution, before a load: columns of ``schema`` the table lacks are added
        (nullable; rows written before read them as null), and integer columns ``schema``
        declares as float64 are widened by rewriting the table once (old values cast exactly
        as float64, in one commit, streamed batch by batch). Any other difference is left for
        ``_conform`` to report."""
        current = pa.schema(dt.schema().to_arrow())
        widened = [f.name for f in schema if f.name in current.names and pa.types.is_integer(current.field(f.name).type)
                   and pa.types.is_float64(f.type)]
        added = [f for f in schema if f.name not in current.names]
        if not (widened or added):
            return
        try:
            if widened:
                target = pa.schema([schema.field(f.name) if f.name in widened else f for f in current] + added)
                old = QueryBuilder().register(table, dt).execute(f"SELECT * FROM {_ident(table)}")
                rewritten = (_widened(pa.record_batch(b), current, target) for b in old)
                write_deltalake(dt, pa.RecordBatchReader.from_batches(target, rewritten), mode="overwrite",
                                schema_mode="overwrite", partition_by=list(PARTITION_COLUMNS),
                                storage_options=self.storage_options or None, target_file_size=_TARGET_FILE_SIZE,
                                writer_properties=_writer_properties())
            else:
                dt.alter.add_columns([DeltaField.from_arrow(f.with_nullable(True)) for f in added])
        except (DeltaError, OSError, pa.ArrowException) as exc:
            raise LakeError(f"schema evolution of lake table {table!r} (add {[f.name for f in added]}, widen "
                            f"{widened} to float64) failed: {exc}") from exc
        dt.update_incremental()

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
        as_of: str | datetime | None = None,
        version: int | None = None,
        dates: tuple[str, str] | None = None,
    ) -> tuple[pa.Table, pa.Schema] | None:
        """Run one SELECT over ``table`` in delta-rs's own engine (DataFusion).

        Reads go through QueryBuilder, not a pyarrow dataset: the dataset path does its I/O
        through a Python filesystem shim called from Arrow's C++ threads, and a thread still
        inside such a call when the interpreter shuts down aborts the process (rc 134).
        DataFusion does all I/O in Rust. Filters on date and hour prune whole files.
        """
        pairs = None if partitions is None else [_partition(table, p) for p in partitions]
        # Time travel (as_of / version): see the lifecycle section.
        dt = self._open(table) if as_of is None and version is None else self._open_at(table, as_of, version)
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
        if dates is not None:  # an inclusive range of date partitions (YYYY-MM-DD), pruning whole files
            clauses.append(f"{_ident('date')} >= {_literal(dates[0])} AND {_ident('date')} <= {_literal(dates[1])}")
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
        as_of: str | datetime | None = None,
        version: int | None = None,
        dates: tuple[str, str] | None = None,
    ) -> pa.Table:
        """Rows of ``table``, optionally only some ``(date, hour)`` partitions or an inclusive
        range of ``dates`` (``(first, last)``, YYYY-MM-DD) and one provider (and the first
        ``limit`` by ``order_by``, e.g. a preview).

        A table that does not exist yet reads as an empty table with no columns (``num_rows``
        0), so callers can treat "never loaded" like "nothing loaded". Columns come back in
        the table's own types (DataFusion's string views are cast back to strings).
        """
        selected = self._select(table, list(columns) if columns is not None else "*", partitions, provider,
                                order_by=order_by, limit=limit, as_of=as_of, version=version, dates=dates)
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
        as_of: str | datetime | None = None,
        version: int | None = None,
    ) -> Iterator[pa.Table]:
        """``read`` in ``buckets`` (1, 2, 4, 8 or 16) slices by the last hex digit of ``key``.

        Every copy of a key lands in the same slice, so a check of uniqueness per slice is a
        check over all rows, while only one slice is in memory at a time.
        """
        if buckets not in (1, 2, 4, 8, 16):
            raise ValueError(f"buckets must be 1, 2, 4, 8 or 16, got {buckets!r}")
        what = list(columns) if columns is not None else "*"
        for bucket in range(buckets):
            selected = self._select(table, what, partitions, provider, (key, buckets, bucket), as_of=as_of, version=version)
            if selected is None:
                return
            result, schema = selected
            yield result.cast(pa.schema([schema.field(name) for name in result.column_names]))

    def resolve_version(self, table: str, *, as_of: str | datetime | None = None,
                        version: int | None = None) -> int | None:
        """The version a read ``as_of``/at ``version`` sees (the latest when neither is given);
        None when the table does not exist, or did not exist yet at ``as_of``. A version the
        table does not hold (or no longer reaches) is a LakeError."""
        latest = self.version(table)
        if as_of is None and (version is None or version == latest):
            return latest  # no look at the history needed (S3-compatible stores fail listing it)
        if latest is None:
            return None
        try:
            return self._open_at(table, as_of, version).version()
        except LakeError as exc:
            if as_of is not None and "did not exist yet" in str(exc):
                return None
            raise

    def sql(self, table: str, compose: Callable[[frozenset[str]], str], *, version: int | None = None) -> pa.Table:
        """Run one query of DataFusion SQL (delta-rs's engine, in Rust) over ``table`` at ``version``.

        ``compose`` gets the names of the table's columns at that version and returns the SQL,
        naming the table as ``sql_ident(table)`` and quoting values with ``sql_literal``: an
        aggregate runs where the data is, so only its result reaches Python. Filters on date
        and hour prune whole files. A table that does not exist reads as no rows.
        """
        dt = self._open(table)
        if dt is None:
            return pa.table({})
        if version is not None and version != dt.version():  # the latest needs no look at the history
            dt = self._open_at(table, None, version)
        statement = compose(frozenset(pa.schema(dt.schema().to_arrow()).names))
        try:
            return pa.table(QueryBuilder().register(table, dt).execute(statement))
        except (DeltaError, OSError, pa.ArrowException) as exc:
            raise LakeError(f"cannot query lake table {table!r} at {self.table_uri(table)}: {exc}") from exc

    def count(self, table: str, *, partitions: list[tuple[str, str]] | None = None, provider: str | None = None,
              as_of: str | datetime | None = None, version: int | None = None) -> int:
        selected = self._select(table, "COUNT(*) AS n", partitions, provider, as_of=as_of, version=version)
        return 0 if selected is None else int(selected[0].column("n")[0].as_py())

    # -- marts ---------------------------------------------------------------------------

    def replace_partition(
        self,
        table: str,
        rows: pa.Table,
        *,
        predicate_partitions: dict[str, str],
        schema: pa.Schema,
        partition_by: tuple[str, ...] = PARTITION_COLUMNS,
    ) -> ReplaceStats:
        """Make the rows of ``table`` where every ``column = value`` of ``predicate_partitions``
        holds exactly ``rows`` (a mart's hour x provider); ``{}`` means the whole table.

        One delta-rs ``write_deltalake(mode="overwrite", predicate=...)`` commit, which removes
        only the matching rows, or a ``delete`` when ``rows`` is empty. Rows equal to what is
        there already (in any order) add no version, so re-materializing an hour changes
        nothing. Every row must satisfy the predicate. The caller holds the table's lease.
        """
        uri = self.table_uri(table)
        for column, value in predicate_partitions.items():
            if column not in schema.names or not _COLUMN_NAME.match(column):
                raise ValueError(f"invalid predicate column {column!r} for lake table {table!r}")
            if not isinstance(value, str):
                raise ValueError(f"predicate value for {column!r} must be a string, got {value!r}")
        missing = [n for n in schema.names if n not in rows.column_names]
        if missing:
            raise LakeError(f"rows for lake table {table!r} lack columns {missing}")
        rows = rows.select(schema.names).cast(schema)
        for column, value in predicate_partitions.items():
            if rows.num_rows and not pc.all(pc.fill_null(pc.equal(rows.column(column), value), False)).as_py():
                raise LakeError(f"rows for lake table {table!r} do not all have {column} = {value!r}")
        predicate = " AND ".join(f"{_ident(c)} = {_literal(v)}" for c, v in sorted(predicate_partitions.items()))
        dt = self._open(table)
        if dt is None:
            if not rows.num_rows:
                return ReplaceStats(rows=0, replaced=0, version=None, changed=False)
            try:
                dt = DeltaTable.create(uri, schema, mode="ignore", partition_by=list(partition_by) or None,
                                       storage_options=self.storage_options or None)
            except (DeltaError, OSError) as exc:
                dt = self._open(table)
                if dt is None:
                    raise LakeError(f"cannot create lake table {table!r} at {uri}: {exc}") from exc
        target = pa.schema(dt.schema().to_arrow())
        if target.names != schema.names:
            raise LakeError(f"lake table {table!r} has columns {target.names}, the rows {schema.names}")
        rows = rows.cast(target)
        sql = f"SELECT * FROM {_ident(table)}" + (f" WHERE {predicate}" if predicate else "")
        try:
            current = pa.table(QueryBuilder().register(table, dt).execute(sql))
        except (DeltaError, OSError, pa.ArrowException) as exc:
            raise LakeError(f"cannot read lake table {table!r} at {uri}: {exc}") from exc
        current = current.select(target.names).cast(target) if current.num_columns else target.empty_table()
        if _same_rows(current, rows):
            return ReplaceStats(rows=rows.num_rows, replaced=current.num_rows, version=dt.version(), changed=False)
        try:
            if rows.num_rows:
                write_deltalake(dt, rows, mode="overwrite", predicate=predicate or None,
                                partition_by=list(partition_by) or None, storage_options=self.storage_options or None,
                                writer_properties=_writer_properties())
            else:
                dt.delete(predicate or None)
        except Exception as exc:  # DeltaError, OSError, ArrowException
            raise LakeError(f"replacing {predicate or 'all rows'} of lake table {table!r} at {uri} failed: {exc}") from exc
        dt.update_incremental()
        return ReplaceStats(rows=rows.num_rows, replaced=current.num_rows, version=dt.version(), changed=True)

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


# For callers composing ``DeltaLake.sql`` statements.
sql_ident, sql_literal = _ident, _literal


def _partition(table: str, value: tuple[str, str]) -> tuple[str, str]:
    try:
        date, hour = value
    except (TypeError, ValueError):
        raise ValueError(f"partition for lake table {table!r} must be a (date, hour) pair, got {value!r}") from None
    if not (isinstance(date, str) and _DATE.match(date) and isinstance(hour, str) and _HOUR.match(hour)):
        raise ValueError(f"partition for lake table {table!r} must look like ('2026-01-01', '07'), got {value!r}")
    return date, hour


def _widened(batch: pa.RecordBatch, current: pa.Schema, target: pa.Schema) -> pa.RecordBatch:
    """A batch of the table as it was, in the evolved ``target`` schema (new columns null)."""
    batch = pa.Table.from_batches([batch]).select(current.names).cast(current)
    for column in target:
        if column.name not in batch.column_names:
            batch = batch.append_column(column, pa.nulls(batch.num_rows, column.type))
    return pa.RecordBatch.from_pylist([], schema=target) if not batch.num_rows else \
        batch.select(target.names).cast(target).combine_chunks().to_batches()[0]


def _same_rows(a: pa.Table, b: pa.Table) -> bool:
    """The same multiset of rows (marts: a replace with nothing new adds no version)."""
    if a.num_rows != b.num_rows or a.schema != b.schema:
        return False
    return sorted(map(repr, a.to_pylist())) == sorted(map(repr, b.to_pylist()))


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


# -- lifecycle --- (module level: the policy, the stats and time parsing of DeltaLake's lifecycle section)

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
