"""What the Dagster UI shows a data engineer: table metadata on the Delta asset, numbers on the integrity check.

Real partitions of the hourly job run on the embedded default (``vault`` fixture); the values
are read back from the run's materialization and check events and compared with the lake and
the landing figures, not just checked for presence.
"""

from __future__ import annotations

import json
import os

import dagster as dg
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from vault_pipeline.core.integrity import FAILING, WARNING
from vault_pipeline.core.kinds import fact_schema
from vault_pipeline.defs.analytics.assets import PREVIEW_COLUMNS, PREVIEW_COMMON, PREVIEW_ROWS, table_metadata
from vault_pipeline.defs.integrity.assets import FINDING_GROUPS
from vault_pipeline.defs.run_results import asset_metadata
from vault_pipeline_tests.fixtures.vault import check_results, materialization_metadata

HOUR = "2026-01-01-03:00"
DATE, HH = "2026-01-01", "03"
# Sensitive columns of audit events: raw in the lake, never in the preview.
SENSITIVE = ("source_ip", "user_name", "account_id")


def _audit(records: int, seed: int) -> dict:
    return {"type": "simulator", "kind": "audit_event", "records_per_hour": records, "seed": seed,
            "lookback_hours": 0, "page_size": 100, "invalid_fraction": 0.0}


def _raw_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, dg.MetadataValue]:
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.path[-1] == asset:
            return dict(materialization.metadata)
    raise AssertionError(f"{asset} was not materialized")


def _check_metadata(result: dg.ExecuteInProcessResult, check: str) -> tuple[bool, dict[str, dg.MetadataValue]]:
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.check_name == check:
            return evaluation.passed, dict(evaluation.metadata)
    raise AssertionError(f"check {check} was not evaluated")


def test_normalised_records_report_row_counts_schema_and_a_preview_without_pii(vault):
    vault.write_providers({"audit_a": _audit(120, 5), "audit_b": _audit(80, 9)})
    assert vault.run(HOUR, "audit_a").success
    result = vault.run(HOUR, "audit_b")
    assert result.success
    metadata = _raw_metadata(result, "normalised_records")
    lake = vault.lake

    # Rows of this hour x provider vs rows of the whole table (both providers share audit_events).
    rows_b = lake.count("audit_events", partitions=[(DATE, HH)], provider="audit_b")
    rows_all = lake.count("audit_events")
    assert rows_b == materialization_metadata(result, "raw_landing")["records"] > 0
    assert rows_all == rows_b + lake.count("audit_events", provider="audit_a") > rows_b
    assert metadata["dagster/partition_row_count"] == dg.MetadataValue.int(rows_b)
    assert metadata["dagster/row_count"] == dg.MetadataValue.int(rows_all)
    assert metadata["dagster/table_name"].value == "audit_events"

    # The schema is the Delta table's own, column by column, in Dagster's TableSchema.
    schema = metadata["dagster/column_schema"].value
    assert isinstance(schema, dg.TableSchema)
    expected = fact_schema("audit_event")
    assert [(c.name, c.type) for c in schema.columns] == [(f.name, str(f.type)) for f in expected]
    by_name = {c.name: c for c in schema.columns}
    assert by_name["event_time"].type == "timestamp[us, tz=UTC]"
    assert by_name["user_name"].description.startswith("record field userIdentity.userName")
    assert "kept out of the metadata preview" in by_name["source_ip"].description

    # The preview: the hour's first rows by event time, only non-identifying columns.
    preview = metadata["preview"]
    assert isinstance(preview, dg.TableMetadataValue)
    columns = [*PREVIEW_COMMON, *PREVIEW_COLUMNS["audit_event"]]
    assert [c.name for c in preview.schema.columns] == columns
    assert not set(SENSITIVE) & {c.name for c in preview.schema.columns}
    first = lake.read("audit_events", columns=["log_id", "event_time"], partitions=[(DATE, HH)], provider="audit_b")
    first = first.sort_by([("event_time", "ascending"), ("log_id", "ascending")]).slice(0, PREVIEW_ROWS)
    records = [r.data for r in preview.records]
    assert len(records) == PREVIEW_ROWS
    assert [r["log_id"] for r in records] == first.column("log_id").to_pylist()
    assert all(r["provider"] == "audit_b" and r["event_time"].endswith("Z") for r in records)
    assert all(set(r) == set(columns) for r in records)
    # No sensitive value of the hour reaches the instance's metadata, in any entry.
    shown = json.dumps({k: str(v) for k, v in metadata.items()})
    identifying = lake.read("audit_events", columns=list(SENSITIVE), partitions=[(DATE, HH)], provider="audit_b")
    values = {v for column in identifying.columns for v in column.to_pylist() if v}
    assert values and not any(v in shown for v in values)


