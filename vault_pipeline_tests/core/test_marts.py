"""The marts' arithmetic equals an independent pandas/numpy computation over the same rows."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from vault_pipeline.core import marts

DATE, HOUR = "2026-01-01", "05"


def generation_rows(n: int, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    latency = rng.choice([10.0, 20.0, 20.0, 35.5, 100.0, 250.0], n)  # many ties
    latency_mask = rng.random(n) < 0.1  # null latencies
    success = rng.random(n) < 0.8
    success_mask = rng.random(n) < 0.05
    llm = rng.choice(["openai", "anthropic", "google"], n).astype(object)
    llm[rng.random(n) < 0.03] = None
    techniques = [[t for t in rng.choice(["dan", "base64", "roleplay"], rng.integers(0, 3))] for _ in range(n)]
    for i in range(0, n, 17):
        techniques[i] = None
    for i in range(5, n, 23):
        techniques[i] = ["dan", "dan", None]  # repeated and null entries
    tokens = rng.integers(0, 5000, n)
    return pa.table({
        "llm_provider": pa.array(llm, pa.string()),
        "model": pa.array(rng.choice(["m1", "m2"], n)),
        "latency_ms": pa.array(latency, mask=latency_mask),
        "success": pa.array(success, mask=success_mask),
        "total_tokens": pa.array(tokens, mask=rng.random(n) < 0.05),
        "tokens_used": pa.array(tokens),
        "cost_usd": pa.array(rng.random(n), mask=rng.random(n) < 0.05),
        "techniques_applied": pa.array(techniques, pa.list_(pa.string())),
    })


def expected_provider_metrics(rows: pa.Table) -> pd.DataFrame:
    df = rows.to_pandas()
    df["tokens"] = df["total_tokens"].fillna(df["tokens_used"]).fillna(0).astype("int64")
    out = []
    for key, g in df.groupby("llm_provider", dropna=False, sort=True):
        lat = g["latency_ms"].dropna().to_numpy(dtype=float)
        ok = int((g["success"] == True).sum())  # noqa: E712 (nulls are not successes)
        out.append({
            "provider_id": None if pd.isna(key) else key, "total_requests": len(g), "successful_requests": ok,
            "failed_requests": len(g) - ok,
            "avg_latency_ms": lat.mean() if len(lat) else None,
            "p50_latency_ms": np.percentile(lat, 50) if len(lat) else None,
            "p95_latency_ms": np.percentile(lat, 95) if len(lat) else None,
            "p99_latency_ms": np.percentile(lat, 99) if len(lat) else None,
            "total_tokens": int(g["tokens"].sum()), "total_cost_usd": float(g["cost_usd"].fillna(0).sum()),
        })
    return pd.DataFrame(out)


def _compare(got: pa.Table, want: pd.DataFrame, keys: list[str]) -> None:
    got_df = got.to_pandas()
    assert len(got_df) == len(want)
    got_df = got_df.sort_values(keys, na_position="last").reset_index(drop=True)
    want = want.sort_values(keys, na_position="last").reset_index(drop=True)
    for column in want.columns:
        g, w = got_df[column].tolist(), want[column].tolist()
        for a, b in zip(g, w, strict=True):
            if b is None or (isinstance(b, float) and np.isnan(b)):
                assert a is None or (isinstance(a, float) and np.isnan(a)), (column, a, b)
            elif isinstance(b, float):
                assert a == pytest.approx(b, rel=1e-12), (column, a, b)
            else:
                assert a == b, (column, a, b)


def test_provider_metrics_equal_pandas_with_ties_nulls_and_failures():
    rows = generation_rows(5000)
    got = marts.provider_metrics(rows, date=DATE, hour=HOUR, provider="gen_sim")
    assert got.schema == marts.PROVIDER_METRICS_SCHEMA
    _compare(got, expected_provider_metrics(rows), ["provider_id"])
    assert set(got.column("date").to_pylist()) == {DATE} and set(got.column("provider").to_pylist()) == {"gen_sim"}
    assert got.column("hour_partition")[0].as_py() == datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert got.column("provider_id").to_pylist()[-1] is None  # the null LLM provider is its own group, last


def test_percentiles_are_exact_on_known_values():
    rows = pa.table({"llm_provider": ["a"] * 5 + ["b"], "latency_ms": [1.0, 2.0, 3.0, 4.0, 100.0, None],
                     "success": [True, False, None, True, True, False]})
    got = marts.provider_metrics(rows, date=DATE, hour=HOUR, provider="p").to_pylist()
    a, b = got
    assert (a["total_requests"], a["successful_requests"], a["failed_requests"]) == (5, 3, 2)
    assert (a["p50_latency_ms"], a["avg_latency_ms"]) == (3.0, 22.0)
    assert a["p95_latency_ms"] == pytest.approx(4 + 0.8 * 96) and a["p99_latency_ms"] == pytest.approx(4 + 0.96 * 96)
    assert b["avg_latency_ms"] is None and b["p99_latency_ms"] is None  # no latency at all
    assert (b["total_tokens"], b["total_cost_usd"]) == (0, 0.0)  # a table without those columns


def test_single_value_groups_and_an_empty_hour():
    rows = pa.table({"llm_provider": ["x"], "latency_ms": [7.5], "success": [True]})
    (row,) = marts.provider_metrics(rows, date=DATE, hour=HOUR, provider="p").to_pylist()
    assert row["p50_latency_ms"] == row["p99_latency_ms"] == 7.5
    empty = marts.provider_metrics(pa.table({}), date=DATE, hour=HOUR, provider="p")
    assert empty.num_rows == 0 and empty.schema == marts.PROVIDER_METRICS_SCHEMA
    assert marts.technique_effectiveness(pa.table({}), kind="generation_event", date=DATE, hour=HOUR,
                                         provider="p").num_rows == 0


def test_technique_effectiveness_equals_pandas_over_exploded_techniques():
    rows = generation_rows(3000, seed=9)
    got = marts.technique_effectiveness(rows, kind="generation_event", date=DATE, hour=HOUR, provider="gen")
    df = rows.to_pandas()
    df["techniques_applied"] = df["techniques_applied"].map(
        lambda t: sorted({x for x in t if x is not None}) if t is not None else [])
    exploded = df.explode("techniques_applied").dropna(subset=["techniques_applied"])
    want = []
    for (technique, llm), g in exploded.groupby(["techniques_applied", "llm_provider"], dropna=False):
        ok = int((g["success"] == True).sum())  # noqa: E712
        want.append({"technique": technique, "llm_provider": None if pd.isna(llm) else llm, "uses": len(g),
                     "successes": ok, "success_rate": ok / len(g), "avg_latency_ms": g["latency_ms"].mean()})
    _compare(got, pd.DataFrame(want), ["technique", "llm_provider"])
    assert set(got.column("source").to_pylist()) == {"generation_event"}
    assert got.column("attack_success_rate").null_count == got.num_rows


def test_jailbreak_tests_give_attack_success_rate_per_test_type():
    rows = pa.table({
        "test_type": ["autodan", "autodan", "gptfuzz", "autodan"],
        "target_provider": ["openai", "openai", "openai", "anthropic"],
        "iterations": [10, 20, 5, 4],
        "successful_mutations": [2, 0, 5, None],
        "asr_rate": [0.2, 0.0, 1.0, None],
    })
    got = marts.technique_effectiveness(rows, kind="jailbreak_test", date=DATE, hour=HOUR, provider="jb")
    by = {(r["technique"], r["llm_provider"]): r for r in got.to_pylist()}
    assert by[("autodan", "openai")] | {} == by[("autodan", "openai")]
    assert (by[("autodan", "openai")]["uses"], by[("autodan", "openai")]["successes"]) == (2, 1)
    assert by[("autodan", "openai")]["attack_success_rate"] == pytest.approx(0.1)
    assert by[("autodan", "openai")]["iterations"] == 30 and by[("autodan", "openai")]["successful_mutations"] == 2
    assert by[("gptfuzz", "openai")]["success_rate"] == 1.0
    assert by[("autodan", "anthropic")]["attack_success_rate"] is None and by[("autodan", "anthropic")]["successes"] == 0
    assert got.column("avg_latency_ms").null_count == got.num_rows


def test_other_kinds_have_no_techniques():
    rows = pa.table({"suite": ["s"]})
    assert marts.technique_effectiveness(rows, kind="test_result", date=DATE, hour=HOUR, provider="t").num_rows == 0


@pytest.mark.parametrize("url, stripped", [
    ("https://user:secret@api.example.com:8443/v1/events?token=abc#frag", "https://api.example.com:8443/v1/events"),
    ("http://127.0.0.1:9900/events", "http://127.0.0.1:9900/events"),
    ("https://[::1]/x?api_key=1", "https://[::1]/x"),
    (None, None),
])
def test_base_urls_lose_their_credentials(url, stripped):
    assert marts.strip_credentials(url) == stripped


def test_provider_dimension_keeps_created_at_and_moves_updated_at_only_on_change():
    t0, t1, t2 = (datetime(2026, 1, 1, h, tzinfo=UTC) for h in (1, 2, 3))
    configured = [marts.ConfiguredProvider("gen", "generation_event", "https://u:p@h.example/x?k=1"),
                  marts.ConfiguredProvider("audit", "audit_event", None)]
    first = marts.provider_dimension(None, configured, {"gen": {"m1"}}, {"openai": {"m1"}, None: {"m9"}}, t0)
    rows = {(r["source"], r["provider_id"]): r for r in first.to_pylist()}
    assert set(rows) == {("vault", "gen"), ("vault", "audit"), ("llm", "openai")}
    assert rows[("vault", "gen")]["base_url"] == "https://h.example/x" and rows[("vault", "gen")]["models"] == ["m1"]
    again = marts.provider_dimension(first, configured, {"gen": {"m1"}}, {"openai": {"m1"}}, t1)
    assert again.equals(first)  # nothing new: nothing changes, not even updated_at
    grown = marts.provider_dimension(again, configured[:1], {"gen": {"m2"}}, {"openai": {"m2"}}, t2)
    rows = {(r["source"], r["provider_id"]): r for r in grown.to_pylist()}
    assert rows[("llm", "openai")]["models"] == ["m1", "m2"]
    assert rows[("llm", "openai")]["created_at"] == t0 and rows[("llm", "openai")]["updated_at"] == t2
    assert rows[("vault", "audit")]["enabled"] is False and rows[("vault", "audit")]["updated_at"] == t2
