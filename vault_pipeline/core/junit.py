"""Reading a pushed test run: JUnit XML (or a JSON array of results) into one record per test case.

QA teams and CI jobs push the report their test runner wrote (pytest ``--junitxml`` in both the
``xunit1`` and ``xunit2`` families, Maven Surefire, Gradle, jest-junit, gotestsum, PHPUnit's nested
suites): a ``testsuites`` root or a bare ``testsuite``, suites nested at any depth, and ``testcase``
elements with their ``failure``/``error``/``skipped`` outcome, output and properties. The body is
stored byte-exact, and every test case becomes a vault record whose bytes are an exact range of it:
``body[case.start:case.end]`` is that ``<testcase>...</testcase>`` element as it was sent (found
from expat's own byte positions, never re-serialised), and ``parse_testcase`` reads such a range
back into the same fields. A test's stable id is ``classname::name`` (``suite::name`` when the
runner wrote no classname, the bare name when there is neither). Durations are the ``time``
attribute in seconds, turned into milliseconds exactly (decimal arithmetic); ``1,234.5`` (an
English-locale thousands separator, as old Surefire wrote) is read as 1234.5 s, but a comma that
could be a decimal comma (``0,5``, ``1,234``) is never guessed at: the duration is left unknown and
a note says why. Nothing about a run's content is fatal: totals the suites declare are compared with
what their cases add up to, and a disagreement is reported, not refused. What is refused, with a
``JUnitError`` that names the problem, is a body that is not safe or not JUnit: any DOCTYPE (so no
entity declaration can exist: billion laughs, quadratic blowup and external SYSTEM/PUBLIC entities
are refused before anything is expanded or fetched), an XInclude namespace, malformed XML (with
line and column), a root other than ``testsuites``/``testsuite``, a body over ``max_bytes``,
elements nested deeper than ``max_depth``, and any encoding but UTF-8 (declared as UTF-8 or US-ASCII,
or undeclared; a UTF-8 byte-order mark is allowed because Windows tools write one): UTF-16/32 and
legacy code pages are refused rather than transcoded, because each record must be a byte range of
the stored body and the vault keeps text as UTF-8. This module is pure: bytes in, records out.
"""

from __future__ import annotations

import math
import pyexpat
import re
from decimal import Decimal
from pyexpat import errors as _expat_errors
from typing import Any

from vault_pipeline.core.test_runs import (  # noqa: F401 - re-exported: the pushed run's records
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_TEXT_BYTES,
    STATUSES,
    BodyTooLargeError,
    CaseResult,
    DeclaredTotals,
    JUnitError,
    MalformedBodyError,
    NotTestResultsError,
    Problem,
    RunResult,
    SuiteResult,
    TooDeepError,
    Totals,
    UnsafeXMLError,
    UnsupportedEncodingError,
    _mismatches,
    cut_text,
    parse_result_json,
    stable_id,
)

XINCLUDE_NAMESPACE = "http://www.w3.org/2001/XInclude"

_ACCEPTED_ENCODINGS = ("utf-8", "us-ascii", "ascii")



# -- JUnit XML ---------------------------------------------------------------------------------


def parse_junit(
    body: bytes,
    *,
    max_bytes: int | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
) -> RunResult:
    """Every test case of a JUnit XML report, with its exact byte range in ``body``; see the module doc."""
    _refuse_before_parsing(body, max_bytes)
    reader = _Reader(body, max_depth=max_depth, max_text_bytes=max_text_bytes, fragment=False)
    reader.parse()
    return reader.result()


