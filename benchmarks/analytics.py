"""Benchmarks of the analytics half: one hour's marts, and the analytics API over a month of events.

``marts`` (the default): one hour's marts over 1M generation_events rows (target < 5 s). Builds
the rows in a temporary Delta lake with the lake's own ``merge``, then times what each mart
asset does (read the hour x provider through QueryBuilder, aggregate, replace the mart's hour x
provider), and prints rows/s and the peak RSS.

``api``: 10M generation events over 30 days x 24 hours x 4 LLM providers, loaded by the lake's
own ``merge`` as the hourly graph does (one load per pipeline provider and day, two files per
hour partition), then ``/api/v1/analytics/metrics|providers|timeseries`` over 7 and 30 days
through the real FastAPI app (in-process ASGI client). *Cold*: a fresh result cache for each
request (DataFusion runs the query; the OS page cache holds the files after the first run).
*First*: the very first request of a fresh process. *Warm*: the cached answer for the same
table version. Then z-order of one date partition in a child process, with its peak RSS.

    .venv/bin/python benchmarks/analytics.py [marts] [rows]
    .venv/bin/python benchmarks/analytics.py api [events] [--lake DIR]
"""

import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

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


LLM_PROVIDERS = np.array(["openai", "anthropic", "google", "mistral"])
TECHNIQUES = np.array(["dan", "base64", "roleplay", "gcg", "prefix_injection"])
PIPELINE_PROVIDERS = ("gen_east", "gen_west")
DAYS = 30
FIRST_DAY = datetime(2026, 10, 1, tzinfo=UTC)


def month_rows(day: int, provider: str, n: int, rng: np.random.Generator) -> pa.Table:
    """One pipeline provider's day of generation events, in the fact table's schema."""
    from vault_pipeline.core.kinds import fact_schema

    start = FIRST_DAY + timedelta(days=day)
    hours = np.sort(rng.integers(0, 24, n))
    seconds = hours * 3600 + rng.integers(0, 3600, n)
    times = np.datetime64(start.replace(tzinfo=None), "us") + seconds.astype("timedelta64[s]")
    serial = np.arange(n) + (day * len(PIPELINE_PROVIDERS) + PIPELINE_PROVIDERS.index(provider)) * n
    ids = np.char.add("log_", np.char.zfill(serial.astype(str), 32))
    offsets = np.concatenate([[0], np.cumsum(rng.integers(0, 3, n))]).astype(np.int32)
    llm = LLM_PROVIDERS[rng.integers(0, len(LLM_PROVIDERS), n)]
    latency = rng.lognormal(5.5, 0.8, n) * np.where(llm == "google", 1.6, 1.0)
    return pa.table({
        "log_id": ids, "provider": np.full(n, provider), "natural_id": serial.astype(str),
        "event_time": pa.array(times.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
        "checksum": np.char.add("sha256:", ids), "object_key": np.full(n, f"raw/{provider}/page.json"),
        "run_id": np.full(n, "bench"), "date": np.full(n, start.strftime("%Y-%m-%d")),
        "hour": np.char.zfill(hours.astype(str), 2), "llm_provider": llm,
        "model": np.array(["m-small", "m-large", "m-code"])[rng.integers(0, 3, n)], "latency_ms": latency,
        "success": rng.random(n) < np.where(llm == "mistral", 0.85, 0.95),
        "prompt_tokens": rng.integers(10, 900, n), "completion_tokens": rng.integers(10, 900, n),
        "total_tokens": rng.integers(20, 1800, n), "cost_usd": rng.random(n) / 50,
        "error_message": pa.nulls(n, pa.string()), "prompt_length": rng.integers(10, 4000, n),
        "response_length": rng.integers(10, 4000, n), "error_code": pa.nulls(n, pa.string()),
        "techniques_applied": pa.ListArray.from_arrays(offsets, pa.array(TECHNIQUES[rng.integers(0, 5, int(offsets[-1]))])),
        "tokens_used": rng.integers(20, 1800, n),
    }).cast(fact_schema("generation_event"))


def build_month(root: str, events: int) -> None:
    lake = DeltaLake(root)
    rng = np.random.default_rng(7)
    per_load = events // (DAYS * len(PIPELINE_PROVIDERS))
    started = time.perf_counter()
    for day in range(DAYS):
        for provider in PIPELINE_PROVIDERS:
            lake.merge("generation_events", month_rows(day, provider, per_load, rng))
    seconds = time.perf_counter() - started
    rows = lake.count("generation_events")
    print(f"loaded {rows:,} generation events (30 days x 24 h x {len(LLM_PROVIDERS)} LLM providers, "
          f"{DAYS * len(PIPELINE_PROVIDERS)} loads) in {seconds:.1f} s")


def _percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, q))


