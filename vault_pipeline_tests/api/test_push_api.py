"""Scenario: CI jobs and QA agents push their results into the vault over HTTP, and get back
exactly what they sent.

A CI job finishes its test run and uploads the JUnit XML its runner wrote (or a JSON array of
results) to ``POST /v1/test-runs`` of a ``type: push`` provider, naming the commit, branch,
build and start of the run in the query. The vault answers 202 with the run's id, the partition
(the hour the run started x the provider) and the counts the report holds, and runs that hour's
graph at once. The job polls ``GET /v1/test-runs/{run_id}`` until ``completed``; an auditor then
lists the provider's logs, one per ``<testcase>``, and each one's raw bytes are that element
exactly as it stood in the upload, with its checksum; the lake's ``test_results`` carries the
run's suite, commit, branch and build. A flaky CI step that uploads the same report twice
changes nothing; the same report under another commit is a conflict. Whatever cannot be used is
refused with a code saying why: a hostile or broken body (billion laughs, external entities,
XInclude, HTML, UTF-16, no test cases) is kept in the dead-letter zone for a look and never
reaches the inbox or the raw zone; a body over the provider's ``max_body_bytes`` is refused and
kept nowhere; a wrong call (unknown provider, a pulling provider, the wrong kind, bad query
values, a key without the ingest role) stores nothing at all. A QA agent pushes its execution
results to ``POST /v1/agent-executions`` the same way, one hour per push. The scenarios run on
the embedded default (local directory, SQLite); one runs end to end on the production-like
stack (S3 on moto, MongoDB on mongomock).
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from vault_pipeline.core.junit import parse_junit
from vault_pipeline.core.test_runs import parse_result_json
from vault_pipeline_tests.fixtures.api import (
    TERMINAL_STATES,
    VaultApiClient,
    VaultService,
)
from vault_pipeline_tests.fixtures.junit_files import (
    BILLION_LAUGHS,
    EXTERNAL_PUBLIC_DTD,
    EXTERNAL_SYSTEM_ENTITY,
    PARAMETER_ENTITY,
    PRODUCERS,
    QUADRATIC_BLOWUP,
    XINCLUDE,
    counts_of,
    deeply_nested,
    junit_file,
    sha256,
)

QA, AGENTS, SMALL = "qa_ci", "qa_agents", "qa_small"
RUN = {"suite": "ledger", "commit": "3f9c2e1a7b", "branch": "main", "build": "4711",
       "started_at": "2026-01-01T05:17:00Z"}
HOUR_KEY = "2026-01-01-05:00"
RECEIPT_DLQ = "2026/01/02/00"  # the API's clock: refused bodies are kept under the hour they arrived
TEST_RUN_ID = re.compile(r"^tr_[0-9a-f]{32}$")
AGENT_RUN_ID = re.compile(r"^ax_[0-9a-f]{32}$")
SEED_EXECUTION = {"timestamp": "2026-01-01T10:00:00.000Z", "agent_name": "QA_Assistant", "status": "success",
                  "output": {"test_count": 42, "passed": 40}}
JSON_RESULTS = b"""[
  {"suite": "checkout", "test": "test_pay", "status": "passed", "duration_ms": 12.5},
  {"suite": "checkout", "test": "test_refund", "status": "failed", "duration_ms": 40,
   "error": {"type": "AssertionError", "message": "expected 200, got 502"}},
  {"suite": "search", "test": "test_query_caf\\u00e9", "status": "skipped", "duration_ms": 0,
   "ci": {"commit": "feedbeef42", "branch": "release/1.2", "build": 99}}
]
"""
TINY_REPORT = (b'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="smoke" tests="1">'
               b'<testcase classname="smoke" name="test_up" time="0.010"/></testsuite>\n')


def push_providers(**extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """vault.yaml's providers: a CI push provider, an agent one, and two that pull."""
    return {
        QA: {"type": "push", "kind": "test_result"},
        AGENTS: {"type": "push", "kind": "agent_result"},
        "pulled_tests": {"type": "simulator", "kind": "test_result", "records_per_hour": 5},
        "acme": {"type": "rest", "kind": "audit_event", "url": "https://provider.test/v1/events"},
        **extra,
    }


@pytest.fixture
def vault(vault_service_factory) -> VaultService:
    return vault_service_factory(stack="embedded", providers=push_providers())


# -- the CI job's and the agent's side ---------------------------------------------------------
def push_test_run(api: VaultApiClient, body: bytes | Iterator[bytes], provider: str | None = QA, *,
                  content_type: str | None = "application/xml", **query: str) -> httpx.Response:
    params = {"provider_id": provider, **query} if provider is not None else dict(query)
    headers = {"Content-Type": content_type} if content_type else None
    return api.request("POST", "/v1/test-runs", params=params, content=body, headers=headers)


