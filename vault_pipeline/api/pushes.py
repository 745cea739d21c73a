"""``/v1/test-runs`` and ``/v1/agent-executions``: results pushed in by CI jobs and QA agents.

``POST /v1/test-runs?provider_id&suite&commit&branch&build&started_at`` takes a JUnit XML report
(pytest, Surefire, Gradle, jest-junit, gotestsum, ...) or a JSON array of test results, and
``POST /v1/agent-executions?provider_id`` an agent's execution result (one JSON object, or an
array), both with role ``ingest``. The body is read no further than the provider's
``max_body_bytes`` (413 past it), checked and stored by ``push.service.PushService``, and the
hour's run is launched at once, or joined while one for the same hour and provider still waits
in the queue: 202 with the run id, the counts the body holds and the job. ``GET
/v1/test-runs/{run_id}`` (and ``/v1/agent-executions/{execution_id}``) answers ``pending``,
``processing``, ``completed`` or ``failed`` from that job's Dagster run, with the counts and the
records the run indexed, like ``/v1/jobs``. Pushing the same body again is the same run: it is
answered with the same id, and re-launched only when its last run failed.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Path, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from vault_pipeline.api.jobs import QueueFullError
from vault_pipeline.api.schemas import error_responses
from vault_pipeline.push.service import (
    AGENT_EXECUTION,
    TEST_RUN,
    PushNotFound,
    PushParameters,
    PushReceipt,
    PushRefused,
)

PUSH_PATHS = ("/v1/test-runs", "/v1/agent-executions")
_STATUS = {"unknown_provider": 404, "conflicting_push": 409, "body_too_large": 413, "push_busy": 429}


State = Literal["pending", "processing", "completed", "failed"]


class _Push(BaseModel):
    run_id: str
    provider_id: str
    partition: str
    format: str
    counts: dict[str, int]
    job_id: str | None


class PushAccepted(_Push):
    status: State
    duplicate: bool
    notes: list[str]


class PushStatus(_Push):
    state: State
    records_synced: int
    dead_letters: int  # of its records, rejected by input validation (kept under dlq/, never in the lake)
    rejections: list[dict[str, Any]]  # the first of them: log_id and the expectations it failed
    error: str | None
    received_at: str
    started_at: str
    suite: str | None
    commit: str | None
    branch: str | None
    build: int | None


_TEST_RUN_BODY = {
    "required": True,
    "content": {
        "application/xml": {"schema": {"type": "string"}, "example": '<testsuite name="unit"><testcase classname="t" '
                            'name="test_ok" time="0.01"/></testsuite>'},
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
    },
}
_AGENT_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
                                     "example": {"timestamp": "2026-01-23T10:00:00.000Z", "agent_name": "QA_Assistant",
                                                 "status": "success", "output": {"test_count": 42, "passed": 40}}}},
}
_REFUSALS = {
    404: "unknown_provider: no such provider in vault.yaml",
    409: "conflicting_push: this body was pushed before with other metadata",
    413: "body_too_large: over the provider's max_body_bytes (nothing is kept)",
    422: "missing_parameter, not_a_push_provider, wrong_kind, invalid_build, invalid_commit, invalid_started_at, "
         "started_in_future, before_first_hour, or the body refused (malformed_body, unsafe_xml, not_test_results, "
         "unsupported_encoding, nesting_too_deep, no_test_cases, invalid_timestamp, mixed_hours; kept under dlq/)",
    429: "queue_full: the body is stored; push it again after Retry-After seconds to launch its run",
}


def register_push_routes(app, api, requires, api_error: type[Exception]) -> None:
    service = api.pushes

    async def read_body(request: Request, provider_id: str | None) -> bytes:
        """The body, read no further than the provider's limit (a bigger one is refused at once)."""
        provider = api.config().providers.get(provider_id or "")
        limit = provider.max_body_bytes if provider is not None and provider.type == "push" else None
        declared = request.headers.get("content-length")
        if limit is not None and declared and declared.isdigit() and int(declared) > limit:
            raise api_error(413, "body_too_large", f"the body is {declared} bytes; provider {provider_id!r} accepts "
                                                   f"at most {limit} (max_body_bytes in vault.yaml)")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if limit is not None and size > limit:
                raise api_error(413, "body_too_large", f"the body is over {limit} bytes, the most provider "
                                                       f"{provider_id!r} accepts (max_body_bytes in vault.yaml)")
            chunks.append(chunk)
        return b"".join(chunks)

    def launch(receipt: PushReceipt, principal: str) -> str | None:
        """The job landing this push: the last one while it is pending, running or done, else a new
        (or queued) one: its last run failed, or it is known nowhere (accepted by an API process that
        stopped before launching it; runs are idempotent, so launching again costs time, not data)."""
        if receipt.jobs:
            view = api.jobs.view(receipt.jobs[-1])
            if view is not None and view.state != "failed":
                return receipt.jobs[-1]
        try:
            job, _created = api.jobs.submit(receipt.context.provider, [receipt.context.hour], "normal",
                                            principal=principal, join_started=False)
        except QueueFullError as exc:
            raise api_error(429, "queue_full", f"{exc}; the body is stored as {receipt.push_id}: push it again "
                                               "to launch its run", {"Retry-After": str(exc.retry_after_s)}) from None
        service.record_job(receipt, job.job_id)
        return job.job_id

    def accept(what: str, request: Request, body: bytes, provider_id: str | None, principal, **params) -> dict:
        launched: list[str | None] = []
        try:
            receipt = service.accept(what, provider_id, body, content_type=request.headers.get("content-type"),
                                     parameters=PushParameters(**params), sent_by=principal.name,
                                     then=lambda r: launched.append(launch(r, principal.name)))
        except PushRefused as exc:
            detail: Any = {"message": str(exc), "parameter": exc.parameter} if exc.parameter else str(exc)
            raise api_error(_STATUS.get(exc.code, 422), exc.code, detail) from None
        job_id = launched[0]
        state = state_of(receipt)[0]
        return PushAccepted(run_id=receipt.push_id, status=state, provider_id=receipt.context.provider,
                            partition=receipt.partition, format=receipt.context.format, counts=receipt.counts,
                            duplicate=receipt.duplicate, job_id=job_id, notes=receipt.notes).model_dump()

    def state_of(receipt: PushReceipt) -> tuple[str, int, str | None]:
        if not receipt.jobs:
            return "pending", 0, None
        view = api.jobs.view(receipt.jobs[-1])
        if view is None:
            return "pending", 0, None
        return view.state, view.records_synced, view.error

    def status(what: str, push_id: str) -> dict:
        try:
            receipt = service.get(push_id, what)
        except PushNotFound:
            noun = "test run" if what == TEST_RUN else "agent execution"
            raise api_error(404, "not_found", f"no {noun} {push_id}") from None
        state, records, error = state_of(receipt)
        context = receipt.context
        rejected, letters = service.rejections(receipt, limit=20) if state in ("completed", "failed") else (0, [])
        return PushStatus(run_id=receipt.push_id, state=state, provider_id=context.provider, partition=receipt.partition,
                          format=context.format, counts=receipt.counts, records_synced=records, dead_letters=rejected,
                          rejections=[{"log_id": letter.log_id, "reason": letter.reason} for letter in letters],
                          job_id=receipt.jobs[-1] if receipt.jobs else None, error=error,
                          received_at=context.received_at, started_at=context.started_at, suite=context.suite,
                          commit=context.commit, branch=context.branch, build=context.build).model_dump()

    @app.post("/v1/test-runs", status_code=202, response_model=PushAccepted, summary="push a test run (JUnit XML or JSON)",
              openapi_extra={"requestBody": _TEST_RUN_BODY}, responses=error_responses(_REFUSALS))
    async def push_test_run(
        request: Request,
        provider_id: str | None = Query(None, min_length=1, max_length=64, description="a provider of type: push, kind test_result"),
        suite: str | None = Query(None, min_length=1, max_length=200, description="every case's suite (default: its testsuite's name)"),
        commit: str | None = Query(None, min_length=1, max_length=200, description="the revision under test"),
        branch: str | None = Query(None, min_length=1, max_length=200),
        build: str | None = Query(None, min_length=1, max_length=18, pattern=r"^[0-9]+$", description="the CI build number"),
        started_at: str | None = Query(None, min_length=1, max_length=64,
                                       description="when the run started (RFC 3339 with an offset); default: the "
                                                   "report's zoned timestamp, else now"),
        principal=requires("ingest"),
    ) -> dict:
        body = await read_body(request, provider_id)
        # Parsing and storing block: off the event loop, as FastAPI runs plain routes.
        return await run_in_threadpool(accept, TEST_RUN, request, body, provider_id, principal, suite=suite,
                                       commit=commit, branch=branch, build=build, started_at=started_at)

    @app.get("/v1/test-runs/{run_id}", response_model=PushStatus, summary="a pushed test run's state",
             responses=error_responses({404: "not_found"}))
    def test_run_status(run_id: str = Path(..., max_length=64), _p=requires("ingest", "read")) -> dict:
        return status(TEST_RUN, run_id)

    @app.post("/v1/agent-executions", status_code=202, response_model=PushAccepted,
              summary="push an agent's execution result(s)", openapi_extra={"requestBody": _AGENT_BODY},
              responses=error_responses(_REFUSALS))
    async def push_agent_execution(
        request: Request,
        provider_id: str | None = Query(None, min_length=1, max_length=64, description="a provider of type: push, kind agent_result"),
        principal=requires("ingest"),
    ) -> dict:
        body = await read_body(request, provider_id)
        return await run_in_threadpool(accept, AGENT_EXECUTION, request, body, provider_id, principal)

    @app.get("/v1/agent-executions/{execution_id}", response_model=PushStatus, summary="a pushed agent execution's state",
             responses=error_responses({404: "not_found"}))
    def agent_execution_status(execution_id: str = Path(..., max_length=64), _p=requires("ingest", "read")) -> dict:
        return status(AGENT_EXECUTION, execution_id)
