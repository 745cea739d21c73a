"""Finding record boundaries inside a provider's response body without re-serialising it.

A provider page is stored exactly as received; each record is then addressed as a byte range
(offset, length) of that stored object. The body is split with msgspec's ``Raw`` type, which
hands back each element's exact bytes without decoding it, and each slice is located in the
body in order (between two records there is only whitespace and a comma, so the first match
from the previous end is the record itself). NDJSON is split on newlines. Decoding keeps
integers of any size exact and rejects numbers it cannot represent instead of rounding them.
A body must be valid UTF-8 (RFC 8259): ``Raw`` slices are not decoded, so the body is checked
once here rather than letting a bad byte surface later, when a stored record is decoded.

Two hostile shapes are refused rather than half-read: nesting deeper than ``max_depth``
(measured before any decoder recurses, so the outcome never depends on how deep the caller's
stack already is; a decoder's own ``RecursionError`` is reported the same way), and a top-level
member that appears twice (``{"records": [...], "records": [...]}``), which a decoder would
silently collapse to its last occurrence, losing the first array's records.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])
_ANY = msgspec.json.Decoder()


class FramingError(ValueError):
    """The body is not the JSON shape the provider is configured to return."""


class NestingTooDeepError(FramingError):
    """Arrays/objects nested deeper than the configured limit (or than the decoder can follow)."""


class AmbiguousBodyError(FramingError):
    """A top-level member appears more than once, so which one holds the records is ambiguous."""


class RecordDecodeError(ValueError):
    """One record's bytes are not a JSON value the vault can read."""


@dataclass(frozen=True, slots=True)
class FramedRecord:
    offset: int  # byte offset of the record inside the stored body
    length: int  # byte length of the record


@dataclass(slots=True)
class FramedPage:
    # Record spans as two parallel columns: landing walks them per record, so no object per span.
    offsets: list[int]
    lengths: list[int]
    # Top-level members of the body other than the record array (cursors, totals, ...).
    envelope: dict[str, Any] = field(default_factory=dict)
    # A pushed body names its records itself (its run and each case's place in it) and dates
    # them by the run: landing then takes these instead of reading fields from the bytes.
    natural_ids: list[str] | None = None
    event_times: list[str | None] | None = None

    @classmethod
    def of(cls, records: list[FramedRecord], envelope: dict[str, Any] | None = None) -> FramedPage:
        return cls([r.offset for r in records], [r.length for r in records], envelope or {})

    @property
    def records(self) -> list[FramedRecord]:
        return list(map(FramedRecord, self.offsets, self.lengths))

    def __len__(self) -> int:
        return len(self.offsets)

    def slices(self, body: bytes) -> list[bytes]:
        return [body[offset : offset + length] for offset, length in zip(self.offsets, self.lengths, strict=True)]


def frame_records(body: bytes, records_at: str, *, max_depth: int | None = None) -> FramedPage:
    """Split ``body`` into records.

    ``records_at`` is a top-level JSON key holding the record array, ``"$"`` for a body that
    is itself an array, or ``"ndjson"`` for one JSON value per line. With ``max_depth``, a body
    nesting arrays/objects deeper than that is refused before it is decoded.
    """
    if max_depth is not None:
        depth = nesting_depth(body)
        if depth > max_depth:
            raise NestingTooDeepError(
                f"the body nests arrays/objects {depth} levels deep, more than the limit of {max_depth} "
                f"(max_nesting_depth)"
            )
    try:
        return _frame(body, records_at)
    except RecursionError:
        raise NestingTooDeepError(
            "the body nests arrays/objects deeper than the JSON decoder can follow (RecursionError)"
        ) from None


def _frame(body: bytes, records_at: str) -> FramedPage:
    if body.startswith(b"\xef\xbb\xbf"):
        raise FramingError("body starts with a UTF-8 byte-order mark; JSON from providers must not")
    if records_at == "ndjson":
        return FramedPage.of(_frame_ndjson(body))
    if records_at == "$":
        page = _locate(body, _decode(_ELEMENTS, body, "a JSON array of records"), 0)
        _require_utf8(body)
        return page
    members = _decode(_MEMBERS, body, f"a JSON object holding '{records_at}'")
    if records_at not in members:
        raise FramingError(f"the body has no '{records_at}' member; members: {sorted(members)[:10]}")
    _refuse_repeated_members(body, members)
    _require_utf8(body)  # Raw members are not decoded, so their strings are not checked yet
    envelope = {}
    for name, raw in members.items():
        if name != records_at:
            try:
                envelope[name] = _ANY.decode(raw)
            except msgspec.DecodeError as exc:
                raise FramingError(f"envelope member '{name}' cannot be read: {exc}") from exc
    array = members[records_at]
    elements = _decode(_ELEMENTS, array, f"'{records_at}' to be an array of records")
    page = _locate(body, elements, _offset_of(body, array))
    page.envelope = envelope
    return page


