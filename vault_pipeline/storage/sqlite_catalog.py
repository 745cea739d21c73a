"""SqliteCatalog: the embedded default index of the vault, a single file at ``$VAULT_HOME/catalog.db``.

It answers the same questions as the production MongoDB catalog (which records landed, where
their bytes live, their checksums, dead letters, watermarks and the artifact index) from one
SQLite file, so a laptop or a CI job runs the whole vault without a database server. The file
is opened in WAL mode so the HTTP API's thread pool and Dagster's step subprocesses can read
while an hourly partition is being indexed. This module opens the file and creates its tables;
the catalog's methods are in storage/sqlite_records.py (records and dead letters),
storage/sqlite_provenance.py (artifacts, ledger, promotions and quarantine) and
storage/sqlite_operations.py (watermarks, leases, idempotency keys, access log), what they
share in storage/sqlite_common.py.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vault_pipeline.storage.catalog import VALID, Catalog, CatalogError
from vault_pipeline.storage.sqlite_common import ACCESS_FIELDS, ARTIFACT_FIELDS, DEAD_LETTER_FIELDS, RECORD_FIELDS  # noqa: F401
from vault_pipeline.storage.sqlite_common import _columns
from vault_pipeline.storage.sqlite_alerts import SqliteAlerts
from vault_pipeline.storage.sqlite_operations import SqliteOperations
from vault_pipeline.storage.sqlite_provenance import SqliteProvenance
# Re-exported; the batch sizes are read (and shrunk by the contract tests) in sqlite_records.
from vault_pipeline.storage.sqlite_records import ID_PROBE, IN_CHUNK, PARTITION_PAGE, UPSERT_CHUNK  # noqa: F401
from vault_pipeline.storage.sqlite_records import SqliteRecords

SCHEMA_VERSION = 1


# records is an ordinary rowid table: new rows append at the end of the table b-tree and only
# the small log_id index takes random inserts, which keeps indexing fast as the file grows to
# many millions of records (a table keyed by log_id rewrites random 300-byte rows instead).
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS records (
    "log_id" TEXT NOT NULL UNIQUE,
    "provider" TEXT NOT NULL,
    "partition" TEXT NOT NULL,
    "natural_id" TEXT NOT NULL,
    "object_key" TEXT NOT NULL,
    "offset" INTEGER NOT NULL,
    "length" INTEGER NOT NULL,
    "checksum" TEXT NOT NULL,
    "timestamp" TEXT,
    "run_id" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT '{VALID}',
    "ingested_at" TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS records_by_time ON records ("timestamp", "log_id");
CREATE INDEX IF NOT EXISTS records_by_provider_time ON records ("provider", "timestamp", "log_id");
CREATE INDEX IF NOT EXISTS records_by_partition ON records ("partition", "log_id");

CREATE TABLE IF NOT EXISTS watermarks (
    "provider" TEXT PRIMARY KEY NOT NULL,
    "watermark" TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS dead_letters (
    "dead_letter_id" TEXT PRIMARY KEY NOT NULL,
    "provider" TEXT NOT NULL,
    "partition" TEXT NOT NULL,
    "stage" TEXT NOT NULL,
    "reason" TEXT NOT NULL,
    "object_key" TEXT,
    "log_id" TEXT,
    "offset" INTEGER,
    "length" INTEGER,
    "created_at" TEXT NOT NULL,
    "detail" TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_provider ON dead_letters ("provider", "partition", "dead_letter_id");
CREATE INDEX IF NOT EXISTS dead_letters_by_partition ON dead_letters ("partition", "dead_letter_id");
CREATE INDEX IF NOT EXISTS dead_letters_by_log_id ON dead_letters ("log_id", "stage");

CREATE TABLE IF NOT EXISTS leases (
    "name" TEXT PRIMARY KEY NOT NULL,
    "holder" TEXT NOT NULL,
    "expires_at" REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS ledger (
    "provider" TEXT NOT NULL,
    "sequence" INTEGER NOT NULL,
    "partition" TEXT NOT NULL,
    "entry" TEXT NOT NULL,
    PRIMARY KEY ("provider", "sequence")
);
CREATE INDEX IF NOT EXISTS ledger_by_partition ON ledger ("partition", "sequence");

CREATE TABLE IF NOT EXISTS ledger_checkpoints (
    "provider" TEXT PRIMARY KEY NOT NULL,
    "checkpoint" TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS access_log (
    "at" TEXT NOT NULL,
    "principal" TEXT NOT NULL,
    "method" TEXT NOT NULL,
    "path" TEXT NOT NULL,
    "status" INTEGER NOT NULL,
    "latency_ms" REAL NOT NULL,
    "client" TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS access_log_by_principal ON access_log ("principal", "at");
-- A period's summary reads only these indexes (covering): a month is a range scan, not the table.
CREATE INDEX IF NOT EXISTS access_log_by_time ON access_log ("at", "principal", "status", "method", "path");
CREATE INDEX IF NOT EXISTS access_log_by_status ON access_log ("status", "at");

CREATE TABLE IF NOT EXISTS artifacts (
    "artifact_id" TEXT PRIMARY KEY NOT NULL,
    "kind" TEXT NOT NULL,
    "provider" TEXT NOT NULL,
    "partition" TEXT NOT NULL,
    "location" TEXT NOT NULL,
    "checksum" TEXT,
    "size" INTEGER,
    "run_id" TEXT NOT NULL,
    "created_at" TEXT NOT NULL,
    "upstream" TEXT NOT NULL,
    "metadata" TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS artifacts_by_partition ON artifacts ("partition", "kind", "artifact_id");
CREATE INDEX IF NOT EXISTS artifacts_by_provider ON artifacts ("provider", "partition", "kind", "artifact_id");

CREATE TABLE IF NOT EXISTS promotions (
    "promotion_id" TEXT PRIMARY KEY NOT NULL,
    "document" TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS quarantine (
    "log_id" TEXT PRIMARY KEY NOT NULL,
    "provider" TEXT NOT NULL,
    "partition" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "item" TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantine_by_partition ON quarantine ("partition", "log_id");
"""


