"""``/v1/insights*``: what the test results say (flaky tests, failure clusters, regressions), and a refresh.

Reads (role ``read``) serve the ``insights`` Delta tables through the lake port, paged
(``limit``, ``offset``; ``meta.total_count``, ``meta.has_more`` as ``/v1/logs``) in each table's
ranking, filtered by ``suite`` and by time (``since`` inclusive, ``until`` exclusive: a flaky
test's or cluster's ``last_seen``, a regression's ``build_time``, when its change-point build
ran). Before the first refresh every list is empty; without a lake they answer 503
``lake_unavailable``. ``POST /v1/insights/refresh`` (role ``ingest``: it starts work, as an
ingest does; ``read`` keys only read) answers 202 with a run id and runs ``vault insights refresh``
in a subprocess (with the environment of the request's moment), so Dagster's execution and
logging never share the API process; a request
while a refresh of the same scope is queued (not started yet) joins it (same run id), so a
burst of requests costs at most the running refresh and one more. ``GET /v1/insights/refresh/{run_id}`` follows it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import Path, Query
from pydantic import BaseModel

from vault_pipeline.api.agent_patterns import agent_patterns
from vault_pipeline.api.schemas import Timestamp, error_responses
from vault_pipeline.storage.lake import LakeError

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SUITE = Query(None, min_length=1, max_length=200, description="only this suite")
_SINCE = Query(None, description="inclusive; an RFC 3339 timestamp with a UTC offset")
_UNTIL = Query(None, description="exclusive; an RFC 3339 timestamp with a UTC offset")


class Occurrence(BaseModel):
    test: str | None
    build: int | None


class FlakyTest(BaseModel):
    suite: str | None
    test: str | None
    flip_rate: float | None
    flips: int | None
    runs: int | None
    pass_count: int | None
    fail_count: int | None
    flaky_commits: list[str | None] | None
    first_seen: str | None
    last_seen: str | None
    last_build: int | None
    consecutive_passes: int | None


class FailureCluster(BaseModel):
    suite: str | None
    cluster_id: str | None
    template: str | None
    count: int | None
    first_seen: str | None
    last_seen: str | None
    first_build: int | None
    last_build: int | None
    tests_affected: int | None
    tests: list[str | None] | None
    occurrences: list[Occurrence] | None = None


class Regression(BaseModel):
    suite: str | None
    test: str | None = None  # absent in suite trends
    build: int | None
    build_before: int | None
    build_time: str | None
    median_before: float | None
    median_after: float | None
    ratio: float | None
    p_value: float | None
    p_adjusted: float | None
    builds_before: int | None
    builds_after: int | None
    direction: str | None


class PageMeta(BaseModel):
    total_count: int
    has_more: bool
    limit: int
    offset: int


class FlakyPage(BaseModel):
    data: list[FlakyTest]
    meta: PageMeta


class ClusterPage(BaseModel):
    data: list[FailureCluster]
    meta: PageMeta


class RegressionPage(BaseModel):
    data: list[Regression]
    meta: PageMeta


class InsightsSummary(BaseModel):
    refreshed_at: str | None  # the newest refresh of any insight; None before the first
    window: dict[str, Any] | None
    suite: str | None  # the scope of that refresh (None: every suite)
    counts: dict[str, int]
    flaky_tests: list[FlakyTest]
    failure_clusters: list[FailureCluster]
    regressions: list[Regression]
    suite_trends: list[Regression]


class AgentPattern(BaseModel):
    agent_name: str
    executions: int
    by_status: dict[str, int]
    success_rate: float | None
    tests: int | None
    passed: int | None
    failed: int | None
    test_pass_rate: float | None
    mean_duration_ms: float | None
    top_error: dict[str, Any] | None
    first_seen: str | None
    last_seen: str | None


class AgentPatterns(BaseModel):
    data: list[AgentPattern]


class RefreshAccepted(BaseModel):
    run_id: str
    status: Literal["pending", "processing", "completed", "failed"]
    suite: str | None
    joined: bool  # an identical refresh was already queued or running: this is its run


class RefreshStatus(BaseModel):
    run_id: str
    status: Literal["pending", "processing", "completed", "failed"]
    suite: str | None
    counts: dict[str, int] | None = None
    error: str | None = None


@dataclass
class _Job:
    run_id: str
    suite: str | None
    status: str = "pending"
    counts: dict[str, int] | None = None
    error: str | None = None
    env: dict[str, str] | None = field(default=None, repr=False)


REFRESH_TIMEOUT_S = float(os.environ.get("VAULT_INSIGHTS_REFRESH_TIMEOUT_S", "3600"))


def cli_refresh(*, suite: str | None, run_id: str, env: dict[str, str] | None = None) -> SimpleNamespace:
    """``vault insights refresh --json`` in a subprocess: the outcome (success, counts, error)."""
    command = [sys.executable, "-m", "vault_pipeline.cli", "insights", "refresh", "--json", "--run-id", run_id]
    if suite is not None:
        command += ["--suite", suite]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=REFRESH_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        return SimpleNamespace(success=False, counts=None, error=f"the refresh took over {REFRESH_TIMEOUT_S:g}s")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if lines:
        try:
            return SimpleNamespace(**json.loads(lines[-1]))
        except (ValueError, TypeError):
            pass
    error = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1][:300]
    return SimpleNamespace(success=False, counts=None, error=error)


class InsightsRefresher:
    """Refreshes run one at a time from a daemon thread; ``refresh(suite=..., run_id=...)`` is
    ``cli_refresh`` (a subprocess, with the environment captured when the refresh was asked for)
    unless a test passes its own."""

    MAX_KEPT = 200

    def __init__(self, refresh: Callable[..., Any] | None = None) -> None:
        self._refresh = refresh
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: list[_Job] = []
        self._thread: threading.Thread | None = None

    def submit(self, suite: str | None) -> tuple[_Job, bool]:
        with self._lock:
            for job in self._queue:  # queued, not started: this request is answered by it
                if job.suite == suite:
                    return job, True
            job = _Job(str(uuid.uuid4()), suite, env=dict(os.environ))
            self._jobs[job.run_id] = job
            while len(self._jobs) > self.MAX_KEPT:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest].status in ("pending", "processing"):
                    break
                del self._jobs[oldest]
            self._queue.append(job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="insights-refresh", daemon=True)
                self._thread.start()
            self._wake.notify()
            return job, False

    def get(self, run_id: str) -> _Job | None:
        with self._lock:
            return self._jobs.get(run_id)

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._thread = None
                    return
                job = self._queue.pop(0)
                job.status = "processing"
            try:
                outcome = self._call(job)
                job.counts = dict(getattr(outcome, "counts", None) or {})
                job.error = getattr(outcome, "error", None)
                job.status = "completed" if getattr(outcome, "success", True) else "failed"
            except Exception as exc:  # noqa: BLE001 - a failed refresh is reported on its status
                log.warning("insights refresh %s failed: %s", job.run_id, exc)
                job.status, job.error = "failed", str(exc).strip().splitlines()[0][:300] if str(exc) else type(exc).__name__

    def _call(self, job: _Job):
        if self._refresh is None:
            return cli_refresh(suite=job.suite, run_id=job.run_id, env=job.env)
        return self._refresh(suite=job.suite, run_id=job.run_id)


def _micros(moment: datetime) -> int:
    # Aware subtraction works across offsets even where astimezone(UTC) would overflow.
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _filtered(table: pa.Table, *, suite: str | None, since: datetime | None, until: datetime | None,
              time_column: str) -> pa.Table:
    if table.num_rows == 0:
        return table
    keep = pa.array([True] * table.num_rows)
    if suite is not None:
        keep = pc.and_(keep, pc.fill_null(pc.equal(table["suite"], suite), False))
    times = pc.cast(pc.cast(table[time_column], pa.timestamp("us", tz="UTC")), pa.int64())
    if since is not None:
        keep = pc.and_(keep, pc.fill_null(pc.greater_equal(times, _micros(since)), False))
    if until is not None:
        keep = pc.and_(keep, pc.fill_null(pc.less(times, _micros(until)), False))
    return table.filter(keep)


def insight_rows(lake, name: str) -> pa.Table:
    """One insights table in its ranking (empty, with its schema, before the first refresh)."""
    from vault_pipeline.defs.insights.tables import INSIGHTS

    insight = INSIGHTS[name]
    table = lake.read(insight.table)
    if table.num_columns == 0:
        return insight.schema.empty_table()
    return table.select(insight.schema.names).cast(insight.schema).sort_by(list(insight.order))


def summarise_insights(lake, catalog, suite: str | None = None) -> dict[str, Any]:
    """``GET /v1/insights``: the counts and the top 5 of each insight, and the refresh they come from."""
    from vault_pipeline.defs.insights.tables import INSIGHTS, latest_summary, rows_json

    tables = {name: _filtered(insight_rows(lake, name), suite=suite, since=None, until=None, time_column=i.time_column)
              for name, i in INSIGHTS.items()}
    latest = [a for a in (latest_summary(catalog, name) for name in INSIGHTS) if a is not None]
    newest = max(latest, key=lambda a: a.created_at) if latest else None
    meta = newest.metadata if newest is not None else {}
    return {
        "refreshed_at": meta.get("refreshed_at"),
        "window": {"start": meta["window_start"], "end": meta["window_end"], "days": meta["window_days"]}
        if newest is not None else None,
        "suite": meta.get("suite") or None,
        "counts": {name: table.num_rows for name, table in tables.items()},
        "flaky_tests": rows_json(tables["flaky_tests"].slice(0, 5)),
        "failure_clusters": rows_json(tables["failure_clusters"].drop_columns(["occurrences"]).slice(0, 5)),
        "regressions": rows_json(tables["duration_regressions"].slice(0, 5)),
        "suite_trends": rows_json(tables["suite_trends"].slice(0, 5)),
    }


def register_insights_routes(app, api, requires, api_error: type[Exception],
                             refresher: InsightsRefresher | None = None) -> None:
    """The insights endpoints on ``create_app``'s conventions; the refresher is ``app.state.insights_refresher``."""
    from vault_pipeline.defs.insights.tables import INSIGHTS, rows_json

    app.state.insights_refresher = refresher or InsightsRefresher()

    def lake():
        if api.lake is None:
            raise api_error(503, "lake_unavailable", "this API was started without the lake")
        return api.lake

    def rows(name: str) -> pa.Table:
        try:
            return insight_rows(lake(), name)
        except LakeError as exc:
            raise api_error(503, "lake_unavailable", str(exc).splitlines()[0]) from None

    def page(name: str, *, limit: int, offset: int, suite, since, until) -> dict[str, Any]:
        insight = INSIGHTS[name]
        found = _filtered(rows(name), suite=suite, since=since, until=until, time_column=insight.time_column)
        total = found.num_rows
        return {"data": rows_json(found.slice(offset, limit)) if offset < total else [],
                "meta": {"total_count": total, "has_more": offset + limit < total, "limit": limit, "offset": offset}}

    unavailable = {503: "lake_unavailable: the API has no lake, or it cannot be read"}

    @app.get("/v1/insights", response_model=InsightsSummary, summary="test-results insights: counts and the top 5",
             responses=error_responses(unavailable))
    def insights_summary(suite: str | None = _SUITE, _p=requires("read")) -> dict[str, Any]:
        try:
            return summarise_insights(lake(), api.catalog, suite)
        except LakeError as exc:
            raise api_error(503, "lake_unavailable", str(exc).splitlines()[0]) from None

    paging = {"limit": Query(50, ge=1, le=1000), "offset": Query(0, ge=0, le=10_000_000)}

    @app.get("/v1/insights/flaky-tests", response_model=FlakyPage, summary="flaky tests, most flip-prone first",
             responses=error_responses(unavailable))
    def list_flaky(limit: int = paging["limit"], offset: int = paging["offset"], suite: str | None = _SUITE,
                   since: Timestamp | None = _SINCE, until: Timestamp | None = _UNTIL,
                   _p=requires("read")) -> dict[str, Any]:
        """``since``/``until`` filter on ``last_seen`` (the last run on a commit with both outcomes)."""
        return page("flaky_tests", limit=limit, offset=offset, suite=suite, since=since, until=until)

    @app.get("/v1/insights/failure-clusters", response_model=ClusterPage,
             summary="failure clusters, largest first, with every occurrence {test, build}",
             responses=error_responses(unavailable))
    def list_clusters(limit: int = paging["limit"], offset: int = paging["offset"], suite: str | None = _SUITE,
                      since: Timestamp | None = _SINCE, until: Timestamp | None = _UNTIL,
                      _p=requires("read")) -> dict[str, Any]:
        """``since``/``until`` filter on ``last_seen`` (the cluster's latest failure)."""
        return page("failure_clusters", limit=limit, offset=offset, suite=suite, since=since, until=until)

    @app.get("/v1/insights/regressions", response_model=RegressionPage,
             summary="duration regressions, largest ratio first; build is the first build after the shift",
             responses=error_responses(unavailable))
    def list_regressions(limit: int = paging["limit"], offset: int = paging["offset"], suite: str | None = _SUITE,
                         since: Timestamp | None = _SINCE, until: Timestamp | None = _UNTIL,
                         _p=requires("read")) -> dict[str, Any]:
        """``since``/``until`` filter on ``build_time`` (when the change-point build first ran)."""
        return page("duration_regressions", limit=limit, offset=offset, suite=suite, since=since, until=until)

    @app.get("/v1/insights/agents", response_model=AgentPatterns,
             summary="per agent: executions by status, success rate, the tests its outputs report",
             responses=error_responses(unavailable))
    def list_agent_patterns(agent_name: str | None = Query(None, min_length=1, max_length=200, description="only this agent"),
                            since: Timestamp | None = _SINCE, until: Timestamp | None = _UNTIL,
                            _p=requires("read")) -> dict[str, Any]:
        """From the pushed agent executions (``agent_results``); ``since``/``until`` on their ``timestamp``."""
        try:
            return {"data": agent_patterns(lake(), agent=agent_name, since=since, until=until)}
        except LakeError as exc:
            raise api_error(503, "lake_unavailable", str(exc).splitlines()[0]) from None

    @app.post("/v1/insights/refresh", status_code=202, response_model=RefreshAccepted,
              summary="refresh the insights now (the insights job, in the background)",
              responses=error_responses(unavailable))
    def refresh(suite: str | None = _SUITE, _p=requires("ingest")) -> RefreshAccepted:
        lake()
        job, joined = app.state.insights_refresher.submit(suite)
        return RefreshAccepted(run_id=job.run_id, status=job.status, suite=job.suite, joined=joined)

    @app.get("/v1/insights/refresh/{run_id}", response_model=RefreshStatus, summary="a refresh's state",
             responses=error_responses({404: "refresh_not_found"}))
    def refresh_status(run_id: str = Path(max_length=64), _p=requires("ingest", "read")) -> RefreshStatus:
        job = app.state.insights_refresher.get(run_id)
        if job is None:
            raise api_error(404, "refresh_not_found", "no such refresh (refreshes are kept in memory)")
        return RefreshStatus(run_id=job.run_id, status=job.status, suite=job.suite, counts=job.counts,
                             error=job.error)
