"""Frames that Great Expectations validates: records as the provider sent them, per kind.

The input frame keeps each analysed field's JSON type next to its value (``latency_ms`` and
``latency_ms__json_type``), so a suite can say both "is an integer" and "is between 0 and
600000" without a wrongly typed value crashing the range check. Times are judged against
the fetch window, so records from the wrong hour are caught. A ``list`` column (an array of
strings) has no value in the frame, only its type: ``array`` when every item is a string,
``array_of_mixed`` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from vault_pipeline.core.framing import RecordDecodeError, decode_record
from vault_pipeline.core.identity import lookup
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


def input_frame(kind: str, window: HourWindow, rows: Iterable[tuple[str, str | None, Any]],
                fields: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``rows`` are (log_id, fixed-width event time or None, record bytes or parsed record);
    ``fields`` is the provider's column -> path mapping (vault.yaml)."""
    projector = Projector(kind, fields)
    columns = projector.columns
    start, end = fixed_width_timestamp(window.start), fixed_width_timestamp(window.end)
    data: dict[str, list] = {"log_id": [], "event_time": [], "in_window": [], "record_type": []}
    for column in columns:
        data[column.name] = []
        data[column.name + TYPE_SUFFIX] = []
    # Per column: (its value list, its type list, whether it is numeric), looked up once.
    targets = [(data[c.name].append, data[c.name + TYPE_SUFFIX].append, c.type in ("int", "float"), c.type == "list")
               for c in columns]
    type_names = _TYPE_NAMES
    for log_id, timestamp, record in rows:
        data["log_id"].append(log_id)
        data["event_time"].append(timestamp)
        data["in_window"].append(timestamp is not None and start <= timestamp < end)
        record_type, values = _field_values(record, columns, projector)
        data["record_type"].append(record_type)
        for (add_value, add_type, numeric, listed), value in zip(targets, values, strict=True):
            kind_of_value = type_names.get(type(value)) or json_type(value)
            if listed and kind_of_value == "array" and not all(isinstance(item, str) for item in value):
                kind_of_value = "array_of_mixed"
            add_type(kind_of_value)
            if numeric:
                value = _number(value) if kind_of_value == "integer" or kind_of_value == "number" else None
            elif kind_of_value in ("object", "array", "array_of_mixed"):
                value = None
            add_value(value)
    frame = pd.DataFrame(data)
    for column in columns:
        if column.type in ("int", "float"):
            frame[column.name] = frame[column.name].astype("float64")
    return frame
