"""Request and response bodies of the HTTP API, validated by pydantic.

Bodies are strict (unknown fields, wrong types and naive timestamps are refused with 422), so
a client learns exactly what to fix instead of having a guess made for it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, field_validator


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TimeRange(_Body):
    start: AwareDatetime = Field(description="inclusive, ISO-8601 with offset, e.g. 2026-01-01T00:00:00Z")
    end: AwareDatetime = Field(description="exclusive")

    model_config = ConfigDict(extra="forbid", strict=False)  # datetimes arrive as JSON strings

    @field_validator("start", "end", mode="before")
    @classmethod
    def _iso_text_only(cls, value: object) -> object:
        # Lax mode would read a number as Unix seconds; the contract is ISO-8601 text.
        if not isinstance(value, str):
            raise ValueError("must be an ISO-8601 string with a UTC offset, e.g. 2026-01-01T00:00:00Z")
        return value


class IngestRequest(_Body):
    provider_id: StrictStr = Field(min_length=1, max_length=64)
    range: TimeRange
    priority: Literal["low", "normal", "high"] = "normal"


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
    provider_type: Literal["rest"]
    api_key: StrictStr = Field(min_length=1, max_length=4096)
    provider_id: StrictStr | None = Field(default=None, max_length=64)
    url: StrictStr | None = Field(default=None, max_length=2048)


class ValidateResult(BaseModel):
    connection: Literal["secure", "insecure"]
    latency_ms: int


class ErrorBody(BaseModel):
    error: str
    detail: object | None = None
