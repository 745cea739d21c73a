"""One slice of a partition's log order, verified: the unit ``vault verify`` spreads over cores.

A slice reads its catalog pointers a page at a time into compact columns, turns the checksums
into the Merkle digest parts of its range (cut at multiples of the slice alignment, so slices
verified apart combine into exactly the signed root), then reads each object its records are
in once, a few ahead in threads, and re-hashes those records in offset order against the raw
digests. Its SliceResult is picklable, so a worker process (opening the vault with the
adapters' worker openers) can send it back to the verifier that combines them.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import count, islice
from operator import add

import numpy as np

from vault_pipeline.core.ledger import PartitionDigest
from vault_pipeline.core.merkle import digests_from_checksums
from vault_pipeline.storage.catalog import Catalog, PointerPage
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore

# Objects read ahead of the one being checked (bounded memory; hides S3 latency).
READ_AHEAD = 2

#: How a worker process opens the vault: the object store's and the catalog's worker openers.
Openers = tuple[Callable[[], ObjectStore], Callable[[], Catalog]]


@dataclass(slots=True)
class SliceResult:
    """What one slice of a partition found; picklable, so a worker process can send it back."""

    digest_parts: list = field(default_factory=list)  # PartitionDigest.part()s, in log order
    objects: dict[str, tuple[str | None, int]] = field(default_factory=dict)  # key -> (checksum now, size)
    altered: list[tuple[str, str]] = field(default_factory=list)  # (object key, log_id), log order per key
    record_bytes: int = 0


def verify_slice_in_worker(shared: Openers, partition: str, start: int, stop: int | None,
                            owned: frozenset[str], committed: frozenset[str], alignment: int) -> SliceResult:
    open_store, open_catalog = shared
    catalog = open_catalog()
    try:
        store = open_store()
        try:
            return verify_slice(store, catalog, partition, start, stop, owned, committed, alignment)
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


def verify_slice(store: ObjectStore, catalog: Catalog, partition: str, start: int, stop: int | None,
                 owned: frozenset[str], committed: frozenset[str], alignment: int) -> SliceResult:
    result = SliceResult()
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
