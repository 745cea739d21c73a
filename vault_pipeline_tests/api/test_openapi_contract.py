"""Scenario: the API says what it does. Schemathesis holds the running app to its OpenAPI document.

The app is wired exactly as ``vault serve`` wires it (``server.build_api_from_env``: catalog,
object store, promotions, idempotency keys, settings from the environment) on a fresh
``VAULT_HOME`` and served by uvicorn on loopback. Schemathesis reads ``/openapi.json`` from it
and, per operation, sends the schema's examples, its coverage cases (boundaries, missing and
wrong-typed values, undeclared methods) and fuzzed requests, with every built-in check: the
status code and the Content-Type are documented, bodies and headers match their schemas,
schema-violating requests are refused, a 405 carries ``Allow``, authentication is not ignored.

One built-in check is replaced: ``positive_data_acceptance`` would call every refusal of a
schema-valid request a mismatch, but some rules are beyond JSON Schema (a range's end after its
start, at most 168 hours, hours that have ended; a partition's hour that exists on the
calendar; a cursor this API issued). The replacement accepts such a refusal only when an
independent oracle agrees that the request breaks exactly the rule the error code names, and
it also fails any request that breaks a rule yet was accepted.

Bounded and repeatable: a fixed seed, deterministic generation, a few dozen examples per
operation, no example database. Ingest jobs go to a runner that records launches and reports
them finished at once, so a fuzzed range never starts Dagster runs. ``POST /v1/providers/validate``
is left out: it calls the URL it is given, and its SSRF rules are being reworked elsewhere.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from xml.etree import ElementTree
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

from vault_pipeline.api import server
from vault_pipeline.api.app import create_app
from vault_pipeline.api.auth import parse_api_keys
from vault_pipeline.api.jobs import hours_in_range, request_fingerprint
from vault_pipeline.api.pagination import InvalidCursorError, decode_cursor
from vault_pipeline.api.runs import RunInfo, Runner
from vault_pipeline.core.identity import is_log_id
from vault_pipeline.core.report_model import SECTION_NAMES
from vault_pipeline.defs.partitions import HOURLY_START
from vault_pipeline_tests.fixtures.api import _LoopbackServer

NOW = datetime(2026, 1, 2, 0, 0, tzinfo=UTC)  # every hour of 2026-01-01 has ended
FIRST_HOUR = datetime.strptime(HOURLY_START, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)  # the vault's first hour
MAX_RANGE = timedelta(hours=168)  # ApiSettings.max_range_hours, VAULT_API_MAX_RANGE_HOURS' default
SEED = 20261201
MAX_EXAMPLES = 50  # per operation, beside the coverage phase's boundary and missing-value cases


class InstantRunner(Runner):
    """Records every launch and reports its run finished at once: no Dagster work while fuzzing."""

    def __init__(self) -> None:
        self.launched: list[str] = []
        self._runs: dict[str, list[RunInfo]] = {}
        self._lock = threading.Lock()

    def launch(self, *, job_id: str, partition_key: str, priority: str, run_id: str | None = None) -> str:
        run_id = run_id or f"{job_id}-{len(self._runs.get(job_id, []))}"
        with self._lock:
            self.launched.append(partition_key)
            self._runs.setdefault(job_id, []).append(RunInfo(run_id, partition_key, "SUCCESS"))
        return run_id

    def runs_for_job(self, job_id: str) -> list[RunInfo]:
        with self._lock:
            return list(self._runs.get(job_id, []))


@pytest.fixture
def served_vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``vault serve``'s app on loopback: (base URL, admin key, runner)."""
    home, config = tmp_path / "vault_home", tmp_path / "vault.yaml"
    # The provider the OpenAPI document's examples name, so the examples phase reaches an accepted job.
    config.write_text("providers:\n  demo_cloudtrail:\n    type: simulator\n    kind: audit_event\n"
                      # push providers of both kinds, so fuzzed pushes reach the body's own rules
                      "  ci:\n    type: push\n    kind: test_result\n  agents:\n    type: push\n    kind: agent_result\n")
    key = "fuzz-admin-" + secrets.token_hex(16)
    for name, value in {"VAULT_HOME": str(home), "VAULT_CONFIG": str(config), "VAULT_OTEL_EXPORTER": "none",
                        "VAULT_API_KEYS": f"fuzzer:{key}:admin", "VAULT_API_MAX_QUEUE": "4",
                        "VAULT_API_MAX_REPORTS": "10000",
                        "DAGSTER_HOME": str(home / "dagster")}.items():
        monkeypatch.setenv(name, value)  # restored at teardown, DAGSTER_HOME included
    runner = InstantRunner()
    monkeypatch.setattr(server, "build_runner", lambda _definitions: runner)
    api = server.build_api_from_env(parse_api_keys(f"fuzzer:{key}:admin"))
    api.clock = lambda: NOW  # so which hours have ended does not depend on when the suite runs
    api.reports.clock = lambda: NOW  # and which report periods have ended, or lie beyond the retention
    loopback = _LoopbackServer(create_app(api))
    loopback.start()
    try:
        yield loopback.url, key, runner
    finally:
        loopback.stop()
        api.jobs.close()
        api.promotions.close()
        api.reports.close()
        api.catalog.close()


