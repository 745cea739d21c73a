"""The hourly SLA: every hour x provider partition materialized within ``sla_minutes`` of its hour's end.

Why not Dagster's own freshness checks: ``build_time_partition_freshness_checks`` requires a
``TimeWindowPartitionsDefinition`` (its check fails on anything else), and the hourly graph is
a ``MultiPartitionsDefinition`` (hour x provider); ``FreshnessPolicy`` is asset-wide, not per
partition, and knows nothing of a per-provider deadline. So the equivalent is built here, the
way ``build_sensor_for_freshness_checks`` pairs a check with a sensor:

- ``hourly_completion`` (group ``operations``) stands for "the hourly graph of a partition has
  finished": a partition is complete when ``artifact_index``, the graph's last asset, is
  materialized. It is an external asset, never materialized itself; it exists to carry the
  check, because a check on ``artifact_index`` would join every run of the hourly job (job
  selections include their assets' checks) and judge a backfilled hour late in every run.
- ``hourly_sla`` (asset check on it) fails when a partition missed its deadline
  ``H + 1 h + sla_minutes`` (per provider, default 10; push providers, which hold only what was
  pushed, and providers with ``sla_minutes: null`` have none). Executed from the UI it judges
  the newest deadline of every provider.
- ``hourly_sla_sensor`` (on by default) runs every minute, judges each deadline that passed
  since its last tick (``alerts.sla.lookback_hours`` at most), reports the result as an
  evaluation of ``hourly_sla`` (so a miss shows in the UI as a failed check) and raises one
  ``sla_miss`` alert per missed partition (dedup key: the partition). Its cursor is the time it
  judged up to, so each partition is judged once, at its deadline; one that arrives later
  still missed it (the first materialization's time is compared with the deadline).
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from vault_pipeline.core.alert_rules import DuePartition, Verdict, due_partitions, judge
from vault_pipeline.core.alerts import SLA_MISS, AlertEvent
from vault_pipeline.defs.operations import alerting
from vault_pipeline.defs.operations.alerting import always_on_sensor, asset_link, raise_and_deliver, stamp
from vault_pipeline.defs.resources import VaultResource
from vault_pipeline.providers.config import VaultConfig

COMPLETION_ASSET = dg.AssetKey("hourly_completion")
LAST_HOURLY_ASSET = dg.AssetKey("artifact_index")
SLA_CHECK = "hourly_sla"
SLA_SENSOR = "hourly_sla_sensor"
MAX_LISTED = 20

hourly_completion = dg.AssetSpec(
    COMPLETION_ASSET, group_name="operations", deps=[LAST_HOURLY_ASSET], kinds={"python"},
    description="Each hour x provider partition of the hourly graph, complete once artifact_index (its last asset) is "
                "materialized. Never materialized itself: it carries the hourly SLA check (hourly_sla).",
)


def sla_minutes(config: VaultConfig) -> dict[str, int]:
    """Provider -> SLA minutes, for the providers that have one (pulled, sla_minutes set)."""
    return {name: p.sla_minutes for name, p in sorted(config.providers.items())
            if p.type != "push" and p.sla_minutes is not None}


def first_materializations(instance: dg.DagsterInstance, due: list[DuePartition]) -> dict[str, datetime | None]:
    """partition -> when ``artifact_index`` was first materialized for it (None: never)."""
    found: dict[str, datetime | None] = {}
    for partition in {d.partition for d in due}:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=LAST_HOURLY_ASSET, asset_partitions=[partition]), limit=1, ascending=True,
        ).records
        found[partition] = datetime.fromtimestamp(records[0].timestamp, UTC) if records else None
    return found


def judge_deadlines(instance: dg.DagsterInstance, config: VaultConfig, *, after: datetime,
                    until: datetime) -> list[Verdict]:
    due = due_partitions(sla_minutes(config), after=after, until=until, first_hour=config.partitions.start_time)
    return judge(due, first_materializations(instance, due))


def check_metadata(verdicts: list[Verdict], now: datetime) -> dict[str, object]:
    missed = [v for v in verdicts if not v.on_time]
    return {
        "partitions_judged": len(verdicts),
        "partitions_missed": len(missed),
        "missed": [f"{v.due.partition} (deadline {stamp(v.due.deadline)[:16]}Z; "
                   + (f"arrived {v.overdue_minutes(now)} min late)" if v.materialized_at
                      else f"not complete, {v.overdue_minutes(now)} min overdue)")
                   for v in missed[:MAX_LISTED]],
        "on_time": [v.due.partition for v in verdicts if v.on_time][:MAX_LISTED],
        "deadlines_until": dg.MetadataValue.timestamp(now.timestamp()),
    }


def check_description(verdicts: list[Verdict]) -> str:
    missed = [v for v in verdicts if not v.on_time]
    if not missed:
        return f"All {len(verdicts)} partitions judged were complete by their deadline."
    return (f"{len(missed)} of {len(verdicts)} partitions missed their SLA: "
            + ", ".join(v.due.partition for v in missed[:5]) + (" ..." if len(missed) > 5 else ""))


def miss_event(verdict: Verdict, now: datetime) -> AlertEvent:
    due = verdict.due
    late = verdict.overdue_minutes(now)
    state = (f"it arrived {late} min late" if verdict.materialized_at
             else f"it is not complete yet ({late} min overdue)")
    return AlertEvent(
        kind=SLA_MISS, severity="error", title=f"SLA missed: {due.partition}",
        text=f"The hour {due.hour_key} of {due.provider} had to be materialized by {stamp(due.deadline)[:16]}Z "
             f"(sla_minutes {int((due.deadline - due.hour - timedelta(hours=1)).total_seconds() // 60)}); {state}.",
        dedup_key=f"{SLA_MISS}:{due.partition}", created_at=stamp(now),
        fields={"provider": due.provider, "partition": due.partition, "deadline": stamp(due.deadline),
                "overdue_minutes": late},
        link=asset_link(LAST_HOURLY_ASSET.path[-1], due.partition, view="partitions"),
    )


def build_sla_checks() -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(
        asset=COMPLETION_ASSET, name=SLA_CHECK,
        description="Every hour x provider partition complete (artifact_index materialized) within the provider's "
                    "sla_minutes (default 10) of its hour's end; evaluated by hourly_sla_sensor at each deadline.",
    )
    def hourly_sla(context: dg.AssetCheckExecutionContext, vault: VaultResource) -> dg.AssetCheckResult:
        now = alerting.now_utc()
        # The newest deadline of every provider: each has exactly one in the last hour.
        verdicts = judge_deadlines(context.instance, vault.vault_config(), after=now - timedelta(hours=1), until=now)
        return dg.AssetCheckResult(passed=all(v.on_time for v in verdicts), metadata=check_metadata(verdicts, now),
                                   description=check_description(verdicts))

    return [hourly_sla]


def build_sla_sensor() -> dg.SensorDefinition:
    @always_on_sensor(
        SLA_SENSOR, 60,
        "Judges each hour x provider partition at its SLA deadline (hour end + sla_minutes): reports the "
        "hourly_sla check and raises an sla_miss alert per missed partition.",
    )
    def hourly_sla_sensor(context: dg.SensorEvaluationContext, vault: VaultResource):
        config = vault.vault_config()
        now = alerting.now_utc()
        if not config.alerts.sla.enabled:
            context.update_cursor(str(now.timestamp()))
            return dg.SkipReason("alerts.sla.enabled is false in vault.yaml")
        earliest = now - timedelta(hours=config.alerts.sla.lookback_hours)
        # First tick: the newest deadline of every provider (one within the last hour each).
        after = datetime.fromtimestamp(float(context.cursor), now.tzinfo) if context.cursor else now - timedelta(hours=1)
        after = max(after, earliest)
        if after >= now:
            return dg.SkipReason("no deadline passed since the last tick")
        verdicts = judge_deadlines(context.instance, config, after=after, until=now)
        missed = [v for v in verdicts if not v.on_time]
        raise_and_deliver(context, vault, [miss_event(v, now) for v in missed])
        context.update_cursor(str(now.timestamp()))
        if not verdicts:
            return dg.SkipReason(f"no deadline passed between {stamp(after)} and {stamp(now)}")
        evaluation = dg.AssetCheckEvaluation(
            asset_key=COMPLETION_ASSET, check_name=SLA_CHECK, passed=not missed, metadata=check_metadata(verdicts, now),
            description=check_description(verdicts), severity=dg.AssetCheckSeverity.ERROR,
        )
        return dg.SensorResult(asset_events=[evaluation])

    return hourly_sla_sensor
