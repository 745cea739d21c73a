"""The SQLite catalog's alert outbox: alerts waiting for delivery, delivered, or given up on.

One row per alert and notification target, keyed by a delivery id derived from both, so an
alert raised twice is stored (and sent) once. Sensors add rows; a delivery pass takes the
ones that are due, tries them, and records each attempt's outcome; ``vault alerts`` and
``GET /v1/alerts`` list them. The table is created on first use (like idempotency keys), so
this part of the catalog stands alone; ``CREATE ... IF NOT EXISTS`` makes two first users harmless.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import fields

from vault_pipeline.storage.catalog import AlertDelivery, CatalogError
from vault_pipeline.storage.sqlite_common import _check_page, _columns, _placeholders, _to_json, _where

ALERT_FIELDS = tuple(f.name for f in fields(AlertDelivery))
# What an attempt changes; everything else is fixed when the alert is raised.
_ATTEMPT_FIELDS = ("status", "attempts", "next_attempt_at", "last_attempt_at", "delivered_at", "last_error")

_ALERTS_SCHEMA = (
    'CREATE TABLE IF NOT EXISTS alert_outbox ("delivery_id" TEXT PRIMARY KEY NOT NULL, "event_id" TEXT NOT NULL, '
    '"kind" TEXT NOT NULL, "severity" TEXT NOT NULL, "title" TEXT NOT NULL, "target" TEXT NOT NULL, '
    '"target_type" TEXT NOT NULL, "created_at" TEXT NOT NULL, "status" TEXT NOT NULL, "attempts" INTEGER NOT NULL, '
    '"next_attempt_at" TEXT NOT NULL, "last_attempt_at" TEXT, "delivered_at" TEXT, "last_error" TEXT, '
    '"event" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS alert_outbox_due ON alert_outbox ("status", "next_attempt_at", "delivery_id")',
    'CREATE INDEX IF NOT EXISTS alert_outbox_by_time ON alert_outbox ("created_at", "delivery_id")',
)


def _row(delivery: AlertDelivery) -> tuple:
    return tuple(_to_json(delivery.event) if name == "event" else getattr(delivery, name) for name in ALERT_FIELDS)


def _delivery(row: Sequence) -> AlertDelivery:
    values = dict(zip(ALERT_FIELDS, row, strict=True))
    values["event"] = json.loads(values["event"])
    return AlertDelivery(**values)


class SqliteAlerts:
    """SqliteCatalog's alert outbox (a mixin: ``_read``, ``_write`` and ``path`` are SqliteCatalog's)."""

    def _alerts_table(self) -> None:
        if getattr(self, "_alerts_ready", False):
            return
        try:
            with self._write() as db:
                for statement in _ALERTS_SCHEMA:
                    db.execute(statement)
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: cannot create the alert_outbox table: {exc}") from exc
        self._alerts_ready = True

    def enqueue_alerts(self, deliveries: Sequence[AlertDelivery]) -> int:
        self._alerts_table()
        if not deliveries:
            return 0
        try:
            with self._write() as db:
                before = db.total_changes
                db.executemany(f"INSERT OR IGNORE INTO alert_outbox ({_columns(ALERT_FIELDS)}) "
                               f"VALUES ({_placeholders(len(ALERT_FIELDS))})", [_row(d) for d in deliveries])
                return db.total_changes - before
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: enqueue_alerts failed: {exc}") from exc

    def due_alerts(self, *, now: str, limit: int = 100) -> list[AlertDelivery]:
        self._alerts_table()
        _check_page(limit, 0)
        rows = self._read(f"SELECT {_columns(ALERT_FIELDS)} FROM alert_outbox WHERE \"status\" = 'pending' "
                          'AND "next_attempt_at" <= ? ORDER BY "next_attempt_at", "delivery_id" LIMIT ?', (now, limit))
        return [_delivery(row) for row in rows]

    def save_alert_attempt(self, delivery: AlertDelivery) -> None:
        self._alerts_table()
        assignments = ", ".join(f'"{name}" = ?' for name in _ATTEMPT_FIELDS)
        try:
            with self._write() as db:
                db.execute(f'UPDATE alert_outbox SET {assignments} WHERE "delivery_id" = ?',
                           [*(getattr(delivery, name) for name in _ATTEMPT_FIELDS), delivery.delivery_id])
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: save_alert_attempt failed: {exc}") from exc

    def get_alert(self, delivery_id: str) -> AlertDelivery | None:
        self._alerts_table()
        rows = self._read(f'SELECT {_columns(ALERT_FIELDS)} FROM alert_outbox WHERE "delivery_id" = ?', (delivery_id,))
        return _delivery(rows[0]) if rows else None

    def list_alerts(self, *, status: str | None = None, kind: str | None = None, limit: int = 100,
                    offset: int = 0) -> list[AlertDelivery]:
        self._alerts_table()
        _check_page(limit, offset)
        where, params = _where({"status": status, "kind": kind})
        rows = self._read(f"SELECT {_columns(ALERT_FIELDS)} FROM alert_outbox{where} "
                          'ORDER BY "created_at" DESC, "delivery_id" LIMIT ? OFFSET ?', [*params, limit, offset])
        return [_delivery(row) for row in rows]

    def count_alerts(self, *, status: str | None = None, kind: str | None = None) -> int:
        self._alerts_table()
        where, params = _where({"status": status, "kind": kind})
        return int(self._read(f"SELECT COUNT(*) FROM alert_outbox{where}", params)[0][0])

    def requeue_alerts(self, delivery_ids: Sequence[str] | None, *, now: str) -> int:
        self._alerts_table()
        reset = "\"status\" = 'pending', \"attempts\" = 0, \"next_attempt_at\" = ?"
        try:
            with self._write() as db:
                if delivery_ids is None:
                    return db.execute(f"UPDATE alert_outbox SET {reset} WHERE \"status\" = 'failed'", (now,)).rowcount
                changed = 0
                for delivery_id in dict.fromkeys(delivery_ids):
                    changed += db.execute(f"UPDATE alert_outbox SET {reset} WHERE \"delivery_id\" = ? "
                                          "AND \"status\" IN ('failed', 'pending')", (now, delivery_id)).rowcount
                return changed
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: requeue_alerts failed: {exc}") from exc
