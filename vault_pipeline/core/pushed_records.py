"""How a pushed body becomes vault records, the same way at the door and in the hourly graph.

A CI job pushes the JUnit XML its test runner wrote (or a JSON array of test results) and an
agent pushes its execution results; each body is kept byte-exact and every record in it is an
exact byte range of it (a ``<testcase>`` element, a JSON object). What came with the body (the
query's suite, commit, branch, build and start time, who sent it) is its ``PushContext``, kept
next to it. From the two, ``framed_push`` gives landing the record spans, each record's natural
id (``<body sha256>:<offset>``, or a JSON result's own ``id``: the same upload twice names the
same records, so a duplicate push changes nothing) and its event time (the run's start: a run
belongs to the hour it started in); ``derived_records`` gives validation and normalisation each
test case in the ``test_result`` kind's JSON shape (``suite``, ``test``, ``status``,
``duration_ms``, ``error``, ``ci.commit``/``branch``/``build``), since the columns a test case
lacks (its commit, its build) are the run's. An XML test case's ``test`` is its stable id
(``classname::name``); the ``suite`` query parameter, when given, is every case's suite (a JUnit
``testsuite`` name is often a file or class name), else the nearest ``testsuite``'s name; a JSON
result keeps its own fields and the query fills only what it lacks. Agent results are plain JSON
records named and dated by their own ``execution_id`` and ``timestamp``. Pure logic.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from vault_pipeline.core.framing import (
    FramedPage,
    FramingError,
    NestingTooDeepError,
    decode_record,
    frame_records,
    nesting_depth,
)
from vault_pipeline.core.junit import parse_junit, parse_testcase
from vault_pipeline.core.test_runs import (
    DEFAULT_MAX_DEPTH,
    CaseResult,
    MalformedBodyError,
    NotTestResultsError,
    RunResult,
    TooDeepError,
    parse_result_json,
)

JUNIT, JSON_RESULTS, AGENT = "junit", "json", "agent"
FORMATS = (JUNIT, JSON_RESULTS, AGENT)
EXTENSIONS = {JUNIT: "xml", JSON_RESULTS: "json", AGENT: "json"}
MEDIA_TYPES = {JUNIT: "application/xml", JSON_RESULTS: "application/json", AGENT: "application/json"}
_ENCODER = msgspec.json.Encoder()
_COMMIT = re.compile(r"^[0-9A-Za-z._/\-]{1,200}$")


@dataclass(frozen=True, slots=True)
class PushContext:
    """What came with a pushed body; stored beside it, and in every landed page made of it."""

    push_id: str
    provider: str
    kind: str  # test_result | agent_result
    format: str  # junit | json | agent
    body_sha256: str  # hex
    size: int
    hour: str  # the partition hour key, YYYY-MM-DD-HH:00
    started_at: str  # fixed-width UTC timestamp: every record's event time (test runs)
    started_at_source: str  # query | report | received
    received_at: str
    sent_by: str  # the API key's name (never the key)
    suite: str | None = None
    commit: str | None = None
    branch: str | None = None
    build: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PushContext:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})

    def same_run(self, other: PushContext) -> bool:
        """Whether ``other`` says the same about the same body (a duplicate push, not a conflict)."""
        keys = ("provider", "format", "body_sha256", "suite", "commit", "branch", "build")
        return all(getattr(self, key) == getattr(other, key) for key in keys) and (
            other.started_at_source != "query" or other.started_at == self.started_at)


class PushRefused(ValueError):
    """A push is refused before anything is stored as good; ``code`` and ``parameter`` say why."""

    def __init__(self, code: str, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.code, self.parameter = code, parameter


def check_commit(value: str | None) -> str | None:
    if value is not None and not _COMMIT.match(value):
        raise PushRefused("invalid_commit", f"commit {value[:80]!r} is not a revision (1-200 of A-Z a-z 0-9 . _ / -)",
                          "commit")
    return value


def read_run(body: bytes, format: str, *, max_bytes: int | None = None, max_depth: int = DEFAULT_MAX_DEPTH) -> RunResult:
    """The test run a body holds (JUnitError when it is refused); ``max_depth`` bounds the nesting
    of elements (XML) or arrays and objects (JSON)."""
    if format == JUNIT:
        return parse_junit(body, max_bytes=max_bytes, max_depth=max_depth)
    if format == JSON_RESULTS:
        return parse_result_json(body, max_bytes=max_bytes, max_depth=max_depth)
    raise ValueError(f"{format!r} bodies are not test runs")


def sniff_format(body: bytes, content_type: str | None = None) -> str:
    """junit or json, from the body's first byte that is not whitespace (after a BOM): ``[`` or
    ``{`` is JSON, anything else is read as XML. The bytes decide, not the Content-Type (curl sends
    ``application/x-www-form-urlencoded`` with ``--data-binary``, and a mislabelled report would
    otherwise be refused with a misleading reason); ``content_type`` decides only an empty body."""
    start = (body[3:] if body.startswith(b"\xef\xbb\xbf") else body).lstrip()
    if not start:
        media = (content_type or "").split(";")[0].strip().lower()
        return JSON_RESULTS if media == "application/json" or media.endswith("+json") else JUNIT
    return JSON_RESULTS if start[:1] in (b"[", b"{") else JUNIT


def report_started_at(run: RunResult) -> datetime | None:
    """The earliest suite ``timestamp`` that names its time zone (naive ones are local times of
    an unknown machine, so they are not guessed at)."""
    moments = []
    for suite in run.suites:
        if suite.timestamp:
            text = suite.timestamp.strip()
            try:
                moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
            except ValueError:
                continue
            if moment.tzinfo is not None:
                moments.append(moment.astimezone(UTC))
    return min(moments) if moments else None


def framed_push(body: bytes, context: PushContext) -> tuple[FramedPage, RunResult | None]:
    """The body's records as landing needs them, and the run it holds (None for agent results)."""
    if context.format == AGENT:
        return frame_agent_results(body), None
    run = read_run(body, context.format)
    offsets = [case.start for case in run.cases]
    lengths = [case.length for case in run.cases]
    # JUnit cases carry no id of their own: a case is named by its place in its run's body.
    names = [f"{context.body_sha256}:{case.start}" for case in run.cases]
    if context.format == JSON_RESULTS:
        names = [_json_id(body, case) or name for case, name in zip(run.cases, names, strict=True)]
    page = FramedPage(offsets, lengths, {}, names, [context.started_at] * len(offsets))
    return page, run


def _json_id(body: bytes, case: CaseResult) -> str | None:
    value = decode_record(memoryview(body)[case.start : case.end]).get("id")
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) else None


