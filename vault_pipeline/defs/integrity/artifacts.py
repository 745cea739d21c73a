"""The artifact index (stage 7): every artifact of a partition, with checksum and lineage.

Raw pages, the landing snapshot, validation and dead-letter reports, the lake table and the
integrity report are registered in the catalog with their location, checksum, size and the
artifacts they were derived from, so an auditor can walk from a report back to the bytes.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from vault_pipeline.core.layout import (
    dlq_report_key,
    partition_path,
    report_key,
    snapshot_objects_key,
    snapshot_records_key,
)
from vault_pipeline.core.windows import HourWindow
from vault_pipeline.defs.ingestion.landed import LandedPartition
from vault_pipeline.defs.integrity.ledger_stage import entry_key, partition_entries
from vault_pipeline.storage.catalog import Artifact, Catalog, fixed_width_timestamp
from vault_pipeline.storage.lake import DeltaLake
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore


def artifact_id(kind: str, partition: str, location: str) -> str:
    return "art_" + hashlib.sha256(f"{kind}|{partition}|{location}".encode()).hexdigest()[:32]


def index_artifacts(
    *, store: ObjectStore, catalog: Catalog, lake: DeltaLake, table: str, provider: str,
    window: HourWindow, partition: str, run_id: str,
) -> list[Artifact]:
    now = fixed_width_timestamp(datetime.now(UTC))
    landed = LandedPartition(store, provider, window)
    artifacts: list[Artifact] = []

    def add(kind: str, location: str, upstream: list[str], *, digest=None, size=None, **metadata) -> str:
        identity = artifact_id(kind, partition, location)
        artifacts.append(Artifact(identity, kind, provider, partition, location, digest, size, run_id, now, upstream, metadata))
        return identity

    def add_object(kind: str, key: str, upstream: list[str], **metadata) -> str | None:
        try:
            digest, size = store.digest_of(key)  # the landing snapshot is hashed as read, never held
        except ObjectMissingError:
            return None
        return add(kind, key, upstream, digest=digest, size=size, uri=store.uri(key), **metadata)

    raw_ids = [
        add("raw_object", obj.key, [], digest=obj.checksum, size=obj.size, page=obj.page, records=obj.records,
            source=obj.source, uri=store.uri(obj.key))
        for obj in landed.objects
    ]
    snapshot_ids = [
        i for i in (add_object("landing_snapshot", snapshot_records_key(provider, window), raw_ids),
                    add_object("landing_snapshot", snapshot_objects_key(provider, window), raw_ids)) if i
    ]
    input_id = add_object("input_validation", report_key(provider, window, "input-validation"), snapshot_ids)
    dlq_id = add_object("dead_letter_report", dlq_report_key(provider, window), [i for i in [input_id] if i])
    for key in store.list(f"dlq/{partition_path(provider, window)}/"):
        if key.endswith(".body"):
            add_object("dead_letter_body", key, [])
    version = lake.version(table)
    lake_id = add("lake_table", lake.table_uri(table), snapshot_ids + [i for i in [dlq_id] if i],
                  table=table, version=-1 if version is None else version)
    output_id = add_object("output_validation", report_key(provider, window, "output-validation"), [lake_id])
    integrity_id = add_object("integrity_report", report_key(provider, window, "integrity"),
                              snapshot_ids + [lake_id] + [i for i in [input_id, output_id] if i])
    for entry in partition_entries(catalog, partition)[-1:]:
        add_object("ledger_entry", entry_key(provider, entry.sequence), raw_ids + [i for i in [integrity_id] if i],
                   sequence=entry.sequence, merkle_root=entry.merkle_root)
    catalog.put_artifacts(artifacts)
    return artifacts