def parse_testcase(
    element: bytes,
    *,
    suite: str | None = None,
    suite_path: tuple[str, ...] = (),
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
) -> CaseResult:
    """Read one stored test-case record (``body[start:end]`` of ``parse_junit``) back into its fields.

    The element does not say which suite held it, so the caller passes what it knows (the
    catalog keeps it); with the same suite the result equals the original case, span aside
    (``start`` is 0 and ``end`` the element's length).
    """
    _refuse_before_parsing(element, None)
    reader = _Reader(element, max_depth=DEFAULT_MAX_DEPTH, max_text_bytes=max_text_bytes, fragment=True)
    reader.suite_names = list(suite_path) if suite_path else ([suite] if suite is not None else [])
    reader.parse()
    if len(reader.cases) != 1:
        raise NotTestResultsError("expected exactly one <testcase> element")
    return reader.cases[0]


def _refuse_before_parsing(body: bytes, max_bytes: int | None) -> None:
    if max_bytes is not None and len(body) > max_bytes:
        raise BodyTooLargeError(f"the body is {len(body)} bytes, over the limit of {max_bytes} bytes")
    if not body.strip():
        raise MalformedBodyError("the body is empty")
    # Expat would honour these byte-order marks / NUL-padded starts and decode UTF-16/32 itself,
    # and the records' byte ranges would then be UTF-16 text: refused before it gets the chance.
    head = body[:4]
    if head.startswith((b"\xfe\xff", b"\xff\xfe")) or b"\x00" in head:
        raise UnsupportedEncodingError("the body is UTF-16 or UTF-32; send JUnit XML encoded as UTF-8")


# A start tag, matched from its "<": attribute values are the only place a ">" or "/" may hide,
# and they are quoted, so skipping quoted runs finds the tag's real end.
_START_TAG = re.compile(rb"""<[^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>""")

# Frame kinds on the element stack (what the element means where it stands).
_OTHER, _SUITE, _CASE, _PROBLEM, _RERUN, _SKIPPED, _OUTPUT, _PROPERTY = range(8)
_PROBLEMS = {"failure": "failed", "error": "error"}
_RERUNS = frozenset({"flakyFailure", "flakyError", "rerunFailure", "rerunError"})


class _Text:
    """Character data kept up to a byte budget (chunks arrive as str; UTF-8 is >= 1 byte a char)."""

    __slots__ = ("chars", "chunks", "limit", "over")

    def __init__(self, limit: int) -> None:
        self.chunks: list[str] = []
        self.chars = 0
        self.limit = limit
        self.over = False

    def add(self, data: str) -> None:
        if self.chars < self.limit:
            self.chunks.append(data)
            self.chars += len(data)
        else:
            self.over = True

    def value(self) -> tuple[str, bool]:
        return cut_text("".join(self.chunks), self.limit, self.over)


class _Size:
    """Character data counted (UTF-8 bytes), not kept: a case's captured output can be megabytes."""

    __slots__ = ("bytes",)

    def __init__(self) -> None:
        self.bytes = 0

    def add(self, data: str) -> None:
        self.bytes += len(data) if data.isascii() else len(data.encode("utf-8", "surrogatepass"))



class _SuiteBuilder:
    __slots__ = ("attrs", "counts", "err", "out", "path", "properties")

    def __init__(self, attrs: dict[str, str], path: tuple[str, ...]) -> None:
        self.attrs = attrs
        self.path = path
        self.counts = {"tests": 0, "failed": 0, "error": 0, "skipped": 0}
        self.properties: list[tuple[str, str]] = []
        self.out = _Size()
        self.err = _Size()


class _CaseBuilder:
    __slots__ = ("attrs", "end", "err", "out", "problems", "properties", "reruns", "skip_message", "skipped", "start")

    def __init__(self, start: int, attrs: dict[str, str]) -> None:
        self.start = start
        self.end = -1
        self.attrs = attrs
        self.problems: list[Problem] = []
        self.reruns: list[Problem] = []
        self.skipped = False
        self.skip_message: str | None = None
        self.properties: list[tuple[str, str]] = []
        self.out = _Size()
        self.err = _Size()


