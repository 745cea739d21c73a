"""The column-wise fast paths give exactly the answers of the value-by-value code they replace.

Landing formats a page's event times in Arrow (``fixed_width_timestamps``) instead of one
``parse_timestamp`` per record, normalisation decodes a record's analysed fields straight
into their declared types (``Projector.project_typed``) instead of coercing each value, and
input validation builds its frame's columns whole from exact projections
(``Projector.project_exact``) instead of typing each value, and converts them in Arrow instead
of handing pandas lists to infer from. Every odd input must come out the same way as through
the slow path, or fall back to it.
"""

from __future__ import annotations

import msgspec
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault_pipeline.core.kinds import KIND_COLUMNS
from vault_pipeline.core.normalise import _coerce
from vault_pipeline.core.projection import NOT_AN_OBJECT, Projector
from vault_pipeline.core.windows import HourWindow, fixed_width_timestamps, parse_timestamp
from vault_pipeline.quality.frames import TYPE_SUFFIX, _record_row, input_frame
from vault_pipeline.storage.catalog import fixed_width_timestamp

ODD_TIMES = [
    "2026-01-01T00:00:00.123456Z",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00.5Z",
    "2026-01-01T00:30:00+01:00",  # offset: converted to UTC, crosses the day and year
    "2026-01-01T00:30:00.25-02:30",
    "2026-01-01T00:00:00+0100",
    "2026-01-01T00:00:00z",  # lowercase z
    " 2026-01-01T00:00:00Z ",  # padded
    "2026-01-01 00:00:00+00:00",  # space separator
    "2026-01-01T00:00:00.1234567Z",  # seven fraction digits
    "2026-01-01T00:00:00",  # naive: rejected
    "2026-01-01",  # naive date
    "2026-02-30T00:00:00Z",  # no such day
    "2026-01-01T24:00:00Z",
    "2026-13-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "garbage",
    "",
    None,
    5,
    1.5,
    True,
    ["2026-01-01T00:00:00Z"],
    {"t": "2026-01-01T00:00:00Z"},
]


def slow(value: object) -> str | None:
    moment = parse_timestamp(value)
    return fixed_width_timestamp(moment) if moment else None


def test_page_timestamps_match_the_per_value_parser_for_odd_inputs() -> None:
    assert fixed_width_timestamps(ODD_TIMES).to_pylist() == [slow(v) for v in ODD_TIMES]


def test_page_timestamps_keep_naive_values_rejected_and_offsets_in_utc() -> None:
    got = fixed_width_timestamps(["2026-01-01T00:30:00+01:00", "2026-01-01T00:30:00", "2026-01-01T00:30:00Z"])
    assert got.to_pylist() == ["2025-12-31T23:30:00.000000Z", None, "2026-01-01T00:30:00.000000Z"]


def test_one_impossible_date_does_not_spoil_the_rest_of_the_page() -> None:
    values = ["2026-02-30T00:00:00Z", "2026-01-01T00:00:00Z", "2024-02-29T12:00:00-01:00"]
    assert fixed_width_timestamps(values).to_pylist() == [None, "2026-01-01T00:00:00.000000Z", "2024-02-29T13:00:00.000000Z"]


@pytest.mark.parametrize("values", [[], [None, None], ["garbage"], ["2026-01-01T00:00:00Z"] * 3])
def test_page_timestamps_of_small_pages(values: list) -> None:
    assert fixed_width_timestamps(values).to_pylist() == [slow(v) for v in values]


ODD_RECORDS = [
    b'{"eventName":"x","userIdentity":{"type":"IAMUser","userName":"bob"},"readOnly":true}',
    b'{"eventName":"x","userIdentity":null,"readOnly":false}',
    b'{"eventName":"x"}',
    b'{"eventName":5,"readOnly":"yes"}',
    b'{"userIdentity":"a string","readOnly":1}',
    b'{"userIdentity":[1,2]}',
    b"[1, 2]",
    b'"just a string"',
    b"null",
    b"not json",
    b'{"provider":"openai","model":"m","latency_ms":12,"success":true,"tokens":{"prompt":3,"completion":4,"total":7},"cost_usd":1,"error":null}',
    b'{"latency_ms":9223372036854775807,"tokens":{"prompt":-9223372036854775808,"completion":9223372036854775808}}',
    b'{"latency_ms":18446744073709551617,"tokens":{"total":"many"},"cost_usd":18446744073709551617}',
    b'{"latency_ms":true,"success":1,"cost_usd":false,"error":{"message":7}}',
    b'{"latency_ms":5.0,"tokens":null,"error":{"message":"rate limited","code":429}}',
    b'{"suite":"s","test":"t","status":"passed","duration_ms":3,"ci":{"build":5,"branch":"main"},"error":{"type":"E"}}',
    b'{"duration_ms":1e308,"ci":{"build":5.0}}',
    b'{"duration_ms":-1.5,"ci":null,"error":"boom"}',
    b'{"eventName":"dup","eventName":7}',
    '{"eventName":"\u00e9\U0001d518","userIdentity":{"userName":"\u674e"}}'.encode(),
]