def push_agent_executions(api: VaultApiClient, executions: Any, provider: str = AGENTS) -> httpx.Response:
    return api.request("POST", "/v1/agent-executions", params={"provider_id": provider},
                       content=json.dumps(executions).encode(), headers={"Content-Type": "application/json"})


def accepted(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, f"{response.status_code}: {response.text[:800]}"
    return response.json()


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (response.status_code, response.json().get("error")) == (status, code), response.text[:800]
    return response.json()


def wait_for_push(api: VaultApiClient, run_id: str, timeout: float = 30.0,
                  path: str = "/v1/test-runs") -> dict[str, Any]:
    """Poll the push's status until its run is completed or failed (fails the test at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        status = VaultApiClient.expect(api.request("GET", f"{path}/{run_id}"), 200)
        if status["state"] in TERMINAL_STATES:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"push {run_id} still {status['state']!r} after {timeout} s: {status}")
        time.sleep(0.05)


def stored_objects(vault: VaultService, *prefixes: str) -> dict[str, bytes]:
    return {key: vault.objects.get(key) for prefix in prefixes for key in vault.objects.keys(prefix)}


def assert_kept_only_in_the_dead_letter_zone(vault: VaultService, provider: str, body: bytes, code: str,
                                             answer: dict[str, Any]) -> None:
    """The refused body is kept byte-exact under dlq/ (the hour it arrived) with one dead letter of
    stage push, and is nowhere else: not in the inbox, not landed, no run launched."""
    key = f"dlq/{provider}/{RECEIPT_DLQ}/{sha256(body)}.body"
    assert key in json.dumps(answer["detail"])  # the answer says where to look
    assert vault.objects.keys(f"dlq/{provider}/") == [key]
    assert vault.objects.get(key) == body
    letters = vault.harness.catalog.list_dead_letters(provider=provider)
    assert len(letters) == 1, letters
    letter = letters[0]
    assert (letter.stage, letter.object_key, letter.offset, letter.length) == ("push", key, 0, len(body))
    assert letter.reason.startswith(code) and letter.partition == f"2026-01-02-00:00|{provider}"
    assert vault.objects.keys("inbox/") == [] and vault.objects.keys("raw/") == []
    assert vault.harness.instance.get_runs_count() == 0 and vault.catalog.count(provider=provider) == 0


def assert_each_log_is_its_testcase_element(vault: VaultService, provider: str, bodies: list[bytes]) -> None:
    """Every log of the provider is one <testcase> of one of the bodies, served byte for byte."""
    logs = list(vault.api.iter_all_logs(provider_id=provider, limit=100))
    served = []
    for log in logs:
        response = vault.api.raw(log["id"])
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/xml")
        assert response.content.startswith(b"<testcase") and response.content.endswith((b"/>", b"</testcase>"))
        assert response.headers["X-Vault-Checksum"] == log["checksum"] == "sha256:" + sha256(response.content)
        assert log["size"] == len(response.content)
        served.append(response.content)
    assert sorted(served) == sorted(body[case.start:case.end] for body in bodies for case in parse_junit(body).cases)


# -- a pushed JUnit report, end to end ----------------------------------------------------------
def test_a_pytest_report_is_stored_byte_exact_and_indexed_one_log_per_testcase(vault):
    body = junit_file("pytest_xunit1.xml")
    run = parse_junit(body)
    assert len(run.cases) == 8

    receipt = accepted(push_test_run(vault.api, body, **RUN))

    assert TEST_RUN_ID.match(receipt["run_id"]), receipt
    assert receipt["status"] in ("pending", "processing", "completed")
    assert receipt["provider_id"] == QA and receipt["partition"] == f"{HOUR_KEY}|{QA}"
    assert receipt["format"] == "junit" and receipt["duplicate"] is False and receipt["job_id"]
    assert receipt["counts"] == counts_of(body) == {"tests": 8, "passed": 4, "failed": 1, "errors": 1,
                                                      "skipped": 2, "suites": 1}
    status = wait_for_push(vault.api, receipt["run_id"])
    assert status["state"] == "completed", status
    assert status["records_synced"] == 8 and status["error"] is None
    assert status["counts"] == receipt["counts"] and status["job_id"] == receipt["job_id"]
    echoed = ("run_id", "provider_id", "partition", "format", "suite", "commit", "branch", "build")
    assert {key: status[key] for key in echoed} == {
        "run_id": receipt["run_id"], "provider_id": QA, "partition": f"{HOUR_KEY}|{QA}", "format": "junit",
        "suite": "ledger", "commit": "3f9c2e1a7b", "branch": "main", "build": 4711}
    assert status["started_at"].startswith("2026-01-01T05:17:00")
    assert status["received_at"].startswith("2026-01-02T00:00")  # the API's clock

    # the upload is kept byte-exact in the inbox with its context, and landed as one raw object
    digest = sha256(body)
    hour_path = f"{QA}/2026/01/01/05"
    assert vault.objects.get(f"inbox/{hour_path}/{digest}.xml") == body
    context = json.loads(vault.objects.get(f"inbox/{hour_path}/{digest}.push.json"))
    assert (context["commit"], context["branch"], context["build"], context["suite"]) == (
        "3f9c2e1a7b", "main", 4711, "ledger")
    assert vault.objects.keys(f"raw/{QA}/") == [f"raw/{hour_path}/{digest}.xml"]
    assert vault.objects.get(f"raw/{hour_path}/{digest}.xml") == body

    # one log per <testcase>, each exactly the element's bytes in the upload
    logs = vault.api.logs(provider_id=QA, limit=100)
    assert logs["meta"]["total_count"] == 8
    assert {log["partition"] for log in logs["data"]} == {f"{HOUR_KEY}|{QA}"}
    assert all(log["timestamp"].startswith("2026-01-01T05:17:00") for log in logs["data"])
    by_checksum = {"sha256:" + sha256(body[case.start:case.end]): case for case in run.cases}
    assert len(by_checksum) == 8
    for log in logs["data"]:
        case = by_checksum[log["checksum"]]
        response = vault.api.raw(log["id"])
        assert response.status_code == 200, response.text
        assert response.content == body[case.start:case.end]
        assert response.headers["content-type"].startswith("application/xml")
        assert response.headers["X-Vault-Checksum"] == log["checksum"]
        entry = vault.catalog.record(log["id"])
        assert entry.object_key == f"raw/{hour_path}/{digest}.xml" and entry.offset == case.start
    assert_each_log_is_its_testcase_element(vault, QA, [body])

    # the lake's rows carry the run's metadata; the test is classname::name
    rows = vault.harness.lake.read("test_results", provider=QA).to_pylist()
    assert sorted(row["test"] for row in rows) == sorted(f"{case.classname}::{case.name}" for case in run.cases)
    assert {(row["suite"], row["commit"], row["branch"], row["build"]) for row in rows} == {
        ("ledger", "3f9c2e1a7b", "main", 4711)}
    statuses = {row["test"]: row["status"] for row in rows}
    assert statuses == {f"{case.classname}::{case.name}": case.status for case in run.cases}
    assert sorted(statuses.values()).count("passed") == 4
    assert all(row["duration_ms"] is not None for row in rows)


def test_reports_of_every_producer_pushed_into_one_hour_all_land_case_by_case(vault):
    """Eight CI jobs (pytest, Surefire, Gradle, jest, gotestsum, PHPUnit, a Windows reporter)
    push in the same hour, with no Content-Type and no suite: each report is sniffed as JUnit,
    none replaces another, every test case is served as the element it was, and each row's
    suite is its nearest testsuite's name."""
    bodies = {name: junit_file(name) for name in PRODUCERS}
    receipts = {}
    for number, (name, body) in enumerate(bodies.items()):
        receipts[name] = accepted(push_test_run(vault.api, body, content_type=None, commit=f"c0ffee{number}",
                                                build=str(100 + number), started_at="2026-01-01T07:00:00Z"))
        assert receipts[name]["format"] == "junit", name
        assert receipts[name]["counts"] == counts_of(body), name
        assert receipts[name]["partition"] == f"2026-01-01-07:00|{QA}"
    assert len({r["run_id"] for r in receipts.values()}) == len(bodies)
    for name, receipt in receipts.items():
        assert wait_for_push(vault.api, receipt["run_id"])["state"] == "completed", name
    vault.drain()

    total = sum(len(parse_junit(body).cases) for body in bodies.values())
    assert vault.catalog.count(provider=QA) == total
    assert sorted(vault.objects.keys(f"raw/{QA}/")) == sorted(
        f"raw/{QA}/2026/01/01/07/{sha256(body)}.xml" for body in bodies.values())
    assert_each_log_is_its_testcase_element(vault, QA, list(bodies.values()))
    rows = vault.harness.lake.read("test_results", provider=QA).to_pylist()
    assert {row["build"] for row in rows} == set(range(100, 100 + len(bodies)))
    expected = sorted((100 + number, case.test_id, case.suite, case.status)
                      for number, body in enumerate(bodies.values()) for case in parse_junit(body).cases)
    assert sorted((row["build"], row["test"], row["suite"], row["status"]) for row in rows) == expected


def test_a_json_array_of_results_is_sniffed_and_each_object_is_a_record(vault):
    receipt = accepted(push_test_run(vault.api, JSON_RESULTS, content_type=None, commit="abc123", branch="main",
                                     build="5", started_at="2026-01-01T08:30:00+02:00"))

    assert receipt["format"] == "json" and TEST_RUN_ID.match(receipt["run_id"])
    assert receipt["partition"] == f"2026-01-01-06:00|{QA}"
    assert receipt["counts"] == {"tests": 3, "passed": 1, "failed": 1, "errors": 0, "skipped": 1, "suites": 2}
    status = wait_for_push(vault.api, receipt["run_id"])
    assert status["state"] == "completed" and status["records_synced"] == 3, status
    assert status["started_at"].startswith("2026-01-01T06:30:00")  # the query's offset, in UTC

    run = parse_result_json(JSON_RESULTS)
    objects = sorted(JSON_RESULTS[case.start:case.end] for case in run.cases)
    served = []
    for log in vault.api.iter_all_logs(provider_id=QA):
        response = vault.api.raw(log["id"])
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
        assert response.headers["X-Vault-Checksum"] == "sha256:" + sha256(response.content)
        served.append(response.content)
    assert sorted(served) == objects
    assert vault.objects.get(f"raw/{QA}/2026/01/01/06/{sha256(JSON_RESULTS)}.json") == JSON_RESULTS

    rows = {row["test"]: row for row in vault.harness.lake.read("test_results", provider=QA).to_pylist()}
    assert set(rows) == {"test_pay", "test_refund", "test_query_café"}
    pay, refund, query = rows["test_pay"], rows["test_refund"], rows["test_query_café"]
    assert (pay["suite"], pay["status"], pay["duration_ms"]) == ("checkout", "passed", 12.5)
    assert (refund["status"], refund["error_type"], refund["error_message"]) == (
        "failed", "AssertionError", "expected 200, got 502")
    assert (pay["commit"], pay["branch"], pay["build"]) == ("abc123", "main", 5)
    # a result's own ci block wins over the query
    assert (query["suite"], query["commit"], query["branch"], query["build"]) == (
        "search", "feedbeef42", "release/1.2", 99)


# -- pushing again --------------------------------------------------------------------------------
def test_the_same_report_pushed_again_is_the_same_run_and_changes_nothing(vault):
    body = junit_file("pytest_xunit2.xml")
    first = accepted(push_test_run(vault.api, body, **RUN))
    # a CI step retried at once, while the run still waits or runs: joined, not launched again
    again = accepted(push_test_run(vault.api, body, **RUN))
    assert (again["run_id"], again["job_id"], again["duplicate"]) == (first["run_id"], first["job_id"], True)
    assert again["counts"] == first["counts"]
    status = wait_for_push(vault.api, first["run_id"])
    assert status["state"] == "completed" and status["records_synced"] == len(parse_junit(body).cases), status
    vault.drain()

    before = stored_objects(vault, "")
    records = sorted((r.log_id, r.checksum) for r in vault.catalog.records(provider=QA))
    rows = vault.harness.lake.read("test_results", provider=QA).num_rows
    dagster_runs = vault.harness.instance.get_runs_count()

    later = accepted(push_test_run(vault.api, body, **RUN))  # ... and the next day's re-run of the CI job

    assert (later["run_id"], later["job_id"], later["duplicate"], later["status"]) == (
        first["run_id"], first["job_id"], True, "completed")
    vault.drain()
    assert vault.harness.instance.get_runs_count() == dagster_runs
    assert stored_objects(vault, "") == before
    assert sorted((r.log_id, r.checksum) for r in vault.catalog.records(provider=QA)) == records
    assert len(records) == len(parse_junit(body).cases)
    assert vault.harness.lake.read("test_results", provider=QA).num_rows == rows == len(records)
    assert wait_for_push(vault.api, first["run_id"])["job_id"] == first["job_id"]


def test_the_same_report_pushed_by_six_retries_at_once_is_one_run_with_one_job(vault):
    """CI retries that fire together: each push of the same body is held in turn (a catalog lease
    per push id), so exactly one stores it and launches, and the others join that run and job."""
    body = junit_file("pytest_xunit1.xml")
    with ThreadPoolExecutor(6) as pool:
        answers = [accepted(response) for response in pool.map(lambda _: push_test_run(vault.api, body, **RUN), range(6))]
    assert len({a["run_id"] for a in answers}) == 1
    assert sorted(a["duplicate"] for a in answers) == [False] + [True] * 5
    assert len({a["job_id"] for a in answers}) == 1
    status = wait_for_push(vault.api, answers[0]["run_id"])
    assert status["state"] == "completed" and status["job_id"] == answers[0]["job_id"]
    vault.drain()
    assert vault.harness.instance.get_runs_count() == 1
    assert len(vault.catalog.records(provider=QA)) == len(parse_junit(body).cases)


@pytest.mark.parametrize("changed", [{"commit": "0badc0de"}, {"build": "4712"}, {"suite": "other-suite"},
                                     {"branch": "feature/x"}, {"started_at": "2026-01-01T05:45:00Z"}],
                         ids=lambda changed: next(iter(changed)))
def test_the_same_report_under_other_metadata_is_a_conflict(vault, changed):
    body = junit_file("gotestsum.xml")
    first = accepted(push_test_run(vault.api, body, **RUN))
    wait_for_push(vault.api, first["run_id"])
    vault.drain()
    before = stored_objects(vault, "")

    conflict = refused(push_test_run(vault.api, body, **{**RUN, **changed}), 409, "conflicting_push")

    assert first["run_id"] in json.dumps(conflict["detail"])
    vault.drain()
    assert stored_objects(vault, "") == before
    assert vault.harness.catalog.list_dead_letters(provider=QA) == []
    status = wait_for_push(vault.api, first["run_id"])
    assert (status["commit"], status["build"], status["suite"]) == ("3f9c2e1a7b", 4711, "ledger")


# -- bodies that are refused and kept for a look -------------------------------------------------
HTML_PAGE = b"<!-- proxy error page -->\n<html><head><title>502 Bad Gateway</title></head><body>502</body></html>\n"
UTF16_REPORT = TINY_REPORT.decode().replace("UTF-8", "UTF-16").encode("utf-16")
HOSTILE_BODIES = {
    "billion_laughs": (BILLION_LAUGHS, "unsafe_xml"),
    "quadratic_blowup": (QUADRATIC_BLOWUP, "unsafe_xml"),
    "external_system_entity": (EXTERNAL_SYSTEM_ENTITY, "unsafe_xml"),
    "external_public_dtd": (EXTERNAL_PUBLIC_DTD, "unsafe_xml"),
    "parameter_entity": (PARAMETER_ENTITY, "unsafe_xml"),
    "xinclude": (XINCLUDE, "unsafe_xml"),
    "nested_5000_deep": (deeply_nested(5000), "nesting_too_deep"),
    "html_error_page": (HTML_PAGE, "not_test_results"),
    "utf16": (UTF16_REPORT, "unsupported_encoding"),
    "truncated_xml": (TINY_REPORT[:70], "malformed_body"),
    "no_test_cases": (b'<testsuites><testsuite name="empty" tests="0"/></testsuites>', "no_test_cases"),
    "json_cut_off": (b'[{"suite": "s", "test": "t", "status": "pas', "malformed_body"),
    "json_empty_array": (b"[]", "no_test_cases"),
}


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_a_hostile_or_broken_body_is_refused_and_kept_in_the_dead_letter_zone_only(vault, name):
    body, code = HOSTILE_BODIES[name]

    answer = refused(push_test_run(vault.api, body, content_type=None, **RUN), 422, code)

    assert_kept_only_in_the_dead_letter_zone(vault, QA, body, code, answer)
    assert "root:" not in json.dumps(answer)  # no file was ever read into an answer


class _Canary:
    """A loopback HTTP server and a local file an external entity could point at; neither may be read."""

    def __init__(self, secret_file) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'<!ENTITY leak "CANARY-HTTP">')

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.file = secret_file
        self.file.write_text("CANARY-FILE")

    @contextmanager
    def serving(self) -> Iterator[_Canary]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def test_external_entities_are_never_fetched_nor_read(vault, tmp_path):
    with _Canary(tmp_path / "secret.txt").serving() as canary:
        bodies = [
            f'<?xml version="1.0"?>\n<!DOCTYPE testsuite [<!ENTITY s SYSTEM "file://{canary.file}">]>\n'
            f'<testsuite name="s"><testcase name="t"><failure>&s;</failure></testcase></testsuite>'.encode(),
            f'<?xml version="1.0"?>\n<!DOCTYPE testsuite SYSTEM "{canary.url}/junit.dtd">\n'
            f'<testsuite name="s"><testcase name="t">&leak;</testcase></testsuite>'.encode(),
            f'<?xml version="1.0"?>\n<!DOCTYPE testsuite [<!ENTITY % r SYSTEM "{canary.url}/evil.dtd"> %r;]>\n'
            f'<testsuite name="s"><testcase name="t">&leak;</testcase></testsuite>'.encode(),
            f'<testsuite name="s" xmlns:xi="http://www.w3.org/2001/XInclude"><testcase name="t"><system-out>'
            f'<xi:include href="{canary.url}/inc.txt" parse="text"/></system-out></testcase></testsuite>'.encode(),
        ]
        answers = [refused(push_test_run(vault.api, body, **RUN), 422, "unsafe_xml") for body in bodies]
        time.sleep(0.2)  # a fetch, had one been started, would have reached the canary by now

        assert canary.hits == []
    assert not any("CANARY" in json.dumps(answer) for answer in answers)
    letters = vault.harness.catalog.list_dead_letters(provider=QA)
    assert sorted(letter.object_key for letter in letters) == sorted(
        f"dlq/{QA}/{RECEIPT_DLQ}/{sha256(body)}.body" for body in bodies)
    for body in bodies:
        assert vault.objects.get(f"dlq/{QA}/{RECEIPT_DLQ}/{sha256(body)}.body") == body
    assert vault.objects.keys("inbox/") == [] and vault.objects.keys("raw/") == []


