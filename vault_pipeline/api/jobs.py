"""Ingestion jobs: a bounded, prioritised queue in front of the runner, with idempotency.

``POST /v1/ingest`` becomes a job: the provider's hours in the requested range, run one
partition at a time. An identical request (same provider and hours) while the first is
pending or processing returns the same job, as does a repeated ``Idempotency-Key``; the
queue holds at most ``max_queue`` waiting jobs and refuses more (the API answers 429). A
job's state and metrics are derived from its Dagster runs, so they survive an API restart.

Idempotency keys survive a restart too: ``IdempotencyKeys`` keeps them in the catalog (so
every API process on the same catalog sees them) for ``ttl_s`` (24 h by default), as
fingerprints only, since a client may put something sensitive in a key. A repeated key with
the same request returns its job, from before a restart as well; with a different request
it is refused; once expired it is forgotten and names a new job.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import queue
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from vault_pipeline.api.runs import FAILED, PENDING, PRIORITIES, SUCCEEDED, RunInfo, Runner
from vault_pipeline.storage.catalog import Catalog, IdempotencyRecord, fixed_width_timestamp

log = logging.getLogger(__name__)

STATES = ("pending", "processing", "completed", "failed")
IDEMPOTENCY_TTL_S = 24 * 3600
# Expired keys are also deleted in bulk now and then, so the table does not grow with every key ever sent.
PURGE_EVERY_S = 3600


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
    started: bool = False  # a worker has taken it from the queue
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


def key_fingerprint(principal: str, key: str) -> str:
    """What the catalog keeps of an Idempotency-Key: a digest, scoped to the principal that sent
    it (two clients choosing the same key do not share a job)."""
    return hashlib.sha256(f"{principal}\x1f{key}".encode()).hexdigest()


def request_fingerprint(provider: str, hours: list[str] | tuple[str, ...]) -> str:
    """A digest of what an ingest request asks for: the provider and the hours its range covers
    (two ranges covering the same hours are the same request, as for identical-request reuse)."""
    canonical = json.dumps({"provider": provider, "hours": list(hours)}, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyKeys:
    """Idempotency-Key records kept through the catalog port, each for ``ttl_s`` seconds."""

    def __init__(self, catalog: Catalog, ttl_s: float = IDEMPOTENCY_TTL_S,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if not ttl_s > 0:
            raise ValueError(f"idempotency keys must live a positive time, not {ttl_s!r} s "
                             "(VAULT_API_IDEMPOTENCY_TTL_HOURS)")
        self.catalog, self.ttl_s, self.clock = catalog, ttl_s, clock
        self._next_purge: datetime | None = None

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC)

    def find(self, fingerprint: str) -> IdempotencyRecord | None:
        return self.catalog.get_idempotency_key(fingerprint, now=fixed_width_timestamp(self._now()))

    def claim(self, fingerprint: str, request: str, job_id: str) -> IdempotencyRecord:
        """The record in force for ``fingerprint`` after trying to make it name ``job_id``."""
        now = self._now()
        if self._next_purge is None or now >= self._next_purge:
            self.catalog.purge_idempotency_keys(now=fixed_width_timestamp(now))
            self._next_purge = now + timedelta(seconds=PURGE_EVERY_S)
        return self.catalog.claim_idempotency_key(IdempotencyRecord(
            key_fingerprint=fingerprint, request_fingerprint=request, job_id=job_id,
            created_at=fixed_width_timestamp(now),
            expires_at=fixed_width_timestamp(now + timedelta(seconds=self.ttl_s)),
        ))


def hours_in_range(start: datetime, end: datetime) -> list[str]:
    """Every hour partition the half-open range [start, end) touches."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    hours = []
    while hour < end:
        hours.append(hour.strftime("%Y-%m-%d-%H:00"))
        hour += timedelta(hours=1)
    return hours


