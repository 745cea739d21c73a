"""Ingestion jobs: a bounded, prioritised queue in front of the runner, with idempotency.

``POST /v1/ingest`` becomes a job: the provider's hours in the requested range, run one
partition at a time. An identical request (same provider and hours) while the first is
pending or processing returns the same job, as does a repeated ``Idempotency-Key``; the
queue holds at most ``max_queue`` waiting jobs and refuses more (the API answers 429). A
job's state and metrics are derived from its Dagster runs, so they survive an API restart.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vault_pipeline.api.runs import FAILED, PENDING, PRIORITIES, SUCCEEDED, RunInfo, Runner

log = logging.getLogger(__name__)

STATES = ("pending", "processing", "completed", "failed")


class QueueFullError(RuntimeError):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"the ingestion queue is full; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class IdempotencyKeyReusedError(ValueError):
    """An Idempotency-Key already named a job for a different request."""


@dataclass(slots=True)
class Job:
    job_id: str
    provider: str
    hours: list[str]  # hour partition keys, "YYYY-MM-DD-HH:00"
    priority: str
    launched: int = 0  # hours handed to the runner so far
    error: str | None = None  # a failure of the runner itself (not of a run)
    done: bool = False

    @property
    def partition_keys(self) -> list[str]:
        return [f"{hour}|{self.provider}" for hour in self.hours]


@dataclass(frozen=True, slots=True)
class JobView:
    job_id: str
    state: str
    provider: str | None
    records_synced: int
    bytes_written: int
    runs: list[RunInfo] = field(default_factory=list)
    error: str | None = None
    hours: list[str] = field(default_factory=list)


def hours_in_range(start: datetime, end: datetime) -> list[str]:
    """Every hour partition the half-open range [start, end) touches."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    hours = []
    while hour < end:
        hours.append(hour.strftime("%Y-%m-%d-%H:00"))
        hour += timedelta(hours=1)
    return hours


class JobService:
    def __init__(self, runner: Runner, *, workers: int = 1, max_queue: int = 16, seconds_per_hour: float = 5.0) -> None:
        self.runner = runner
        self.max_queue = max_queue
        self.seconds_per_hour = seconds_per_hour
        self._jobs: dict[str, Job] = {}
        self._finished: dict[str, JobView] = {}  # so /metrics does not re-read every old job's runs
        self._active_by_request: dict[tuple[str, tuple[str, ...]], str] = {}
        self._by_idempotency_key: dict[str, str] = {}
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._workers = [threading.Thread(target=self._work, name=f"vault-job-worker-{n}", daemon=True) for n in range(workers)]
        for worker in self._workers:
            worker.start()

    # submitting ---------------------------------------------------------------------------
    def submit(self, provider: str, hours: list[str], priority: str = "normal", idempotency_key: str | None = None) -> tuple[Job, bool]:
        """(job, created): an existing job is returned for a repeated request."""
        request = (provider, tuple(hours))
        with self._lock:
            if idempotency_key and idempotency_key in self._by_idempotency_key:
                job = self._jobs[self._by_idempotency_key[idempotency_key]]
                if (job.provider, tuple(job.hours)) != request:
                    raise IdempotencyKeyReusedError(job.job_id)
                return job, False
            existing = self._active_by_request.get(request)
            if existing and not self._jobs[existing].done:
                if idempotency_key:
                    self._by_idempotency_key[idempotency_key] = existing
                return self._jobs[existing], False
            if self._queue.qsize() >= self.max_queue:
                raise QueueFullError(self.retry_after_s())
            job = Job(str(uuid.uuid4()), provider, list(hours), priority)
            self._jobs[job.job_id] = job
            self._active_by_request[request] = job.job_id
            if idempotency_key:
                self._by_idempotency_key[idempotency_key] = job.job_id
            # PriorityQueue pops the smallest: higher priority first, then first come.
            self._queue.put((-PRIORITIES[priority], next(self._order), job.job_id))
            return job, True

    def retry_after_s(self) -> int:
        waiting_hours = sum(len(self._jobs[job_id].hours) for _, _, job_id in list(self._queue.queue))
        return max(1, int(waiting_hours * self.seconds_per_hour / max(1, len(self._workers))))

    def estimated_completion_ms(self, job: Job) -> int:
        ahead = sum(len(self._jobs[job_id].hours) for _, _, job_id in list(self._queue.queue) if job_id != job.job_id)
        return int((ahead / max(1, len(self._workers)) + len(job.hours)) * self.seconds_per_hour * 1000)

    def queue_depth(self) -> int:
        return self._queue.qsize()

    # running ------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                _, _, job_id = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            job = self._jobs[job_id]
            try:
                for index, key in enumerate(job.partition_keys):
                    # The first run's id is the job id, so a one-hour job is literally that Dagster run.
                    self.runner.launch(job_id=job.job_id, partition_key=key, priority=job.priority,
                                       run_id=job.job_id if index == 0 else None)
                    job.launched += 1
            except Exception as exc:  # the runner itself broke (not a failed run): report, keep serving
                log.exception("job %s could not be launched", job_id)
                job.error = f"could not launch runs: {type(exc).__name__}: {exc}"
            finally:
                job.done = True
                self._queue.task_done()

    def close(self) -> None:
        self._stopping.set()
        for worker in self._workers:
            worker.join(timeout=5)
        self.runner.close()

    # reporting ----------------------------------------------------------------------------
    def view(self, job_id: str) -> JobView | None:
        if job_id in self._finished:  # a completed or failed job never changes again
            return self._finished[job_id]
        job = self._jobs.get(job_id)
        runs = self.runner.runs_for_job(job_id)
        if job is None and not runs:
            return None
        records = sum(run.records for run in runs)
        bytes_ = sum(run.bytes for run in runs)
        error = next((f"{run.partition}: {run.error}" for run in runs if run.status in FAILED), None)
        if job is not None and job.error:
            error = job.error
        state = self._state(job, runs, error)
        provider = job.provider if job else runs[0].partition.partition("|")[2]
        hours = job.hours if job else sorted(run.partition.partition("|")[0] for run in runs)
        view = JobView(job_id, state, provider, records, bytes_, runs, error if state == "failed" else None, hours)
        if state in ("completed", "failed") and (job is None or job.done):
            self._finished[job_id] = view
        return view

    @staticmethod
    def _state(job: Job | None, runs: list[RunInfo], error: str | None) -> str:
        expected = len(job.hours) if job else len(runs)
        statuses = [run.status for run in runs]
        finished = sum(s in SUCCEEDED or s in FAILED for s in statuses)
        if job is not None and job.error and finished == len(runs):
            return "failed"
        if finished == expected and expected > 0:
            return "failed" if any(s in FAILED for s in statuses) else "completed"
        if not runs or all(s in PENDING for s in statuses) and (job is None or job.launched == 0):
            return "pending"
        return "processing"

    def counts_by_state(self) -> dict[str, int]:
        counts = Counter({state: 0 for state in STATES})
        for job_id in list(self._jobs):
            view = self.view(job_id)
            if view:
                counts[view.state] += 1
        return dict(counts)