def test_a_body_over_the_providers_limit_is_refused_and_kept_nowhere(vault_service_factory):
    vault = vault_service_factory(stack="embedded", providers=push_providers(
        **{SMALL: {"type": "push", "kind": "test_result", "max_body_bytes": 2048}}))
    padding = b"<!-- " + b"x" * 2100 + b" -->\n"
    too_big = TINY_REPORT.replace(b"<testsuite", padding + b"<testsuite", 1)
    assert len(too_big) > 2048

    refused(push_test_run(vault.api, too_big, SMALL, **RUN), 413, "body_too_large")
    # sent chunked, with no Content-Length to refuse it by: cut off while it is read
    refused(push_test_run(vault.api, iter([too_big[:1000], too_big[1000:2000], too_big[2000:]]), SMALL, **RUN),
            413, "body_too_large")
    # a body over the limit that is also hostile is still only too large
    refused(push_test_run(vault.api, BILLION_LAUGHS + b"<!--" + b"x" * 2048 + b"-->", SMALL, **RUN),
            413, "body_too_large")

    assert vault.objects.keys("") == []
    assert vault.harness.catalog.list_dead_letters(provider=SMALL) == []
    assert vault.harness.instance.get_runs_count() == 0
    # the limit is the provider's: the default provider takes the same body, and a small body fits
    assert accepted(push_test_run(vault.api, too_big, QA, **RUN))["counts"]["tests"] == 1
    fits = TINY_REPORT.replace(b"<testsuite", b"<!-- " + b"y" * (2048 - len(TINY_REPORT) - 10) + b" -->\n<testsuite", 1)
    assert len(fits) == 2048
    assert accepted(push_test_run(vault.api, fits, SMALL, **RUN))["counts"]["tests"] == 1
    vault.drain()


