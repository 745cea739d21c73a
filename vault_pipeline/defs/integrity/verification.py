"""``vault verify``: re-prove everything the ledger committed to, without trusting the catalog.

For each provider the chain is checked (signatures, links, sequence gaps, and the separately
stored checkpoint, which makes deleting the newest entries visible); every ledger entry must
also exist byte-identical under ``ledger/``. For each partition's newest entry, every raw
object is re-read and re-hashed, every catalog record is re-hashed from its byte range, and
the records' checksums in log order are compared with the signed Merkle root, which tells an
inserted, deleted, altered or reordered record apart.

An auditor re-proves millions of records, so the work is spread over the machine's cores: a
partition's log order is cut into slices (at multiples of a power of two, so the slices'
Merkle subtrees combine into exactly the signed root) verified side by side, one in this
process and the others in worker processes, when the catalog and the object store can be
opened from another process (their ``worker_opener``: SQLite file, local directory); otherwise
(MongoDB, S3), or for a small partition, the whole partition is one slice verified here. How
one slice is read and re-hashed, in bounded memory, is ``partition_slices``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections.abc import Collection, Mapping
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from operator import itemgetter

from vault_pipeline.core.ledger import (
    CHECKPOINT_MISSING,
    KIND_PARTITION,
    RECORD_DELETED,
    VAULT_CHAIN,
    Finding,
    LedgerEntry,
    PartitionDigest,
    entries_from_dicts,
    verify_chain,
    verify_partition_digest,
    verify_partition_objects,
)
from vault_pipeline.defs.integrity.coverage import (
    checkpoint_object_findings,
    checkpoint_unreadable,
    lake_findings,
    name_deleted_records,
    providers_with_data,
    raw_object_findings,
    unsealed_findings,
)
from vault_pipeline.defs.integrity.ledger_stage import entry_key, stored_checkpoint
from vault_pipeline.defs.integrity.partition_slices import Openers, SliceResult, verify_slice, verify_slice_in_worker
from vault_pipeline.storage.catalog import Catalog
from vault_pipeline.storage.lake import DeltaLake
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore

_log = logging.getLogger(__name__)

LEDGER_OBJECT_MISSING = "ledger_object_missing"
LEDGER_OBJECT_MISMATCH = "ledger_object_mismatch"
RECORD_BYTES_ALTERED = "record_bytes_altered"

#: Slices of a partition start at multiples of this many records (a power of two).
SLICE_ALIGNMENT = 4096
#: Below this many records a partition is verified in this process: starting a worker costs more.
PARALLEL_MIN_RECORDS = 100_000
MAX_DEFAULT_WORKERS = 4


@dataclass(slots=True)
class VerifyReport:
    findings: list[Finding] = field(default_factory=list)
    providers: int = 0
    entries: int = 0
    partitions: int = 0
    objects: int = 0
    records: int = 0
    lake_rows: int = 0
    bytes_hashed: int = 0
    seconds: float = 0.0
    in_progress: list[str] = field(default_factory=list)  # partitions left alone: a run of them is going on
    hashed_keys: set[str] = field(default_factory=set)

    @property
    def checked_anything(self) -> bool:
        """Whether the selection held data: a chain alone, with every partition outside
        ``--since``, is not what was asked to be verified."""
        return bool(self.partitions or self.records or self.objects or self.lake_rows)

    @property
    def clean(self) -> bool:
        """Nothing found, and something was looked at: an empty selection is never clean."""
        return not self.findings and self.checked_anything

    def summary(self) -> str:
        if not self.checked_anything and not self.findings:
            return (f"nothing to verify: {self.providers} providers selected, no sealed partitions, records, "
                    "raw objects or lake rows among them")
        rate = self.bytes_hashed / 1e6 / self.seconds if self.seconds else 0.0
        skipped = f", {len(self.in_progress)} partitions left alone while a run of them is in progress" if self.in_progress else ""
        return (f"{self.providers} providers, {self.entries} ledger entries, {self.partitions} partitions, "
                f"{self.objects} objects, {self.records} records, {self.lake_rows} lake rows, "
                f"{self.bytes_hashed / 1e6:.1f} MB re-hashed in {self.seconds:.2f}s ({rate:.0f} MB/s){skipped}: "
                f"{len(self.findings)} findings")


def default_workers() -> int:
    """Processes verifying one partition side by side: the cores this process may run on, at most
    MAX_DEFAULT_WORKERS, because a slice of the log order has records in nearly every object of
    the partition, so each extra slice reads (not hashes) the partition's objects once more."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


