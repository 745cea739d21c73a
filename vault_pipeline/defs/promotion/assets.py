"""Dagster asset of promotion: ``golden_promotion`` runs after a partition's ledger entry.

The ledger entry is only written once the partition passed its blocking checks (input
validation, integrity diff), so depending on it makes promotion automatic for every partition
that proved intact. Policy (tier, masking, whether IPs count as PII) comes from ``vault.yaml``
``policies:``; the work itself is ``promotion.promote_partition``.
"""


from pathlib import Path

import dagster as dg

from vault_pipeline.defs.partitions import partition_of
from vault_pipeline.defs.promotion.masking import masking_settings
from vault_pipeline.defs.promotion.promotion import promote_partition
from vault_pipeline.defs.resources import VaultResource

GRAPH_REQUESTER = "dagster"


def build_promotion_assets(partitions: dg.PartitionsDefinition, ledger_entry: dg.AssetsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions,
        group_name="hourly",
        deps=[ledger_entry],
        kinds={"python"},
        description="Verified records to golden/{kind}/{provider}/{date}/{hour}/ (PII masked), the rest quarantined; "
                    "every decision signed into the ledger.",
    )
    def golden_promotion(context: dg.AssetExecutionContext, vault: VaultResource) -> dg.MaterializeResult:
        partition, name, _window = partition_of(context)
        config = vault.vault_config()
        settings = masking_settings(config.policies, Path(vault.home))
        summary = promote_partition(
            store=vault.object_store(), catalog=vault.catalog(), signer=vault.ledger_signer(),
            scanner=settings.scanner, policy=settings.policy, provider=name, kind=config.provider(name).kind,
            partition=partition, requested_by=GRAPH_REQUESTER, tier=settings.tier, run_id=context.run.run_id,
            work_root=Path(vault.home) / "work",
        )
        return dg.MaterializeResult(
            metadata={
                **{f"count_{decision}": count for decision, count in summary.counts.items()},
                "golden_prefix": dg.MetadataValue.url(vault.object_store().uri(summary.golden_prefix)),
                "manifest": summary.manifest_key,
                "ledger_sequence": summary.entry_sequence,
                "new_decision_entry": summary.new_entry,
                "policy_tier": settings.tier,
                "masking_policy": settings.mode,
            }
        )

    return [golden_promotion]
