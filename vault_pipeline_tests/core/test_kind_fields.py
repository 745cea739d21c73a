"""Kinds' columns: provider field mappings, the list column type, coercion of odd values."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pyarrow as pa
import pytest

from vault_pipeline.core.kinds import (
    KIND_COLUMNS,
    fact_schema,
    fact_table_name,
    kind_columns,
)
from vault_pipeline.core.normalise import fact_table
from vault_pipeline.core.projection import Projector


def _row(i: int = 0):
    return SimpleNamespace(log_id=f"log_{i:032x}", natural_id=f"n{i}", checksum="sha256:" + "0" * 64,
                           object_key="raw/x.json", timestamp="2026-01-01T05:00:00.000000Z")


def test_the_contract_columns_and_types():
    generation = fact_schema("generation_event")
    assert generation.field("latency_ms").type == pa.float64()
    for name, type_ in [("prompt_length", pa.int64()), ("response_length", pa.int64()), ("error_code", pa.string()),
                        ("tokens_used", pa.int64()), ("techniques_applied", pa.list_(pa.string()))]:
        assert generation.field(name).type == type_, name
    jailbreak = fact_schema("jailbreak_test")
    assert fact_table_name("jailbreak_test") == "jailbreak_tests"
    assert jailbreak.names[:9] == ["log_id", "provider", "natural_id", "event_time", "checksum", "object_key", "run_id",
                                   "date", "hour"]
    assert {f.name: f.type for f in jailbreak}.items() >= {
        "test_id": pa.string(), "test_type": pa.string(), "target_provider": pa.string(), "target_model": pa.string(),
        "iterations": pa.int64(), "successful_mutations": pa.int64(), "asr_rate": pa.float64(),
        "best_prompt": pa.string()}.items()


def test_kind_columns_applies_a_mapping_and_keeps_defaults():
    columns = {c.name: c.path for c in kind_columns("generation_event", {"latency_ms": "metrics.latency", "success": "ok"})}
    assert columns["latency_ms"] == "metrics.latency" and columns["success"] == "ok"
    assert columns["model"] == "model" and columns["prompt_tokens"] == "tokens.prompt"
    assert kind_columns("generation_event") is KIND_COLUMNS["generation_event"]
    with pytest.raises(ValueError, match="nope"):
        kind_columns("generation_event", {"nope": "a"})


@pytest.mark.parametrize("techniques, expected", [
    (["role_play", "many_shot"], ["role_play", "many_shot"]),
    ([], []),
    (["role_play", 3], None),  # not an array of strings: null, not a guess
    ("role_play", None),
    (None, None),
])
def test_list_columns_are_arrays_of_strings_or_null(techniques, expected):
    record = {"model": "m", "latency_ms": 12, "techniques_applied": techniques}
    table = fact_table("generation_event", "p", "run", [(_row(), json.dumps(record).encode())])
    assert table.schema.field("techniques_applied").type == pa.list_(pa.string())
    row = table.to_pylist()[0]
    assert row["techniques_applied"] == expected
    assert row["latency_ms"] == 12.0 and isinstance(row["latency_ms"], float)


def test_a_mapped_projector_reads_the_providers_paths_typed_and_coerced():
    projector = Projector("generation_event", {"latency_ms": "metrics.latency", "tokens_used": "tokens.total"})
    names = [c.name for c in projector.columns]
    record = json.dumps({"metrics": {"latency": 7}, "tokens": {"total": 40}, "latency_ms": 999}).encode()
    typed = dict(zip(names, projector.project_typed(record), strict=True))
    assert typed["latency_ms"] == 7.0 and typed["tokens_used"] == typed["total_tokens"] == 40
    table = fact_table("generation_event", "p", "run", [(_row(), record)], projector)
    assert table.column("latency_ms").to_pylist() == [7.0]


def test_a_mapping_with_one_path_as_value_and_parent_falls_back_to_coercion():
    projector = Projector("generation_event", {"error_code": "error"})
    record = json.dumps({"error": {"message": "boom"}}).encode()
    assert projector.project_typed(record) is None
    row = fact_table("generation_event", "p", "run", [(_row(), record)], projector).to_pylist()[0]
    assert row["error_message"] == "boom" and row["error_code"] is None