@pytest.fixture
def vault_openapi(served_vault, request: pytest.FixtureRequest):
    url, key, _runner = served_vault
    # schemathesis 4.32's lazy loader reads the private ``Function._nodeid`` that pytest 9.2 renamed;
    # giving it the node id keeps the documented from_fixture/parametrize API usable here.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        # Through the document's own security scheme, so schemathesis knows which header is the
        # credential (the ignored_auth check then also sends requests without it).
        "auth": {"openapi": {"ApiKey": {"api_key": key}}},
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "warnings": False,
    })
    return schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)


# -- the oracle for rules JSON Schema cannot express ------------------------------------------------
def _moment(text: str) -> datetime:
    # Aware, in its own offset: comparing and subtracting work across offsets, whereas
    # astimezone(UTC) overflows at the ends of datetime's range (0001-01-01T00:00:00+00:01).
    return datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))


def _ingest_rule_broken(body: dict) -> str | None:
    """The first rule of POST /v1/ingest this schema-valid body breaks, in the documented order."""
    start, end = _moment(body["range"]["start"]), _moment(body["range"]["end"])
    if end <= start:
        return "invalid_range"
    if end - start > MAX_RANGE:
        return "range_too_large"
    if start < FIRST_HOUR:
        return "range_too_early"
    last_hour = datetime.strptime(hours_in_range(start, end)[-1], "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
    if last_hour + timedelta(hours=1) > NOW:
        return "range_not_complete"
    return None


def _analytics_rule_broken(path: str, query: dict) -> str | None:
    """The first rule of GET /api/v1/analytics/* this schema-valid query breaks (api/analytics.py's order)."""
    start, end = _moment(query["start_date"]), _moment(query["end_date"])
    if end <= start:
        return "invalid_range"
    if end - start > timedelta(days=366):
        return "range_too_large"
    if query.get("as_of") is not None and query.get("version") is not None:
        return "as_of_with_version"
    if path.endswith("/data-quality") and query.get("version") is not None:
        return "invalid_version"  # the reports are in the catalog, not a versioned table
    return None  # the fuzzed vault has no lake tables, so no version is refused as missing


def _report_rule_broken(body: dict) -> str | None:
    """The first rule of POST /api/v1/analytics/reports this schema-valid body breaks
    (reports/service.py's check_request order; vault.yaml here keeps the defaults)."""
    if body.get("period") is not None:  # a preset is a complete period before NOW, within the retention
        start, end = _moment(body["period"]["start"]), _moment(body["period"]["end"])
        if end <= start:
            return "invalid_period"
        if end > NOW + timedelta(minutes=1):
            return "period_not_ended"
        if end - start > timedelta(days=366):
            return "period_too_long"
        if start < (NOW - timedelta(days=90)).replace(hour=0, minute=0, second=0, microsecond=0):
            return "period_beyond_retention"
    if any(name not in SECTION_NAMES for name in body.get("sections") or ()):
        return "unknown_section"
    if any(not is_log_id(i) for i in body.get("record_ids") or ()):
        return "invalid_record_id"
    return None


PROVIDER_KINDS = {"demo_cloudtrail": ("simulator", "audit_event"), "ci": ("push", "test_result"),
                  "agents": ("push", "agent_result")}
PUSH_KINDS = {"/v1/test-runs": "test_result", "/v1/agent-executions": "agent_result"}
BODY_REFUSALS = {"malformed_body", "unsafe_xml", "not_test_results", "unsupported_encoding", "nesting_too_deep",
                 "no_test_cases"}
AGENT_REFUSALS = BODY_REFUSALS | {"invalid_timestamp", "mixed_hours"}
REVISION = re.compile(r"^[0-9A-Za-z._/\-]{1,200}$")


def _push_rules_broken(path: str, query: dict, body: bytes, content_type: str) -> set[str | None] | None:
    """The refusals a schema-valid push may get (None in the set: it may be accepted), read from
    the rules in docs/api.md: provider first, then the query, then the body, then its hour."""
    provider = query.get("provider_id")
    if provider is None:
        return {"missing_parameter"}
    if provider not in PROVIDER_KINDS:
        return None  # 404 unknown_provider: accepted by the check as it is
    kind_type, kind = PROVIDER_KINDS[provider]
    if kind_type != "push":
        return {"not_a_push_provider"}
    if kind != PUSH_KINDS[path]:
        return {"wrong_kind"}
    for name in ("suite", "branch"):
        if query.get(name) is not None and not str(query[name]).strip():
            return {f"invalid_{name}"}
    if query.get("commit") is not None and not REVISION.match(str(query["commit"])):
        return {"invalid_commit"}
    started = query.get("started_at")
    if started is not None:
        moment = _zoned(str(started))
        if moment is None:
            return {"invalid_started_at"}
        if path == "/v1/agent-executions":
            return {"invalid_started_at"}
    if path == "/v1/agent-executions":
        times = _agent_times(body)
        if times is None:
            return AGENT_REFUSALS
        return _hour_rules(times)
    if not _test_run_readable(body, content_type):
        return BODY_REFUSALS
    if started is not None:
        return _hour_rules([moment])
    return {None, "started_in_future", "before_first_hour"}  # dated by the report's own timestamps, or now


def _zoned(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _hour_rules(times: list[datetime]) -> set[str | None]:
    first = min(times)
    if first > NOW + timedelta(minutes=5):
        return {"started_in_future"}
    if first < FIRST_HOUR:
        return {"before_first_hour"}
    return {None, "conflicting_push"}


def _agent_times(body: bytes) -> list[datetime] | None:
    """Each execution's zoned timestamp, all in one hour; None when the body breaks a body rule."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    executions = value if isinstance(value, list) else [value]
    if not executions or not all(isinstance(e, dict) for e in executions):
        return None
    times = [_zoned(e["timestamp"]) if isinstance(e.get("timestamp"), str) else None for e in executions]
    if None in times or len({t.astimezone(UTC).replace(minute=0, second=0, microsecond=0) for t in times}) > 1:
        return None
    return times


def _test_run_readable(body: bytes, content_type: str) -> bool:
    """A JUnit report (no DOCTYPE, well-formed UTF-8, a testsuites/testsuite root, a testcase) or
    a non-empty JSON array of objects, told apart as docs/api.md says (the first byte that is not
    whitespace: ``[`` or ``{`` is JSON; the Content-Type only for an empty body)."""
    media = (content_type or "").split(";")[0].strip().lower()
    text = (body[3:] if body.startswith(b"\xef\xbb\xbf") else body).lstrip()
    as_json = text[:1] in (b"[", b"{") or (not text and (media == "application/json" or media.endswith("+json")))
    if as_json:
        try:
            value = json.loads(body)
        except ValueError:
            return False
        return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
    if b"<!doctype" in body.lower() or b"xinclude" in body.lower():
        return False
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return False
    return root.tag in ("testsuites", "testsuite") and next(root.iter("testcase"), None) is not None


def _real_hour(hour_key: str) -> bool:
    try:
        datetime.strptime(hour_key, "%Y-%m-%d-%H:%M")
    except ValueError:
        return False
    return True


def _cursor_issued_here(cursor: str) -> bool:
    try:
        decode_cursor(cursor)
    except InvalidCursorError:
        return False
    return True


class RuleOracle:
    """Says which refusals of schema-valid requests are the API's documented rules, and holds the
    API to them both ways (a request breaking a rule must not be accepted either)."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}  # Idempotency-Key -> fingerprint of the request it was accepted for
        self.refusals: dict[str, int] = {}  # error code -> how often the oracle confirmed it

    def expected(self, case) -> str | set[str | None] | None:
        operation = (case.method.upper(), case.path)
        if case.method.upper() == "POST" and case.path in PUSH_KINDS:
            body = case.body if isinstance(case.body, bytes) else (
                json.dumps(case.body).encode() if case.media_type == "application/json" else str(case.body).encode())
            return _push_rules_broken(case.path, case.query or {}, body, case.media_type or "")
        if operation == ("POST", "/v1/ingest"):
            return _ingest_rule_broken(case.body)
        if operation == ("POST", "/v1/promotions") and case.body.get("scope") == "partition":
            return None if _real_hour(case.body["partition"].partition("|")[0]) else "invalid_partition"
        if operation == ("POST", "/api/v1/analytics/reports"):
            return _report_rule_broken(case.body)
        if case.method.upper() == "GET" and case.path.startswith("/api/v1/analytics/") and \
                not case.path.startswith("/api/v1/analytics/reports"):
            return _analytics_rule_broken(case.path, case.query or {})
        if operation == ("GET", "/v1/logs"):
            cursor, offset = (case.query or {}).get("cursor"), (case.query or {}).get("offset")
            if cursor is not None and str(offset or 0) != "0":  # query values may arrive as text
                return "offset_with_cursor"
            if cursor is not None and not _cursor_issued_here(cursor):
                return "invalid_cursor"
        return None

    def check(self, ctx, response, case):
        """schemathesis check: ``positive_data_acceptance`` plus the rules above."""
        if case.meta is None or not case.meta.generation.mode.is_positive:
            return None
        expected = self.expected(case)
        error = _error_code(response)
        if case.method.upper() == "POST" and case.path == "/v1/ingest":
            key = (case.headers or {}).get("Idempotency-Key")
            fingerprint = None if expected else self._fingerprint(case.body)
            if key and response.status_code == 202:
                self.keys.setdefault(key, fingerprint)
            elif key and error == "idempotency_key_reused" and self.keys.get(key) not in (None, fingerprint):
                expected = "idempotency_key_reused"  # the key was accepted earlier for another request
        if isinstance(expected, set):  # a push: one of these refusals, or (None) an acceptance
            outcome = error if response.status_code >= 400 else None
            assert outcome in expected or response.status_code in (404, 409, 429, 413), (
                f"{case.method} {case.path}: expected one of {sorted(map(str, expected))}, got "
                f"{response.status_code} {error!r}")
            if outcome is not None:
                self.refusals[outcome] = self.refusals.get(outcome, 0) + 1
            return None
        if expected is not None:
            assert response.status_code == 422 and error == expected, (
                f"{case.method} {case.path} breaks the rule {expected!r} but got {response.status_code} {error!r}")
            self.refusals[expected] = self.refusals.get(expected, 0) + 1
            return None
        return positive_data_acceptance(ctx, response, case)

    @staticmethod
    def _fingerprint(body: dict) -> str:
        start, end = _moment(body["range"]["start"]), _moment(body["range"]["end"])
        return request_fingerprint(body["provider_id"], hours_in_range(start, end))


def _error_code(response) -> str | None:
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


@pytest.fixture
def rule_oracle() -> RuleOracle:
    return RuleOracle()


schema = schemathesis.pytest.from_fixture("vault_openapi").exclude(path="/v1/providers/validate")


@schema.parametrize()
def test_the_api_does_what_its_openapi_document_says(case, rule_oracle):
    case.call_and_validate(excluded_checks=[positive_data_acceptance], additional_checks=[rule_oracle.check])


# -- the mismatches schemathesis first found, each pinned down ---------------------------------------
def test_a_405_names_the_methods_that_are_allowed(served_vault):
    url, key, _runner = served_vault
    for method, path, allowed in (("TRACE", "/healthz", "GET"), ("DELETE", "/v1/ingest", "POST"),
                                  ("PUT", "/v1/logs", "GET")):
        response = httpx.request(method, url + path, headers={"X-API-Key": key})
        assert response.status_code == 405 and response.headers["Allow"] == allowed, (method, path, response.headers)
        assert response.json()["error"] == "method_not_allowed"


def test_numbers_and_partial_timestamps_are_not_read_as_timestamps(served_vault):
    url, key, runner = served_vault
    headers = {"X-API-Key": key}
    for value in ("1767225600", "0", "2026-01-01", "2026-01-01 00:00:00Z", "2026-01-01T00:00Z", "2026-01-01T00:00:00"):
        logs = httpx.get(f"{url}/v1/logs", params={"start": value}, headers=headers)
        assert logs.status_code == 422 and "RFC 3339" in logs.text, (value, logs.text)
        ingest = httpx.post(f"{url}/v1/ingest", headers=headers, json={
            "provider_id": "demo_cloudtrail", "range": {"start": value, "end": "2026-01-01T01:00:00Z"}})
        assert ingest.status_code == 422 and ingest.json()["error"] == "invalid_request", (value, ingest.text)
    promotion = httpx.post(f"{url}/v1/promotions", headers=headers,
                           json={"scope": "provider", "provider": "demo_cloudtrail", "since": 1767225600})
    assert promotion.status_code == 422 and promotion.json()["error"] == "invalid_request"
    assert runner.launched == []  # nothing was started by any of them


def test_malformed_bodies_and_empty_values_get_the_documented_422(served_vault):
    url, key, _runner = served_vault
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    not_utf8 = httpx.post(f"{url}/v1/promotions", headers=headers, content=b'{"scope": "\xff\xfe"}')
    assert not_utf8.status_code == 422 and not_utf8.json()["error"] == "invalid_request"
    for params in ({"cursor": ""}, {"cursor": "not/base64url"}):
        assert httpx.get(f"{url}/v1/logs", params=params, headers=headers).status_code == 422
    empty_key = httpx.post(f"{url}/v1/ingest", headers={**headers, "Idempotency-Key": ""}, json={
        "provider_id": "demo_cloudtrail", "range": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z"}})
    assert empty_key.status_code == 422 and "Idempotency-Key" in empty_key.text
    # a scope's own fields are required by the schema itself, not discovered after the fact
    for body in ({"scope": "log"}, {"scope": "partition"}, {"scope": "provider"}):
        refused = httpx.post(f"{url}/v1/promotions", headers=headers, json=body)
        assert refused.status_code == 422 and isinstance(refused.json()["detail"], list), (body, refused.text)


def test_the_document_describes_errors_auth_and_metrics_as_served(served_vault):
    url, _key, _runner = served_vault
    document = httpx.get(f"{url}/openapi.json").json()
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's shape is never sent
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400 and path != "/healthz":
                    assert response["content"]["application/json"]["schema"] == error_ref, (method, path, status)
            if path != "/healthz":
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
                assert operation["security"] == [{"ApiKey": []}]
            if "requestBody" in operation:
                assert {"413", "422"} <= set(operation["responses"]), (method, path)
    assert set(document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    assert {"202", "404", "422", "429"} <= set(document["paths"]["/v1/ingest"]["post"]["responses"])
    assert "Retry-After" in document["paths"]["/v1/ingest"]["post"]["responses"]["429"]["headers"]
    assert {"404", "429"} <= set(document["paths"]["/v1/promotions"]["post"]["responses"])
    assert {"404", "409"} <= set(document["paths"]["/v1/quarantine/{log_id}/approve"]["post"]["responses"])


def test_timestamps_beyond_what_utc_can_hold_are_answered_not_crashed_on(served_vault):
    """0001-01-01T00:00:00+23:00 is valid RFC 3339 but earlier than datetime's UTC range (a
    schemathesis find: it was a 500)."""
    url, key, runner = served_vault
    headers = {"X-API-Key": key}
    earliest, latest = "0001-01-01T00:00:02+23:00", "9999-12-31T23:00:00-23:00"
    for start, end, error in ((earliest, "0001-01-03T00:00:04Z", "range_too_early"),
                              ("0001-01-03T00:00:04Z", earliest, "invalid_range"),
                              ("2026-01-01T00:00:00Z", latest, "range_too_large")):
        answer = httpx.post(f"{url}/v1/ingest", headers=headers,
                            json={"provider_id": "demo_cloudtrail", "range": {"start": start, "end": end}})
        assert answer.status_code == 422 and answer.json()["error"] == error, (start, end, answer.text)
    for params in ({"start": earliest}, {"end": latest}, {"start": latest}, {"end": earliest}, {"start": "0900-01-01T00:00:00Z"}):
        logs = httpx.get(f"{url}/v1/logs", params=params, headers=headers)
        assert logs.status_code == 200 and logs.json()["data"] == [], (params, logs.text)
    promotion = httpx.post(f"{url}/v1/promotions", headers=headers,
                           json={"scope": "provider", "provider": "demo_cloudtrail", "since": earliest})
    assert promotion.status_code == 404 and promotion.json()["error"] == "nothing_to_promote"
    assert runner.launched == []


def test_an_offset_beyond_what_the_catalog_can_count_is_a_422_not_a_500(served_vault):
    """``GET /v1/quarantine?offset=27431339613804508550570514055168`` was a 500: SQLite takes 64-bit
    integers (a schemathesis find). Every integer a query may carry is bounded in the document."""
    url, key, _runner = served_vault
    headers = {"X-API-Key": key}
    document = httpx.get(f"{url}/openapi.json").json()

    def integer_schemas(schema):
        return [s for s in [schema, *schema.get("anyOf", [])] if s.get("type") == "integer"]

    with_offset, unbounded = [], []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                for schema in integer_schemas(parameter["schema"]):
                    if "maximum" not in schema:
                        unbounded.append((method, path, parameter["name"]))
                if parameter["name"] == "offset" and method == "get" and "{" not in path:
                    with_offset.append(path)
    assert unbounded == []
    assert "/v1/quarantine" in with_offset
    for path in with_offset:
        answer = httpx.get(f"{url}{path}", params={"offset": 2**104}, headers=headers)
        assert answer.status_code == 422 and answer.json()["error"] == "invalid_request", (path, answer.text)


def test_utc_sort_keys_order_like_the_moments_they_stand_for():
    from datetime import timezone

    from vault_pipeline.api.schemas import utc_sort_key

    moments = [datetime(1, 1, 1, 0, 0, 2, tzinfo=timezone(timedelta(hours=23))),  # before UTC's range
               datetime(900, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 5, tzinfo=UTC),
               datetime(2026, 1, 1, 6, 30, tzinfo=timezone(timedelta(hours=1))),  # 05:30Z
               datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-23)))]  # after it
    keys = [utc_sort_key(moment) for moment in moments]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert keys[1] == "0900-01-01T00:00:00.000000Z" and keys[3] == "2026-01-01T05:30:00.000000Z"
