"""Partition keys and windows, timestamps, record identity, key-field decoding, checksums."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from vault_pipeline.core.checksums import checksum, hex_of, sha256_hex
from vault_pipeline.core.identity import is_log_id, log_id_for, lookup, natural_id_from
from vault_pipeline.core.key_fields import KeyFieldsDecoder
from vault_pipeline.core.windows import (
    HourWindow,
    PartitionKeyError,
    iso_z,
    parse_timestamp,
    split_partition_key,
)

EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# -- partition keys and windows ------------------------------------------------------------


def test_split_partition_key():
    assert split_partition_key("2026-01-01-05:00|acme_audit") == ("2026-01-01-05:00", "acme_audit")


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("2026-01-01-05:00", "YYYY-MM-DD-HH:00|<provider>"),  # no provider
        ("2026-01-01-05:00|", "YYYY-MM-DD-HH:00|<provider>"),  # empty provider
        ("|acme", "YYYY-MM-DD-HH:00"),
        ("2026-01-01-05:30|acme", "YYYY-MM-DD-HH:00"),  # not on the hour
        ("2026-01-01T05:00|acme", "YYYY-MM-DD-HH:00"),
        ("2026-1-1-5:00|acme", "YYYY-MM-DD-HH:00"),
        (" 2026-01-01-05:00|acme", "YYYY-MM-DD-HH:00"),
        ("2026-13-01-00:00|acme", "not a valid UTC hour"),  # month 13
        ("2026-01-01-24:00|acme", "not a valid UTC hour"),  # hour 24
        ("2026-02-30-00:00|acme", "not a valid UTC hour"),  # February 30
    ],
)
def test_bad_partition_keys_raise_partition_key_error_naming_the_key(key, fragment):
    with pytest.raises(PartitionKeyError) as info:
        split_partition_key(key)
    message = str(info.value)
    assert fragment in message
    assert repr(key.partition("|")[0]) in message or repr(key) in message


def test_hour_window_bounds_and_names():
    window = HourWindow.for_hour_key("2026-03-04-05:00")
    assert window.start == datetime(2026, 3, 4, 5, tzinfo=UTC)
    assert window.end == datetime(2026, 3, 4, 6, tzinfo=UTC)
    assert window.start.utcoffset() == timedelta(0)
    assert window.hour_key == "2026-03-04-05:00"
    assert window.object_prefix() == "2026/03/04/05"


def test_leap_day_and_year_end_hours_exist():
    assert HourWindow.for_hour_key("2028-02-29-23:00").end == datetime(2028, 3, 1, tzinfo=UTC)
    assert HourWindow.for_hour_key("2026-12-31-23:00").end == datetime(2027, 1, 1, tzinfo=UTC)


def test_lookback_extends_only_the_start_and_crosses_midnight():
    window = HourWindow.for_hour_key("2026-01-01-00:00")
    wide = window.with_lookback(2)
    assert wide.start == datetime(2025, 12, 31, 22, tzinfo=UTC)
    assert wide.end == window.end
    assert window.with_lookback(0) == window
    assert wide.hour_key == "2025-12-31-22:00"


def test_contains_is_start_inclusive_end_exclusive():
    window = HourWindow.for_hour_key("2026-01-01-05:00")
    assert window.contains(window.start)
    assert window.contains(window.end - timedelta(microseconds=1))
    assert not window.contains(window.end)
    assert not window.contains(window.start - timedelta(microseconds=1))
    assert not window.contains(None)


# -- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T05:06:07Z", datetime(2026, 1, 1, 5, 6, 7, tzinfo=UTC)),
        ("2026-01-01T05:06:07.123456z", datetime(2026, 1, 1, 5, 6, 7, 123456, tzinfo=UTC)),
        ("2026-01-01T07:36:07+02:30", datetime(2026, 1, 1, 5, 6, 7, tzinfo=UTC)),
        ("2025-12-31T23:00:00-06:00", datetime(2026, 1, 1, 5, tzinfo=UTC)),
        ("2026-01-01 05:06:07+00:00", datetime(2026, 1, 1, 5, 6, 7, tzinfo=UTC)),
        ("  2026-01-01T05:06:07Z ", datetime(2026, 1, 1, 5, 6, 7, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_converts_to_utc(text, expected):
    moment = parse_timestamp(text)
    assert moment == expected
    assert moment.tzinfo == UTC  # converted, not merely equal


@pytest.mark.parametrize(
    "value",
    ["2026-01-01T05:06:07", "2026-01-01", "garbage", "2026-13-01T00:00:00Z", "", "Z", None, 1767243967, 1.5, {"t": 1}],
)
def test_parse_timestamp_rejects_naive_garbage_and_non_strings(value):
    assert parse_timestamp(value) is None


def test_iso_z():
    assert iso_z(datetime(2026, 1, 1, 5, 6, 7, tzinfo=UTC)) == "2026-01-01T05:06:07Z"
    assert iso_z(datetime(2026, 1, 1, 5, 6, 7, 120, tzinfo=UTC)) == "2026-01-01T05:06:07.000120Z"
    east = timezone(timedelta(hours=9))
    assert iso_z(datetime(2026, 1, 1, 14, 6, 7, tzinfo=east)) == "2026-01-01T05:06:07Z"
    moment = datetime(2026, 7, 8, 9, 10, 11, 999999, tzinfo=UTC)
    assert parse_timestamp(iso_z(moment)) == moment


# -- identity ------------------------------------------------------------------------------


def test_log_id_is_deterministic_well_formed_and_distinct_per_provider():
    first = log_id_for("acme", "evt-1")
    assert first == log_id_for("acme", "evt-1")
    assert is_log_id(first)
    assert first == "log_" + hashlib.sha256(b"acme\x1fevt-1").hexdigest()[:32]
    assert log_id_for("other", "evt-1") != first
    assert log_id_for("acme", "evt-2") != first
    # The separator keeps provider and id apart: "ab"+"c" is not "a"+"bc".
    assert log_id_for("ab", "c") != log_id_for("a", "bc")


def test_log_id_of_unicode_natural_id():
    assert is_log_id(log_id_for("acme", "🦄-é"))
    assert log_id_for("acme", "e\u0301") != log_id_for("acme", "é")  # no silent normalisation


@pytest.mark.parametrize("value", ["log_" + "0" * 31, "log_" + "A" * 32, "LOG_" + "a" * 32, "log_" + "a" * 33, "x"])
def test_is_log_id_rejects(value):
    assert not is_log_id(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("evt-1", "evt-1"), (42, "42"), (0, "0"), (2**70 + 3, "1180591620717411303427"), ("🦄", "🦄")],
)
def test_natural_id_from_uses_the_providers_id(value, expected):
    assert natural_id_from(value, "sha256:fallback") == expected


@pytest.mark.parametrize("value", [None, "", True, False, 1.5, {"id": 1}, [1]])
def test_natural_id_from_falls_back_to_the_checksum(value):
    assert natural_id_from(value, "sha256:abc") == "sha256:abc"


def test_lookup():
    record = {"a": {"b": {"c": 3}, "n": None}, "x": [1], "d.e": 9}
    assert lookup(record, "a.b.c") == 3
    assert lookup(record, "a.b") == {"c": 3}
    assert lookup(record, "a.n") is None
    assert lookup(record, "a.n.deeper") is None
    assert lookup(record, "x.0") is None  # arrays are not indexed
    assert lookup(record, "missing.path") is None
    assert lookup([1, 2], "a") is None
    assert lookup(None, "a") is None


# -- key fields ----------------------------------------------------------------------------

FAST = KeyFieldsDecoder("eventID", "eventTime")
DOTTED = KeyFieldsDecoder("meta.id", "meta.time")
SAME = KeyFieldsDecoder("id", "id")


def test_fast_path_reads_id_and_time_and_skips_the_rest():
    data = b'{"big": 18446744073709551617, "eventTime": "2026-01-01T00:00:00Z", "nested": {"eventID": "no"}, "eventID": "e-1"}'
    assert FAST.decode(data) == ("e-1", "2026-01-01T00:00:00Z", True)


def test_fast_path_keeps_big_integer_ids_exact():
    assert FAST.decode(b'{"eventID": 18446744073709551617}') == (2**64 + 1, None, True)


def test_fast_path_absent_fields_are_none():
    assert FAST.decode(b'{"other": 1}') == (None, None, True)
    assert FAST.decode(b'{"eventID": null, "eventTime": null}') == (None, None, True)


@pytest.mark.parametrize("decoder", [FAST, DOTTED, SAME])
@pytest.mark.parametrize("data", [b"[1, 2]", b'"text"', b"42", b"null", b'{"eventID": ', b"", b'{"x": "\xff"'])
def test_non_objects_and_bad_json_are_flagged(decoder, data):
    assert decoder.decode(data) == (None, None, False)


def test_dotted_paths():
    data = b'{"meta": {"id": "m-1", "time": "2026-01-01T00:00:00Z"}, "id": "top"}'
    assert DOTTED.decode(data) == ("m-1", "2026-01-01T00:00:00Z", True)
    assert DOTTED.decode(b'{"meta": "flat"}') == (None, None, True)
    assert DOTTED.decode(b'{"meta": {"id": 7}}') == (7, None, True)


def test_same_field_for_id_and_time():
    assert SAME.decode(b'{"id": "2026-01-01T00:00:00Z"}') == ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", True)


@pytest.mark.parametrize(
    "data",
    [
        b'{"eventID": "a", "eventTime": "t"}',
        b'{"eventTime": {"nested": [1, null]}}',
        '{"eventID": "🦄", "x": "e\u0301"}'.encode(),
        b'{"eventID": "\\ud83d\\ude00"}',
        b"{}",
    ],
)
def test_fast_and_full_decoding_agree(data):
    slow = KeyFieldsDecoder("eventID", "eventID")  # same field twice forces the full decode
    fast_id, _, fast_object = FAST.decode(data)
    slow_id, _, slow_object = slow.decode(data)
    assert (fast_id, fast_object) == (slow_id, slow_object)


# -- checksums -----------------------------------------------------------------------------


def test_checksum_format():
    assert checksum(b"") == "sha256:" + EMPTY_SHA
    assert sha256_hex(b"") == EMPTY_SHA
    data = "🦄".encode()
    assert checksum(memoryview(data)) == checksum(data) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_hex_of_round_trip():
    assert hex_of(checksum(b"abc")) == hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize(
    "value",
    [
        EMPTY_SHA,  # no prefix
        "sha1:" + EMPTY_SHA,
        "sha256:" + EMPTY_SHA[:-1],  # short
        "sha256:" + EMPTY_SHA + "0",  # long
        "sha256:" + EMPTY_SHA.upper(),
        "sha256:" + EMPTY_SHA[:-1] + "g",
        "sha256:" + EMPTY_SHA[:-2] + "_0",  # int(x, 16) would accept this
        "sha256: " + EMPTY_SHA[1:],
        "sha256:+" + EMPTY_SHA[1:],
        "sha256:" + EMPTY_SHA[:-1] + "\n",
        "SHA256:" + EMPTY_SHA,
        "",
        None,
    ],
)
def test_hex_of_rejects_anything_but_the_vault_format(value):
    with pytest.raises(ValueError, match="not a vault checksum"):
        hex_of(value)
