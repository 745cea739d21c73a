"""Validation frames: each analysed field's value next to its JSON type, times judged against the window."""

from __future__ import annotations

import math

import pytest

from vault_pipeline.core.kinds import KIND_COLUMNS
from vault_pipeline.core.windows import HourWindow
from vault_pipeline.quality.frames import TYPE_SUFFIX, input_frame, json_type

WINDOW = HourWindow.for_hour_key("2026-01-01-05:00")
START, END = "2026-01-01T05:00:00.000000Z", "2026-01-01T06:00:00.000000Z"

GENERATION = {
    "provider": "openai",
    "model": "gpt-4o",
    "latency_ms": 120,
    "success": True,
    "tokens": {"prompt": 10, "completion": 5, "total": 15},
    "cost_usd": 0.25,
    "error": {"message": "rate limited ⏱", "code": 429},
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "null"), (True, "boolean"), (False, "boolean"), (0, "integer"), (2**70, "integer"), (1.5, "number"),
     ("", "string"), ([], "array"), ({}, "object")],
)
def test_json_type(value, expected):
    assert json_type(value) == expected


@pytest.mark.parametrize("kind", sorted(KIND_COLUMNS))
def test_columns_per_kind(kind):
    frame = input_frame(kind, WINDOW, [])
    expected = ["log_id", "event_time", "in_window", "record_type"]
    for column in KIND_COLUMNS[kind]:
        expected += [column.name, column.name + TYPE_SUFFIX]
    assert list(frame.columns) == expected
    assert len(frame) == 0


def test_values_and_types_of_a_clean_record():
    frame = input_frame("generation_event", WINDOW, [("log_a", "2026-01-01T05:30:00.000000Z", GENERATION)])
    row = frame.iloc[0].to_dict()
    assert row["log_id"] == "log_a" and row["record_type"] == "object" and row["in_window"]
    assert row["llm_provider"] == "openai" and row["llm_provider__json_type"] == "string"
    assert row["latency_ms"] == 120.0 and row["latency_ms__json_type"] == "integer"
    assert row["prompt_tokens"] == 10.0 and row["total_tokens__json_type"] == "integer"  # dotted paths
    assert row["cost_usd"] == 0.25 and row["cost_usd__json_type"] == "number"
    assert row["success"] is True and row["success__json_type"] == "boolean"
    assert row["error_message"] == "rate limited ⏱"
    for column in KIND_COLUMNS["generation_event"]:
        if column.type in ("int", "float"):
            assert frame[column.name].dtype == "float64"


def test_wrong_types_keep_their_type_and_lose_their_value():
    record = {**GENERATION, "latency_ms": "fast", "success": "yes", "cost_usd": True,
              "tokens": {"prompt": [1], "completion": None, "total": 2**70}, "model": {"name": "x"}}
    row = input_frame("generation_event", WINDOW, [("log_a", START, record)]).iloc[0]
    assert row["latency_ms__json_type"] == "string" and math.isnan(row["latency_ms"])
    assert row["cost_usd__json_type"] == "boolean" and math.isnan(row["cost_usd"])  # a bool is not a number
    assert row["prompt_tokens__json_type"] == "array" and math.isnan(row["prompt_tokens"])
    assert row["completion_tokens__json_type"] == "null" and math.isnan(row["completion_tokens"])
    assert row["total_tokens__json_type"] == "integer" and row["total_tokens"] == float(2**70)
    assert row["model__json_type"] == "object" and row["model"] is None  # objects never reach a string check
    assert row["success__json_type"] == "string" and row["success"] == "yes"


def test_an_integer_beyond_every_float_is_out_of_range_not_a_crash():
    record = {**GENERATION, "latency_ms": 10**400, "tokens": {"prompt": -(10**400), "completion": 1, "total": 1}}
    row = input_frame("generation_event", WINDOW, [("log_a", START, record)]).iloc[0]
    assert row["latency_ms__json_type"] == "integer" and row["latency_ms"] == math.inf
    assert row["prompt_tokens"] == -math.inf


@pytest.mark.parametrize("record", [[1, 2], None, "text", 7])
def test_non_object_records(record):
    row = input_frame("test_result", WINDOW, [("log_x", START, record)]).iloc[0]
    assert row["record_type"] == json_type(record)
    for column in KIND_COLUMNS["test_result"]:
        assert row[column.name + TYPE_SUFFIX] == "null"


@pytest.mark.parametrize(
    ("timestamp", "inside"),
    [
        (START, True),
        ("2026-01-01T05:59:59.999999Z", True),
        (END, False),
        ("2026-01-01T04:59:59.999999Z", False),
        ("2026-01-02T05:30:00.000000Z", False),
        (None, False),
    ],
)
def test_in_window_is_start_inclusive_end_exclusive(timestamp, inside):
    frame = input_frame("audit_event", WINDOW, [("log_t", timestamp, {"eventName": "x"})])
    assert bool(frame["in_window"].iloc[0]) is inside
    assert frame["event_time"].iloc[0] == timestamp


def test_lookback_window_widens_in_window():
    early = "2026-01-01T04:10:00.000000Z"
    assert not input_frame("audit_event", WINDOW, [("l", early, {})])["in_window"].iloc[0]
    assert input_frame("audit_event", WINDOW.with_lookback(1), [("l", early, {})])["in_window"].iloc[0]


def test_row_order_is_kept():
    rows = [(f"log_{i}", START, {**GENERATION, "latency_ms": i}) for i in range(5)]
    frame = input_frame("generation_event", WINDOW, rows)
    assert list(frame["log_id"]) == [f"log_{i}" for i in range(5)]
    assert list(frame["latency_ms"]) == [0.0, 1.0, 2.0, 3.0, 4.0]