# -- calls that are wrong, and store nothing -------------------------------------------------------
# (what, endpoint, provider_id, query changed from RUN, status, error code)
WRONG_CALLS = [
    ("unknown provider", "test-runs", "nobody", {}, 404, "unknown_provider"),
    ("no provider_id", "test-runs", None, {}, 422, "missing_parameter"),
    ("a simulator pulls its records", "test-runs", "pulled_tests", {}, 422, "not_a_push_provider"),
    ("a rest provider pulls its records", "test-runs", "acme", {}, 422, "not_a_push_provider"),
    ("a test run to an agent provider", "test-runs", AGENTS, {}, 422, "wrong_kind"),
    ("an agent result to a test-run provider", "agent-executions", QA, {}, 422, "wrong_kind"),
    ("an agent result to nobody", "agent-executions", "nobody", {}, 404, "unknown_provider"),
    ("an agent result to a simulator", "agent-executions", "pulled_tests", {}, 422, "not_a_push_provider"),
    ("build not a number (the query's pattern)", "test-runs", QA, {"build": "42a"}, 422, "invalid_request"),
    ("a blank suite", "test-runs", QA, {"suite": "   "}, 422, "invalid_suite"),
    ("commit with a space", "test-runs", QA, {"commit": "abc def"}, 422, "invalid_commit"),
    ("started_at without a zone", "test-runs", QA, {"started_at": "2026-01-01T05:00:00"}, 422, "invalid_started_at"),
    ("started_at not a time", "test-runs", QA, {"started_at": "yesterday"}, 422, "invalid_started_at"),
    ("started tomorrow", "test-runs", QA, {"started_at": "2026-01-03T00:00:00Z"}, 422, "started_in_future"),
    ("started before the vault's first hour", "test-runs", QA, {"started_at": "2025-12-31T23:00:00Z"}, 422,
     "before_first_hour"),
]


