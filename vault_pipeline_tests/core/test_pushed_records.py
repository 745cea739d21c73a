"""Scenario: a CI job pushes its test report (JUnit XML or a JSON array) and an agent pushes its
executions; what the vault makes of each body, before any storage or Dagster is involved.

Every test case of a pushed body is an exact byte range of it, named ``<body sha256>:<offset>``
(or, for a JSON result, by its own ``id``) and dated by the run's start; validation and
normalisation read each case as a ``test_result`` JSON record in which the push's query (suite,
commit, branch, build) fills what the report does not say. ``sniff_format`` tells JUnit from JSON,
``report_started_at`` dates a report only by time-zoned timestamps, ``frame_agent_results`` frames
one execution or an array of them, and ``PushContext`` round-trips and recognises a re-sent push.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from vault_pipeline.core.junit import parse_junit
from vault_pipeline.core.pushed_records import (
    AGENT,
    JSON_RESULTS,
    JUNIT,
    PushContext,
    case_record,
    derived_records,
    frame_agent_results,
    framed_push,
    read_run,
    report_started_at,
    sniff_format,
)
from vault_pipeline.core.pushed_records import (
    stored_case_value as value_of_testcase,
)
from vault_pipeline.core.test_runs import (
    MalformedBodyError,
    NotTestResultsError,
    TooDeepError,
)
from vault_pipeline_tests.fixtures.junit_files import PRODUCERS, junit_file

STARTED = "2026-01-01T05:10:00.000000Z"

TWO_SUITES = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nightly">
  <testsuite name="test_checkout.py" tests="2" failures="1">
    <testcase classname="shop.test_checkout" name="test_pay" time="0.250"/>
    <testcase classname="shop.test_checkout" name="test_refund" time="1.5">
      <failure message="expected 200, got 503" type="AssertionError">trace</failure>
    </testcase>
  </testsuite>
  <testsuite name="test_search.py" tests="1" skipped="1">
    <testcase name="test_suggest" time="0"><skipped message="flaky backend"/></testcase>
  </testsuite>
</testsuites>
"""


def _context(body: bytes, format: str = JUNIT, **overrides) -> PushContext:
    fields = {
        "push_id": "tr_" + "0" * 32, "provider": "ci", "kind": "agent_result" if format == AGENT else "test_result",
        "format": format, "body_sha256": hashlib.sha256(body).hexdigest(), "size": len(body),
        "hour": "2026-01-01-05:00", "started_at": STARTED, "started_at_source": "query",
        "received_at": "2026-01-01T05:30:00.000000Z", "sent_by": "ci-key",
        "suite": "unit", "commit": "abc123", "branch": "main", "build": 42,
    }
    return PushContext(**(fields | overrides))


def _derived(body: bytes, context: PushContext) -> list[dict]:
    return [json.loads(data) for _, data in sorted(derived_records(body, context).items())]


def _results(*records: dict) -> bytes:
    return ("[\n  " + ",\n  ".join(json.dumps(r) for r in records) + "\n]\n").encode()


# -- framing: spans, names and times ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRODUCERS))
def test_every_case_of_a_pushed_report_is_its_testcase_span_named_by_body_and_offset(name):
    body = junit_file(name)
    context = _context(body)
    page, run = framed_push(body, context)
    cases = parse_junit(body).cases
    assert run.cases == cases
    assert list(zip(page.offsets, page.lengths, strict=True)) == [(c.start, c.end - c.start) for c in cases]
    assert all(piece.startswith(b"<testcase") for piece in page.slices(body))
    assert page.natural_ids == [f"{context.body_sha256}:{c.start}" for c in cases]
    assert len(set(page.natural_ids)) == len(cases)
    assert page.event_times == [STARTED] * len(cases)  # a run belongs to the hour it started in


