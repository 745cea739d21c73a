"""The HTTP API: ingest jobs, job status, log search, verified raw bytes, provider checks.

``create_app`` takes its collaborators (catalog, object store, job service, key ring,
provider configuration, an httpx client for provider checks) so tests wire moto, mongomock and
respx in; ``server.build_app_from_env`` wires the deployment's. Every endpoint but
``/healthz`` requires an ``X-API-Key`` with the right role; errors are JSON
``{"error": "<code>", "detail": ...}``.

The OpenAPI document at ``/openapi.json`` describes what the app really does, and a
schemathesis run in the test suite holds it to that: every status code an operation can
answer is documented with the ErrorBody shape (401/403 on every authenticated operation, 413
on every body, 422 everywhere, plus each operation's own), ``/metrics`` is ``text/plain``,
and a 405 names the allowed methods in ``Allow``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Header, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from vault_pipeline.api.alerts import register_alert_routes
from vault_pipeline.api.analytics import AnalyticsQueries, lake_row_counts, latest_pass_rates, register_analytics_routes
from vault_pipeline.api.auth import KeyRing, Principal
from vault_pipeline.api.docs import install_offline_docs
from vault_pipeline.api.insights import register_insights_routes
from vault_pipeline.api.jobs import (
    IDEMPOTENCY_TTL_S,
    IdempotencyKeyReusedError,
    IdempotencyKeys,
    JobService,
    QueueFullError,
    hours_in_range,
)
from vault_pipeline.api.middleware import AccessLogMiddleware, BodyLimitMiddleware, RequestMetrics
from vault_pipeline.api.pagination import InvalidCursorError, LogSearch
from vault_pipeline.api.pipeline_metrics import PipelineMetrics
from vault_pipeline.api.promotions import PromotionService, register_routes
from vault_pipeline.api.pushes import PUSH_PATHS, register_push_routes
from vault_pipeline.api.reports import register_report_routes
from vault_pipeline.api.schemas import (
    ErrorBody,
    Health,
    InclusionProof,
    IngestAccepted,
    IngestRequest,
    JobStatus,
    LogPage,
    Timestamp,
    ValidateRequest,
    ValidateResult,
    error_responses,
    utc_sort_key,
)
from vault_pipeline.api.validation import check_provider
from vault_pipeline.core.checksums import checksum
from vault_pipeline.core.identity import is_log_id
from vault_pipeline.core.ledger import LedgerError, record_proof
from vault_pipeline.defs.integrity.ledger_stage import partition_entries
from vault_pipeline.providers.config import ConfigError, VaultConfig
from vault_pipeline.push.service import PushService
from vault_pipeline.storage.catalog import CHECKSUM_MISMATCH, Catalog
from vault_pipeline.storage.lake import DeltaLake
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore, ObjectStoreError

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: object = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


@dataclass
class ApiSettings:
    max_range_hours: int = 168
    max_body_bytes: int = 64 * 1024
    # Pushed test runs and agent results: the API's ceiling; each push provider's own
    # max_body_bytes (vault.yaml) is enforced below it while the body is read.
    max_push_body_bytes: int = 1024 * 1024 * 1024
    validate_timeout_s: float = 10.0
    idempotency_ttl_s: float = IDEMPOTENCY_TTL_S  # how long an Idempotency-Key names its job


# The key goes in a header; declared as an OpenAPI security scheme so clients and fuzzers know
# how to authenticate. auto_error=False: a missing key gets the API's own 401 body.
API_KEY = APIKeyHeader(name="X-API-Key", scheme_name="ApiKey", auto_error=False,
                       description="an API key from VAULT_API_KEYS; its roles decide what it may call")
ROLES_ATTRIBUTE = "vault_required_roles"


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
    lake: DeltaLake | None = None  # /api/v1/analytics/* read it; None: they answer 503 lake_unavailable
    reports: Any = None  # a reports.service.ReportService: /api/v1/analytics/reports* and the dashboard's export
    session_secret: bytes | None = None  # signs the dashboard's session cookies; None: the dashboard is off
    pushes: Any = None  # a push.service.PushService for /v1/test-runs and /v1/agent-executions (made when unset)


def create_app(api: VaultApi) -> FastAPI:
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry)
    # runs, steps, checks, promotions, quarantine and verify results, computed at scrape time
    registry.register(PipelineMetrics.for_api(api))
    jobs_gauge = Gauge("vault_jobs", "ingestion jobs by state", ["state"], registry=registry)
    queue_gauge = Gauge("vault_job_queue_depth", "jobs waiting for a worker", registry=registry)
    lake_rows_gauge = Gauge("delta_lake_row_count", "rows per Delta table", ["table"], registry=registry)
    pass_rate_gauge = Gauge("data_quality_pass_rate", "pass rate of the newest validated partition (last 24 h)",
                            ["suite", "provider"], registry=registry)
    app = FastAPI(title="vault_pipeline audit vault", version="1.0", description="Audit Vault HTTP API",
                  docs_url=None, redoc_url=None)
    install_offline_docs(app)  # Swagger UI and ReDoc from the installed package, not a CDN
    app.state.vault = api
    app.openapi = lambda: _openapi_document(app)
    log_search = LogSearch(api.catalog)
    if api.pushes is None:
        api.pushes = PushService(store=api.store, catalog=api.catalog, config=api.config, clock=api.clock)
    if api.jobs.idempotency is None:
        # Keys live in the catalog, so they outlive this process and are shared by every API
        # process on the same catalog.
        api.jobs.idempotency = IdempotencyKeys(api.catalog, api.settings.idempotency_ttl_s, api.clock)

    # auth ---------------------------------------------------------------------------------
    def requires(*roles: str):
        def dependency(request: Request, x_api_key: str | None = Security(API_KEY)) -> Principal:
            principal = api.keys.authenticate(x_api_key)
            if principal is None:
                raise ApiError(401, "unauthorized", "send a valid X-API-Key header")
            request.state.principal = principal.name
            if not any(principal.may(role) for role in roles):
                raise ApiError(403, "forbidden", f"this endpoint needs one of the roles: {', '.join(roles)}")
            return principal

        setattr(dependency, ROLES_ATTRIBUTE, roles)  # read by _openapi_document to document 401/403
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
        if exc.status_code == 400:
            # FastAPI's "There was an error parsing the body" (e.g. bytes that are not UTF-8): a
            # malformed body like any other, so the documented 422 rather than an undocumented 400.
            return JSONResponse({"error": "invalid_request",
                                 "detail": [{"loc": ["body"], "msg": "the body could not be parsed: send UTF-8 JSON"}]},
                                422)
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status_code, "http_error")
        headers = exc.headers
        if exc.status_code == 405:
            # RFC 9110: Allow lists every method of the resource. Starlette names only the first
            # route matching the path, and a path served by two routes (GET and POST) has two.
            allowed = sorted({method for route in app.routes if isinstance(route, APIRoute)
                              and route.path_regex.match(_request.url.path) for method in route.methods})
            headers = {**(headers or {}), "Allow": ", ".join(allowed)} if allowed else headers
        return JSONResponse({"error": code, "detail": exc.detail}, exc.status_code, headers=headers)

    # ingestion ----------------------------------------------------------------------------
    @app.post("/v1/ingest", status_code=202, response_model=IngestAccepted, summary="start an ingestion job",
              responses=error_responses({
                  404: "unknown_provider: no such provider in vault.yaml",
                  422: "invalid_request (malformed body), invalid_range, range_too_large, range_too_early, "
                       "range_not_complete, or idempotency_key_reused (the key names a job for another request)",
                  429: "queue_full: retry after Retry-After seconds",
              }))
    def ingest(body: IngestRequest, principal: Principal = requires("ingest"),
               idempotency_key: str | None = Header(
                   default=None, alias="Idempotency-Key", min_length=1, max_length=200, examples=["nightly-2026-01-01"],
                   description="repeating a request with the same key returns the same job, also after a restart, "
                               "until the key expires (VAULT_API_IDEMPOTENCY_TTL_HOURS, 24 h); the key is stored "
                               "only as a digest")) -> IngestAccepted:
        # Compared as they came: aware datetimes compare and subtract across offsets, whereas
        # astimezone(UTC) overflows at the ends of datetime's range (0001-01-01T00:00:00+01:00).
        start, end = body.range.start, body.range.end
        if end <= start:
            raise ApiError(422, "invalid_range", "range.end must be after range.start")
        if end - start > timedelta(hours=api.settings.max_range_hours):
            raise ApiError(422, "range_too_large", f"a range may cover at most {api.settings.max_range_hours} hours")
        first = api.config().partitions  # partitions.start in vault.yaml, read per request like the providers
        if start < first.start_time:
            raise ApiError(422, "range_too_early", f"the vault keeps hours from {first.start} on (partitions.start)")
        start, end = start.astimezone(UTC), end.astimezone(UTC)  # safe now: within 2025.. plus max_range_hours
        hours = hours_in_range(start, end)
        last_hour_end = datetime.strptime(hours[-1], "%Y-%m-%d-%H:%M").replace(tzinfo=UTC) + timedelta(hours=1)
        if last_hour_end > api.clock():
            raise ApiError(422, "range_not_complete", "the range reaches into an hour that has not ended yet")
        config = api.config()
        if body.provider_id not in config.providers:
            raise ApiError(404, "unknown_provider", f"no provider {body.provider_id!r}; configured: {sorted(config.providers)}")
        try:
            job, _created = api.jobs.submit(body.provider_id, hours, body.priority, idempotency_key, principal.name)
        except QueueFullError as exc:
            raise ApiError(429, "queue_full", str(exc), {"Retry-After": str(exc.retry_after_s)}) from None
        except IdempotencyKeyReusedError as exc:
            raise ApiError(422, "idempotency_key_reused",
                           f"this Idempotency-Key already names job {exc} for a different provider or range") from None
        return IngestAccepted(job_id=job.job_id, status="queued" if job.launched == 0 else "processing",
                              estimated_completion_ms=api.jobs.estimated_completion_ms(job))

    @app.get("/v1/jobs/{job_id}", response_model=JobStatus, summary="an ingestion job's state",
             responses=error_responses({404: "job_not_found"}))
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
    @app.get("/v1/logs", response_model=LogPage, summary="search the index, ordered by (timestamp, id)",
             responses=error_responses({422: "invalid_request, invalid_cursor (not a next_cursor this API returned) "
                                             "or offset_with_cursor (give one of them)"}))
    def search_logs(
        _p: Principal = requires("read", "audit"),
        limit: int = Query(50, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=10_000_000),
        provider_id: str | None = Query(None, max_length=64),
        start: Timestamp | None = Query(None, description="inclusive; an RFC 3339 timestamp with a UTC offset"),
        end: Timestamp | None = Query(None, description="exclusive; an RFC 3339 timestamp with a UTC offset"),
        cursor: str | None = Query(None, min_length=1, max_length=512, pattern=r"^[A-Za-z0-9_-]+$",
                                   description="meta.next_cursor of the previous page (then offset must be 0)"),
    ) -> LogPage:
        bounds = [utc_sort_key(value) if value else None for value in (start, end)]  # the catalog's fixed width
        if cursor is not None and offset:
            raise ApiError(422, "offset_with_cursor", "use either offset or cursor, not both")
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

    @app.get("/v1/logs/{log_id}/raw", summary="a record's exact stored bytes, verified", responses={
        200: {"description": "the record's bytes exactly as the provider sent them",
              "content": {"application/json": {"schema": {}}, "application/xml": {"schema": {"type": "string"}}},
              "headers": {"X-Vault-Checksum": {"description": "sha256:<hex> of the bytes, as indexed",
                                               "schema": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}}}},
        **error_responses({404: "log_not_found (unknown or malformed id)",
                           409: "checksum_mismatch: the stored bytes changed; they are never served",
                           410: "raw_object_missing: the stored object is gone"}),
    })
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
        # A pushed JUnit report's records are <testcase> elements.
        media = "application/xml" if entry.object_key.endswith(".xml") else "application/json"
        return Response(content=data, media_type=media, headers={"X-Vault-Checksum": entry.checksum})

    @app.get("/v1/logs/{log_id}/proof", response_model=InclusionProof, summary="Merkle inclusion proof",
             responses=error_responses({404: "log_not_found, or not_in_ledger (its partition has no ledger entry yet)",
                                        409: "ledger_mismatch: the records no longer match the signed root"}))
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
              summary="check a provider's credentials (configured providers and allowed origins only)",
              responses=error_responses({
                  401: "Invalid Provider Credentials: the provider rejected the key",
                  403: "origin_not_allowed: the url's origin is neither a configured provider's nor in "
                       "api.validate_allowed_origins (nothing was sent), or forbidden: the key lacks the ingest role",
                  404: "unknown_provider",
                  422: "invalid_request (malformed body or url) or not_a_rest_provider",
                  500: "configuration_error: vault.yaml cannot be read (the detail names the key to fix)",
                  502: "provider_unreachable or provider_error",
              }))
    def validate_provider(body: ValidateRequest, _p: Principal = requires("ingest")) -> ValidateResult:
        try:
            config = api.config()  # read per request: the allowlist and the providers may have changed
        except ConfigError as exc:  # nothing is called while the allowlist cannot be read
            raise ApiError(500, "configuration_error", str(exc)) from None
        result = check_provider(body, config, api.http, api.clock(), api.settings.validate_timeout_s)
        if result.error:
            raise ApiError(result.status, result.error, result.detail)
        return ValidateResult(connection=result.connection, latency_ms=result.latency_ms)

    # promotion ----------------------------------------------------------------------------
    if api.promotions is not None:
        register_routes(app, api.promotions, requires, ApiError)

    # analytics ----------------------------------------------------------------------------
    query_durations = Histogram("analytics_query_duration_seconds", "analytics API query time", ["query"],
                                registry=registry)
    register_analytics_routes(app, api, requires, ApiError, query_durations)
    register_report_routes(app, api, requires, ApiError)
    register_insights_routes(app, api, requires, ApiError)
    register_push_routes(app, api, requires, ApiError)
    register_alert_routes(app, api, requires, ApiError)  # GET /v1/alerts: the alert outbox

    # operations ---------------------------------------------------------------------------
    @app.get("/healthz", response_model=Health, summary="catalog and object store reachable (no key needed)",
             responses={503: {"model": Health, "description": "a dependency is unreachable"}})
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

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics",
             responses={200: {"description": "Prometheus text exposition format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}})
    def prometheus_metrics(_p: Principal = requires("read", "admin")) -> Response:
        for state, count in api.jobs.counts_by_state().items():
            jobs_gauge.labels(state).set(count)
        queue_gauge.set(api.jobs.queue_depth())
        if api.lake is not None:
            # Read at scrape time: the counts come from Delta's file statistics, the pass rates
            # from the newest check report per suite and provider of the last 24 hours.
            try:
                for table, rows in lake_row_counts(api.lake).items():
                    lake_rows_gauge.labels(table).set(rows)
                pass_rate_gauge.clear()
                queries = AnalyticsQueries(api.lake, api.catalog, api.store)
                for (suite, provider), rate in latest_pass_rates(queries, api.clock()).items():
                    pass_rate_gauge.labels(suite, provider).set(rate)
            except Exception as exc:  # noqa: BLE001 - a scrape reports what it can, it never fails
                log.warning("metrics: lake figures unavailable (%s)", type(exc).__name__)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # dashboard ----------------------------------------------------------------------------
    if api.session_secret:
        from vault_pipeline.api.dashboard import register_dashboard  # jinja2/plotly only when it is on

        register_dashboard(app, api, requires, ApiError)

    # The last middleware added runs outermost: the access log wraps the body limit, so requests
    # refused for their size are logged and counted like every other request.
    app.add_middleware(BodyLimitMiddleware, max_bytes=api.settings.max_body_bytes,
                       overrides={path: api.settings.max_push_body_bytes for path in PUSH_PATHS})
    app.add_middleware(AccessLogMiddleware, catalog=api.catalog, metrics=metrics)
    return app


def _required_roles(dependant) -> tuple[str, ...] | None:
    """The roles a route's ``requires`` dependency asks for (None: the route needs no key)."""
    for sub in dependant.dependencies:
        roles = getattr(sub.call, ROLES_ATTRIBUTE, None)
        if roles is not None:
            return roles
        roles = _required_roles(sub)
        if roles is not None:
            return roles
    return None


