"""Frames that Great Expectations validates: records as the provider sent them, per kind.

The input frame keeps each analysed field's JSON type next to its value (``latency_ms`` and
``latency_ms__json_type``), so a suite can say both "is an integer" and "is between 0 and
600000" without a wrongly typed value crashing the range check. Times are judged against
the fetch window, so records from the wrong hour are caught.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from vault_pipeline.core.framing import RecordDecodeError, decode_record
from vault_pipeline.core.identity import lookup
from vault_pipeline.core.kinds import KIND_COLUMNS
from vault_pipeline.core.projection import NOT_AN_OBJECT, Projector
from vault_pipeline.core.windows import HourWindow
from vault_pipeline.storage.catalog import fixed_width_timestamp

TYPE_SUFFIX = "__json_type"


_TYPE_NAMES = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string",
               list: "array", dict: "object"}


def json_type(value: Any) -> str:
    name = _TYPE_NAMES.get(type(value))
    if name is not None:
        return name
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float: out of every range a suite can state
        return float("inf") if value > 0 else float("-inf")


def _field_values(record: Any, columns, projector: Projector) -> tuple[str, list[Any]]:
    """(JSON type of the record, its analysed field values) from bytes or a parsed value."""
    if isinstance(record, (bytes, bytearray, memoryview)):
        values = projector.project(record)
        if values is not NOT_AN_OBJECT:
            return "object", values
        try:
            record = decode_record(record)
        except RecordDecodeError:
            return "invalid_json", [None] * len(columns)
    if not isinstance(record, dict):
        return json_type(record), [None] * len(columns)
    return "object", [lookup(record, column.path) for column in columns]


def input_frame(kind: str, window: HourWindow, rows: Iterable[tuple[str, str | None, Any]]) -> pd.DataFrame:
    """``rows`` are (log_id, fixed-width event time or None, record bytes or parsed record)."""
    columns = KIND_COLUMNS[kind]
    projector = Projector(kind)
    start, end = fixed_width_timestamp(window.start), fixed_width_timestamp(window.end)
    log_ids, times, in_window, record_types, value_rows = [], [], [], [], []
    for log_id, timestamp, record in rows:
        log_ids.append(log_id)
        times.append(timestamp)
        in_window.append(timestamp is not None and start <= timestamp < end)
        record_type, values = _field_values(record, columns, projector)
        record_types.append(record_type)
        value_rows.append(values)
    data: dict[str, list] = {"log_id": log_ids, "event_time": times, "in_window": in_window, "record_type": record_types}
    # Column by column: one pass per analysed field over the page, instead of one per value.
    per_column = list(zip(*value_rows)) if value_rows else [() for _ in columns]
    for column, values in zip(columns, per_column, strict=True):
        types = [_TYPE_NAMES.get(type(value)) or json_type(value) for value in values]
        if column.type in ("int", "float"):
            values = [_number(v) if t == "integer" or t == "number" else None for v, t in zip(values, types, strict=True)]
        else:
            values = [None if t == "object" or t == "array" else v for v, t in zip(values, types, strict=True)]
        data[column.name] = values
        data[column.name + TYPE_SUFFIX] = types
    frame = pd.DataFrame(data)
    for column in columns:
        if column.type in ("int", "float"):
            frame[column.name] = frame[column.name].astype("float64")
    return frame
