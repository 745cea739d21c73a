"""Crashes leave nothing behind: a promotion or a run killed with -9, and the instance it ran on.

The crashes are real: a child process is stopped half-way through a promotion (it announces
its work directory, then sleeps) and killed with SIGKILL, so no ``finally`` of it runs. What is
then checked is what the next promotion or vault command makes of the leftovers: scratch
directories whose owner is gone are removed (a running promotion's never), a run left STARTED
is marked failed once its process is provably gone, and its partition re-runs cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import dagster as dg
import pytest

from vault_pipeline.cli import LOCAL_INSTANCE_YAML, prepare_local_instance
from vault_pipeline.core.processes import (
    OWNER_FILE,
    ProcessStamp,
    claim_work_dir,
    current_process,
    process_gone_since,
    sweep_stale_work_dirs,
    work_dir_owner,
)
from vault_pipeline.defs.integrity.verification import verify_vault
from vault_pipeline.defs.promotion.masking import masking_settings
from vault_pipeline.defs.promotion.promotion import promote_partition
from vault_pipeline.defs.schedules import HOURLY_JOB
from vault_pipeline.defs.stale_runs import fail_orphaned_runs, run_process
from vault_pipeline.providers.config import load_config

REPO = Path(__file__).resolve().parents[2]
HOUR = "2026-01-01-05:00"
PROVIDER = "trail"
PARTITION = f"{HOUR}|{PROVIDER}"
SIMULATOR = {"type": "simulator", "kind": "audit_event", "records_per_hour": 60, "seed": 5, "lookback_hours": 0,
             "invalid_fraction": 0, "page_size": 20}
READY_TIMEOUT_S = 240

# Both children stall promotion at the same point: the workspace is filled (the catalog read,
# the Merkle root checked), no raw object decided yet. They write their work directory to the
# file named last on their command line, then sleep until killed.
_STALL = """
import sys, time
from pathlib import Path
from vault_pipeline.defs.promotion import promotion

_objects = promotion._Workspace.objects


def _stalled(self):
    Path(sys.argv[-1]).write_text(self.directory)
    time.sleep(600)
    yield from _objects(self)


promotion._Workspace.objects = _stalled
"""

STALLED_PROMOTION = _STALL + """
from vault_pipeline.defs.promotion.masking import masking_settings
from vault_pipeline.defs.resources import VaultResource

home, config_path, partition = sys.argv[1:4]
vault = VaultResource(home=home, config_path=config_path)
config = vault.vault_config()
settings = masking_settings(config.policies, Path(home))
provider = partition.split("|")[1]
promotion.promote_partition(
    store=vault.object_store(), catalog=vault.catalog(), signer=vault.ledger_signer(), scanner=settings.scanner,
    policy=settings.policy, provider=provider, kind=config.provider(provider).kind, partition=partition,
    requested_by="crash-test", tier=settings.tier, run_id="crash-test",
)
"""

# `vault demo`'s way of running a partition: in-process, on the local instance under VAULT_HOME.
STALLED_RUN = _STALL + """
import dagster as dg
from vault_pipeline.cli import prepare_local_instance

prepare_local_instance()
from vault_pipeline.definitions import build_definitions
from vault_pipeline.defs.schedules import HOURLY_JOB

hour, provider = sys.argv[1].split("|")
build_definitions().resolve_job_def(HOURLY_JOB).execute_in_process(
    partition_key=dg.MultiPartitionKey({"hour": hour, "provider": provider}), instance=dg.DagsterInstance.get(),
    raise_on_error=False,
)
"""


def _child_env(vault, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER")}
    env.update(VAULT_HOME=str(vault.home), VAULT_CONFIG=str(vault.config_path), VAULT_OTEL_EXPORTER="none", **extra)
    return env


def _start(script: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def _wait_ready(ready: Path, child: subprocess.Popen, log: Path) -> Path:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready.exists() and ready.read_text():
            return Path(ready.read_text())
        if child.poll() is not None:
            pytest.fail(f"child {child.pid} exited ({child.returncode}) before stalling:\n{log.read_text()[-4000:]}")
        time.sleep(0.1)
    pytest.fail(f"child {child.pid} did not reach promotion within {READY_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


def _kill(child: subprocess.Popen) -> None:
    """SIGKILL by pid: nothing of the child's cleanup runs, as with `kill -9`."""
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)