class _Reader:
    """One pass of expat over the body; handlers keep a stack of what each open element means."""

    def __init__(self, body: bytes, *, max_depth: int, max_text_bytes: int, fragment: bool) -> None:
        self.body = body
        self.max_depth = max_depth
        self.max_text = max_text_bytes
        self.fragment = fragment  # a lone <testcase> (parse_testcase) instead of a report
        self.stack: list[list[Any]] = []  # [name, kind, sink, payload] per open element
        self.suite_names: list[str] = []
        self.suites: list[_SuiteBuilder] = []
        self.open_suites: list[_SuiteBuilder] = []
        self.cases: list[CaseResult] = []
        self.case: _CaseBuilder | None = None
        self.root_name: str | None = None
        self.root_attrs: dict[str, str] = {}
        self.notes: list[str] = []
        parser = pyexpat.ParserCreate()
        # No DTD means no entity can be declared; refusing the DOCTYPE itself (and every
        # declaration handler, should one ever be reached) keeps expansion and fetching impossible.
        parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.XmlDeclHandler = self._declaration
        parser.StartDoctypeDeclHandler = self._doctype
        parser.EntityDeclHandler = self._entity
        parser.UnparsedEntityDeclHandler = self._unparsed_entity
        parser.ExternalEntityRefHandler = self._external_entity
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        parser.buffer_text = True  # one call per text run instead of one per line/entity
        parser.buffer_size = 1 << 16
        self.parser = parser

    # -- driving -------------------------------------------------------------------------------

    def parse(self) -> None:
        try:
            self.parser.Parse(self.body, True)
        except pyexpat.ExpatError as exc:
            raise self._malformed(exc) from None
        finally:
            # Handlers are bound methods: drop them so the parser and reader do not keep each other.
            self.parser = None  # type: ignore[assignment]

    def _malformed(self, exc: pyexpat.ExpatError) -> JUnitError:
        message = _expat_errors.messages[exc.code] if exc.code else str(exc)
        if exc.code == _expat_errors.codes[_expat_errors.XML_ERROR_INVALID_TOKEN]:
            try:
                self.body.decode("utf-8")
            except UnicodeDecodeError as bad:
                return UnsupportedEncodingError(
                    f"the body is not valid UTF-8 (byte {bad.start}: {bad.reason}); send JUnit XML encoded as UTF-8"
                )
        if exc.code == _expat_errors.codes[_expat_errors.XML_ERROR_NO_ELEMENTS]:
            return MalformedBodyError(f"the XML ends before its root element is complete (line {exc.lineno}): truncated?")
        return MalformedBodyError(f"malformed XML at line {exc.lineno}, column {exc.offset + 1}: {message}")

    def result(self) -> RunResult:
        suites = tuple(_suite_result(suite, self.notes) for suite in self.suites)
        counts = {"tests": len(self.cases), "failed": 0, "error": 0, "skipped": 0}
        for case in self.cases:
            if case.status != "passed":
                counts[case.status] += 1
        totals = Totals(counts["tests"], counts["failed"], counts["error"], counts["skipped"])
        if self.root_name == "testsuite":
            declared = suites[0].declared
        else:
            declared = _declared(self.root_attrs)
            if declared == DeclaredTotals():
                declared = _sum_declared([s.declared for s in suites if len(s.path) == 1])
        return RunResult("junit", self.root_attrs.get("name"), tuple(self.cases), suites, totals, declared, tuple(self.notes))

    # -- refusals ------------------------------------------------------------------------------

    def _declaration(self, version: str, encoding: str | None, standalone: int) -> None:
        if encoding is not None and encoding.lower() not in _ACCEPTED_ENCODINGS:
            raise UnsupportedEncodingError(
                f"the XML declaration names encoding {encoding!r}; only UTF-8 is accepted: re-encode the report as UTF-8"
            )

    def _doctype(self, name: str, system_id: str | None, public_id: str | None, has_internal_subset: int) -> None:
        what = f"<!DOCTYPE {name}>"
        if system_id or public_id:
            what += f" with an external {'PUBLIC' if public_id else 'SYSTEM'} identifier {(public_id or system_id)!r}"
        elif has_internal_subset:
            what += " with an internal subset (where entities are declared)"
        raise UnsafeXMLError(
            f"the body declares {what}; JUnit XML has no DTD, and DTDs are refused because they can declare "
            f"entities (exponential or quadratic expansion, external files or URLs)"
        )

    def _entity(self, name: str, is_parameter: int, *rest: Any) -> None:
        raise UnsafeXMLError(f"the body declares the entity {name!r}; entity declarations are refused")

    def _unparsed_entity(self, name: str, *rest: Any) -> None:
        raise UnsafeXMLError(f"the body declares the unparsed entity {name!r}; entity declarations are refused")

    def _external_entity(self, context: str, base: str | None, system_id: str | None, public_id: str | None) -> int:
        raise UnsafeXMLError(f"the body references the external entity {system_id or public_id!r}; it is never fetched")

    # -- elements ------------------------------------------------------------------------------

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        stack = self.stack
        if len(stack) >= self.max_depth:
            raise TooDeepError(f"elements nest more than {self.max_depth} deep (line {self.parser.CurrentLineNumber})")
        if XINCLUDE_NAMESPACE in attrs.values() or name.endswith(":include"):
            raise UnsafeXMLError(
                f"the body uses XInclude (on <{name}>, line {self.parser.CurrentLineNumber}); "
                f"inclusions are refused, never resolved"
            )
        parent = stack[-1] if stack else None
        if parent is None:
            self._root(name, attrs)
        kind, sink, payload = _OTHER, None, None
        if name == "testcase":
            self._open_case(attrs)
            kind = _CASE
        elif self.case is not None:
            kind, sink, payload = self._inside_case(name, attrs, parent)
        elif name == "testsuite":
            kind = _SUITE
            payload = self._open_suite(attrs)
        elif parent is not None and parent[1] == _SUITE:
            if name == "system-out":
                kind, sink = _OUTPUT, parent[3].out
            elif name == "system-err":
                kind, sink = _OUTPUT, parent[3].err
        if name == "property" and parent is not None and parent[0] == "properties" and kind == _OTHER:
            owner = self.case if self.case is not None else (self.open_suites[-1] if self.open_suites else None)
            if owner is not None:
                kind, sink, payload = _PROPERTY, _Text(self.max_text), (owner, attrs)
        stack.append([name, kind, sink, payload])

    def _end(self, name: str) -> None:
        _, kind, sink, payload = self.stack.pop()
        if kind == _CASE:
            self._close_case()
        elif kind == _SUITE:
            self.open_suites.pop()
            self.suite_names.pop()
        elif kind == _PROBLEM or kind == _RERUN:
            target, tag, attrs = payload[:3]
            if kind == _RERUN and payload[3] is not None:
                sink = payload[3]  # its <stackTrace>
            text, cut = sink.value()
            message, cut_message = cut_text(attrs["message"], self.max_text) if "message" in attrs else (None, False)
            target.append(Problem(tag, attrs.get("type"), message, text, cut or cut_message))
        elif kind == _SKIPPED:
            text, _ = sink.value()
            message = payload.get("message")
            self.case.skip_message = message if message is not None else (text.strip() or None)  # type: ignore[union-attr]
        elif kind == _PROPERTY:
            owner, attrs = payload
            value = attrs["value"] if "value" in attrs else sink.value()[0]
            owner.properties.append((attrs.get("name", ""), value))

    def _text(self, data: str) -> None:
        if self.stack:
            sink = self.stack[-1][2]
            if sink is not None:
                sink.add(data)

    def _root(self, name: str, attrs: dict[str, str]) -> None:
        if self.fragment:
            if name != "testcase":
                raise NotTestResultsError(f"expected a <testcase> element, found <{name}>")
            return
        if name not in ("testsuites", "testsuite"):
            hint = " (an HTML error page?)" if name.lower() == "html" else ""
            raise NotTestResultsError(f"the root element is <{name}>{hint}; a JUnit report's root is <testsuites> or <testsuite>")
        self.root_name = name
        self.root_attrs = attrs

    def _open_suite(self, attrs: dict[str, str]) -> _SuiteBuilder:
        self.suite_names.append(attrs.get("name", ""))
        suite = _SuiteBuilder(attrs, tuple(self.suite_names))
        self.suites.append(suite)
        self.open_suites.append(suite)
        return suite

    def _inside_case(self, name: str, attrs: dict[str, str], parent: list[Any]) -> tuple[int, Any, Any]:
        case = self.case
        assert case is not None
        if name == "testsuite":
            raise NotTestResultsError(f"a <testsuite> inside a <testcase> (line {self.parser.CurrentLineNumber})")
        if parent[1] == _CASE:  # direct children of the test case
            if name in _PROBLEMS:
                return _PROBLEM, _Text(self.max_text), (case.problems, name, attrs)
            if name in _RERUNS:
                return _RERUN, _Text(self.max_text), [case.reruns, name, attrs, None]
            if name == "skipped":
                case.skipped = True
                return _SKIPPED, _Text(self.max_text), attrs
            if name == "system-out":
                return _OUTPUT, case.out, None
            if name == "system-err":
                return _OUTPUT, case.err, None
            return _OTHER, None, None
        # Deeper: a rerun's <stackTrace> is its text (not the indentation around it), and a
        # rerun's own captured output is not the case's.
        if name in ("system-out", "system-err"):
            return _OTHER, None, None
        if name == "stackTrace" and parent[1] == _RERUN:
            parent[3][3] = _Text(self.max_text)
            return _OTHER, parent[3][3], None
        return _OTHER, parent[2] if parent[1] in (_PROBLEM, _RERUN, _SKIPPED) else None, None

    def _open_case(self, attrs: dict[str, str]) -> None:
        if self.case is not None:
            raise NotTestResultsError(f"a <testcase> inside a <testcase> (line {self.parser.CurrentLineNumber})")
        body = self.body
        start = self.parser.CurrentByteIndex
        tag = _START_TAG.match(body, start)
        if tag is None or not body.startswith(b"<testcase", start):
            raise JUnitError(f"internal: could not find the <testcase> tag at byte {start}")
        self.case = _CaseBuilder(start, attrs)
        if body[tag.end() - 2] == 0x2F:  # "/>": an empty-element tag is the whole element
            self.case.end = tag.end()

    def _close_case(self) -> None:
        case = self.case
        assert case is not None
        if case.end < 0:
            # Expat reports the end tag's "<"; an end tag holds no quotes, so its ">" is the next one.
            at = self.parser.CurrentByteIndex
            close = self.body.find(b">", at)
            if not self.body.startswith(b"</testcase", at) or close < 0:
                raise JUnitError(f"internal: could not find </testcase> at byte {at}")
            case.end = close + 1
        self.case = None
        result = _case_result(case, tuple(self.suite_names))
        self.cases.append(result)
        for suite in self.open_suites:
            suite.counts["tests"] += 1
            if result.status != "passed":
                suite.counts[result.status] += 1


