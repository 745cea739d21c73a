"""Normalising a partition into its kind's Delta fact table, and reading it back for checks.

Only records that passed input validation are normalised. Rows are merged on ``log_id`` in
batches (idempotent: a re-run or a lookback duplicate inserts nothing), partitioned by event
date and hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc

from vault_pipeline.core.kinds import fact_table_name
from vault_pipeline.core.normalise import fact_table
from vault_pipeline.core.projection import Projector
from vault_pipeline.core.windows import HourWindow
from vault_pipeline.defs.ingestion.indexing import dead_letter_ids
from vault_pipeline.defs.ingestion.landed import LandedPartition
from vault_pipeline.storage.catalog import Catalog
from vault_pipeline.storage.lake import DeltaLake
from vault_pipeline.storage.object_store import ObjectStore

BATCH = 250_000


@dataclass(slots=True)
class NormaliseSummary:
    table: str
    rows: int = 0
    inserted: int = 0
    unchanged: int = 0
    skipped_dead_letters: int = 0
    version: int | None = None


def normalise_partition(
    *, store: ObjectStore, catalog: Catalog, lake: DeltaLake, kind: str, provider: str,
    window: HourWindow, partition: str, run_id: str,
) -> NormaliseSummary:
    landed = LandedPartition(store, provider, window)
    rejected = dead_letter_ids(catalog, provider, partition)
    summary = NormaliseSummary(table=fact_table_name(kind))
    projector = Projector(kind)
    for rows in landed.row_batches(BATCH):
        items = []
        for row, data in landed.with_bytes(rows):
            if row.log_id in rejected or row.timestamp is None:
                summary.skipped_dead_letters += 1
                continue
            items.append((row, data))
        table = fact_table(kind, provider, run_id, items, projector)
        # One row per log_id within the batch; across batches the merge itself absorbs repeats.
        table = _first_per_key(table)
        summary.rows += table.num_rows
        stats = lake.merge(summary.table, table)
        summary.inserted += stats.inserted
        summary.unchanged += stats.unchanged
        summary.version = stats.version
    return summary


def _first_per_key(table: pa.Table) -> pa.Table:
    if table.num_rows == 0:
        return table
    indices = pa.array(range(table.num_rows))
    firsts = table.append_column("__i", indices).group_by("log_id", use_threads=False).aggregate([("__i", "min")])
    keep = pc.sort_indices(firsts["__i_min"])
    return table.take(pc.take(firsts["__i_min"], keep))


def partitions_of(window: HourWindow) -> list[tuple[str, str]]:
    """(date, hour) pairs of the lake partitions a fetch window can touch."""
    pairs = []
    moment = window.start.replace(minute=0, second=0, microsecond=0)
    while moment < window.end:
        pairs.append((moment.strftime("%Y-%m-%d"), moment.strftime("%H")))
        moment += timedelta(hours=1)
    return pairs
