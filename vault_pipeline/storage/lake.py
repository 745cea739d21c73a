"""The Lake adapter: the vault's analytics fact tables as Delta tables (delta-rs).

Tables are partitioned by event ``date`` and ``hour`` under a local directory
(``$VAULT_HOME/lake``) or an ``s3://bucket/prefix`` root. Loading inserts only rows whose
record id the hour's partitions do not hold yet (an anti-join on the key column and one
streamed append), so re-running an hourly partition never duplicates a row and, when nothing
is new, adds no table version. Reads run in delta-rs's own query engine (``QueryBuilder``), never
through pyarrow (``to_pyarrow_table`` or its dataset), which can make the process abort at exit
on deltalake 1.6. For S3 the caller passes delta-rs ``storage_options`` (credentials,
``AWS_REGION``, plus ``AWS_ENDPOINT_URL``/``AWS_ALLOW_HTTP`` for S3-compatible endpoints);
every commit on S3 is a conditional put (``conditional_put=etag``, added when not given), so
writers on several machines never overwrite each other's table versions; settings that would
make commits unsafe, or only look safe (``AWS_S3_ALLOW_UNSAFE_RENAME``, the DynamoDB
``AWS_S3_LOCKING_PROVIDER`` deltalake 1.x removed), are refused (``s3_commit_options`` in
storage/lake_common.py). This module holds opening and reading; the writes
are in storage/lake_writes.py, time travel and maintenance in storage/lake_lifecycle.py, what
they share in storage/lake_common.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder
from deltalake.exceptions import DeltaError, TableNotFoundError

from vault_pipeline.storage.lake_common import (  # noqa: F401 - re-exported: the lake's public names
    _TABLE_NAME,
    PARTITION_COLUMNS,
    LakeError,
    MergeStats,
    ReplaceStats,
    _bucket_clause,
    _ident,
    _literal,
    _partition,
    s3_commit_options,
    sql_ident,
    sql_literal,
)
from vault_pipeline.storage.lake_lifecycle import LakeLifecycle, MaintenanceStats, TablePolicy, as_of_time  # noqa: F401
from vault_pipeline.storage.lake_writes import LakeWrites


class DeltaLake(LakeWrites, LakeLifecycle):
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
        if "://" in self.root:  # S3: delta-rs reads AWS_* from the environment as well
            self.storage_options = s3_commit_options(self.storage_options, dict(os.environ))

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

    def column_names(self, table: str) -> list[str]:
        """The table's columns at its latest version, in order; none when it does not exist."""
        dt = self._open(table)
        return [] if dt is None else list(pa.schema(dt.schema().to_arrow()).names)

    # -- reading -------------------------------------------------------------------------

    def _select(self, table: str, what: str | list[str], *args: Any, **options: Any) -> tuple[pa.Table, pa.Schema] | None:
        """``_query``, read whole."""
        query = self._query(table, what, *args, **options)
        if query is None:
            return None
        reader, schema = query
        try:
            return pa.table(reader), schema
        except (DeltaError, OSError, pa.ArrowException) as exc:
            raise LakeError(f"cannot read lake table {table!r} at {self.table_uri(table)}: {exc}") from exc

    def _query(
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
    ) -> tuple[Any, pa.Schema] | None:
        """One SELECT over ``table`` in delta-rs's own engine (DataFusion), as a stream of batches.

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
            return QueryBuilder().register(table, dt).execute(sql), schema
        except (DeltaError, OSError, pa.ArrowException) as exc:
            raise LakeError(f"cannot read lake table {table!r} at {self.table_uri(table)}: {exc}") from exc

    def iter_batches(
        self,
        table: str,
        *,
        columns: list[str],
        partitions: list[tuple[str, str]] | None = None,
        provider: str | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """``columns`` of ``table``'s rows (optionally some ``(date, hour)`` partitions and one
        provider) as DataFusion produces them, a batch of a few thousand rows at a time: a scan
        of a key column over an hour holds one batch, not the column. No rows when the table
        does not exist; columns come back in the table's own types."""
        query = self._query(table, list(columns), partitions, provider)
        if query is None:
            return
        reader, schema = query
        types = pa.schema([schema.field(name) for name in columns])
        try:
            # Through pyarrow's reader, which waits for each batch without the GIL: delta-rs's
            # own iterator holds it while DataFusion fetches, stalling every other thread of
            # the process (an S3 endpoint served from the same process never answers).
            for batch in pa.RecordBatchReader.from_stream(reader):
                yield batch.cast(types)
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
