"""An hour's keys (log_ids) held as fixed-width bytes in numpy, for checks that must not grow
with the hour in Python objects or Arrow hash tables.

Loading an hour into the lake keeps only rows whose ``log_id`` neither the table nor an earlier
batch of the same load holds. ``pyarrow.compute.is_in`` rebuilds its hash table of the whole
value set on every call, so checking each of an hour's batches against the keys seen so far
cost O(rows x batches): 1.04 s a batch against 2.5M keys, 100 s of a 5M-record hour's load.
Here the keys are kept as sorted runs of fixed-width byte strings (numpy; about 40 bytes a
key, no Python object per key), looked up by binary search, with runs of similar size merged
as they grow (a log-structured merge), so a batch costs O(batch x log keys) and the whole
stream O(keys x log keys). ``SortedKeys`` holds one array's distinct keys with where each first
occurs (the integrity diff looks catalog pages and lake batches up in the hour's landed keys);
``count_repeats_in`` and ``buckets_of`` count and spread keys the same way (landing's duplicate
count, the output check's slices), and ``first_copies`` marks the first usable copy of each key
of an hour given batch by batch (normalisation's choice of rows), at ~55 bytes a row.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# numpy's fixed-width byte strings ignore trailing NUL bytes when they compare; ending every
# key with this byte keeps "a" and "a\x00" apart.
_END = 1


def _as_fixed_width(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The keys (no nulls) as a numpy array of fixed-width byte strings, each ending in _END.

    Read chunk by chunk from the Arrow buffers themselves: neither combining the chunks nor
    casting to large offsets copies a million keys first (~50 MB a million)."""
    chunks = [_plain(chunk) for chunk in (keys.chunks if isinstance(keys, pa.ChunkedArray) else [keys]) if len(chunk)]
    if any(chunk.null_count for chunk in chunks):
        raise ValueError("a key set cannot hold null keys")
    spans = [_offsets(chunk) for chunk in chunks]
    count = sum(len(chunk) for chunk in chunks)
    if not count:
        return np.empty(0, dtype="S1")
    width = max(int(np.diff(offsets).max()) for offsets in spans)
    table = np.zeros((count, width + 1), dtype=np.uint8)
    row = 0
    for chunk, offsets in zip(chunks, spans, strict=True):
        data = chunk.buffers()[2]
        data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
        lengths = np.diff(offsets)
        rows = table[row : row + len(chunk)]
        if (lengths == width).all():  # the usual case (log_ids): one reshape, no per-key work
            rows[:, :width] = data[offsets[0] : offsets[0] + len(chunk) * width].reshape(len(chunk), width)
            rows[:, width] = _END
        else:
            for at, (begin, length) in enumerate(zip(offsets[:-1].tolist(), lengths.tolist(), strict=True)):
                rows[at, :length] = data[begin : begin + length]
                rows[at, length] = _END
        row += len(chunk)
    return table.view(f"S{width + 1}").reshape(count)


_LOG_ID_PREFIX = np.frombuffer(b"log_", dtype=np.uint8)
_PACKED_BYTES = 16
_LOG_ID_WIDTH = len(_LOG_ID_PREFIX) + 2 * _PACKED_BYTES + 1  # with _END
_HEX_VALUE = np.full(256, 255, dtype=np.uint8)  # a lowercase hex digit's value; 255 for any other byte
_HEX_VALUE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)
_PACK_ROWS = 1 << 20  # keys packed at a time: the hex digits' values are a transient 32 bytes a key


