"""The production deployment, for real: Dagster on PostgreSQL, the run queue, and the vault's API.

The module starts a real PostgreSQL server on a free loopback port in a temporary directory
(``fixtures/postgres.py``), gives a fresh DAGSTER_HOME the repository's own ``deploy/dagster.yaml``
byte for byte (its ``env:`` references pointed at that server), creates the instance's tables
with ``dagster instance migrate``, and starts ``dagster-webserver`` and ``dagster-daemon`` on the
vault's code location (``workspace.yaml``) and ``vault serve`` with the GraphQL job backend, as
deploy/README.md tells an operator to. An auditor's ``POST /v1/ingest`` of two hours of a
simulator provider then has to go through the daemon's queue into Postgres and complete, one
run at a time for the one Delta table both load, and ``vault verify`` has to pass. Every
process is stopped by its id when the module ends, whatever happened; the test skips only when
the PostgreSQL binaries are not installed (``make test`` installs them).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import pytest
import yaml

from vault_pipeline_tests.fixtures.deployment import (
    DEPLOY,
    REPO,
    Services,
    descendants,
    tail,
    wait_for_http,
    wait_for_job,
)
from vault_pipeline_tests.fixtures.postgres import free_port, running_postgres

BIN = Path(sys.executable).parent
PROVIDER = "qa_sim"
HOURS = ("2026-01-02-00:00", "2026-01-02-01:00")
RANGE = {"start": "2026-01-02T00:00:00Z", "end": "2026-01-02T02:00:00Z"}
STARTUP_S = 90
JOB_S = 150


@dataclass
class RunSeen:
    run_id: str
    status: str
    tags: dict[str, str]
    start: float
    end: float
    events: list[str]  # event types, in order
    text: str  # every event of the run, serialized: metadata, messages, errors


@dataclass
class Deployed:
    job: dict  # GET /v1/jobs/{job_id} once completed
    accepted: tuple[int, dict]  # POST /v1/ingest: status, body
    runs: list[RunSeen]  # from the Dagster instance (deploy/dagster.yaml, i.e. Postgres)
    run_storage: str  # the instance's run storage class
    rows_in_postgres: list[tuple]  # (run_id, status) straight from the runs table
    tags_in_postgres: list[tuple]  # (run_id, key, value) of vault/* tags, from the run_tags table
    verify: subprocess.CompletedProcess
    command_lines: list[bytes]  # of every service and what it started (code servers), while running
    secrets: dict[str, str]  # name -> value that must appear nowhere
    places: list[Path]  # every directory the deployment wrote to


def _environment(**extra: str) -> dict[str, str]:
    """The machine's environment without any vault, Dagster, AWS or libpq setting of the developer's."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "DAGSTER_", "AWS_", "PG"))}
    return {**kept, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


def _instance_view(dagster_home: Path, pg_env: dict[str, str], job_id: str) -> tuple[str, list[RunSeen]]:
    """What the Dagster instance (the same dagster.yaml, so Postgres) holds about the job's runs."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in pg_env.items():
            patch.setenv(name, value)
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            storage = type(instance.run_storage).__name__
            seen = []
            for record in instance.get_run_records(filters=dg.RunsFilter(tags={"vault/job_id": job_id})):
                entries = instance.all_logs(record.dagster_run.run_id)
                seen.append(RunSeen(
                    record.dagster_run.run_id, record.dagster_run.status.value, dict(record.dagster_run.tags),
                    record.start_time or 0.0, record.end_time or 0.0,
                    [e.dagster_event.event_type.name for e in entries if e.dagster_event],
                    "\n".join(dg.serialize_value(e) for e in entries)))
    return storage, sorted(seen, key=lambda run: run.tags.get("dagster/partition", ""))


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    root = tmp_path_factory.mktemp("deployment")
    dagster_home, vault_home, logs = root / "dagster_home", root / "vault_home", root / "logs"
    for directory in (dagster_home, vault_home, logs):
        directory.mkdir()
    # The operator's file, unchanged: only the environment says where Postgres is.
    shutil.copyfile(DEPLOY / "dagster.yaml", dagster_home / "dagster.yaml")
    config = root / "vault.yaml"
    simulator = {"type": "simulator", "kind": "test_result", "records_per_hour": 40, "lookback_hours": 0, "seed": 5,
                 "invalid_fraction": 0.0}
    # The schedule off: the daemon must run only what the API submits.
    config.write_text(yaml.safe_dump({"providers": {PROVIDER: simulator}, "schedule": {"enabled": False}}))
    api_key = secrets.token_urlsafe(24)

    services = Services(logs)
    with running_postgres() as pg:
        pg_env = pg.dagster_env()
        env = _environment(DAGSTER_HOME=str(dagster_home), VAULT_HOME=str(vault_home), VAULT_CONFIG=str(config),
                           VAULT_ENV="local", VAULT_OTEL_EXPORTER="none", **pg_env)
        try:
            migrate = subprocess.run([str(BIN / "dagster"), "instance", "migrate"], cwd=REPO, env=env,
                                     capture_output=True, text=True, timeout=120)
            (logs / "migrate.log").write_text(migrate.stdout + migrate.stderr)
            assert migrate.returncode == 0, tail(logs / "migrate.log")

            web_port, api_port = free_port(), free_port()
            dagster_url, api_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{api_port}"
            workspace = str(REPO / "workspace.yaml")
            services.start("dagster-webserver", [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1",
                                                 "-p", str(web_port)], env)
            services.start("dagster-daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace], env)
            services.start("vault-serve", [str(BIN / "vault"), "serve", "--host", "127.0.0.1", "--port", str(api_port)],
                           {**env, "VAULT_JOB_BACKEND": "graphql", "VAULT_DAGSTER_URL": dagster_url,
                            "VAULT_API_KEYS": f"deployer:{api_key}:ingest+read"})
            wait_for_job(dagster_url, "hourly_ingestion", services, STARTUP_S)
            wait_for_http(f"{api_url}/healthz", services, STARTUP_S)

            headers = {"X-API-Key": api_key}
            answer = httpx.post(f"{api_url}/v1/ingest", headers=headers, timeout=30,
                                json={"provider_id": PROVIDER, "range": RANGE, "priority": "normal"})
            accepted = (answer.status_code, answer.json())
            assert answer.status_code == 202, accepted
            job_id = accepted[1]["job_id"]
            deadline, job = time.monotonic() + JOB_S, {}
            while time.monotonic() < deadline:
                services.check_running()
                job = httpx.get(f"{api_url}/v1/jobs/{job_id}", headers=headers, timeout=30).json()
                if job.get("state") in ("completed", "failed"):
                    break
                time.sleep(1)
            else:
                pytest.fail(f"job {job_id} not done after {JOB_S} s: {job}\n{tail(services.log('dagster-daemon'))}")

            storage, runs = _instance_view(dagster_home, pg_env, job_id)
            rows = pg.query("SELECT run_id, status FROM runs ORDER BY run_id")
            tags = pg.query("SELECT run_id, key, value FROM run_tags WHERE key LIKE 'vault/%%' ORDER BY run_id, key")
            verify = subprocess.run([str(BIN / "vault"), "verify"], cwd=REPO, env=env, capture_output=True, text=True,
                                    timeout=120)
            # What `ps` shows anyone on the machine: Dagster passes code servers the instance's config.
            pids = [p.pid for p in services.started.values()]
            pids += [pid for process in services.started.values() for pid, _ in descendants(process.pid)]
            command_lines = []
            for pid in pids:
                try:
                    command_lines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
                except OSError:
                    pass  # ended meanwhile
        finally:
            services.stop()
        yield Deployed(job, accepted, runs, storage, rows, tags, verify, command_lines,
                       {"DAGSTER_PG_PASSWORD": pg.password, "VAULT_API_KEYS key": api_key},
                       [dagster_home, vault_home, logs])


def test_an_ingest_submitted_to_the_api_completes_through_the_run_queue(deployed: Deployed) -> None:
    status, body = deployed.accepted
    assert status == 202 and body["status"] == "queued"
    assert deployed.job["state"] == "completed", deployed.job
    assert deployed.job["metrics"]["records_synced"] > 0 and deployed.job["metrics"]["bytes_written"] > 0
    assert [run.tags["dagster/partition"] for run in deployed.runs] == [f"{hour}|{PROVIDER}" for hour in HOURS]
    for run in deployed.runs:
        assert run.status == "SUCCESS"
        # Queued by the webserver, launched from the queue by the daemon, finished by the run worker.
        events = [e for e in run.events if e in ("RUN_ENQUEUED", "RUN_STARTING", "RUN_START", "RUN_SUCCESS")]
        assert events == ["RUN_ENQUEUED", "RUN_STARTING", "RUN_START", "RUN_SUCCESS"], run.events


def test_the_runs_are_recorded_in_postgres(deployed: Deployed) -> None:
    assert deployed.run_storage == "PostgresRunStorage"
    run_ids = {run.run_id for run in deployed.runs}
    assert {(run_id, status) for run_id, status in deployed.rows_in_postgres if run_id in run_ids} == {
        (run_id, "SUCCESS") for run_id in run_ids}
    tagged = {(run_id, key): value for run_id, key, value in deployed.tags_in_postgres}
    for run in deployed.runs:
        assert tagged[(run.run_id, "vault/job_id")] == deployed.accepted[1]["job_id"]
        assert tagged[(run.run_id, "vault/lake_table")] == "test_results"  # the kind's fact table


def test_runs_that_load_the_same_delta_table_are_admitted_one_at_a_time(deployed: Deployed) -> None:
    # Both runs were queued together and the queue admits up to 8 runs at once, but one per
    # vault/lake_table value: the second started only after the first had finished.
    assert {run.tags["vault/lake_table"] for run in deployed.runs} == {"test_results"}
    first, second = sorted(deployed.runs, key=lambda run: run.start)
    assert 0 < first.start < first.end <= second.start < second.end, [(r.start, r.end) for r in deployed.runs]
    limits = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["run_coordinator"]["config"]
    assert limits["max_concurrent_runs"] > 1  # so the tag limit, not the run cap, is what held the second back


def test_vault_verify_passes_on_what_the_deployment_ingested(deployed: Deployed) -> None:
    assert deployed.verify.returncode == 0, deployed.verify.stdout[-3000:] + deployed.verify.stderr[-3000:]
    assert deployed.verify.stdout.startswith("OK ") and ": 0 findings" in deployed.verify.stdout
    # Every record the API reported as synced is in the ledger, the catalog and the lake.
    synced = deployed.job["metrics"]["records_synced"]
    assert " 2 partitions, " in deployed.verify.stdout
    assert f" {synced} records, {synced} lake rows" in deployed.verify.stdout, deployed.verify.stdout


def test_the_database_password_and_the_api_key_appear_nowhere(deployed: Deployed) -> None:
    for name, value in deployed.secrets.items():
        needle = value.encode()
        for run in deployed.runs:
            assert value not in run.text, f"{name} in the events of run {run.run_id}"
            assert all(value not in tag for tag in run.tags.values()), f"{name} in a tag of run {run.run_id}"
        assert value not in deployed.verify.stdout + deployed.verify.stderr
        assert len(deployed.command_lines) >= 4  # webserver, daemon, vault serve and a code server at least
        assert all(needle not in line for line in deployed.command_lines), f"{name} in a process's command line"
        # Logs of every service, the instance's files (compute logs included), the catalog,
        # the ledger, the lake and every object the runs wrote.
        for place in deployed.places:
            for path in (p for p in place.rglob("*") if p.is_file()):
                assert needle not in path.read_bytes(), f"{name} written into {path}"