def _promote(vault):
    config = load_config(vault.config_path)
    settings = masking_settings(config.policies, vault.home)
    return promote_partition(
        store=vault.store, catalog=vault.catalog, signer=vault.resource.ledger_signer(), scanner=settings.scanner,
        policy=settings.policy, provider=PROVIDER, kind="audit_event", partition=PARTITION, requested_by="test",
        tier=settings.tier, run_id="test",
    )


def _dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir()) if path.exists() else []


# -- 1. promotion scratch ------------------------------------------------------------------


def test_a_promotion_killed_with_sigkill_leaves_its_work_dir_only_until_the_next_promotion(vault, tmp_path):
    vault.write_providers({PROVIDER: SIMULATOR})
    assert vault.run(HOUR, PROVIDER).success
    system_tmp = tmp_path / "system-tmp"  # where tempfile would have put it
    system_tmp.mkdir()
    env = _child_env(vault, TMPDIR=str(system_tmp))
    work_root = (vault.home / "work").resolve()

    args = [str(vault.home), str(vault.config_path), PARTITION]
    killed = _start(STALLED_PROMOTION, [*args, str(tmp_path / "killed.ready")], env, tmp_path / "killed.log")
    try:
        left_behind = _wait_ready(tmp_path / "killed.ready", killed, tmp_path / "killed.log")
    finally:
        _kill(killed)
    assert left_behind.resolve().parent == work_root  # under VAULT_HOME, not the system temp dir
    assert (left_behind / "work.sqlite").is_file() and _dirs(system_tmp) == []
    assert work_dir_owner(left_behind).pid == killed.pid

    live = _start(STALLED_PROMOTION, [*args, str(tmp_path / "live.ready")], env, tmp_path / "live.log")
    try:
        running = _wait_ready(tmp_path / "live.ready", live, tmp_path / "live.log")
        summary = _promote(vault)  # the next promotion, while another one is still under way
        assert summary.counts["clean"] + summary.counts["masked"] > 0
        assert not left_behind.exists()
        assert _dirs(work_root) == [running.resolve()]  # a live promotion's directory is left alone
    finally:
        _kill(live)
    _promote(vault)
    assert _dirs(work_root) == []  # its own, and the second killed one's, are gone too


def _stamped_dir(root: Path, **changes) -> Path:
    directory = claim_work_dir(root, "promotion")
    stamp = json.loads((directory / OWNER_FILE).read_text()) | changes
    (directory / OWNER_FILE).write_text(json.dumps(stamp))
    return directory


def test_a_work_dir_is_stale_only_when_its_owner_is_provably_gone(tmp_path):
    root = tmp_path / "work"
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # reaped: its pid runs nothing now
    me = current_process()
    dead = _stamped_dir(root, pid=finished.pid)
    reused = _stamped_dir(root, start_ticks=(me.start_ticks or 0) + 1)  # our pid, but not our process
    rebooted = _stamped_dir(root, boot_id="00000000-0000-0000-0000-000000000000")
    live = claim_work_dir(root, "promotion")
    other_host = _stamped_dir(root, pid=finished.pid, host=me.host + "-elsewhere")
    other_container = _stamped_dir(root, pid=finished.pid, pid_namespace="pid:[1]")
    creating = root / "promotion-justnow"  # created, owner file not written yet
    creating.mkdir()
    abandoned = root / "promotion-abandoned"  # its creator died before writing the owner file
    abandoned.mkdir()
    os.utime(abandoned, (time.time() - 3600, time.time() - 3600))
    half_deleted = root / ".deleting-promotion-x"  # a sweeper killed half-way
    (half_deleted / "sub").mkdir(parents=True)
    unrelated = root / "lake-cache"
    unrelated.mkdir()

    removed = sweep_stale_work_dirs(root, "promotion")
    expected_gone = {dead, abandoned}
    if me.start_ticks is not None:  # Linux: /proc tells a reused pid apart
        expected_gone.add(reused)
    if me.boot_id:
        expected_gone.add(rebooted)
    assert set(removed) == expected_gone
    assert not any(path.exists() for path in [*expected_gone, half_deleted])
    assert all(path.is_dir() for path in (live, other_host, other_container, creating, unrelated))
    assert sweep_stale_work_dirs(root, "promotion") == []


