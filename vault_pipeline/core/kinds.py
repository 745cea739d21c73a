"""The three kinds of record the vault understands and the typed columns each one yields.

A kind says which fields of a provider's record are analysed: their JSON path, their declared
type, and the column name in validation frames and in the Delta fact table. Input validation
sees the values as the provider sent them (so type errors are visible); normalisation
coerces them into the declared Arrow type.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    path: str  # dotted path in the record
    type: str  # "string" | "int" | "float" | "bool"


ARROW_TYPES = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}

KIND_COLUMNS: dict[str, tuple[Column, ...]] = {
    "audit_event": (
        Column("event_name", "eventName", "string"),
        Column("event_source", "eventSource", "string"),
        Column("aws_region", "awsRegion", "string"),
        Column("source_ip", "sourceIPAddress", "string"),
        Column("user_type", "userIdentity.type", "string"),
        Column("user_name", "userIdentity.userName", "string"),
        Column("account_id", "recipientAccountId", "string"),
        Column("error_code", "errorCode", "string"),
        Column("read_only", "readOnly", "bool"),
    ),
    "generation_event": (
        Column("llm_provider", "provider", "string"),
        Column("model", "model", "string"),
        Column("latency_ms", "latency_ms", "int"),
        Column("success", "success", "bool"),
        Column("prompt_tokens", "tokens.prompt", "int"),
        Column("completion_tokens", "tokens.completion", "int"),
        Column("total_tokens", "tokens.total", "int"),
        Column("cost_usd", "cost_usd", "float"),
        Column("error_message", "error.message", "string"),
    ),
    "test_result": (
        Column("suite", "suite", "string"),
        Column("test", "test", "string"),
        Column("status", "status", "string"),
        Column("duration_ms", "duration_ms", "float"),
        Column("error_type", "error.type", "string"),
        Column("error_message", "error.message", "string"),
        Column("branch", "ci.branch", "string"),
        Column("build", "ci.build", "int"),
    ),
}

# Columns every fact table carries, ahead of the kind's own columns.
COMMON_SCHEMA = pa.schema(
    [
        ("log_id", pa.string()),
        ("provider", pa.string()),
        ("natural_id", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("checksum", pa.string()),
        ("object_key", pa.string()),
        ("run_id", pa.string()),
        ("date", pa.string()),
        ("hour", pa.string()),
    ]
)


def fact_table_name(kind: str) -> str:
    return {"audit_event": "audit_events", "generation_event": "generation_events", "test_result": "test_results"}[kind]


def fact_schema(kind: str) -> pa.Schema:
    fields = list(COMMON_SCHEMA)
    fields += [pa.field(column.name, ARROW_TYPES[column.type]) for column in KIND_COLUMNS[kind]]
    return pa.schema(fields)
