"""Deterministic record identity: the ``log_id`` every copy of a record shares.

A record's ``log_id`` is derived from its provider and natural id (or, when the provider
gives none, from the SHA-256 of its exact bytes). Re-fetching a window, a lookback that
overlaps an earlier hour, or a provider that delivers twice all produce the same id, which is
what makes ingestion idempotent.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

LOG_ID_PATTERN = re.compile(r"^log_[0-9a-f]{32}$")


def natural_id_from(value: Any, record_checksum: str) -> str:
    """The provider's own id when it is a non-empty string or integer, else the record checksum."""
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) != "":
        return str(value)
    return record_checksum


def log_id_for(provider: str, natural_id: str) -> str:
    digest = hashlib.sha256(f"{provider}\x1f{natural_id}".encode("utf-8", "surrogatepass")).hexdigest()
    return "log_" + digest[:32]


def is_log_id(value: str) -> bool:
    return bool(LOG_ID_PATTERN.match(value))


def lookup(record: Any, dotted: str) -> Any:
    """``record["a"]["b"]`` for ``"a.b"``; None when any step is missing or not an object."""
    value = record
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
