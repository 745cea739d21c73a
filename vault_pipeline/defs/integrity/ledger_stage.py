"""Writing a partition into the tamper-evident ledger once it has proven intact.

Each partition's entry commits to the Merkle root of its record checksums in log order
(ascending ``log_id``, the catalog's own order for a partition, so anyone can recompute it
from the index), the record count and every raw object with its checksum, chained to the
provider's previous entry and signed. Entries are immutable objects under ``ledger/`` and rows
in the catalog; a signed checkpoint naming the newest entry is stored under
``ledger/{provider}/HEAD.json`` and in the catalog, so deleting the newest entries is visible.
Re-running an unchanged partition writes nothing new.

Several writers may extend one chain at once (the graph's runs, API promotions, other API
processes). The catalog's unique (provider, sequence) row is where they are serialised: the
row is inserted first, and only its winner then writes the immutable object for that
sequence, so a loser never leaves a stray object and never meets the winner's; it re-reads
the head and tries again at the next sequence, a bounded number of times with exponential
backoff and jitter. The checkpoint only moves forward to the newest entry (whoever wrote it),
and the checkpoint is read before the head, so a writer that appended in between is never
taken for a truncated ledger. A writer killed between its row and its object is finished by
the next append, from the signed row (the exact bytes it would have stored).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import replace

from vault_pipeline.allocators import returns_freed_memory
from vault_pipeline.core.layout import report_key
from vault_pipeline.core.ledger import (
    KIND_PARTITION,
    Checkpoint,
    LedgerEntry,
    PartitionDigest,
    Signer,
    digest_from_document,
    make_checkpoint,
    next_position,
    partition_entry,
    sign_entry,
    verify_entry_signature,
)
from vault_pipeline.core.windows import HourWindow
from vault_pipeline.defs.ingestion.landed import LandedPartition
from vault_pipeline.storage.catalog import Catalog, LedgerConflictError
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore

log = logging.getLogger(__name__)

# Writers racing for one chain: how often a loser tries again, and its backoff (full jitter:
# a random wait up to base * 2**attempt, so two losers do not collide again in lockstep).
APPEND_ATTEMPTS = 5
BACKOFF_BASE_S = 0.05
BACKOFF_MAX_S = 2.0


class LedgerAppendError(LedgerConflictError):
    """Other writers kept taking the next sequence of the chain; nothing of this entry was written."""


def ledger_retention_days() -> int:
    """How long ledger entries stay locked (S3 Object Lock), VAULT_LEDGER_RETENTION_DAYS, default 7 years."""
    return int(os.environ.get("VAULT_LEDGER_RETENTION_DAYS", str(7 * 365)))


def entry_key(provider: str, sequence: int) -> str:
    return f"ledger/{provider}/{sequence:012d}.json"


def checkpoint_key(provider: str) -> str:
    return f"ledger/{provider}/HEAD.json"


def newest_entry(catalog: Catalog, provider: str, *, known: LedgerEntry | None = None) -> LedgerEntry | None:
    """The provider's newest entry; with ``known`` (an entry read before), only the rows from it on are read."""
    newest = None
    for _sequence, text in catalog.ledger_entries(provider, since_sequence=known.sequence if known else 0):
        newest = text
    if newest is None and known is not None:
        return newest_entry(catalog, provider)  # the known entry is gone: read the chain whole
    return LedgerEntry.from_json(newest) if newest else None


def stored_checkpoint(store: ObjectStore, catalog: Catalog, provider: str) -> Checkpoint | None:
    """The object-store checkpoint (kept apart from the catalog rows), else the catalog's copy."""
    try:
        return Checkpoint.from_json(store.get(checkpoint_key(provider)))
    except ObjectMissingError:
        text = catalog.get_checkpoint(provider)
        return Checkpoint.from_json(text) if text else None