class JobService:
    def __init__(self, runner: Runner, *, workers: int = 1, max_queue: int = 16, seconds_per_hour: float = 5.0,
                 idempotency: IdempotencyKeys | None = None) -> None:
        self.runner = runner
        self.max_queue = max_queue
        self.seconds_per_hour = seconds_per_hour
        # Where Idempotency-Keys are kept; ``create_app`` attaches the API's catalog when unset.
        self.idempotency = idempotency
        self._jobs: dict[str, Job] = {}
        self._finished: dict[str, JobView] = {}  # so /metrics does not re-read every old job's runs
        self._active_by_request: dict[tuple[str, tuple[str, ...]], str] = {}
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._workers = [threading.Thread(target=self._work, name=f"vault-job-worker-{n}", daemon=True) for n in range(workers)]
        for worker in self._workers:
            worker.start()

    # submitting ---------------------------------------------------------------------------
    def submit(self, provider: str, hours: list[str], priority: str = "normal", idempotency_key: str | None = None,
               principal: str = "", join_started: bool = True) -> tuple[Job, bool]:
        """(job, created): an existing job is returned for a repeated request or Idempotency-Key.

        ``join_started=False`` joins an identical job only while it still waits in the queue (a
        push must be landed by a run that starts after it was stored, not one already running).

        Raises ``IdempotencyKeyReusedError`` when the principal's key already names a job for
        another request, ``QueueFullError`` when new work finds the queue full (no key is
        recorded then, so the client can retry with the same key)."""
        request = (provider, tuple(hours))
        with self._lock:
            fingerprint = wanted = None
            if idempotency_key:
                if self.idempotency is None:
                    raise RuntimeError("this JobService keeps no idempotency keys: pass idempotency=IdempotencyKeys(catalog)")
                fingerprint, wanted = key_fingerprint(principal, idempotency_key), request_fingerprint(provider, hours)
                found = self.idempotency.find(fingerprint)
                if found is not None:
                    return self._replay(found, wanted, provider, hours, priority), False
            existing = self._active_by_request.get(request)
            if existing and not self._jobs[existing].done and (join_started or not self._jobs[existing].started):
                job, created = self._jobs[existing], False
            else:
                if self._queue.qsize() >= self.max_queue:
                    raise QueueFullError(self.retry_after_s())
                job, created = Job(str(uuid.uuid4()), provider, list(hours), priority), True
            if fingerprint is not None:
                stored = self.idempotency.claim(fingerprint, wanted, job.job_id)
                if stored.job_id != job.job_id:  # another API process on this catalog claimed the key just now
                    return self._replay(stored, wanted, provider, hours, priority, resume=False), False
            if created:
                self._enqueue(job)
            return job, created

    def _enqueue(self, job: Job) -> None:
        self._jobs[job.job_id] = job
        self._active_by_request[(job.provider, tuple(job.hours))] = job.job_id
        # PriorityQueue pops the smallest: higher priority first, then first come.
        self._queue.put((-PRIORITIES[job.priority], next(self._order), job.job_id))

    def _replay(self, record: IdempotencyRecord, wanted: str, provider: str, hours: list[str], priority: str,
                resume: bool = True) -> Job:
        """The job a live Idempotency-Key names, for a request with fingerprint ``wanted``;
        ``resume``: queue it here if it has no runs (its process is gone)."""
        if record.request_fingerprint != wanted:
            raise IdempotencyKeyReusedError(record.job_id)
        job = self._jobs.get(record.job_id)
        if job is not None:
            return job
        # Accepted before this process started (a restart) or by another API process. The
        # fingerprints match, so this request's provider and hours are the job's.
        runs = self.runner.runs_for_job(record.job_id)
        if runs or not resume:  # its state is read from its runs, as for any job
            return Job(record.job_id, provider, list(hours), priority, launched=len(runs), done=True)
        # Accepted but never launched: the process holding it in its queue stopped first. Run
        # it now, under the id the client already has. (Another live API process sharing the
        # catalog might still launch it too; runs are idempotent, so that costs time, not data.)
        if self._queue.qsize() >= self.max_queue:
            raise QueueFullError(self.retry_after_s())
        job = Job(record.job_id, provider, list(hours), priority)
        self._enqueue(job)
        return job

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
            with self._lock:
                job.started = True
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
