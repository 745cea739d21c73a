"""The ``insights`` asset group, its checks, the ``insights`` job and the ``insights_daily`` schedule.

One multi-asset (op ``insights_refresh``) materializes ``flaky_tests``, ``failure_clusters``,
``duration_regressions`` and ``suite_trends`` from a single read of the ``test_results`` window
(``InsightsConfig``: 30 days before ``as_of``/now by default, optionally one suite), through
``tables.refresh_tables``. It is not partitioned: each table holds the latest findings over a
sliding window, a daily partition would only repeat 29 days of the previous one, and history
is the Delta log. Metadata: the window, the counts, the top findings, the table version, the
summary artifact. The checks ``new_flaky_tests`` and ``new_failure_clusters`` (WARN, never
blocking) compare the findings with what the table held before this refresh (the previous
Delta version); the first refresh is the baseline and passes.
"""

# No `from __future__ import annotations`: Dagster reads the config class from the signature.
from datetime import UTC, datetime

import dagster as dg

from vault_pipeline.core.windows import parse_timestamp
from vault_pipeline.defs.insights.tables import (
    INSIGHTS,
    TOP,
    Refresh,
    Window,
    refresh_tables,
    rows_json,
)
from vault_pipeline.defs.resources import VaultResource
from vault_pipeline.defs.schedules import default_status

INSIGHTS_GROUP = "insights"
INSIGHTS_JOB = "insights"
INSIGHTS_OP = "insights_refresh"  # not the job's name: a job and an op may not share one
INSIGHTS_SCHEDULE = "insights_daily"
INSIGHTS_CRON = "0 4 * * *"
NEW_CHECKS = {"flaky_tests": "new_flaky_tests", "failure_clusters": "new_failure_clusters"}
_DESCRIPTIONS = {
    "flaky_tests": "Tests that passed and failed on one commit in the window, ranked by flip rate (Delta table "
                   "insights_flaky_tests).",
    "failure_clusters": "Failure messages grouped into templates per suite, with every occurrence {test, build} "
                        "(Delta table insights_failure_clusters).",
    "duration_regressions": "Tests whose duration shifted at one build, confirmed by a Mann-Whitney test "
                            "(Delta table insights_regressions).",
    "suite_trends": "Suites whose total duration per build shifted (Delta table insights_suite_trends).",
}


class InsightsConfig(dg.Config):
    window_days: int = 30  # the window: this many days before as_of
    as_of: str | None = None  # the window's end, ISO-8601 with a zone (default: now)
    suite: str | None = None  # only this suite's rows are re-analysed and replaced
    recovery_passes: int = 50  # a flaky test recovers after this many consecutive passes


def window_of(config: InsightsConfig) -> Window:
    if config.window_days < 1:
        raise dg.Failure(f"window_days {config.window_days}: give at least 1", allow_retries=False)
    end = parse_timestamp(config.as_of) if config.as_of else datetime.now(UTC)
    if end is None:
        raise dg.Failure(f"as_of {config.as_of!r} is not an ISO-8601 time with a zone", allow_retries=False)
    return Window.days_before(end, config.window_days)


@dg.multi_asset(
    name=INSIGHTS_OP,
    group_name=INSIGHTS_GROUP,
    specs=[dg.AssetSpec(name, description=text, kinds={"deltalake"}, group_name=INSIGHTS_GROUP)
           for name, text in _DESCRIPTIONS.items()],
    check_specs=[dg.AssetCheckSpec(check, asset=asset, blocking=False,
                                   description=f"warns when {asset.replace('_', ' ')} appear that the previous "
                                               "refresh did not have")
                 for asset, check in NEW_CHECKS.items()],
)
def insights_refresh(context: dg.AssetExecutionContext, config: InsightsConfig, vault: VaultResource):
    refresh = refresh_tables(lake=vault.lake(), catalog=vault.catalog(), store=vault.object_store(),
                             window=window_of(config), suite=config.suite, recovery_passes=config.recovery_passes,
                             run_id=context.run.run_id)
    for name in INSIGHTS:
        yield dg.MaterializeResult(asset_key=name, metadata=materialization_metadata(refresh, name))
    for asset, check in NEW_CHECKS.items():
        table = refresh.tables[asset]
        new = table.new
        yield dg.AssetCheckResult(
            asset_key=asset, check_name=check, passed=not new, severity=dg.AssetCheckSeverity.WARN,
            description=(f"{len(new)} new since the previous refresh" if new else
                         "first refresh: the baseline" if table.previous is None else "nothing new"),
            metadata={"new": len(new), "baseline": table.previous is None,
                      "new_items": dg.MetadataValue.json([list(k) for k in new[:50]])})


def materialization_metadata(refresh: Refresh, name: str) -> dict:
    table = refresh.tables[name]
    top = table.rows.sort_by(list(table.insight.order)).slice(0, TOP)
    top = top.select([c for c in top.column_names if c not in ("occurrences", "tests", "flaky_commits")])
    metadata = {
        "table": table.insight.table, "count": table.rows.num_rows, "dagster/row_count": table.rows.num_rows,
        "window_start": refresh.window.as_dict()["start"], "window_end": refresh.window.as_dict()["end"],
        "window_days": refresh.window.as_dict()["days"], "suite": refresh.suite or "(all)",
        "results_analysed": refresh.results, "table_version": table.version if table.version is not None else -1,
        "changed": table.changed, "new": len(table.new), "top": dg.MetadataValue.json(rows_json(top)),
    }
    if table.artifact is not None:
        metadata["artifact_id"] = table.artifact.artifact_id
        metadata["summary"] = table.artifact.location
    return metadata


def build_insights_job():
    return dg.define_asset_job(INSIGHTS_JOB, selection=dg.AssetSelection.groups(INSIGHTS_GROUP),
                               description="Flaky tests, failure clusters and duration regressions over the "
                                           "test_results window (InsightsConfig in the run config).")


def run_config(*, suite: str | None = None, window_days: int | None = None, as_of: str | None = None) -> dict:
    values = {k: v for k, v in {"suite": suite, "window_days": window_days, "as_of": as_of}.items() if v is not None}
    return {"ops": {INSIGHTS_OP: {"config": values}}}


def build_insights_schedule(job, *, enabled: bool = True) -> dg.ScheduleDefinition:
    """Daily at 04:00 UTC, on by default like the other schedules (``schedule.enabled``)."""

    @dg.schedule(job=job, cron_schedule=INSIGHTS_CRON, execution_timezone="UTC", name=INSIGHTS_SCHEDULE,
                 default_status=default_status(enabled),
                 description="The insights over the last 30 days of test results, daily at 04:00 UTC.")
    def insights_daily(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time.astimezone(UTC)
        return dg.RunRequest(run_key=f"insights:{tick:%Y-%m-%d}",
                             run_config=run_config(as_of=tick.strftime("%Y-%m-%dT%H:%M:%SZ")),
                             tags={"vault/insights_day": f"{tick:%Y-%m-%d}"})

    return insights_daily
