"""Runs left STARTED by a process that was killed are marked failed, so they can be re-run.

A run's process killed with -9 (or by the OOM killer, or a reboot) records no outcome: the run
stays STARTED in Dagster's storage for good, and the UI shows a partition "in progress" that
nothing works on. dagster-daemon's run monitoring (switched on in the ``dagster.yaml`` the vault
writes) cannot help here: it fails runs stuck STARTING or CANCELING, but for a STARTED run it
asks the run launcher whether the run worker is healthy, and the default launcher (the local
deployment's) cannot tell (only the Kubernetes, Docker and ECS launchers can); runs executed
in-process (``vault demo``, the API's embedded runner) have no run worker at all.

So the vault's own entry points (``vault demo``, ``vault serve``, ``vault init-instance``,
through ``cli.prepare_local_instance``) call :func:`fail_orphaned_runs` on the local instance.
A STARTED run is failed only when its process is provably gone: Dagster's first engine event of
every run names the pid of the process executing it ("Executing steps in process (pid: N)",
"Started process for run (pid: N)"), and that pid is either not running, or held by a process
that started after that event (the pid was reused). Only an instance on SQLite storage is looked
at: its runs ran on this machine, so their pids mean something here; on a shared (Postgres)
instance a pid could be another machine's, and a live run there must never be failed from here.
"""

from __future__ import annotations

import logging

import dagster as dg
from dagster._core.events import JobFailureData, RunFailureReason
from dagster._core.storage.runs import SqliteRunStorage

from vault_pipeline.core.processes import process_gone_since

log = logging.getLogger(__name__)


def run_process(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, when it was recorded) of the process that executed the run, from its first engine
    event naming a pid; later ones may name step subprocesses, which are not the run's own."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        data = event.event_specific_data if event is not None else None
        value = (getattr(data, "metadata", None) or {}).get("pid")
        text = getattr(value, "value", value)
        if text is not None and str(text).isdigit():
            return int(str(text)), record.timestamp
    return None


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Report every STARTED run whose process is provably gone as failed; returns their run ids."""
    if not isinstance(instance.run_storage, SqliteRunStorage):
        return []
    failed = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        owner = run_process(instance, run.run_id)
        if owner is None:
            continue  # killed before it named its process: nothing proves it is gone
        pid, seen_at = owner
        if not process_gone_since(pid, seen_at):
            continue
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status != dg.DagsterRunStatus.STARTED:
            continue  # it finished meanwhile
        message = (
            f"The process that ran this run (pid {pid}) is gone without recording an outcome: it was killed "
            "(kill -9, out of memory, a reboot). Marked failed so the partition can be re-run; its partial "
            "work is redone idempotently by the re-run."
        )
        instance.report_run_failed(
            current, message, JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION)
        )
        log.warning("run %s of %s: %s", run.run_id, run.job_name, message)
        failed.append(run.run_id)
    return failed
