"""``POST /v1/providers/validate``: does a provider accept these credentials, and how safely?

The check really calls the provider (a configured ``provider_id``, or a ``url``) with the
given key, the way ingestion would: ``secure`` only over HTTPS with a verified certificate
(httpx verifies by default), ``insecure`` over plain HTTP, 401 when the provider rejects the
key, 502 when it cannot be reached. The key is used for this one request and never logged.

The server only ever calls origins it already trusts, so an ingest key cannot make it probe
other hosts and ports (SSRF): the origin (scheme, host, port) of a configured rest provider,
or one listed in ``api.validate_allowed_origins`` of ``vault.yaml``. Any other URL is refused
with 403 ``origin_not_allowed`` before a single byte is sent; redirects are never followed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from vault_pipeline.api.schemas import ValidateRequest
from vault_pipeline.core.windows import iso_z
from vault_pipeline.providers.config import VaultConfig, origin_of

INVALID_CREDENTIALS = "Invalid Provider Credentials"


@dataclass(frozen=True, slots=True)
class CheckResult:
    connection: str = "insecure"
    latency_ms: int = 0
    status: int = 200
    error: str | None = None
    detail: str | None = None


def allowed_origins(config: VaultConfig) -> set[str]:
    """The origins a check may call: every configured rest provider's, and the allowlist."""
    origins = {origin_of(p.url) for p in config.providers.values() if p.type == "rest" and p.url}
    return {o for o in origins if o} | set(config.api.validate_allowed_origins)


def check_provider(body: ValidateRequest, config: VaultConfig, http: httpx.Client, now: datetime, timeout_s: float) -> CheckResult:
    headers = {"Accept": "application/json"}
    params: dict[str, str] = {}
    if body.provider_id is not None:
        if body.provider_id not in config.providers:
            return CheckResult(status=404, error="unknown_provider", detail=f"no provider {body.provider_id!r}")
        provider = config.providers[body.provider_id]
        if provider.type != "rest":
            return CheckResult(status=422, error="not_a_rest_provider", detail=f"{body.provider_id!r} is a {provider.type} provider")
        url = body.url or provider.url
        if provider.auth.type == "header":
            headers[provider.auth.name] = body.api_key
        else:
            headers["Authorization"] = f"Bearer {body.api_key}"
        hour = now.replace(minute=0, second=0, microsecond=0)
        params = {provider.window_params.start: iso_z(hour - timedelta(hours=1)), provider.window_params.end: iso_z(hour)}
    elif body.url:
        url = body.url
        headers["Authorization"] = f"Bearer {body.api_key}"
    else:
        return CheckResult(status=422, error="invalid_request", detail="give provider_id or url")
    if not url.startswith(("https://", "http://")):
        return CheckResult(status=422, error="invalid_request", detail="url must start with https:// or http://")
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return CheckResult(status=422, error="invalid_request", detail=f"url cannot be parsed: {exc}")
    origin = origin_of(target)
    if origin is None:
        return CheckResult(status=422, error="invalid_request", detail="url needs a host, e.g. https://audit.example.com/v1/events")
    if origin not in allowed_origins(config):
        return CheckResult(
            status=403, error="origin_not_allowed",
            detail=f"{origin} is neither the origin of a provider configured in vault.yaml nor listed in its "
                   f"api.validate_allowed_origins, so the vault will not call it; validate a configured provider by "
                   f"provider_id, or have an operator add the origin to api.validate_allowed_origins",
        )
    started = time.perf_counter()
    try:
        response = http.get(target, params=params, headers=headers, timeout=timeout_s, follow_redirects=False)
    except httpx.ConnectError as exc:
        cause = "TLS certificate could not be verified" if "CERTIFICATE" in str(exc).upper() else "connection failed"
        return CheckResult(status=502, error="provider_unreachable", detail=f"{cause}: {type(exc).__name__}")
    except httpx.TimeoutException:
        return CheckResult(status=502, error="provider_unreachable", detail=f"no answer within {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return CheckResult(status=502, error="provider_unreachable", detail=type(exc).__name__)
    latency_ms = int(round((time.perf_counter() - started) * 1000))
    if response.status_code in (401, 403):
        return CheckResult(status=401, error=INVALID_CREDENTIALS)
    if response.status_code >= 400:
        return CheckResult(status=502, error="provider_error", detail=f"provider answered HTTP {response.status_code}")
    secure = response.url.scheme == "https"
    return CheckResult(connection="secure" if secure else "insecure", latency_ms=latency_ms)
