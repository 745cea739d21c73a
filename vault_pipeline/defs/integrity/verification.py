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
(MongoDB, S3), or for a small partition, the whole partition is one slice verified here.
Within a slice the catalog is read a page of pointers at a time; objects are read and hashed
whole a few ahead in threads (hashlib releases the GIL on large buffers) while this thread
hashes the records of the previous one, in offset order, and compares raw digests rather than
hex strings. Memory holds one slice's pointers in compact columns (about 100 bytes a record)
and a few objects.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import time
from collections import defaultdict, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import count, islice
from operator import add, itemgetter

import numpy as np

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
from vault_pipeline.core.merkle import digests_from_checksums
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
from vault_pipeline.storage.catalog import Catalog, PointerPage
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
# Objects read ahead of the one being checked (bounded memory; hides S3 latency).
READ_AHEAD = 2


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


@dataclass(slots=True)
class _SliceResult:
    """What one slice of a partition found; picklable, so a worker process can send it back."""

    digest_parts: list = field(default_factory=list)  # PartitionDigest.part()s, in log order
    objects: dict[str, tuple[str | None, int]] = field(default_factory=dict)  # key -> (checksum now, size)
    altered: list[tuple[str, str]] = field(default_factory=list)  # (object key, log_id), log order per key
    record_bytes: int = 0


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
            futures = [self._pool.submit(_verify_slice_in_worker, self.shared, entry.partition, start, stop,
                                         owned[i], committed, self.alignment)
                       for i, (start, stop) in enumerate(slices[1:], 1)]
        start, stop = slices[0]
        results = [_verify_slice(self.store, self.catalog, entry.partition, start, stop, owned[0], committed,
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
                results.append(_verify_slice(self.store, self.catalog, entry.partition, *slices[i], owned[i],
                                             committed, self.alignment))
        self._report(entry, results, report)

    def _report(self, entry: LedgerEntry, results: list[_SliceResult], report: VerifyReport) -> None:
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


_Openers = tuple[Callable[[], ObjectStore], Callable[[], Catalog]]


def _shareable(store: ObjectStore, catalog: Catalog) -> _Openers | None:
    """How a worker process opens this vault (the adapters' worker openers), or None when
    either adapter cannot be re-opened in another process."""
    open_store, open_catalog = store.worker_opener(), catalog.worker_opener()
    if open_store is None or open_catalog is None:
        return None
    return open_store, open_catalog


def _verify_slice_in_worker(shared: _Openers, partition: str, start: int, stop: int | None,
                            owned: frozenset[str], committed: frozenset[str], alignment: int) -> _SliceResult:
    open_store, open_catalog = shared
    catalog = open_catalog()
    try:
        store = open_store()
        try:
            return _verify_slice(store, catalog, partition, start, stop, owned, committed, alignment)
        finally:
            store.close()
    finally:
        catalog.close()


class _SliceIndex:
    """A slice's record pointers in compact columns (about 60 bytes a record plus its log_id),
    then sorted by object and offset, so each object is read once, front to back."""

    def __init__(self) -> None:
        self._code_of: dict[str, int] = defaultdict(count().__next__)  # object key -> small int
        self._codes: list[np.ndarray] = []
        self._offsets: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []
        self._digests = bytearray()
        # log_ids only name altered records: kept per page as one string plus where each ends.
        self._log_ids: list[tuple[str, np.ndarray]] = []
        self._odd: list[int] = []  # rows whose checksum is not in canonical form: never equal
        self.rows = 0

    def add(self, page: PointerPage, digests: bytes, odd: list[int]) -> None:
        # numpy would quietly take 12.0 or "12" for 12; a slice of the stored bytes never did.
        if not set(map(type, page.offsets)) | set(map(type, page.lengths)) <= {int}:
            raise TypeError(f"record offsets and lengths must be integers (partition page at row {self.rows})")
        self._codes.append(np.fromiter(map(self._code_of.__getitem__, page.object_keys), np.int32, len(page)))
        self._offsets.append(np.array(page.offsets, dtype=np.int64))
        self._lengths.append(np.array(page.lengths, dtype=np.int64))
        self._digests += digests
        ends = np.cumsum(np.fromiter(map(len, page.log_ids), np.int64, len(page)))
        self._log_ids.append(("".join(page.log_ids), ends))
        self._odd += [self.rows + row for row in odd]
        self.rows += len(page)

    def log_id(self, row: int) -> str:
        for joined, ends in self._log_ids:
            if row < len(ends):
                return joined[ends[row - 1] if row else 0 : ends[row]]
            row -= len(ends)
        raise IndexError(row)

    def by_object(self) -> Iterator[tuple[str, _ObjectRecords]]:
        """Each object's records, sorted by key, built one object at a time."""
        if not self.rows:
            return
        codes = np.concatenate(self._codes)
        offsets, lengths = np.concatenate(self._offsets), np.concatenate(self._lengths)
        digests = np.frombuffer(self._digests, dtype="V32")  # one 32-byte item per record
        self._codes, self._offsets, self._lengths = [], [], []
        # Within an object, records in offset order: hashing then walks the object front to back.
        if len(offsets) and 0 <= offsets.min() and offsets.max() < 1 << 40:
            order = np.argsort(codes.astype(np.int64) << 40 | offsets)  # one sort key: cheaper than lexsort
        else:
            order = np.lexsort((offsets, codes))
        bounds = np.searchsorted(codes[order], np.arange(len(self._code_of) + 1)).tolist()
        del codes
        odd = set(self._odd)
        for key, code in sorted(self._code_of.items()):
            rows = order[bounds[code] : bounds[code + 1]]
            yield key, _ObjectRecords(rows, offsets[rows], lengths[rows], digests[rows].tobytes(),
                                      {i for i, row in enumerate(rows.tolist()) if row in odd} if odd else set())

    def keys(self) -> set[str]:
        return set(self._code_of)


class _ObjectRecords:
    """The records of one object within a slice, in offset order."""

    __slots__ = ("rows", "offsets", "lengths", "expected", "odd")

    def __init__(self, rows: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, expected: bytes,
                 odd: set[int]) -> None:
        self.rows = rows  # the slice rows (log order) of these records
        self.offsets, self.lengths = offsets, lengths
        self.expected = expected  # the 32-byte digests the catalog's checksums name
        self.odd = odd


def _verify_slice(store: ObjectStore, catalog: Catalog, partition: str, start: int, stop: int | None,
                  owned: frozenset[str], committed: frozenset[str], alignment: int) -> _SliceResult:
    result = _SliceResult()
    index = _SliceIndex()
    digest = PartitionDigest()
    position = start
    for page in catalog.iter_partition_pointer_pages(partition, start=start, stop=stop):
        # A checksum that is not even a digest (a rewritten catalog row) is a finding, not a crash.
        digests, odd = digests_from_checksums(page.checksums, flag_invalid=True)
        leaves = [digests[i : i + 32] for i in range(0, len(digests), 32)]
        # Digest parts end at multiples of the alignment, so slices hashed apart combine exactly.
        done = 0
        while done < len(leaves):
            take = min(len(leaves) - done, alignment - position % alignment)
            digest.add_leaves(leaves[done : done + take])
            done += take
            position += take
            if position % alignment == 0:
                result.digest_parts.append(digest.part())
                digest = PartitionDigest()
        index.add(page, digests, odd)
    if digest.count:
        result.digest_parts.append(digest.part())

    keys = sorted(index.keys() | owned)
    # Keys no entry committed to are hashed by every slice that points into them (deduplicated
    # when the slices are combined), committed ones only by the slice that owns them.
    wanted = {key for key in keys if key in owned or key not in committed}
    groups = index.by_object()
    group = next(groups, None)
    for key, data, checksum in _read_ahead(store, keys, wanted):
        if key in wanted:
            result.objects[key] = (checksum, len(data) if data is not None else 0)
        if group is None or group[0] != key:
            continue
        records = group[1]
        group = next(groups, None)
        if data is None:
            continue
        hashed, altered = _check_records(data, records)
        result.record_bytes += hashed
        if altered:
            rows = records.rows[altered].tolist()
            result.altered += [(key, index.log_id(row)) for row in sorted(rows)]
    return result


def _check_records(data: bytes, records: _ObjectRecords) -> tuple[int, list[int]]:
    """(bytes hashed, indexes of the records whose bytes no longer hash to their catalog checksum)."""
    offsets, lengths, expected = records.offsets.tolist(), records.lengths.tolist(), records.expected
    sha256 = hashlib.sha256
    size = len(data)
    hashed = sum(lengths)
    if min(offsets) >= 0 and min(lengths) >= 0 and max(map(add, offsets, lengths)) <= size:
        # Every range lies inside the object: hash them all and compare in one go.
        got = b"".join([sha256(data[o : o + n]).digest() for o, n in zip(offsets, lengths)])
        if got == expected and not records.odd:
            return hashed, []
        return hashed, [i for i in range(len(offsets))
                        if i in records.odd or got[32 * i : 32 * i + 32] != expected[32 * i : 32 * i + 32]]
    altered = []
    for i, (o, n) in enumerate(zip(offsets, lengths, strict=True)):
        piece = data[o : o + n]
        if len(piece) != n or i in records.odd or sha256(piece).digest() != expected[32 * i : 32 * i + 32]:
            altered.append(i)
    return hashed, altered


def _read_ahead(store: ObjectStore, keys: Iterable[str],
                hashed: set[str]) -> Iterator[tuple[str, bytes | None, str | None]]:
    """``(key, bytes or None if missing, "sha256:<hex>" if the key is in hashed)`` in key order.

    Objects are read, and hashed whole, a few ahead in threads: hashlib releases the GIL on
    large buffers, so that hashing overlaps with the caller's per-record work (and S3 reads
    with everything)."""

    def load(key: str) -> tuple[str, bytes | None, str | None]:
        try:
            data = store.get(key)
        except ObjectMissingError:
            return key, None, None
        return key, data, ("sha256:" + hashlib.sha256(data).hexdigest()) if key in hashed else None

    keys = iter(keys)
    with ThreadPoolExecutor(max_workers=READ_AHEAD, thread_name_prefix="verify-read") as pool:
        pending = deque(pool.submit(load, key) for key in islice(keys, READ_AHEAD))
        while pending:
            loaded = pending.popleft().result()
            for key in islice(keys, 1):
                pending.append(pool.submit(load, key))
            yield loaded
