"""The analytics marts (asset group ``analytics``): Delta tables derived from the fact tables.

Each mart is partitioned like the hourly graph (hour x provider), depends on
``normalised_records`` and runs in the hourly job right after it, so the schedule, a backfill
and ``dagster asset materialize`` keep it current. A materialization reads only its own hour x
provider of the fact table (through the lake's QueryBuilder path) and replaces exactly that hour
x provider of the mart (``DeltaLake.replace_partition``), so re-materializing changes nothing:
identical rows add no Delta version. Writers of one mart table take its catalog lease first.

- ``agg_provider_metrics``: ProviderMetrics per LLM provider and hour (exact percentiles);
  only generation-event providers have rows, any other kind materializes 0 rows and says so.
- ``agg_technique_effectiveness``: technique x LLM provider x hour from ``techniques_applied``
  of generation events and from jailbreak tests (``test_type`` is the technique; ASR).
- ``dim_providers``: one row per provider of vault.yaml (credentials stripped from its URL) and
  per LLM provider seen in the rows, with the models seen; unpartitioned, rewritten only when a
  row changes.

The arithmetic is in ``vault_pipeline.core.marts``; every mart is registered in the artifact
index with the normalised fact table as its upstream.
"""


import hashlib
import json
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa

from vault_pipeline.core import kinds
from vault_pipeline.core import marts as core
from vault_pipeline.defs.analytics.lake_lease import exclusive_table_writer, holder_name
from vault_pipeline.defs.integrity.artifacts import artifact_id
from vault_pipeline.defs.partitions import partition_of
from vault_pipeline.defs.resources import VaultResource
from vault_pipeline.storage.catalog import Artifact, fixed_width_timestamp
from vault_pipeline.storage.lake import DeltaLake, ReplaceStats

AGG_PROVIDER_METRICS = "agg_provider_metrics"
AGG_TECHNIQUE_EFFECTIVENESS = "agg_technique_effectiveness"
DIM_PROVIDERS = "dim_providers"
MART_KINDS = ("generation_event", "jailbreak_test")

_DESCRIPTIONS = {
    "date": "partition column: hour's date (UTC)", "hour": "partition column: hour (UTC, 00-23)",
    "hour_partition": "start of the hour (UTC)", "provider": "vault provider (vault.yaml) the rows came from",
    "provider_id": "LLM provider (llm_provider of the generation events)",
    "p50_latency_ms": "exact percentile (numpy linear = percentile_cont) over non-null latencies",
    "p95_latency_ms": "exact percentile (numpy linear = percentile_cont) over non-null latencies",
    "p99_latency_ms": "exact percentile (numpy linear = percentile_cont) over non-null latencies",
    "failed_requests": "total_requests - successful_requests (a null success is not a success)",
    "technique": "entry of techniques_applied, or test_type of a jailbreak test",
    "attack_success_rate": "mean asr_rate of the jailbreak tests (null for generation events)",
    "base_url": "provider URL without credentials, query or fragment",
}


def fact_table(kind: str) -> str:
    tables = getattr(kinds, "FACT_TABLES", None) or {}
    return tables.get(kind) or {"jailbreak_test": "jailbreak_tests"}.get(kind) or kinds.fact_table_name(kind)


def _hour(window) -> tuple[str, str]:
    return window.start.strftime("%Y-%m-%d"), window.start.strftime("%H")


def read_facts(lake: DeltaLake, kind: str, provider: str, hour: tuple[str, str]) -> pa.Table:
    """The hour x provider's fact rows, only the columns the marts use that the table has."""
    if kind not in MART_KINDS:
        return pa.table({})
    table = fact_table(kind)
    existing = lake.read(table, limit=0)
    wanted = core.GENERATION_COLUMNS if kind == "generation_event" else core.JAILBREAK_COLUMNS
    columns = [c for c in wanted if c in existing.column_names]
    if not columns:
        return pa.table({})
    return lake.read(table, columns=columns, partitions=[hour], provider=provider)


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[
        dg.TableColumn(f.name, str(f.type), description=_DESCRIPTIONS.get(f.name),
                       constraints=dg.TableColumnConstraints(nullable=f.nullable))
        for f in schema
    ])


def _digest(rows: pa.Table) -> str:
    canonical = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows.to_pylist())
    return "sha256:" + hashlib.sha256("\n".join(canonical).encode()).hexdigest()


def _record(vault: VaultResource, *, mart: str, rows: pa.Table, stats: ReplaceStats, provider: str, partition: str,
            run_id: str, kind: str) -> dict[str, object]:
    """Register the mart in the artifact index; the materialization's metadata."""
    lake, catalog = vault.lake(), vault.catalog()
    uri = lake.table_uri(mart)
    upstream = [artifact_id("lake_table", partition, lake.table_uri(fact_table(kind)))] if kind in MART_KINDS else []
    version = -1 if stats.version is None else stats.version
    digest = _digest(rows)
    catalog.put_artifacts([Artifact(
        artifact_id("mart_table", partition, uri), "mart_table", provider, partition, uri, digest, None, run_id,
        fixed_width_timestamp(datetime.now(UTC)), upstream,
        {"table": mart, "version": version, "rows": rows.num_rows, "upstream_table": fact_table(kind)
         if kind in MART_KINDS else None},
    )])
    return {
        "dagster/partition_row_count": dg.MetadataValue.int(rows.num_rows),
        "dagster/row_count": dg.MetadataValue.int(lake.count(mart)),
        "dagster/table_name": mart,
        "dagster/column_schema": dg.MetadataValue.table_schema(column_schema(rows.schema)),
        "table_version": version,
        "changed": stats.changed,
        "rows_replaced": stats.replaced,
        "rows_checksum": digest,
        "location": dg.MetadataValue.url(uri),
    }


