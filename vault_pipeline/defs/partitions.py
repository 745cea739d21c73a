"""The hour x provider partitioning every hourly asset shares.

The provider dimension is built from ``vault.yaml`` each time the definitions load, so a
provider added to the file is a partition at once, with no registration step. Dagster
spells a key ``2026-01-01-00:00|acme_audit`` (dimensions in name order: hour, provider).
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from vault_pipeline.core.windows import HourWindow

HOURLY_START = "2025-01-01-00:00"


def hourly_partitions(providers: Iterable[str]) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {
            "hour": dg.HourlyPartitionsDefinition(start_date=HOURLY_START, timezone="UTC"),
            "provider": dg.StaticPartitionsDefinition(sorted(providers)),
        }
    )


def partition_of(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> tuple[str, str, HourWindow]:
    """(partition key, provider, hour window) of the running step."""
    op_context = context.op_execution_context if isinstance(context, dg.AssetCheckExecutionContext) else context
    key = op_context.partition_key
    dimensions = key.keys_by_dimension
    return str(key), dimensions["provider"], HourWindow.for_hour_key(dimensions["hour"])


# Runs that may be writing a partition right now (QUEUED and NOT_STARTED have not begun).
_RUNNING = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)


def partitions_in_progress(instance: dg.DagsterInstance) -> set[str]:
    """Partition keys (``hour|provider``) of the runs on ``instance`` that are going on now:
    their records may not be sealed yet, and ``vault verify`` must not call them unsealed."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=list(_RUNNING)))
    return {run.tags["dagster/partition"] for run in runs if "dagster/partition" in run.tags}
