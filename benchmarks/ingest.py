"""Ingestion benchmark: simulator records through the whole hourly graph on the embedded default.

For each size, a fresh VAULT_HOME and a fresh process (so peak RSS is that run's own) run one
hour x provider partition of the hourly job in-process, exactly as ``make demo`` does, and
report records/s and MB/s for the ingestion path (landing + indexing + Delta) and for the
whole graph (plus GX input/output checks, integrity diff and artifact index), with per-step
seconds and peak RSS.

    python benchmarks/ingest.py                 # 100k, 1M and 5M records
    python benchmarks/ingest.py --records 200000 --kind generation_event

Per step it prints wall seconds, CPU seconds (this process and the worker processes it waited
for, e.g. promotion's) and the peak RSS of the run's process and its workers while the step ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from calibration import cpu_loop_seconds

INGEST_STEPS = ("raw_landing", "record_index", "normalised_records")


class RssSampler(threading.Thread):
    """Resident set size and CPU time every 50 ms, so each step's own peak and CPU can be told apart.

    RSS is this process's plus its worker processes' (promotion's), summed: what
    the run asks of the machine. Shared library pages count once per process, so it errs high."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, int]] = []
        self.cpu: list[tuple[float, float]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.05):
            self.samples.append((time.time(), tree_rss(os.getpid())))
            times = os.times()  # children: worker processes once waited for
            self.cpu.append((time.time(), times.user + times.system + times.children_user + times.children_system))

    def cpu_between(self, start: float, end: float) -> float:
        before = [cpu for at, cpu in self.cpu if at <= start]
        after = [cpu for at, cpu in self.cpu if at >= end]
        first = before[-1] if before else (self.cpu[0][1] if self.cpu else 0.0)
        last = after[0] if after else (self.cpu[-1][1] if self.cpu else 0.0)
        return round(max(last - first, 0.0), 1)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def rss_at(self, moment: float) -> int:
        after = [rss for at, rss in self.samples if at >= moment]
        return round(after[0] / 2**20) if after else 0

    def peak_between(self, start: float, end: float) -> int:
        inside = [rss for at, rss in self.samples if start <= at <= end]
        return round(max(inside) / 2**20) if inside else 0


def tree_rss(pid: int) -> int:
    """Bytes resident in ``pid`` and every process below it (0 for one that has just gone).

    A child that still runs its parent's command line has not exec'd yet (how a spawned worker
    starts), and owns no memory of its own: a fork shares its parent's pages, and a vfork (what
    Python's spawn uses where it can) shares its parent's very address space, so even its
    "private" pages are the parent's. Counted whole, or by private pages, such a child doubled
    the run's ~720 MB at the moment promotion's workers started (1.47 and 1.52 GB "peaks" in
    1M runs). The vault never forks a worker that runs without exec, so it is counted as 0."""
    page = os.sysconf("SC_PAGE_SIZE")
    total, pending = 0, [(pid, None)]
    while pending:
        current, parent_command = pending.pop()
        try:
            with open(f"/proc/{current}/cmdline", "rb") as handle:
                command = handle.read()
            if command != parent_command:
                with open(f"/proc/{current}/statm") as statm:
                    total += int(statm.read().split()[1]) * page
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending += [(int(child), command) for child in children.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run_one(records: int, kind: str, page_size: int, home: Path) -> dict:
    import dagster as dg
    import yaml

    os.environ["VAULT_HOME"] = str(home)
    os.environ["VAULT_OTEL_EXPORTER"] = "none"
    config = home / "vault.yaml"
    config.write_text(yaml.safe_dump({"providers": {"bench": {
        "type": "simulator", "kind": kind, "records_per_hour": records, "seed": 1,
        "lookback_hours": 0, "page_size": page_size, "invalid_fraction": 0.001}}}))
    from vault_pipeline.definitions import build_definitions
    from vault_pipeline.defs.resources import VaultResource
    from vault_pipeline.defs.run_results import asset_metadata
    from vault_pipeline.defs.schedules import HOURLY_JOB
    from vault_pipeline.providers.config import load_config

    definitions = build_definitions(load_config(config), {"vault": VaultResource(home=str(home), config_path=str(config))})
    job = definitions.resolve_job_def(HOURLY_JOB)
    instance = dg.DagsterInstance.ephemeral()
    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    result = job.execute_in_process(
        partition_key=dg.MultiPartitionKey({"hour": "2026-01-01-00:00", "provider": "bench"}),
        instance=instance, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    total = time.perf_counter() - started
    sampler.stop()
    steps, step_rss, step_cpu, step_start_rss, began = {}, {}, {}, {}, {}
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            began[event.step_key] = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS":
            steps[event.step_key] = event.event_specific_data.duration_ms / 1000
            step_rss[event.step_key] = sampler.peak_between(began.get(event.step_key, 0), entry.timestamp)
            step_start_rss[event.step_key] = sampler.rss_at(began.get(event.step_key, 0))
            step_cpu[event.step_key] = sampler.cpu_between(began.get(event.step_key, 0), entry.timestamp)
    landing = asset_metadata(result, "raw_landing") or {}
    landed, bytes_ = landing.get("records", 0), landing.get("bytes", 0)
    ingest = sum(steps.get(step, 0) for step in INGEST_STEPS)
    return {
        "records": landed,
        "bytes": bytes_,
        "success": result.success,
        "ingest_seconds": round(ingest, 2),
        "ingest_records_per_s": round(landed / ingest) if ingest else None,
        "ingest_mb_per_s": round(bytes_ / 1e6 / ingest, 1) if ingest else None,
        "graph_seconds": round(total, 2),
        "graph_records_per_s": round(landed / total),
        "steps": {k: round(v, 2) for k, v in steps.items()},
        "step_peak_rss_mb": step_rss,
        "step_start_rss_mb": step_start_rss,
        "step_cpu_s": step_cpu,
        # the sampled peak of the process tree, and never below this process's own high-water mark
        "peak_rss_mb": max(sampler.peak_between(0, float("inf")),
                           round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, action="append", help="records in the hour (repeatable)")
    parser.add_argument("--kind", default="audit_event", choices=["audit_event", "generation_event", "test_result"])
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = args.records or [100_000, 1_000_000, 5_000_000]
    if args.child:
        print(json.dumps(run_one(sizes[0], args.kind, args.page_size, Path(args.home))))
        return 0
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, kind {args.kind}; "
          f"CPU loop {cpu_loop_seconds():.2f} s (see calibration.py)")
    for size in sizes:
        # A fresh VAULT_HOME per size, removed after (a 5M hour leaves 16 GB behind).
        home = Path(tempfile.mkdtemp(prefix="vault-bench-"))
        try:
            child = subprocess.run(
                [sys.executable, __file__, "--child", "--records", str(size), "--kind", args.kind,
                 "--page-size", str(args.page_size), "--home", str(home)],
                capture_output=True, text=True, check=False,
            )
        finally:
            shutil.rmtree(home, ignore_errors=True)
        if child.returncode != 0:
            print(child.stderr[-3000:])
            return 1
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        print(
            f"{figures['records']:>9} records {figures['bytes'] / 1e6:8.1f} MB | ingest (landing+index+delta) "
            f"{figures['ingest_seconds']:6.1f}s {figures['ingest_records_per_s']:>7} rec/s {figures['ingest_mb_per_s']:6.1f} MB/s | "
            f"whole graph {figures['graph_seconds']:6.1f}s {figures['graph_records_per_s']:>7} rec/s | peak RSS {figures['peak_rss_mb']} MB"
        )
        print("    steps: " + ", ".join(f"{k}={v}s" for k, v in figures["steps"].items()))
        print("    step CPU s: " + ", ".join(f"{k}={v}" for k, v in figures["step_cpu_s"].items()))
        print("    step peak RSS MB: " + ", ".join(f"{k}={v}" for k, v in figures["step_peak_rss_mb"].items()))
        print("    RSS MB as each step began: " + ", ".join(f"{k}={v}" for k, v in figures["step_start_rss_mb"].items()))
        print(f"    CPU loop after: {cpu_loop_seconds():.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