def partition_entries(catalog: Catalog, partition: str, kind: str = KIND_PARTITION) -> list[LedgerEntry]:
    """The partition's entries of one kind, oldest first (promotion decisions share the partition)."""
    entries = (LedgerEntry.from_json(text) for text in catalog.ledger_entries_for_partition(partition))
    return [entry for entry in entries if entry.kind == kind]


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** attempt))


def append_entry(*, store: ObjectStore, catalog: Catalog, signer: Signer, draft: LedgerEntry,
                 attempts: int = APPEND_ATTEMPTS, sleep: Callable[[float], None] = time.sleep) -> LedgerEntry:
    """Chain ``draft`` after the provider's newest entry, sign it, store it and move the checkpoint.

    Another writer taking the same sequence first is retried: the head is re-read and the entry
    re-signed at the next sequence, up to ``attempts`` times; after that LedgerAppendError.
    """
    provider = draft.provider
    verifier = signer.verifier()
    head, contested = None, None
    for attempt in range(attempts):
        if attempt:
            sleep(_backoff(attempt - 1))
        # The checkpoint first: it only ever names an entry whose row already exists, so a head
        # read after it is at least as new, even when another writer appends in between.
        checkpoint = stored_checkpoint(store, catalog, provider)
        head = newest_entry(catalog, provider, known=head)
        _finish_interrupted(store, head, checkpoint, verifier)
        sequence, previous_hash = next_position(head, checkpoint, verifier)
        key = entry_key(provider, sequence)
        if store.exists(key):
            # Only a row's winner writes its object, after the row: an object with no row yet is
            # a winner caught between the two (its row shows on the next read), or a stray an
            # older writer left when it died between object and row.
            contested = sequence
            continue
        entry = sign_entry(replace(draft, sequence=sequence, previous_hash=previous_hash), signer)
        text = entry.to_json()
        try:
            catalog.append_ledger_entry(provider, sequence, draft.partition, text)
        except LedgerConflictError:
            contested = None
            log.info("ledger %s: sequence %d was taken by another writer (attempt %d of %d)",
                     provider, sequence, attempt + 1, attempts)
            continue
        # Ours alone from here: no other writer can win this sequence any more.
        store.put(key, text.encode(), retain_days=ledger_retention_days())  # never overwritten
        _advance_checkpoint(store, catalog, signer, entry)
        return entry
    newest = newest_entry(catalog, provider, known=head)
    if contested is not None and (newest.sequence if newest else 0) < contested:
        raise LedgerAppendError(
            f"ledger {provider!r}: the object {entry_key(provider, contested)} exists but the catalog has no entry "
            f"#{contested}; "
            "it is a leftover of an interrupted write (or was put there). Move it out of ledger/ after checking "
            "it, then run `vault verify` and retry"
        )
    raise LedgerAppendError(
        f"ledger {provider!r}: other writers took the next sequence {attempts} times in a row; nothing of this "
        "entry was written. Retry the run or promotion (and check that no writer is stuck in a loop)"
    )


def _finish_interrupted(store: ObjectStore, head: LedgerEntry | None, checkpoint: Checkpoint | None, verifier) -> None:
    """Write the head's immutable object if its writer has not (yet): it died after the row.

    Only for a head newer than the checkpoint (a writer that got as far as the checkpoint wrote
    the object before it, so an object missing then is for ``vault verify`` to report) and
    only when the entry's signature verifies: the bytes are exactly what that writer signed.
    A writer still alive between its row and its object then finds these same bytes stored,
    which the store takes as a no-op, so doing it without knowing which case it is is safe.
    """
    if head is None or (checkpoint is not None and head.sequence <= checkpoint.sequence):
        return
    key = entry_key(head.provider, head.sequence)
    if store.exists(key) or not verify_entry_signature(head, verifier):
        return
    store.put(key, head.to_json().encode(), retain_days=ledger_retention_days())
    log.debug("ledger %s: stored %s from its signed catalog row (its writer stopped, or was about to)",
              head.provider, key)


