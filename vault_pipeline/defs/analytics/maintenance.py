"""The lake's lifecycle: the daily ``lake_maintenance`` job over the Delta tables.

What an operator relies on: every fact table keeps time travel (reads ``as_of`` a time or at a
``version``) for as long as ``lake.vacuum_retention_hours`` (7 days by default) and its history
for as long as its rows are kept, stays fast to read (small per-load files compacted and
z-ordered one date partition at a time), and does not grow forever: rows whose event date is
older than the table's ``retention_days`` (90 by default) are deleted as a Delta DELETE that
stays in the history, files removed longer ago than the vacuum retention are deleted, the log
is checkpointed and cleaned, and dead letters older than ``lake.dead_letter_days`` (7) leave
the catalog. The raw zone (object store ``raw/``, ``dlq/`` bodies) and the ledger are never
touched: the lake is derived from them and can be rebuilt.

Maintenance of a table and a load of it never overlap: each table's asset takes the same
catalog lease as loads (``lake_lease.exclusive_table_writer``), which holds across runs,
processes and machines, and runs in the loaders' Dagster pool ``vault_lake_writer`` so Dagster
queues it rather than letting it wait on the lease. What maintenance did shows as the asset's
metadata and as a ``lake_maintenance`` artifact in the artifact index.
"""

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import dagster as dg

from vault_pipeline.defs.analytics.lake_lease import (
    exclusive_table_writer,
    holder_name,
)
from vault_pipeline.defs.integrity.artifacts import artifact_id
from vault_pipeline.defs.resources import VaultResource
from vault_pipeline.defs.schedules import default_status
from vault_pipeline.providers.config import KINDS, LakeConfig, VaultConfig
from vault_pipeline.storage.catalog import Artifact, Catalog, fixed_width_timestamp
from vault_pipeline.storage.lake import DeltaLake, MaintenanceStats, TablePolicy

MAINTENANCE_JOB = "lake_maintenance"
MAINTENANCE_SCHEDULE = "lake_maintenance_schedule"
MAINTENANCE_GROUP = "lake_maintenance"
MAINTENANCE_POOL = "vault_lake_writer"  # the loaders' pool (defs/analytics/assets.py)
ARTIFACT_KIND = "lake_maintenance"


def fact_tables() -> list[str]:
    from vault_pipeline.core.kinds import fact_table_name

    tables = []
    for kind in KINDS:
        try:
            tables.append(fact_table_name(kind))
        except KeyError:  # a kind without a fact table yet
            continue
    return tables


def maintained_tables(config: VaultConfig) -> list[str]:
    """The fact tables of every kind, and any other table ``lake.tables`` names (e.g. a mart)."""
    return sorted(set(fact_tables()) | set(config.lake.tables))


def table_policy(lake_config: LakeConfig, table: str) -> TablePolicy:
    return TablePolicy(
        retention_days=lake_config.retention_days_of(table),
        vacuum_retention_hours=lake_config.vacuum_retention_hours,
        zorder=tuple(lake_config.zorder_of(table)),
        vacuum_dry_run=lake_config.vacuum_dry_run,
    )


def maintain_table(
    *, catalog: Catalog, lake: DeltaLake, table: str, policy: TablePolicy, holder: str,
    now: datetime | None = None, wait_s: float | None = None,
) -> MaintenanceStats:
    """One maintenance pass over ``table`` under its lake-writer lease (shared with loads)."""
    with exclusive_table_writer(catalog, table, holder, wait_s=wait_s):
        return lake.maintain(table, policy, now=now)


def expire_dead_letters(catalog: Catalog, days: int, *, now: datetime | None = None) -> tuple[int, str]:
    """Delete dead letters created more than ``days`` ago; (how many, the cutoff)."""
    cutoff = fixed_width_timestamp((now or datetime.now(UTC)).astimezone(UTC) - timedelta(days=days))
    return catalog.expire_dead_letters(cutoff), cutoff


def stats_metadata(stats: MaintenanceStats) -> dict[str, Any]:
    """What maintenance did, as plain values (asset metadata and artifact metadata alike)."""
    values = asdict(stats)
    return {k: v for k, v in values.items() if v is not None}