def test_a_wrong_call_is_refused_with_its_reason_and_stores_nothing(vault):
    body = junit_file("jest-junit.xml")
    mismatches = []
    for what, endpoint, provider, changed, status, code in WRONG_CALLS:
        if endpoint == "test-runs":
            response = push_test_run(vault.api, body, provider, **{**RUN, **changed})
        else:
            response = push_agent_executions(vault.api, SEED_EXECUTION, provider)
        got = (response.status_code, response.json().get("error"))
        if got != (status, code):
            mismatches.append(f"{what}: expected {(status, code)}, got {got}: {response.text[:300]}")
    assert mismatches == []

    missing = push_test_run(vault.api, body, None, **RUN).json()
    assert missing["detail"]["parameter"] == "provider_id"
    unknown = push_test_run(vault.api, body, "nobody", **RUN).json()
    assert QA in json.dumps(unknown["detail"])  # names the providers that do take test runs
    assert vault.objects.keys("") == []
    assert vault.harness.catalog.list_dead_letters() == []
    assert vault.harness.instance.get_runs_count() == 0


def test_a_read_key_follows_a_push_but_cannot_push(vault):
    body = junit_file("gradle_TEST-com.acme.vault.MerkleTest.xml")
    reader, auditor, anonymous = (vault.api.as_principal(p) for p in ("reader", "auditor", None))

    refused(push_test_run(reader, body, **RUN), 403, "forbidden")
    refused(push_agent_executions(reader, SEED_EXECUTION), 403, "forbidden")
    refused(push_test_run(anonymous, body, **RUN), 401, "unauthorized")
    assert vault.objects.keys("") == []

    receipt = accepted(push_test_run(vault.api.as_principal("ingester"), body, **RUN))
    status = wait_for_push(reader, receipt["run_id"])
    assert status["state"] == "completed" and status["records_synced"] == len(parse_junit(body).cases)
    as_ingester = vault.api.as_principal("ingester").request("GET", f"/v1/test-runs/{receipt['run_id']}")
    assert VaultApiClient.expect(as_ingester, 200)["run_id"] == receipt["run_id"]
    refused(auditor.request("GET", f"/v1/test-runs/{receipt['run_id']}"), 403, "forbidden")
    refused(anonymous.request("GET", f"/v1/test-runs/{receipt['run_id']}"), 401, "unauthorized")
    for unknown in ("tr_" + "0" * 32, "not-a-run", "ax_" + receipt["run_id"][3:]):
        refused(reader.request("GET", f"/v1/test-runs/{unknown}"), 404, "not_found")
    # a test run is not an agent execution
    refused(reader.request("GET", f"/v1/agent-executions/{receipt['run_id']}"), 404, "not_found")