def _advance_checkpoint(store: ObjectStore, catalog: Catalog, signer: Signer, entry: LedgerEntry) -> None:
    """Move the checkpoint (object and catalog copy) forward to the chain's newest entry, never back.

    A writer that finished first may have moved it past ``entry`` already; one that appended
    after ``entry`` but checked before we wrote gets carried along: after writing, the head is
    re-read, and while it is newer than what was just written (and its object stored), the
    checkpoint follows it. So whichever writer writes last leaves the checkpoint on the head.
    """
    provider, verifier = entry.provider, signer.verifier()
    target = entry
    for _ in range(APPEND_ATTEMPTS):
        signed = make_checkpoint(target, signer).to_json()
        try:
            stored = Checkpoint.from_json(store.get(checkpoint_key(provider)))
        except (ObjectMissingError, ValueError):
            stored = None
        if stored is None or stored.sequence < target.sequence:
            store.put(checkpoint_key(provider), signed.encode(), overwrite=True)
        text = catalog.get_checkpoint(provider)
        kept = _parse_checkpoint(text)
        if kept is None or kept.sequence < target.sequence:
            catalog.put_checkpoint(provider, signed)
        head = newest_entry(catalog, provider, known=target)
        if head is None or head.sequence <= target.sequence:
            return
        # A head whose object is not stored yet is left to its own writer (it moves the
        # checkpoint after that object), and an unverifiable one is never vouched for.
        if not store.exists(entry_key(provider, head.sequence)) or not verify_entry_signature(head, verifier):
            return
        target = head


def _parse_checkpoint(text: str | None) -> Checkpoint | None:
    try:
        return Checkpoint.from_json(text) if text else None
    except ValueError:
        return None


def verified_digest(store: ObjectStore, provider: str, window: HourWindow, partition: str,
                    run_id: str) -> PartitionDigest | None:
    """The digest of the partition's catalog checksums that this run's integrity diff read and
    found clean (the ledger entry then commits to exactly what was verified, and the catalog is
    not read twice), or None: no report of this run (the ledger materialized on its own), not
    clean, or without a digest; the ledger reads the catalog itself then."""
    try:
        document = json.loads(store.get(report_key(provider, window, "integrity")))
    except (ObjectMissingError, ValueError):
        return None
    if not (isinstance(document, dict) and document.get("run_id") == run_id and document.get("clean") is True
            and document.get("partition") == partition and isinstance(document.get("catalog_digest"), dict)):
        return None
    try:
        return digest_from_document(document["catalog_digest"])
    except ValueError:
        return None


@returns_freed_memory
def record_partition(
    *, store: ObjectStore, catalog: Catalog, signer: Signer, provider: str, window: HourWindow,
    partition: str, run_id: str, verified: PartitionDigest | None = None,
) -> tuple[LedgerEntry, bool]:
    """(the partition's entry, whether it was newly written). ``verified``: the digest of the
    partition's catalog checksums that this run's integrity diff read and found clean; without
    it the catalog is read here."""
    landed = LandedPartition(store, provider, window)
    objects = sorted({(obj.key, obj.checksum) for obj in landed.objects})
    # The checksums alone, in log order, a column page at a time: full catalog entries cost
    # 4.4 s a million records, the pointer pages 2.8 s (the same root).
    checksums = None if verified is not None else (
        value for page in catalog.iter_partition_pointer_pages(partition) for value in page.checksums)
    draft = partition_entry(
        provider=provider, partition=partition, sequence=1, previous_hash="0" * 64,
        record_checksums=checksums, digest=verified, objects=objects, run_id=run_id,
    )
    previous = partition_entries(catalog, partition)
    if previous:
        latest = previous[-1]
        if (latest.merkle_root, latest.record_count, tuple(latest.objects)) == (draft.merkle_root, draft.record_count, tuple(draft.objects)):
            return latest, False
    return append_entry(store=store, catalog=catalog, signer=signer, draft=draft), True


def entry_summary(entry: LedgerEntry) -> dict:
    return json.loads(entry.to_json()) | {"entry_hash": entry.entry_hash}