def test_the_same_upload_names_the_same_records_whoever_sends_it_and_whenever():
    first = framed_push(TWO_SUITES, _context(TWO_SUITES))[0]
    again = framed_push(TWO_SUITES, _context(TWO_SUITES, push_id="tr_" + "1" * 32, sent_by="other",
                                             received_at="2026-01-02T00:00:00.000000Z"))[0]
    assert again.natural_ids == first.natural_ids


def test_a_json_result_is_named_by_its_own_id_else_by_its_place_in_the_body():
    body = _results(
        {"id": "run-7/case-1", "suite": "s", "test": "a", "status": "passed"},
        {"id": 17, "suite": "s", "test": "b", "status": "passed"},
        {"suite": "s", "test": "c", "status": "failed"},
        {"id": "", "suite": "s", "test": "d", "status": "passed"},
        {"id": True, "suite": "s", "test": "e", "status": "passed"},
        {"id": 1.5, "suite": "s", "test": "f", "status": "passed"},
        {"id": None, "suite": "s", "test": "g", "status": "passed"},
    )
    context = _context(body, JSON_RESULTS)
    page, run = framed_push(body, context)
    assert run.format == "json" and len(run.cases) == 7
    by_place = [f"{context.body_sha256}:{offset}" for offset in page.offsets]
    assert page.natural_ids == ["run-7/case-1", "17", *by_place[2:]]
    assert page.event_times == [STARTED] * 7
    for piece in page.slices(body):  # each span is exactly the JSON object as sent
        assert piece.startswith(b"{") and piece.endswith(b"}") and json.loads(piece)["suite"] == "s"


# -- derived test_result records --------------------------------------------------------------------


def test_a_junit_case_becomes_a_test_result_with_its_stable_id_and_the_runs_ci_fields():
    pay, refund, suggest = _derived(TWO_SUITES, _context(TWO_SUITES))
    assert pay["test"] == "shop.test_checkout::test_pay" and pay["name"] == "test_pay"
    assert (pay["status"], pay["duration_ms"], pay["error"]) == ("passed", 250.0, None)
    assert refund["test"] == "shop.test_checkout::test_refund" and refund["status"] == "failed"
    assert refund["duration_ms"] == 1500.0
    assert refund["error"] == {"type": "AssertionError", "message": "expected 200, got 503", "text": "trace"}
    assert suggest["test"] == "test_search.py::test_suggest"  # no classname: the suite names it
    assert (suggest["status"], suggest["skip_message"]) == ("skipped", "flaky backend")
    for record in (pay, refund, suggest):
        assert record["ci"] == {"commit": "abc123", "branch": "main", "build": 42}
        assert record["started_at"] == record["finished_at"] == STARTED


def test_the_suite_query_parameter_names_every_cases_suite_and_the_junit_suite_is_kept_beside_it():
    records = _derived(TWO_SUITES, _context(TWO_SUITES, suite="checkout-service"))
    assert [r["suite"] for r in records] == ["checkout-service"] * 3
    assert [r["junit_suite"] for r in records] == ["test_checkout.py", "test_checkout.py", "test_search.py"]


def test_without_a_suite_parameter_each_case_takes_its_nearest_testsuites_name():
    records = _derived(TWO_SUITES, _context(TWO_SUITES, suite=None))
    assert [r["suite"] for r in records] == ["test_checkout.py", "test_checkout.py", "test_search.py"]
    nested = junit_file("phpunit_nested.xml")  # suites nested four deep: the innermost one names the case
    run = parse_junit(nested)
    assert [r["suite"] for r in _derived(nested, _context(nested, suite=None))] == [c.suite for c in run.cases]
    assert any(len(c.suite_path) >= 3 for c in run.cases)


def test_a_push_without_commit_branch_or_build_leaves_them_unknown_not_invented():
    [pay, *_] = _derived(TWO_SUITES, _context(TWO_SUITES, commit=None, branch=None, build=None))
    assert pay["ci"] == {"commit": None, "branch": None, "build": None}


