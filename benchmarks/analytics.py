"""Benchmark: one hour's marts over 1M generation_events rows (issue 10, target < 5 s).

Builds the rows in a temporary Delta lake with the lake's own ``merge``, then times what each
mart asset does (read the hour x provider through QueryBuilder, aggregate, replace the mart's
hour x provider), and prints rows/s and the peak RSS.

    .venv/bin/python benchmarks/analytics.py [rows]
"""

import resource
import sys
import tempfile
import time
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from vault_pipeline.core import marts as core
from vault_pipeline.defs.analytics.marts import read_facts
from vault_pipeline.storage.lake import DeltaLake

DATE, HOUR, PROVIDER = "2026-01-01", "05", "gen_sim"


def rows(n: int) -> pa.Table:
    rng = np.random.default_rng(1)
    techniques = pa.ListArray.from_arrays(np.arange(0, 2 * n + 1, 2, dtype=np.int32),
                                          pa.array(rng.choice(["dan", "base64", "roleplay", "gcg"], 2 * n)))
    start = datetime(2026, 1, 1, 5, tzinfo=UTC)
    return pa.table({
        "log_id": pa.array([f"log_{i:032x}" for i in range(n)]), "provider": pa.array([PROVIDER] * n),
        "natural_id": pa.array([str(i) for i in range(n)]), "event_time": pa.array([start] * n, pa.timestamp("us", tz="UTC")),
        "checksum": pa.array(["sha256:0"] * n), "object_key": pa.array(["raw/x"] * n), "run_id": pa.array(["r"] * n),
        "date": pa.array([DATE] * n), "hour": pa.array([HOUR] * n),
        "llm_provider": pa.array(rng.choice(["openai", "anthropic", "google", "mistral"], n)),
        "model": pa.array(rng.choice(["m1", "m2", "m3"], n)),
        "latency_ms": pa.array(rng.lognormal(5, 1, n)), "success": pa.array(rng.random(n) < 0.9),
        "total_tokens": pa.array(rng.integers(0, 4000, n)), "tokens_used": pa.array(rng.integers(0, 4000, n)),
        "cost_usd": pa.array(rng.random(n) / 100), "techniques_applied": techniques,
    })


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        lake = DeltaLake(root)
        t = time.perf_counter()
        lake.merge("generation_events", rows(n))
        print(f"built {n:,} generation_events rows in {time.perf_counter() - t:.1f} s")
        timings = {}
        t0 = time.perf_counter()
        facts = read_facts(lake, "generation_event", PROVIDER, (DATE, HOUR))
        timings["read (QueryBuilder)"] = time.perf_counter() - t0
        for name, build, schema in (
            ("agg_provider_metrics", lambda: core.provider_metrics(facts, date=DATE, hour=HOUR, provider=PROVIDER),
             core.PROVIDER_METRICS_SCHEMA),
            ("agg_technique_effectiveness", lambda: core.technique_effectiveness(
                facts, kind="generation_event", date=DATE, hour=HOUR, provider=PROVIDER), core.TECHNIQUE_SCHEMA),
        ):
            t = time.perf_counter()
            out = build()
            lake.replace_partition(name, out, predicate_partitions={"date": DATE, "hour": HOUR, "provider": PROVIDER},
                                   schema=schema)
            timings[name] = time.perf_counter() - t
        t = time.perf_counter()
        seen = core.models_seen(facts, "llm_provider", "model")
        dim = core.provider_dimension(None, [core.ConfiguredProvider(PROVIDER, "generation_event", None)],
                                      {PROVIDER: set().union(*seen.values())}, seen, datetime.now(UTC))
        lake.replace_partition("dim_providers", dim, predicate_partitions={}, schema=core.DIM_PROVIDERS_SCHEMA,
                               partition_by=())
        timings["dim_providers"] = time.perf_counter() - t
        total = time.perf_counter() - t0
        for name, seconds in timings.items():
            print(f"{name:30s} {seconds:6.2f} s")
        print(f"{'total (one read, three marts)':30s} {total:6.2f} s  {n / total:,.0f} rows/s")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
