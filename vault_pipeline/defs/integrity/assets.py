"""Dagster assets of integrity: the snapshot diff (stage 6, blocking check) and the artifact index (7).

The blocking check's metadata leads with plain numbers (missing, changed, orphaned, miscounted,
records and objects checked), so the UI shows them on the check and plots them across
partitions; the per-type counts and the first findings follow as JSON for the detail.
"""


import json
from collections import Counter

import dagster as dg

from vault_pipeline.core.integrity import FAILING, WARNING
from vault_pipeline.core.kinds import fact_table_name
from vault_pipeline.core.layout import report_key
from vault_pipeline.defs.ingestion.assets import fetch_window_of
from vault_pipeline.defs.integrity.artifacts import index_artifacts
from vault_pipeline.defs.integrity.ledger_stage import record_partition, verified_digest
from vault_pipeline.defs.integrity.snapshot_diff import diff_partition
from vault_pipeline.defs.partitions import partition_of
from vault_pipeline.defs.resources import VaultResource

# Finding types (core.integrity) by what they mean to the person reading the check.
FINDING_GROUPS: dict[str, tuple[str, ...]] = {
    "missing": ("missing_object", "missing_in_catalog", "missing_in_lake"),
    "changed": ("changed_object", "changed_record", "catalog_checksum_mismatch", "catalog_pointer_mismatch"),
    "orphaned": ("orphaned_in_catalog", "orphaned_object"),
    "miscounted": ("count_mismatch",),
    "revision_conflicts": ("revision_conflict",),  # a warning: a re-delivery with other bytes, first copy kept
}


def check_numbers(document: dict) -> dict[str, dg.MetadataValue]:
    """The integrity report's counts as numeric metadata: one per finding group, the findings that
    fail the check, the warnings, and how much was checked."""
    counts = Counter(document["finding_counts"])
    grouped = {kind for kinds in FINDING_GROUPS.values() for kind in kinds}
    numbers = {group: dg.MetadataValue.int(sum(counts[k] for k in kinds)) for group, kinds in FINDING_GROUPS.items()}
    other = sum(n for kind, n in counts.items() if kind not in grouped)
    if other:  # a finding type added to core.integrity later still shows as a number
        numbers["other_findings"] = dg.MetadataValue.int(other)
    numbers["failing_findings"] = dg.MetadataValue.int(sum(counts[k] for k in FAILING))
    numbers["warnings"] = dg.MetadataValue.int(sum(counts[k] for k in WARNING))
    compared = document.get("counts", {})
    numbers["records_checked"] = dg.MetadataValue.int(int(compared.get("landed_records", 0)))
    numbers["objects_checked"] = dg.MetadataValue.int(int(compared.get("objects", 0)))
    return numbers


def build_integrity_assets(partitions: dg.PartitionsDefinition, normalised_records: dg.AssetsDefinition,
                           artifact_deps: list[dg.AssetKey] | None = None):
    @dg.asset(
        partitions_def=partitions,
        group_name="hourly",
        deps=[normalised_records],
        kinds={"python"},
        description="Landing snapshot vs re-read objects, catalog and lake: missing, changed, orphaned, miscounted.",
    )
    def integrity_report(context: dg.AssetExecutionContext, vault: VaultResource) -> dg.MaterializeResult:
        partition, name, window = partition_of(context)
        kind = vault.vault_config().provider(name).kind
        report = diff_partition(
            store=vault.object_store(), catalog=vault.catalog(), lake=vault.lake(), kind=kind, provider=name,
            window=window, fetch_window=fetch_window_of(vault, name, window), partition=partition,
        )
        document = report.to_dict() | {"run_id": context.run.run_id}
        key = report_key(name, window, "integrity")
        vault.object_store().put(key, json.dumps(document, indent=1).encode(), overwrite=True)
        return dg.MaterializeResult(
            metadata={
                "clean": report.clean,
                "failing_findings": report.failing,
                **{f"count_{k}": v for k, v in report.counts.items()},
                "findings": dg.MetadataValue.json(dict(report.finding_counts)),
                "preview": dg.MetadataValue.md(report.markdown()),
                "report": dg.MetadataValue.url(vault.object_store().uri(key)),
            }
        )

    @dg.asset_check(
        asset=integrity_report,
        blocking=True,
        description="Fails when anything landed is missing, changed, orphaned or miscounted anywhere downstream.",
    )
    def integrity_clean(context: dg.AssetCheckExecutionContext, vault: VaultResource) -> dg.AssetCheckResult:
        _partition, name, window = partition_of(context)
        document = json.loads(vault.object_store().get(report_key(name, window, "integrity")))
        return dg.AssetCheckResult(
            passed=bool(document["clean"]),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                **check_numbers(document),
                "finding_counts": dg.MetadataValue.json(dict(document["finding_counts"])),
                "first_findings": dg.MetadataValue.json(document["findings"][:20]),
            },
        )

    @dg.asset(
        partitions_def=partitions,
        group_name="hourly",
        deps=[integrity_report],
        kinds={"python"},
        description="Signed, hash-chained ledger entry committing to the partition's records (Merkle root) and objects.",
    )
    def ledger_entry(context: dg.AssetExecutionContext, vault: VaultResource) -> dg.MaterializeResult:
        partition, name, window = partition_of(context)
        verified = verified_digest(vault.object_store(), name, window, partition, context.run.run_id)
        entry, created = record_partition(
            store=vault.object_store(), catalog=vault.catalog(), signer=vault.ledger_signer(), provider=name,
            window=window, partition=partition, run_id=context.run.run_id, verified=verified,
        )
        return dg.MaterializeResult(
            metadata={
                "sequence": entry.sequence,
                "new_entry": created,
                "merkle_root": entry.merkle_root,
                "records": entry.record_count,
                "objects": len(entry.objects),
                "entry_hash": entry.entry_hash,
                "key_id": entry.key_id,
            }
        )

    @dg.asset(
        partitions_def=partitions,
        group_name="hourly",
        # artifact_deps: later stages (promotion) that also register artifacts, so the index runs last
        deps=[integrity_report, ledger_entry, *(artifact_deps or [])],
        kinds={"python"},
        description="Every artifact of the partition with checksum, location and upstream lineage, in the catalog.",
    )
    def artifact_index(context: dg.AssetExecutionContext, vault: VaultResource) -> dg.MaterializeResult:
        partition, name, window = partition_of(context)
        kind = vault.vault_config().provider(name).kind
        artifacts = index_artifacts(
            store=vault.object_store(), catalog=vault.catalog(), lake=vault.lake(), table=fact_table_name(kind),
            provider=name, window=window, partition=partition, run_id=context.run.run_id,
        )
        kinds = Counter(a.kind for a in artifacts)
        return dg.MaterializeResult(metadata={"artifacts": len(artifacts), "by_kind": dg.MetadataValue.json(dict(kinds))})

    return [integrity_report, ledger_entry, artifact_index], [integrity_clean]
