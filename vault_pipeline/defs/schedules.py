"""The hourly job and its schedule: every provider's last complete hour, shortly after it closes.

Runs are keyed by partition, so a schedule tick that is re-evaluated never launches the same
hour twice.
"""


from datetime import UTC, timedelta

import dagster as dg

from vault_pipeline.core.windows import HOUR_KEY_FORMAT

HOURLY_JOB = "hourly_ingestion"
# Ten minutes past the hour leaves providers time to publish the closed hour.
HOURLY_CRON = "10 * * * *"


def build_hourly_job(partitions: dg.MultiPartitionsDefinition) :
    return dg.define_asset_job(
        HOURLY_JOB,
        selection=dg.AssetSelection.groups("hourly"),
        partitions_def=partitions,
        description="The whole hourly graph with its checks for one hour x provider partition.",
    )


def build_hourly_schedule(job, providers: list[str]) -> dg.ScheduleDefinition:
    @dg.schedule(job=job, cron_schedule=HOURLY_CRON, execution_timezone="UTC", name="hourly_ingestion_schedule")
    def hourly_ingestion_schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time.astimezone(UTC)
        hour = (tick - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        hour_key = hour.strftime(HOUR_KEY_FORMAT)
        for provider in providers:
            key = dg.MultiPartitionKey({"hour": hour_key, "provider": provider})
            yield dg.RunRequest(run_key=str(key), partition_key=key, tags={"vault/provider": provider, "vault/hour": hour_key})

    return hourly_ingestion_schedule
