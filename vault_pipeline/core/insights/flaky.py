"""Flaky tests: tests whose outcome changes while the code under test does not.

A test is *flaky* when, inside the analysis window, it both passed and failed on the same commit
(``failed`` and ``error`` both count as failing; ``skipped`` runs and runs without a status are
ignored entirely, as if they had not happened), unless it has since *recovered*: its latest
``recovery_passes`` runs, with no failure after them, all passed. Flaky tests are ranked by their
*flip rate*: the test's runs are ordered by build, then timestamp, then arrival order (so
retries inside one build count in the order they ran); a *flip* is a pair of consecutive runs
with different outcomes, and ``flip_rate = flips / (runs - 1)`` (0 for a single run). A test that
fails steadily on a broken commit and passes once it is fixed flips once, on two commits, and is
not flaky; a test that flips on one commit is, whatever its flip rate.

The window is the last ``window_builds`` builds of the whole history (``build > last - window``),
or everything. ``first_seen`` / ``last_seen`` are the first and last timestamps of the test's runs
on its commits with both outcomes (when the flakiness was observed).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._columns import FAILING, TS, as_timestamps, codes, group_starts, runs

DEFAULT_RECOVERY_PASSES = 50

FLAKY_SCHEMA = pa.schema([
    ("suite", pa.string()),
    ("test", pa.string()),
    ("flip_rate", pa.float64()),
    ("flips", pa.int64()),
    ("runs", pa.int64()),
    ("pass_count", pa.int64()),
    ("fail_count", pa.int64()),
    ("flaky_commits", pa.list_(pa.string())),
    ("first_seen", TS),
    ("last_seen", TS),
    ("last_build", pa.int64()),
    ("consecutive_passes", pa.int64()),
])


def flaky_tests(results: pa.Table, *, window_builds: int | None = None,
                recovery_passes: int = DEFAULT_RECOVERY_PASSES) -> pa.Table:
    """The flaky tests of ``results``, most flip-prone first (rows of ``FLAKY_SCHEMA``).

    Ties in flip rate are broken by more failures first, then suite and test id, so the ranking
    is the same for the same results whatever their row order.
    """
    status = results["status"]
    keep = pc.is_in(status, pa.array(["passed", *FAILING]))
    if window_builds is not None and results.num_rows:
        last = pc.max(results["build"]).as_py()
        keep = pc.and_(keep, pc.greater(results["build"], last - window_builds))
    r = runs(results, keep=keep)
    if len(r.key) == 0:
        return FLAKY_SCHEMA.empty_table()
    fail = pc.is_in(r.status, pa.array(list(FAILING))).to_numpy(zero_copy_only=False)
    n = r.n_tests
    key = r.key

    run_count = np.bincount(key, minlength=n)
    fail_count = np.bincount(key, weights=fail, minlength=n).astype(np.int64)
    same_test = key[1:] == key[:-1]
    flips = np.bincount(key[1:][same_test & (fail[1:] != fail[:-1])], minlength=n)
    flip_rate = np.divide(flips, run_count - 1, out=np.zeros(n), where=run_count > 1)

    # Consecutive passes at the end of each test's runs: distance from its last failure.
    position = np.arange(len(key))
    starts = group_starts(key)
    last_fail = np.maximum.reduceat(np.where(fail, position, -1), starts)
    ends = np.r_[starts[1:], len(key)] - 1
    streak = np.where(last_fail < 0, run_count, ends - last_fail)

    # Commits on which a test both passed and failed.
    commit_code, commit_dict = codes(results["commit"].take(pa.array(r.row)))
    pair = key * (len(commit_dict) + 1) + (commit_code + 1)
    pair_ids, pair_of_row = np.unique(pair, return_inverse=True)
    pair_fails = np.bincount(pair_of_row, weights=fail)
    pair_runs = np.bincount(pair_of_row)
    mixed_pair = (pair_fails > 0) & (pair_fails < pair_runs) & (pair_ids % (len(commit_dict) + 1) > 0)
    pair_key = pair_ids // (len(commit_dict) + 1)
    has_mixed = np.bincount(pair_key[mixed_pair], minlength=n) > 0

    flaky = has_mixed & (streak < recovery_passes)
    selected = np.flatnonzero(flaky)
    if len(selected) == 0:
        return FLAKY_SCHEMA.empty_table()

    # When the flakiness was observed: runs on the test's mixed commits.
    on_mixed = mixed_pair[pair_of_row]
    first_seen = np.full(n, np.iinfo(np.int64).max)
    last_seen = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(first_seen, key[on_mixed], r.ts[on_mixed])
    np.maximum.at(last_seen, key[on_mixed], r.ts[on_mixed])
    last_build = np.maximum.reduceat(r.build, starts)

    # Commit lists per selected test, in the order the commits were first run.
    first_row_of_pair = np.full(len(pair_ids), len(key))
    np.minimum.at(first_row_of_pair, pair_of_row, position)
    mixed_idx = np.flatnonzero(mixed_pair & flaky[pair_key])
    mixed_idx = mixed_idx[np.lexsort((first_row_of_pair[mixed_idx], pair_key[mixed_idx]))]
    commit_values = commit_dict.take(pa.array(pair_ids[mixed_idx] % (len(commit_dict) + 1) - 1))
    per_test = np.bincount(pair_key[mixed_idx], minlength=n)[selected]
    commit_lists = pa.ListArray.from_arrays(pa.array(np.r_[0, np.cumsum(per_test)], pa.int32()),
                                            commit_values)

    table = pa.table({
        "suite": r.suites.take(pa.array(selected)),
        "test": r.tests.take(pa.array(selected)),
        "flip_rate": flip_rate[selected],
        "flips": flips[selected].astype(np.int64),
        "runs": run_count[selected].astype(np.int64),
        "pass_count": (run_count - fail_count)[selected].astype(np.int64),
        "fail_count": fail_count[selected],
        "flaky_commits": commit_lists,
        "first_seen": as_timestamps(first_seen[selected]),
        "last_seen": as_timestamps(last_seen[selected]),
        "last_build": last_build[selected].astype(np.int64),
        "consecutive_passes": streak[selected].astype(np.int64),
    }, schema=FLAKY_SCHEMA)
    return table.sort_by([("flip_rate", "descending"), ("fail_count", "descending"),
                          ("suite", "ascending"), ("test", "ascending")])
