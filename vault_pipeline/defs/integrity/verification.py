"""``vault verify``: re-prove everything the ledger committed to, without trusting the catalog.

For each provider the chain is checked (signatures, links, sequence gaps, and the separately
stored checkpoint, which makes deleting the newest entries visible); every ledger entry must
also exist byte-identical under ``ledger/``. For each partition's newest entry, every raw
object is re-read and re-hashed, every catalog record is re-hashed from its byte range, and
the records' checksums in log order are compared with the signed Merkle root, which tells an
inserted, deleted, altered or reordered record apart. Work is one partition at a time, one
object at a time, so memory stays bounded by a partition's index rows.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field

from vault_pipeline.core.ledger import (
    KIND_PARTITION,
    Finding,
    LedgerEntry,
    entries_from_dicts,
    verify_chain,
    verify_partition_objects,
    verify_partition_records,
)
from vault_pipeline.defs.integrity.ledger_stage import entry_key, stored_checkpoint
from vault_pipeline.storage.catalog import Catalog
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore

LEDGER_OBJECT_MISSING = "ledger_object_missing"
LEDGER_OBJECT_MISMATCH = "ledger_object_mismatch"
RECORD_BYTES_ALTERED = "record_bytes_altered"


@dataclass(slots=True)
class VerifyReport:
    findings: list[Finding] = field(default_factory=list)
    providers: int = 0
    entries: int = 0
    partitions: int = 0
    objects: int = 0
    records: int = 0
    bytes_hashed: int = 0
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        rate = self.bytes_hashed / 1e6 / self.seconds if self.seconds else 0.0
        return (f"{self.providers} providers, {self.entries} ledger entries, {self.partitions} partitions, "
                f"{self.objects} objects, {self.records} records, {self.bytes_hashed / 1e6:.1f} MB re-hashed "
                f"in {self.seconds:.2f}s ({rate:.0f} MB/s): {len(self.findings)} findings")


def verify_vault(*, store: ObjectStore, catalog: Catalog, verifier, providers: list[str] | None = None,
                 since_partition_hour: str | None = None) -> VerifyReport:
    started = time.perf_counter()
    report = VerifyReport()
    for provider in providers if providers is not None else catalog.ledger_providers():
        report.providers += 1
        entries = _verify_provider_chain(store, catalog, verifier, provider, report)
        newest_per_partition: dict[str, LedgerEntry] = {}
        for entry in entries:
            if entry.kind == KIND_PARTITION:
                newest_per_partition[entry.partition] = entry
        for partition, entry in sorted(newest_per_partition.items()):
            if since_partition_hour and partition.split("|")[0] < since_partition_hour:
                continue
            _verify_partition(store, catalog, entry, report)
    report.seconds = time.perf_counter() - started
    return report


def _verify_provider_chain(store, catalog, verifier, provider, report) -> list[LedgerEntry]:
    stored = list(catalog.ledger_entries(provider))
    entries, findings = entries_from_dicts([json.loads(text) for _, text in stored], provider)
    report.findings += findings
    report.entries += len(entries)
    checkpoint = stored_checkpoint(store, catalog, provider)
    report.findings += verify_chain(entries, checkpoint, verifier, provider=provider)
    for sequence, text in stored:
        try:
            kept = store.get(entry_key(provider, sequence))
        except ObjectMissingError:
            report.findings.append(Finding(LEDGER_OBJECT_MISSING, provider, sequence,
                                           f"{entry_key(provider, sequence)} is missing from the object store"))
            continue
        if kept != text.encode():
            report.findings.append(Finding(LEDGER_OBJECT_MISMATCH, provider, sequence,
                                           "the catalog's copy of the entry differs from the immutable object"))
    return entries


def _verify_partition(store: ObjectStore, catalog: Catalog, entry: LedgerEntry, report: VerifyReport) -> None:
    report.partitions += 1
    pointers = list(catalog.iter_partition_pointers(entry.partition))  # log order: ascending log_id
    report.records += len(pointers)
    report.findings += verify_partition_records(entry, (pointer[4] for pointer in pointers))
    by_object: dict[str, list] = defaultdict(list)
    for pointer in pointers:
        by_object[pointer[1]].append(pointer)
    current: dict[str, str | None] = {}
    for key in sorted({key for key, _ in entry.objects} | set(by_object)):
        try:
            data = store.get(key)
        except ObjectMissingError:
            current[key] = None
            continue
        report.objects += 1
        report.bytes_hashed += len(data)
        current[key] = "sha256:" + hashlib.sha256(data).hexdigest()
        view = memoryview(data)
        sha256 = hashlib.sha256
        for log_id, _key, offset, length, record_checksum in by_object.get(key, ()):
            piece = view[offset : offset + length]
            report.bytes_hashed += length
            if len(piece) != length or "sha256:" + sha256(piece).hexdigest() != record_checksum:
                report.findings.append(Finding(RECORD_BYTES_ALTERED, entry.provider, entry.sequence,
                                               f"record {log_id} in {key} no longer hashes to its checksum",
                                               entry.partition))
    report.findings += verify_partition_objects(entry, current)
