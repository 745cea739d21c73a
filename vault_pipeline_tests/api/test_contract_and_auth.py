"""Scenario: the API's contract at its edges, as callers who get things wrong (or attack it) see it.

Who may do what (401 without a valid key, 403 without the role), what a malformed request gets
back (422 naming the problem, 404 for an unknown provider, 413 for huge bodies, 404 for hostile
log ids), how jobs move through ``pending``, ``processing``, ``completed`` and ``failed`` (an
unreachable provider fails its job with a readable error), back-pressure (429 with
``Retry-After`` when the queue is full), ``Idempotency-Key``, provider validation over real
loopback servers (``secure`` only after a verified TLS handshake), the operational endpoints
(``/healthz``, Prometheus ``/metrics``, ``/openapi.json``) and the access log, which records
who called what and the outcome but never a key.
"""

from __future__ import annotations

import json
import secrets
import threading

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from vault_pipeline.api.app import ApiSettings
from vault_pipeline_tests.fixtures.payloads import hour_records
from vault_pipeline_tests.fixtures.provider_server import LoopbackProvider, make_tls_material, running

HOUR, NEXT_HOUR = "2026-01-01T11", "2026-01-01T12"
UNKNOWN_LOG = "log_" + "0123456789abcdef" * 2
UNKNOWN_JOB = "00000000-0000-4000-8000-000000000000"


# -- auth -----------------------------------------------------------------------------------------
ENDPOINTS = {  # name -> (method, path, body); bodies chosen so that no job is started
    "ingest": ("POST", "/v1/ingest", {"provider_id": "no_such_provider", "range": {"start": "2026-01-01T00:00:00Z",
                                                                                    "end": "2026-01-01T01:00:00Z"}}),
    "job": ("GET", f"/v1/jobs/{UNKNOWN_JOB}", None),
    "logs": ("GET", "/v1/logs", None),
    "raw": ("GET", f"/v1/logs/{UNKNOWN_LOG}/raw", None),
    "validate": ("POST", "/v1/providers/validate", {"provider_type": "rest", "provider_id": "no_such_provider",
                                                    "api_key": "k"}),
    "metrics": ("GET", "/metrics", None),
}
ALLOWED = {  # endpoint -> principals whose roles admit them (the status they then get is the endpoint's own)
    "ingest": {"ingester", "operator", "admin"},
    "job": {"ingester", "reader", "operator", "admin"},
    "logs": {"reader", "auditor", "operator", "admin"},
    "raw": {"auditor", "operator", "admin"},
    "validate": {"ingester", "operator", "admin"},
    "metrics": {"reader", "operator", "admin"},
}
ANSWER_WHEN_ALLOWED = {"ingest": 404, "job": 404, "logs": 200, "raw": 404, "validate": 404, "metrics": 200}


def test_every_endpoint_needs_a_valid_key_and_the_right_role(vault_service_factory):
    vault = vault_service_factory(stack="embedded")
    for endpoint, (method, path, body) in ENDPOINTS.items():
        for key in (None, "", "not-a-key-of-this-vault", vault.keys["admin"] + "x"):
            response = vault.api.request(method, path, json=body, key=key)
            assert response.status_code == 401, (endpoint, key, response.text)
            assert response.json()["error"] == "unauthorized"
        for principal in vault.keys:
            response = vault.client(principal).request(method, path, json=body)
            expected = ANSWER_WHEN_ALLOWED[endpoint] if principal in ALLOWED[endpoint] else 403
            assert response.status_code == expected, (endpoint, principal, response.text)
            if expected == 403:
                assert response.json()["error"] == "forbidden"
    assert vault.api.healthz().status_code == 200  # the one endpoint without a key


# -- bad bodies -------------------------------------------------------------------------------------
GOOD_RANGE = {"start": f"{HOUR}:00:00Z", "end": f"{NEXT_HOUR}:00:00Z"}