def record_artifact(catalog: Catalog, lake: DeltaLake, stats: MaintenanceStats, *, run_id: str,
                    now: datetime | None = None) -> Artifact:
    """The maintenance pass in the artifact index: partition = the UTC day it ran, one per
    table and resulting version (a re-run that changed nothing replaces its own entry)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    day = moment.strftime("%Y-%m-%d")
    location = lake.table_uri(stats.table)
    identity = artifact_id(ARTIFACT_KIND, day, f"{location}@{stats.version_after}")
    artifact = Artifact(identity, ARTIFACT_KIND, "lake", day, location, None, stats.bytes_written, run_id,
                        fixed_width_timestamp(moment), [], {"table": stats.table, **stats_metadata(stats)})
    catalog.put_artifacts([artifact])
    return artifact


def build_maintenance_assets(config: VaultConfig) -> list[dg.AssetsDefinition]:
    assets = [_table_asset(table) for table in maintained_tables(config)]

    @dg.asset(
        name="dead_letter_expiry",
        group_name=MAINTENANCE_GROUP,
        description="Deletes catalog dead letters older than lake.dead_letter_days (7 by default); "
                    "their dlq/ bodies, the raw zone and the ledger stay.",
    )
    def dead_letter_expiry(context: dg.AssetExecutionContext, vault: VaultResource) -> dg.MaterializeResult:
        catalog = vault.catalog()
        days = vault.vault_config().lake.dead_letter_days
        expired, cutoff = expire_dead_letters(catalog, days)
        now = datetime.now(UTC)
        catalog.put_artifacts([Artifact(
            artifact_id(ARTIFACT_KIND, now.strftime("%Y-%m-%d"), f"catalog:dead_letters@{cutoff}"), ARTIFACT_KIND,
            "lake", now.strftime("%Y-%m-%d"), "catalog:dead_letters", None, None, context.run.run_id,
            fixed_width_timestamp(now), [], {"dead_letters_expired": expired, "created_before": cutoff,
                                             "dead_letter_days": days})])
        return dg.MaterializeResult(metadata={"dead_letters_expired": expired, "created_before": cutoff,
                                              "dead_letters_left": catalog.count_dead_letters()})

    return [*assets, dead_letter_expiry]


def _table_asset(table: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"maintain_{table}",
        group_name=MAINTENANCE_GROUP,
        pool=MAINTENANCE_POOL,
        kinds={"deltalake"},
        description=f"Lifecycle of the Delta table {table}: row retention, compaction and z-order per date, "
                    f"vacuum, checkpoint and log cleanup, under the table's lake-writer lease.",
    )
    def maintain(context: dg.AssetExecutionContext, vault: VaultResource) -> dg.MaterializeResult:
        lake, catalog = vault.lake(), vault.catalog()
        policy = table_policy(vault.vault_config().lake, table)
        stats = maintain_table(catalog=catalog, lake=lake, table=table, policy=policy,
                               holder=holder_name(context.run.run_id))
        metadata: dict[str, Any] = {"table": table, "location": dg.MetadataValue.url(lake.table_uri(table))}
        if stats.skipped is None:
            artifact = record_artifact(catalog, lake, stats, run_id=context.run.run_id)
            metadata["artifact_id"] = artifact.artifact_id
            metadata["dagster/row_count"] = dg.MetadataValue.int(stats.rows or 0)
        for name, value in stats_metadata(stats).items():
            if name == "table":
                continue
            metadata[name] = value if not isinstance(value, list) else dg.MetadataValue.json(value)
        metadata["zorder"] = dg.MetadataValue.json(list(policy.zorder))
        metadata["retention_days"] = policy.retention_days if policy.retention_days is not None else -1
        return dg.MaterializeResult(metadata=metadata)

    return maintain


def build_maintenance_job():
    return dg.define_asset_job(
        MAINTENANCE_JOB,
        selection=dg.AssetSelection.groups(MAINTENANCE_GROUP),
        description="The lake's lifecycle: retention, compaction, z-order, vacuum and checkpoints of every Delta "
                    "table, and dead-letter expiry.",
    )


def build_maintenance_schedule(job, *, cron: str = "30 3 * * *", enabled: bool = True) -> dg.ScheduleDefinition:
    """Daily, on by default like the hourly schedule (``schedule.enabled`` in vault.yaml)."""

    @dg.schedule(
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        name=MAINTENANCE_SCHEDULE,
        default_status=default_status(enabled),
        description="lake_maintenance once a day (lake.cron in vault.yaml, UTC).",
    )
    def lake_maintenance_schedule(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.astimezone(UTC).strftime("%Y-%m-%d")
        return dg.RunRequest(run_key=f"lake_maintenance:{day}", tags={"vault/maintenance_day": day})

    return lake_maintenance_schedule


# -- vault lake history ------------------------------------------------------------------------

def known_tables(lake: DeltaLake, config: VaultConfig | None) -> list[str]:
    """Tables the lake holds: the configured ones that exist, and any Delta table under a local root."""
    candidates = set(fact_tables()) | (set(config.lake.tables) if config is not None else set())
    if "://" not in lake.root:
        from pathlib import Path

        root = Path(lake.root)
        if root.is_dir():
            candidates |= {p.name for p in root.iterdir() if (p / "_delta_log").is_dir()}
    found = []
    for name in sorted(candidates):
        try:
            if lake.exists(name):
                found.append(name)
        except ValueError:
            continue
    return found


def print_history(entries: list[dict[str, Any]], table: str, out: TextIO, *, as_json: bool = False) -> None:
    if as_json:
        out.write(json.dumps({"table": table, "versions": entries}, indent=1) + "\n")
        return
    out.write(f"{'version':>7}  {'time (UTC)':<24}  {'operation':<14}  {'rows':>10}  {'added':>8}  {'deleted':>8}  detail\n")

    def shown(value: Any) -> str:
        return "-" if value is None else str(value)

    for entry in entries:
        detail = ", ".join(f"{k}={v}" for k, v in entry["detail"].items())
        out.write(f"{entry['version']:>7}  {shown(entry['timestamp']):<24}  {entry['operation']:<14}  "
                  f"{shown(entry['rows']):>10}  {shown(entry['rows_added']):>8}  {shown(entry['rows_deleted']):>8}  "
                  f"{detail}\n")
