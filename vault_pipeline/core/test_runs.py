"""A pushed test run's records: what the JUnit XML and the JSON readers both return.

``CaseResult`` is one test case with the exact byte range of its element in the stored body,
``SuiteResult`` and ``RunResult`` the suites and the run around them, each with the totals it
declares and those its cases add up to. ``JUnitError`` and its subclasses name why a body is
refused (the ``code`` the API answers with). ``parse_result_json`` reads the other accepted form,
a JSON array of test-result objects, with each element's exact span (core/framing.py). Pure logic.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from vault_pipeline.core.framing import (
    FramingError,
    NestingTooDeepError,
    RecordDecodeError,
    decode_record,
    frame_records,
)

STATUSES = ("passed", "failed", "error", "skipped")
DEFAULT_MAX_DEPTH = 32  # PHPUnit nests suites 4-5 deep; anything near this is not a test report
DEFAULT_MAX_TEXT_BYTES = 16 * 1024  # failure text kept per problem: enough for a stack trace's top


# -- errors ------------------------------------------------------------------------------------


class JUnitError(ValueError):
    """An uploaded test-results body is refused; ``code`` says why, in words an API error can carry."""

    code = "invalid_test_results"


class BodyTooLargeError(JUnitError):
    code = "body_too_large"


class UnsafeXMLError(JUnitError):
    """DOCTYPE, entity declarations or XInclude: refused before anything is expanded or fetched."""

    code = "unsafe_xml"


class MalformedBodyError(JUnitError):
    code = "malformed_body"


class UnsupportedEncodingError(JUnitError):
    code = "unsupported_encoding"


class NotTestResultsError(JUnitError):
    """Well-formed, but not a JUnit report (or not a JSON array of result objects)."""

    code = "not_test_results"


class TooDeepError(JUnitError):
    code = "nesting_too_deep"


# -- records -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """A ``failure`` or ``error`` of a test case (or a Surefire rerun: ``flakyFailure``, ``rerunError``, ...)."""

    kind: str
    type: str | None
    message: str | None
    text: str  # the element's text (a stack trace, captured assertion), cut to max_text_bytes
    truncated: bool = False  # message or text was longer than max_text_bytes


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One test case of a run: where its bytes are in the body, and what it says."""

    start: int  # body[start:end] is the case's exact bytes (a <testcase> element, or a JSON object)
    end: int
    suite: str | None  # the nearest enclosing suite's name
    suite_path: tuple[str, ...]  # names of the enclosing suites, outermost first
    classname: str | None
    name: str
    test_id: str  # classname::name, else suite::name, else name
    status: str  # passed | failed | error | skipped (JSON records may carry another value: see notes)
    duration_ms: float | None
    problems: tuple[Problem, ...] = ()  # failure/error children in order; the first one sets the status
    reruns: tuple[Problem, ...] = ()  # Surefire reruns; a passed case with reruns passed only on a retry
    skip_message: str | None = None
    properties: tuple[tuple[str, str], ...] = ()  # (name, value) in order; a name may repeat
    file: str | None = None
    line: int | None = None
    system_out_bytes: int = 0  # UTF-8 size of the captured output (its text is not kept)
    system_err_bytes: int = 0
    notes: tuple[str, ...] = ()  # what could not be read (an unparseable time, an unknown status)

    @property
    def offset(self) -> int:
        return self.start

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def property(self, name: str) -> str | None:
        """The first value of the property ``name``."""
        return next((value for key, value in self.properties if key == name), None)

    def as_record(self) -> dict[str, Any]:
        """The case in the ``test_result`` kind's shape (``suite``, ``test``, ``status``, ``duration_ms``,
        ``error.type``/``error.message``), with the JUnit details alongside."""
        problem = self.problem
        return {
            "suite": self.suite,
            "suite_path": list(self.suite_path),
            "classname": self.classname,
            "test": self.name,
            "test_id": self.test_id,
            "status": self.status,
            "duration_ms": self.duration_ms,
            "error": None if problem is None else {"type": problem.type, "message": problem.message, "text": problem.text},
            "skip_message": self.skip_message,
            "reruns": len(self.reruns),
            "file": self.file,
            "line": self.line,
            "properties": [{"name": key, "value": value} for key, value in self.properties],
            "system_out_bytes": self.system_out_bytes,
            "system_err_bytes": self.system_err_bytes,
        }