def test_derived_records_are_keyed_by_the_offset_of_the_cases_bytes():
    derived = derived_records(TWO_SUITES, _context(TWO_SUITES))
    assert sorted(derived) == [c.start for c in parse_junit(TWO_SUITES).cases]
    assert all(TWO_SUITES[offset:].startswith(b"<testcase") for offset in derived)


def test_a_json_result_keeps_its_own_fields_and_the_query_fills_only_what_it_lacks():
    body = _results(
        {"id": "r1", "suite": "own-suite", "test": "t1", "status": "passed", "duration_ms": 3,
         "finished_at": "2026-01-01T05:12:00Z", "ci": {"commit": "own-commit", "branch": None}, "extra": [1, 2]},
        {"id": "r2", "suite": None, "test": "t2", "status": "failed", "error": {"type": "E", "message": "m"}},
        {"id": "r3", "test": "t3", "status": "passed", "ci": "not an object"},
    )
    own, gaps, odd = _derived(body, _context(body, JSON_RESULTS))
    assert own["suite"] == "own-suite" and own["test"] == "t1" and own["duration_ms"] == 3
    assert own["finished_at"] == "2026-01-01T05:12:00Z" and own["extra"] == [1, 2]
    assert own["ci"] == {"commit": "own-commit", "branch": "main", "build": 42}  # a null is a gap
    assert gaps["suite"] == "unit" and gaps["finished_at"] == STARTED
    assert gaps["error"] == {"type": "E", "message": "m"}  # the record's own shape, not re-derived
    assert gaps["ci"] == {"commit": "abc123", "branch": "main", "build": 42}
    assert odd["suite"] == "unit"  # absent suite: the query's
    assert odd["ci"] == "not an object"  # kept as sent (read as no commit), not overwritten by the query


@pytest.mark.parametrize("wrap", [False, True])
def test_an_agent_result_nested_too_deep_is_refused_as_an_object_and_in_an_array(wrap):
    deep = b'{"a":' * 40 + b"1" + b"}" * 40
    execution = b'{"execution_id": "x", "timestamp": "2026-01-01T05:00:00Z", "output": ' + deep + b"}"
    with pytest.raises(TooDeepError, match="limit of 32"):
        frame_agent_results(b"[" + execution + b"]" if wrap else execution)
    assert len(frame_agent_results(execution, max_depth=64)) == 1


def test_a_json_result_without_a_suite_and_a_push_without_one_keeps_the_gap_for_validation():
    body = _results({"id": "r1", "test": "t1", "status": "passed"})
    [record] = _derived(body, _context(body, JSON_RESULTS, suite=None))
    assert "suite" not in record


def test_case_record_of_a_junit_case_and_testcase_value_of_its_stored_bytes_agree():
    run = parse_junit(TWO_SUITES)
    refund = run.cases[1]
    record = case_record(refund, _context(TWO_SUITES))
    value = value_of_testcase(TWO_SUITES[refund.start:refund.end])  # what promotion scans for PII
    assert value["test"] == record["name"] == "test_refund"
    assert value["test_id"] == record["test"] == "shop.test_checkout::test_refund"
    assert value["error"] == record["error"] and value["status"] == record["status"]
    assert value["suite"] is None  # a stored element does not say which suite held it


def test_agent_results_have_no_derived_records():
    body = b'{"execution_id": "x1", "timestamp": "2026-01-01T05:00:00Z"}'
    with pytest.raises(ValueError, match="agent results"):
        derived_records(body, _context(body, AGENT))
    with pytest.raises(ValueError, match="not test runs"):
        read_run(body, AGENT)


