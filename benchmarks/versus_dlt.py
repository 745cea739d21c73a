"""The comparison a user makes: one REST hour loaded by dlt into Delta, and by the vault's whole graph.

One loopback REST provider (a threaded HTTP server on 127.0.0.1) serves one hour of RECORDS
CloudTrail-like audit events (the simulator's, ~860 bytes each) in pages of PAGE records with a
cursor (``next``), the way a real audit API pages. Then, in one run:

- **dlt** (the ``bench`` extra): its ``rest_api`` source with a cursor paginator reads the same
  pages and its ``filesystem`` destination writes them as a Delta table (``table_format="delta"``,
  append, dlt's defaults: schema inference, normalisation into typed columns);
- **the vault**: a ``rest`` provider on the same URL, and the whole hourly graph for that hour x
  provider in process on the embedded default (landing byte-exact, GX input check, index, Delta
  merge, GX output check, integrity diff, ledger, promotion with PII masking, artifact index).

Each side runs in a fresh process (so its peak RSS is its own) against the same server, and the
server's bytes are identical for both. Printed: seconds, records/s and peak RSS of each, and the
ratio of the vault's rate to dlt's.

    .venv/bin/python benchmarks/versus_dlt.py [--records 300000] [--page 5000]
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibration import cpu_loop_seconds  # noqa: E402 - beside this file

HOUR = "2026-01-01-05:00"
SINCE, UNTIL = "2026-01-01T05:00:00Z", "2026-01-01T06:00:00Z"


def pages_of(records: int, page: int) -> list[bytes]:
    """The hour's records as cursor pages: ``{"records": [...], "next": "<n>" | null}``."""
    from vault_pipeline.core.windows import HourWindow
    from vault_pipeline.providers.config import parse_config
    from vault_pipeline.providers.simulator import SimulatorProvider

    config = parse_config({"providers": {"sim": {"type": "simulator", "kind": "audit_event", "records_per_hour": records,
                                                  "seed": 1, "lookback_hours": 0, "page_size": page,
                                                  "invalid_fraction": 0.0}}}).provider("sim")
    window = HourWindow.for_hour_key(HOUR)
    # dlt (orjson) cannot load integers beyond 64 bits, which the simulator deliberately sends
    # now and then; both sides get the same records with those as strings.
    spans = [_within_int64(span) for p in SimulatorProvider(config).fetch_pages(window) for span in p.framed.slices(p.body)]
    bodies = []
    for number, first in enumerate(range(0, len(spans), page)):
        following = json.dumps(str(number + 1)) if first + page < len(spans) else "null"
        bodies.append(b'{"records": [' + b",".join(spans[first:first + page]) + b'], "next": ' + following.encode()
                      + b"}")
    return bodies


def _within_int64(span: bytes) -> bytes:
    if not any(len(token) > 18 for token in span.replace(b",", b" ").replace(b"}", b" ").replace(b"]", b" ").split()):
        return span

    def tame(value):
        if isinstance(value, dict):
            return {k: tame(v) for k, v in value.items()}
        if isinstance(value, list):
            return [tame(v) for v in value]
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            return str(value)
        return value

    return json.dumps(tame(json.loads(span)), ensure_ascii=False, separators=(", ", ": ")).encode()


def serve(bodies: list[bytes]) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            query = parse_qs(urlsplit(self.path).query)
            cursor = int(query.get("cursor", ["0"])[0])
            body = bodies[cursor] if 0 <= cursor < len(bodies) else b'{"records": [], "next": null}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/events"


def run_dlt(url: str, root: Path) -> dict:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source({
        "client": {"base_url": url.rsplit("/", 1)[0] + "/",
                   "paginator": {"type": "cursor", "cursor_path": "next", "cursor_param": "cursor"}},
        "resources": [{"name": "audit_events", "endpoint": {
            "path": "events", "params": {"since": SINCE, "until": UNTIL}, "data_selector": "records"}}],
    })
    pipeline = dlt.pipeline(pipeline_name="versus_vault", pipelines_dir=str(root / "dlt-pipelines"),
                            destination=dlt.destinations.filesystem(bucket_url=(root / "dlt-lake").as_uri()),
                            dataset_name="bench", progress="log" if os.environ.get("VAULT_DEBUG") else None)
    started = time.perf_counter()
    info = pipeline.run(source, table_format="delta")
    took = time.perf_counter() - started
    rows = pipeline.last_trace.last_normalize_info.row_counts.get("audit_events", 0)
    if info.has_failed_jobs:
        raise SystemExit(f"dlt failed: {info}")
    return {"seconds": took, "records": rows}