def decode_record(data: bytes | memoryview) -> Any:
    """The parsed value of one record's bytes (big integers stay exact)."""
    try:
        return _ANY.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise RecordDecodeError(str(exc)) from exc
    except RecursionError:
        raise RecordDecodeError("the record nests arrays/objects deeper than the decoder can follow") from None


# -- nesting depth -----------------------------------------------------------------------------

# Only quotes and brackets matter for nesting; everything else is dropped in one C pass
# (bytes.translate) and the depth is a running sum over what is left, outside strings.
_STRUCTURE = b'"[]{}'
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in _STRUCTURE)
_STEP = np.zeros(256, np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1


def nesting_depth(body: bytes) -> int:
    """How deep arrays/objects nest in ``body`` (``[]`` is 1, ``{"a": [1]}`` is 2), strings ignored.

    Linear and vectorised (no recursion, so any depth is measured safely, ~1 GB/s); meant for
    bodies a JSON decoder accepts, any other bytes give some number without failing.
    """
    data: bytes | bytearray = body
    if body.find(b"\\") >= 0:  # an escaped quote would look like a string's end: blank escapes out
        data = _blank_escaped(body)
    marks = np.frombuffer(data.translate(None, _NOT_STRUCTURE), np.uint8)
    if not marks.size:
        return 0
    outside = np.cumsum(marks == ord('"'), dtype=np.int32) & 1  # 1 inside a string (odd quotes before)
    np.subtract(1, outside, out=outside)
    steps = _STEP.take(marks).astype(np.int32)
    steps *= outside
    return max(int(np.cumsum(steps).max()), 0)


def _blank_escaped(body: bytes) -> bytearray:
    """``body`` with every escaped character replaced by a space (a backslash escapes the next
    byte unless it is itself escaped: in a run of backslashes the 1st, 3rd, ... escape)."""
    blanked = bytearray(body)
    data = np.frombuffer(blanked, np.uint8)
    slashes = np.flatnonzero(data == ord("\\"))
    index = np.arange(slashes.size)
    run_start = np.ones(slashes.size, bool)
    run_start[1:] = np.diff(slashes) != 1
    first_of_run = np.maximum.accumulate(np.where(run_start, index, 0))
    escaped = slashes[(index - first_of_run) % 2 == 0] + 1
    data[escaped[escaped < data.size]] = ord(" ")
    return blanked


# -- repeated top-level members ----------------------------------------------------------------

_KEY = rb'"(?:[^"\\]|\\.)*"'
_BEFORE_FIRST = re.compile(rb"\s*\{\s*" + _KEY + rb"\s*:\s*")
_BETWEEN = re.compile(rb"\s*,\s*" + _KEY + rb"\s*:\s*")
_AFTER_LAST = re.compile(rb"\s*\}\s*")
_DROPPED_KEY = re.compile(rb"\s*[{,]\s*(" + _KEY + rb")")


def _refuse_repeated_members(body: bytes, members: dict[str, msgspec.Raw]) -> None:
    """Refuse a body whose top-level object names a member twice.

    The decoder keeps only the last occurrence, so the members it returns, in body order, must
    tile the object exactly: between two of them only ``, "key":``. Anything more is an
    occurrence the decoder dropped. The spans come from the zero-copy views, nothing is re-read.
    """
    base = pa.py_buffer(body).address
    spans = sorted((pa.py_buffer(raw).address - base, len(raw)) for raw in members.values())
    cursor = 0
    for number, (offset, length) in enumerate(spans):
        if not (0 <= offset <= len(body) - length):
            return  # not views into the body (a copying decoder): nothing to compare against
        expected = _BEFORE_FIRST if number == 0 else _BETWEEN
        if not expected.fullmatch(body, cursor, offset):
            raise AmbiguousBodyError(_repeated(body, cursor, offset))
        cursor = offset + length
    if not _AFTER_LAST.fullmatch(body, cursor):
        raise AmbiguousBodyError(_repeated(body, cursor, len(body)))


def _repeated(body: bytes, start: int, end: int) -> str:
    found = _DROPPED_KEY.match(body, start, end)
    name = "?"
    if found:
        try:
            name = str(json.loads(found.group(1)))
        except ValueError:
            pass
    shown = name if len(name) <= 80 else name[:80] + "..."
    return (
        f"the top-level member {shown!r} appears more than once; refusing the page as ambiguous "
        f"(a JSON decoder keeps only the last one and silently drops the others, and their records with them)"
    )


def _require_utf8(body: bytes) -> None:
    if body.isascii() or _arrow_says_utf8(body):  # most provider bodies: checked in C, no decode
        return
    try:
        body.decode("utf-8")  # Python's decoder has the last word, and names the byte
    except UnicodeDecodeError as exc:
        raise FramingError(f"the body is not valid UTF-8 (byte {exc.start}: {exc.reason}); JSON must be UTF-8") from None


def _arrow_says_utf8(body: bytes) -> bool:
    """Whether Arrow's validator finds ``body`` valid UTF-8, read in place: decoding a page with
    non-ASCII text made a 4-16 MB str only to drop it, in fresh memory each page (a 4 MB
    simulator page framed 13.4 -> 5.7 ms). It rejects what Python's decoder does (surrogates, overlong
    forms, beyond U+10FFFF, cut sequences; a test holds the two equal)."""
    offsets = pa.py_buffer(np.array([0, len(body)], dtype=np.int64))
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(body)]).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _decode(decoder: msgspec.json.Decoder, body: bytes, expected: str) -> Any:
    try:
        return decoder.decode(body)
    except UnicodeDecodeError:
        _require_utf8(bytes(body))
        raise
    except msgspec.ValidationError as exc:
        raise FramingError(f"expected {expected}: {exc}") from exc
    except msgspec.DecodeError as exc:
        stripped = body.lstrip()[:1]
        if not body.strip():
            raise FramingError("the body is empty") from exc
        if stripped == b"<":
            raise FramingError("the body is HTML, not JSON (an error page?)") from exc
        raise FramingError(f"invalid JSON: {exc} (truncated or malformed body)") from exc


