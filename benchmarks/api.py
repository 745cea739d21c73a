"""API benchmark: log search and verified raw reads over 1M catalogued logs, on loopback.

Builds an embedded-default vault (local object store + SQLite catalog) holding N records
(default 1,000,000) in 1,000-record pages, serves the real FastAPI app with uvicorn on
127.0.0.1 in a subprocess, and measures from this process over HTTP:
``GET /v1/logs?limit=50`` p50/p99 at offset 0 and at offset 90 % of N, and ``/raw`` requests/s
with 4 concurrent clients. No jobs are submitted (the job runner is a stub that refuses).

    python benchmarks/api.py [--records 1000000] [--requests 400]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

KEY = "bench-admin-key-0123456789"


def populate(home: Path, records: int) -> None:
    from vault_pipeline.core.checksums import checksum
    from vault_pipeline.core.identity import log_id_for
    from vault_pipeline.storage.catalog import RecordEntry
    from vault_pipeline.storage.local_store import LocalObjectStore
    from vault_pipeline.storage.sqlite_catalog import SqliteCatalog

    store = LocalObjectStore(home / "objects")
    catalog = SqliteCatalog(home / "catalog.db")
    per_page = 1000
    for page in range(0, records, per_page):
        pieces = [
            json.dumps({"id": f"r{n}", "t": f"2026-01-01T{(n // 3600) % 24:02d}:{(n // 60) % 60:02d}:{n % 60:02d}Z", "v": n}).encode()
            for n in range(page, min(records, page + per_page))
        ]
        body = b"[" + b",".join(pieces) + b"]"
        key = f"raw/bench/2026/01/01/00/{hashlib.sha256(body).hexdigest()}.json"
        store.put(key, body)
        entries, offset = [], 1
        for n, piece in zip(range(page, page + len(pieces)), pieces, strict=True):
            day, second = divmod(n, 86_400)
            stamp = f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}T{second // 3600:02d}:{(second // 60) % 60:02d}:{second % 60:02d}.000000Z"
            entries.append(RecordEntry(log_id_for("bench", f"r{n}"), "bench", "2026-01-01-00:00|bench", f"r{n}", key,
                                       offset, len(piece), checksum(piece), stamp, "bench-run"))
            offset += len(piece) + 1
        catalog.upsert_records(entries)
    catalog.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVER = """
import sys, uvicorn
from pathlib import Path
from vault_pipeline.api.app import VaultApi, create_app
from vault_pipeline.api.auth import parse_api_keys
from vault_pipeline.api.jobs import JobService
from vault_pipeline.api.runs import Runner
from vault_pipeline.providers.config import parse_config
from vault_pipeline.storage.local_store import LocalObjectStore
from vault_pipeline.storage.sqlite_catalog import SqliteCatalog

class NoRuns(Runner):
    def launch(self, **_): raise RuntimeError("benchmark: no jobs")
    def runs_for_job(self, job_id): return []

home = Path(sys.argv[1])
config = parse_config({"providers": {"bench": {"type": "simulator", "kind": "audit_event"}}})
api = VaultApi(catalog=SqliteCatalog(home / "catalog.db"), store=LocalObjectStore(home / "objects"),
               jobs=JobService(NoRuns()), keys=parse_api_keys("bench:%s:admin"), config=lambda: config)
uvicorn.run(create_app(api), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="vault-api-bench-"))
    started = time.perf_counter()
    populate(home, args.records)
    print(f"populated {args.records} logs in {time.perf_counter() - started:.1f}s ({home})")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER % KEY, str(home), str(port)], env=os.environ.copy())
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=30) as client:
            for _ in range(300):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            for offset in (0, int(args.records * 0.9)):
                latencies = []
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    response = client.get("/v1/logs", params={"limit": 50, "offset": offset})
                    latencies.append((time.perf_counter() - t0) * 1000)
                    assert response.status_code == 200 and len(response.json()["data"]) == 50
                print(f"GET /v1/logs limit=50 offset={offset:>7}: p50 {statistics.median(latencies):6.2f} ms  "
                      f"p99 {percentile(latencies, 0.99):6.2f} ms")
            ids = [item["id"] for item in client.get("/v1/logs", params={"limit": 1000, "offset": args.records // 2}).json()["data"]]
        rng = random.Random(1)

        def fetch(n: int) -> None:
            with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=30) as worker:
                for _ in range(n):
                    response = worker.get(f"/v1/logs/{rng.choice(ids)}/raw")
                    assert response.status_code == 200 and response.headers["X-Vault-Checksum"].startswith("sha256:")

        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(fetch, [args.requests // 4] * 4))
        elapsed = time.perf_counter() - t0
        print(f"GET /v1/logs/{{id}}/raw, 4 clients: {args.requests / elapsed:.0f} requests/s")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
