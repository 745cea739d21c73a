"""Indexing ("agent execution"): one catalog entry per landed record, traced with OpenTelemetry.

Entries point at the record's bytes (object key, offset, length) and carry its checksum and
event time. Upserts are keyed by the deterministic ``log_id``, so re-running a partition or
re-fetching an hour through the lookback changes nothing; a re-delivered record whose bytes
differ is reported as a conflict and the first copy is kept. Records rejected by input
validation are indexed with status ``dead_letter`` so their bytes stay reachable.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice, repeat

import pyarrow as pa
import pyarrow.compute as pc

from vault_pipeline.allocators import returns_freed_memory
from vault_pipeline.core.windows import HourWindow
from vault_pipeline.defs.ingestion.landed import LandedPartition
from vault_pipeline.storage.catalog import DEAD_LETTER, RECORD_FIELDS, VALID, Catalog, fixed_width_timestamp
from vault_pipeline.storage.object_store import ObjectStore
from vault_pipeline.tracing import tracer

BATCH = 50_000
PROBE_SLICE = 100_000  # log_ids asked of the catalog at a time
_SNAPSHOT_COLUMNS = ["log_id", "natural_id", "object_key", "offset", "length", "checksum", "timestamp"]


@dataclass(slots=True)
class IndexSummary:
    records: int = 0
    inserted: int = 0
    unchanged: int = 0
    dead_letters: int = 0
    conflicts: list[str] = field(default_factory=list)
    watermark: str | None = None


def _rows_of(batch: pa.RecordBatch, rejected_ids: pa.Array, constants: dict[str, str]) -> tuple[list[tuple], str | None]:
    """A snapshot batch as catalog rows (log_id order), and its newest valid event time."""
    # Inserting in log_id order keeps the random-order indexes (log_id, partition) local.
    batch = batch.take(pc.sort_indices(batch, [("log_id", "ascending")]))
    dead = pc.is_in(batch.column("log_id"), value_set=rejected_ids)
    latest = pc.max(pc.if_else(dead, None, batch.column("timestamp"))).as_py()
    columns = {name: batch.column(name).to_pylist() for name in _SNAPSHOT_COLUMNS}
    columns["status"] = pc.if_else(dead, DEAD_LETTER, VALID).to_pylist()
    rows = list(zip(*(
        columns[name] if name in columns else repeat(constants[name], batch.num_rows) for name in RECORD_FIELDS
    )))
    return rows, latest


def rejected_in_fetch(catalog: Catalog, snapshot: pa.Table) -> set[str]:
    """The fetch's log_ids that input validation rejected, in this partition or any other
    (adjacent hours share records through the lookback, and may run at the same time)."""
    log_ids = snapshot.column("log_id")
    # In slices: a million ids as one Python list (and the adapter's copies of it) cost 280 MB.
    # Not made unique first: the catalog drops repeats within a slice, and Arrow's hash of a
    # million strings (0.8 s) cost more than the few repeats a lookback brings.
    return rejected_among(catalog, (log_ids.slice(start, PROBE_SLICE).to_pylist()
                                    for start in range(0, len(log_ids), PROBE_SLICE)))


def rejected_among(catalog: Catalog, slices: Iterable[list[str]]) -> set[str]:
    """The log_ids of these slices (of at most PROBE_SLICE) that input validation rejected."""
    found: set[str] = set()
    for log_ids in slices:
        found |= catalog.dead_lettered(log_ids)
    return found


@returns_freed_memory
def index_partition(
    *, store: ObjectStore, catalog: Catalog, provider: str, window: HourWindow, partition: str, run_id: str
) -> IndexSummary:
    landed = LandedPartition(store, provider, window)
    rejected = rejected_in_fetch(catalog, landed.snapshot_table(["log_id"]))
    rejected_ids = pa.array(sorted(rejected), pa.string())
    summary = IndexSummary()
    constants = {"provider": provider, "partition": partition, "run_id": run_id,
                 "ingested_at": fixed_width_timestamp(datetime.now(UTC))}
    newest = None
    # The next batch's rows are prepared on a helper thread while SQLite inserts this one
    # (sqlite3 releases the GIL while it steps through the inserts).
    with catalog.bulk_writes(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="vault-index") as helper:
        batches = landed.record_batches(BATCH, columns=_SNAPSHOT_COLUMNS)
        ahead = [helper.submit(_rows_of, batch, rejected_ids, constants) for batch in islice(batches, 1)]
        while ahead:
            rows, latest = ahead.pop().result()
            ahead = [helper.submit(_rows_of, batch, rejected_ids, constants) for batch in islice(batches, 1)]
            if latest is not None and (newest is None or latest > newest):
                newest = latest
            with tracer().start_as_current_span("vault.index_batch") as span:
                result = catalog.upsert_rows(rows)
                summary.records += len(rows)
                summary.inserted += result.inserted
                summary.unchanged += result.unchanged
                summary.conflicts.extend(result.conflicts)
                span.set_attribute("vault.provider", provider)
                span.set_attribute("vault.partition", partition)
                span.set_attribute("vault.records", len(rows))
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
