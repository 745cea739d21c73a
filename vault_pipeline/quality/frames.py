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


def _record_row(record: Any, columns, projector: Projector) -> tuple[str, list[Any], list[str]]:
    """(record type, frame values, JSON types) of one record, value by value: every record the
    exact projection cannot take (a value of another type than its column's, a non-object)."""
    record_type, found = _field_values(record, columns, projector)
    values, types = [], []
    for column, value in zip(columns, found, strict=True):
        kind_of_value = _TYPE_NAMES.get(type(value)) or json_type(value)
        if column.type == "list" and kind_of_value == "array" and not all(isinstance(item, str) for item in value):
            kind_of_value = "array_of_mixed"
        types.append(kind_of_value)
        if column.type in ("int", "float"):
            value = _number(value) if kind_of_value in ("integer", "number") else None
        elif kind_of_value in ("object", "array", "array_of_mixed"):
            value = None
        values.append(value)
    return record_type, values, types


def input_frame(kind: str, window: HourWindow, rows: Iterable[tuple[str, str | None, Any]],
                fields: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``rows`` are (log_id, fixed-width event time or None, record bytes or parsed record);
    ``fields`` is the provider's column -> path mapping (vault.yaml ``fields``).

    A record whose every analysed value has its column's type (nearly all of them) is decoded
    straight into a tuple of those values in C (``Projector.project_exact``), and the frame's
    columns are built whole from the tuples; any other record goes value by value through
    ``_record_row``, and its row is written over the placeholder it left."""
    projector = Projector(kind, fields)
    columns = projector.columns
    start, end = fixed_width_timestamp(window.start), fixed_width_timestamp(window.end)
    log_ids: list[str] = []
    times: list[str | None] = []
    record_types: list[str] = []
    exact: list[tuple[Any, ...]] = []
    by_value: dict[int, tuple[list[Any], list[str]]] = {}  # row -> (values, types) of the records above
    placeholder = (None,) * len(columns)
    project_exact = projector.project_exact
    for position, (log_id, timestamp, record) in enumerate(rows):
        log_ids.append(log_id)
        times.append(timestamp)
        found = project_exact(record) if isinstance(record, (bytes, bytearray, memoryview)) else None
        if found is not None:
            exact.append(found)
            record_types.append("object")
            continue
        record_type, values, types = _record_row(record, columns, projector)
        exact.append(placeholder)
        record_types.append(record_type)
        by_value[position] = (values, types)
    data: dict[str, Any] = {"log_id": log_ids, "event_time": times,
                            "in_window": [t is not None and start <= t < end for t in times],
                            "record_type": record_types}
    type_names = _TYPE_NAMES
    for i, column in enumerate(columns):
        found = [row[i] for row in exact]
        # Exact values are None or of the column's own type: their JSON type follows from it.
        types = [type_names[type(value)] for value in found]
        if column.type in ("int", "float"):
            try:
                values = [None if value is None else float(value) for value in found]
            except OverflowError:  # an integer beyond any float, in this slice
                values = [None if value is None else _number(value) for value in found]
        elif column.type == "list":
            values = [None] * len(found)
        else:
            values = found
        for position, (row_values, row_types) in by_value.items():
            values[position], types[position] = row_values[i], row_types[i]
        data[column.name], data[column.name + TYPE_SUFFIX] = values, types
    frame = pd.DataFrame(data)
    for column in columns:
        if column.type in ("int", "float"):
            frame[column.name] = frame[column.name].astype("float64")
    return frame
