"""The hourly job and its schedule: every provider's last complete hour, shortly after it closes.

Runs are keyed by partition, so a schedule tick that is re-evaluated never launches the same
hour twice.

The schedule is on by default (``schedule: {enabled: true}`` in ``vault.yaml``): wherever a
``dagster-daemon`` runs (``make ui`` starts one with the webserver), the vault ingests every hour
without anyone opening the UI to switch it on. Loading the definitions starts nothing by itself
(tests, ``dagster definitions validate``, ``vault demo`` and the API's embedded runner never
run a daemon); only a daemon ticks schedules, and only on the cron (10 past the hour), with no
catch-up of ticks from before it first saw the schedule. ``schedule: {enabled: false}`` makes it
stopped by default instead. Either way this is Dagster's *default* status: once someone starts
or stops the schedule in the UI (or ``dagster schedule start|stop``), the instance keeps that
choice and the file no longer decides.
"""


from datetime import UTC, datetime, timedelta

import dagster as dg

from vault_pipeline.core.windows import HOUR_KEY_FORMAT

HOURLY_JOB = "hourly_ingestion"
HOURLY_SCHEDULE = "hourly_ingestion_schedule"
# Two minutes past the hour: providers have published most of the closed hour, and what they
# publish later is fetched again through the next hour's lookback; the run then has eight of
# the default SLA's ten minutes (``sla_minutes``) to materialize the partition.
HOURLY_CRON = "2 * * * *"


def build_hourly_job(partitions: dg.MultiPartitionsDefinition):
    return dg.define_asset_job(
        HOURLY_JOB,
        # The marts (group analytics) are derived from the same hour x provider, so the
        # schedule, backfills and API ingests keep them current with the fact tables.
        selection=dg.AssetSelection.groups("hourly", "analytics"),
        partitions_def=partitions,
        description="The whole hourly graph with its checks, and the analytics marts, for one hour x provider partition.",
    )


def default_status(enabled: bool) -> dg.DefaultScheduleStatus:
    """``schedule.enabled`` as a schedule's default: only a running dagster-daemon ticks it, and a
    start or stop in the UI overrides it."""
    return dg.DefaultScheduleStatus.RUNNING if enabled else dg.DefaultScheduleStatus.STOPPED


def build_hourly_schedule(job, providers: list[str], *, enabled: bool = True,
                          first_hour: datetime | None = None,
                          queue_tags: dict[str, dict[str, str]] | None = None) -> dg.ScheduleDefinition:
    """``enabled``: the default status (``schedule.enabled``); ``first_hour``: the partitions'
    first hour (``partitions.start``), before which there is no partition to request;
    ``queue_tags``: per provider, the run-queue tags of its runs (``defs/run_queue.py``)."""

    @dg.schedule(
        job=job,
        cron_schedule=HOURLY_CRON,
        execution_timezone="UTC",
        name=HOURLY_SCHEDULE,
        default_status=default_status(enabled),
        description="Every provider's last complete hour, at 10 past the hour (schedule.enabled in vault.yaml "
                    "sets whether it runs by default).",
    )
    def hourly_ingestion_schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time.astimezone(UTC)
        hour = (tick - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        hour_key = hour.strftime(HOUR_KEY_FORMAT)
        if first_hour is not None and hour < first_hour:
            # A start set ahead of time (partitions.start in the future): nothing to run yet, and
            # requesting a key the partitions do not hold would fail the tick.
            yield dg.SkipReason(f"hour {hour_key} is before partitions.start "
                                f"({first_hour.strftime(HOUR_KEY_FORMAT)}) in vault.yaml")
            return
        for provider in providers:
            key = dg.MultiPartitionKey({"hour": hour_key, "provider": provider})
            yield dg.RunRequest(run_key=str(key), partition_key=key, tags={
                "vault/provider": provider, "vault/hour": hour_key, **(queue_tags or {}).get(provider, {})})

    return hourly_ingestion_schedule
