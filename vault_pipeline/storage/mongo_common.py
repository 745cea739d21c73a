"""What the MongoDB catalog's parts share: the fields of its documents, the record order and helpers.

``MongoCatalog`` (storage/mongo_catalog.py) connects and creates the indexes, and is put
together from its records and dead letters (storage/mongo_records.py), provenance
(storage/mongo_provenance.py) and operations (storage/mongo_operations.py) parts; this module
holds what more than one of them uses: the fields each collection keeps beside the vault's own
id in ``_id``, the (timestamp, _id) order records are searched in, the JSON text a detail,
metadata or document is stored as, filters that skip an unset value, and the check of a page's
limit and offset.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import pymongo

from vault_pipeline.storage.catalog import AccessEntry, Artifact, DeadLetter, RecordEntry

RECORD_FIELDS = tuple(f.name for f in fields(RecordEntry) if f.name != "log_id")
DEAD_LETTER_FIELDS = tuple(f.name for f in fields(DeadLetter) if f.name not in ("dead_letter_id", "detail"))
ACCESS_FIELDS = tuple(f.name for f in fields(AccessEntry))
ARTIFACT_FIELDS = tuple(f.name for f in fields(Artifact) if f.name not in ("artifact_id", "metadata"))

RECORD_ORDER = [("timestamp", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)]


def _to_json(value: Any) -> str:
    # detail and metadata are stored as JSON text, as in SQLite: arbitrary keys ("$x", "a.b")
    # and integers beyond int64 would be refused by BSON in production only.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _check_page(limit: int, offset: int) -> None:
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must not be negative (limit={limit}, offset={offset})")


def _equals(**conditions: Any) -> dict[str, Any]:
    """A filter on the given fields, skipping the ones whose value is None (no filter)."""
    return {name: value for name, value in conditions.items() if value is not None}
