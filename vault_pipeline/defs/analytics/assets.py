"""Dagster assets of analytics: normalised Delta fact tables (stage 4) and their output check (5).

Each materialization of ``normalised_records`` carries Dagster's table metadata, so the asset
page shows what a data engineer looks for: ``dagster/partition_row_count`` (rows of this hour x
provider in the fact table), ``dagster/row_count`` (rows of the whole fact table it loaded into,
every hour and provider of the kind: Dagster's ``TableMetadataSet`` defines ``row_count`` as the
table's and ``partition_row_count`` as the materialized partition's), ``dagster/column_schema``
(the Delta table's own Arrow schema), ``dagster/table_name`` and a five-row preview. All of it is
read through the lake's QueryBuilder path (never ``to_pyarrow_table``, which aborts at exit on
deltalake 1.6), with COUNT(*) and ORDER BY ... LIMIT in DataFusion, so no hour is held in memory.
"""


import dagster as dg
import pyarrow as pa

from vault_pipeline.core.kinds import KIND_COLUMNS, fact_schema
from vault_pipeline.core.layout import report_key
from vault_pipeline.core.windows import iso_z
from vault_pipeline.defs.analytics.normalisation import normalise_partition, partitions_of, validate_lake_rows
from vault_pipeline.defs.ingestion.assets import NETWORK_RETRY, fetch_window_of, suite_runner
from vault_pipeline.defs.ingestion.validation import failure_markdown, outcome_report
from vault_pipeline.defs.partitions import partition_of
from vault_pipeline.defs.resources import VaultResource
from vault_pipeline.storage.lake import DeltaLake

PREVIEW_ROWS = 5
# The preview shows only columns that identify no person, host or account: metadata is stored
# in the Dagster instance and shown to everyone who can open the UI, while the lake holds the
# providers' raw typed values (source_ip, user_name, account_id) and free text (error messages
# may quote prompts, paths or addresses; branch names often carry a user's name). Those stay in
# the lake (and masked in the golden zone); the schema still lists them.
PREVIEW_COLUMNS: dict[str, tuple[str, ...]] = {
    "audit_event": ("event_name", "event_source", "aws_region", "user_type", "error_code", "read_only"),
    "generation_event": ("llm_provider", "model", "latency_ms", "success", "total_tokens", "cost_usd"),
    "test_result": ("suite", "test", "status", "duration_ms", "error_type", "build"),
    "jailbreak_test": ("test_type", "target_provider", "target_model", "iterations", "successful_mutations", "asr_rate"),
    "agent_result": ("agent_name", "status", "test_count", "passed", "failed", "duration_ms"),
}
PREVIEW_COMMON = ("log_id", "event_time", "provider")
_COMMON_DESCRIPTIONS = {
    "log_id": "record id: log_ + sha256(provider, natural id)[:32]; one row per log_id",
    "provider": "provider name from vault.yaml",
    "natural_id": "the provider's own record id (id_field), or the record's checksum",
    "event_time": "event time (time_field), UTC",
    "checksum": "'sha256:' and the hex SHA-256 of the record's exact stored bytes",
    "object_key": "raw object holding the record's bytes",
    "run_id": "Dagster run that loaded the row",
    "date": "partition column: event date (UTC)",
    "hour": "partition column: event hour (UTC, 00-23)",
}


def column_schema(kind: str, schema: pa.Schema) -> dg.TableSchema:
    """The fact table's Arrow schema as Dagster columns, each described by where it comes from."""
    paths = {column.name: column.path for column in KIND_COLUMNS[kind]}
    shown = set(PREVIEW_COMMON) | set(PREVIEW_COLUMNS[kind])
    columns = []
    for field in schema:
        description = _COMMON_DESCRIPTIONS.get(field.name)
        if field.name in paths:
            description = f"record field {paths[field.name]}"
            if field.name not in shown:
                description += " (kept out of the metadata preview: it can identify a person, host or account)"
        columns.append(dg.TableColumn(field.name, str(field.type), description=description,
                                      constraints=dg.TableColumnConstraints(nullable=field.nullable)))
    return dg.TableSchema(columns=columns)


def table_metadata(lake: DeltaLake, table: str, kind: str, provider: str, hour: tuple[str, str]) -> dict[str, object]:
    """Dagster's table metadata for one hour x provider of ``table`` (see the module docstring)."""
    existing = lake.read(table, limit=0)  # just the schema; a table never loaded reads with no columns
    schema = existing.schema if existing.num_columns else fact_schema(kind)
    names = [*PREVIEW_COMMON, *PREVIEW_COLUMNS[kind]]
    rows = lake.read(table, columns=names, partitions=[hour], provider=provider, order_by=["event_time", "log_id"],
                     limit=PREVIEW_ROWS) if existing.num_columns else pa.table({})
    preview_schema = column_schema(kind, pa.schema([schema.field(name) for name in names]))
    return {
        "dagster/partition_row_count": dg.MetadataValue.int(lake.count(table, partitions=[hour], provider=provider)),
        "dagster/row_count": dg.MetadataValue.int(lake.count(table)),
        "dagster/table_name": table,
        "dagster/column_schema": dg.MetadataValue.table_schema(column_schema(kind, schema)),
        "preview": dg.MetadataValue.table(
            records=[dg.TableRecord({name: _plain(value) for name, value in row.items()}) for row in rows.to_pylist()],
            schema=preview_schema,
        ),
    }


def _plain(value: object) -> str | int | float | bool | None:
    """A value a TableRecord holds: times as ISO-8601 with Z."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "astimezone"):
        return iso_z(value)
    return str(value)


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
        summary = normalise_partition(  # a busy table fails the step unretried (LakeBusyError)
            store=vault.object_store(), catalog=vault.catalog(), lake=lake, kind=kind, provider=name,
            window=window, partition=partition, run_id=context.run.run_id,
            fields=vault.vault_config().provider(name).fields,
        )
        # The hour's own lake partition: rows a lookback loaded into earlier hours are theirs.
        (hour,) = partitions_of(window)
        return dg.MaterializeResult(
            metadata={
                **table_metadata(lake, summary.table, kind, name, hour),
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