@dataclass(frozen=True, slots=True)
class Totals:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped


@dataclass(frozen=True, slots=True)
class DeclaredTotals:
    """Totals as a ``testsuite``/``testsuites`` element's attributes state them; None where absent."""

    tests: int | None = None
    failures: int | None = None
    errors: int | None = None
    skipped: int | None = None


@dataclass(frozen=True, slots=True)
class SuiteResult:
    name: str | None
    path: tuple[str, ...]  # this suite's name last
    counted: Totals  # from the cases inside it, nested suites included
    declared: DeclaredTotals
    duration_ms: float | None = None
    timestamp: str | None = None
    hostname: str | None = None
    properties: tuple[tuple[str, str], ...] = ()
    system_out_bytes: int = 0
    system_err_bytes: int = 0

    @property
    def mismatches(self) -> tuple[str, ...]:
        return _mismatches(f"suite {self.name!r}", self.declared, self.counted)


@dataclass(frozen=True, slots=True)
class RunResult:
    format: str  # "junit" | "json"
    name: str | None  # the root element's name attribute
    cases: tuple[CaseResult, ...]
    suites: tuple[SuiteResult, ...]  # in document order (a suite before the suites nested in it)
    totals: Totals  # counted from the cases
    declared: DeclaredTotals  # the root's attributes, else the sum over the top-level suites
    notes: tuple[str, ...] = ()

    @property
    def mismatches(self) -> tuple[str, ...]:
        """Every place where declared totals disagree with the cases (never fatal)."""
        found = list(_mismatches("the run", self.declared, self.totals))
        for suite in self.suites:
            found.extend(suite.mismatches)
        return tuple(found)

    @property
    def consistent(self) -> bool:
        return not self.mismatches


def _mismatches(what: str, declared: DeclaredTotals, counted: Totals) -> tuple[str, ...]:
    found = []
    for name in ("tests", "failures", "errors", "skipped"):
        stated = getattr(declared, name)
        if stated is not None and stated != getattr(counted, name):
            found.append(f"{what} declares {name}={stated} but its test cases give {getattr(counted, name)}")
    return tuple(found)



def stable_id(classname: str | None, name: str, suite: str | None) -> str:
    """A test's stable id across runs: ``classname::name``, else ``suite::name``, else ``name``."""
    owner = classname or suite
    return f"{owner}::{name}" if owner else name


def cut_text(text: str, limit: int, over: bool = False) -> tuple[str, bool]:
    if len(text) <= limit // 4 or (text.isascii() and len(text) <= limit):
        return text, over
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text, over
    return data[:limit].decode("utf-8", "ignore"), True


# -- JSON records ------------------------------------------------------------------------------


