"""Normalisation: a kind's records as typed rows of its Delta fact table.

Values are coerced to the declared column type; a value of the wrong JSON type becomes null
rather than a guess (those records were already rejected by input validation; this is a last
guard so one odd value cannot fail a whole merge). Rows carry their date and hour partition
columns, taken from the event time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa

from vault_pipeline.core.identity import lookup
from vault_pipeline.core.kinds import KIND_COLUMNS, fact_schema


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
        return value if isinstance(value, int) and -(2**63) <= value < 2**63 else None
    if type_name == "float":
        return float(value) if isinstance(value, (int, float)) else None
    return None


def fact_table(kind: str, provider: str, run_id: str, items: list[tuple[Any, Any]]) -> pa.Table:
    """``items`` are (landed row with log_id/natural_id/checksum/object_key/timestamp, record)."""
    schema = fact_schema(kind)
    columns = KIND_COLUMNS[kind]
    data: dict[str, list] = {name: [] for name in schema.names}
    for row, record in items:
        moment = datetime.strptime(row.timestamp, "%Y-%m-%dT%H:%M:%S.%fZ")
        data["log_id"].append(row.log_id)
        data["provider"].append(provider)
        data["natural_id"].append(row.natural_id)
        data["event_time"].append(moment)
        data["checksum"].append(row.checksum)
        data["object_key"].append(row.object_key)
        data["run_id"].append(run_id)
        data["date"].append(row.timestamp[:10])
        data["hour"].append(row.timestamp[11:13])
        for column in columns:
            data[column.name].append(_coerce(lookup(record, column.path), column.type))
    return pa.Table.from_pydict(data, schema=schema)