def _offset_of(body: bytes, view: msgspec.Raw) -> int:
    """Where a zero-copy ``Raw`` view starts inside ``body``.

    A text search could match an identical byte sequence earlier in the body (a key or an
    envelope member), so the offset is taken from the view's address instead, and checked.
    """
    offset = int(np.frombuffer(view, np.uint8).ctypes.data) - int(np.frombuffer(body, np.uint8).ctypes.data)
    length = len(memoryview(view))
    if length and not (0 <= offset <= len(body) - length and body[offset : offset + length] == bytes(view)):
        raise FramingError("internal: could not locate the record array inside the body")
    return offset


def _locate(body: bytes, elements: list[msgspec.Raw], cursor: int) -> FramedPage:
    """Each element's span in ``body``, from the address of its zero-copy ``Raw`` view.

    Spans must come out in order, inside the body and not overlapping, and the first and last
    are compared byte for byte; anything else (a decoder that copied) falls back to searching
    for each element's bytes from the previous end.
    """
    if not elements:
        return FramedPage([], [])
    base = pa.py_buffer(body).address
    starts = [pa.py_buffer(raw).address - base for raw in elements]
    lengths = [len(raw) for raw in elements]
    ends = np.add(starts, lengths)
    in_order = starts[0] >= cursor and ends[-1] <= len(body) and bool((np.asarray(starts[1:]) >= ends[:-1]).all())
    if in_order and body[starts[0] : ends[0]] == bytes(elements[0]) and body[starts[-1] : ends[-1]] == bytes(elements[-1]):
        return FramedPage(starts, lengths)
    return FramedPage.of(_search(body, elements, cursor))


def _search(body: bytes, elements: list[msgspec.Raw], cursor: int) -> list[FramedRecord]:
    records = []
    find = body.find
    for raw in elements:
        piece = bytes(raw)
        offset = find(piece, cursor)
        records.append(FramedRecord(offset, len(piece)))
        cursor = offset + len(piece)
    return records


def _frame_ndjson(body: bytes) -> list[FramedRecord]:
    records = []
    offset = 0
    for number, line in enumerate(body.split(b"\n"), start=1):
        content = line.rstrip(b"\r")
        stripped = content.strip(b" \t")
        if stripped:
            start = offset + (len(content) - len(content.lstrip(b" \t")))
            try:
                _ANY.decode(stripped)
            except msgspec.DecodeError as exc:
                raise FramingError(f"NDJSON line {number} is not valid JSON: {exc}") from exc
            except UnicodeDecodeError as exc:
                raise FramingError(f"NDJSON line {number} is not valid UTF-8: {exc.reason}") from None
            records.append(FramedRecord(start, len(stripped)))
        offset += len(line) + 1
    return records
