"""The kinds of record the vault understands and the typed columns each one yields.

A kind says which fields of a provider's record are analysed: their JSON path, their declared
type, and the column name in validation frames and in the Delta fact table. Input validation
sees the values as the provider sent them (so type errors are visible); normalisation
coerces them into the declared Arrow type. A provider may read a column from another path of
its own records (``fields`` in vault.yaml); ``kind_columns`` applies that mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import pyarrow as pa


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    path: str  # dotted path in the record
    type: str  # "string" | "int" | "float" | "bool" | "list" (a JSON array of strings)


ARROW_TYPES = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
               "list": pa.list_(pa.string())}

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
        Column("latency_ms", "latency_ms", "float"),
        Column("success", "success", "bool"),
        Column("prompt_tokens", "tokens.prompt", "int"),
        Column("completion_tokens", "tokens.completion", "int"),
        Column("total_tokens", "tokens.total", "int"),
        Column("cost_usd", "cost_usd", "float"),
        Column("error_message", "error.message", "string"),
        # The analytics' GenerationEvent (seed 002): sizes in characters, the error's code, the
        # jailbreak techniques applied to the prompt, and the tokens billed.
        Column("prompt_length", "prompt_length", "int"),
        Column("response_length", "response_length", "int"),
        Column("error_code", "error_code", "string"),
        Column("techniques_applied", "techniques_applied", "list"),
        Column("tokens_used", "tokens_used", "int"),
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
        Column("commit", "ci.commit", "string"),  # the code under test: a test that passes and fails on one commit is flaky
    ),
    # One automated jailbreak campaign against a target model (seed 002's fact_jailbreak_tests).
    "jailbreak_test": (
        Column("test_id", "test_id", "string"),
        Column("test_type", "test_type", "string"),  # autodan | gptfuzz
        Column("target_provider", "target.provider", "string"),
        Column("target_model", "target.model", "string"),
        Column("iterations", "iterations", "int"),
        Column("successful_mutations", "successful_mutations", "int"),
        Column("asr_rate", "asr_rate", "float"),  # attack success rate, successful_mutations / iterations
        Column("best_prompt", "best_prompt", "string"),
    ),
    # One execution of a QA agent, pushed by the agent itself (seed 000's execute_with_validation):
    # who ran, how it ended, and the test counts its output reports.
    "agent_result": (
        Column("agent_name", "agent_name", "string"),
        Column("status", "status", "string"),  # success | failure | error | partial
        Column("test_count", "output.test_count", "int"),
        Column("passed", "output.passed", "int"),
        Column("failed", "output.failed", "int"),
        Column("duration_ms", "duration_ms", "float"),
        Column("error_message", "error.message", "string"),
    ),
}

FACT_TABLES = {"audit_event": "audit_events", "generation_event": "generation_events", "test_result": "test_results",
               "jailbreak_test": "jailbreak_tests", "agent_result": "agent_results"}

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
    return FACT_TABLES[kind]


def kind_columns(kind: str, fields: Mapping[str, str] | None = None) -> tuple[Column, ...]:
    """The kind's columns, with the paths a provider maps (``fields``: column -> dotted path)."""
    columns = KIND_COLUMNS[kind]
    if not fields:
        return columns
    unknown = sorted(set(fields) - {column.name for column in columns})
    if unknown:
        raise ValueError(f"{kind} has no columns {unknown}")
    return tuple(replace(column, path=fields[column.name]) if column.name in fields else column for column in columns)


def fact_schema(kind: str) -> pa.Schema:
    fields = list(COMMON_SCHEMA)
    fields += [pa.field(column.name, ARROW_TYPES[column.type]) for column in KIND_COLUMNS[kind]]
    return pa.schema(fields)
