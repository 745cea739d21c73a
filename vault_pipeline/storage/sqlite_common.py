"""What the SQLite catalog's parts share: the columns of its tables and the SQL text helpers.

``SqliteCatalog`` (storage/sqlite_catalog.py) opens the file and creates its tables, and is put
together from its records and dead letters (storage/sqlite_records.py), provenance
(storage/sqlite_provenance.py) and operations (storage/sqlite_operations.py) parts; this module
holds what more than one of them uses: each table's columns in the order of the catalog's own
records, quoted column names (``partition`` and ``offset`` are SQL keywords), placeholders, the
JSON text a detail, metadata or document is stored as, filters that skip an unset value, and
the check of a page's limit and offset.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from vault_pipeline.storage.catalog import RECORD_FIELDS, AccessEntry, Artifact, DeadLetter

_LOG_ID, _CHECKSUM = RECORD_FIELDS.index("log_id"), RECORD_FIELDS.index("checksum")
DEAD_LETTER_FIELDS = tuple(f.name for f in fields(DeadLetter))
ARTIFACT_FIELDS = tuple(f.name for f in fields(Artifact))
ACCESS_FIELDS = tuple(f.name for f in fields(AccessEntry))


def _columns(names: Sequence[str]) -> str:
    # "partition" and "offset" are SQL keywords, so every column name is quoted.
    return ", ".join(f'"{name}"' for name in names)


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


def _to_json(value: Any) -> str:
    # Plain json (not orjson) so integers beyond 2**64 keep their precision.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _where(conditions: dict[str, Any]) -> tuple[str, list[Any]]:
    """An AND of equality conditions, skipping the ones whose value is None (no filter)."""
    clauses = [f'"{column}" = ?' for column, value in conditions.items() if value is not None]
    params = [value for value in conditions.values() if value is not None]
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _check_page(limit: int, offset: int) -> None:
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must not be negative (limit={limit}, offset={offset})")
