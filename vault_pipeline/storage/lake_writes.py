"""The Delta lake's writes: idempotent loads of fact rows and whole-partition replaces of marts.

``merge``/``merge_batches`` insert only rows whose key the hour's partitions do not hold yet (an
anti-join on the key column and one streamed append), repairing a partition that holds a key
twice or a row the load excludes, and evolving the schema (new columns, int widened to float)
when asked; ``replace_partition`` makes a mart's hour x provider hold exactly the given rows
in one predicate overwrite, adding no version when nothing changed. The caller holds the
table's lake-writer lease (defs/analytics/lake_lease.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, QueryBuilder, write_deltalake
from deltalake import Field as DeltaField
from deltalake.exceptions import DeltaError

from vault_pipeline.core.key_set import KeySet
from vault_pipeline.storage.lake_common import (
    _COLUMN_NAME,
    _STRING_TYPES,
    _TARGET_FILE_SIZE,
    PARTITION_COLUMNS,
    LakeError,
    MergeStats,
    ReplaceStats,
    _dedupe,
    _ident,
    _literal,
    _partition,
    _same_rows,
    _widened,
    _writer_properties,
)


class LakeWrites:
    """DeltaLake's writing methods (a mixin: ``_open``, ``_require`` and ``table_uri`` are DeltaLake's)."""

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
        distinct: bool = False,
    ) -> MergeStats:
        """``merge`` for a stream of batches: one commit, idempotent, memory bounded by a batch.

        An anti-join rather than a delta-rs merge: only the ``key`` column of the declared
        ``partitions`` is read (about 40 MB per million rows, kept as a ``core.key_set.KeySet``
        so each batch is checked in O(batch x log keys)), each batch is stripped of keys
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

        ``distinct`` is the caller's word that no key repeats within the stream (normalisation
        of a landed hour, whose catalog already made ``log_id`` unique): each batch is then
        checked against the table's keys alone, and the keys this load inserts are not
        collected, which at 5M records was 200 MB of the load's peak.

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
        seen = KeySet(present)  # the table's keys, then (unless distinct) every key this load inserts
        del present

        def new_keys(keys: pa.Array) -> pa.BooleanArray:
            return pc.invert(seen.contains(keys)) if distinct else seen.add_new(keys)

        def new_rows() -> Iterator[pa.RecordBatch]:
            for batch in itertools.chain([first], stream):
                if not batch.num_rows:
                    continue
                counts["source"] += batch.num_rows
                rows = self._conform(table, dt, self._checked(table, pa.Table.from_batches([batch]), key))
                where = pc.binary_join_element_wise(rows.column("date"), rows.column("hour"), "|")
                if not pc.all(pc.is_in(where, value_set=allowed)).as_py():
                    outside = sorted(set(pc.filter(where, pc.invert(pc.is_in(where, value_set=allowed))).to_pylist()))
                    raise LakeError(f"rows for lake table {table!r} fall outside the declared partitions: {outside[:5]}")
                if exclude is not None:
                    rows = rows.filter(pc.invert(pc.is_in(rows.column(key), value_set=exclude)))
                if rows.num_rows:  # new to the table and to this load; of repeated keys the first row
                    rows = rows.filter(new_keys(rows.column(key).cast(pa.string())))
                if rows.num_rows:
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