def frame_agent_results(body: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> FramedPage:
    """An agent's results: one JSON object, or an array of them, each an exact span of the body;
    nesting deeper than ``max_depth`` (counting the array) is refused whatever the shape."""
    text = body.lstrip()
    try:
        depth = nesting_depth(body) + (0 if text[:1] == b"[" else 1)
        if depth > max_depth:
            raise NestingTooDeepError(f"the body nests arrays/objects {depth} levels deep (as an array of "
                                      f"executions), more than the limit of {max_depth}")
        if text[:1] == b"[":
            page = frame_records(body, "$", max_depth=max_depth)
        elif text[:1] == b"{":
            start = len(body) - len(text)
            value = decode_record(body)  # the whole body must be that one object
            if not isinstance(value, dict):
                raise FramingError("expected a JSON object")
            end = len(body.rstrip())
            page = FramedPage([start], [end - start])
        else:
            raise FramingError("expected a JSON object (one execution) or an array of them")
    except NestingTooDeepError as exc:
        raise TooDeepError(str(exc)) from None
    except (FramingError, ValueError) as exc:
        raise MalformedBodyError(f"agent results: {exc}") from None
    for number, (offset, length) in enumerate(zip(page.offsets, page.lengths, strict=True)):
        if not isinstance(decode_record(memoryview(body)[offset : offset + length]), dict):
            raise NotTestResultsError(f"agent result {number} is not a JSON object")
    if not page.offsets:
        raise NotTestResultsError("the body holds no agent result")
    return page


def case_record(case: CaseResult, context: PushContext, *, from_json: dict | None = None) -> dict[str, Any]:
    """One test case in the ``test_result`` kind's shape, with its run's commit, branch and build."""
    ci = {"commit": context.commit, "branch": context.branch, "build": context.build}
    if from_json is not None:  # a JSON result keeps what it says; the query fills the gaps
        record = dict(from_json)
        own_ci = record.get("ci", {})
        if isinstance(own_ci, dict):  # a ci that is no object is kept as sent (and read as no commit)
            record["ci"] = {**ci, **{k: v for k, v in own_ci.items() if v is not None}}
        if record.get("suite") is None and context.suite is not None:
            record["suite"] = context.suite
        record.setdefault("finished_at", context.started_at)
        return record
    record = case.as_record()
    record["name"] = record["test"]
    record["test"] = case.test_id
    record["junit_suite"] = record.pop("suite")
    record["suite"] = context.suite if context.suite is not None else case.suite
    record["ci"] = ci
    record["started_at"] = context.started_at
    record["finished_at"] = context.started_at
    return record


def derived_records(body: bytes, context: PushContext) -> dict[int, bytes]:
    """Each test case's ``test_result`` record as JSON bytes, by the case's offset in ``body``
    (what validation and normalisation read; the stored bytes stay the XML as it was sent)."""
    if context.format == AGENT:
        raise ValueError("agent results are read from their own bytes")
    run = read_run(body, context.format)
    view = memoryview(body)
    derived = {}
    for case in run.cases:
        original = decode_record(view[case.start : case.end]) if context.format == JSON_RESULTS else None
        derived[case.start] = _ENCODER.encode(case_record(case, context, from_json=original))
    return derived


def stored_case_value(piece: bytes) -> dict[str, Any]:
    """A stored ``<testcase>`` record as a value (for PII scanning and masking in promotion)."""
    return parse_testcase(piece).as_record()