# -- a QA agent's execution results ----------------------------------------------------------------
def test_an_agents_execution_result_is_pushed_and_lands_in_its_hour(vault):
    body = json.dumps(SEED_EXECUTION).encode()
    receipt = accepted(vault.api.request("POST", "/v1/agent-executions", params={"provider_id": AGENTS},
                                         content=body, headers={"Content-Type": "application/json"}))

    assert AGENT_RUN_ID.match(receipt["run_id"]), receipt
    assert receipt["partition"] == f"2026-01-01-10:00|{AGENTS}" and receipt["counts"] == {"executions": 1}
    assert receipt["duplicate"] is False and receipt["job_id"]
    status = wait_for_push(vault.api, receipt["run_id"], path="/v1/agent-executions")
    assert status["state"] == "completed" and status["records_synced"] == 1, status
    assert status["started_at"].startswith("2026-01-01T10:00:00")
    refused(vault.api.request("GET", f"/v1/test-runs/{receipt['run_id']}"), 404, "not_found")

    (log,) = vault.api.logs(provider_id=AGENTS)["data"]
    raw = vault.api.raw(log["id"])
    assert raw.status_code == 200 and raw.content == body
    assert raw.headers["X-Vault-Checksum"] == log["checksum"] == "sha256:" + sha256(body)
    assert vault.objects.get(f"raw/{AGENTS}/2026/01/01/10/{sha256(body)}.json") == body
    (row,) = vault.harness.lake.read("agent_results", provider=AGENTS).to_pylist()
    assert (row["agent_name"], row["status"], row["test_count"], row["passed"]) == ("QA_Assistant", "success", 42, 40)

    # the same result again: the same execution, nothing re-run
    again = accepted(push_agent_executions(vault.api, SEED_EXECUTION))
    assert (again["run_id"], again["job_id"], again["duplicate"]) == (receipt["run_id"], receipt["job_id"], True)

    # several executions of one hour in one push
    batch = [{**SEED_EXECUTION, "timestamp": f"2026-01-01T11:{minute:02d}:00.000Z", "agent_name": f"QA_Agent_{minute}"}
             for minute in (5, 35)]
    receipt = accepted(push_agent_executions(vault.api, batch))
    assert receipt["counts"] == {"executions": 2} and receipt["partition"] == f"2026-01-01-11:00|{AGENTS}"
    status = wait_for_push(vault.api, receipt["run_id"], path="/v1/agent-executions")
    assert status["state"] == "completed" and status["records_synced"] == 2, status
    assert vault.catalog.count(provider=AGENTS) == 3


