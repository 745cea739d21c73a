"""Indexing ("agent execution"): one catalog entry per landed record, traced with OpenTelemetry.

Entries point at the record's bytes (object key, offset, length) and carry its checksum and
event time. Upserts are keyed by the deterministic ``log_id``, so re-running a partition or
re-fetching an hour through the lookback changes nothing; a re-delivered record whose bytes
differ is reported as a conflict and the first copy is kept. Records rejected by input
validation are indexed with status ``dead_letter`` so their bytes stay reachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from vault_pipeline.core.windows import HourWindow
from vault_pipeline.defs.ingestion.landed import LandedPartition
from vault_pipeline.storage.catalog import DEAD_LETTER, VALID, Catalog, RecordEntry, fixed_width_timestamp
from vault_pipeline.storage.object_store import ObjectStore
from vault_pipeline.tracing import tracer

BATCH = 50_000


@dataclass(slots=True)
class IndexSummary:
    records: int = 0
    inserted: int = 0
    unchanged: int = 0
    dead_letters: int = 0
    conflicts: list[str] = field(default_factory=list)
    watermark: str | None = None


def dead_letter_ids(catalog: Catalog, provider: str, partition: str) -> set[str]:
    ids: set[str] = set()
    offset = 0
    while True:
        letters = catalog.list_dead_letters(provider=provider, partition=partition, limit=10_000, offset=offset)
        ids.update(letter.log_id for letter in letters if letter.log_id and letter.stage == "input_validation")
        if len(letters) < 10_000:
            return ids
        offset += len(letters)


def index_partition(
    *, store: ObjectStore, catalog: Catalog, provider: str, window: HourWindow, partition: str, run_id: str
) -> IndexSummary:
    landed = LandedPartition(store, provider, window)
    rejected = dead_letter_ids(catalog, provider, partition)
    summary = IndexSummary()
    now = fixed_width_timestamp(datetime.now(UTC))
    newest = None
    for rows in landed.row_batches(BATCH):
        with tracer().start_as_current_span("vault.index_batch") as span:
            entries = []
            for row in rows:
                status = DEAD_LETTER if row.log_id in rejected else VALID
                entries.append(RecordEntry(
                    log_id=row.log_id, provider=provider, partition=partition, natural_id=row.natural_id,
                    object_key=row.object_key, offset=row.offset, length=row.length, checksum=row.checksum,
                    timestamp=row.timestamp, run_id=run_id, status=status, ingested_at=now,
                ))
                if status == VALID and row.timestamp and (newest is None or row.timestamp > newest):
                    newest = row.timestamp
            result = catalog.upsert_records(entries)
            summary.records += len(entries)
            summary.inserted += result.inserted
            summary.unchanged += result.unchanged
            summary.conflicts.extend(result.conflicts)
            span.set_attribute("vault.provider", provider)
            span.set_attribute("vault.partition", partition)
            span.set_attribute("vault.records", len(entries))
            span.set_attribute("vault.inserted", result.inserted)
            span.set_attribute("vault.unchanged", result.unchanged)
            span.set_attribute("vault.conflicts", len(result.conflicts))
    # Records first indexed as valid can be rejected by a later, stricter suite: keep status current.
    if rejected:
        catalog.set_status(sorted(rejected), DEAD_LETTER)
    summary.dead_letters = len(rejected)
    if newest:
        summary.watermark = catalog.advance_watermark(provider, newest)
    else:
        summary.watermark = catalog.get_watermark(provider)
    return summary