def api_benchmark(root: str, repeats: int = 20) -> None:
    from fastapi.testclient import TestClient

    from vault_pipeline.api.app import VaultApi, create_app
    from vault_pipeline.api.auth import parse_api_keys
    from vault_pipeline.api.jobs import JobService
    from vault_pipeline.api.runs import Runner
    from vault_pipeline.storage.local_store import LocalObjectStore
    from vault_pipeline.storage.sqlite_catalog import SqliteCatalog

    class NoRuns(Runner):
        def launch(self, **_):
            raise RuntimeError("no ingestion in this benchmark")

        def runs_for_job(self, job_id):
            return []

    key = "bench-reader-key-0123456789"
    with tempfile.TemporaryDirectory() as home:
        api = VaultApi(catalog=SqliteCatalog(f"{home}/catalog.db"), store=LocalObjectStore(f"{home}/store"),
                       jobs=JobService(NoRuns()), keys=parse_api_keys(f"bench:{key}:read"), config=lambda: None,
                       lake=DeltaLake(root))
        app = create_app(api)
        client = TestClient(app)
        end = FIRST_DAY + timedelta(days=DAYS)
        queries = {
            "metrics": ("metrics", {}),
            "providers": ("providers", {}),
            "hourly timeseries (p95 latency)": ("timeseries", {"metric": "latency_ms", "aggregation": "p95",
                                                               "interval": "hour"}),
        }

        def ask(path: str, params: dict) -> float:
            started = time.perf_counter()
            answer = client.get(f"/api/v1/analytics/{path}", params=params, headers={"X-API-Key": key})
            took = time.perf_counter() - started
            assert answer.status_code == 200, answer.text
            return took

        print(f"{'query':34s} {'days':>4s} {'first':>8s} {'cold p50':>9s} {'cold p95':>9s} {'warm p50':>9s} "
              f"{'warm p95':>9s}")
        try:
            for days in (7, 30):
                window = {"start_date": (end - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                          "end_date": end.strftime("%Y-%m-%dT%H:%M:%SZ")}
                for name, (path, extra) in queries.items():
                    params = window | extra
                    cold = []
                    for _ in range(repeats):
                        app.state.analytics_cache.__init__()  # empty: DataFusion answers
                        cold.append(ask(path, params))
                    warm = [ask(path, params) for _ in range(repeats)]
                    print(f"{name:34s} {days:4d} {cold[0] * 1000:6.0f}ms {_percentile_ms(cold, 50):7.0f}ms "
                          f"{_percentile_ms(cold, 95):7.0f}ms {_percentile_ms(warm, 50):7.1f}ms "
                          f"{_percentile_ms(warm, 95):7.1f}ms")
        finally:
            api.jobs.close()
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def zorder_day(root: str) -> None:
    """z-order one date partition (the maintenance job's unit of work) in a child process."""
    import subprocess

    day = (FIRST_DAY + timedelta(days=DAYS // 2)).strftime("%Y-%m-%d")
    code = (
        "import time\n"
        "from vault_pipeline.storage.lake import DeltaLake\n"
        "t = time.perf_counter()\n"
        f"out = DeltaLake({root!r}).optimize('generation_events', zorder=['llm_provider', 'model'], dates=[{day!r}])\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
        "hwm = next(int(l.split()[1]) // 1024 for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
        "print(f\"{time.perf_counter() - t:.1f} {out['numFilesRemoved']} {out['numFilesAdded']} "
        "{out['bytesRemoved']} {hwm}\")\n"
    )
    seconds, removed, added, size, rss = subprocess.run([sys.executable, "-c", code], check=True,
                                                        capture_output=True, text=True).stdout.split()
    print(f"z-order of date partition {day} (llm_provider, model): {seconds} s, {removed} files "
          f"({int(size) / 1e6:.0f} MB) -> {added}; peak RSS of the process {rss} MB")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "api":
        events = int(args[1]) if len(args) > 1 and args[1].isdigit() else 10_000_000
        lake_dir = args[args.index("--lake") + 1] if "--lake" in args else None
        with tempfile.TemporaryDirectory() as scratch:
            root = lake_dir or scratch
            if not DeltaLake(root).exists("generation_events"):
                build_month(root, events)
            api_benchmark(root)
            zorder_day(root)
    else:
        if args and args[0] == "marts":
            args = args[1:]
        main(int(args[0]) if args else 1_000_000)
