"""Normalisation: a kind's records as typed rows of its Delta fact table.

Values are coerced to the declared column type; a value of the wrong JSON type becomes null
rather than a guess (those records were already rejected by input validation; this is a last
guard so one odd value cannot fail a whole merge). Rows carry their date and hour partition
columns, taken from the event time.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from vault_pipeline.core.kinds import KIND_COLUMNS, fact_schema
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
    return None


def fact_table(kind: str, provider: str, run_id: str, items: list[tuple[Any, bytes]], projector: Projector | None = None) -> pa.Table:
    """``items`` are (landed row with log_id/natural_id/checksum/object_key/timestamp, record bytes)."""
    schema = fact_schema(kind)
    projector = projector or Projector(kind)
    types = [column.type for column in KIND_COLUMNS[kind]]
    names = [column.name for column in KIND_COLUMNS[kind]]
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
