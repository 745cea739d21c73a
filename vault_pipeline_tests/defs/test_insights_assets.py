"""Scenario: a QA team's test history in the lake becomes flaky tests, failure clusters and regressions.

A vault ingests an hour of a simulator's test results through the hourly graph (so the fact
table is the real one, ``ci.commit`` included), and a labelled history with known answers is
merged into the same ``test_results`` table: ``shop::test_pay`` flips on one commit,
``shop::test_render`` takes three times longer from build 13 on, and ``lookup::test_query``
fails with one message whose numbers and hosts vary. The ``insights`` job then writes what the
detectors compute, indexes a summary per insight, and its checks warn once a new flaky test
appears, not on the baseline or on a refresh that finds nothing new.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa

from vault_pipeline.core.insights import (
    duration_regressions,
    failure_clusters,
    flaky_tests,
)
from vault_pipeline.core.kinds import fact_schema
from vault_pipeline.defs.insights.assets import (
    INSIGHTS_JOB,
    INSIGHTS_SCHEDULE,
    run_config,
)
from vault_pipeline.defs.insights.cli import refresh_insights
from vault_pipeline.defs.insights.tables import INSIGHTS, Window, read_results
from vault_pipeline_tests.fixtures.vault import check_results, materialization_metadata

START = datetime(2026, 1, 1, tzinfo=UTC)
AS_OF = "2026-01-03T00:00:00Z"
SIMULATOR = {"type": "simulator", "kind": "test_result", "records_per_hour": 80, "seed": 3,
             "lookback_hours": 0, "invalid_fraction": 0}


def _row(n: int, suite: str, test: str, build: int, status: str, *, commit: str, duration: float = 10.0,
         error: tuple[str, str] | None = None) -> dict:
    moment = START + timedelta(minutes=30 * build, seconds=n % 60)
    return {"log_id": f"log_{n:032x}", "provider": "labelled", "natural_id": f"n{n}", "event_time": moment,
            "checksum": "sha256:" + "0" * 64, "object_key": "raw/labelled/x.json", "run_id": "labelled",
            "date": moment.strftime("%Y-%m-%d"), "hour": moment.strftime("%H"), "suite": suite, "test": test,
            "status": status, "duration_ms": duration, "error_type": error[0] if error else None,
            "error_message": error[1] if error else None, "branch": "main", "build": build, "commit": commit}


def labelled_history() -> pa.Table:
    rows, n = [], 0
    for build in range(1, 25):
        commit = f"c{(build + 1) // 2:03d}"  # two builds per commit
        rows.append(_row(n := n + 1, "shop", "test_pay", build,
                         "failed" if build in (7, 15) else "passed", commit=commit,
                         error=("AssertionError", "expected 200, got 503") if build in (7, 15) else None))
        rows.append(_row(n := n + 1, "shop", "test_render", build, "passed", commit=commit,
                         duration=(100.0 if build < 13 else 300.0) + build % 3))
        rows.append(_row(n := n + 1, "lookup", "test_query", build, "failed" if build % 4 == 0 else "passed",
                         commit=f"s{build}", error=("TimeoutError", f"no answer from 10.0.{build}.7:9200 after {build * 3}s")
                         if build % 4 == 0 else None))
    return pa.Table.from_pylist(rows, schema=fact_schema("test_result"))


def new_flaky_test() -> pa.Table:
    """lookup::test_suggest errors once on commit c010, which also passed it."""
    rows = [_row(10_000 + build, "lookup", "test_suggest", build, "error" if build == 20 else "passed",
                 commit=f"c{(build + 1) // 2:03d}", error=("KeyError", "'q'") if build == 20 else None)
            for build in range(1, 25)]
    return pa.Table.from_pylist(rows, schema=fact_schema("test_result"))


def _vault_with_history(vault):
    vault.write_providers({"qa": SIMULATOR})
    assert vault.run("2026-01-01-00:00", "qa").success  # the fact table, as the hourly graph writes it
    assert "commit" in vault.lake.read("test_results").column_names
    vault.lake.merge("test_results", labelled_history())


def _refresh(vault, **config):
    result = vault.definitions().resolve_job_def(INSIGHTS_JOB).execute_in_process(
        run_config=run_config(as_of=AS_OF, **config), instance=vault.instance, raise_on_error=False)
    assert result.success
    return result


def _read(vault, name: str) -> pa.Table:
    return vault.lake.read(INSIGHTS[name].table)


def test_the_tables_hold_what_the_detectors_find_over_the_window(vault):
    _vault_with_history(vault)
    result = _refresh(vault)

    results = read_results(vault.lake, Window(datetime(2025, 12, 4, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)))
    assert results.num_rows == vault.lake.count("test_results")  # everything lies in the 30 days
    flaky = _read(vault, "flaky_tests")
    expected = flaky_tests(results)
    assert sorted(zip(flaky["suite"].to_pylist(), flaky["test"].to_pylist())) == \
        sorted(zip(expected["suite"].to_pylist(), expected["test"].to_pylist()))
    assert ("shop", "test_pay") in set(zip(flaky["suite"].to_pylist(), flaky["test"].to_pylist()))
    pay = flaky.filter(pa.compute.equal(flaky["test"], "test_pay")).to_pylist()[0]
    assert pay["flaky_commits"] == ["c004", "c008"] and pay["fail_count"] == 2

    regressions = _read(vault, "duration_regressions").to_pylist()
    render = [r for r in regressions if r["test"] == "test_render"]
    assert len(render) == 1 and render[0]["build"] == 13 and render[0]["suite"] == "shop"
    assert render[0]["build_time"] == START + timedelta(minutes=30 * 13, seconds=(3 * 12 + 2) % 60)
    assert len(regressions) == duration_regressions(results).num_rows

    clusters = _read(vault, "failure_clusters")
    search = clusters.filter(pa.compute.equal(clusters["suite"], "lookup")).to_pylist()
    assert len(search) == 1 and search[0]["count"] == 6
    assert search[0]["occurrences"] == [{"test": "test_query", "build": b} for b in (4, 8, 12, 16, 20, 24)]
    per_suite = sum(failure_clusters(results.filter(pa.compute.equal(results["suite"], s))).num_rows
                    for s in set(results["suite"].to_pylist()))
    assert clusters.num_rows == per_suite

    metadata = materialization_metadata(result, "flaky_tests")
    assert metadata["window_start"].startswith("2025-12-04T00:00:00") and metadata["window_days"] == 30
    assert metadata["count"] == flaky.num_rows and any(r["test"] == "test_pay" for r in metadata["top"])
    for name, insight in INSIGHTS.items():  # one indexed summary each, in the object store
        artifact = next(a for a in vault.catalog.search_artifacts(provider="_vault", kind=insight.kind))
        assert artifact.location.startswith(f"reports/_vault/insights/{name}/")
        summary = json.loads(vault.store.get(artifact.location))
        assert summary["count"] == _read(vault, name).num_rows and summary["baseline"] is True
    assert check_results(result) == {"new_flaky_tests": True, "new_failure_clusters": True}  # the baseline


def test_the_checks_warn_when_a_new_flaky_test_appears_and_only_then(vault):
    _vault_with_history(vault)
    _refresh(vault)
    again = _refresh(vault)
    assert check_results(again) == {"new_flaky_tests": True, "new_failure_clusters": True}
    assert materialization_metadata(again, "flaky_tests")["changed"] is False  # same findings, no new version

    vault.lake.merge("test_results", new_flaky_test())
    warned = _refresh(vault)
    evaluations = {e.check_name: e for e in warned.get_asset_check_evaluations()}
    assert not evaluations["new_flaky_tests"].passed
    assert evaluations["new_flaky_tests"].severity == dg.AssetCheckSeverity.WARN
    assert evaluations["new_flaky_tests"].metadata["new_items"].value == [["lookup", "test_suggest"]]
    assert not evaluations["new_failure_clusters"].passed  # KeyError '<STR>' is a new template in lookup


def test_a_suite_refresh_replaces_only_that_suites_rows(vault):
    _vault_with_history(vault)
    _refresh(vault)
    before = _read(vault, "flaky_tests").to_pylist()
    vault.lake.merge("test_results", new_flaky_test())
    result = _refresh(vault, suite="shop")
    assert materialization_metadata(result, "flaky_tests")["suite"] == "shop"
    after = _read(vault, "flaky_tests")
    assert "test_suggest" not in after["test"].to_pylist()  # lookup was not re-analysed
    assert sorted(map(repr, after.to_pylist())) == sorted(map(repr, before))

    _refresh(vault, suite="lookup")  # a predicate overwrite of lookup's rows; shop's stay as they were
    after = _read(vault, "flaky_tests").to_pylist()
    assert ("lookup", "test_suggest") in {(r["suite"], r["test"]) for r in after}
    assert sorted(repr(r) for r in after if r["suite"] != "lookup") == \
        sorted(repr(r) for r in before if r["suite"] != "lookup")


def test_the_window_leaves_older_results_out(vault):
    _vault_with_history(vault)
    result = _refresh(vault, window_days=1)  # 2026-01-02 only: every result ran on 2026-01-01
    assert materialization_metadata(result, "flaky_tests")["results_analysed"] == 0
    for name in INSIGHTS:
        assert _read(vault, name).num_rows == 0


def test_the_cli_function_refreshes_on_an_instance_and_the_schedule_runs_daily(vault):
    _vault_with_history(vault)
    outcome = refresh_insights(as_of=AS_OF, definitions=vault.definitions(), instance=vault.instance)
    assert outcome.success and outcome.counts["flaky_tests"] == _read(vault, "flaky_tests").num_rows
    assert vault.instance.get_run_by_id(outcome.run_id) is not None
    schedule = vault.definitions().resolve_schedule_def(INSIGHTS_SCHEDULE)
    assert schedule.cron_schedule == "0 4 * * *" and schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 1, 3, 4, tzinfo=UTC))
    request = schedule.evaluate_tick(context).run_requests[0]
    assert request.run_key == "insights:2026-01-03"
    assert request.run_config["ops"]["insights_refresh"]["config"]["as_of"] == "2026-01-03T04:00:00Z"


def test_vault_insights_refresh_on_the_command_line(operator):
    assert operator("run", "--provider", "qa", "--hour", "2026-01-01T00")[0] == 0
    code, out, err = operator("insights", "refresh", "--as-of", AS_OF)
    assert code == 0, err
    assert "insights refreshed for every suite, window 2025-12-04T00:00:00" in out
    for name in INSIGHTS:
        assert f"  {name}" in out
    code, out, _err = operator("insights", "refresh", "--suite", "checkout", "--as-of", AS_OF)
    assert code == 0 and "for suite checkout" in out and "reports/_vault/insights/flaky_tests/" in out
    code, _out, err = operator("insights", "refresh", "--as-of", "tomorrow")
    assert code == 2 and "--as-of" in err
    assert operator("insights", "refresh", "--window-days", "0")[0] == 2
