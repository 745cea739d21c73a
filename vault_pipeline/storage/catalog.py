"""The Catalog port: the index of every record, dead letter, watermark and artifact.

The catalog never holds record bytes, only where they are (object key, offset, length) and
their checksum. Both adapters (SQLite for the embedded default, MongoDB for production)
implement exactly this contract and are held to it by one shared test suite. The values it
takes and returns (record entries, pointers, dead letters, artifacts, ...) and its errors are in
storage/catalog_entries.py, and re-exported here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from vault_pipeline.storage.catalog_entries import (  # noqa: F401 - re-exported: the port's values
    AUTH_FAILURE_STATUSES,
    CHECKSUM_MISMATCH,
    DEAD_LETTER,
    POINTER_PAGE_SIZE,
    RECORD_FIELDS,
    STATUSES,
    VALID,
    AccessEntry,
    AccessSummary,
    AlertDelivery,
    Artifact,
    CatalogError,
    DeadLetter,
    IdempotencyRecord,
    LedgerConflictError,
    PointerPage,
    RecordEntry,
    RecordKey,
    RecordPage,
    RecordPointer,
    UpsertResult,
    fixed_width_timestamp,
)

if TYPE_CHECKING:
    import sqlite3

_RECORD_ROW = attrgetter(*RECORD_FIELDS)  # a RecordEntry as its row, in field order


class Catalog(ABC):
    """Port implemented by SqliteCatalog and MongoCatalog."""

    # records -----------------------------------------------------------------------------
    @abstractmethod
    def upsert_records(self, entries: Sequence[RecordEntry]) -> UpsertResult:
        """Insert entries whose log_id is new. Existing log_ids are left untouched (counted as
        unchanged when the checksum matches, reported as conflicts when it differs)."""

    def upsert_rows(self, rows: Sequence[tuple[Any, ...]]) -> UpsertResult:
        """``upsert_records`` for plain tuples in RecordEntry field order.

        Indexing a million-record hour builds no per-record objects this way; an adapter may
        override it to bind the tuples directly (SQLite does)."""
        return self.upsert_records([RecordEntry(*row) for row in rows])

    @abstractmethod
    def get_record(self, log_id: str) -> RecordEntry | None: ...

    @abstractmethod
    def search_records(
        self,
        *,
        provider: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int = 50,
        offset: int = 0,
        after: RecordKey | None = None,
        with_total: bool = True,
    ) -> RecordPage:
        """Records ordered by (timestamp, log_id); start inclusive, end exclusive (ISO strings in
        the fixed-width format). Records without a timestamp sort first and are excluded by any
        time filter. ``after`` starts strictly after that (timestamp, log_id) key (keyset
        paging: stable while records are being added). ``total_count`` counts every match, not
        just the page; it is -1 when ``with_total`` is False."""

    @abstractmethod
    def sample_record_keys(
        self, *, provider: str | None = None, start: str | None = None, end: str | None = None, every: int = 10_000
    ) -> tuple[int, list[RecordKey]]:
        """(number of matches, keys of the matches at positions every-1, 2*every-1, ...): anchors
        that turn a deep offset into a keyset seek plus a short offset."""

    @abstractmethod
    def records_version(self) -> str:
        """Changes whenever records are added, so cached anchors and counts know they are stale."""

    @abstractmethod
    def iter_partition_records(self, partition: str) -> Iterator[RecordEntry]:
        """Every record first landed by ``partition``, ordered by log_id."""

    def iter_partition_pointer_pages(
        self, partition: str, *, start: int = 0, stop: int | None = None, page_size: int = POINTER_PAGE_SIZE
    ) -> Iterator[PointerPage]:
        """(log_id, object_key, offset, length, checksum) of ``partition``'s records at log
        positions ``start`` to ``stop`` (exclusive; None: to the end), in column pages of
        ``page_size`` records: what re-verification needs, without building full entries, and
        slices so several processes can each verify one part of a partition's log order."""
        if start < 0 or (stop is not None and stop < start) or page_size < 1:
            raise ValueError(f"invalid pointer range start={start} stop={stop} page_size={page_size}")
        if stop == start:
            return iter(())
        return self._pointer_pages(partition, start, stop, page_size)

    @abstractmethod
    def _pointer_pages(self, partition: str, start: int, stop: int | None, page_size: int) -> Iterator[PointerPage]:
        """A non-empty, already checked slice, read as the pointer fields only."""

    @abstractmethod
    def count_records(self, *, provider: str | None = None, partition: str | None = None) -> int: ...

    @abstractmethod
    def set_status(self, log_ids: Sequence[str], status: str) -> int:
        """Set the status (one of STATUSES) of records; returns how many changed."""

    def partition_record_counts(self, *, provider: str | None = None) -> dict[str, int]:
        """{partition: number of records it landed first}, for every partition holding records:
        what ``vault verify`` compares with the partitions the ledger covers. ``provider`` selects
        the partitions whose key names it (``hour|provider``)."""
        counts = self._partition_counts()
        if provider is None:
            return counts
        return {partition: n for partition, n in counts.items() if partition.rpartition("|")[2] == provider}

    @abstractmethod
    def _partition_counts(self) -> dict[str, int]:
        """Records per partition, every partition (counted the cheapest way the backend has)."""

    @abstractmethod
    def known_log_ids(self, log_ids: Sequence[str]) -> set[str]:
        """The given log_ids the catalog holds a record of (any partition)."""

    @abstractmethod
    def partition_lake_keys(self, partition: str, *, page_size: int = 100_000) -> Iterator[tuple[list[str], list[bool]]]:
        """Pages of (log_ids of ``partition``'s records in log order, for each whether it belongs
        in the lake): a record belongs there when it has an event time and is not a dead letter."""

    # watermarks --------------------------------------------------------------------------
    @abstractmethod
    def get_watermark(self, provider: str) -> str | None: ...

    @abstractmethod
    def advance_watermark(self, provider: str, timestamp: str) -> str:
        """Move the provider's watermark forward to ``timestamp`` (never backwards); returns
        the watermark now in force."""

    # dead letters ------------------------------------------------------------------------
    @abstractmethod
    def add_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        """Store dead letters, replacing ones with the same id; returns how many were new."""

    @abstractmethod
    def list_dead_letters(
        self, *, provider: str | None = None, partition: str | None = None, limit: int = 1000, offset: int = 0
    ) -> list[DeadLetter]:
        """Ordered by dead_letter_id."""

    @abstractmethod
    def count_dead_letters(self, *, provider: str | None = None, partition: str | None = None) -> int: ...

    @abstractmethod
    def dead_lettered(self, log_ids: Sequence[str], *, stage: str = "input_validation") -> set[str]:
        """The given log_ids that have a dead letter of ``stage``, whichever partition wrote it:
        a record one partition rejected never reaches the lake through another's lookback."""

    # dead-letter expiry ------------------------------------------------------------------
    # Dead letters are kept ``lake.dead_letter_days`` (7 by default), then deleted by
    # lake_maintenance. Only the catalog's entries: dlq/ bodies and the raw zone stay.
    @abstractmethod
    def expire_dead_letters(self, before: str) -> int:
        """Delete the dead letters created before ``before`` (the catalog's fixed-width ISO
        time); returns how many. Letters without a creation time are kept."""

    # leases ------------------------------------------------------------------------------
    # A lease makes one holder at a time do something that must not run twice at once (loading
    # a Delta table) across processes and machines; it expires, so a holder killed with -9
    # blocks the others for at most its time to live.
    @abstractmethod
    def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take (or renew, for the same holder) the lease ``name`` for ``ttl_s`` seconds; False
        while another holder's lease has not expired."""

    @abstractmethod
    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up; a no-op unless ``holder`` holds it."""

    @abstractmethod
    def lease_holder(self, name: str) -> str | None:
        """Who holds the lease now (None: free or expired)."""

    # artifact index ----------------------------------------------------------------------
    @abstractmethod
    def put_artifacts(self, artifacts: Sequence[Artifact]) -> None:
        """Insert or replace artifacts by artifact_id."""

    @abstractmethod
    def search_artifacts(
        self,
        *,
        provider: str | None = None,
        partition: str | None = None,
        kind: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Artifact]:
        """Ordered by (partition, kind, artifact_id)."""

    # ledger ------------------------------------------------------------------------------
    # Entries are stored as the signed canonical JSON the ledger produced, opaque to the catalog.
    @abstractmethod
    def append_ledger_entry(self, provider: str, sequence: int, partition: str, entry_json: str) -> None:
        """Append one entry; LedgerConflictError if (provider, sequence) exists."""

    @abstractmethod
    def ledger_entries(self, provider: str, *, since_sequence: int = 0) -> Iterator[tuple[int, str]]:
        """(sequence, entry JSON) with sequence >= since_sequence, in sequence order."""

    @abstractmethod
    def ledger_entries_for_partition(self, partition: str) -> list[str]:
        """Entry JSON of every entry about ``partition``, in sequence order."""

    @abstractmethod
    def ledger_providers(self) -> list[str]: ...

    @abstractmethod
    def put_checkpoint(self, provider: str, checkpoint_json: str) -> None: ...

    @abstractmethod
    def get_checkpoint(self, provider: str) -> str | None: ...

    # promotions and quarantine -----------------------------------------------------------
    # Stored as JSON text like ledger entries, so both adapters keep arbitrary keys and big
    # integers alike; only the fields the methods filter on are also kept as columns.
    @abstractmethod
    def put_promotion(self, promotion_id: str, document: dict[str, Any]) -> None:
        """Insert or replace the state of one promotion request."""

    @abstractmethod
    def get_promotion(self, promotion_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def put_quarantine(self, items: Sequence[dict[str, Any]]) -> int:
        """Insert or replace quarantine items by ``log_id`` (each item needs log_id, provider,
        partition, status); returns how many were new."""

    @abstractmethod
    def list_quarantine(
        self, *, provider: str | None = None, partition: str | None = None, status: str | None = None,
        limit: int = 100, offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Ordered by (partition, log_id)."""

    @abstractmethod
    def get_quarantine(self, log_id: str) -> dict[str, Any] | None: ...

    def set_quarantine_status(self, log_id: str, status: str, approved_by: str, reason_code: str) -> dict[str, Any] | None:
        """Change an item's status, recording who and why; returns the item, None if unknown."""
        item = self.get_quarantine(log_id)
        if item is None:
            return None
        item = {**item, "status": status, "approved_by": approved_by, "reason_code": reason_code}
        self.put_quarantine([item])
        return item

    # idempotency keys ---------------------------------------------------------------------
    # What lets a client repeat ``POST /v1/ingest`` with the same Idempotency-Key and get the
    # same job even after the API restarted, or from another API process. Records expire; an
    # expired record is as good as absent. Times are the catalog's fixed-width ISO strings.
    @abstractmethod
    def claim_idempotency_key(self, record: IdempotencyRecord) -> IdempotencyRecord:
        """Store ``record`` unless a record for its key fingerprint is still live at
        ``record.created_at`` (an expired one is replaced). Atomic: of two claims racing for
        one fingerprint exactly one is stored. Returns the record in force afterwards, which
        equals ``record`` only if this call stored it."""

    @abstractmethod
    def get_idempotency_key(self, key_fingerprint: str, *, now: str) -> IdempotencyRecord | None:
        """The record for ``key_fingerprint`` unless it has expired at ``now`` (None then)."""

    @abstractmethod
    def purge_idempotency_keys(self, *, now: str) -> int:
        """Delete every record that has expired at ``now``; returns how many."""

    # access log --------------------------------------------------------------------------
    @abstractmethod
    def log_access(self, entries: Sequence[AccessEntry]) -> None: ...

    @abstractmethod
    def list_access(self, *, principal: str | None = None, limit: int = 100, offset: int = 0) -> list[AccessEntry]:
        """Newest first."""

    @abstractmethod
    def summarise_access(self, *, start: str, end: str, failure_limit: int | None = None) -> AccessSummary:
        """Counts of the access entries with ``start <= at < end`` (fixed-width ISO strings) by
        principal and status and by method and path, and the failed authentications
        (AUTH_FAILURE_STATUSES) oldest first, at most ``failure_limit`` of them (None: all).
        Served by an index on ``at``, so a month of entries is read without a full scan."""

    # alert outbox ------------------------------------------------------------------------
    # Alerts waiting for delivery, delivered, or given up on (kept for ``vault alerts`` and
    # ``GET /v1/alerts``). Times are the catalog's fixed-width ISO strings. One delivery pass at a
    # time takes the lease ``alert_delivery`` (acquire_lease), so no alert is sent twice at once.
    @abstractmethod
    def enqueue_alerts(self, deliveries: Sequence[AlertDelivery]) -> int:
        """Add the deliveries whose delivery_id is new; existing ones are left exactly as they
        are (an event raised again is not delivered again). Returns how many were added."""

    @abstractmethod
    def due_alerts(self, *, now: str, limit: int = 100) -> list[AlertDelivery]:
        """Pending deliveries with ``next_attempt_at <= now``, ordered by (next_attempt_at, delivery_id)."""

    @abstractmethod
    def save_alert_attempt(self, delivery: AlertDelivery) -> None:
        """Store the outcome of an attempt: status, attempts, next_attempt_at, last_attempt_at,
        delivered_at and last_error of ``delivery`` replace the stored ones (the rest is kept)."""

    @abstractmethod
    def get_alert(self, delivery_id: str) -> AlertDelivery | None: ...

    @abstractmethod
    def list_alerts(self, *, status: str | None = None, kind: str | None = None, limit: int = 100,
                    offset: int = 0) -> list[AlertDelivery]:
        """Newest first: ordered by (created_at descending, delivery_id)."""

    @abstractmethod
    def count_alerts(self, *, status: str | None = None, kind: str | None = None) -> int: ...

    @abstractmethod
    def requeue_alerts(self, delivery_ids: Sequence[str] | None, *, now: str) -> int:
        """Make failed (or still pending) deliveries due at ``now`` with their attempts counted
        from 0 again; ``None``: every failed one. Delivered ones are never re-sent. Returns how many."""

    # memory ---------------------------------------------------------------------------------
    @contextmanager
    def bulk_writes(self) -> Iterator[None]:
        """Around indexing an hour: an adapter may hold more in memory while it lasts (SQLite: a
        page cache big enough for random inserts into its indexes) and gives it back after, so
        the stages that follow in the same process do not carry it. It may also group the
        thread's upserts into bigger transactions (SQLite does); everything upserted inside is
        committed by the time it ends."""
        yield

    # copying out ----------------------------------------------------------------------------
    def copy_partition_records(self, partition: str, into: sqlite3.Connection, table: str) -> int:
        """Append the partition's records, in log order (ascending ``log_id``), to ``table`` of the
        SQLite database ``into`` (a column per RecordEntry field, in field order: promotion's
        workspace); how many. This default pages through ``iter_partition_records``; an adapter
        may copy in one read without building a Python object per record (SQLite does)."""
        if not table.isidentifier():
            raise ValueError(f"invalid table name {table!r}")
        return self._copy_partition_records(partition, into, table)

    def _copy_partition_records(self, partition: str, into: sqlite3.Connection, table: str) -> int:
        insert = f"INSERT INTO {table} VALUES ({','.join('?' * len(RECORD_FIELDS))})"
        total, buffer = 0, []
        for record in self.iter_partition_records(partition):
            buffer.append(_RECORD_ROW(record))
            if len(buffer) >= 10_000:
                into.executemany(insert, buffer)
                total, buffer = total + len(buffer), []
        into.executemany(insert, buffer)
        into.commit()
        return total + len(buffer)

    # opening elsewhere --------------------------------------------------------------------
    def worker_opener(self) -> Callable[[], Catalog] | None:
        """A picklable callable of no arguments that opens an equivalent catalog in another
        process (what ``vault verify`` hands its worker processes), or None when this one cannot
        be re-opened from a description; the caller closes what the callable opens."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