@pytest.mark.parametrize("kind", sorted(KIND_COLUMNS))
def test_typed_projection_equals_coerced_projection_or_defers_to_it(kind: str) -> None:
    projector = Projector(kind)
    types = [column.type for column in KIND_COLUMNS[kind]]
    fast_hits = 0
    for data in ODD_RECORDS:
        values = projector.project(data)
        expected = (
            tuple([None] * len(types)) if values is NOT_AN_OBJECT
            else tuple(_coerce(v, t) for v, t in zip(values, types, strict=True))
        )
        typed = projector.project_typed(data)
        if typed is not None:
            fast_hits += 1
            assert typed == expected, data
            assert [type(v) for v in typed] == [type(v) for v in expected], data  # 3 -> 3.0 for floats
        projected_view = projector.project_typed(memoryview(data))
        assert projected_view == typed
    assert fast_hits  # the fast path is actually taken for ordinary records


@pytest.mark.parametrize(
    "values",
    [
        ["2026-01-01T00:00:00.123456Z", None, "2024-02-29T23:59:59.999999Z"],  # already fixed-width: kept
        ["2026-01-01T00:00:00.123456Z", "2026-02-30T00:00:00.000000Z"],  # fixed-width but no such day
        ["2026-01-01T00:00:00.123456Z", "2026-01-01T00:00:00.123456+00:00"],  # one not fixed-width
        ["0999-01-01T00:00:00.000000Z", "2026-01-01T00:00:60.000000Z"],  # outside the accepted ranges
    ],
)
def test_pages_already_in_fixed_width_form_give_the_same_answer(values: list) -> None:
    assert fixed_width_timestamps(values).to_pylist() == [slow(v) for v in values]


# -- input validation's frame: built whole from exact projections, value by value otherwise ----

_WINDOW = HourWindow.for_hour_key("2026-01-01-00:00")


def _value_by_value_frame(kind: str, rows: list, monkeypatch: pytest.MonkeyPatch, fields=None) -> pd.DataFrame:
    """The frame as the value-by-value code builds it, every record through ``_record_row``."""
    with monkeypatch.context() as patched:
        patched.setattr(Projector, "project_exact", lambda self, data: None)
        return input_frame(kind, _WINDOW, rows, fields)


def _inferred_frame(kind: str, rows: list, fields=None) -> pd.DataFrame:
    """The frame as pandas infers it from plain lists, every record value by value: the
    reference that owes nothing to the column-wise code (its Arrow conversions included)."""
    projector = Projector(kind, fields)
    columns = projector.columns
    start, end = fixed_width_timestamp(_WINDOW.start), fixed_width_timestamp(_WINDOW.end)
    data: dict[str, list] = {"log_id": [r[0] for r in rows], "event_time": [r[1] for r in rows],
                             "in_window": [r[1] is not None and start <= r[1] < end for r in rows], "record_type": []}
    for column in columns:
        data[column.name], data[column.name + TYPE_SUFFIX] = [], []
    for _, _, record in rows:
        record_type, values, types = _record_row(record, columns, projector)
        data["record_type"].append(record_type)
        for column, value, kind_of_value in zip(columns, values, types, strict=True):
            data[column.name].append(value)
            data[column.name + TYPE_SUFFIX].append(kind_of_value)
    frame = pd.DataFrame(data)
    for column in columns:
        if column.type in ("int", "float"):
            frame[column.name] = frame[column.name].astype("float64")
    return frame


def _rows(records: list) -> list:
    return [(f"log-{i}", "2026-01-01T00:10:00.000000Z" if i % 3 else None, record) for i, record in enumerate(records)]


@pytest.mark.parametrize("kind", sorted(KIND_COLUMNS))
def test_input_frames_from_exact_projections_equal_the_value_by_value_frame(kind: str, monkeypatch) -> None:
    rows = _rows(ODD_RECORDS)
    got = input_frame(kind, _WINDOW, rows)
    pd.testing.assert_frame_equal(got, _value_by_value_frame(kind, rows, monkeypatch))
    pd.testing.assert_frame_equal(got, _inferred_frame(kind, rows))
    exact = sum(Projector(kind).project_exact(record) is not None for record in ODD_RECORDS)
    assert 0 < exact < len(ODD_RECORDS)  # both ways are taken in one frame
    # A float column keeps telling integers from numbers (cost_usd 1 against 5.0 elsewhere).
    if kind == "generation_event":
        assert got.loc[10, "cost_usd__json_type"] == "integer" and got.loc[10, "cost_usd"] == 1.0


