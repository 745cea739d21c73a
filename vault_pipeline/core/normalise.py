"""Normalisation: a kind's records as typed rows of its Delta fact table.

Values are coerced to the declared column type; a value of the wrong JSON type becomes null
rather than a guess (those records were already rejected by input validation; this is a last
guard so one odd value cannot fail a whole merge). Rows carry their date and hour partition
columns, taken from the event time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from vault_pipeline.core.kinds import ARROW_TYPES, fact_schema
from vault_pipeline.core.projection import NOT_AN_OBJECT, Projector

_INT64 = (-(2**63), 2**63)


def _coerce(value: Any, type_name: str) -> Any:
    if value is None:
        return None
    if type_name == "string":
        return value if isinstance(value, str) else None
    if type_name == "bool":
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if type_name == "int":
        return value if isinstance(value, int) and _INT64[0] <= value < _INT64[1] else None
    if type_name == "float":
        return float(value) if isinstance(value, (int, float)) else None
    if type_name == "list":
        return value if isinstance(value, list) and all(isinstance(item, str) for item in value) else None
    return None


def fact_table(kind: str, provider: str, run_id: str, items: list[tuple[Any, bytes]], projector: Projector | None = None) -> pa.Table:
    """``items`` are (landed row with log_id/natural_id/checksum/object_key/timestamp, record bytes)."""
    schema = fact_schema(kind)
    projector = projector or Projector(kind)
    types = [column.type for column in projector.columns]
    names = [column.name for column in projector.columns]
    data: dict[str, list] = {name: [] for name in schema.names}
    kind_columns = [data[name] for name in names]
    timestamps = []
    for row, record_bytes in items:
        timestamps.append(row.timestamp)
        data["log_id"].append(row.log_id)
        data["natural_id"].append(row.natural_id)
        data["checksum"].append(row.checksum)
        data["object_key"].append(row.object_key)
        data["date"].append(row.timestamp[:10])
        data["hour"].append(row.timestamp[11:13])
        values = projector.project(record_bytes)
        if values is NOT_AN_OBJECT:
            values = [None] * len(names)
        for target, value, type_name in zip(kind_columns, values, types, strict=True):
            target.append(_coerce(value, type_name))
    count = len(timestamps)
    # Arrow parses the fixed-width ISO strings in C; far cheaper than datetime.strptime per row.
    data["event_time"] = pa.array(timestamps, pa.string()).cast(pa.timestamp("us", tz="UTC"))
    data["provider"] = pa.array([provider] * count, pa.string())
    data["run_id"] = pa.array([run_id] * count, pa.string())
    return pa.Table.from_pydict(data, schema=schema)


def fact_batch(
    kind: str, provider: str, run_id: str, rows: pa.RecordBatch, record_bytes: Iterable[bytes | memoryview],
    projector: Projector | None = None,
) -> pa.RecordBatch:
    """``fact_table`` column-wise: ``rows`` is a landing-snapshot batch (log_id, natural_id,
    checksum, object_key, timestamp; every timestamp present) and ``record_bytes`` yields each
    row's record bytes in order. Only the kind's own columns are decoded record by record."""
    schema = fact_schema(kind)
    projector = projector or Projector(kind)
    columns = projector.columns
    values: list[list] = [[] for _ in columns]
    types = [column.type for column in columns]
    empty = [None] * len(columns)
    typed_rows = []
    typed, project = projector.project_typed, projector.project
    for data in record_bytes:
        row = typed(data)
        if row is None:  # a value of another JSON type somewhere: coerce field by field
            projected = project(data)
            if projected is NOT_AN_OBJECT:
                projected = empty
            row = tuple(_coerce(value, type_name) for value, type_name in zip(projected, types, strict=True))
        typed_rows.append(row)
    values = [list(column) for column in zip(*typed_rows)] if typed_rows else values
    if len(columns) == 1 and typed_rows:
        values = [[row[0] for row in typed_rows]]
    if len(values[0]) != rows.num_rows if values else False:
        raise ValueError(f"{rows.num_rows} rows but {len(values[0])} records")
    timestamps = rows.column("timestamp")
    count = rows.num_rows
    data = {
        "log_id": rows.column("log_id"),
        "provider": pa.array([provider] * count, pa.string()),
        "natural_id": rows.column("natural_id"),
        "event_time": timestamps.cast(pa.timestamp("us", tz="UTC")),
        "checksum": rows.column("checksum"),
        "object_key": rows.column("object_key"),
        "run_id": pa.array([run_id] * count, pa.string()),
        "date": pc.utf8_slice_codeunits(timestamps, 0, 10),
        "hour": pc.utf8_slice_codeunits(timestamps, 11, 13),
    }
    for column, column_values in zip(columns, values, strict=True):
        data[column.name] = pa.array(column_values, ARROW_TYPES[column.type])
    return pa.RecordBatch.from_arrays([data[name] for name in schema.names], schema=schema)
