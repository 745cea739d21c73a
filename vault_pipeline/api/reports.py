"""``/api/v1/analytics/reports*``: compliance reports on demand, listed, read and exported.

The HTTP face of ``reports.service.ReportService``: a POST checks the request at once (422 with
the parameter and what to fix) and queues the report (202 with its id); the id's status moves
pending -> processing -> completed | failed. Reads serve the stored bytes only after re-hashing
them (409 ``checksum_mismatch`` otherwise). Only ``audit`` (and ``admin``) keys create or read
reports, and the access log records every call like any other.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from vault_pipeline.api.schemas import Timestamp, error_responses
from vault_pipeline.core.report_model import FORMATS
from vault_pipeline.reports.service import (
    PRESETS,
    ReportAlteredError,
    ReportNotFoundError,
    ReportNotReadyError,
    ReportRequestError,
)

_REPORT_ID = r"^rpt_[0-9a-f]{20}$"


class Period(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: Timestamp
    end: Timestamp


class _ReportOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sections: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]] | None = Field(
        default=None, min_length=1, max_length=64,
        description="default: reports.sections of vault.yaml (all built-in ones); custom sections by name")
    formats: list[Literal[FORMATS]] | None = Field(default=None, min_length=1, max_length=3)  # type: ignore[valid-type]
    record_ids: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=1000, description="trace these records in data_lineage (default: a sample)")


class PeriodReportRequest(_ReportOptions):
    period: Period


class PresetReportRequest(_ReportOptions):
    preset: Literal[PRESETS]  # type: ignore[valid-type]  # the last complete day, week (Mon-Mon) or month, UTC


class ReportAccepted(BaseModel):
    report_id: str
    status: str


class ReportSummary(BaseModel):
    report_id: str
    status: str
    version: int | None
    digest: str | None
    period_start: str
    period_end: str
    generated_at: str | None
    sections: list[str]
    formats: list[str]
    requested_by: str | None
    error: str | None = None


class ReportPage(BaseModel):
    data: list[ReportSummary]
    meta: dict[str, Any]


_SUMMARY_FIELDS = tuple(ReportSummary.model_fields)


def _summary(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item.get(k) for k in _SUMMARY_FIELDS}


def register_report_routes(app, api, requires, api_error: type[Exception]) -> None:
    """The report endpoints on ``create_app``'s conventions; 503 when the API has no report service."""

    def service():
        if api.reports is None:
            raise api_error(503, "reports_unavailable", "this API was started without the report service")
        return api.reports

    @app.post("/api/v1/analytics/reports", status_code=202, response_model=ReportAccepted,
              summary="generate a compliance report (queued)",
              responses=error_responses({
                  422: "invalid_request, invalid_period, period_not_ended, period_too_long, period_beyond_retention, "
                       "unknown_section, unknown_format, invalid_record_id (detail names the parameter)",
                  429: "queue_full: too many reports are being generated",
                  503: "reports_unavailable"}))
    def create_report(body: PeriodReportRequest | PresetReportRequest,
                      principal=requires("audit")) -> ReportAccepted:
        reports = service()
        try:
            period = getattr(body, "period", None)
            job = reports.create(start=period.start if period else None, end=period.end if period else None,
                                 preset=getattr(body, "preset", None),
                                 sections=body.sections, formats=body.formats, record_ids=body.record_ids,
                                 requested_by=principal.name)
        except ReportRequestError as exc:
            raise api_error(422, exc.code, {"parameter": exc.parameter, "msg": exc.msg}) from None
        except RuntimeError as exc:
            raise api_error(429, "queue_full", str(exc), {"Retry-After": "10"}) from None
        return ReportAccepted(report_id=job.report_id, status=job.status)

    @app.get("/api/v1/analytics/reports", response_model=ReportPage, summary="compliance reports, newest first",
             responses=error_responses({503: "reports_unavailable"}))
    def list_reports(limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=1_000_000),
                     _p=requires("audit")) -> ReportPage:
        items, total = service().list(limit=limit, offset=offset)
        return ReportPage(data=[_summary(i) for i in items],
                          meta={"total_count": total, "has_more": offset + len(items) < total, "limit": limit,
                                "offset": offset})

    @app.get("/api/v1/analytics/reports/{report_id}", summary="one compliance report (seed 002's ComplianceReport)",
             responses={200: {"description": "the report with its status, version, digest and ledger entry; a report "
                                             "not completed yet has its status (and error) only",
                              "content": {"application/json": {"schema": {"type": "object"}}}},
                        **error_responses({404: "report_not_found",
                                           409: "checksum_mismatch: the stored report no longer matches its digest",
                                           503: "reports_unavailable"})})
    def get_report(report_id: str = Path(pattern=_REPORT_ID), _p=requires("audit")) -> JSONResponse:
        reports = service()
        try:
            return JSONResponse(reports.get(report_id))
        except ReportNotFoundError:
            raise api_error(404, "report_not_found", f"no report {report_id}") from None
        except ReportAlteredError as exc:
            raise api_error(409, "checksum_mismatch", str(exc)) from None

    @app.get("/api/v1/analytics/reports/{report_id}/export", summary="a report's stored bytes in one format",
             responses={200: {"description": "the stored bytes, exactly",
                              "content": {"application/pdf": {}, "text/csv": {}, "text/html": {}},
                              "headers": {"X-Vault-Checksum": {"description": "sha256:<hex> of the bytes",
                                                               "schema": {"type": "string"}}}},
                        **error_responses({404: "report_not_found or format_not_generated",
                                           409: "report_not_ready (pending, processing or failed), or "
                                                "checksum_mismatch (the stored bytes changed; never served)",
                                           503: "reports_unavailable"})})
    def export_report(report_id: str = Path(pattern=_REPORT_ID),
                      format: Literal[FORMATS] = Query(),  # type: ignore[valid-type]  # noqa: A002 - the contract's name
                      _p=requires("audit")) -> Response:
        reports = service()
        try:
            data, media_type, checksum = reports.export(report_id, format)
        except ReportNotFoundError:
            raise api_error(404, "report_not_found", f"no report {report_id}") from None
        except ReportNotReadyError as exc:
            raise api_error(409, "report_not_ready", str(exc)) from None
        except ReportRequestError as exc:
            raise api_error(404, exc.code, exc.msg) from None
        except ReportAlteredError as exc:
            raise api_error(409, "checksum_mismatch", str(exc)) from None
        return Response(content=data, media_type=media_type, headers={
            "X-Vault-Checksum": checksum,
            "Content-Disposition": f'attachment; filename="{report_id}.{format}"'})


__all__ = ["register_report_routes"]