_ERROR_REF = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def _openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, completed with what holds for every operation alike.

    FastAPI documents its own 422 shape (HTTPValidationError), which this API never sends;
    the auth dependency and the body limit apply to whole groups of operations, so their
    401/403/413 are added here rather than repeated on each route.
    """
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    roles_by_operation = {}
    for route in app.routes:
        if isinstance(route, APIRoute):
            for method in route.methods:
                roles_by_operation[(route.path_format, method.lower())] = _required_roles(route.dependant)
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            if "422" in responses or "requestBody" in operation or operation.get("parameters"):
                described = responses.get("422", {}).get("description", "")
                responses["422"] = {
                    "description": described if described and described != "Validation Error"
                    else "invalid_request: the request is malformed; detail lists each problem",
                    "content": _ERROR_REF,
                }
            roles = roles_by_operation.get((path, method))
            if roles:
                responses.setdefault("401", {"description": "unauthorized: no valid X-API-Key", "content": _ERROR_REF})
                responses.setdefault("403", {"description": f"forbidden: needs one of the roles {', '.join(roles)}"
                                                            " (or admin)", "content": _ERROR_REF})
                note = f"Needs an X-API-Key with one of the roles: {', '.join(roles)} (admin may call everything)."
                operation["description"] = f"{operation.get('description', '').strip()}\n\n{note}".strip()
            if "requestBody" in operation:
                responses.setdefault("413", {"description": "body_too_large", "content": _ERROR_REF})
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorBody" not in schemas:  # every document refers to it now, even one whose routes never named it
        error_body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(error_body.pop("$defs", {}))
        schemas["ErrorBody"] = error_body
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape, replaced above
        if f'"#/components/schemas/{unused}"' not in json.dumps(document):
            schemas.pop(unused, None)
    app.openapi_schema = document
    return document


def _raw_prefix(view) -> str:
    """The object-store prefix the job's runs write under: its hour, its day, or its provider."""
    first, last = view.hours[0], view.hours[-1]
    if first == last:
        return f"raw/{view.provider}/{first[:4]}/{first[5:7]}/{first[8:10]}/{first[11:13]}/"
    if first[:10] == last[:10]:
        return f"raw/{view.provider}/{first[:4]}/{first[5:7]}/{first[8:10]}/"
    return f"raw/{view.provider}/"