def verify_vault(*, store: ObjectStore, catalog: Catalog, verifier, providers: list[str] | None = None,
                 since_partition_hour: str | None = None, workers: int | None = None,
                 lake: DeltaLake | None = None, kinds: Mapping[str, str] | None = None,
                 in_progress: Collection[str] = (),
                 parallel_min_records: int = PARALLEL_MIN_RECORDS,
                 slice_alignment: int = SLICE_ALIGNMENT) -> VerifyReport:
    """Verify every provider's chain and each partition's newest entry, and that nothing else is
    unseen: unsealed catalog records, the ``lake`` (when given; ``kinds`` maps providers to their
    kind) against the catalog, and every raw object. ``providers`` None means every provider the
    vault holds anything of. Partitions in ``in_progress`` (a run of them is going on) are not
    reported as unsealed. ``workers`` processes (default: one per core, 1 = this process only)
    share a partition of at least ``parallel_min_records`` records when the catalog and store
    allow it."""
    if slice_alignment < 1 or slice_alignment & (slice_alignment - 1):
        raise ValueError(f"slice_alignment must be a power of two, not {slice_alignment}")
    started = time.perf_counter()
    report = VerifyReport()
    kinds = dict(kinds or {})
    selected = sorted(providers) if providers is not None else sorted(providers_with_data(catalog, store, kinds))
    since = since_partition_hour
    with _PartitionVerifier(store, catalog, workers or default_workers(), parallel_min_records,
                            slice_alignment) as partitions:
        for provider in selected:
            if provider == VAULT_CHAIN:
                # The vault's own chain (configuration, key ring, reports): signatures, links and
                # checkpoint like any chain, but it seals no partition, records or lake rows.
                _verify_provider_chain(store, catalog, verifier, provider, report, in_progress)
                continue
            report.providers += 1
            entries = _verify_provider_chain(store, catalog, verifier, provider, report, in_progress)
            newest_per_partition: dict[str, LedgerEntry] = {}
            for entry in entries:
                if entry.kind == KIND_PARTITION:
                    newest_per_partition[entry.partition] = entry
            for partition, entry in sorted(newest_per_partition.items()):
                if since and partition.split("|")[0] < since:
                    continue
                partitions.verify(entry, report)
            sealed = set(newest_per_partition)
            held = catalog.partition_record_counts(provider=provider)
            unsealed, skipped = unsealed_findings(held, provider, sealed, in_progress, since)
            report.findings += unsealed
            report.in_progress += skipped
            if lake is not None:
                found, rows = lake_findings(lake, catalog, provider, kinds.get(provider), sorted(held), sealed,
                                            in_progress, since)
                report.findings += found
                report.lake_rows += rows
    found, objects, size = raw_object_findings(store, [p for p in selected if p != VAULT_CHAIN], report.hashed_keys,
                                               since)
    report.findings += found
    report.objects += objects
    report.bytes_hashed += size
    report.seconds = time.perf_counter() - started
    return report


def _verify_provider_chain(store, catalog, verifier, provider, report, in_progress=()) -> list[LedgerEntry]:
    stored = list(catalog.ledger_entries(provider))
    entries, findings = entries_from_dicts([json.loads(text) for _, text in stored], provider)
    report.findings += findings
    report.entries += len(entries)
    newest = max((entry.sequence for entry in entries), default=0)
    try:
        checkpoint, unreadable = stored_checkpoint(store, catalog, provider), False
    except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint is a finding, not a crash
        report.findings.append(checkpoint_unreadable(provider, newest, exc))
        checkpoint, unreadable = None, True
    chain = verify_chain(entries, checkpoint, verifier, provider=provider)
    if unreadable:
        chain = [finding for finding in chain if finding.type != CHECKPOINT_MISSING]
    elif checkpoint is not None:  # the catalog's copy may stand in for a deleted object: say so
        report.findings += checkpoint_object_findings(store, provider, newest)
    report.findings += chain
    # An append writes the catalog row, then the object, then the checkpoint: an entry past the
    # checkpoint whose partition a run is writing now may be between the two.
    appending = {entry.sequence for entry in entries if entry.partition in in_progress
                 and (checkpoint is None or entry.sequence > checkpoint.sequence)}
    for sequence, text in stored:
        try:
            kept = store.get(entry_key(provider, sequence))
        except ObjectMissingError:
            if sequence in appending:
                continue
            report.findings.append(Finding(LEDGER_OBJECT_MISSING, provider, sequence,
                                           f"{entry_key(provider, sequence)} is missing from the object store"))
            continue
        if kept != text.encode():
            report.findings.append(Finding(LEDGER_OBJECT_MISMATCH, provider, sequence,
                                           "the catalog's copy of the entry differs from the immutable object"))
    return entries


# -- one partition, in slices --------------------------------------------------------------


