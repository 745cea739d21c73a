"""The output check reads a partition's lake rows back in slices by log_id and validates each.

A million-row hour is never one pandas frame; slicing must not weaken any expectation (every
row is evaluated once, and a log_id loaded twice is still caught by the uniqueness check,
because both copies fall in the same slice), nor must reading only the columns the suite
names.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from vault_pipeline.core.windows import HourWindow
from vault_pipeline.defs.analytics import normalisation
from vault_pipeline.defs.ingestion.assets import suite_runner
from vault_pipeline.defs.run_results import asset_metadata
from vault_pipeline_tests.fixtures.vault import check_results

HOUR = "2026-01-01-05:00"


@pytest.fixture
def loaded(vault):
    vault.write_providers({"sim_audit": {"type": "simulator", "kind": "audit_event", "records_per_hour": 400,
                                         "seed": 5, "page_size": 150, "invalid_fraction": 0.0}})
    assert vault.run(HOUR, "sim_audit").success
    return vault


def _validate(vault, slice_rows: int, monkeypatch):
    monkeypatch.setattr(normalisation, "OUTPUT_SLICE", slice_rows)
    window = HourWindow.for_hour_key(HOUR).with_lookback(1)
    return normalisation.validate_lake_rows(suite_runner(), vault.lake, kind="audit_event", provider="sim_audit",
                                            fetch_window=window)


def test_slices_evaluate_every_row_once_and_agree_with_one_frame(loaded, monkeypatch) -> None:
    rows = loaded.lake.count("audit_events", provider="sim_audit")
    whole = _validate(loaded, 10_000, monkeypatch)
    sliced = _validate(loaded, 20, monkeypatch)  # 16 slices
    assert whole.evaluated == sliced.evaluated == rows
    assert [(e.type, e.success, e.unexpected_count) for e in whole.expectations] == [
        (e.type, e.success, e.unexpected_count) for e in sliced.expectations
    ]


def test_a_log_id_loaded_twice_fails_uniqueness_even_in_slices(loaded, monkeypatch) -> None:
    table_uri = loaded.lake.table_uri("audit_events")
    one_row = loaded.lake.read("audit_events").slice(0, 1)  # QueryBuilder: no pyarrow dataset (DESIGN.md trap)
    twice = one_row.column("log_id")[0].as_py()
    write_deltalake(table_uri, one_row, mode="append")  # the same record a second time
    outcome = _validate(loaded, 20, monkeypatch)
    unique = next(e for e in outcome.expectations if e.type == "expect_column_values_to_be_unique")
    assert not unique.success and unique.unexpected_count == 2
    assert twice in outcome.failing


def test_a_rerun_repairs_a_doubled_partition_and_the_graph_check_then_passes(loaded, monkeypatch) -> None:
    """A lake that holds a row twice (two loads that raced before loads were exclusive) is
    rewritten by the next run of the partition: one row per log_id, and the check passes."""
    table_uri = loaded.lake.table_uri("audit_events")
    rows = loaded.lake.count("audit_events", provider="sim_audit")
    one_row = loaded.lake.read("audit_events").slice(0, 1)  # QueryBuilder: no pyarrow dataset (DESIGN.md trap)
    write_deltalake(table_uri, one_row, mode="append")
    assert loaded.lake.count("audit_events", provider="sim_audit") == rows + 1
    monkeypatch.setattr(normalisation, "OUTPUT_SLICE", 20)

    result = loaded.run(HOUR, "sim_audit")

    assert check_results(result)["output_validation"] is True
    assert asset_metadata(result, "normalised_records")["repaired_rows"] == 1
    assert loaded.lake.count("audit_events", provider="sim_audit") == rows
    ids = loaded.lake.read("audit_events", columns=["log_id"]).column("log_id").to_pylist()
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("slice_rows", [10_000, 150], ids=["one_read", "spilled_slices"])
def test_only_the_suites_columns_are_read_and_they_validate_as_whole_rows_do(loaded, monkeypatch, slice_rows) -> None:
    from vault_pipeline.storage.lake import DeltaLake

    read = []
    for method in ("read", "iter_batches"):
        original = getattr(DeltaLake, method)

        def recording(self, table, *, _original=original, **options):
            read.append(options.get("columns"))
            return _original(self, table, **options)

        monkeypatch.setattr(DeltaLake, method, recording)
    projected = _validate(loaded, slice_rows, monkeypatch)
    monkeypatch.setattr(suite_runner(), "columns", lambda name: None)
    whole = _validate(loaded, slice_rows, monkeypatch)
    assert set(read[0]) == {"log_id", "checksum", "object_key", "event_time", "event_name", "event_source", "date", "hour"}
    assert set(read[-1]) == set(loaded.lake.column_names("audit_events")) > set(read[0])
    assert projected.evaluated == whole.evaluated > 0
    assert [(e.type, e.column, e.success, e.unexpected_count) for e in projected.expectations] == [
        (e.type, e.column, e.success, e.unexpected_count) for e in whole.expectations
    ]


def test_a_null_log_id_is_validated_in_a_slice_and_fails_not_null(loaded, monkeypatch) -> None:
    table_uri = loaded.lake.table_uri("audit_events")
    one_row = loaded.lake.read("audit_events").slice(0, 1)
    nameless = one_row.set_column(0, "log_id", pa.array([None], pa.string()))
    write_deltalake(table_uri, nameless, mode="append")
    outcome = _validate(loaded, 20, monkeypatch)
    assert outcome.evaluated == loaded.lake.count("audit_events", provider="sim_audit")
    not_null = next(e for e in outcome.expectations if e.type == "expect_column_values_to_not_be_null"
                    and e.column == "log_id")
    assert not not_null.success and not_null.unexpected_count == 1


def test_a_suite_column_the_table_lacks_is_still_an_error_of_the_check(loaded, monkeypatch, tmp_path) -> None:
    import json

    from vault_pipeline.quality.gx_runner import SuiteRunner, load_suite_document

    suite = load_suite_document("audit_event.output")
    suite["expectations"].append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "no_such_column"}})
    (tmp_path / "audit_event.output.json").write_text(json.dumps(suite), encoding="utf-8")
    window = HourWindow.for_hour_key(HOUR).with_lookback(1)
    outcome = normalisation.validate_lake_rows(SuiteRunner(directory=tmp_path), loaded.lake, kind="audit_event",
                                               provider="sim_audit", fetch_window=window)
    assert any("no_such_column" in error for error in outcome.errors)