def test_the_schema_is_read_from_the_table_itself(vault):
    """A column the table gained (schema evolution) shows up; the declared schema alone would miss it."""
    vault.write_providers({"audit_a": _audit(30, 5)})
    result = vault.run(HOUR, "audit_a")
    assert result.success
    uri = vault.lake.table_uri("audit_events")
    extra = fact_schema("audit_event").append(pa.field("geo_country", pa.string()))
    write_deltalake(DeltaTable(uri), extra.empty_table(), mode="append", schema_mode="merge")
    metadata = table_metadata(vault.lake, "audit_events", "audit_event", "audit_a", (DATE, HH))
    names = [c.name for c in metadata["dagster/column_schema"].value.columns]
    # delta-rs's schema merge moves the partition columns last: the metadata follows the table.
    assert names == [field.name for field in DeltaTable(uri).schema().fields]
    assert "geo_country" in names and set(names) - {"geo_country"} == set(fact_schema("audit_event").names)
    landed = asset_metadata(result, "raw_landing")["records"]
    assert metadata["dagster/partition_row_count"].value == metadata["dagster/row_count"].value == landed > 0


def test_a_provider_that_never_loaded_a_row_still_gets_the_declared_schema(vault):
    vault.write_providers({"quiet": {**_audit(0, 1)}})
    result = vault.run(HOUR, "quiet")
    assert result.success
    metadata = _raw_metadata(result, "normalised_records")
    assert metadata["dagster/partition_row_count"].value == 0 and metadata["dagster/row_count"].value == 0
    assert [c.name for c in metadata["dagster/column_schema"].value.columns] == fact_schema("audit_event").names
    assert metadata["preview"].records == []


def test_the_integrity_check_reports_its_counts_as_numbers(vault):
    vault.write_providers({"audit_a": _audit(250, 4)})
    result = vault.run(HOUR, "audit_a")
    assert result.success
    passed, metadata = _check_metadata(result, "integrity_clean")
    assert passed
    landing = asset_metadata(result, "raw_landing")
    numbers = {k: v for k, v in metadata.items() if isinstance(v, dg.IntMetadataValue)}
    assert {k: v.value for k, v in numbers.items()} == {
        "missing": 0, "changed": 0, "orphaned": 0, "miscounted": 0, "revision_conflicts": 0,
        "failing_findings": 0, "warnings": 0,
        "records_checked": landing["records"], "objects_checked": landing["pages"],
    }
    assert landing["records"] > 200 and landing["pages"] == -(-landing["records"] // 100)  # 100 a page

    # One byte of one stored page changed: the page and the record in it are "changed".
    record = min(vault.catalog.iter_partition_records(f"{HOUR}|audit_a"), key=lambda r: (r.object_key, r.offset))
    path = vault.home / "objects" / record.object_key
    os.chmod(path, 0o644)  # landed pages are kept read-only
    data = bytearray(path.read_bytes())
    position = record.offset + record.length // 2
    data[position] = ord("X") if data[position] != ord("X") else ord("Y")
    path.write_bytes(bytes(data))
    rerun = vault.run(HOUR, "audit_a", only=["integrity_report"])
    assert check_results(rerun) == {"integrity_clean": False}
    passed, metadata = _check_metadata(rerun, "integrity_clean")
    assert not passed
    assert metadata["changed"] == dg.MetadataValue.int(2)
    assert metadata["failing_findings"] == dg.MetadataValue.int(2)
    assert metadata["missing"].value == metadata["orphaned"].value == metadata["miscounted"].value == 0
    assert metadata["records_checked"].value == landing["records"]
    assert metadata["finding_counts"].value == {"changed_object": 1, "changed_record": 1}


def test_every_finding_type_is_counted_in_a_group():
    grouped = {kind for kinds in FINDING_GROUPS.values() for kind in kinds}
    assert FAILING | WARNING <= grouped
