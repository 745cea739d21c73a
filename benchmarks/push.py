"""Benchmark of pushed test runs: reading JUnit at the door, and a pushed hour through the whole graph.

1. The door: ``PushService.accept`` on generated JUnit reports (``fixtures/junit_files.
   generated_report``: Surefire-shaped, 100 cases a suite, about 5 % failures and 1 % errors with
   stack traces, 3 % skipped, output and unicode names),
   timed per report: parse with expat's byte positions, checks, the inbox writes. Cases/s and MB/s.
2. The graph: REPORTS reports of CASES cases each pushed into one hour of a push provider, then
   that hour x provider run of the whole hourly graph (landing, validation, index, Delta,
   integrity, ledger, promotion, artifacts) in process on the embedded default; records/s and
   the process's peak RSS. Each case's record is its ``<testcase>`` element's exact bytes.

    .venv/bin/python benchmarks/push.py [--cases 10000] [--reports 10]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="test cases per report")
    parser.add_argument("--reports", type=int, default=10, help="reports pushed into the hour")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="vault-push-bench-"))
    os.environ.update(VAULT_HOME=str(home / "home"), VAULT_OTEL_EXPORTER="none")

    from vault_pipeline.defs.resources import VaultResource
    from vault_pipeline.providers.config import load_config
    from vault_pipeline.push.service import TEST_RUN, PushParameters, PushService
    from vault_pipeline_tests.fixtures.junit_files import generated_report
    from vault_pipeline_tests.fixtures.vault import VaultHarness, materialization_metadata

    harness = VaultHarness(home / "home", VaultResource(home=str(home / "home"), config_path=str(home / "vault.yaml")))
    harness.write_providers({"ci": {"type": "push", "kind": "test_result"}})
    service = PushService(store=harness.store, catalog=harness.catalog, config=lambda: load_config(harness.config_path),
                          clock=lambda: datetime(2026, 1, 2, tzinfo=UTC))
    reports = [generated_report(args.cases, seed=n) for n in range(args.reports)]
    size = sum(map(len, reports))
    started = time.perf_counter()
    for n, body in enumerate(reports):
        service.accept(TEST_RUN, "ci", body, parameters=PushParameters(
            suite="bench", commit=f"c{n // 3}", branch="main", build=n + 1, started_at="2026-01-01T05:00:00Z"))
    door = time.perf_counter() - started
    cases = args.cases * args.reports
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"door: {args.reports} reports x {args.cases} cases ({size / 1e6:.1f} MB) accepted in {door:.2f} s: "
          f"{cases / door:,.0f} cases/s, {size / 1e6 / door:.1f} MB/s")

    import dagster as dg

    from vault_pipeline.defs.schedules import HOURLY_JOB

    job = harness.definitions().resolve_job_def(HOURLY_JOB)
    started = time.perf_counter()
    result = job.execute_in_process(partition_key=dg.MultiPartitionKey({"hour": "2026-01-01-05:00", "provider": "ci"}),
                                    instance=harness.instance, raise_on_error=False,
                                    run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    took = time.perf_counter() - started
    if not result.success:
        raise SystemExit("the hourly graph failed; see the run's events")
    index = materialization_metadata(result, "record_index")
    steps = {}
    for event in result.all_events:
        if event.event_type_value == "STEP_SUCCESS":
            steps[event.step_key] = event.event_specific_data.duration_ms / 1000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"graph: {index['records']} records ({size / 1e6:.1f} MB pushed) through the whole hourly graph in "
          f"{took:.1f} s: {index['records'] / took:,.0f} records/s; peak RSS {peak:.0f} MB")
    for step, seconds in sorted(steps.items(), key=lambda item: -item[1])[:6]:
        print(f"  {step:<44} {seconds:6.2f} s")
    harness.instance.dispose()


if __name__ == "__main__":
    main()
