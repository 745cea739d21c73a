"""`vault verify` benchmark: how close re-proving a partition comes to the machine's SHA-256 speed.

Builds a fresh vault (temporary VAULT_HOME, embedded default: local objects + SQLite catalog)
holding one simulator partition of N records, landed through the hourly graph up to and
including ``ledger_entry`` (promotion is skipped: verify does not need it and it dominates
build time), then runs ``vault verify`` the way the CLI does, each time in a fresh child process
so peak RSS is verify's own (worker processes, if verify starts any, are reported apart, with
the CPU seconds of all of them). Verify is repeated (``--repeat``, default 3) on the same vault and
the best and median are reported, because other work may share the machine. A single-core
``hashlib.sha256`` baseline (256 MB in 4 MB chunks) is measured alongside for comparison.

    python benchmarks/verify.py                       # 1M records
    python benchmarks/verify.py --records 200000 --repeat 5
    python benchmarks/verify.py --home /tmp/vault-bench-x   # reuse a vault built earlier (--keep)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOUR = "2026-01-01-00:00"
PROVIDER = "bench"
# Everything ledger_entry needs, nothing after it (golden_promotion, artifact_index).
UP_TO_LEDGER = ("raw_landing", "record_index", "normalised_records", "integrity_report", "ledger_entry")


def build(home: Path, records: int, kind: str, page_size: int) -> dict:
    import dagster as dg
    import yaml

    os.environ["VAULT_HOME"] = str(home)
    os.environ["VAULT_OTEL_EXPORTER"] = "none"
    config = home / "vault.yaml"
    config.write_text(yaml.safe_dump({"providers": {PROVIDER: {
        "type": "simulator", "kind": kind, "records_per_hour": records, "seed": 1,
        "lookback_hours": 0, "page_size": page_size, "invalid_fraction": 0.001}}}))
    from vault_pipeline.definitions import build_definitions
    from vault_pipeline.defs.resources import VaultResource
    from vault_pipeline.defs.schedules import HOURLY_JOB
    from vault_pipeline.providers.config import load_config

    definitions = build_definitions(load_config(config), {"vault": VaultResource(home=str(home), config_path=str(config))})
    job = definitions.resolve_job_def(HOURLY_JOB)
    started = time.perf_counter()
    result = job.execute_in_process(
        partition_key=dg.MultiPartitionKey({"hour": HOUR, "provider": PROVIDER}),
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        asset_selection=[dg.AssetKey(name) for name in UP_TO_LEDGER],
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    return {"success": result.success, "build_seconds": round(time.perf_counter() - started, 1), "home": str(home)}


def verify(home: Path, workers: int | None) -> dict:
    """What ``vault verify`` does (cli.run_verify), with the report's figures instead of its text."""
    os.environ["VAULT_HOME"] = str(home)
    os.environ["VAULT_CONFIG"] = str(home / "vault.yaml")
    os.environ["VAULT_ENV"] = "local"
    from vault_pipeline.defs.integrity.verification import verify_vault
    from vault_pipeline.defs.resources import resources_for_env

    vault = resources_for_env()["vault"]
    options = {} if workers is None else {"workers": workers}
    store, catalog, verifier = vault.object_store(), vault.catalog(), vault.ledger_signer().verifier()
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    kinds = {name: provider.kind for name, provider in vault.vault_config().providers.items()}
    report = verify_vault(store=store, catalog=catalog, verifier=verifier, lake=vault.lake(), kinds=kinds, **options)
    seconds = time.perf_counter() - started
    return {
        "clean": report.clean, "findings": len(report.findings), "records": report.records,
        "objects": report.objects, "lake_rows": report.lake_rows, "bytes_hashed": report.bytes_hashed, "seconds": seconds,
        # CPU of this process and of the worker processes verify started (reaped when it returns)
        "cpu_seconds": _cpu_seconds() - cpu_before,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }


def _cpu_seconds() -> float:
    return sum(usage.ru_utime + usage.ru_stime
               for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))


def sha256_baseline(total: int = 256 << 20, chunk: int = 4 << 20) -> float:
    """Single-core hashlib.sha256 MB/s over ``total`` bytes fed in ``chunk``-sized updates."""
    data = os.urandom(chunk)
    best = 0.0
    for _ in range(3):
        h = hashlib.sha256()
        started = time.perf_counter()
        for _ in range(total // chunk):
            h.update(data)
        h.digest()
        best = max(best, total / 1e6 / (time.perf_counter() - started))
    return best


def _child(*args: str) -> dict:
    child = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if child.returncode != 0:
        raise SystemExit(child.stderr[-3000:])
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000, help="records in the partition (default 1M)")
    parser.add_argument("--kind", default="audit_event", choices=["audit_event", "generation_event", "test_result"])
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3, help="verify runs on the same vault (default 3)")
    parser.add_argument("--workers", type=int, default=None, help="passed to verify_vault (default: its own)")
    parser.add_argument("--home", help="verify this already built vault instead of building one")
    parser.add_argument("--keep", action="store_true", help="keep the built vault (its path is printed)")
    parser.add_argument("--build-child", help=argparse.SUPPRESS)
    parser.add_argument("--verify-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_child:
        print(json.dumps(build(Path(args.build_child), args.records, args.kind, args.page_size)))
        return 0
    if args.verify_child:
        print(json.dumps(verify(Path(args.verify_child), args.workers)))
        return 0

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.python_implementation()}; OpenSSL {__import__('ssl').OPENSSL_VERSION}")
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="vault-verify-bench-"))
    try:
        if not args.home:
            built = _child("--build-child", str(home), "--records", str(args.records), "--kind", args.kind,
                           "--page-size", str(args.page_size))
            if not built["success"]:
                print("building the vault failed")
                return 1
            print(f"built {args.records} {args.kind} records up to ledger_entry in {built['build_seconds']}s: {home}")
        runs = []
        for _ in range(args.repeat):
            runs.append(_child("--verify-child", str(home),
                               *(["--workers", str(args.workers)] if args.workers is not None else [])))
        baseline = sha256_baseline()
        first = runs[0]
        if not all(r["clean"] for r in runs):
            print(f"verify reported {first['findings']} findings on an untouched vault")
            return 1
        seconds = sorted(r["seconds"] for r in runs)
        best, median = seconds[0], statistics.median(seconds)
        mb = first["bytes_hashed"] / 1e6
        print(f"{first['records']} records, {first['objects']} objects, {mb:.1f} MB re-hashed per verify")
        for label, s in (("best", best), ("median", median)):
            print(f"  {label:<6} {s:6.2f}s  {mb / s:7.1f} MB/s  {first['records'] / s:>10.0f} records/s")
        listing = ", ".join(f"{r['seconds']:.2f}s (cpu {r['cpu_seconds']:.2f}s)" for r in runs)
        print(f"  runs: {listing}")
        print(f"  peak RSS {max(r['peak_rss_mb'] for r in runs)} MB in the verifying process (imports included), "
              f"{max(r['worker_peak_rss_mb'] for r in runs)} MB per worker process")
        print(f"hashlib.sha256 single core baseline: {baseline:.0f} MB/s "
              f"(verify best = {mb / best / baseline:.2f}x one core)")
    finally:
        if not args.home and not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
