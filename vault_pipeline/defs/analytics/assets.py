"""Dagster assets of analytics: normalised Delta fact tables (stage 4) and their output check (5)."""


import dagster as dg

from vault_pipeline.core.layout import report_key
from vault_pipeline.defs.analytics.lake_lease import LakeBusyError
from vault_pipeline.defs.analytics.normalisation import normalise_partition, validate_lake_rows
from vault_pipeline.defs.ingestion.assets import NETWORK_RETRY, fetch_window_of, suite_runner
from vault_pipeline.defs.ingestion.validation import failure_markdown, outcome_report
from vault_pipeline.defs.partitions import partition_of
from vault_pipeline.defs.resources import VaultResource


def build_analytics_assets(partitions: dg.PartitionsDefinition, record_index: dg.AssetsDefinition, output_pass_rate: float):
    @dg.asset(
        partitions_def=partitions,
        group_name="hourly",
        deps=[record_index],
        retry_policy=NETWORK_RETRY,
        # One loader per Delta table at a time: appends never conflict in Delta, so two runs
        # loading the same hour would both insert. The load takes the table's lease in the
        # catalog (lake_lease.py), which holds across runs, processes and launchers; the pool
        # also lets Dagster queue the step instead of letting it wait on the lease:
        # `dagster instance concurrency set vault_lake_writer 1`.
        pool="vault_lake_writer",
        kinds={"deltalake"},
        description="Validated records as typed rows, loaded once per log_id into the kind's Delta fact table (partitioned by date, hour).",
    )
    def normalised_records(context: dg.AssetExecutionContext, vault: VaultResource) -> dg.MaterializeResult:
        partition, name, window = partition_of(context)
        kind = vault.vault_config().provider(name).kind
        lake = vault.lake()
        try:
            summary = normalise_partition(
                store=vault.object_store(), catalog=vault.catalog(), lake=lake, kind=kind, provider=name,
                window=window, partition=partition, run_id=context.run.run_id,
            )
        except LakeBusyError as exc:
            # It has already waited its full time for the table: retrying would only wait again.
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        return dg.MaterializeResult(
            metadata={
                "table": summary.table,
                "rows": summary.rows,
                "inserted": summary.inserted,
                "unchanged": summary.unchanged,
                "skipped_dead_letters": summary.skipped_dead_letters,
                "repaired_rows": summary.repaired,
                "table_version": summary.version if summary.version is not None else -1,
                "location": dg.MetadataValue.url(lake.table_uri(summary.table)),
            }
        )

    @dg.asset_check(
        asset=normalised_records,
        blocking=True,
        description="GX output suite of the kind on the partition's rows as read back from the Delta table.",
    )
    def output_validation(context: dg.AssetCheckExecutionContext, vault: VaultResource) -> dg.AssetCheckResult:
        partition, name, window = partition_of(context)
        kind = vault.vault_config().provider(name).kind
        outcome = validate_lake_rows(
            suite_runner(), vault.lake(), kind=kind, provider=name, fetch_window=fetch_window_of(vault, name, window)
        )
        if outcome is None:
            return dg.AssetCheckResult(passed=True, metadata={"evaluated": 0, "note": "no rows for this window"})
        vault.object_store().put(
            report_key(name, window, "output-validation"),
            outcome_report(outcome, context.op_execution_context.run.run_id), overwrite=True,
        )
        passed = outcome.pass_rate >= output_pass_rate and not outcome.errors
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "suite": outcome.suite,
                "evaluated": outcome.evaluated,
                "pass_rate": dg.MetadataValue.float(round(outcome.pass_rate, 6)),
                "failing_expectations": [e.describe() for e in outcome.expectations if not e.success],
                "failing_records": dg.MetadataValue.md(failure_markdown(outcome)),
            },
        )

    return [normalised_records], [output_validation]