def _packed_log_ids(fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(of_form, packed) for fixed-width keys: whether each is a log_id of the vault's own form
    (``log_`` and 32 lowercase hex digits), and its 16 bytes (zeros for the others); None when
    the keys are too narrow for any to be."""
    width = fixed.dtype.itemsize
    if width < _LOG_ID_WIDTH:
        return None
    table = fixed.view(np.uint8).reshape(len(fixed), width)
    of_form = np.empty(len(fixed), dtype=bool)
    packed = np.zeros((len(fixed), _PACKED_BYTES), dtype=np.uint8)
    for start in range(0, len(fixed), _PACK_ROWS):
        rows = table[start : start + _PACK_ROWS]
        digits = _HEX_VALUE[rows[:, 4 : _LOG_ID_WIDTH - 1]]
        # In a wider array (a longer key beside it) a log_id's _END is followed by NUL padding.
        of_form[start : start + len(rows)] = (
            (rows[:, :4] == _LOG_ID_PREFIX).all(axis=1) & (rows[:, _LOG_ID_WIDTH - 1] == _END)
            & (digits != 255).all(axis=1) & (rows[:, _LOG_ID_WIDTH:] == 0).all(axis=1))
        packed[start : start + len(rows)] = (digits[:, 0::2] << 4) | digits[:, 1::2]
    packed[~of_form] = 0
    return of_form, packed.view(f"S{_PACKED_BYTES}").reshape(len(fixed))


def _prefixes(fixed: np.ndarray, skip: int) -> np.ndarray:
    """Each fixed-width key's eight bytes from ``skip`` on (NUL-padded) as a big-endian integer:
    keys in byte order that share their first ``skip`` bytes have these in the same order."""
    table = fixed.view(np.uint8).reshape(len(fixed), fixed.dtype.itemsize)[:, skip : skip + 8]
    head = np.zeros((len(fixed), 8), dtype=np.uint8)
    head[:, : table.shape[1]] = table
    return head.view(">u8").reshape(len(fixed))


def _plain(chunk: pa.Array) -> pa.Array:
    """The chunk as a string or binary array with offsets (other key types are cast once)."""
    if (pa.types.is_string(chunk.type) or pa.types.is_binary(chunk.type)
            or pa.types.is_large_string(chunk.type) or pa.types.is_large_binary(chunk.type)):
        return chunk
    return chunk.cast(pa.large_binary())


def _offsets(chunk: pa.Array) -> np.ndarray:
    """The value offsets of a string or binary array (32- or 64-bit), from its own offset on."""
    wide = pa.types.is_large_string(chunk.type) or pa.types.is_large_binary(chunk.type)
    offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64 if wide else np.int32)
    return offsets[chunk.offset : chunk.offset + len(chunk) + 1].astype(np.int64)


def buckets_of(keys: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """For each key (no nulls) a bucket in ``range(buckets)``, the same for equal keys wherever
    they occur: the 32-bit FNV-1a hash of the key's bytes, modulo ``buckets``. Rows split this
    way can be checked for unique keys bucket by bucket, any number of buckets."""
    if buckets < 1:
        raise ValueError(f"buckets must be at least 1, got {buckets!r}")
    fixed = _as_fixed_width(keys)
    if not len(fixed):
        return np.zeros(0, dtype=np.int64)
    table = fixed.view(np.uint8).reshape(len(fixed), -1)
    lengths = np.asarray(pc.binary_length(keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys))
    hashed = np.full(len(fixed), 2166136261, dtype=np.uint64)
    for column in range(table.shape[1] - 1):  # the key's own bytes only: widths differ between calls
        mixed = ((hashed ^ table[:, column]) * 16777619) & 0xFFFFFFFF
        hashed = np.where(column < lengths, mixed, hashed)
    return (hashed % buckets).astype(np.int64)


def count_repeats_in(batches: Iterable[pa.Array | pa.ChunkedArray], rows: int) -> int:
    """How many of ``rows`` keys, given batch by batch (landing's log_ids read back from its
    snapshot), equal an earlier one. The keys go straight into one fixed-width array (~40 bytes
    a key), sorted in place: no Arrow column of the hour's key strings is held beside it (5M
    log_ids: ~200 MB), and no hash table (Arrow's distinct count of 1M strings: ~130 MB)."""
    fixed = _gather(batches, rows).take()
    fixed.sort()
    return int(np.count_nonzero(fixed[1:] == fixed[:-1])) if len(fixed) else 0


_NEIGHBOURS = 262_144  # sorted neighbours compared at a time: a slice's copy, not the hour's


class _Gathered:
    """Keys given batch by batch, copied into one preallocated fixed-width array of ``rows``
    keys (widened, rarely, when a later batch holds a wider key): no Arrow column of the hour's
    keys, and no second copy of them, is ever held."""

    def __init__(self, rows: int) -> None:
        self.rows, self.filled = rows, 0
        self.fixed: np.ndarray | None = None

    def add(self, keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Copy in the next batch's keys; the rows they went to (a view, for the caller to amend)."""
        batch = _as_fixed_width(keys)
        if not len(batch):
            return self.fixed[self.filled : self.filled] if self.fixed is not None else batch
        if self.filled + len(batch) > self.rows:
            raise ValueError(f"batches hold more than the {self.rows} rows declared")
        if self.fixed is None or batch.dtype.itemsize > self.fixed.dtype.itemsize:
            widened = np.zeros(self.rows, dtype=batch.dtype)
            if self.fixed is not None:
                widened[: self.filled] = self.fixed[: self.filled]
            self.fixed = widened
        rows = self.fixed[self.filled : self.filled + len(batch)]
        rows[:] = batch
        self.filled += len(batch)
        return rows

    def take(self) -> np.ndarray:
        """The array, handed over: this gatherer lets go of it, so the caller's ``del`` frees it."""
        if self.filled != self.rows:
            raise ValueError(f"batches hold {self.filled} rows, {self.rows} declared")
        fixed = self.fixed if self.fixed is not None else np.empty(0, dtype="S1")
        self.fixed = None
        return fixed


def _gather(batches: Iterable[pa.Array | pa.ChunkedArray], rows: int) -> _Gathered:
    gathered = _Gathered(rows)
    for keys in batches:
        gathered.add(keys)
    return gathered


def _first_in_order(fixed: np.ndarray, order: np.ndarray) -> np.ndarray:
    """For each position of ``order`` (a stable sort of ``fixed``), whether its key differs from
    the one before it: compared a slice of neighbours at a time, not through a sorted copy."""
    first = np.empty(len(order), dtype=bool)
    if len(order):
        first[0] = True
    for start in range(0, len(order) - 1, _NEIGHBOURS):
        ordered = fixed[order[start : start + _NEIGHBOURS + 1]]
        first[start + 1 : start + len(ordered)] = ordered[1:] != ordered[:-1]
    return first


def first_copies(batches: Iterable[tuple[pa.Array | pa.ChunkedArray, np.ndarray]], rows: int) -> np.ndarray:
    """A mask over ``rows`` rows, given in order as batches of (keys, usable): True at the first
    usable row of each key. Unusable rows never count as a copy (the next usable one is first).

    The keys go straight into one preallocated fixed-width array (an unusable row's key left
    empty: every real key ends in _END, so none is empty); they are sorted through an index and
    compared with their neighbours a slice at a time. At its peak that is the keys (~37 bytes a
    log_id), the sort order (8) and the mask: ~55 bytes a row, where filtering, sorting and
    de-duplicating copies of the hour's strings took ~140."""
    gathered = _Gathered(rows)
    for keys, usable in batches:
        gathered.add(keys)[~np.asarray(usable, dtype=bool)] = b""
    fixed = gathered.take()
    keep = np.zeros(rows, dtype=bool)
    if not rows:
        return keep
    order = np.argsort(fixed, kind="stable")  # stable: of equal keys the first row comes first
    keep[order[_first_in_order(fixed, order)]] = True
    keep &= fixed != b""
    return keep


class KeySet:
    """String keys, checked and added a batch at a time (see the module docstring)."""

    def __init__(self, keys: pa.Array | pa.ChunkedArray | None = None) -> None:
        self._runs: list[np.ndarray] = []  # sorted, disjoint
        self._size = 0
        if keys is not None and len(keys):
            self.add_new(keys)

    def __len__(self) -> int:
        return self._size

    def contains(self, keys: pa.Array | pa.ChunkedArray) -> pa.BooleanArray:
        """For each key, whether the set holds it."""
        probe = _as_fixed_width(keys)
        order = np.argsort(probe, kind="stable")
        found = np.empty(len(probe), dtype=bool)
        found[order] = self._held(probe[order])
        return pa.array(found, pa.bool_())

    def add_new(self, keys: pa.Array | pa.ChunkedArray) -> pa.BooleanArray:
        """Add the keys; for each, whether it was new: not held before and not an earlier key of
        the same call (so a repeated key is new only the first time)."""
        probe = _as_fixed_width(keys)
        order = np.argsort(probe, kind="stable")  # stable: the first of equal keys stays first
        ordered = probe[order]
        new = np.ones(len(ordered), dtype=bool)
        new[1:] = ordered[1:] != ordered[:-1]
        new &= ~self._held(ordered)
        self._push(ordered[new])
        mask = np.empty(len(probe), dtype=bool)
        mask[order] = new
        return pa.array(mask, pa.bool_())

    def _held(self, ordered: np.ndarray) -> np.ndarray:
        """Membership of sorted probe keys (sorted probes keep the binary searches cache-local)."""
        found = np.zeros(len(ordered), dtype=bool)
        for run in self._runs:
            at = np.searchsorted(run, ordered)
            inside = at < len(run)
            found[inside] |= run[at[inside]] == ordered[inside]
        return found

    def _push(self, run: np.ndarray) -> None:
        if not len(run):
            return
        self._runs.append(run)
        self._size += len(run)
        # Merge while the newest run is at least half the one before: O(log n) runs at any time.
        while len(self._runs) > 1 and 2 * len(self._runs[-1]) >= len(self._runs[-2]):
            newest, older = self._runs.pop(), self._runs.pop()
            width = max(newest.dtype.itemsize, older.dtype.itemsize)
            merged = np.concatenate([older.astype(f"S{width}", copy=False), newest.astype(f"S{width}", copy=False)])
            merged.sort(kind="stable")  # two sorted runs: the stable sort merges them in linear time
            self._runs.append(merged)


class SortedKeys:
    """The distinct keys of one array in sorted order, each with the position of its first copy.

    The integrity diff holds the hour's landed log_ids this way and looks whole pages of the
    catalog up in them (a binary search per key, in numpy), rather than walking the hour
    record by record in Python: about 40 bytes and one position per distinct key. When every
    key is a log_id of the vault's own form (``log_`` and 32 lowercase hex digits) each is held
    as its 16 bytes instead (the same order: hex digits sort as their values), 37 -> 16 bytes a
    key; any other key keeps the whole set in its fixed-width bytes.
    """

    def __init__(self, keys: pa.Array | pa.ChunkedArray) -> None:
        self._sort(_gather([keys], len(keys)))

    @classmethod
    def from_batches(cls, batches: Iterable[pa.Array | pa.ChunkedArray], rows: int) -> SortedKeys:
        """The keys of ``rows`` rows given as batches (a snapshot's log_id column streamed): the
        keys, their sort order and the distinct keys, with no Arrow column of them and no sorted
        copy held (the integrity diff at 5M records: +683 MB for keys and time flags)."""
        keys = cls.__new__(cls)
        keys._sort(_gather(batches, rows))
        return keys

    def _sort(self, gathered: _Gathered) -> None:
        fixed = gathered.take()
        packed = _packed_log_ids(fixed) if fixed.dtype.itemsize == _LOG_ID_WIDTH else None
        self._packed = packed is not None and bool(packed[0].all())
        if self._packed:
            fixed = packed[1]  # the 37-byte keys go as soon as their 16 bytes are taken
        del packed
        order = np.argsort(fixed, kind="stable")  # stable: of equal keys the first copy comes first
        first = _first_in_order(fixed, order)
        self.positions = order[first]  # row of each key's first copy in the rows given
        if len(order) < 2**31:
            self.positions = self.positions.astype(np.int32)
        self._keys = fixed[self.positions]  # in sorted order: the positions are taken in it
        del fixed
        # The eight bytes after the prefix every key shares ("log_"), as integers: sorted too.
        self._skip = len(os.path.commonprefix([self._keys[0], self._keys[-1]])) if len(self._keys) else 0
        self._prefixes = _prefixes(self._keys, self._skip)
        self.slots = np.empty(len(order), dtype=np.int32 if len(order) < 2**31 else np.int64)
        self.slots[order] = np.cumsum(first) - 1  # each row's key, as its index in sorted order

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self, slots: np.ndarray) -> list[str]:
        """The keys at these slots (indexes in sorted order), as strings: the set holds them,
        so the strings need not be kept beside it."""
        if self._packed:  # numpy drops trailing NUL bytes: a digest ending in zeros is padded back
            return ["log_" + key.ljust(_PACKED_BYTES, b"\0").hex() for key in self._keys[slots].tolist()]
        # numpy drops the NUL padding after _END; the key's own bytes, NULs included, stay.
        return [key[:-1].decode("utf-8", "surrogateescape") for key in self._keys[slots].tolist()]

    def key_slices(self, size: int) -> Iterator[list[str]]:
        """Every key once, ``size`` at a time, in the set's order (byte order, as log_ids go;
        a key holding a NUL byte sorts by its padded form)."""
        for start in range(0, len(self._keys), size):
            yield self.keys(np.arange(start, min(start + size, len(self._keys))))

    def locate(self, keys: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """(found, slot) for each key: whether it is one of these keys, and where it is among
        them (its index in sorted order; meaningful only where found)."""
        probe = _as_fixed_width(keys)
        if not len(self._keys) or not len(probe):
            return np.zeros(len(probe), dtype=bool), np.zeros(len(probe), dtype=np.int64)
        if self._packed:  # a probe of another form is none of these keys
            packed = _packed_log_ids(probe)
            if packed is None:
                return np.zeros(len(probe), dtype=bool), np.zeros(len(probe), dtype=np.int64)
            of_form, probe = packed
            found, slot = self._search(probe)
            return found & of_form, slot
        return self._search(probe)

    def _search(self, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Searched by eight bytes as integers, those after the prefix all the keys share (a probe
        # in the hour's random order makes a binary search over 37-byte strings miss the cache
        # at every step: 1M lookups 1.45 -> 0.31 s). The first key with the probe's eight bytes
        # is the probe's unless several keys have them (hex log_ids share 32 bits now and then),
        # and those probes are searched whole; a probe without the shared prefix is in no case
        # found by the eight bytes alone, as every answer is the comparison of whole keys.
        last = len(self._keys) - 1
        prefixes = _prefixes(probe, self._skip)
        slot = np.minimum(np.searchsorted(self._prefixes, prefixes), last)
        found = self._keys[slot] == probe
        shared = np.flatnonzero(~found & (self._prefixes[slot] == prefixes))
        if len(shared):
            slot[shared] = np.minimum(np.searchsorted(self._keys, probe[shared]), last)
            found[shared] = self._keys[slot[shared]] == probe[shared]
        return found, slot