def _case_result(case: _CaseBuilder, path: tuple[str, ...]) -> CaseResult:
    attrs = case.attrs
    notes: list[str] = []
    name = attrs.get("name")
    if name is None:
        notes.append("the testcase has no name attribute")
        name = ""
    classname = attrs.get("classname") or None
    suite = path[-1] if path else None
    if case.problems:
        status = _PROBLEMS[case.problems[0].kind]
    elif case.skipped:
        status = "skipped"
    else:
        status = "passed"
    line = None
    if "line" in attrs:
        if _is_count(attrs["line"]):
            line = int(attrs["line"])
        else:
            notes.append(f"line {attrs['line']!r} is not a line number")
    return CaseResult(
        start=case.start,
        end=case.end,
        suite=suite,
        suite_path=path,
        classname=classname,
        name=name,
        test_id=stable_id(classname, name, suite),
        status=status,
        duration_ms=_duration_ms(attrs.get("time"), notes),
        problems=tuple(case.problems),
        reruns=tuple(case.reruns),
        skip_message=case.skip_message,
        properties=tuple(case.properties),
        file=attrs.get("file"),
        line=line,
        system_out_bytes=case.out.bytes,
        system_err_bytes=case.err.bytes,
        notes=tuple(notes),
    )



def _suite_result(suite: _SuiteBuilder, notes: list[str]) -> SuiteResult:
    attrs = suite.attrs
    counts = suite.counts
    where: list[str] = []
    duration = _duration_ms(attrs.get("time"), where)
    notes.extend(f"suite {attrs.get('name')!r}: {note}" for note in where)
    return SuiteResult(
        name=attrs.get("name"),
        path=suite.path,
        counted=Totals(counts["tests"], counts["failed"], counts["error"], counts["skipped"]),
        declared=_declared(attrs),
        duration_ms=duration,
        timestamp=attrs.get("timestamp"),
        hostname=attrs.get("hostname"),
        properties=tuple(suite.properties),
        system_out_bytes=suite.out.bytes,
        system_err_bytes=suite.err.bytes,
    )


