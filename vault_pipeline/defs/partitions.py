"""The hour x provider partitioning every hourly asset shares.

The provider dimension is built from ``vault.yaml`` each time the definitions load, so a
provider added to the file is a partition at once, with no registration step. Dagster
spells a key ``2026-01-01-00:00|acme_audit`` (dimensions in name order: hour, provider).

The hour dimension starts at ``partitions.start`` in ``vault.yaml`` (default
``DEFAULT_PARTITIONS_START``, 2026-01-01-00:00). It is a fixed hour on purpose: a start computed
from "now" (say, the last 30 days) would change the partitions definition at every load, so
hours would drop out of the UI's partition status, backfills and run history would point at
partitions that no longer exist, and two processes loading a minute apart would disagree on
which keys exist. The cost of a fixed start is that the UI counts every hour since it as
"missing" until it is materialized, so set it to the first hour you have (or want) data for;
moving it later hides earlier hours from Dagster but deletes nothing from the vault. The last
partition is the hour under way (pushes land in it as they arrive).
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from vault_pipeline.core.windows import HourWindow
from vault_pipeline.providers.config import DEFAULT_PARTITIONS_START

# The first hour when vault.yaml names none (the API's earliest hour reads the file's value).
HOURLY_START = DEFAULT_PARTITIONS_START


def hourly_partitions(providers: Iterable[str], start: str = HOURLY_START) -> dg.MultiPartitionsDefinition:
    """hour (UTC, from ``start``, a ``YYYY-MM-DD-HH:00`` key) x provider."""
    return dg.MultiPartitionsDefinition(
        {
            # end_offset=1: the hour under way is a partition too, so a pushed test run is landed
            # at once. The schedule, `vault run` and POST /v1/ingest still pull only ended hours.
            "hour": dg.HourlyPartitionsDefinition(start_date=start, timezone="UTC", end_offset=1),
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