_READ_CACHE_KIB = -16384  # negative: KiB, so 16 MiB
_BULK_CACHE_KIB = -262144  # 256 MiB while an hour is indexed
# Records upserted per transaction while an hour is indexed (``bulk_writes``): a batch's random
# inserts dirty most leaf pages of the log_id and partition indexes, and each commit writes
# every dirty page to the WAL (and a checkpoint again to the file), so four batches a commit
# write each page a quarter as often (a 1M-record hour's record_index 10.6-10.9 -> 8.5-9.0 s).
BULK_TRANSACTION_ROWS = 200_000


class SqliteCatalog(SqliteRecords, SqliteProvenance, SqliteOperations, SqliteAlerts, Catalog):
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by every thread; the lock serialises all use of it so a
        # reader never sees another thread's half-finished write transaction. Other
        # processes (Dagster step subprocesses) coordinate through WAL and busy_timeout.
        self._lock = threading.RLock()
        self._bulk_thread: int | None = None  # the thread indexing an hour in ``bulk_writes``
        self._grouped: int | None = None  # rows upserted in its open transaction; None: none open
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            # 16 KiB pages (effective only when the file is created): four index b-trees take
            # a random insert per record, and bigger pages split less often; indexing a
            # million records measured 20 % faster than with the 4 KiB default.
            self._db.execute("PRAGMA page_size = 16384")
            self._db.execute("PRAGMA journal_mode = WAL")
            # NORMAL is crash-safe under WAL; a power cut can lose only the last commits, and
            # re-running a partition re-indexes them idempotently.
            self._db.execute("PRAGMA synchronous = NORMAL")
            # Reads walk an index in order and are served by the OS cache; indexing raises the
            # page cache for as long as it lasts (``bulk_writes``). Checkpointing the WAL every
            # 64 MiB rather than every 1000 pages writes each hot page back less often.
            self._db.execute(f"PRAGMA cache_size = {_READ_CACHE_KIB}")
            self._db.execute("PRAGMA temp_store = MEMORY")
            page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
            self._db.execute(f"PRAGMA wal_autocheckpoint = {2**26 // page_size}")
            with self._write():
                self._create_schema()
        except sqlite3.Error as exc:
            raise CatalogError(f"cannot open SQLite catalog at {self.path}: {exc}") from exc

    @contextmanager
    def bulk_writes(self) -> Iterator[None]:
        # Indexing an hour means random inserts into the log_id and partition indexes: with a
        # small page cache every insert misses once the table holds a few hundred thousand
        # records. 256 MiB (an upper bound, filled only as pages are touched) keeps a
        # million-record hour's index pages in memory; after, the cache is cut back and its
        # memory freed (``shrink_memory``), or every later stage of the run would carry it.
        # This thread's upserts meanwhile share transactions of BULK_TRANSACTION_ROWS; the
        # last is committed here, whatever happens (as each batch was before: what was
        # indexed stays, and re-running the hour is idempotent).
        with self._lock:
            if self._bulk_thread is not None:
                raise CatalogError(f"SQLite catalog {self.path}: an hour is already being indexed in bulk")
            self._db.execute(f"PRAGMA cache_size = {_BULK_CACHE_KIB}")
            self._bulk_thread = threading.get_ident()
        try:
            yield
        finally:
            with self._lock:
                self._bulk_thread = None
                try:
                    self._end_group(commit=True)
                finally:
                    self._db.execute(f"PRAGMA cache_size = {_READ_CACHE_KIB}")
                    self._db.execute("PRAGMA shrink_memory")

    @contextmanager
    def _upsert_transaction(self, rows: int) -> Iterator[sqlite3.Connection]:
        """The transaction an upsert of ``rows`` runs in: its own, or (in the thread indexing in
        ``bulk_writes``) the group's, committed once BULK_TRANSACTION_ROWS are in it. The group
        holds the connection's lock from its BEGIN to its COMMIT, so no other thread writes into
        it or reads it half-done; a failure rolls the whole group back."""
        if self._bulk_thread != threading.get_ident():
            with self._write() as db:
                yield db
            return
        if self._grouped is None:
            self._lock.acquire()  # released by _end_group
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except BaseException:
                self._lock.release()
                raise
            self._grouped = 0
        try:
            yield self._db
        except BaseException:
            self._end_group(commit=False)
            raise
        self._grouped += rows
        if self._grouped >= BULK_TRANSACTION_ROWS:
            self._end_group(commit=True)

    def _end_group(self, *, commit: bool) -> None:
        """Commit (or roll back) the bulk upserts' open transaction, if one is open, and let go of its lock."""
        if self._grouped is None:
            return
        self._grouped = None
        try:
            if commit:
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: committing indexed records: {exc}") from exc
        finally:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._lock.release()

    def _create_schema(self) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the file's write lock up front, so two
        processes never deadlock trying to upgrade read locks."""
        with self._lock:
            if self._bulk_thread == threading.get_ident():
                self._end_group(commit=True)  # another write by the indexing thread: the group first
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                # also after a failed COMMIT, so the shared connection is never left mid-transaction
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise CatalogError(f"SQLite catalog {self.path}: {exc}") from exc

    def _copy_partition_records(self, partition: str, into: sqlite3.Connection, table: str) -> int:
        # The catalog file attached to the workspace and copied by one INSERT ... SELECT: one
        # read transaction (a consistent snapshot) and no Python object per record (1M records:
        # 5.66 s through the port's paging, 0.95 s so). Only this class itself: a subclass (a
        # test double counting or failing reads) goes through its own reads.
        if type(self) is not SqliteCatalog:
            return super()._copy_partition_records(partition, into, table)
        into.commit()  # ATTACH is refused inside a transaction
        into.execute("ATTACH DATABASE ? AS vault_catalog", (str(self.path.resolve()),))
        # The partition index visits the records table in log_id order, at random: with the
        # default 2 MB page cache even the tables' interior pages were read again and again
        # (5M records 13.6-14.2 s; with 32 MiB, given back at DETACH, 6.5-8.2 s; 1M unchanged).
        into.execute("PRAGMA vault_catalog.cache_size = -32768")
        try:
            copied = into.execute(
                f'INSERT INTO {table} SELECT {_columns(RECORD_FIELDS)} FROM vault_catalog.records '
                'WHERE "partition" = ? ORDER BY "log_id"', (partition,)).rowcount
            into.commit()
        except sqlite3.Error as exc:
            into.rollback()
            raise CatalogError(f"SQLite catalog {self.path}: copying {partition}'s records: {exc}") from exc
        finally:
            into.execute("DETACH DATABASE vault_catalog")
        return copied

    def worker_opener(self) -> Callable[[], SqliteCatalog] | None:
        # The file is the whole catalog: another process opens it by its path (WAL lets it read
        # while this one writes). Only this class itself: a subclass (a test double counting or
        # failing calls) would be re-opened as something else.
        if type(self) is not SqliteCatalog:
            return None
        return functools.partial(SqliteCatalog, self.path.absolute())

    def close(self) -> None:
        with self._lock:
            self._db.close()
