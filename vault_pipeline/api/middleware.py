"""Cross-cutting HTTP concerns: body size limit, access log, request metrics.

Pure ASGI middleware, so the size limit counts bytes as they arrive (a chunked upload cannot
slip past a Content-Length check) and every request, refused ones included, is written to
the catalog's access log with who made it, when, what, the outcome and the latency.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from vault_pipeline.storage.catalog import AccessEntry, Catalog, fixed_width_timestamp

log = logging.getLogger(__name__)


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("vault_api_requests", "HTTP requests", ["method", "route", "status"], registry=registry)
        self.latency = Histogram(
            "vault_api_request_seconds", "HTTP request latency", ["route"], registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )


class BodyLimitMiddleware:
    def __init__(self, app, max_bytes: int, overrides: dict[str, int] | None = None) -> None:
        """``overrides``: another limit for the paths named (pushed test reports are far larger
        than any JSON request; their routes apply each provider's own limit below it)."""
        self.app, self.default_max_bytes, self.overrides = app, max_bytes, overrides or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.overrides.get(scope.get("path", ""), self.default_max_bytes)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _too_large(send, limit)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, limit)


class _BodyTooLarge(HTTPException):
    """Raised from ``receive``. An HTTPException, so FastAPI's body parsing re-raises it (as a
    413) instead of turning it into a 400 "There was an error parsing the body"."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request bodies are limited to {limit} bytes")


async def _too_large(send, limit: int) -> None:
    body = json.dumps({"error": "body_too_large", "detail": f"request bodies are limited to {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class AccessLogMiddleware:
    """Writes one AccessEntry per request; the principal is set on scope state by auth."""

    def __init__(self, app, catalog: Catalog, metrics: RequestMetrics) -> None:
        self.app, self.catalog, self.metrics = app, catalog, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500
        scope.setdefault("state", {})

        async def capture(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            route_path = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route_path, str(status)).inc()
            self.metrics.latency.labels(route_path).observe(elapsed)
            client = scope.get("client") or ("", 0)
            entry = AccessEntry(
                at=fixed_width_timestamp(datetime.now(UTC)),
                principal=scope["state"].get("principal", "anonymous"),
                method=scope["method"],
                path=scope["path"][:512],  # query strings are not logged
                status=status,
                latency_ms=round(elapsed * 1000, 3),
                client=str(client[0]),
            )
            try:
                # A catalog write is blocking I/O: keep it off the event loop.
                await run_in_threadpool(self.catalog.log_access, [entry])
            except Exception:  # the access log must never turn a served request into a 500
                log.exception("could not write the access log entry")