# -- sniffing the format --------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "expected"), [
    (b'[{"test": "t"}]', JSON_RESULTS),
    (b' \r\n\t[{"test": "t"}]', JSON_RESULTS),
    (b'\xef\xbb\xbf[{"test": "t"}]', JSON_RESULTS),  # a BOM is not the first byte of the content
    (b'\xef\xbb\xbf \n [', JSON_RESULTS),
    (b'{"test": "t"}', JSON_RESULTS),  # an object is JSON too: the JSON reader then says it wants an array
    (b'<?xml version="1.0"?><testsuites/>', JUNIT),
    (b'\xef\xbb\xbf<?xml version="1.0"?><testsuites/>', JUNIT),
    (b'  <testsuite name="s"/>', JUNIT),
    (b"502 Bad Gateway", JUNIT),  # neither: the XML reader names what is wrong
])
@pytest.mark.parametrize("content_type", [None, "", "application/octet-stream", "text/plain", "application/json",
                                          "application/xml", "application/x-www-form-urlencoded"])
def test_the_first_byte_that_is_not_whitespace_decides_whatever_the_content_type_says(body, expected, content_type):
    assert sniff_format(body, content_type) == expected


@pytest.mark.parametrize(("content_type", "expected"), [
    (None, JUNIT), ("application/xml", JUNIT), ("application/json", JSON_RESULTS),
    ("Application/JSON; charset=UTF-8", JSON_RESULTS), ("application/vnd.acme.results+json", JSON_RESULTS),
])
def test_an_empty_body_is_read_as_its_content_type_says_so_the_refusal_names_that_format(content_type, expected):
    assert sniff_format(b"", content_type) == expected
    assert sniff_format(b" \n", content_type) == expected


def test_a_bom_before_a_json_array_is_sniffed_as_json_and_refused_by_the_json_reader_with_that_reason():
    body = b'\xef\xbb\xbf[{"suite": "s", "test": "t", "status": "passed"}]'
    assert sniff_format(body, None) == JSON_RESULTS
    with pytest.raises(MalformedBodyError, match="byte-order mark"):
        read_run(body, JSON_RESULTS)


def test_the_windows_reporters_bom_report_is_sniffed_and_read_as_junit():
    body = junit_file("windows_crlf_bom_single_quotes.xml")
    assert body.startswith(b"\xef\xbb\xbf")
    assert sniff_format(body, None) == JUNIT
    assert len(read_run(body, JUNIT).cases) == body.count(b"<testcase ")


# -- the report's own start time -------------------------------------------------------------------


def _suites(*timestamps: str) -> bytes:
    suites = "".join(f'<testsuite name="s{n}" timestamp="{stamp}"><testcase name="t{n}"/></testsuite>'
                     for n, stamp in enumerate(timestamps))
    return f"<testsuites>{suites}</testsuites>".encode()


def test_the_report_start_is_the_earliest_suite_timestamp_that_names_its_zone_in_utc():
    run = parse_junit(_suites("2026-01-01T07:00:00Z", "2026-01-01T07:30:00+02:00", "2026-01-01T06:00:00z"))
    started = report_started_at(run)
    assert started.isoformat() == "2026-01-01T05:30:00+00:00"  # 07:30 at +02:00


def test_naive_and_unreadable_timestamps_are_not_guessed_at():
    assert report_started_at(parse_junit(_suites("2026-01-01T01:00:00", "2026-01-01T09:00:00Z"))).hour == 9
    assert report_started_at(parse_junit(_suites("2026-01-01T01:00:00", "yesterday", ""))) is None
    assert report_started_at(parse_junit(b'<testsuite name="s"><testcase name="t"/></testsuite>')) is None


@pytest.mark.parametrize(("name", "expected"), [
    ("pytest_xunit2.xml", "2026-12-01T12:21:31.440480+00:00"),
    ("gotestsum.xml", "2026-05-01T10:00:00+00:00"),
    ("gradle_TEST-com.acme.vault.MerkleTest.xml", None),  # Gradle writes the runner's local time
    ("jest-junit.xml", None),
    ("windows_crlf_bom_single_quotes.xml", None),
])
def test_real_reports_are_dated_only_when_their_timestamps_carry_a_zone(name, expected):
    started = report_started_at(parse_junit(junit_file(name)))
    assert (started.isoformat() if started else None) == expected


# -- agent results ---------------------------------------------------------------------------------


