"""The vault's Dagster definitions, built when a code location loads.

``vault.yaml`` (``VAULT_CONFIG``) is read here, not at import, so the provider dimension of the
partitions is always the file's current content (and so are ``partitions.start`` and whether the
hourly schedule runs by default, ``schedule.enabled``), and resources are chosen from ``VAULT_ENV``
(see ``defs.resources``). ``build_definitions`` is also what tests call with their own
resources.
"""

from __future__ import annotations

import dagster as dg

from vault_pipeline.defs.analytics.assets import build_analytics_assets
from vault_pipeline.defs.analytics.maintenance import (
    build_maintenance_assets,
    build_maintenance_job,
    build_maintenance_schedule,
)
from vault_pipeline.defs.analytics.marts import build_mart_assets
from vault_pipeline.defs.ingestion.assets import build_ingestion_assets
from vault_pipeline.defs.insights.assets import build_insights_job, build_insights_schedule, insights_refresh
from vault_pipeline.defs.integrity.assets import build_integrity_assets
from vault_pipeline.defs.operations import build_operations
from vault_pipeline.defs.partitions import hourly_partitions
from vault_pipeline.defs.promotion.assets import build_promotion_assets
from vault_pipeline.defs.reports.config_audit import build_config_audit_sensor
from vault_pipeline.defs.reports.schedules import build_report_job, build_report_schedules, compliance_report
from vault_pipeline.defs.resources import resources_for_env
from vault_pipeline.defs.run_queue import lake_table_tags
from vault_pipeline.defs.schedules import build_hourly_job, build_hourly_schedule
from vault_pipeline.providers.config import VaultConfig, load_config


def build_definitions(config: VaultConfig | None = None, resources: dict[str, object] | None = None) -> dg.Definitions:
    config = config or load_config()
    providers = sorted(config.providers)
    partitions = hourly_partitions(providers, config.partitions.start)
    (raw_landing, record_index), ingestion_checks = build_ingestion_assets(partitions, config.policies.input_pass_rate)
    (normalised_records,), analytics_checks = build_analytics_assets(partitions, record_index, config.policies.output_pass_rate)
    (integrity_report, ledger_entry, artifact_index), integrity_checks = build_integrity_assets(
        partitions, normalised_records, artifact_deps=[dg.AssetKey("golden_promotion")]
    )
    (golden_promotion,) = build_promotion_assets(partitions, ledger_entry)
    marts = build_mart_assets(partitions, normalised_records)
    job = build_hourly_job(partitions)
    maintenance = build_maintenance_assets(config)  # the lake's lifecycle: job lake_maintenance, daily
    maintenance_job = build_maintenance_job()
    report_job = build_report_job()  # compliance reports: weekly by default, daily and monthly on request
    insights_job = build_insights_job()  # flaky tests, failure clusters, regressions: daily and on demand
    operations = build_operations()  # alerts and the hourly SLA: sensors on by default, the hourly_sla check
    return dg.Definitions(
        assets=[raw_landing, record_index, normalised_records, integrity_report, ledger_entry, golden_promotion,
                artifact_index, *marts, *maintenance, compliance_report, insights_refresh, *operations.assets],
        asset_checks=[*ingestion_checks, *analytics_checks, *integrity_checks, *operations.asset_checks],
        jobs=[job, maintenance_job, report_job, insights_job],
        # Pushed hours are run when they are pushed: the schedule pulls only from providers that pull.
        schedules=[build_hourly_schedule(job, [p for p in providers if config.providers[p].type != "push"],
                                         enabled=config.schedule.enabled,
                                         first_hour=config.partitions.start_time,
                                         # the run queue's one-writer-per-Delta-table limit (deploy/)
                                         queue_tags={p: lake_table_tags(config, p) for p in providers}),
                   build_maintenance_schedule(maintenance_job, cron=config.lake.cron, enabled=config.schedule.enabled),
                   *build_report_schedules(report_job, config.reports.schedules),
                   build_insights_schedule(insights_job, enabled=config.schedule.enabled)],
        sensors=[build_config_audit_sensor(),  # vault.yaml changes into the ledger, even when nothing runs
                 *operations.sensors],
        resources=resources if resources is not None else resources_for_env(),
        # The hourly graph is a chain; parallelism comes from running partitions side by side,
        # so steps share one process instead of paying an interpreter start each.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