def _declared(attrs: dict[str, str]) -> DeclaredTotals:
    def number(name: str) -> int | None:
        value = attrs.get(name, "")
        return int(value) if _is_count(value) else None

    return DeclaredTotals(number("tests"), number("failures"), number("errors"), number("skipped"))


def _is_count(value: str) -> bool:
    value = value.strip()
    return value.isascii() and value.isdigit()  # str.isdigit alone admits "²", which int() refuses


def _sum_declared(parts: list[DeclaredTotals]) -> DeclaredTotals:
    if not parts:
        return DeclaredTotals()

    def total(name: str) -> int | None:
        values = [getattr(part, name) for part in parts]
        return None if None in values else sum(values)  # type: ignore[arg-type]

    return DeclaredTotals(total("tests"), total("failures"), total("errors"), total("skipped"))


# Seconds: plain decimals (an exponent allowed), or English-locale thousands groups followed by a
# decimal point. "1,234" alone could be a German 1.234 s, so it is not read.
_PLAIN_SECONDS = re.compile(r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?")
_GROUPED_SECONDS = re.compile(r"\d{1,3}(?:,\d{3})+\.\d+")


def _duration_ms(value: str | None, notes: list[str]) -> float | None:
    if value is None:
        return None
    text = value.strip()
    if _GROUPED_SECONDS.fullmatch(text):
        text = text.replace(",", "")
    elif not _PLAIN_SECONDS.fullmatch(text):
        notes.append(f"time {value!r} is not a number of seconds; the duration is left unknown")
        return None
    try:
        milliseconds = float(Decimal(text) * 1000)
    except ArithmeticError:  # decimal.Overflow / InvalidOperation on an absurd exponent
        milliseconds = math.inf
    if not math.isfinite(milliseconds):
        notes.append(f"time {value!r} is out of range; the duration is left unknown")
        return None
    return milliseconds


__all__ = [
    "STATUSES",
    "BodyTooLargeError",
    "CaseResult",
    "DeclaredTotals",
    "JUnitError",
    "MalformedBodyError",
    "NotTestResultsError",
    "Problem",
    "RunResult",
    "SuiteResult",
    "TooDeepError",
    "Totals",
    "UnsafeXMLError",
    "UnsupportedEncodingError",
    "parse_junit",
    "parse_result_json",
    "parse_testcase",
    "stable_id",
]
