"""The SQLite catalog's bookkeeping of running the vault: watermarks, leases, idempotency keys, access log.

A provider's watermark (the newest event time landed) only ever moves forward; a lease lets
one holder at a time do what must not run twice at once, across processes, and expires so a
killed holder blocks the others only for its time to live; an idempotency key lets a client
repeat ``POST /v1/ingest`` and get the same job, its table created on first use; the access
log keeps every request to the API, and a period's compliance summary is counted from
covering indexes, so a month is a range scan rather than a read of the table.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from vault_pipeline.storage.catalog import (
    AUTH_FAILURE_STATUSES,
    AccessEntry,
    AccessSummary,
    CatalogError,
    IdempotencyRecord,
)
from vault_pipeline.storage.sqlite_common import ACCESS_FIELDS, _check_page, _columns, _placeholders, _where


class SqliteOperations:
    """SqliteCatalog's watermarks, leases, idempotency keys and access log (a mixin: ``_read``,
    ``_write`` and ``path`` are SqliteCatalog's)."""

    # watermarks --------------------------------------------------------------------------
    def get_watermark(self, provider: str) -> str | None:
        rows = self._read('SELECT "watermark" FROM watermarks WHERE "provider" = ?', (provider,))
        return rows[0][0] if rows else None

    def advance_watermark(self, provider: str, timestamp: str) -> str:
        try:
            with self._write() as db:
                # SQLite's two-argument max() compares text lexicographically, which is
                # chronological for fixed-width timestamps.
                db.execute(
                    'INSERT INTO watermarks ("provider", "watermark") VALUES (?, ?) '
                    'ON CONFLICT("provider") DO UPDATE SET "watermark" = max("watermark", excluded."watermark")',
                    (provider, timestamp),
                )
                return db.execute('SELECT "watermark" FROM watermarks WHERE "provider" = ?', (provider,)).fetchone()[0]
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: advance_watermark failed: {exc}") from exc

    # leases ------------------------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        now = time.time()
        try:
            with self._write() as db:
                db.execute(
                    'INSERT INTO leases ("name", "holder", "expires_at") VALUES (?, ?, ?) '
                    'ON CONFLICT("name") DO UPDATE SET "holder" = excluded."holder", "expires_at" = excluded."expires_at" '
                    'WHERE leases."holder" = excluded."holder" OR leases."expires_at" <= ?',
                    (name, holder, now + ttl_s, now))
                return db.execute('SELECT "holder" FROM leases WHERE "name" = ?', (name,)).fetchone()[0] == holder
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: acquire_lease {name!r} failed: {exc}") from exc

    def release_lease(self, name: str, holder: str) -> None:
        try:
            with self._write() as db:
                db.execute('DELETE FROM leases WHERE "name" = ? AND "holder" = ?', (name, holder))
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: release_lease {name!r} failed: {exc}") from exc

    def lease_holder(self, name: str) -> str | None:
        rows = self._read('SELECT "holder" FROM leases WHERE "name" = ? AND "expires_at" > ?', (name, time.time()))
        return rows[0][0] if rows else None

    # idempotency keys ---------------------------------------------------------------------
    # The table is created on first use rather than in _SCHEMA, so this section stands alone;
    # CREATE ... IF NOT EXISTS makes the race between two first users harmless.
    _IDEMPOTENCY_SCHEMA = (
        'CREATE TABLE IF NOT EXISTS idempotency_keys ("key_fingerprint" TEXT PRIMARY KEY NOT NULL, '
        '"request_fingerprint" TEXT NOT NULL, "job_id" TEXT NOT NULL, "created_at" TEXT NOT NULL, '
        '"expires_at" TEXT NOT NULL)',
        'CREATE INDEX IF NOT EXISTS idempotency_keys_by_expiry ON idempotency_keys ("expires_at")',
    )
    _IDEMPOTENCY_COLUMNS = '"key_fingerprint", "request_fingerprint", "job_id", "created_at", "expires_at"'

    def _idempotency_table(self) -> None:
        if getattr(self, "_idempotency_ready", False):
            return
        try:
            with self._write() as db:
                for statement in self._IDEMPOTENCY_SCHEMA:
                    db.execute(statement)
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: cannot create the idempotency_keys table: {exc}") from exc
        self._idempotency_ready = True

    def claim_idempotency_key(self, record: IdempotencyRecord) -> IdempotencyRecord:
        self._idempotency_table()
        try:
            with self._write() as db:
                # An expired record no longer holds its key: the new claim takes its place.
                db.execute('DELETE FROM idempotency_keys WHERE "key_fingerprint" = ? AND "expires_at" <= ?',
                           (record.key_fingerprint, record.created_at))
                db.execute(f"INSERT OR IGNORE INTO idempotency_keys ({self._IDEMPOTENCY_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                           (record.key_fingerprint, record.request_fingerprint, record.job_id, record.created_at,
                            record.expires_at))
                row = db.execute(f"SELECT {self._IDEMPOTENCY_COLUMNS} FROM idempotency_keys WHERE \"key_fingerprint\" = ?",
                                 (record.key_fingerprint,)).fetchone()
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: claim_idempotency_key failed: {exc}") from exc
        return IdempotencyRecord(*row)

    def get_idempotency_key(self, key_fingerprint: str, *, now: str) -> IdempotencyRecord | None:
        self._idempotency_table()
        rows = self._read(f"SELECT {self._IDEMPOTENCY_COLUMNS} FROM idempotency_keys "
                          'WHERE "key_fingerprint" = ? AND "expires_at" > ?', (key_fingerprint, now))
        return IdempotencyRecord(*rows[0]) if rows else None

    def purge_idempotency_keys(self, *, now: str) -> int:
        self._idempotency_table()
        try:
            with self._write() as db:
                return db.execute('DELETE FROM idempotency_keys WHERE "expires_at" <= ?', (now,)).rowcount
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: purge_idempotency_keys failed: {exc}") from exc

    # access log --------------------------------------------------------------------------
    def log_access(self, entries: Sequence[AccessEntry]) -> None:
        rows = [(e.at, e.principal, e.method, e.path, e.status, e.latency_ms, e.client) for e in entries]
        try:
            with self._write() as db:
                db.executemany(f"INSERT INTO access_log ({_columns(ACCESS_FIELDS)}) VALUES ({_placeholders(7)})", rows)
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: log_access failed: {exc}") from exc

    def list_access(self, *, principal: str | None = None, limit: int = 100, offset: int = 0) -> list[AccessEntry]:
        _check_page(limit, offset)
        where, params = _where({"principal": principal})
        rows = self._read(
            f"SELECT {_columns(ACCESS_FIELDS)} FROM access_log{where} ORDER BY \"at\" DESC, rowid DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [AccessEntry(*row) for row in rows]

    def summarise_access(self, *, start: str, end: str, failure_limit: int | None = None) -> AccessSummary:
        if failure_limit is not None and failure_limit < 0:
            raise ValueError(f"failure_limit must not be negative, not {failure_limit}")
        span = 'FROM access_log INDEXED BY access_log_by_time WHERE "at" >= ? AND "at" < ?'
        by_status = self._read(f'SELECT "principal", "status", COUNT(*) {span} GROUP BY "principal", "status" '
                               'ORDER BY "principal", "status"', (start, end))
        by_path = self._read(f'SELECT "method", "path", COUNT(*) {span} GROUP BY "method", "path" '
                             'ORDER BY "method", "path"', (start, end))
        failed = ('FROM access_log INDEXED BY access_log_by_status WHERE "status" IN (?, ?) '
                  'AND "at" >= ? AND "at" < ?')
        params = (*AUTH_FAILURE_STATUSES, start, end)
        failures_total = self._read(f"SELECT COUNT(*) {failed}", params)[0][0]
        limit = -1 if failure_limit is None else failure_limit  # SQLite: LIMIT -1 is no limit
        rows = self._read(f'SELECT {_columns(ACCESS_FIELDS)} {failed} ORDER BY "at", rowid LIMIT ?', (*params, limit))
        return AccessSummary(
            total=sum(row[2] for row in by_status),
            by_principal_status=[(p, int(st), int(n)) for p, st, n in by_status],
            by_method_path=[(m, p, int(n)) for m, p, n in by_path],
            auth_failures=[AccessEntry(*row) for row in rows],
            auth_failures_total=int(failures_total),
        )
