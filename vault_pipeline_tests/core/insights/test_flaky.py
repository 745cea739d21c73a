"""Flaky tests: passed and failed on one commit, ranked by flip rate, until they recover."""

import pyarrow as pa

from vault_pipeline.core.insights import flaky_tests

from .conftest import make_results


def one(table, test):
    rows = [r for r in table.to_pylist() if r["test"] == test]
    return rows[0] if rows else None


def test_a_retry_that_passes_on_the_same_commit_makes_a_test_flaky():
    runs = [{"test": "t", "build": 1, "status": "passed"},
            {"test": "t", "build": 2, "status": "failed"},
            {"test": "t", "build": 2, "status": "passed"},  # the retry
            {"test": "t", "build": 3, "status": "passed"}]
    row = one(flaky_tests(make_results(runs)), "t")
    assert row["flaky_commits"] == ["c2"]
    assert (row["pass_count"], row["fail_count"], row["runs"]) == (3, 1, 4)
    assert row["flips"] == 2 and row["flip_rate"] == 2 / 3  # pass->fail, fail->pass over 3 pairs
    assert row["first_seen"] < row["last_seen"]  # both runs on c2
    assert row["consecutive_passes"] == 2 and row["last_build"] == 3


def test_a_real_breakage_fixed_by_a_later_commit_is_not_flaky():
    runs = [{"test": "t", "build": b, "status": "failed" if 3 <= b <= 5 else "passed"} for b in range(1, 9)]
    runs += [{"test": "t", "build": 4, "status": "failed"}]  # a retry that fails again
    assert flaky_tests(make_results(runs)).num_rows == 0


def test_skipped_runs_are_ignored_and_do_not_hide_a_flip():
    runs = [{"test": "t", "build": 1, "status": "failed", "commit": "x"},
            {"test": "t", "build": 2, "status": "skipped", "commit": "x"},
            {"test": "t", "build": 3, "status": "passed", "commit": "x"}]
    row = one(flaky_tests(make_results(runs)), "t")
    assert (row["runs"], row["flips"], row["flip_rate"]) == (2, 1, 1.0)


def test_a_single_run_or_only_skips_is_never_flaky():
    runs = [{"test": "once", "build": 1, "status": "failed"},
            {"test": "skips", "build": 1, "status": "skipped"},
            {"test": "skips", "build": 2, "status": "skipped"}]
    assert flaky_tests(make_results(runs)).num_rows == 0
    assert flaky_tests(make_results([])).schema == flaky_tests(make_results(runs)).schema


def test_an_error_counts_as_a_failure():
    runs = [{"test": "t", "build": 1, "status": "error"}, {"test": "t", "build": 1, "status": "passed"}]
    assert one(flaky_tests(make_results(runs)), "t")["fail_count"] == 1


def test_a_test_recovers_after_the_configured_run_of_passes():
    runs = [{"test": "t", "build": 1, "status": "failed"}, {"test": "t", "build": 1, "status": "passed"}]
    runs += [{"test": "t", "build": b, "status": "passed"} for b in range(2, 11)]  # 10 passes in a row
    table = make_results(runs)
    assert one(flaky_tests(table, recovery_passes=11), "t")["consecutive_passes"] == 10
    assert flaky_tests(table, recovery_passes=10).num_rows == 0
    # One more failure later and it is flaky again.
    again = make_results(runs + [{"test": "t", "build": 11, "status": "failed"}])
    assert one(flaky_tests(again, recovery_passes=10), "t")["consecutive_passes"] == 0


def test_the_window_keeps_only_the_last_builds():
    runs = [{"test": "t", "build": 1, "status": "failed"}, {"test": "t", "build": 1, "status": "passed"}]
    runs += [{"test": "t", "build": b, "status": "passed"} for b in range(2, 6)]
    table = make_results(runs)
    assert flaky_tests(table).num_rows == 1
    assert flaky_tests(table, window_builds=4).num_rows == 0  # builds 2..5 only


def test_ranking_by_flip_rate_then_failures_then_name_whatever_the_row_order():
    runs = []
    for test, pattern in (("b", "FPFP"), ("a", "FPFP"), ("c", "FFPP"), ("d", "FFFP")):
        runs += [{"test": test, "build": 1, "status": "failed" if s == "F" else "passed"} for s in pattern]
    table = make_results(runs)
    ranked = flaky_tests(table)["test"].to_pylist()
    assert ranked == ["a", "b", "d", "c"]  # a, b: 3/3 flips; d: 1/3 with 3 failures; c: 1/3 with 2
    reversed_rows = table.take(pa.array(range(table.num_rows - 1, -1, -1)))
    # Reversed arrival reorders runs of equal build *and* timestamp only; these all differ.
    assert flaky_tests(reversed_rows)["test"].to_pylist() == ranked


def test_same_test_id_in_two_suites_is_two_tests():
    runs = [{"test": "t", "suite": "api", "build": 1, "status": "failed"},
            {"test": "t", "suite": "ui", "build": 1, "status": "passed"}]
    assert flaky_tests(make_results(runs)).num_rows == 0
