"""The SQLite catalog's provenance: the artifact index, the ledger, promotions and quarantine.

Artifacts (raw objects, snapshots, validation and integrity reports, lake tables) are indexed
by partition and kind with their location, checksum and the artifacts they were derived from.
The ledger's signed entries and each provider's checkpoint are kept as the canonical JSON the
ledger produced, opaque here; a sequence number taken twice is a LedgerConflictError, which
is how two writers racing for the next entry learn that one lost. Promotion decisions and the
records quarantined on the way to the golden zone are JSON documents, with only the fields
they are filtered on also kept as columns.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import Any

from vault_pipeline.storage.catalog import Artifact, CatalogError, LedgerConflictError
from vault_pipeline.storage.sqlite_common import (
    ARTIFACT_FIELDS,
    _check_page,
    _columns,
    _placeholders,
    _to_json,
    _where,
)


class SqliteProvenance:
    """SqliteCatalog's artifact index, ledger, promotions and quarantine (a mixin: ``_read``,
    ``_write`` and ``path`` are SqliteCatalog's)."""

    # artifact index ----------------------------------------------------------------------
    def put_artifacts(self, artifacts: Sequence[Artifact]) -> None:
        if not artifacts:
            return
        artifact_head = attrgetter(*ARTIFACT_FIELDS[:-2])  # every field but upstream and metadata
        rows = [
            (*artifact_head(artifact), _to_json(list(artifact.upstream)), _to_json(artifact.metadata))
            for artifact in artifacts
        ]
        try:
            with self._write() as db:
                db.executemany(
                    f"INSERT OR REPLACE INTO artifacts ({_columns(ARTIFACT_FIELDS)}) "
                    f"VALUES ({_placeholders(len(ARTIFACT_FIELDS))})",
                    rows,
                )
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: put_artifacts failed: {exc}") from exc

    def search_artifacts(
        self,
        *,
        provider: str | None = None,
        partition: str | None = None,
        kind: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Artifact]:
        _check_page(limit, offset)
        where, params = _where({"provider": provider, "partition": partition, "kind": kind})
        rows = self._read(
            f"SELECT {_columns(ARTIFACT_FIELDS)} FROM artifacts{where} "
            'ORDER BY "partition", "kind", "artifact_id" LIMIT ? OFFSET ?',
            [*params, limit, offset],
        )
        return [Artifact(*row[:-2], upstream=json.loads(row[-2]), metadata=json.loads(row[-1])) for row in rows]

    # ledger ------------------------------------------------------------------------------
    def append_ledger_entry(self, provider: str, sequence: int, partition: str, entry_json: str) -> None:
        try:
            with self._write() as db:
                db.execute('INSERT INTO ledger ("provider", "sequence", "partition", "entry") VALUES (?, ?, ?, ?)',
                           (provider, sequence, partition, entry_json))
        except sqlite3.IntegrityError:
            raise LedgerConflictError(f"ledger entry {provider} #{sequence} already exists") from None
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: append_ledger_entry failed: {exc}") from exc

    def ledger_entries(self, provider: str, *, since_sequence: int = 0) -> Iterator[tuple[int, str]]:
        after = since_sequence - 1
        while True:  # pages, so no lock is held while the caller verifies
            rows = self._read('SELECT "sequence", "entry" FROM ledger WHERE "provider" = ? AND "sequence" > ? '
                              'ORDER BY "sequence" LIMIT 1000', (provider, after))
            yield from ((int(row[0]), row[1]) for row in rows)
            if len(rows) < 1000:
                return
            after = rows[-1][0]

    def ledger_entries_for_partition(self, partition: str) -> list[str]:
        rows = self._read('SELECT "entry" FROM ledger WHERE "partition" = ? ORDER BY "sequence"', (partition,))
        return [row[0] for row in rows]

    def ledger_providers(self) -> list[str]:
        return [row[0] for row in self._read('SELECT DISTINCT "provider" FROM ledger ORDER BY "provider"')]

    def put_checkpoint(self, provider: str, checkpoint_json: str) -> None:
        try:
            with self._write() as db:
                db.execute('INSERT OR REPLACE INTO ledger_checkpoints ("provider", "checkpoint") VALUES (?, ?)',
                           (provider, checkpoint_json))
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: put_checkpoint failed: {exc}") from exc

    def get_checkpoint(self, provider: str) -> str | None:
        rows = self._read('SELECT "checkpoint" FROM ledger_checkpoints WHERE "provider" = ?', (provider,))
        return rows[0][0] if rows else None

    # promotions and quarantine -----------------------------------------------------------
    def put_promotion(self, promotion_id: str, document: dict[str, Any]) -> None:
        try:
            with self._write() as db:
                db.execute('INSERT OR REPLACE INTO promotions ("promotion_id", "document") VALUES (?, ?)',
                           (promotion_id, _to_json(document)))
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: put_promotion failed: {exc}") from exc

    def get_promotion(self, promotion_id: str) -> dict[str, Any] | None:
        rows = self._read('SELECT "document" FROM promotions WHERE "promotion_id" = ?', (promotion_id,))
        return json.loads(rows[0][0]) if rows else None

    def put_quarantine(self, items: Sequence[dict[str, Any]]) -> int:
        if not items:
            return 0
        rows = [(i["log_id"], i["provider"], i["partition"], i["status"], _to_json(dict(i))) for i in items]
        try:
            with self._write() as db:
                before = db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
                db.executemany('INSERT OR REPLACE INTO quarantine ("log_id", "provider", "partition", "status", "item") '
                               "VALUES (?, ?, ?, ?, ?)", rows)
                return db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0] - before
        except sqlite3.Error as exc:
            raise CatalogError(f"SQLite catalog {self.path}: put_quarantine failed: {exc}") from exc

    def list_quarantine(
        self, *, provider: str | None = None, partition: str | None = None, status: str | None = None,
        limit: int = 100, offset: int = 0,
    ) -> list[dict[str, Any]]:
        _check_page(limit, offset)
        where, params = _where({"provider": provider, "partition": partition, "status": status})
        rows = self._read(f'SELECT "item" FROM quarantine{where} ORDER BY "partition", "log_id" LIMIT ? OFFSET ?',
                          [*params, limit, offset])
        return [json.loads(row[0]) for row in rows]

    def get_quarantine(self, log_id: str) -> dict[str, Any] | None:
        rows = self._read('SELECT "item" FROM quarantine WHERE "log_id" = ?', (log_id,))
        return json.loads(rows[0][0]) if rows else None
