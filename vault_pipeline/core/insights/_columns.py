"""Test results as numpy columns: the shared first step of every insight detector.

A QA team's pushed results arrive as an Arrow table of test-result rows. Each detector needs the
same view of them: one integer key per test (a test is its ``suite`` and stable ``test`` id), the
outcome of each run, and the order in which the runs happened (``build``, then ``timestamp``, then
arrival order, so equal builds and timestamps still order the same way every time). Strings are
dictionary-encoded once here so the detectors work on integers only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TS = pa.timestamp("us", tz="UTC")
FAILING = ("failed", "error")
_MIN_TS = np.iinfo(np.int64).min


def codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Integer codes (-1 for null) and the dictionary they index."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        # Chunks may carry different dictionaries: unify them before reading the indices.
        encoded = encoded.unify_dictionaries()
        dictionary = encoded.chunk(0).dictionary if encoded.num_chunks else pa.array([], pa.string())
        indices = pa.chunked_array([c.indices for c in encoded.chunks], pa.int32())
    else:
        dictionary, indices = encoded.dictionary, encoded.indices
    return pc.fill_null(indices, -1).to_numpy().astype(np.int64), dictionary


def ints(column, fill: int) -> np.ndarray:
    return pc.fill_null(pc.cast(column, pa.int64()), fill).to_numpy()


def micros(column) -> np.ndarray:
    """UTC timestamps as int64 microseconds; a missing timestamp sorts first."""
    return ints(pc.cast(column, TS), _MIN_TS)


def as_timestamps(values: np.ndarray) -> pa.Array:
    return pa.array(np.where(values == _MIN_TS, None, values).tolist() if (values == _MIN_TS).any()
                    else values, TS)


@dataclass(frozen=True)
class Runs:
    """One row per test run, ordered by (test, build, timestamp, arrival)."""

    key: np.ndarray          # int64 test key, 0..n_tests-1
    suites: pa.Array         # per key
    tests: pa.Array          # per key
    status: pa.Array         # per row, as given
    build: np.ndarray
    ts: np.ndarray           # int64 microseconds
    row: np.ndarray          # row index in the input table

    @property
    def n_tests(self) -> int:
        return len(self.suites)


def runs(results: pa.Table, *, keep: pa.Array | None = None) -> Runs:
    """Key and order the rows of ``results`` (optionally only those where ``keep`` is true)."""
    rows = np.arange(results.num_rows)
    if keep is not None:
        rows = rows[pc.fill_null(keep, False).to_numpy(zero_copy_only=False)]
    table = results.take(pa.array(rows)) if keep is not None else results
    suite_code, suite_dict = codes(table["suite"])
    test_code, test_dict = codes(table["test"])
    combined = (suite_code + 1) * (len(test_dict) + 1) + (test_code + 1)
    uniq, key = np.unique(combined, return_inverse=True)
    build = ints(table["build"], -1)
    ts = micros(table["timestamp"])
    order = np.lexsort((rows, ts, build, key))
    key_suite, key_test = uniq // (len(test_dict) + 1) - 1, uniq % (len(test_dict) + 1) - 1
    return Runs(
        key=key[order], build=build[order], ts=ts[order], row=rows[order],
        status=table["status"].take(pa.array(order)),
        suites=_lookup(suite_dict, key_suite), tests=_lookup(test_dict, key_test),
    )


def _lookup(dictionary: pa.Array, index: np.ndarray) -> pa.Array:
    return dictionary.take(pa.array(np.where(index < 0, None, index).tolist() if (index < 0).any()
                                     else index, pa.int64()))


def group_starts(sorted_key: np.ndarray) -> np.ndarray:
    """Start offsets of each run of equal values in a sorted key array."""
    if len(sorted_key) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) of a family of tests."""
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out