@pytest.mark.parametrize("executions, code", [
    ([SEED_EXECUTION, {**SEED_EXECUTION, "timestamp": "2026-01-01T11:00:00.000Z"}], "mixed_hours"),
    ({**SEED_EXECUTION, "timestamp": "2026-01-01 10:00"}, "invalid_timestamp"),
    ({**SEED_EXECUTION, "timestamp": None}, "invalid_timestamp"),
    ([SEED_EXECUTION, "not an object"], "not_test_results"),
    ({**SEED_EXECUTION, "timestamp": "2027-01-01T10:00:00Z"}, "started_in_future"),
    ({**SEED_EXECUTION, "timestamp": "2025-06-01T10:00:00Z"}, "before_first_hour"),
], ids=["two_hours", "no_zone", "no_timestamp", "not_an_object", "next_year", "before_the_vault"])
def test_an_agent_push_that_names_no_single_hour_of_the_vault_is_refused_and_kept(vault, executions, code):
    body = json.dumps(executions).encode()

    answer = refused(vault.api.request("POST", "/v1/agent-executions", params={"provider_id": AGENTS}, content=body,
                                       headers={"Content-Type": "application/json"}), 422, code)

    assert_kept_only_in_the_dead_letter_zone(vault, AGENTS, body, code, answer)


