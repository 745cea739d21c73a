"""The GraphQL job backend against a real Dagster deployment started on loopback by the test.

The module starts ``dagster-webserver`` and ``dagster-daemon`` on a temporary DAGSTER_HOME
(queued run coordinator, telemetry off) and a temporary VAULT_HOME with two small simulator
providers (one clean, one whose records mostly fail validation), submits partition runs through ``GraphQLRunner`` exactly as ``vault serve`` does
with ``VAULT_JOB_BACKEND=graphql``, and checks that the runs went through the queue with
their priority, materialized the partition they were tagged with, and reported records,
bytes and status back; then the same through ``JobService``. Both servers are stopped by
their own process ids when the module ends, whatever happened.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
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

from vault_pipeline.api.graphql_runner import GraphQLRunner, partition_tags
from vault_pipeline.api.jobs import JobService
from vault_pipeline.api.runs import FAILED, PRIORITY_TAG, SUCCEEDED
from vault_pipeline_tests.fixtures.deployment import stop_processes, tail

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WEBSERVER = shutil.which("dagster-webserver", path=str(BIN)) or shutil.which("dagster-webserver")
DAEMON = shutil.which("dagster-daemon", path=str(BIN)) or shutil.which("dagster-daemon")
PROVIDER = "qa_sim"
BROKEN = "qa_broken"
STARTUP_S = 90
RUNS_S = 150

pytestmark = pytest.mark.skipif(
    WEBSERVER is None or DAEMON is None, reason="dagster-webserver / dagster-daemon executables are not installed"
)

# QueuedRunCoordinator is already 1.13's default; it is named so the test states what it relies
# on. One run at a time: every run of the provider merges into the same Delta table, and delta-rs
# commits optimistically; a one-second dequeue keeps the queue from dominating the test time.
DAGSTER_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 1
    dequeue_interval_seconds: 1
"""

JOB_QUERY = """
query TestJobRuns($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) {
    ... on Runs { results { runId status tags { key value } assetMaterializations { assetKey { path } partition } } }
  }
}
"""


@dataclass
class Deployment:
    url: str
    vault_home: Path
    dagster_home: Path

    def runner(self) -> GraphQLRunner:
        return GraphQLRunner.from_url(self.url)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_serving(url: str, processes: dict[str, tuple[subprocess.Popen, Path]]) -> None:
    """Until the webserver answers and its code location offers the hourly job."""
    deadline = time.monotonic() + STARTUP_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        for name, (process, log) in processes.items():
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{tail(log)}")
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                answer = httpx.post(
                    f"{url}/graphql",
                    json={"query": "{ repositoriesOrError { ... on RepositoryConnection { nodes { pipelines { name } } } } }"},
                    timeout=10,
                ).json()
                nodes = answer["data"]["repositoriesOrError"].get("nodes", [])
                if any(job["name"] == "hourly_ingestion" for node in nodes for job in node["pipelines"]):
                    return
                last = f"code location not loaded: {answer}"
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            last = repr(exc)
        time.sleep(0.5)
    webserver_log = processes["dagster-webserver"][1]
    pytest.fail(f"Dagster webserver at {url} not ready after {STARTUP_S} s ({last}):\n{tail(webserver_log)}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("graphql_backend")
    dagster_home, vault_home = root / "dagster", root / "vault"
    dagster_home.mkdir()
    vault_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    # Create the instance's SQLite storages before two processes race to (both would run
    # CREATE TABLE, and one fails with "table jobs already exists").
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.get_runs(limit=1)
        instance.all_instigator_state()
        instance.get_latest_materialization_event(dg.AssetKey("raw_landing"))
    config = root / "vault.yaml"
    # No deliberately invalid records: at 50 a partition, one would put it under the 99 % bar.
    small = {"type": "simulator", "kind": "test_result", "records_per_hour": 50, "lookback_hours": 0,
             "seed": 3, "invalid_fraction": 0.0}
    # Half its records are invalid, so the blocking input check fails its runs.
    # The schedule stopped: this daemon must run only the runs the tests submit (a tick at 10 past
    # the hour would queue both providers' last hour ahead of them, one run at a time).
    config.write_text(yaml.safe_dump({"providers": {PROVIDER: small, BROKEN: {**small, "invalid_fraction": 0.5}},
                                      "schedule": {"enabled": False}}))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "VAULT_HOME": str(vault_home),
        "VAULT_CONFIG": str(config),
        "VAULT_OTEL_EXPORTER": "none",
        "VAULT_ENV": "local",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    workspace = str(REPO / "workspace.yaml")
    commands = {
        "dagster-webserver": [WEBSERVER, "-w", workspace, "-h", "127.0.0.1", "-p", str(port)],
        "dagster-daemon": [DAEMON, "run", "-w", workspace],
    }
    processes: dict[str, tuple[subprocess.Popen, Path]] = {}
    try:
        for name, command in commands.items():
            log = root / f"{name}.log"
            with log.open("wb") as sink:  # a file, not a pipe: nobody reads a pipe while tests run
                processes[name] = (subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT), log)
        _wait_until_serving(url, processes)
        yield Deployment(url, vault_home, dagster_home)
    finally:
        stop_processes([process for process, _ in processes.values()])


