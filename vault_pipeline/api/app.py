"""The HTTP API: ingest jobs, job status, log search, verified raw bytes, provider checks.

``create_app`` takes its collaborators (catalog, object store, job service, key ring,
provider configuration, an httpx client for provider checks) so tests wire moto, mongomock and
respx in; ``server.build_app_from_env`` wires the deployment's. Every endpoint but
``/healthz`` requires an ``X-API-Key`` with the right role; errors are JSON
``{"error": "<code>", "detail": ...}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from vault_pipeline.api.auth import KeyRing, Principal
from vault_pipeline.api.jobs import IdempotencyKeyReusedError, JobService, QueueFullError, hours_in_range
from vault_pipeline.api.pagination import InvalidCursorError, LogSearch
from vault_pipeline.api.promotions import PromotionService, register_routes
from vault_pipeline.api.middleware import AccessLogMiddleware, BodyLimitMiddleware, RequestMetrics
from vault_pipeline.api.schemas import (
    ErrorBody, IngestAccepted, IngestRequest, JobStatus, LogPage, ValidateRequest, ValidateResult,
)
from vault_pipeline.api.validation import check_provider
from vault_pipeline.core.checksums import checksum
from vault_pipeline.core.identity import is_log_id
from vault_pipeline.core.ledger import LedgerError, record_proof
from vault_pipeline.defs.integrity.ledger_stage import partition_entries
from vault_pipeline.defs.partitions import HOURLY_START
from vault_pipeline.providers.config import VaultConfig
from vault_pipeline.storage.catalog import CHECKSUM_MISMATCH, Catalog, fixed_width_timestamp
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore, ObjectStoreError

PARTITIONS_START = datetime.strptime(HOURLY_START, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: object = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


@dataclass
class ApiSettings:
    max_range_hours: int = 168
    max_body_bytes: int = 64 * 1024
    validate_timeout_s: float = 10.0


@dataclass
class VaultApi:
    catalog: Catalog
    store: ObjectStore
    jobs: JobService
    keys: KeyRing
    config: Callable[[], VaultConfig]
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))
    settings: ApiSettings = field(default_factory=ApiSettings)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    promotions: PromotionService | None = None  # /v1/promotions and /v1/quarantine when set


def create_app(api: VaultApi) -> FastAPI:
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry)
    jobs_gauge = Gauge("vault_jobs", "ingestion jobs by state", ["state"], registry=registry)
    queue_gauge = Gauge("vault_job_queue_depth", "jobs waiting for a worker", registry=registry)
    app = FastAPI(title="vault_pipeline audit vault", version="1.0", description="Audit Vault HTTP API")
    app.state.vault = api
    log_search = LogSearch(api.catalog)

    # auth ---------------------------------------------------------------------------------
    def requires(*roles: str):
        def dependency(request: Request, x_api_key: str | None = Header(default=None, alias="X-API-Key")) -> Principal:
            principal = api.keys.authenticate(x_api_key)
            if principal is None:
                raise ApiError(401, "unauthorized", "send a valid X-API-Key header")
            request.state.principal = principal.name
            if not any(principal.may(role) for role in roles):
                raise ApiError(403, "forbidden", f"this endpoint needs one of the roles: {', '.join(roles)}")
            return principal

        return Depends(dependency)

    # errors -------------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        # "detail" is optional: the contract's 401 body is exactly {"error": "Invalid Provider Credentials"}.
        return JSONResponse(ErrorBody(error=exc.error, detail=exc.detail).model_dump(exclude_none=True), exc.status,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse({"error": "invalid_request", "detail": detail}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "detail": exc.detail}, exc.status_code)

    # ingestion ----------------------------------------------------------------------------
    @app.post("/v1/ingest", status_code=202, response_model=IngestAccepted,
              responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 429: {"model": ErrorBody}})
    def ingest(body: IngestRequest, _p: Principal = requires("ingest"),
               idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200)) -> IngestAccepted:
        start, end = body.range.start.astimezone(UTC), body.range.end.astimezone(UTC)
        if end <= start:
            raise ApiError(422, "invalid_range", "range.end must be after range.start")
        if end - start > timedelta(hours=api.settings.max_range_hours):
            raise ApiError(422, "range_too_large", f"a range may cover at most {api.settings.max_range_hours} hours")
        if start < PARTITIONS_START:
            raise ApiError(422, "range_too_early", f"the vault keeps hours from {HOURLY_START} on")
        hours = hours_in_range(start, end)
        last_hour_end = datetime.strptime(hours[-1], "%Y-%m-%d-%H:%M").replace(tzinfo=UTC) + timedelta(hours=1)
        if last_hour_end > api.clock():
            raise ApiError(422, "range_not_complete", "the range reaches into an hour that has not ended yet")
        config = api.config()
        if body.provider_id not in config.providers:
            raise ApiError(404, "unknown_provider", f"no provider {body.provider_id!r}; configured: {sorted(config.providers)}")
        try:
            job, _created = api.jobs.submit(body.provider_id, hours, body.priority, idempotency_key)
        except QueueFullError as exc:
            raise ApiError(429, "queue_full", str(exc), {"Retry-After": str(exc.retry_after_s)}) from None
        except IdempotencyKeyReusedError as exc:
            raise ApiError(422, "idempotency_key_reused",
                           f"this Idempotency-Key already names job {exc} for a different provider or range") from None
        return IngestAccepted(job_id=job.job_id, status="queued" if job.launched == 0 else "processing",
                              estimated_completion_ms=api.jobs.estimated_completion_ms(job))

    @app.get("/v1/jobs/{job_id}", response_model=JobStatus, responses={404: {"model": ErrorBody}})
    def job_status(job_id: str, _p: Principal = requires("ingest", "read")) -> JobStatus:
        if len(job_id) > 64 or not all(c.isalnum() or c == "-" for c in job_id):
            raise ApiError(404, "job_not_found", "no such job")
        view = api.jobs.view(job_id)
        if view is None:
            raise ApiError(404, "job_not_found", "no such job")
        return JobStatus(
            job_id=view.job_id, state=view.state,
            metrics={"records_synced": view.records_synced, "bytes_written": view.bytes_written},
            artifacts={"s3_path": api.store.uri(_raw_prefix(view))},
            runs=[{"run_id": r.run_id, "partition": r.partition, "status": r.status} for r in view.runs],
            error=view.error,
        )

    # logs ---------------------------------------------------------------------------------
    @app.get("/v1/logs", response_model=LogPage, responses={422: {"model": ErrorBody}})
    def search_logs(
        _p: Principal = requires("read", "audit"),
        limit: int = Query(50, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=10_000_000),
        provider_id: str | None = Query(None, max_length=64),
        start: datetime | None = Query(None),
        end: datetime | None = Query(None),
        cursor: str | None = Query(None, max_length=512, description="meta.next_cursor of the previous page"),
    ) -> LogPage:
        bounds = []
        for name, value in (("start", start), ("end", end)):
            if value is not None and value.tzinfo is None:
                raise ApiError(422, "invalid_request", f"{name} needs a UTC offset, e.g. 2026-01-01T00:00:00Z")
            bounds.append(fixed_width_timestamp(value.astimezone(UTC)) if value else None)
        if cursor is not None and offset:
            raise ApiError(422, "invalid_request", "use either offset or cursor, not both")
        try:
            page = log_search.page(provider=provider_id, start=bounds[0], end=bounds[1], limit=limit, offset=offset,
                                   cursor=cursor)
        except InvalidCursorError as exc:
            raise ApiError(422, "invalid_cursor", str(exc)) from None
        return LogPage(
            data=[{"id": e.log_id, "checksum": e.checksum, "timestamp": e.timestamp, "provider_id": e.provider,
                   "partition": e.partition, "size": e.length, "status": e.status} for e in page.items],
            meta={"total_count": page.total_count, "has_more": page.next_cursor is not None,
                  "limit": limit, "offset": offset, "next_cursor": page.next_cursor},
        )

    @app.get("/v1/logs/{log_id}/raw", responses={200: {"content": {"application/json": {}}}, 404: {"model": ErrorBody},
                                                 409: {"model": ErrorBody}, 410: {"model": ErrorBody}})
    def raw_log(log_id: str, _p: Principal = requires("audit")) -> Response:
        entry = api.catalog.get_record(log_id) if is_log_id(log_id) else None
        if entry is None:
            raise ApiError(404, "log_not_found", "no log with that id")
        try:
            data = api.store.get_range(entry.object_key, entry.offset, entry.length)
        except ObjectMissingError:
            raise ApiError(410, "raw_object_missing", f"the stored object {entry.object_key} is gone") from None
        except ObjectStoreError:
            data = b""  # shorter than the indexed range: the bytes changed
        if checksum(data) != entry.checksum:
            api.catalog.set_status([log_id], CHECKSUM_MISMATCH)
            raise ApiError(409, "checksum_mismatch", "stored bytes no longer match the indexed checksum; not served")
        return Response(content=data, media_type="application/json", headers={"X-Vault-Checksum": entry.checksum})

    @app.get("/v1/logs/{log_id}/proof", responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}})
    def log_proof(log_id: str, _p: Principal = requires("audit")) -> JSONResponse:
        """Leaf hash, audit path and the signed ledger entry: verifiable without trusting the vault."""
        entry = api.catalog.get_record(log_id) if is_log_id(log_id) else None
        if entry is None:
            raise ApiError(404, "log_not_found", "no log with that id")
        stored = partition_entries(api.catalog, entry.partition)  # not its promotion decisions
        if not stored:
            raise ApiError(404, "not_in_ledger", f"partition {entry.partition} has no ledger entry yet")
        ledger_entry = stored[-1]
        records = list(api.catalog.iter_partition_records(entry.partition))  # log order
        index = next(i for i, record in enumerate(records) if record.log_id == log_id)
        try:
            proof = record_proof(ledger_entry, [record.checksum for record in records], index)
        except LedgerError as exc:
            raise ApiError(409, "ledger_mismatch", str(exc)) from None
        return JSONResponse(proof | {"log_id": log_id})

    # providers ----------------------------------------------------------------------------
    @app.post("/v1/providers/validate", response_model=ValidateResult,
              responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 502: {"model": ErrorBody}})
    def validate_provider(body: ValidateRequest, _p: Principal = requires("ingest")) -> ValidateResult:
        result = check_provider(body, api.config(), api.http, api.clock(), api.settings.validate_timeout_s)
        if result.error:
            raise ApiError(result.status, result.error, result.detail)
        return ValidateResult(connection=result.connection, latency_ms=result.latency_ms)

    # promotion ----------------------------------------------------------------------------
    if api.promotions is not None:
        register_routes(app, api.promotions, requires, ApiError)

    # operations ---------------------------------------------------------------------------
    @app.get("/healthz")
    def healthz() -> JSONResponse:
        checks = {}
        for name, probe in (("catalog", lambda: api.catalog.count_records(provider="__healthz__")),
                            ("object_store", lambda: api.store.exists("healthz"))):
            started = time.perf_counter()
            try:
                probe()
                checks[name] = {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
            except Exception as exc:  # a health probe reports any failure, it never raises
                checks[name] = {"status": "unreachable", "detail": type(exc).__name__}
        healthy = all(c["status"] == "ok" for c in checks.values())
        return JSONResponse({"status": "ok" if healthy else "degraded", "checks": checks}, 200 if healthy else 503)

    @app.get("/metrics")
    def prometheus_metrics(_p: Principal = requires("read", "admin")) -> Response:
        for state, count in api.jobs.counts_by_state().items():
            jobs_gauge.labels(state).set(count)
        queue_gauge.set(api.jobs.queue_depth())
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # The last middleware added runs outermost: the access log wraps the body limit, so requests
    # refused for their size are logged and counted like every other request.
    app.add_middleware(BodyLimitMiddleware, max_bytes=api.settings.max_body_bytes)
    app.add_middleware(AccessLogMiddleware, catalog=api.catalog, metrics=metrics)
    return app


def _raw_prefix(view) -> str:
    """The object-store prefix the job's runs write under: its hour, its day, or its provider."""
    first, last = view.hours[0], view.hours[-1]
    if first == last:
        return f"raw/{view.provider}/{first[:4]}/{first[5:7]}/{first[8:10]}/{first[11:13]}/"
    if first[:10] == last[:10]:
        return f"raw/{view.provider}/{first[:4]}/{first[5:7]}/{first[8:10]}/"
    return f"raw/{view.provider}/"
