"""Duration regressions: the build where a test (or a suite) got slower, and only real shifts."""

import numpy as np

from vault_pipeline.core.insights import duration_regressions, suite_trends

from .conftest import make_results


def series(test, durations, *, suite="s", start=1, status="passed"):
    return [{"test": test, "suite": suite, "build": start + i, "status": status, "duration_ms": float(d)}
            for i, d in enumerate(durations)]


def noisy(rng, n, median=100.0, sigma=0.1):
    return median * np.exp(rng.normal(0, sigma, n))


def test_a_doubling_is_found_at_its_build_with_medians_and_ratio():
    rng = np.random.default_rng(1)
    durations = np.r_[noisy(rng, 30), noisy(rng, 30, 200.0)]
    row = duration_regressions(make_results(series("t", durations))).to_pylist()[0]
    assert (row["test"], row["suite"], row["build"], row["build_before"]) == ("t", "s", 31, 30)
    assert 1.8 < row["ratio"] < 2.2 and row["median_before"] < row["median_after"]
    assert row["p_value"] < 1e-8 and row["p_adjusted"] <= 0.05
    assert (row["builds_before"], row["builds_after"], row["direction"]) == (30, 30, "slower")


def test_shifts_at_the_first_and_last_possible_builds():
    rng = np.random.default_rng(2)
    early = np.r_[noisy(rng, 5, sigma=0.02), noisy(rng, 35, 300.0, sigma=0.02)]
    late = np.r_[noisy(rng, 35, sigma=0.02), noisy(rng, 5, 300.0, sigma=0.02)]
    found = {r["test"]: r["build"] for r in
             duration_regressions(make_results(series("early", early) + series("late", late))).to_pylist()}
    assert found == {"early": 6, "late": 36}
    # No split closer to the edge than min_size (5) builds is looked at: a shift 4 builds before
    # the end is reported, if at all, at the last split allowed (build 36 of 40) or before it.
    too_late = np.r_[noisy(rng, 36, sigma=0.02), noisy(rng, 4, 300.0, sigma=0.02)]
    assert all(b <= 36 for b in duration_regressions(make_results(series("t", too_late)))["build"].to_pylist())


def test_noise_spikes_and_small_drifts_are_not_flagged():
    rng = np.random.default_rng(3)
    runs = []
    for i in range(40):
        durations = noisy(rng, 120, sigma=0.4)
        durations[rng.random(120) < 0.02] *= 8  # slow runners
        runs += series(f"noisy{i}", durations)
    runs += series("drift", np.r_[noisy(rng, 60), noisy(rng, 60, 110.0)])  # real but under 1.2x
    assert duration_regressions(make_results(runs)).num_rows == 0


def test_failed_and_skipped_runs_and_short_series_do_not_count():
    rng = np.random.default_rng(4)
    runs = series("t", noisy(rng, 40))
    runs += series("t", [5000.0] * 20, start=21, status="failed")  # timeouts in the second half
    runs += series("short", [100.0] * 4 + [900.0] * 4)
    runs += [{"test": "t", "build": 50, "status": "skipped", "duration_ms": None}]
    assert duration_regressions(make_results(runs)).num_rows == 0


def test_retries_in_one_build_are_one_point_their_median():
    rng = np.random.default_rng(5)
    runs = series("t", np.r_[noisy(rng, 20), noisy(rng, 20, 250.0)])
    runs += [{"test": "t", "build": 3, "status": "passed", "duration_ms": 9000.0},
             {"test": "t", "build": 3, "status": "passed", "duration_ms": 100.0}]
    row = duration_regressions(make_results(runs)).to_pylist()[0]
    assert row["build"] == 21 and row["builds_before"] == 20


def test_speedups_only_on_request_and_the_same_answer_every_time():
    rng = np.random.default_rng(6)
    table = make_results(series("t", np.r_[noisy(rng, 30, 300.0), noisy(rng, 30, 100.0)]))
    assert duration_regressions(table).num_rows == 0
    faster = duration_regressions(table, speedups=True)
    assert faster["direction"].to_pylist() == ["faster"] and faster["build"].to_pylist() == [31]
    assert faster.equals(duration_regressions(table, speedups=True))


def test_a_suite_that_gets_slower_as_a_whole():
    rng = np.random.default_rng(7)
    runs = []
    for i in range(10):  # every test 15 % slower from build 41: no single test crosses 1.2x
        runs += series(f"t{i}", np.r_[noisy(rng, 40, sigma=0.05), noisy(rng, 40, 115.0, sigma=0.05)],
                       suite="api")
        runs += series(f"u{i}", noisy(rng, 80, sigma=0.05), suite="ui")
    table = make_results(runs)
    assert duration_regressions(table).num_rows == 0
    trends = suite_trends(table, min_ratio=1.1).to_pylist()
    assert [(t["suite"], t["build"], t["direction"]) for t in trends] == [("api", 41, "slower")]
    assert 1.1 < trends[0]["ratio"] < 1.2
