"""What a deployment's run queue is told about an hourly run: the Delta fact table it loads.

Every run of ``hourly_ingestion`` loads its provider's records into the fact table of the
provider's kind (``audit_events``, ``test_results``, ...), and providers of one kind share that
table. The production instance (``deploy/dagster.yaml``, Dagster's QueuedRunCoordinator) admits
one run per value of the ``vault/lake_table`` tag at a time (``applyLimitPerUniqueValue``), so
two runs that would load the same table wait in the queue, visible in the UI, instead of one of
them holding a worker while it waits on the table's lease in the catalog (which still guards
every load, whatever launched it). Runs of different tables run side by side. The tag is set
where runs enter the queue: the hourly schedule and the API's GraphQL job backend. Runs launched
by hand from the UI carry it only if the operator adds it; the lease keeps them safe regardless.
"""

from __future__ import annotations

from collections.abc import Callable

from vault_pipeline.core.kinds import fact_table_name
from vault_pipeline.providers.config import VaultConfig, load_config

LAKE_TABLE_TAG = "vault/lake_table"


def lake_table_tags(config: VaultConfig, provider: str) -> dict[str, str]:
    """``{"vault/lake_table": <the fact table provider's runs load>}``."""
    return {LAKE_TABLE_TAG: fact_table_name(config.provider(provider).kind)}


def partition_run_tags(partition_key: str, config: Callable[[], VaultConfig] = load_config) -> dict[str, str]:
    """The queue tags of the run of ``partition_key`` ("<hour>|<provider>"), from vault.yaml as it is now."""
    _, separator, provider = partition_key.partition("|")
    if not separator or not provider:
        raise ValueError(f"partition key {partition_key!r} is not '<hour>|<provider>'")
    return lake_table_tags(config(), provider)
