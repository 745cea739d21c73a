"""Request and response bodies of the HTTP API, validated by pydantic.

Bodies are strict (unknown fields, wrong types and naive timestamps are refused with 422), so
a client learns exactly what to fix instead of having a guess made for it. The same models
make the OpenAPI document, so every constraint that JSON Schema can say is said there (and
what it cannot, such as "end after start", is said in the descriptions).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictStr

# RFC 3339 date-time, which is what OpenAPI's "format: date-time" means: seconds and an offset
# are required. pydantic alone is laxer (it would take "2026-01-01 00:00Z", and read a number,
# or a string of digits such as a query parameter, as Unix seconds).
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
TIMESTAMP_HINT = "an RFC 3339 timestamp with seconds and a UTC offset, e.g. 2026-01-01T00:00:00Z"


def _rfc3339_text(value: object) -> object:
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        raise ValueError(f"must be {TIMESTAMP_HINT}")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TimeRange(_Body):
    """The half-open range [start, end): every hour it touches is ingested."""

    start: Timestamp = Field(description=f"inclusive; {TIMESTAMP_HINT}")
    end: Timestamp = Field(description="exclusive; must be after start, at most VAULT_API_MAX_RANGE_HOURS (168) "
                                       "hours after it, and no later than the end of the last complete hour")

    model_config = ConfigDict(extra="forbid", strict=False)  # datetimes arrive as JSON strings


class IngestRequest(_Body):
    """Rules JSON Schema cannot express are answered with 422 and their own error code:
    ``invalid_range`` (end not after start), ``range_too_large``, ``range_too_early`` (before
    the vault's first hour) and ``range_not_complete`` (an hour that has
    not ended yet); an unknown provider is 404 ``unknown_provider``."""

    provider_id: StrictStr = Field(min_length=1, max_length=64, description="a provider configured in vault.yaml")
    range: TimeRange
    priority: Literal["low", "normal", "high"] = "normal"

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "provider_id": "demo_cloudtrail", "priority": "normal",
        "range": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z"},
    }]})


class IngestAccepted(BaseModel):
    job_id: str
    status: Literal["queued", "processing"]
    estimated_completion_ms: int


class JobMetrics(BaseModel):
    records_synced: int
    bytes_written: int


class JobArtifacts(BaseModel):
    s3_path: str


class JobRun(BaseModel):
    run_id: str
    partition: str
    status: str


class JobStatus(BaseModel):
    job_id: str
    state: Literal["pending", "processing", "completed", "failed"]
    metrics: JobMetrics
    artifacts: JobArtifacts
    runs: list[JobRun]
    error: str | None = None


class LogItem(BaseModel):
    id: str
    checksum: str
    timestamp: str | None
    provider_id: str
    partition: str
    size: int
    status: str


class PageMeta(BaseModel):
    total_count: int
    has_more: bool
    limit: int
    offset: int
    next_cursor: str | None = None


class LogPage(BaseModel):
    data: list[LogItem]
    meta: PageMeta


class ValidateRequest(_Body):
    """Check credentials against a configured provider (``provider_id``) or a ``url`` on a
    configured or allowlisted origin; one of the two is required."""

    provider_type: Literal["rest"]
    api_key: StrictStr = Field(min_length=1, max_length=4096)
    provider_id: StrictStr | None = Field(default=None, min_length=1, max_length=64)
    url: StrictStr | None = Field(default=None, min_length=1, max_length=2048)


class ValidateResult(BaseModel):
    connection: Literal["secure", "insecure"]
    latency_ms: int


class FieldProblem(BaseModel):
    """One reason a request was refused as malformed: where (``["body", "range", "start"]``) and what."""

    loc: list[str | int]
    msg: str


class ErrorBody(BaseModel):
    """Every error answer of the API (and the only 4xx/5xx body it sends)."""

    error: str = Field(description="machine-readable code, e.g. invalid_request, unknown_provider, queue_full")
    detail: str | list[FieldProblem] | dict[str, Any] | None = Field(
        default=None, description="what to fix: a sentence, or for invalid_request the list of problems found")


class CheckStatus(BaseModel):
    status: Literal["ok", "unreachable"]
    latency_ms: float | None = None
    detail: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, CheckStatus]


class InclusionProof(BaseModel):
    """Verifiable with hashlib and the ledger's public key alone (see the README)."""

    model_config = ConfigDict(extra="allow")
    log_id: str
    provider: str
    partition: str
    sequence: int
    leaf_index: int
    tree_size: int
    record_checksum: str
    leaf_hash: str
    audit_path: list[str]
    merkle_root: str
    entry: dict[str, Any] = Field(description="the signed ledger entry the proof leads to")


def error_responses(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` documenting each status code with the ErrorBody shape; a 429
    also documents its Retry-After header."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status, description in descriptions.items():
        responses[status] = {"model": ErrorBody, "description": description}
        if status == 429:
            responses[status]["headers"] = {"Retry-After": {
                "description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 1}}}
    return responses


def utc_sort_key(value: datetime, rest: str = "-%m-%dT%H:%M:%S.%fZ") -> str:
    """``value`` in UTC as sortable text: four-digit year, then ``rest`` (strftime).

    The year is formatted by hand because strftime drops leading zeros on Linux (year 900
    would sort after 2026). A valid timestamp can lie outside what datetime holds in UTC
    (0001-01-01T00:00:00+01:00, 9999-12-31T23:00:00-05:00): it becomes text below, or above,
    every real one, so range comparisons stay right instead of failing.
    """
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        return "0000" if value.year == 1 else "9999-99"
    return f"{moment.year:04d}{moment.strftime(rest)}"