class _PartitionVerifier:
    def __init__(self, store: ObjectStore, catalog: Catalog, workers: int, parallel_min_records: int,
                 slice_alignment: int) -> None:
        self.store, self.catalog = store, catalog
        self.workers = max(1, workers)
        self.parallel_min_records = parallel_min_records
        self.alignment = slice_alignment
        # Worker processes open the vault themselves, with the adapters' worker openers; in-memory
        # or networked clients (mongomock, moto, a boto3 session) have none, so those vaults are
        # verified here.
        self.shared = _shareable(store, catalog)
        self._pool: Executor | None = None

    def __enter__(self) -> _PartitionVerifier:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _slices(self, partition: str) -> list[tuple[int, int | None]]:
        if self.workers == 1 or self.shared is None:
            return [(0, None)]
        count = self.catalog.count_records(partition=partition)
        if count < max(self.parallel_min_records, 1):
            return [(0, None)]
        align = self.alignment
        cuts = sorted({round(count * i / self.workers / align) * align for i in range(1, self.workers)} - {0})
        cuts = [cut for cut in cuts if cut < count]
        # The last slice runs to the end, so records added meanwhile are still counted.
        return list(zip([0, *cuts], [*cuts, None], strict=True))

    def verify(self, entry: LedgerEntry, report: VerifyReport) -> None:
        report.partitions += 1
        slices = self._slices(entry.partition)
        entry_keys = sorted({key for key, _ in entry.objects})
        # Each committed object is read whole and hashed by one slice; every slice reads the
        # objects its own records are in.
        owned = [frozenset(entry_keys[i :: len(slices)]) for i in range(len(slices))]
        committed = frozenset(entry_keys)
        futures = []
        if len(slices) > 1:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=self.workers - 1,
                                                 mp_context=multiprocessing.get_context("spawn"))
            futures = [self._pool.submit(verify_slice_in_worker, self.shared, entry.partition, start, stop,
                                         owned[i], committed, self.alignment)
                       for i, (start, stop) in enumerate(slices[1:], 1)]
        start, stop = slices[0]
        results = [verify_slice(self.store, self.catalog, entry.partition, start, stop, owned[0], committed,
                                self.alignment)]
        for i, future in enumerate(futures, 1):
            try:
                results.append(future.result())
            except Exception as exc:  # noqa: BLE001 - any worker failure: redo the slice here
                # A worker that cannot open the vault, or a pool that broke (e.g. a __main__
                # without the `if __name__ == "__main__"` guard), must not cost the verdict:
                # the slice is verified again in this process, where a real error recurs.
                _log.warning("verify worker failed on %s slice %s (%s: %s); verifying it in-process",
                             entry.partition, slices[i], type(exc).__name__, exc)
                if isinstance(exc, BrokenExecutor) and self._pool is not None:
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool, self.shared = None, None
                results.append(verify_slice(self.store, self.catalog, entry.partition, *slices[i], owned[i],
                                            committed, self.alignment))
        self._report(entry, results, report)

    def _report(self, entry: LedgerEntry, results: list[SliceResult], report: VerifyReport) -> None:
        digest = PartitionDigest.combine(part for result in results for part in result.digest_parts)
        report.records += digest.count
        found = verify_partition_digest(entry, digest)
        if [f.type for f in found] == [RECORD_DELETED]:
            lost = name_deleted_records(self.store, self.catalog, entry)
            if lost:
                found = [replace(found[0], detail=f"{found[0].detail}: {', '.join(lost)}")]
        report.findings += found
        current: dict[str, str | None] = {}
        for result in results:
            for key, (checksum, size) in result.objects.items():
                if key not in current:
                    current[key] = checksum
                    if checksum is not None:
                        report.hashed_keys.add(key)
                    report.objects += checksum is not None
                    report.bytes_hashed += size
            report.bytes_hashed += result.record_bytes
        # Slices are in log order, so a stable sort by key keeps log order within each object.
        altered = sorted((pair for result in results for pair in result.altered), key=itemgetter(0))
        report.findings += [Finding(RECORD_BYTES_ALTERED, entry.provider, entry.sequence,
                                    f"record {log_id} in {key} no longer hashes to its checksum", entry.partition)
                            for key, log_id in altered]
        report.findings += verify_partition_objects(entry, current)


def _shareable(store: ObjectStore, catalog: Catalog) -> Openers | None:
    """How a worker process opens this vault (the adapters' worker openers), or None when
    either adapter cannot be re-opened in another process."""
    open_store, open_catalog = store.worker_opener(), catalog.worker_opener()
    if open_store is None or open_catalog is None:
        return None
    return open_store, open_catalog
