"""Dagster assets of ingestion: raw landing (stage 1), its input check (2), indexing (3).

Thin wrappers: each asset resolves its partition, calls the stage logic with the storage
ports of the ``vault`` resource, and reports what a person watching the UI wants to see.
"""

from pathlib import Path

import dagster as dg

from vault_pipeline.core.windows import HourWindow, iso_z
from vault_pipeline.defs.ingestion.indexing import index_partition
from vault_pipeline.defs.ingestion.landing import LandingError, land_window
from vault_pipeline.defs.ingestion.validation import failure_markdown, validate_input
from vault_pipeline.defs.partitions import partition_of
from vault_pipeline.defs.resources import VaultResource
from vault_pipeline.providers.config import ConfigError

# Network-facing steps retry with exponential backoff; a provider's own transient failures
# are already retried per request inside the client.
NETWORK_RETRY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

_runner = None


def suite_runner():
    """The process's GX runner, created on first use (importing GX costs seconds)."""
    global _runner
    if _runner is None:
        from vault_pipeline.quality.gx_runner import SuiteRunner

        _runner = SuiteRunner()
    return _runner


def fetch_window_of(vault: VaultResource, provider: str, window: HourWindow) -> HourWindow:
    return window.with_lookback(vault.vault_config().provider(provider).lookback_hours)


def build_ingestion_assets(partitions: dg.PartitionsDefinition, input_pass_rate: float):
    @dg.asset(
        partitions_def=partitions,
        group_name="hourly",
        retry_policy=NETWORK_RETRY,
        kinds={"python"},
        description="Provider pages for the hour (plus lookback), stored byte-exact and content-addressed under raw/.",
    )
    def raw_landing(context: dg.AssetExecutionContext, vault: VaultResource) -> dg.MaterializeResult:
        partition, name, window = partition_of(context)
        try:
            provider = vault.provider(name)
        except ConfigError as exc:
            raise dg.Failure(str(exc)) from None
        store = vault.object_store()
        try:
            summary = land_window(
                provider=provider, store=store, catalog=vault.catalog(), window=window,
                partition=partition, run_id=context.run.run_id, work_root=Path(vault.home) / "work",
            )
        except LandingError as exc:
            raise dg.Failure(
                description=f"raw landing of {partition} failed: {exc}",
                metadata={"provider": name, "window_start": iso_z(window.start)},
                allow_retries=exc.retryable,
            ) from None
        finally:
            provider.close()
        return dg.MaterializeResult(
            metadata={
                "records": summary.records,
                "pages": summary.pages,
                "bytes": summary.bytes,
                "new_objects": summary.new_objects,
                "duplicate_records_in_fetch": summary.duplicate_records,
                "records_without_time": summary.missing_time,
                "oldest_event": summary.oldest_event or "-",
                "newest_event": summary.newest_event or "-",
                "location": dg.MetadataValue.url(store.uri(f"raw/{name}/{window.object_prefix()}/")),
            }
        )

    @dg.asset_check(
        asset=raw_landing,
        blocking=True,
        description=f"GX input suite of the provider's kind; blocks the partition under a {input_pass_rate:.0%} pass rate "
        "(or the provider's own input_pass_rate). Failing records go to the dead-letter queue.",
    )
    def input_validation(context: dg.AssetCheckExecutionContext, vault: VaultResource) -> dg.AssetCheckResult:
        partition, name, window = partition_of(context)
        provider = vault.vault_config().provider(name)
        kind = provider.kind
        threshold = provider.input_pass_rate if provider.input_pass_rate is not None else input_pass_rate
        outcome = validate_input(
            runner=suite_runner(), store=vault.object_store(), catalog=vault.catalog(), kind=kind, provider=name,
            window=window, fetch_window=fetch_window_of(vault, name, window), partition=partition,
            run_id=context.op_execution_context.run.run_id, fields=vault.vault_config().provider(name).fields,
        )
        passed = outcome.pass_rate >= threshold and not outcome.errors
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR if not passed else dg.AssetCheckSeverity.WARN,
            metadata={
                "suite": outcome.suite,
                "evaluated": outcome.evaluated,
                "dead_letters": len(outcome.failing),
                "pass_rate": dg.MetadataValue.float(round(outcome.pass_rate, 6)),
                "threshold": dg.MetadataValue.float(threshold),
                "failing_expectations": [e.describe() for e in outcome.expectations if not e.success],
                "failing_records": dg.MetadataValue.md(failure_markdown(outcome)),
            },
        )

    @dg.asset(
        partitions_def=partitions,
        group_name="hourly",
        deps=[raw_landing],
        kinds={"sqlite"},
        description="One catalog entry per landed record (log_id, object key, byte range, checksum, event time).",
    )
    def record_index(context: dg.AssetExecutionContext, vault: VaultResource) -> dg.MaterializeResult:
        partition, name, window = partition_of(context)
        summary = index_partition(
            store=vault.object_store(), catalog=vault.catalog(), provider=name, window=window,
            partition=partition, run_id=context.run.run_id,
        )
        if summary.conflicts:
            context.log.warning(
                f"{len(summary.conflicts)} records were re-delivered with different bytes; the first copy is kept: "
                + ", ".join(summary.conflicts[:5])
            )
        return dg.MaterializeResult(
            metadata={
                "records": summary.records,
                "inserted": summary.inserted,
                "unchanged": summary.unchanged,
                "dead_letters": summary.dead_letters,
                "conflicts": len(summary.conflicts),
                "watermark": summary.watermark or "-",
            }
        )

    return [raw_landing, record_index], [input_validation]