def test_a_pid_reported_before_its_process_started_is_taken_for_a_reused_one():
    stamp = current_process()
    assert ProcessStamp.from_json(stamp.to_json()) == stamp
    assert not process_gone_since(os.getpid(), time.time())  # this very process, seen now
    if os.path.exists("/proc/self/stat"):  # Linux: a process's start time is known
        assert process_gone_since(os.getpid(), stamp.started_at - 3600)  # "seen" an hour before it existed
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    assert process_gone_since(finished.pid, time.time())


# -- 2. runs left STARTED --------------------------------------------------------------------


def test_a_run_killed_with_sigkill_while_started_is_marked_failed_and_its_partition_reruns(vault, tmp_path,
                                                                                           monkeypatch):
    vault.write_providers({PROVIDER: SIMULATOR})
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "restored-after-the-test"))  # prepare_local_instance sets it
    child = _start(STALLED_RUN, [PARTITION, str(tmp_path / "run.ready")], _child_env(vault), tmp_path / "run.log")
    try:
        _wait_ready(tmp_path / "run.ready", child, tmp_path / "run.log")
        with dg.DagsterInstance.from_config(str(vault.home / "dagster")) as instance:
            [run] = instance.get_runs()
            assert run.status == dg.DagsterRunStatus.STARTED
    finally:
        _kill(child)
    with dg.DagsterInstance.from_config(str(vault.home / "dagster")) as instance:
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED  # nothing else would end it

    prepare_local_instance()  # what `vault demo`, `vault serve` and `make ui` start with
    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        [failure] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert f"pid {child.pid}" in failure.dagster_event.message and "killed" in failure.dagster_event.message
        rerun = vault.definitions().resolve_job_def(HOURLY_JOB).execute_in_process(
            partition_key=dg.MultiPartitionKey({"hour": HOUR, "provider": PROVIDER}), instance=instance,
            raise_on_error=False,
        )
        assert rerun.success
    assert _dirs(vault.home / "work") == []  # the killed run's promotion scratch went with the re-run
    report = verify_vault(store=vault.store, catalog=vault.catalog, verifier=vault.resource.ledger_signer().verifier())
    assert report.clean, [f.to_dict() for f in report.findings]


def test_a_run_whose_process_is_alive_is_never_failed(tmp_path):
    seen: list[list[str]] = []

    @dg.op
    def look_for_orphans(context):  # (unannotated: annotations are strings in this module)
        assert run_process(context.instance, context.run_id)[0] == os.getpid()  # the run names its process
        seen.append(fail_orphaned_runs(context.instance))  # this run is STARTED, its process alive

    @dg.job
    def busy():
        look_for_orphans()

    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        assert busy.execute_in_process(instance=instance).success
    assert seen == [[]]


# -- the instance yaml ---------------------------------------------------------------------


@pytest.fixture
def local_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("VAULT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "restored-after-the-test"))
    return tmp_path / "home" / "dagster"


def test_the_local_instance_has_run_monitoring_on_as_dagster_reads_it(local_home):
    assert prepare_local_instance() == local_home.resolve()
    assert (local_home / "dagster.yaml").read_text() == LOCAL_INSTANCE_YAML
    with dg.DagsterInstance.from_config(str(local_home)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_resume_run_attempts == 0  # the default launcher cannot resume
        assert (instance.run_monitoring_start_timeout_seconds, instance.run_monitoring_poll_interval_seconds) == (180, 60)


def test_a_dagster_yaml_of_an_earlier_version_is_upgraded_and_a_users_own_is_never_clobbered(local_home):
    local_home.mkdir(parents=True)
    settings = local_home / "dagster.yaml"
    settings.write_text("telemetry:\n  enabled: false\n")  # all that earlier versions wrote
    prepare_local_instance()
    assert settings.read_text() == LOCAL_INSTANCE_YAML

    own = "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster.core.run_coordinator\n" \
          "  class: DefaultRunCoordinator\n"
    settings.write_text(own)
    with pytest.warns(UserWarning, match=r"does not enable run monitoring.*run_monitoring: \{enabled: true"):
        prepare_local_instance()
    assert settings.read_text() == own

    monitored = own + "run_monitoring:\n  enabled: true\n"
    settings.write_text(monitored)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        prepare_local_instance()
    assert settings.read_text() == monitored