def test_records_already_parsed_give_the_frame_their_bytes_give() -> None:
    records = [record for record in ODD_RECORDS if record not in (b"not json",)]
    parsed = [msgspec.json.decode(record) for record in records]
    for kind in sorted(KIND_COLUMNS):
        pd.testing.assert_frame_equal(input_frame(kind, _WINDOW, _rows(records)), input_frame(kind, _WINDOW, _rows(parsed)))


def test_a_provider_mapping_that_defeats_the_exact_projection_still_gives_the_same_frame(monkeypatch) -> None:
    # One path read as a string and as a bool: no typed struct holds it, every record goes value by value.
    fields = {"event_name": "shared", "read_only": "shared"}
    records = [b'{"shared":"x"}', b'{"shared":true}', b'{"shared":7}', b'{"shared":null}', b"{}"]
    assert Projector("audit_event", fields).project_exact(records[0]) is None
    rows = _rows(records)
    pd.testing.assert_frame_equal(input_frame("audit_event", _WINDOW, rows, fields),
                                  _value_by_value_frame("audit_event", rows, monkeypatch, fields))
    pd.testing.assert_frame_equal(input_frame("audit_event", _WINDOW, rows, fields),
                                  _inferred_frame("audit_event", rows, fields))


_JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5),
    st.lists(st.one_of(st.text(max_size=3), st.integers(0, 3)), max_size=3),
    st.dictionaries(st.sampled_from(["type", "userName", "message", "build"]), st.integers(0, 9), max_size=2),
)


_OF_TYPE = {
    "string": st.text(max_size=5),
    "bool": st.booleans(),
    "int": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "float": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**53), 2**53)),
    "list": st.lists(st.text(max_size=3), max_size=3),
}


@st.composite
def _records_of(draw, kind: str) -> bytes:
    """Records holding the kind's own paths: mostly values of their column's type (so whole
    records take the exact projection), now and then one of any JSON type, or a parent that
    is not an object."""
    record: dict = {}
    for column in KIND_COLUMNS[kind]:
        if draw(st.integers(0, 4)) == 0:
            continue
        *parents, leaf = column.path.split(".")
        node = record
        for parent in parents:
            child = node.get(parent)
            if not isinstance(child, dict):
                child = node[parent] = {} if draw(st.integers(0, 19)) else draw(_JSON_LEAVES)
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[leaf] = draw(_OF_TYPE[column.type] if draw(st.integers(0, 9)) else _JSON_LEAVES)
    return msgspec.json.encode(record)


@pytest.mark.parametrize("kind", sorted(KIND_COLUMNS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_record_gives_the_value_by_value_frame(kind: str, data, monkeypatch) -> None:
    records = data.draw(st.lists(_records_of(kind), min_size=1, max_size=8))
    rows = _rows(records)
    got = input_frame(kind, _WINDOW, rows)
    pd.testing.assert_frame_equal(got, _value_by_value_frame(kind, rows, monkeypatch))
    pd.testing.assert_frame_equal(got, _inferred_frame(kind, rows))


@pytest.mark.parametrize("kind", sorted(KIND_COLUMNS))
def test_a_simulated_hour_with_flaws_gives_the_frame_pandas_infers(kind: str) -> None:
    # Thousands of rows, a few of them value by value: the Arrow columns and the rows patched into them.
    from vault_pipeline.providers.config import parse_config
    from vault_pipeline.providers.simulator import SimulatorProvider

    entry = {"type": "simulator", "kind": kind, "records_per_hour": 3000, "seed": 3, "invalid_fraction": 0.05}
    pages = SimulatorProvider(parse_config({"providers": {"sim": entry}}).provider("sim")).fetch_pages(_WINDOW)
    records = [record for page in pages for record in page.framed.slices(page.body)]
    for i, odd in enumerate(ODD_RECORDS):  # spread through the hour, so many columns get patched rows
        records.insert(i * len(records) // len(ODD_RECORDS), odd)
    rows = _rows(records)
    projector = Projector(kind)
    assert 0 < sum(projector.project_exact(record) is None for record in records) < len(records) // 10
    got = input_frame(kind, _WINDOW, rows)
    pd.testing.assert_frame_equal(got, _inferred_frame(kind, rows))
