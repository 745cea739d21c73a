"""The marts as Dagster assets: fact rows written straight into Delta with the lake's own merge,
the three marts materialized for an hour x provider, read back from their Delta tables and
compared with an independent pandas computation; re-materializing changes nothing; Delta on
moto's S3 server too."""

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from vault_pipeline.core import marts as core
from vault_pipeline_tests.core.test_marts import _compare, expected_provider_metrics, generation_rows
from vault_pipeline_tests.fixtures.vault import materialization_metadata

MARTS = ["agg_provider_metrics", "agg_technique_effectiveness", "dim_providers"]
HOUR_KEY, DATE, HOUR = "2026-01-01-05:00", "2026-01-01", "05"

GENERATION_SCHEMA = pa.schema([
    ("log_id", pa.string()), ("provider", pa.string()), ("natural_id", pa.string()),
    ("event_time", pa.timestamp("us", tz="UTC")), ("checksum", pa.string()), ("object_key", pa.string()),
    ("run_id", pa.string()), ("date", pa.string()), ("hour", pa.string()),
    ("llm_provider", pa.string()), ("model", pa.string()), ("latency_ms", pa.float64()), ("success", pa.bool_()),
    ("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64()), ("total_tokens", pa.int64()),
    ("cost_usd", pa.float64()), ("error_message", pa.string()), ("prompt_length", pa.int64()),
    ("response_length", pa.int64()), ("error_code", pa.string()), ("techniques_applied", pa.list_(pa.string())),
    ("tokens_used", pa.int64()),
])
JAILBREAK_SCHEMA = pa.schema([*list(GENERATION_SCHEMA)[:9],
    ("test_id", pa.string()), ("test_type", pa.string()), ("target_provider", pa.string()),
    ("target_model", pa.string()), ("iterations", pa.int64()), ("successful_mutations", pa.int64()),
    ("asr_rate", pa.float64()), ("best_prompt", pa.string()),
])


def fact_rows(kinds_columns: pa.Table, schema: pa.Schema, provider: str, date: str, hour: str, tag: str) -> pa.Table:
    n = kinds_columns.num_rows
    start = datetime.strptime(f"{date} {hour}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    common = {
        "log_id": [f"log_{tag}_{provider}_{i:07d}" for i in range(n)], "provider": [provider] * n,
        "natural_id": [str(i) for i in range(n)], "event_time": [start] * n, "checksum": ["sha256:0"] * n,
        "object_key": ["raw/x"] * n, "run_id": ["r"] * n, "date": [date] * n, "hour": [hour] * n,
    }
    columns = {f.name: pa.array(common[f.name], f.type) if f.name in common else
               (kinds_columns.column(f.name) if f.name in kinds_columns.column_names else pa.nulls(n, f.type))
               for f in schema}
    return pa.table(columns, schema=schema)


PROVIDERS = {
    "gen_sim": {"type": "simulator", "kind": "generation_event"},
    "jb_sim": {"type": "simulator", "kind": "jailbreak_test"},
    "audit_rest": {"type": "rest", "kind": "audit_event", "url": "https://bob:hunter2@audit.example.com/v1/events?token=t0p"},
}


def _load(harness, gen: pa.Table) -> None:
    lake = harness.lake
    lake.merge("generation_events", fact_rows(gen, GENERATION_SCHEMA, "gen_sim", DATE, HOUR, "a"))
    # another hour and another provider of the same table must not leak into the hour's marts
    lake.merge("generation_events", fact_rows(gen.slice(0, 50), GENERATION_SCHEMA, "gen_sim", DATE, "06", "b"))
    lake.merge("generation_events", fact_rows(gen.slice(0, 50), GENERATION_SCHEMA, "other", DATE, HOUR, "c"))
    jb = pa.table({"test_type": ["autodan", "gptfuzz", "autodan"], "target_provider": ["openai", "openai", "xai"],
                   "target_model": ["gpt-x", "gpt-x", "grok"], "iterations": [10, 4, 8],
                   "successful_mutations": [3, 0, None], "asr_rate": [0.3, 0.0, None]})
    lake.merge("jailbreak_tests", fact_rows(jb, JAILBREAK_SCHEMA, "jb_sim", DATE, HOUR, "d"))


def _run_all(harness):
    results = {}
    for provider in PROVIDERS:
        result = harness.run(HOUR_KEY, provider, only=MARTS)
        assert result.success, provider
        results[provider] = result
    return results


def _check(harness) -> None:
    gen = generation_rows(4000, seed=11)
    _load(harness, gen)
    results = _run_all(harness)
    lake = harness.lake
    metrics = lake.read("agg_provider_metrics", partitions=[(DATE, HOUR)], provider="gen_sim")
    _compare(metrics, expected_provider_metrics(gen), ["provider_id"])
    assert lake.count("agg_provider_metrics") == metrics.num_rows  # the other kinds' partitions: 0 rows
    meta = materialization_metadata(results["audit_rest"], "agg_provider_metrics")
    assert meta["dagster/partition_row_count"] == 0 and "audit_event" in meta["note"]
    gen_meta = materialization_metadata(results["gen_sim"], "agg_provider_metrics")
    assert gen_meta["dagster/partition_row_count"] == metrics.num_rows
    assert [c.name for c in gen_meta["dagster/column_schema"].columns] == core.PROVIDER_METRICS_SCHEMA.names

    techniques = lake.read("agg_technique_effectiveness", partitions=[(DATE, HOUR)])
    expected = core.technique_effectiveness(gen, kind="generation_event", date=DATE, hour=HOUR, provider="gen_sim")
    assert techniques.filter(pa.compute.equal(techniques["provider"], "gen_sim")).sort_by(
        [("technique", "ascending"), ("llm_provider", "ascending")]).to_pylist() == expected.sort_by(
        [("technique", "ascending"), ("llm_provider", "ascending")]).to_pylist()
    jb = {(r["technique"], r["llm_provider"]): r for r in techniques.to_pylist() if r["provider"] == "jb_sim"}
    assert jb[("autodan", "openai")]["attack_success_rate"] == pytest.approx(0.3)
    assert jb[("autodan", "xai")]["successes"] == 0 and jb[("gptfuzz", "openai")]["uses"] == 1

    dim = {(r["source"], r["provider_id"]): r for r in lake.read("dim_providers").to_pylist()}
    assert {("vault", p) for p in PROVIDERS} <= set(dim)
    assert {("llm", "openai"), ("llm", "anthropic"), ("llm", "google"), ("llm", "xai")} <= set(dim)
    assert dim[("vault", "audit_rest")]["base_url"] == "https://audit.example.com/v1/events"
    assert dim[("vault", "gen_sim")]["models"] == ["m1", "m2"] and dim[("llm", "xai")]["models"] == ["grok"]
    assert not any("hunter2" in str(v) or "t0p" in str(v) for r in dim.values() for v in r.values())

    artifacts = [a for a in harness.catalog.search_artifacts(kind="mart_table")]
    gen_artifact = next(a for a in artifacts if a.provider == "gen_sim" and a.metadata["table"] == "agg_provider_metrics")
    assert gen_artifact.upstream and gen_artifact.metadata["upstream_table"] == "generation_events"

    # Re-materializing every hour changes nothing: no new Delta version, the same rows.
    before = {m: (lake.version(m), sorted(map(repr, lake.read(m).to_pylist()))) for m in MARTS}
    again = _run_all(harness)
    assert {m: (lake.version(m), sorted(map(repr, lake.read(m).to_pylist()))) for m in MARTS} == before
    assert materialization_metadata(again["gen_sim"], "agg_provider_metrics")["changed"] is False

    # New rows in the hour replace exactly that hour x provider; an emptied hour empties it.
    extra = generation_rows(10, seed=12)
    lake.merge("generation_events", fact_rows(extra, GENERATION_SCHEMA, "gen_sim", DATE, HOUR, "e"))
    assert harness.run(HOUR_KEY, "gen_sim", only=["agg_provider_metrics"]).success
    both = pa.concat_tables([gen, extra])
    _compare(lake.read("agg_provider_metrics", partitions=[(DATE, HOUR)], provider="gen_sim"),
             expected_provider_metrics(both), ["provider_id"])


def test_marts_equal_an_independent_computation_and_rematerializing_changes_nothing(vault):
    vault.write_providers(PROVIDERS)
    _check(vault)


def test_marts_on_delta_on_s3(vault_on_s3):
    vault_on_s3.write_providers(PROVIDERS)
    _check(vault_on_s3)
    assert vault_on_s3.lake.table_uri("agg_provider_metrics").startswith("s3://")


def test_marts_tolerate_a_fact_table_without_the_new_columns(vault):
    vault.write_providers({"gen_sim": PROVIDERS["gen_sim"]})
    old = pa.schema([f for f in GENERATION_SCHEMA if f.name not in
                     ("prompt_length", "response_length", "error_code", "techniques_applied", "tokens_used")])
    rows = pa.table({"llm_provider": ["openai"] * 3, "latency_ms": [1.0, 2.0, 3.0], "success": [True, True, False],
                     "total_tokens": [1, 2, 3]})
    vault.lake.merge("generation_events", fact_rows(rows, old, "gen_sim", DATE, HOUR, "o"))
    assert vault.run(HOUR_KEY, "gen_sim", only=MARTS).success
    (row,) = vault.lake.read("agg_provider_metrics").to_pylist()
    assert (row["total_requests"], row["failed_requests"], row["p50_latency_ms"], row["total_tokens"]) == (3, 1, 2.0, 6)
    assert vault.lake.count("agg_technique_effectiveness") == 0


def test_an_empty_hour_materializes_zero_rows(vault):
    vault.write_providers({"gen_sim": PROVIDERS["gen_sim"]})
    result = vault.run(HOUR_KEY, "gen_sim", only=MARTS)
    assert result.success
    assert materialization_metadata(result, "agg_provider_metrics")["dagster/partition_row_count"] == 0
    assert np.isclose(vault.lake.count("agg_provider_metrics"), 0)