def _wait_for_runs(runner: GraphQLRunner, job_id: str, count: int) -> list:
    deadline = time.monotonic() + RUNS_S
    runs = []
    while time.monotonic() < deadline:
        runs = runner.runs_for_job(job_id)
        if len(runs) == count and all(run.status in SUCCEEDED or run.status in FAILED for run in runs):
            return runs
        time.sleep(1)
    pytest.fail(f"runs of job {job_id} not finished after {RUNS_S} s: {runs}")


def test_launch_without_a_webserver_names_the_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(RuntimeError, match=f"Dagster webserver at {url}"):
        GraphQLRunner.from_url(url).launch(job_id="j", partition_key=f"2026-01-01-00:00|{PROVIDER}", priority="normal")
    with pytest.raises(RuntimeError, match=f"Dagster webserver at {url}"):
        GraphQLRunner.from_url(url).runs_for_job("j")


def test_partition_tags_name_every_dimension() -> None:
    assert partition_tags(f"2026-01-01-00:00|{PROVIDER}") == {
        "dagster/partition": f"2026-01-01-00:00|{PROVIDER}",
        "dagster/partition/hour": "2026-01-01-00:00",
        "dagster/partition/provider": PROVIDER,
    }
    with pytest.raises(ValueError, match=re.escape("<hour>|<provider>")):
        partition_tags("2026-01-01-00:00")


def test_an_unknown_job_has_no_runs(deployment: Deployment) -> None:
    assert deployment.runner().runs_for_job("no-such-job") == []


def test_a_job_the_webserver_does_not_offer_is_named(deployment: Deployment) -> None:
    runner = GraphQLRunner.from_url(deployment.url, job_name="no_such_job")
    with pytest.raises(RuntimeError, match=f"Dagster webserver at {deployment.url}: .*no job named no_such_job"):
        runner.launch(job_id="j", partition_key=f"2026-01-01-00:00|{PROVIDER}", priority="normal")


def test_partitions_run_through_the_queue_and_report_back(deployment: Deployment) -> None:
    runner = deployment.runner()
    job_id = "graphql-runner-test"
    keys = [f"2026-01-01-00:00|{PROVIDER}", f"2026-01-01-01:00|{PROVIDER}"]
    run_ids = [runner.launch(job_id=job_id, partition_key=key, priority="high", run_id="ignored") for key in keys]
    assert "ignored" not in run_ids and len(set(run_ids)) == 2

    runs = _wait_for_runs(runner, job_id, 2)
    assert [run.partition for run in runs] == keys
    assert {run.run_id for run in runs} == set(run_ids)
    for run in runs:
        assert run.status == "SUCCESS", run.error
        assert run.records > 0 and run.bytes > 0 and run.error is None

    # What Dagster itself recorded: the priority, and materializations of the tagged partition.
    answer = runner._execute(JOB_QUERY, {"tags": [{"key": "vault/job_id", "value": job_id}]}, "test")
    for run in answer["runsOrError"]["results"]:
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        assert tags[PRIORITY_TAG] == "1"
        hour, provider = tags["dagster/partition/hour"], tags["dagster/partition/provider"]
        assert tags["dagster/partition"] == f"{hour}|{provider}"
        materialized = {m["assetKey"]["path"][-1]: m["partition"] for m in run["assetMaterializations"]}
        assert {"raw_landing", "record_index", "normalised_records"} <= set(materialized)
        assert set(materialized.values()) == {tags["dagster/partition"]}

    # Finished runs are served from the cache the second time, with the same answer.
    assert runner.runs_for_job(job_id) == runs


def test_a_failed_run_reports_why(deployment: Deployment) -> None:
    runner = deployment.runner()
    runner.launch(job_id="graphql-runner-failure", partition_key=f"2026-01-01-00:00|{BROKEN}", priority="low")
    [run] = _wait_for_runs(runner, "graphql-runner-failure", 1)
    assert run.status == "FAILURE"
    assert run.error and "input_validation" in run.error, run.error


def test_job_service_end_to_end(deployment: Deployment) -> None:
    service = JobService(deployment.runner(), workers=1)
    try:
        job, created = service.submit(PROVIDER, ["2026-01-02-00:00", "2026-01-02-01:00"], priority="normal")
        assert created
        deadline = time.monotonic() + RUNS_S
        view = service.view(job.job_id)
        while view.state not in ("completed", "failed") and time.monotonic() < deadline:
            time.sleep(1)
            view = service.view(job.job_id)
        assert view.state == "completed", (view.state, view.error, view.runs)
        assert view.records_synced > 0 and view.bytes_written > 0
        assert [run.partition for run in view.runs] == [f"2026-01-02-0{h}:00|{PROVIDER}" for h in (0, 1)]
        # With this backend the job id is only the tag: no run took it as its run id.
        assert job.job_id not in {run.run_id for run in view.runs}
    finally:
        service.close()

    # The runs wrote into the deployment's VAULT_HOME, where the run workers were told to.
    for hour in ("00", "01"):
        landed = list((deployment.vault_home / "objects" / "raw" / PROVIDER / "2026" / "01" / "02" / hour).glob("*.json"))
        assert landed, f"nothing landed for hour {hour} under {deployment.vault_home}"
