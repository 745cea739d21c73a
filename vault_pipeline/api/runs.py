"""How ingestion jobs become Dagster runs: the runner port and the embedded (in-process) runner.

A job covers one provider over every hour its range touches; each hour is one run of the
``hourly_ingestion`` job, tagged ``vault/job_id`` so the job's runs can be found in the Dagster
UI and by the API. The embedded runner executes runs in the API process against the local
instance (``$VAULT_HOME/dagster``), so they show in ``make ui``; the GraphQL runner
(``graphql_runner``) submits them to a Dagster webserver, through its run queue.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

import dagster as dg

JOB_TAG = "vault/job_id"
PRIORITY_TAG = "dagster/priority"
PRIORITIES = {"low": -1, "normal": 0, "high": 1}

PENDING = {"QUEUED", "NOT_STARTED", "STARTING", "MANAGED"}
RUNNING = {"STARTED", "CANCELING"}
SUCCEEDED = {"SUCCESS"}
FAILED = {"FAILURE", "CANCELED"}


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    partition: str
    status: str  # Dagster run status name
    records: int = 0  # records indexed by the run
    bytes: int = 0  # bytes of provider pages landed by the run
    error: str | None = None


class Runner(ABC):
    """Launches one partition run for a job and reports on a job's runs."""

    @abstractmethod
    def launch(self, *, job_id: str, partition_key: str, priority: str, run_id: str | None = None) -> str:
        """Start (embedded: execute) one run; returns its run id."""

    @abstractmethod
    def runs_for_job(self, job_id: str) -> list[RunInfo]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


def _multi_key(partition_key: str) -> dg.MultiPartitionKey:
    hour, _, provider = partition_key.partition("|")
    return dg.MultiPartitionKey({"hour": hour, "provider": provider})


def _failure_text(error) -> str:
    """A step failure's message with its cause: after retries Dagster's message is only
    "Exceeded max_retries", and the provider, window and URL are in the cause."""
    message = error.message.strip()
    cause = error.cause.message.strip() if error.cause else ""
    return f"{message}: {cause}" if cause and cause not in message else message


class EmbeddedRunner(Runner):
    """Executes runs in this process (one at a time per worker thread) on a local instance."""

    def __init__(self, definitions: dg.Definitions, instance: dg.DagsterInstance, job_name: str) -> None:
        self.instance = instance
        self.job = definitions.resolve_job_def(job_name)
        # delta-rs commits are optimistic; two runs merging into the same table at once can
        # conflict, so the embedded runner executes one run at a time and the pool queues.
        self._run_lock = threading.Lock()

    def launch(self, *, job_id: str, partition_key: str, priority: str, run_id: str | None = None) -> str:
        with self._run_lock:
            result = self.job.execute_in_process(
                partition_key=_multi_key(partition_key),
                instance=self.instance,
                raise_on_error=False,
                run_id=run_id,
                tags={JOB_TAG: job_id, PRIORITY_TAG: str(PRIORITIES[priority])},
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )
        return result.run_id

    def runs_for_job(self, job_id: str) -> list[RunInfo]:
        runs = self.instance.get_runs(filters=dg.RunsFilter(tags={JOB_TAG: job_id}))
        return [self._info(run) for run in sorted(runs, key=lambda r: r.tags.get("dagster/partition", ""))]

    def _info(self, run) -> RunInfo:
        records = bytes_ = 0
        error = None
        for record in self.instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None:
                continue
            if event.event_type_value == "ASSET_MATERIALIZATION":
                materialization = event.event_specific_data.materialization
                name = materialization.asset_key.path[-1]
                if name == "record_index":
                    records += int(materialization.metadata["records"].value)
                elif name == "raw_landing":
                    bytes_ += int(materialization.metadata["bytes"].value)
            elif event.event_type_value == "STEP_FAILURE" and error is None:
                error = _failure_message(event.event_specific_data.error)
            elif event.event_type_value == "ASSET_CHECK_EVALUATION" and error is None:
                evaluation = event.event_specific_data
                if not evaluation.passed and evaluation.severity.value == "ERROR":
                    error = f"check {evaluation.check_name} failed"
        return RunInfo(run.run_id, run.tags.get("dagster/partition", ""), run.status.value, records, bytes_, error)


def _failure_message(info) -> str:
    """The cause of a step failure in words: past Dagster's retry wrapper, without the class path."""
    # A step that used up its RetryPolicy reports only "Exceeded max_retries of N"; its cause says why.
    while info.cls_name == "RetryRequestedFromPolicy" and info.cause is not None:
        info = info.cause
    return info.message.strip().removeprefix("dagster._core.definitions.events.Failure: ")
