"""Record framing: every span is exactly the provider's bytes, whatever the provider sent."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault_pipeline.core.framing import (
    AmbiguousBodyError,
    FramedRecord,
    FramingError,
    NestingTooDeepError,
    RecordDecodeError,
    _arrow_says_utf8,
    _require_utf8,
    decode_record,
    frame_records,
    nesting_depth,
)

BIG = 2**64 + 1  # beyond uint64: orjson would turn this into a float


def _spans(body: bytes, records_at: str) -> list[bytes]:
    return frame_records(body, records_at).slices(body)


# -- the three shapes ------------------------------------------------------------------------


def test_records_under_a_key_are_sliced_exactly_and_envelope_is_kept():
    body = b'{"next_cursor": "abc", "records": [{"id": 1}, {"id": 2, "x": [1, 2]}], "total": 2}'
    page = frame_records(body, "records")
    assert page.slices(body) == [b'{"id": 1}', b'{"id": 2, "x": [1, 2]}']
    assert page.records[0] == FramedRecord(body.index(b'{"id": 1}'), 9)
    assert page.envelope == {"next_cursor": "abc", "total": 2}


def test_top_level_array():
    body = b' \r\n[ {"a": 1} ,\t"text", 3, null, [1, {"b": null}] ]\n'
    assert _spans(body, "$") == [b'{"a": 1}', b'"text"', b"3", b"null", b'[1, {"b": null}]']
    assert frame_records(body, "$").envelope == {}


def test_ndjson_lines_with_crlf_blank_lines_and_indentation():
    body = b'{"a": 1}\r\n\r\n  \t{"b": "\xc3\xa9"}  \n\n[1,2]\r\n'
    page = frame_records(body, "ndjson")
    assert page.slices(body) == [b'{"a": 1}', b'{"b": "\xc3\xa9"}', b"[1,2]"]
    assert page.records[1].offset == body.index(b'{"b"')


def test_ndjson_without_trailing_newline():
    body = b'{"a": 1}\n{"a": 2}'
    assert _spans(body, "ndjson") == [b'{"a": 1}', b'{"a": 2}']


@pytest.mark.parametrize(
    ("body", "records_at"),
    [(b'{"records": []}', "records"), (b"[]", "$"), (b" [ \n ] ", "$"), (b"", "ndjson"), (b"\n\r\n  \n", "ndjson")],
)
def test_empty_pages_have_no_records(body, records_at):
    assert frame_records(body, records_at).records == []


def test_numbers_that_look_alike_are_located_in_order():
    # A naive search for b"1" would find it inside "11" or the key.
    body = b'{"records1": 1, "records": [11, 1, 111, 1]}'
    page = frame_records(body, "records")
    assert page.slices(body) == [b"11", b"1", b"111", b"1"]
    offsets = [r.offset for r in page.records]
    assert offsets == sorted(offsets) and offsets[0] > body.index(b"[")


# -- unicode, escapes, big numbers, nulls, whitespace -----------------------------------------


UNICODE_RECORDS = [
    '{"who": "🦄 ops-bot"}'.encode(),  # astral plane, raw UTF-8 (4 bytes)
    '{"who": "e\u0301mile"}'.encode(),  # combining acute accent
    b'{"who": "\\u00e9t\\u00e9"}',  # escaped BMP character
    b'{"who": "\\ud83d\\ude00 smile"}',  # escaped surrogate pair
    b'{"q": "say \\"hi\\" \\\\ / \\/ \\n\\t"}',  # escaped quotes, backslash, solidus, control characters
    '{"Ωmega 𝔘𝔫𝔦𝔠𝔬𝔡𝔢": "李小龍"}'.encode(),  # non-ASCII keys
]


@pytest.mark.parametrize("records_at", ["records", "$", "ndjson"])
def test_unicode_and_escapes_are_kept_byte_for_byte(records_at):
    if records_at == "ndjson":
        body = b"\n".join(UNICODE_RECORDS) + b"\n"
    elif records_at == "$":
        body = b"[" + b", ".join(UNICODE_RECORDS) + b"]"
    else:
        body = b'{"records": [' + b",\n ".join(UNICODE_RECORDS) + b"]}"
    assert _spans(body, records_at) == UNICODE_RECORDS


def test_escapes_decode_to_the_characters_they_stand_for():
    assert decode_record(UNICODE_RECORDS[0]) == {"who": "🦄 ops-bot"}
    assert decode_record(UNICODE_RECORDS[1]) == {"who": "e\u0301mile"}
    assert decode_record(UNICODE_RECORDS[2]) == {"who": "été"}
    assert decode_record(UNICODE_RECORDS[3]) == {"who": "😀 smile"}
    assert decode_record(UNICODE_RECORDS[4]) == {"q": 'say "hi" \\ / / \n\t'}


def test_integers_above_2_64_are_sliced_and_decoded_exactly():
    record = b'{"bytes": 18446744073709551617, "neg": -1180591620717411303427, "deep": {"n": [340282366920938463463374607431768211457]}}'
    body = b'{"records": [' + record + b"]}"
    [span] = _spans(body, "records")
    assert span == record
    value = decode_record(span)
    assert value["bytes"] == BIG and type(value["bytes"]) is int
    assert value["neg"] == -(2**70 + 3)
    assert value["deep"]["n"][0] == 2**128 + 1


def test_decode_record_accepts_memoryview():
    body = b'[{"n": 36893488147419103235}]'
    span = frame_records(body, "$").records[0]
    assert decode_record(memoryview(body)[span.offset : span.offset + span.length]) == {"n": 2**65 + 3}


def test_nested_nulls_survive():
    record = b'{"a": null, "b": {"c": null, "d": [null, {"e": null}]}}'
    [span] = _spans(b"[" + record + b"]", "$")
    assert span == record
    assert decode_record(span) == {"a": None, "b": {"c": None, "d": [None, {"e": None}]}}


def test_odd_whitespace_between_records():
    body = b'{\r\n\t"records"\t:\r\n [\r\n\t{"a": 1}\t ,\r\n   {"b": 2}    ,{"c": 3}\r\n\t]\r\n}\r\n'
    assert _spans(body, "records") == [b'{"a": 1}', b'{"b": 2}', b'{"c": 3}']


def test_numbers_that_cannot_be_represented_are_refused_not_rounded():
    with pytest.raises(RecordDecodeError):
        decode_record(b'{"x": 1e400}')


@pytest.mark.parametrize("data", [b'{"a": ', b"", b'{"a": "\xff"}', b"nope"])
def test_decode_record_raises_record_decode_error(data):
    with pytest.raises(RecordDecodeError):
        decode_record(data)


# -- the envelope must never be mistaken for a record ----------------------------------------


def test_envelope_member_equal_to_a_record_does_not_capture_the_span():
    body = b'{"prev": {"a": 1}, "records": [{"a": 1}]}'
    page = frame_records(body, "records")
    [record] = page.records
    assert record.offset == body.rindex(b'{"a": 1}') == 31
    assert page.slices(body) == [b'{"a": 1}']
    assert page.envelope == {"prev": {"a": 1}}


def test_envelope_holding_an_identical_records_array_is_not_used():
    body = b'{"meta": {"records": [{"a": 1}, 2]}, "copy": [{"a": 1}, 2], "records": [{"a": 1}, 2]}'
    page = frame_records(body, "records")
    array_start = body.rindex(b"[{")
    assert [r.offset for r in page.records] == [array_start + 1, array_start + 11]
    assert page.slices(body) == [b'{"a": 1}', b"2"]


def test_envelope_after_the_records_is_kept_and_big_ints_exact():
    body = b'{"records": [{"a": 1}], "next": {"cursor": "c2", "total": 18446744073709551617}}'
    page = frame_records(body, "records")
    assert page.envelope == {"next": {"cursor": "c2", "total": BIG}}


def test_unreadable_envelope_member_is_a_framing_error():
    with pytest.raises(FramingError, match="total"):
        frame_records(b'{"total": 1e400, "records": []}', "records")


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("records_at", ["records", "$"])
def test_html_body(records_at):
    with pytest.raises(FramingError, match="HTML"):
        frame_records(b"\n<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", records_at)


@pytest.mark.parametrize("records_at", ["records", "$"])
def test_truncated_body(records_at):
    body = b'{"records": [{"a": 1}, {"b": ' if records_at == "records" else b'[{"a": 1}, {"b": '
    with pytest.raises(FramingError, match="truncated"):
        frame_records(body, records_at)


@pytest.mark.parametrize("body", [b"", b"  \r\n\t"])
@pytest.mark.parametrize("records_at", ["records", "$"])
def test_empty_body(body, records_at):
    with pytest.raises(FramingError, match="empty"):
        frame_records(body, records_at)


@pytest.mark.parametrize("records_at", ["records", "$", "ndjson"])
def test_byte_order_mark_is_refused(records_at):
    with pytest.raises(FramingError, match="byte-order mark"):
        frame_records(b'\xef\xbb\xbf{"records": []}', records_at)


def test_missing_key_names_the_key_and_the_members_found():
    with pytest.raises(FramingError) as info:
        frame_records(b'{"items": [], "cursor": null}', "records")
    message = str(info.value)
    assert "'records'" in message and "cursor" in message and "items" in message


@pytest.mark.parametrize(
    ("body", "records_at", "expected"),
    [
        (b'{"records": {"a": 1}}', "records", "'records' to be an array"),
        (b'{"records": "x"}', "records", "'records' to be an array"),
        (b'[{"a": 1}]', "records", "JSON object holding 'records'"),
        (b'{"records": []}', "$", "JSON array"),
        (b"42", "$", "JSON array"),
    ],
)
def test_wrong_shape(body, records_at, expected):
    with pytest.raises(FramingError, match=expected):
        frame_records(body, records_at)


@pytest.mark.parametrize(
    ("body", "records_at"),
    [
        (b'{"records": [{"a": "caf\xe9"}]}', "records"),  # latin-1 inside a record
        (b'{"note": "\xff", "records": []}', "records"),  # inside the envelope
        (b'{"\xc3": 1, "records": []}', "records"),  # inside a key
        (b'[{"a": "\xed\xa0\x80"}]', "$"),  # an encoded surrogate is not UTF-8
        (b'{"a": 1}\n{"a": "\xc3("}\n', "ndjson"),
    ],
)
def test_invalid_utf8_is_a_framing_error(body, records_at):
    with pytest.raises(FramingError, match="UTF-8"):
        frame_records(body, records_at)


_UTF8_PIECES = [b"a", b"\x00", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\xa6\x84", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf",
                b"\xed\x9f\xbf", b"\xee\x80\x80"]
_NOT_UTF8_PIECES = [b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xed\xa0\x80",
                    b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xfe", b"\xff", b"\xc3", b"\xe2\x82",
                    b"\xf0\x9f\xa6"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_UTF8_PIECES), st.sampled_from(_NOT_UTF8_PIECES), st.binary(max_size=4)),
                max_size=12))
def test_the_utf8_check_accepts_exactly_what_pythons_decoder_accepts(pieces):
    # Arrow validates in place; it must never accept a body Python's decoder refuses, nor the reverse.
    body = b"".join(pieces)
    try:
        body.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    assert _arrow_says_utf8(body) == valid
    if valid:
        _require_utf8(body)
    else:
        with pytest.raises(FramingError, match="not valid UTF-8"):
            _require_utf8(body)


def test_invalid_utf8_ndjson_names_the_line():
    with pytest.raises(FramingError, match="line 2"):
        frame_records(b'{"a": 1}\n{"a": "\xff"}\n', "ndjson")


def test_ndjson_bad_line_is_reported_by_number():
    body = b'{"a": 1}\r\n\r\n{"a": 2}\n{"a": \n{"a": 4}\n'
    with pytest.raises(FramingError, match=r"NDJSON line 4 is not valid JSON"):
        frame_records(body, "ndjson")


def test_ndjson_two_values_on_one_line_is_an_error():
    with pytest.raises(FramingError, match="line 1"):
        frame_records(b'{"a": 1} {"a": 2}\n', "ndjson")


# -- property: random records, random whitespace -------------------------------------------

_STRINGS = ["", "plain", "🦄", "e\u0301", "é", 'quote " and \\ backslash', "tab\tnew\nline", "李小龍", "\u2028", "\x00ctl", "😀" * 3]
_WS = [b"", b" ", b"\t", b"\r\n", b"\n  ", b" \t \r\n"]


def _value(rng: random.Random, depth: int):
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 7, 2**63 - 1, 2**64, BIG, -(2**70), 10**30])
    if choice == 3:
        return rng.choice([0.5, -1.25e-7, 3.141592653589793, 1e300])
    if choice in (4, 5):
        return rng.choice(_STRINGS)
    if choice in (6, 7):
        return {rng.choice(_STRINGS) + str(i): _value(rng, depth + 1) for i in range(rng.randrange(4))}
    return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def _serialise(rng: random.Random, value) -> bytes:
    separators = rng.choice([(",", ":"), (", ", ": "), (" ,", " : ")])
    return json.dumps(value, ensure_ascii=rng.random() < 0.5, separators=separators).encode()


def _join(rng: random.Random, pieces: list[bytes]) -> bytes:
    out = rng.choice(_WS)
    for i, piece in enumerate(pieces):
        if i:
            out += rng.choice(_WS) + b"," + rng.choice(_WS)
        out += piece
    return out + rng.choice(_WS)


@pytest.mark.parametrize("seed", range(12))
def test_random_pages_every_span_equals_the_serialised_record(seed):
    rng = random.Random(seed)
    values = [_value(rng, 0) for _ in range(rng.randrange(1, 40))]
    pieces = [_serialise(rng, v) for v in values]
    inner = b"[" + _join(rng, pieces) + b"]"

    top = _join(rng, [inner])
    assert _spans(top, "$") == pieces

    # An envelope before and after, including a copy of one record and of the whole array.
    decoy = rng.choice(pieces)
    members = [b'"prev"' + rng.choice(_WS) + b":" + decoy, b'"shadow": ' + inner, b'"records":' + rng.choice(_WS) + inner, b'"n": 1']
    body = b"{" + _join(rng, members) + b"}"
    page = frame_records(body, "records")
    assert page.slices(body) == pieces
    assert all(r.offset > body.index(b'"records"') for r in page.records)
    for piece, expected in zip(page.slices(body), values, strict=True):
        assert decode_record(piece) == expected

    lines = [rng.choice([b"", b" ", b"\t"]) + p + rng.choice([b"", b" ", b"\r"]) for p in pieces]
    ndjson = b"".join(line + rng.choice([b"\n", b"\r\n", b"\n\n"]) for line in lines)
    assert _spans(ndjson, "ndjson") == pieces


def test_spans_fall_back_to_a_search_when_the_views_are_not_inside_the_body() -> None:
    from vault_pipeline.core.framing import _locate

    body = b'[{"a": 1},\n {"a": 1}, {"b": "x"}]'
    copies = [b'{"a": 1}', b'{"a": 1}', b'{"b": "x"}']  # not views into body: addresses tell nothing
    page = _locate(body, copies, 0)
    assert page.slices(body) == copies
    assert page.offsets == [1, 12, 22]


# -- hostile shapes: deep nesting, repeated members (issue 8) ---------------------------------


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("make", "records_at", "extra"),
    [
        (lambda inner: b'{"records": [' + inner + b"]}", "records", 2),  # the object and the records array
        (lambda inner: b"[" + inner + b"]", "$", 1),
        (lambda inner: b'{"a": 1}\n' + inner + b"\n", "ndjson", 0),
        (lambda inner: b'{"meta": ' + inner + b', "records": []}', "records", 1),  # in the envelope
    ],
)
def test_nesting_over_the_limit_is_refused_and_at_the_limit_accepted(make, records_at, extra):
    limit = 40
    at_limit = make(_nested(limit - extra))
    assert nesting_depth(at_limit) == limit
    frame_records(at_limit, records_at, max_depth=limit)  # accepted
    with pytest.raises(NestingTooDeepError, match=f"{limit + 1} levels deep, more than the limit of {limit}"):
        frame_records(make(_nested(limit - extra + 1)), records_at, max_depth=limit)


@pytest.mark.parametrize("records_at", ["records", "$", "ndjson"])
@pytest.mark.parametrize("max_depth", [None, 256])
def test_nesting_beyond_what_a_decoder_can_follow_is_a_framing_error_never_a_recursion_error(records_at, max_depth):
    inner = _nested(100_000)
    body = {"records": b'{"records": [' + inner + b"]}", "$": b"[" + inner + b"]", "ndjson": inner + b"\n"}[records_at]
    with pytest.raises(NestingTooDeepError) as info:
        frame_records(body, records_at, max_depth=max_depth)
    assert isinstance(info.value, FramingError) and "nests arrays/objects" in str(info.value)


def test_a_deep_record_fails_to_decode_as_a_record_decode_error():
    with pytest.raises(RecordDecodeError, match="deeper than the decoder can follow"):
        decode_record(b'{"a": ' + _nested(100_000) + b"}")


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": null}]}', 3),
        (b'["[[[[", "{{{{"]', 1),  # brackets inside strings do not nest
        (b'["\\"[[[[", [[]]]', 3),  # an escaped quote does not end the string
        (b'["\\\\", [[]]]', 3),  # an escaped backslash does not escape the closing quote
        (b'["\\\\\\"[[", [[]]]', 3),  # backslash pair, then an escaped quote
        (b'{"k\\"[": "]]]]]]]]]]]]"}', 1),
        (b'[1]\n[[2]]\n[]', 2),  # ndjson: deepest line
    ],
)
def test_nesting_depth_counts_only_structure(body, depth):
    assert nesting_depth(body) == depth


def _depth_of(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth_of, value), default=0)
    return 0


_TRICKY = ["[", "]", "{", "}", '"', "\\", '\\"', '"[', "\\\\", "]}", "x"]


@pytest.mark.parametrize("seed", range(20))
def test_nesting_depth_matches_the_decoded_value_on_random_documents(seed):
    rng = random.Random(seed)

    def value(depth: int):
        kind = rng.randrange(6 if depth < 12 else 2)
        if kind == 0:
            return "".join(rng.choice(_TRICKY) for _ in range(rng.randrange(6)))
        if kind == 1:
            return rng.choice([1, None, True, 2.5])
        if kind in (2, 3):
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {"".join(rng.choice(_TRICKY) for _ in range(rng.randrange(4))) + str(i): value(depth + 1)
                for i in range(rng.randrange(4))}

    for _ in range(30):
        document = value(0)
        body = _serialise(rng, document)
        assert nesting_depth(body) == _depth_of(json.loads(body)), body


@pytest.mark.parametrize(
    ("body", "repeated"),
    [
        (b'{"records": [{"id": 1}, {"id": 2}], "records": [{"id": 3}]}', "records"),
        (b'{"records": [{"id": 1}], "next": "c2", "rec\\u006frds": [{"id": 3}]}', "records"),  # same key, escaped
        (b'{ "records" : [ ] ,\n "records" : [ {"id": 3} ] }', "records"),
        (b'{"next": "c2", "next": null, "records": [{"id": 1}]}', "next"),  # an ambiguous cursor
        (b'{"records": [{"id": 1}], "meta": {}, "records": [{"id": 3}], "meta": {"n": 1}}', "records"),
    ],
)
def test_a_repeated_top_level_member_is_refused_as_ambiguous(body, repeated):
    with pytest.raises(AmbiguousBodyError) as info:
        frame_records(body, "records")
    assert f"member '{repeated}' appears more than once" in str(info.value)
    assert "ambiguous" in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        b'{"records": [{"records": 1, "x": {"records": []}}], "records_2": [], "next": "records"}',
        b'\r\n{ \t"a\\"b" :1,"records":[] , "c\\\\" : {"d": [1, {"records": 2}]}}\n',
        b'{"records": []}',
        b'{"":0,"records":[{}]}',
    ],
)
def test_members_named_once_are_not_mistaken_for_repeats(body):
    frame_records(body, "records", max_depth=256)
