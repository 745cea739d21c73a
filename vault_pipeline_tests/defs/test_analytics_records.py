"""Issue 10 part 1: the records the analytics need, through the whole hourly graph.

Every kind lands in its Delta fact table with the seed's columns; a provider can map columns
to its own record paths; and a fact table written before the new columns existed gains them
on the next load, its old rows reading as null and its integer latencies widened to floats.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from vault_pipeline.core.kinds import KIND_COLUMNS, fact_schema, fact_table_name
from vault_pipeline.providers.simulator import TECHNIQUE_SUCCESS
from vault_pipeline_tests.fixtures.vault import check_results

HOUR = "2026-01-01-05:00"
ALL_CHECKS = {"input_validation": True, "output_validation": True, "integrity_clean": True}


def _simulator(kind: str, records: int = 300, **extra):
    return {"type": "simulator", "kind": kind, "records_per_hour": records, "seed": 3, "lookback_hours": 0,
            "invalid_fraction": 0.0, **extra}


@pytest.mark.parametrize("kind", sorted(KIND_COLUMNS))
def test_every_kind_runs_the_graph_into_its_fact_table(vault, kind):
    vault.write_providers({"sim": _simulator(kind)})
    result = vault.run(HOUR, "sim")
    assert result.success and check_results(result) == ALL_CHECKS
    rows = vault.lake.read(fact_table_name(kind), provider="sim")
    assert rows.num_rows > 250
    assert rows.schema.names == fact_schema(kind).names
    for column in fact_schema(kind):
        assert rows.schema.field(column.name).type == column.type, column.name


def test_generation_events_carry_the_seeds_generation_event(vault):
    vault.write_providers({"llm": _simulator("generation_event", 600)})
    assert vault.run(HOUR, "llm").success
    table = vault.lake.read("generation_events", provider="llm")
    assert table.schema.field("latency_ms").type == pa.float64()
    assert table.schema.field("techniques_applied").type.value_type == pa.string()
    rows = table.to_pylist()
    assert all(isinstance(r["latency_ms"], float) and r["latency_ms"] > 0 for r in rows)
    assert any(r["latency_ms"] != int(r["latency_ms"]) for r in rows)  # fractions kept
    assert all(r["tokens_used"] == r["total_tokens"] == r["prompt_tokens"] + r["completion_tokens"] for r in rows)
    assert all(r["prompt_length"] > 0 and r["response_length"] >= 0 for r in rows)
    assert all(isinstance(r["techniques_applied"], list) for r in rows)
    used = {t for r in rows for t in r["techniques_applied"]}
    assert used <= set(TECHNIQUE_SUCCESS) and len(used) >= 4
    assert all((r["error_code"] is None) == r["success"] for r in rows)
    assert {r["error_code"] for r in rows if not r["success"]} & {"content_filtered", "rate_limited"}


def test_jailbreak_tests_hold_the_seeds_fact_jailbreak_tests(vault):
    vault.write_providers({"jb": _simulator("jailbreak_test", 200)})
    result = vault.run(HOUR, "jb")
    assert result.success and check_results(result) == ALL_CHECKS
    rows = vault.lake.read("jailbreak_tests", provider="jb").to_pylist()
    assert len(rows) > 150
    assert {r["test_type"] for r in rows} == {"autodan", "gptfuzz"}
    for r in rows:
        assert r["test_id"] == r["natural_id"]
        assert r["target_provider"] in ("openai", "anthropic", "google", "local") and r["target_model"]
        assert 0 <= r["successful_mutations"] <= r["iterations"]
        assert r["asr_rate"] == pytest.approx(r["successful_mutations"] / r["iterations"], abs=1e-6)
        assert (r["best_prompt"] is None) == (r["successful_mutations"] == 0)
    # the open-weights target is the most vulnerable one
    by_target = {}
    for r in rows:
        by_target.setdefault(r["target_provider"], []).append(r["asr_rate"])
    means = {k: sum(v) / len(v) for k, v in by_target.items()}
    assert max(means, key=means.get) == "local"


def test_invalid_jailbreak_tests_are_dead_lettered_not_loaded(vault):
    vault.write_providers({"jb": _simulator("jailbreak_test", 400, invalid_fraction=0.5)})
    result = vault.run(HOUR, "jb")
    assert check_results(result)["input_validation"] is False  # far under the 99 % pass rate
    assert vault.catalog.count_dead_letters(partition=f"{HOUR}|jb") > 100


def test_a_provider_maps_columns_to_its_own_paths(vault):
    """A REST-like shape: latency under metrics, success as ok; defaults stay for the rest."""
    from vault_pipeline.core.projection import Projector

    projector = Projector("generation_event", {"latency_ms": "metrics.latency", "success": "ok"})
    record = {"metrics": {"latency": 12.5}, "ok": True, "latency_ms": 999, "success": False, "model": "m"}
    values = dict(zip([c.name for c in projector.columns], projector.project_typed(json.dumps(record).encode()), strict=True))
    assert values["latency_ms"] == 12.5 and values["success"] is True and values["model"] == "m"

    # through the graph: latency read from the prompt token count, error_code from the error's message
    vault.write_providers({"llm": _simulator("generation_event", 300, fields={"latency_ms": "tokens.prompt",
                                                                             "error_code": "error.message"})})
    result = vault.run(HOUR, "llm")
    assert result.success and check_results(result) == ALL_CHECKS
    rows = vault.lake.read("generation_events", provider="llm").to_pylist()
    assert len(rows) > 250
    assert all(r["latency_ms"] == float(r["prompt_tokens"]) for r in rows)
    assert all(r["error_code"] == r["error_message"] for r in rows)
    assert any(r["error_code"] is not None for r in rows)


# -- schema evolution -------------------------------------------------------------------------

OLD_GENERATION_SCHEMA = pa.schema(
    [field for field in fact_schema("generation_event")
     if field.name not in ("prompt_length", "response_length", "error_code", "techniques_applied", "tokens_used")]
).set(fact_schema("generation_event").get_field_index("latency_ms"), pa.field("latency_ms", pa.int64()))


def _old_rows(n: int = 3) -> pa.Table:
    columns = {name: [None] * n for name in OLD_GENERATION_SCHEMA.names}
    columns.update(
        log_id=[f"log_{i:032x}" for i in range(n)], provider=["llm"] * n, natural_id=[f"old-{i}" for i in range(n)],
        event_time=[pa.scalar(1767243600000000 + i, pa.timestamp("us", tz="UTC")).as_py() for i in range(n)],
        checksum=["sha256:" + "0" * 64] * n, object_key=["raw/llm/old.json"] * n, run_id=["old-run"] * n,
        date=["2026-01-01"] * n, hour=["04"] * n, latency_ms=[100 + i for i in range(n)], model=["gpt-4o"] * n,
        success=[True] * n, total_tokens=[10] * n,
    )
    return pa.Table.from_pydict(columns, schema=OLD_GENERATION_SCHEMA)


def test_a_table_written_with_the_old_schema_gains_the_columns_on_the_next_load(vault):
    vault.lake.merge("generation_events", _old_rows())
    before = vault.lake.read("generation_events")
    assert before.schema.field("latency_ms").type == pa.int64() and "techniques_applied" not in before.column_names

    vault.write_providers({"llm": _simulator("generation_event", 300)})
    result = vault.run(HOUR, "llm")
    assert result.success and check_results(result) == ALL_CHECKS
    table = vault.lake.read("generation_events")
    assert table.schema.field("latency_ms").type == pa.float64()
    assert set(fact_schema("generation_event").names) == set(table.column_names)
    old = [r for r in table.to_pylist() if r["run_id"] == "old-run"]
    assert sorted(r["latency_ms"] for r in old) == [100.0, 101.0, 102.0]  # widened exactly
    for r in old:
        assert r["prompt_length"] is None and r["response_length"] is None and r["error_code"] is None
        assert r["techniques_applied"] is None and r["tokens_used"] is None
        assert r["model"] == "gpt-4o" and r["total_tokens"] == 10
    new = [r for r in table.to_pylist() if r["run_id"] != "old-run"]
    assert len(new) > 250 and all(isinstance(r["techniques_applied"], list) and r["tokens_used"] for r in new)
    # a second run changes nothing: no further rewrite, no new version
    version = vault.lake.version("generation_events")
    assert vault.run(HOUR, "llm").success
    assert vault.lake.version("generation_events") == version