def parse_result_json(body: bytes, *, max_bytes: int | None = None, max_depth: int = DEFAULT_MAX_DEPTH) -> RunResult:
    """Test results sent as a JSON array of objects (``suite``, ``test``, ``status``, ``duration_ms``,
    ``error: {type, message}``, and optionally ``classname``, ``file``, ``line``, ``skip_message``,
    ``properties``), each with its exact byte range in ``body``.

    The array's shape is checked (an element that is not an object refuses the body); a field with
    a wrong value does not: the case keeps it, or leaves it unknown, with a note, and input
    validation dead-letters it as it does for pulled records.
    """
    if max_bytes is not None and len(body) > max_bytes:
        raise BodyTooLargeError(f"the body is {len(body)} bytes, over the limit of {max_bytes} bytes")
    try:
        page = frame_records(body, "$", max_depth=max_depth)
    except NestingTooDeepError as exc:
        raise TooDeepError(str(exc)) from None
    except FramingError as exc:
        if "expected a JSON array" in str(exc):
            raise NotTestResultsError(f"expected a JSON array of test results: {exc}") from None
        raise MalformedBodyError(str(exc)) from None
    cases = []
    for number, (offset, length) in enumerate(zip(page.offsets, page.lengths, strict=True)):
        try:
            record = decode_record(memoryview(body)[offset : offset + length])
        except RecordDecodeError as exc:
            raise MalformedBodyError(f"test result {number} cannot be read: {exc}") from None
        if not isinstance(record, dict):
            raise NotTestResultsError(f"test result {number} is {type(record).__name__}, not a JSON object")
        cases.append(_json_case(record, offset, offset + length))
    suites: dict[str | None, dict[str, int]] = {}
    for case in cases:
        counts = suites.setdefault(case.suite, {"tests": 0, "failed": 0, "error": 0, "skipped": 0})
        counts["tests"] += 1
        if case.status in counts:
            counts[case.status] += 1
    suite_results = tuple(
        SuiteResult(name, (name,) if name is not None else (), Totals(c["tests"], c["failed"], c["error"], c["skipped"]), DeclaredTotals())
        for name, c in suites.items()
    )
    totals = Totals(
        len(cases),
        sum(c.status == "failed" for c in cases),
        sum(c.status == "error" for c in cases),
        sum(c.status == "skipped" for c in cases),
    )
    unknown = sum(case.status not in STATUSES for case in cases)
    notes = (f"{unknown} test results have an unknown status (counted in tests, and so in passed)",) if unknown else ()
    return RunResult("json", None, tuple(cases), suite_results, totals, DeclaredTotals(), notes)


def _json_case(record: dict[str, Any], start: int, end: int) -> CaseResult:
    notes: list[str] = []

    def text(key: str, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        notes.append(f"{key} is {type(value).__name__}, not a string")
        return json.dumps(value, ensure_ascii=False)

    suite = text("suite", record.get("suite"))
    name = text("test", record.get("test"))
    if name is None:
        notes.append("the result has no test name")
        name = ""
    classname = text("classname", record.get("classname")) or None
    status = record.get("status")
    if status not in STATUSES:
        notes.append(f"status {status!r} is not one of {', '.join(STATUSES)}")
        status = str(status)
    duration = record.get("duration_ms")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | float)
                                 or not math.isfinite(duration) or duration < 0):
        notes.append(f"duration_ms {duration!r} is not a non-negative number; the duration is left unknown")
        duration = None
    problems: tuple[Problem, ...] = ()
    error = record.get("error")
    if isinstance(error, dict):
        message = text("error.message", error.get("message"))
        cut_message = False
        if message is not None:
            message, cut_message = cut_text(message, DEFAULT_MAX_TEXT_BYTES)
        trace, cut_trace = cut_text(text("error.text", error.get("text", error.get("trace"))) or "", DEFAULT_MAX_TEXT_BYTES)
        kind = "error" if status == "error" else "failure"
        problems = (Problem(kind, text("error.type", error.get("type")), message, trace, cut_message or cut_trace),)
    elif error is not None:
        notes.append(f"error is {type(error).__name__}, not an object")
    line = record.get("line")
    if line is not None and (isinstance(line, bool) or not isinstance(line, int)):
        notes.append(f"line {line!r} is not a line number")
        line = None
    properties = record.get("properties")
    pairs: tuple[tuple[str, str], ...] = ()
    if isinstance(properties, dict):
        pairs = tuple((key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
                      for key, value in properties.items())
    elif properties is not None:
        notes.append(f"properties is {type(properties).__name__}, not an object")
    return CaseResult(
        start=start,
        end=end,
        suite=suite,
        suite_path=(suite,) if suite is not None else (),
        classname=classname,
        name=name,
        test_id=stable_id(classname, name, suite),
        status=status,
        duration_ms=float(duration) if duration is not None else None,
        problems=problems,
        skip_message=text("skip_message", record.get("skip_message")),
        properties=pairs,
        file=text("file", record.get("file")),
        line=line,
        notes=tuple(notes),
    )