AGENT_ONE = b'{"execution_id": "ax-1", "agent_name": "QA_Assistant", "status": "success", "timestamp": "2026-01-01T05:01:00Z"}'


def test_one_agent_execution_object_is_one_record_without_the_whitespace_around_it():
    body = b"\n  " + AGENT_ONE + b"\r\n\n"
    page = frame_agent_results(body)
    assert page.slices(body) == [AGENT_ONE]
    assert page.natural_ids is None and page.event_times is None  # named by execution_id, dated by timestamp


def test_an_array_of_agent_executions_is_one_record_per_object_as_sent():
    second = b'{"execution_id": "ax-2", "output": {"test_count": 3, "nested": [1, {"a": "}"}]}}'
    body = b"[\n " + AGENT_ONE + b",\n " + second + b"\n]"
    page = frame_agent_results(body)
    assert page.slices(body) == [AGENT_ONE, second]
    assert framed_push(body, _context(body, AGENT)) == (page, None)


@pytest.mark.parametrize(("body", "error", "message"), [
    (b"[]", NotTestResultsError, "holds no agent result"),
    (b"[1]", NotTestResultsError, "agent result 0 is not a JSON object"),
    (b'[{"a": 1}, "x"]', NotTestResultsError, "agent result 1 is not a JSON object"),
    (b'"success"', MalformedBodyError, "expected a JSON object"),
    (b"", MalformedBodyError, "expected a JSON object"),
    (b"   \n", MalformedBodyError, "expected a JSON object"),
    (b"<testsuites/>", MalformedBodyError, "expected a JSON object"),
    (b'{"a": 1} {"b": 2}', MalformedBodyError, "trailing characters"),  # two objects are not one
    (b'{"a": 1', MalformedBodyError, "agent results"),
    (b'[{"a": 1},]', MalformedBodyError, "trailing comma"),
    (b'[{"a": 1}] and more', MalformedBodyError, "trailing characters"),
    (b"[" + b'{"a":' * 40 + b"1" + b"}" * 40 + b"]", TooDeepError, "more than the limit of 32"),
])
def test_hostile_or_wrong_agent_bodies_are_refused_with_their_reason(body, error, message):
    with pytest.raises(error, match=message):
        frame_agent_results(body)


# -- the push's context -----------------------------------------------------------------------------


def test_a_push_context_round_trips_through_its_dict_and_json():
    context = _context(TWO_SUITES)
    assert PushContext.from_dict(context.to_dict()) == context
    assert PushContext.from_dict(json.loads(json.dumps(context.to_dict()))) == context
    older = {k: v for k, v in context.to_dict().items() if k not in ("suite", "commit", "branch", "build")}
    assert PushContext.from_dict(older | {"unknown_later_field": 1}) == replace(
        context, suite=None, commit=None, branch=None, build=None)


def test_the_same_body_with_the_same_metadata_is_the_same_run_whoever_sent_it_and_when():
    first = _context(TWO_SUITES)
    resent = replace(first, push_id="tr_" + "9" * 32, sent_by="another-key", received_at="2026-01-03T00:00:00.000000Z")
    assert first.same_run(resent)
    # Re-sent without started_at: the start it was given then (receipt, report) does not conflict.
    assert first.same_run(replace(resent, started_at="2026-01-03T00:00:00.000000Z", started_at_source="received"))
    assert first.same_run(replace(resent, started_at="2026-01-01T04:00:00.000000Z", started_at_source="report"))


@pytest.mark.parametrize("change", [
    {"commit": "def456"}, {"branch": "release"}, {"build": 43}, {"suite": "integration"}, {"suite": None},
    {"provider": "other"}, {"format": JSON_RESULTS}, {"body_sha256": "f" * 64},
    {"started_at": "2026-01-01T06:00:00.000000Z", "started_at_source": "query"},
])
def test_the_same_body_with_other_metadata_is_not_the_same_run(change):
    first = _context(TWO_SUITES)
    assert not first.same_run(replace(first, **change))
