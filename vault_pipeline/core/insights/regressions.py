"""Performance regressions: tests (and suites) whose duration shifted at one build and stayed.

A test's *duration series* is, per build it ran in, the median ``duration_ms`` of its passed
runs there (failed, errored and skipped runs are left out: a timeout or an early assertion says
nothing about speed; null durations too). On every series with at least ``2 * min_size`` builds
the change point is located by a rank scan: at each split leaving ``min_size`` builds on either
side, the standardised Mann-Whitney statistic of before vs after is computed for all series at
once (numpy, ranks by scipy), and the split of largest ``|z|`` wins (the earliest on a tie).
The split is then confirmed by scipy's Mann-Whitney U test of the two sides. Because the split
was chosen to look as different as possible, its p-value is multiplied by the number of splits
scanned (Bonferroni over the splits), and those are controlled across all series scanned by
Benjamini-Hochberg at false-discovery rate ``fdr``. A shift is reported when its adjusted p-value
is at most ``fdr`` and the ratio of medians (after / before) is at least ``min_ratio`` (or at
most ``1 / min_ratio`` for a speed-up, reported only on request). ``build`` is the first build
after the shift. One change point per series: the most significant one.

A suite's series is its total duration per build: the sum of its tests' per-build medians.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from ._columns import bh_adjust, group_starts, runs

DEFAULT_MIN_SIZE = 5
DEFAULT_MIN_RATIO = 1.2
DEFAULT_FDR = 0.05
_SCREEN_Z = 3.0  # below this |z| no split survives the correction; skip the exact test

_FIELDS = [
    ("build", pa.int64()),
    ("build_before", pa.int64()),
    ("median_before", pa.float64()),
    ("median_after", pa.float64()),
    ("ratio", pa.float64()),
    ("p_value", pa.float64()),
    ("p_adjusted", pa.float64()),
    ("builds_before", pa.int64()),
    ("builds_after", pa.int64()),
    ("direction", pa.string()),
]
REGRESSION_SCHEMA = pa.schema([("suite", pa.string()), ("test", pa.string()), *_FIELDS])
SUITE_TREND_SCHEMA = pa.schema([("suite", pa.string()), *_FIELDS])


def _series(results: pa.Table):
    """Per (test, build) median duration of passed runs, sorted by test then build."""
    keep = pc.and_(pc.equal(results["status"], "passed"), pc.is_valid(results["duration_ms"]))
    r = runs(results, keep=keep)
    duration = pc.cast(results["duration_ms"].take(pa.array(r.row)), pa.float64()).to_numpy()
    order = np.lexsort((duration, r.build, r.key))
    key, build, duration = r.key[order], r.build[order], duration[order]
    if len(key) == 0:
        return r, key, build, duration
    cell = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]) | (build[1:] != build[:-1])])
    size = np.diff(np.r_[cell, len(key)])
    median = (duration[cell + (size - 1) // 2] + duration[cell + size // 2]) / 2
    return r, key[cell], build[cell], median


def _change_points(key: np.ndarray, build: np.ndarray, value: np.ndarray, n_keys: int, *,
                   min_size: int, min_ratio: float, fdr: float, speedups: bool) -> dict | None:
    """The significant shift of each series (``key`` sorted, ``build`` ascending within key)."""
    starts = group_starts(key)
    length = np.diff(np.r_[starts, len(key)])
    eligible = np.flatnonzero(length >= 2 * min_size)
    if len(eligible) == 0:
        return None
    width = int(length[eligible].max())
    columns = np.arange(width)
    valid = columns[None, :] < length[eligible][:, None]
    index = np.minimum(starts[eligible][:, None] + columns[None, :], len(key) - 1)
    matrix = np.where(valid, value[index], np.nan)

    ranks = np.nan_to_num(stats.rankdata(matrix, axis=1, nan_policy="omit"))
    n = length[eligible][:, None].astype(float)
    n1 = columns[None, 1:].astype(float)              # builds before a split after column s-1
    n2 = n - n1
    rank_sum = np.cumsum(ranks, axis=1)[:, :-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (rank_sum - n1 * (n + 1) / 2) / np.sqrt(n1 * n2 * (n + 1) / 12)
    allowed = (n1 >= min_size) & (n2 >= min_size)
    z = np.where(allowed, np.abs(z), -np.inf)
    best = np.argmax(z, axis=1)                       # first maximum: deterministic on ties
    split = best + 1                                  # builds before the shift
    n_splits = (length[eligible] - 2 * min_size + 1).astype(float)

    p = np.ones(len(eligible))
    for i in np.flatnonzero(z[np.arange(len(eligible)), best] >= _SCREEN_Z):
        row = matrix[i, :length[eligible][i]]
        p[i] = stats.mannwhitneyu(row[:split[i]], row[split[i]:], alternative="two-sided").pvalue
    p_adj = bh_adjust(np.minimum(p * n_splits, 1.0))

    lo = starts[eligible]
    before = np.array([np.median(value[s:s + k]) for s, k in zip(lo, split)])
    after = np.array([np.median(value[s + k:s + m]) for s, k, m in zip(lo, split, length[eligible])])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = after / before
    slower = ratio >= min_ratio
    faster = ratio <= 1 / min_ratio
    hit = (p_adj <= fdr) & (slower | (faster & speedups))
    sel = np.flatnonzero(hit)
    first = lo[sel] + split[sel]
    return {
        "key": eligible[sel], "build": build[first], "build_before": build[first - 1],
        "median_before": before[sel], "median_after": after[sel], "ratio": ratio[sel],
        "p_value": p[sel], "p_adjusted": p_adj[sel], "builds_before": split[sel].astype(np.int64),
        "builds_after": (length[eligible][sel] - split[sel]).astype(np.int64),
        "direction": np.where(slower[sel], "slower", "faster"),
    }


def _table(found: dict, schema: pa.Schema, ids: dict) -> pa.Table:
    columns = {**ids, **{name: found[name] for name, _ in _FIELDS}}
    columns["direction"] = pa.array(found["direction"].tolist(), pa.string())
    return pa.table(columns, schema=schema)


def duration_regressions(results: pa.Table, *, min_size: int = DEFAULT_MIN_SIZE,
                         min_ratio: float = DEFAULT_MIN_RATIO, fdr: float = DEFAULT_FDR,
                         speedups: bool = False) -> pa.Table:
    """Tests whose duration shifted (rows of ``REGRESSION_SCHEMA``), largest ratio first."""
    if results.num_rows == 0:
        return REGRESSION_SCHEMA.empty_table()
    r, key, build, median = _series(results)
    found = _change_points(key, build, median, r.n_tests, min_size=min_size, min_ratio=min_ratio,
                           fdr=fdr, speedups=speedups)
    if found is None or len(found["key"]) == 0:
        return REGRESSION_SCHEMA.empty_table()
    ids = pa.array(found["key"])
    table = _table(found, REGRESSION_SCHEMA, {"suite": r.suites.take(ids), "test": r.tests.take(ids)})
    return table.sort_by([("ratio", "descending"), ("suite", "ascending"), ("test", "ascending")])


def suite_trends(results: pa.Table, *, min_size: int = DEFAULT_MIN_SIZE,
                 min_ratio: float = DEFAULT_MIN_RATIO, fdr: float = DEFAULT_FDR,
                 speedups: bool = True) -> pa.Table:
    """Suites whose total duration per build shifted (rows of ``SUITE_TREND_SCHEMA``)."""
    if results.num_rows == 0:
        return SUITE_TREND_SCHEMA.empty_table()
    r, key, build, median = _series(results)
    suite_code, suite_names = np.unique(np.asarray(r.suites.to_pylist(), dtype=object).astype(str),
                                        return_inverse=True)
    cell = suite_names[key] * (build.max() + 2) + (build + 1)
    cells, of = np.unique(cell, return_inverse=True)
    total = np.bincount(of, weights=median)
    s_key, s_build = cells // (build.max() + 2), cells % (build.max() + 2) - 1
    found = _change_points(s_key, s_build, total, len(suite_code), min_size=min_size,
                           min_ratio=min_ratio, fdr=fdr, speedups=speedups)
    if found is None or len(found["key"]) == 0:
        return SUITE_TREND_SCHEMA.empty_table()
    table = _table(found, SUITE_TREND_SCHEMA, {"suite": pa.array(suite_code[found["key"]].tolist(),
                                                                 pa.string())})
    return table.sort_by([("ratio", "descending"), ("suite", "ascending")])