BAD_BODIES = [  # (what is wrong, body, error code, a word the detail must contain)
    ("provider_id is a number", {"provider_id": 123, "range": GOOD_RANGE}, "invalid_request", "provider_id"),
    ("provider_id is a list", {"provider_id": ["acme"], "range": GOOD_RANGE}, "invalid_request", "provider_id"),
    ("provider_id is empty", {"provider_id": "", "range": GOOD_RANGE}, "invalid_request", "provider_id"),
    ("start is Unix seconds", {"provider_id": "acme", "range": {"start": 1767225600, "end": GOOD_RANGE["end"]}},
     "invalid_request", "start"),
    ("range is a string", {"provider_id": "acme", "range": "2026-01-01T11/12"}, "invalid_request", "range"),
    ("range is missing", {"provider_id": "acme"}, "invalid_request", "range"),
    ("unknown priority", {"provider_id": "acme", "range": GOOD_RANGE, "priority": "urgent"}, "invalid_request", "priority"),
    ("priority is a number", {"provider_id": "acme", "range": GOOD_RANGE, "priority": 1}, "invalid_request", "priority"),
    ("unknown field", {"provider_id": "acme", "range": GOOD_RANGE, "unexpected": True}, "invalid_request", "unexpected"),
    ("no UTC offset", {"provider_id": "acme", "range": {"start": "2026-01-01T11:00:00", "end": "2026-01-01T12:00:00"}},
     "invalid_request", "start"),
    ("end before start", {"provider_id": "acme", "range": {"start": GOOD_RANGE["end"], "end": GOOD_RANGE["start"]}},
     "invalid_range", "end"),
    ("empty range", {"provider_id": "acme", "range": {"start": GOOD_RANGE["start"], "end": GOOD_RANGE["start"]}},
     "invalid_range", "end"),
    ("744 hours > the 168 maximum",
     {"provider_id": "acme", "range": {"start": "2025-12-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}},
     "range_too_large", "168"),
    ("before the vault's first hour",
     {"provider_id": "acme", "range": {"start": "2024-06-01T00:00:00Z", "end": "2024-06-01T01:00:00Z"}},
     "range_too_early", "2026-01-01-00:00"),
    ("an hour that has not ended ('now' is 2026-01-02T00:00Z)",
     {"provider_id": "acme", "range": {"start": "2026-01-01T23:00:00Z", "end": "2026-01-02T01:00:00Z"}},
     "range_not_complete", "hour"),
    ("a JSON array", [], "invalid_request", None),
    ("a JSON string", "acme", "invalid_request", None),
]


def test_a_malformed_ingest_request_gets_422_naming_the_problem(vault_service_factory):
    vault = vault_service_factory(stack="embedded")
    for wrong, body, error, where in BAD_BODIES:
        response = vault.api.request("POST", "/v1/ingest", json=body)
        assert response.status_code == 422, (wrong, response.text)
        answer = response.json()
        assert answer["error"] == error, (wrong, answer)
        if where:
            assert where in json.dumps(answer["detail"]), (wrong, answer)
    assert vault.provider.requests == []  # nothing was started
    assert vault.api.metrics().count('status="202"') == 0


def test_unknown_providers_unparseable_and_huge_bodies(vault_service_factory):
    vault = vault_service_factory(stack="embedded", settings=ApiSettings(max_body_bytes=16 * 1024))
    unknown = vault.api.ingest("no_such_provider", HOUR, NEXT_HOUR)
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_provider"
    assert "acme" in unknown.json()["detail"]  # says what is configured

    for content in (b"{not json", b"", b"[1, 2", b'{"provider_id": "acme", "provider_id": 1}'):
        response = vault.api.request("POST", "/v1/ingest", content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (content, response.text)
        assert response.json()["error"] == "invalid_request"
    # Not UTF-8 at all: FastAPI refuses it before JSON parsing, as a 400 (still a JSON error, nothing started).
    response = vault.api.request("POST", "/v1/ingest", content=b"\xff\xfe\x00", headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422) and "error" in response.json()

    huge = {"provider_id": "acme", "range": GOOD_RANGE, "padding": "x" * 1_000_000}
    declared = vault.api.request("POST", "/v1/ingest", json=huge)
    assert declared.status_code == 413 and declared.json()["error"] == "body_too_large"

    def chunks():  # no Content-Length: the limit must count bytes as they arrive
        for _ in range(64):
            yield b"x" * 1024

    streamed = vault.api.request("POST", "/v1/ingest", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and streamed.json()["error"] == "body_too_large"
    assert vault.provider.requests == []


HOSTILE_LOG_IDS = [
    UNKNOWN_LOG,  # well-formed, not in the catalog
    "log_" + "0123456789ABCDEF" * 2,  # upper case
    "log_" + "0" * 31,
    "log_" + "0" * 33,
    "..%2F..%2Fetc%2Fpasswd",
    "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "%2E%2E",
    "log_0123456789abcdef0123456789abcdef%00",
    "log_%F0%9F%A6%84",
    "%27%20OR%201%3D1%20--",  # ' OR 1=1 --
    "%7B%22%24ne%22%3A%20null%7D",  # {"$ne": null}
    "a" * 5000,
]


def test_malformed_and_hostile_log_ids_are_404(vault_service_factory):
    vault = vault_service_factory(stack="embedded")
    auditor = vault.client("auditor")
    for log_id in HOSTILE_LOG_IDS:
        response = auditor.request("GET", f"/v1/logs/{log_id}/raw")
        assert response.status_code == 404, (log_id[:80], response.text)
        assert response.json()["error"] in ("log_not_found", "not_found"), log_id[:80]
        assert "root:" not in response.text


def test_path_traversal_on_the_wire_is_404(vault_service_factory):
    vault = vault_service_factory(stack="embedded")
    auditor = vault.client("auditor")
    for raw_path in ("/v1/logs/../../etc/passwd/raw", "/v1/logs/..%2f..%2fetc%2fpasswd/raw", "/v1/logs/./../raw",
                     "/v1/logs//raw", "/v1/jobs/../../etc/passwd"):
        status, body = auditor.send_raw_path("GET", raw_path)
        assert status == 404, (raw_path, body)
        assert "root:" not in json.dumps(body)


# -- jobs --------------------------------------------------------------------------------------------
def test_jobs_move_from_pending_through_processing_to_completed(vault_service):
    vault = vault_service
    vault.provider.serve_hour(HOUR, hour_records(HOUR, 5))
    vault.provider.serve_hour(NEXT_HOUR, hour_records(NEXT_HOUR, 5))
    with vault.provider.hold():
        first = vault.api.ingest("acme", HOUR, NEXT_HOUR)
        assert first.status_code == 202
        accepted = first.json()
        assert accepted["status"] == "queued" and accepted["estimated_completion_ms"] > 0
        vault.provider.wait_for_request()  # the run is now fetching, held by the provider
        assert vault.api.job(accepted["job_id"])["state"] == "processing"
        second = vault.api.submit("acme", NEXT_HOUR, "2026-01-01T13")  # waits for the only worker
        assert vault.api.job(second)["state"] == "pending"
    for job_id in (accepted["job_id"], second):
        job = vault.api.wait_for_job(job_id)
        assert job["state"] == "completed" and job["error"] is None
        assert job["metrics"]["records_synced"] == 5
        assert job["runs"][0]["run_id"] == job_id  # a one-hour job is that Dagster run
    assert job["artifacts"]["s3_path"] == f"s3://{vault.s3.bucket}/raw/acme/2026/01/01/12/"
    for job_id in (UNKNOWN_JOB, "..%2F..%2Fetc", "x" * 100):
        response = vault.api.request("GET", f"/v1/jobs/{job_id}")
        assert response.status_code == 404 and response.json()["error"] in ("job_not_found", "not_found")


def test_an_unreachable_provider_fails_the_job_with_a_readable_error(vault_service):
    vault = vault_service
    job = vault.api.ingest_and_wait("offline", HOUR, NEXT_HOUR)
    assert job["state"] == "failed"
    error = job["error"]
    assert "offline" in error and "2026-01-01T11:00:00Z" in error  # which provider, which window
    assert "127.0.0.1" in error and "connect" in error.lower()  # where, and why
    assert "Traceback" not in error and len(error) < 1000  # a sentence, not a stack trace
    assert vault.catalog.count(provider="offline") == 0


def test_a_full_queue_answers_429_with_retry_after(vault_service_factory):
    vault = vault_service_factory(max_queue=1)
    with vault.provider.hold():
        running_job = vault.api.submit("acme", "2026-01-01T01", "2026-01-01T02")
        vault.provider.wait_for_request()  # the only worker is busy with it
        queued = vault.api.submit("acme", "2026-01-01T02", "2026-01-01T03")  # the one queue slot
        refused = vault.api.ingest("acme", "2026-01-01T03", "2026-01-01T04")
        assert refused.status_code == 429
        assert refused.json()["error"] == "queue_full"
        assert int(refused.headers["Retry-After"]) >= 1
        # an identical request for an accepted job is not new work: it gets that job, not a 429
        assert vault.api.ingest("acme", "2026-01-01T02", "2026-01-01T03").json()["job_id"] == queued
        samples = _samples(vault.client("reader").metrics())
        assert samples[("vault_job_queue_depth", ())] == 1
        assert samples[("vault_jobs", (("state", "processing"),))] == 1
        assert samples[("vault_jobs", (("state", "pending"),))] == 1
    for job_id in (running_job, queued):
        assert vault.api.wait_for_job(job_id)["state"] == "completed"
    assert _samples(vault.client("reader").metrics())[("vault_job_queue_depth", ())] == 0  # room again


def test_an_idempotency_key_returns_the_first_job_instead_of_starting_another(vault_service):
    vault = vault_service
    vault.provider.serve_hour(HOUR, hour_records(HOUR, 4))
    key = "idem-" + secrets.token_hex(8)
    first = vault.api.submit("acme", HOUR, NEXT_HOUR, idempotency_key=key)
    assert vault.api.wait_for_job(first)["state"] == "completed"
    requests_after_first = len(vault.provider.requests)

    again = vault.api.ingest("acme", HOUR, NEXT_HOUR, idempotency_key=key)  # a client retrying after a lost answer

    assert again.status_code == 202 and again.json()["job_id"] == first
    assert len(vault.api.job(first)["runs"]) == 1
    assert len(vault.provider.requests) == requests_after_first  # nothing fetched again
    assert vault.catalog.count(provider="acme") == 4

    reused = vault.api.ingest("acme", "2026-01-01T03:00:00Z", "2026-01-01T04:00:00Z", idempotency_key=key)
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    assert first in reused.json()["detail"]


# -- provider validation -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_material(tmp_path_factory):
    base = tmp_path_factory.mktemp("tls")
    return {"trusted": make_tls_material(base / "trusted", "vault test CA"),
            "untrusted": make_tls_material(base / "untrusted", "nobody trusts me")}


def test_provider_validation_says_secure_only_over_verified_tls(vault_service_factory, tls_material):
    token = "provider-token-" + secrets.token_hex(8)
    trusted, untrusted = tls_material["trusted"], tls_material["untrusted"]
    # The vault's outgoing client trusts the test CA, as a deployment trusts its CA bundle.
    vault = vault_service_factory(stack="embedded", http=httpx.Client(verify=trusted.client_context(), timeout=5.0))
    ingester = vault.client("ingester")
    with running(LoopbackProvider(token, trusted)) as tls, running(LoopbackProvider(token, untrusted)) as forged, \
            running(LoopbackProvider(token)) as plain:
        origins = [server.url.split("/v1/")[0] for server in (tls, forged, plain)]
        with vault.harness.config_path.open("a") as config:  # validate calls configured or allowed origins only
            config.write(f"api: {json.dumps({'validate_allowed_origins': origins})}\n")
        secure = ingester.validate(url=tls.url, api_key=token)
        assert secure.status_code == 200, secure.text
        assert secure.json()["connection"] == "secure" and secure.json()["latency_ms"] >= 0
        assert tls.authorizations == [f"Bearer {token}"]  # the key really reached the provider

        insecure = ingester.validate(url=plain.url, api_key=token)
        assert insecure.status_code == 200 and insecure.json()["connection"] == "insecure"

        unverified = ingester.validate(url=forged.url, api_key=token)
        assert unverified.status_code == 502 and unverified.json()["error"] == "provider_unreachable"
        assert "certificate" in unverified.json()["detail"].lower()
        assert forged.authorizations == []  # the key was never sent to an unverified server

        for target in (tls, plain):
            rejected = ingester.validate(url=target.url, api_key="wrong-" + token)
            assert rejected.status_code == 401
            assert rejected.json() == {"error": "Invalid Provider Credentials"}

        # a configured provider, checked with its own auth scheme at another address
        configured = ingester.validate(provider_id="acme", url=tls.url, api_key=token)
        assert configured.status_code == 200 and configured.json()["connection"] == "secure"
    unreachable = ingester.validate(url=plain.url, api_key=token)  # the server is gone now
    assert unreachable.status_code == 502 and unreachable.json()["error"] == "provider_unreachable"
    assert token not in repr(vault.catalog.access_log())


def test_provider_validation_of_a_configured_provider_uses_its_stub(vault_service_factory):
    vault = vault_service_factory(stack="embedded")
    ingester = vault.client("ingester")
    accepted = ingester.validate(provider_id="acme", api_key=vault.provider.token)
    assert accepted.status_code == 200, accepted.text
    assert vault.provider.requests[-1].url.params["since"] == "2026-01-01T23:00:00Z"  # the last complete hour
    rejected = ingester.validate(provider_id="acme", api_key="nope")
    assert rejected.status_code == 401 and rejected.json() == {"error": "Invalid Provider Credentials"}
    unknown = ingester.validate(provider_id="no_such_provider", api_key="k")
    assert unknown.status_code == 404
    bad = ingester.validate(api_key="k", url="ftp://127.0.0.1/events")
    assert bad.status_code == 422
    wrong_type = ingester.request("POST", "/v1/providers/validate", json={"provider_type": "soap", "api_key": "k"})
    assert wrong_type.status_code == 422


# -- operations ---------------------------------------------------------------------------------------
def test_healthz_reports_each_dependency_without_a_key(vault_service):
    response = vault_service.api.healthz()
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "ok"
    assert {name: check["status"] for name, check in answer["checks"].items()} == {"catalog": "ok", "object_store": "ok"}


def test_metrics_expose_request_counts_latency_jobs_and_queue_depth(vault_service):
    vault = vault_service
    vault.provider.serve_hour(HOUR, hour_records(HOUR, 3))
    assert vault.api.ingest_and_wait("acme", HOUR, NEXT_HOUR)["state"] == "completed"
    for _ in range(3):
        vault.api.logs(limit=1)
    vault.api.request("GET", "/v1/logs", key=None)

    text = vault.client("reader").metrics()

    samples = _samples(text)
    logs_ok = (("method", "GET"), ("route", "/v1/logs"), ("status", "200"))
    assert samples[("vault_api_requests_total", logs_ok)] == 3
    assert samples[("vault_api_requests_total", (("method", "GET"), ("route", "/v1/logs"), ("status", "401")))] == 1
    assert samples[("vault_api_requests_total", (("method", "POST"), ("route", "/v1/ingest"), ("status", "202")))] == 1
    assert samples[("vault_api_request_seconds_count", (("route", "/v1/logs"),))] == 4
    assert samples[("vault_api_request_seconds_bucket", (("le", "+Inf"), ("route", "/v1/logs")))] == 4
    assert samples[("vault_jobs", (("state", "completed"),))] == 1
    assert samples[("vault_jobs", (("state", "failed"),))] == 0
    assert samples[("vault_job_queue_depth", ())] == 0
    assert "# TYPE vault_api_request_seconds histogram" in text


def test_openapi_describes_the_endpoints_and_their_errors(vault_service_factory):
    document = vault_service_factory(stack="embedded").api.openapi()
    paths = document["paths"]
    assert {"/v1/ingest", "/v1/jobs/{job_id}", "/v1/logs", "/v1/logs/{log_id}/raw", "/v1/providers/validate",
            "/healthz", "/metrics"} <= set(paths)
    assert {"202", "404", "422", "429"} <= set(paths["/v1/ingest"]["post"]["responses"])
    assert {"200", "404", "409", "410"} <= set(paths["/v1/logs/{log_id}/raw"]["get"]["responses"])
    assert {"200", "401"} <= set(paths["/v1/providers/validate"]["post"]["responses"])
    # the key is an OpenAPI security scheme (a header named X-API-Key) on every operation but /healthz
    scheme = document["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-API-Key")
    assert paths["/v1/logs"]["get"]["security"] == [{"ApiKey": []}] and "security" not in paths["/healthz"]["get"]
    ingest_schema = document["components"]["schemas"]["IngestRequest"]
    assert {"provider_id", "range", "priority"} == set(ingest_schema["properties"])


def test_the_access_log_records_who_called_what_and_the_outcome_never_the_key(vault_service_factory):
    vault = vault_service_factory(stack="embedded")
    secret_in_body = "provider-secret-" + secrets.token_hex(8)
    vault.client("reader").logs()
    vault.client("ingester").request("GET", "/v1/logs")  # forbidden
    vault.api.request("GET", "/v1/logs", key="guessed-key-guessed-key")
    vault.client("auditor").raw(UNKNOWN_LOG)
    vault.client("ingester").validate(provider_id="acme", api_key=secret_in_body)
    vault.api.request("POST", "/v1/ingest", content=b"x" * 100_000, headers={"Content-Type": "application/json"})
    vault.api.request("GET", "/v1/logs", params={"api_key": vault.keys["admin"]})  # a key in a query string

    entries = vault.catalog.access_log(at_least=7)

    outcomes = [(e.principal, e.method, e.path, e.status) for e in reversed(entries)]
    assert outcomes == [
        ("reader", "GET", "/v1/logs", 200),
        ("ingester", "GET", "/v1/logs", 403),
        ("anonymous", "GET", "/v1/logs", 401),
        ("auditor", "GET", f"/v1/logs/{UNKNOWN_LOG}/raw", 404),
        ("ingester", "POST", "/v1/providers/validate", 401),
        ("anonymous", "POST", "/v1/ingest", 413),  # refused for its size, still logged
        ("operator", "GET", "/v1/logs", 200),
    ]
    assert all(e.client == "127.0.0.1" and e.at.startswith("20") and e.latency_ms >= 0 for e in entries)
    written = repr(entries)
    for secret in (*vault.keys.values(), "guessed-key-guessed-key", secret_in_body):
        assert secret not in written


def test_concurrent_requests_are_each_logged_and_counted(vault_service_factory):
    vault = vault_service_factory(stack="embedded")
    reader = vault.client("reader")
    errors: list[BaseException] = []

    def browse() -> None:
        try:
            for _ in range(10):
                reader.logs(limit=5)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=browse) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(vault.catalog.access_log(principal="reader", at_least=40)) == 40


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    """Prometheus text -> {(sample name, sorted labels): value}."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}