def run_vault(url: str, root: Path) -> dict:
    import dagster as dg
    import yaml

    os.environ.update(VAULT_HOME=str(root / "vault"), VAULT_OTEL_EXPORTER="none")
    config = root / "vault.yaml"
    config.write_text(yaml.safe_dump({"providers": {"bench": {
        "type": "rest", "kind": "audit_event", "url": url, "window_params": {"start": "since", "end": "until"},
        "records": "records", "id_field": "eventID", "time_field": "eventTime", "lookback_hours": 0,
        "pagination": {"type": "cursor", "field": "next", "param": "cursor"}}}}))
    from vault_pipeline.definitions import build_definitions
    from vault_pipeline.defs.resources import VaultResource
    from vault_pipeline.defs.run_results import asset_metadata
    from vault_pipeline.defs.schedules import HOURLY_JOB
    from vault_pipeline.providers.config import load_config

    definitions = build_definitions(load_config(config), {"vault": VaultResource(home=str(root / "vault"),
                                                                                   config_path=str(config))})
    job = definitions.resolve_job_def(HOURLY_JOB)
    instance = dg.DagsterInstance.ephemeral()
    started = time.perf_counter()
    result = job.execute_in_process(partition_key=dg.MultiPartitionKey({"hour": HOUR, "provider": "bench"}),
                                    instance=instance, raise_on_error=False,
                                    run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    took = time.perf_counter() - started
    if not result.success:
        raise SystemExit("the vault's hourly graph failed")
    steps = {e.step_key: e.event_specific_data.duration_ms / 1000 for e in result.all_events
             if e.event_type_value == "STEP_SUCCESS"}
    return {"seconds": took, "records": (asset_metadata(result, "record_index") or {}).get("records", 0),
            "steps": {k: round(v, 2) for k, v in sorted(steps.items(), key=lambda item: -item[1])[:5]}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--page", type=int, default=5000)
    parser.add_argument("--side", choices=["dlt", "vault"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # a child: one side, its figures as JSON on the last line
        figures = (run_dlt if args.side == "dlt" else run_vault)(args.url, Path(args.root))
        figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(figures))
        return 0
    bodies = pages_of(args.records, args.page)
    size = sum(map(len, bodies))
    server, url = serve(bodies)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"CPU loop {cpu_loop_seconds():.2f} s (see calibration.py); "
          f"{args.records} records in {len(bodies)} pages of {args.page} ({size / 1e6:.1f} MB) from {url}")
    results = {}
    try:
        for side in ("dlt", "vault"):
            root = Path(tempfile.mkdtemp(prefix=f"versus-{side}-"))
            try:
                child = subprocess.run([sys.executable, __file__, "--side", side, "--url", url, "--root", str(root)],
                                       capture_output=True, text=True, check=False)
            finally:
                shutil.rmtree(root, ignore_errors=True)
            if child.returncode != 0:
                print(child.stdout[-2000:], child.stderr[-3000:])
                return 1
            figures = results[side] = json.loads(child.stdout.strip().splitlines()[-1])
            rate = figures["records"] / figures["seconds"]
            print(f"{side:>5}: {figures['records']} records in {figures['seconds']:.1f} s: {rate:,.0f} records/s, "
                  f"{size / 1e6 / figures['seconds']:.1f} MB/s; peak RSS {figures['peak_rss_mb']} MB"
                  + (f"; slowest steps {figures['steps']}" if "steps" in figures else ""))
    finally:
        server.shutdown()
    ratio = (results["vault"]["records"] / results["vault"]["seconds"]) / (results["dlt"]["records"] / results["dlt"]["seconds"])
    print(f"the vault's whole graph / dlt's load: {ratio:.2f}x (target >= 2x, >= 1x first); "
          f"CPU loop after: {cpu_loop_seconds():.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
