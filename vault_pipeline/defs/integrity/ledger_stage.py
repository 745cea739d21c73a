"""Writing a partition into the tamper-evident ledger once it has proven intact.

Each partition's entry commits to the Merkle root of its record checksums in log order
(ascending ``log_id``, the catalog's own order for a partition, so anyone can recompute it
from the index), the record count and every raw object with its checksum, chained to the
provider's previous entry and signed. Entries are immutable objects under ``ledger/`` and rows
in the catalog; a signed checkpoint naming the newest entry is stored under
``ledger/{provider}/HEAD.json`` and in the catalog, so deleting the newest entries is visible.
Re-running an unchanged partition writes nothing new.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

from vault_pipeline.core.ledger import (
    KIND_PARTITION,
    Checkpoint,
    LedgerEntry,
    Signer,
    make_checkpoint,
    next_position,
    partition_entry,
    sign_entry,
)
from vault_pipeline.core.windows import HourWindow
from vault_pipeline.defs.ingestion.landed import LandedPartition
from vault_pipeline.storage.catalog import Catalog
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore


def ledger_retention_days() -> int:
    """How long ledger entries stay locked (S3 Object Lock), VAULT_LEDGER_RETENTION_DAYS, default 7 years."""
    return int(os.environ.get("VAULT_LEDGER_RETENTION_DAYS", str(7 * 365)))


def entry_key(provider: str, sequence: int) -> str:
    return f"ledger/{provider}/{sequence:012d}.json"


def checkpoint_key(provider: str) -> str:
    return f"ledger/{provider}/HEAD.json"


def newest_entry(catalog: Catalog, provider: str) -> LedgerEntry | None:
    newest = None
    for _sequence, text in catalog.ledger_entries(provider):
        newest = text
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


def append_entry(*, store: ObjectStore, catalog: Catalog, signer: Signer, draft: LedgerEntry) -> LedgerEntry:
    """Chain ``draft`` after the provider's newest entry, sign it, store it and move the checkpoint."""
    provider = draft.provider
    sequence, previous_hash = next_position(newest_entry(catalog, provider), stored_checkpoint(store, catalog, provider),
                                            signer.verifier())
    entry = sign_entry(replace(draft, sequence=sequence, previous_hash=previous_hash), signer)
    text = entry.to_json()
    store.put(entry_key(provider, sequence), text.encode(), retain_days=ledger_retention_days())  # never overwritten
    catalog.append_ledger_entry(provider, sequence, draft.partition, text)
    checkpoint = make_checkpoint(entry, signer).to_json()
    store.put(checkpoint_key(provider), checkpoint.encode(), overwrite=True)
    catalog.put_checkpoint(provider, checkpoint)
    return entry


def record_partition(
    *, store: ObjectStore, catalog: Catalog, signer: Signer, provider: str, window: HourWindow,
    partition: str, run_id: str,
) -> tuple[LedgerEntry, bool]:
    """(the partition's entry, whether it was newly written)."""
    landed = LandedPartition(store, provider, window)
    objects = sorted({(obj.key, obj.checksum) for obj in landed.objects})
    draft = partition_entry(
        provider=provider, partition=partition, sequence=1, previous_hash="0" * 64,
        record_checksums=(entry.checksum for entry in catalog.iter_partition_records(partition)),
        objects=objects, run_id=run_id,
    )
    previous = partition_entries(catalog, partition)
    if previous:
        latest = previous[-1]
        if (latest.merkle_root, latest.record_count, tuple(latest.objects)) == (draft.merkle_root, draft.record_count, tuple(draft.objects)):
            return latest, False
    return append_entry(store=store, catalog=catalog, signer=signer, draft=draft), True


def entry_summary(entry: LedgerEntry) -> dict:
    return json.loads(entry.to_json()) | {"entry_hash": entry.entry_hash}