@pytest.mark.parametrize("timestamp, code", [("2026-12-01T12:21:30.091006+00:00", "started_in_future"),
                                             ("2025-06-01T08:00:00Z", "before_first_hour")],
                         ids=["next_december", "before_the_vault"])
def test_a_report_dated_by_its_own_timestamp_outside_the_vaults_hours_is_refused_and_kept(vault, timestamp, code):
    """With no started_at in the query the report's zoned testsuite timestamp dates the run, so a
    wrong hour is the body's fault: refused, and kept like any unusable body."""
    body = TINY_REPORT.replace(b'tests="1"', f'tests="1" timestamp="{timestamp}"'.encode())

    answer = refused(push_test_run(vault.api, body, commit="3f9c2e1a7b"), 422, code)

    assert_kept_only_in_the_dead_letter_zone(vault, QA, body, code, answer)


def test_a_report_dated_by_its_own_timestamp_lands_in_that_hour(vault):
    body = TINY_REPORT.replace(b'tests="1"', b'tests="1" timestamp="2026-01-01T13:59:59.5+01:00"')

    receipt = accepted(push_test_run(vault.api, body, build="9"))

    assert receipt["partition"] == f"2026-01-01-12:00|{QA}"
    status = wait_for_push(vault.api, receipt["run_id"])
    assert status["state"] == "completed" and status["started_at"].startswith("2026-01-01T12:59:59.5"), status
    # no suite in the query: the testsuite's own name
    (row,) = vault.harness.lake.read("test_results", provider=QA).to_pylist()
    assert (row["suite"], row["test"], row["build"], row["commit"]) == ("smoke", "smoke::test_up", 9, None)


# -- the production-like stack ------------------------------------------------------------------
def test_a_pushed_report_lands_end_to_end_on_s3_and_mongodb(vault_service_factory):
    vault = vault_service_factory(providers=push_providers())  # S3 on moto's server, MongoDB on mongomock
    body = junit_file("surefire_TEST-com.acme.vault.LedgerTest.xml")
    run = parse_junit(body)

    receipt = accepted(push_test_run(vault.api, body, content_type="text/xml; charset=utf-8", **RUN))
    assert receipt["counts"] == counts_of(body)
    status = wait_for_push(vault.api, receipt["run_id"])
    assert status["state"] == "completed" and status["records_synced"] == len(run.cases), status

    digest = sha256(body)
    assert vault.s3.get(f"inbox/{QA}/2026/01/01/05/{digest}.xml") == body
    assert vault.s3.get(f"raw/{QA}/2026/01/01/05/{digest}.xml") == body
    assert_each_log_is_its_testcase_element(vault, QA, [body])
    rows = vault.harness.lake.read("test_results", provider=QA).to_pylist()
    assert sorted(row["test"] for row in rows) == sorted(case.test_id for case in run.cases)
    assert {(row["suite"], row["commit"], row["build"]) for row in rows} == {("ledger", "3f9c2e1a7b", 4711)}

    # a refused body is kept in the bucket and dead-lettered in MongoDB too
    refused(push_test_run(vault.api, BILLION_LAUGHS, **RUN), 422, "unsafe_xml")
    key = f"dlq/{QA}/{RECEIPT_DLQ}/{sha256(BILLION_LAUGHS)}.body"
    assert vault.s3.get(key) == BILLION_LAUGHS
    assert [letter.object_key for letter in vault.harness.catalog.list_dead_letters(provider=QA)
            if letter.stage == "push"] == [key]
