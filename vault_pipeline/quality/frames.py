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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
    patched = sorted(by_value)
    data: dict[str, Any] = {"log_id": _column(log_ids), "event_time": _column(times),
                            "in_window": [t is not None and start <= t < end for t in times],
                            "record_type": _column(record_types)}
    by_column = zip(*exact) if exact else [()] * len(columns)
    overrides = [by_value[position] for position in patched]
    for i, (column, found) in enumerate(zip(columns, by_column, strict=True)):
        data[column.name], data[column.name + TYPE_SUFFIX] = _value_and_type_columns(
            column.type, list(found), patched, [values[i] for values, _ in overrides],
            [types[i] for _, types in overrides])
    return pd.DataFrame(data)


# pandas' own column for a list of strings and Nones (its default string dtype on pandas 3),
# or None when that is not an Arrow-backed dtype and the lists are handed to pandas as they are.
_STRINGS = pd.Series(["x", None]).dtype
_ARROW_STRINGS = _STRINGS if getattr(_STRINGS, "storage", None) == "pyarrow" else None
# The JSON type of an exact value, by its column's type, when present: a float column's values
# are integers or numbers, and are told apart value by value.
_PRESENT_TYPE = {"string": "string", "bool": "boolean", "int": "integer", "list": "array"}
_NULL = pa.scalar("null")
_ARROW_TYPE = {"string": pa.string(), "bool": pa.bool_(), "int": pa.int64(), "list": pa.list_(pa.string())}


def _column(values: list[Any]) -> Any:
    """``values`` as the column ``pd.DataFrame`` infers from the list, with strings converted in
    C: pandas' inference walks a list of strings in Python (~80 ns a value, most of building a
    frame); Arrow converts it in ~25. Anything but strings and Nones (or Nones only) stays a
    list for pandas to infer exactly as before."""
    if _ARROW_STRINGS is None:
        return values
    try:
        array = pa.array(values, pa.string())
    except (pa.ArrowException, UnicodeError):  # a value that is not a str, or not encodable
        return values
    if array.null_count == len(array):
        return values  # all None: pandas keeps such a column as objects
    return pd.array(array, dtype=_ARROW_STRINGS)


def _value_and_type_columns(column_type: str, found: list[Any], patched: list[int], values: list[Any],
                            types: list[str]) -> tuple[Any, Any]:
    """A column's values and JSON types: the exact projections (``found``: each None or of the
    column's type, so its JSON type follows from that but for a float column's integers), with
    the value-by-value rows (``values`` and ``types`` at ``patched``) written over them."""
    if _ARROW_STRINGS is None or column_type == "float":
        json_types = [_TYPE_NAMES[type(value)] for value in found]
        for position, kind_of_value in zip(patched, types, strict=True):
            json_types[position] = kind_of_value
        return _values_column(column_type, found, patched, values), _column(json_types)
    arrow_type = _ARROW_TYPE[column_type]
    exact = pa.array(found, arrow_type)
    json_types = pc.if_else(pc.is_valid(exact), pa.scalar(_PRESENT_TYPE[column_type]), _NULL)
    if patched:
        flags = np.zeros(len(found), dtype=bool)
        flags[patched] = True
        mask = pa.array(flags)
        json_types = pc.replace_with_mask(json_types, mask, pa.array(types, pa.string()))
    if column_type == "string":
        strings = _replaced(exact, mask, values) if patched else exact
        if strings is not None and strings.null_count < len(strings):
            return pd.array(strings, dtype=_ARROW_STRINGS), pd.array(json_types, dtype=_ARROW_STRINGS)
    return _values_column(column_type, found, patched, values), pd.array(json_types, dtype=_ARROW_STRINGS)


def _replaced(strings: pa.Array, mask: pa.Array, values: list[Any]) -> pa.Array | None:
    """``strings`` with ``values`` at ``mask``, or None when one of them is not a string."""
    try:
        return pc.replace_with_mask(strings, mask, pa.array(values, pa.string()))
    except (pa.ArrowException, UnicodeError):
        return None


def _values_column(column_type: str, found: list[Any], patched: list[int], overrides: list[Any]) -> Any:
    """A column's values: the exact projections, the value-by-value rows written over them."""
    if column_type in ("int", "float"):
        try:
            values = pa.array(found, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowException, OverflowError):  # an integer beyond every float, in this slice
            values = np.array([np.nan if value is None else _number(value) for value in found], dtype="float64")
        if patched:
            values[patched] = [np.nan if value is None else value for value in overrides]
        return values
    values = [None] * len(found) if column_type == "list" else found
    for position, value in zip(patched, overrides, strict=True):
        values[position] = value
    return values if column_type == "bool" else _column(values)
