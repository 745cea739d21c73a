"""What the catalog holds, as values: record entries and the pointers to their bytes, dead
letters, artifacts, access-log entries, idempotency records and alert deliveries, the record
statuses, the catalog's timestamp format and its errors.

Pure data, no storage: the Catalog port (storage/catalog.py, which re-exports every name here)
takes and returns these, and both adapters build them from their rows and documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import datetime
from operator import itemgetter
from typing import Any

VALID = "valid"
DEAD_LETTER = "dead_letter"
# Flagged when a read found the stored bytes no longer match the indexed checksum.
CHECKSUM_MISMATCH = "checksum_mismatch"
STATUSES = (VALID, DEAD_LETTER, CHECKSUM_MISMATCH)


@dataclass(frozen=True, slots=True)
class RecordEntry:
    log_id: str
    provider: str
    partition: str  # the hour|provider partition that landed it first
    natural_id: str
    object_key: str
    offset: int
    length: int
    checksum: str  # "sha256:<hex>" of the record's exact bytes
    timestamp: str | None  # event time, ISO-8601 UTC, fixed width: 2026-01-01T00:00:00.000000Z
    run_id: str
    status: str = VALID  # one of STATUSES
    ingested_at: str = ""


RECORD_FIELDS = tuple(f.name for f in dataclass_fields(RecordEntry))  # a record's columns, in field order

# A position in the (timestamp, log_id) order of records.
RecordKey = tuple[str | None, str]
# Where a record's bytes are and what they must hash to: (log_id, object_key, offset, length, checksum).
RecordPointer = tuple[str, str, int, int, str]
# Records per PointerPage unless the caller asks otherwise.
POINTER_PAGE_SIZE = 20_000


@dataclass(frozen=True, slots=True)
class PointerPage:
    """Consecutive record pointers of a partition in log order, column by column: re-verifying a
    million records works on whole columns (all checksums at once) rather than row by row."""

    log_ids: list[str]
    object_keys: list[str]
    offsets: list[int]
    lengths: list[int]
    checksums: list[str]

    def __len__(self) -> int:
        return len(self.log_ids)

    @classmethod
    def from_rows(cls, rows: Sequence[RecordPointer]) -> PointerPage:
        # One pass per column: about three times cheaper than transposing with zip(*rows).
        return cls(*[list(map(itemgetter(column), rows)) for column in range(5)])

    def rows(self) -> list[RecordPointer]:
        return list(zip(self.log_ids, self.object_keys, self.offsets, self.lengths, self.checksums, strict=True))


@dataclass(frozen=True, slots=True)
class UpsertResult:
    inserted: int
    unchanged: int
    # log_ids already indexed with a different checksum: the first copy is kept, never replaced
    conflicts: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RecordPage:
    items: list[RecordEntry]
    total_count: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    dead_letter_id: str  # deterministic, so re-running a partition does not duplicate
    provider: str
    partition: str
    stage: str  # "landing" (unparseable body) | "input_validation" | "indexing"
    reason: str
    object_key: str | None = None
    log_id: str | None = None
    offset: int | None = None
    length: int | None = None
    created_at: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Artifact:
    artifact_id: str  # deterministic: kind + partition + location
    kind: str  # raw_object | landing_snapshot | input_validation | output_validation | integrity_report | lake_table | dead_letter_body
    provider: str
    partition: str
    location: str  # object key or URI
    checksum: str | None
    size: int | None
    run_id: str
    created_at: str
    upstream: list[str] = field(default_factory=list)  # artifact_ids this one was derived from
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One HTTP request to the vault's API: who, when, what, outcome. Never a secret."""

    at: str  # fixed-width ISO timestamp
    principal: str  # the API key's name, or "anonymous"
    method: str
    path: str
    status: int
    latency_ms: float
    client: str = ""


#: Statuses of a failed authentication or authorisation: no/unknown key, or a key without the role.
AUTH_FAILURE_STATUSES = (401, 403)


@dataclass(frozen=True, slots=True)
class AccessSummary:
    """The access log over a period, counted where it is stored: what a compliance report shows."""

    total: int
    by_principal_status: list[tuple[str, int, int]]  # (principal, status, requests), sorted
    by_method_path: list[tuple[str, str, int]]  # (method, path, requests), sorted
    auth_failures: list[AccessEntry]  # status 401/403, oldest first (at most the limit asked for)
    auth_failures_total: int  # every one in the period, also past the limit


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """An ``Idempotency-Key`` of ``POST /v1/ingest`` and the job it named, until it expires.

    Only fingerprints are kept: a client may put a secret (or something that identifies a
    person) in the key, so neither the key nor the request body is ever stored.
    """

    key_fingerprint: str  # sha256 hex of (principal, key): the same key of two principals is two keys
    request_fingerprint: str  # sha256 hex of what the request asked for (provider and hours)
    job_id: str
    created_at: str  # fixed-width ISO timestamp
    expires_at: str  # fixed-width ISO timestamp; the record is forgotten from then on


@dataclass(frozen=True, slots=True)
class AlertDelivery:
    """One alert for one notification target in the outbox, and how its delivery stands.

    The target is named as in ``vault.yaml`` (``notifications[].name``), never by its URL or
    token; ``event`` is the alert's document (core/alerts.py ``AlertEvent.document``).
    """

    delivery_id: str  # deterministic from (event_id, target): raising an event again adds nothing
    event_id: str
    kind: str  # run_failure | run_success | sla_miss | quality | promotion | test
    severity: str
    title: str
    target: str
    target_type: str  # webhook | slack
    created_at: str  # fixed-width ISO timestamp
    status: str = "pending"  # pending | delivered | failed (gave up; kept, and can be re-queued)
    attempts: int = 0
    next_attempt_at: str = ""  # fixed-width ISO timestamp: due from then on while pending
    last_attempt_at: str | None = None
    delivered_at: str | None = None
    last_error: str | None = None  # what the last attempt answered, never a secret
    event: dict[str, Any] = field(default_factory=dict)


class CatalogError(RuntimeError):
    """The catalog is unreachable or refused an operation; the message says which."""


class LedgerConflictError(CatalogError):
    """A ledger entry with that provider and sequence already exists; entries are never replaced."""


def fixed_width_timestamp(moment: datetime) -> str:
    """The catalog's timestamp format: lexicographic order equals chronological order."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