def _replace(vault: VaultResource, mart: str, rows: pa.Table, schema: pa.Schema, run_id: str,
             predicate: dict[str, str], partition_by: tuple[str, ...] = ("date", "hour")) -> ReplaceStats:
    with exclusive_table_writer(vault.catalog(), mart, holder_name(run_id)):
        return vault.lake().replace_partition(mart, rows, predicate_partitions=predicate, schema=schema,
                                              partition_by=partition_by)


def build_mart_assets(partitions: dg.PartitionsDefinition, normalised_records: dg.AssetsDefinition):
    common = dict(partitions_def=partitions, group_name="analytics", deps=[normalised_records], kinds={"deltalake"})

    @dg.asset(**common, description="ProviderMetrics per LLM provider and hour (exact p50/p95/p99 latency) "
                                    "of the hour x provider's generation events.")
    def agg_provider_metrics(context: dg.AssetExecutionContext, vault: VaultResource) -> dg.MaterializeResult:
        partition, name, window = partition_of(context)
        kind = vault.vault_config().provider(name).kind
        date, hour = _hour(window)
        facts = read_facts(vault.lake(), "generation_event", name, (date, hour)) if kind == "generation_event" else pa.table({})
        rows = core.provider_metrics(facts, date=date, hour=hour, provider=name)
        stats = _replace(vault, AGG_PROVIDER_METRICS, rows, core.PROVIDER_METRICS_SCHEMA, context.run.run_id,
                         {"date": date, "hour": hour, "provider": name})
        metadata = _record(vault, mart=AGG_PROVIDER_METRICS, rows=rows, stats=stats, provider=name,
                           partition=partition, run_id=context.run.run_id, kind=kind)
        if kind != "generation_event":
            metadata["note"] = f"provider {name!r} is of kind {kind}: only generation events have provider metrics"
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset(**common, description="Technique x LLM provider x hour: uses, successes, success rate, avg latency "
                                    "(techniques_applied) and attack success rate (jailbreak tests).")
    def agg_technique_effectiveness(context: dg.AssetExecutionContext, vault: VaultResource) -> dg.MaterializeResult:
        partition, name, window = partition_of(context)
        kind = vault.vault_config().provider(name).kind
        date, hour = _hour(window)
        facts = read_facts(vault.lake(), kind, name, (date, hour))
        rows = core.technique_effectiveness(facts, kind=kind, date=date, hour=hour, provider=name)
        stats = _replace(vault, AGG_TECHNIQUE_EFFECTIVENESS, rows, core.TECHNIQUE_SCHEMA, context.run.run_id,
                         {"date": date, "hour": hour, "provider": name})
        metadata = _record(vault, mart=AGG_TECHNIQUE_EFFECTIVENESS, rows=rows, stats=stats, provider=name,
                           partition=partition, run_id=context.run.run_id, kind=kind)
        if kind not in MART_KINDS:
            metadata["note"] = f"provider {name!r} is of kind {kind}: only generation events and jailbreak tests have techniques"
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset(**common, description="Provider dimension: every provider of vault.yaml (URL without credentials) and "
                                    "every LLM provider seen, with models seen, enabled, created_at, updated_at.")
    def dim_providers(context: dg.AssetExecutionContext, vault: VaultResource) -> dg.MaterializeResult:
        partition, name, window = partition_of(context)
        config = vault.vault_config()
        kind = config.provider(name).kind
        hour = _hour(window)
        facts = read_facts(vault.lake(), kind, name, hour)
        key, model = ("llm_provider", "model") if kind == "generation_event" else ("target_provider", "target_model")
        llm_models = core.models_seen(facts, key, model) if kind in MART_KINDS else {}
        vault_models = {name: set().union(*llm_models.values())} if llm_models else {}
        configured = [core.ConfiguredProvider(p.name, p.kind, p.url, bool(getattr(p, "enabled", True)))
                      for p in config.providers.values()]
        lake, run_id = vault.lake(), context.run.run_id
        with exclusive_table_writer(vault.catalog(), DIM_PROVIDERS, holder_name(run_id)):
            existing = lake.read(DIM_PROVIDERS)
            rows = core.provider_dimension(existing if existing.num_columns else None, configured, vault_models,
                                           llm_models, datetime.now(UTC))
            stats = lake.replace_partition(DIM_PROVIDERS, rows, predicate_partitions={},
                                           schema=core.DIM_PROVIDERS_SCHEMA, partition_by=())
        metadata = _record(vault, mart=DIM_PROVIDERS, rows=rows, stats=stats, provider=name, partition=partition,
                           run_id=run_id, kind=kind)
        return dg.MaterializeResult(metadata=metadata)

    return [agg_provider_metrics, agg_technique_effectiveness, dim_providers]
