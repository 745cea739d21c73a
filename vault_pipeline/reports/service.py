"""Compliance reports generated, stored with versions, signed into the ledger, listed and exported.

``ReportService`` is what the API, the CLI and the Dagster schedules share. A request is checked
first (period, sections, formats, record ids: ``ReportRequestError`` names what to fix), then
every section is built and every format rendered in memory; only when all of that worked is
anything written, so a failing source stores nothing. Then, under a lease per period (so two
generations of one period get distinct versions): each form is stored content-addressed under
``reports/_vault/compliance/{period}/{sha256}.{ext}`` (immutable: Object Lock where the bucket has it,
SSE as every object on S3), a signed ``compliance_report`` entry on the vault chain names the
report's digest and every object's checksum, and the artifact index entry makes it visible.
Generating a period again makes version n+1; nothing is overwritten. Reads re-hash what they
serve: a stored form that no longer matches its checksum is never served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from vault_pipeline.core.identity import is_log_id
from vault_pipeline.core.ledger import GENESIS_HASH, KIND_COMPLIANCE_REPORT, VAULT_CHAIN, LedgerEntry, utc_now
from vault_pipeline.core.report_model import FORMATS, MEDIA_TYPES, ComplianceReport
from vault_pipeline.core.windows import iso_z
from vault_pipeline.defs.integrity.ledger_stage import append_entry, ledger_retention_days
from vault_pipeline.reports.audit_trail import VAULT_PARTITIONS
from vault_pipeline.reports.render_csv import render_csv
from vault_pipeline.reports.render_html import render_html
from vault_pipeline.reports.render_pdf import render_pdf
from vault_pipeline.reports.sections import ReportContext, ReportSourceError, build_sections
from vault_pipeline.storage.catalog import Artifact, Catalog
from vault_pipeline.storage.leases import held_lease
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore

log = logging.getLogger(__name__)

ARTIFACT_KIND = "compliance_report"
PRESETS = ("daily", "weekly", "monthly")
MAX_RECORD_IDS = 1000
RENDERERS: dict[str, Callable[[ComplianceReport, str], bytes]] = {
    "html": render_html, "pdf": render_pdf, "csv": lambda report, digest: render_csv(report, digest),
}
_LEASE_TTL_S, _LEASE_WAIT_S = 60.0, 120.0


class ReportRequestError(ValueError):
    """A request the service refuses; ``parameter`` and the message say what to fix."""

    def __init__(self, code: str, parameter: str, msg: str) -> None:
        super().__init__(msg)
        self.code, self.parameter, self.msg = code, parameter, msg


class ReportNotFoundError(LookupError):
    pass


class ReportNotReadyError(RuntimeError):
    pass


class ReportAlteredError(RuntimeError):
    """A stored form no longer matches the checksum its index and ledger entry name."""


def preset_period(preset: str, now: datetime) -> tuple[datetime, datetime]:
    """The last complete day, ISO week (Monday to Monday) or calendar month before ``now``, UTC."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if preset == "daily":
        return today - timedelta(days=1), today
    if preset == "weekly":
        monday = today - timedelta(days=today.weekday())
        return monday - timedelta(days=7), monday
    if preset == "monthly":
        first = today.replace(day=1)
        return (first - timedelta(days=1)).replace(day=1), first
    raise ReportRequestError("unknown_preset", "preset", f"preset must be one of {', '.join(PRESETS)}")


@dataclass(frozen=True)
class ReportRequest:
    start: datetime
    end: datetime
    sections: tuple[str, ...]
    formats: tuple[str, ...]
    requested_by: str
    record_ids: tuple[str, ...] = ()
    preset: str | None = None

    @property
    def period_key(self) -> str:
        return f"{iso_z(self.start)}/{iso_z(self.end)}"


def check_request(config, *, start: datetime | None, end: datetime | None, preset: str | None,
                  sections: Sequence[str] | None, formats: Sequence[str] | None, requested_by: str,
                  record_ids: Sequence[str] | None = None, now: datetime) -> ReportRequest:
    """The request made whole (defaults from ``reports:`` in vault.yaml), or ReportRequestError."""
    if preset is not None:
        if start is not None or end is not None:
            raise ReportRequestError("period_with_preset", "preset", "give a period or a preset, not both")
        start, end = preset_period(preset, now)
    if start is None or end is None:
        raise ReportRequestError("missing_period", "period", "give period.start and period.end, or a preset "
                                 f"({', '.join(PRESETS)})")
    if start.tzinfo is None or end.tzinfo is None:
        raise ReportRequestError("invalid_period", "period", "period times need a UTC offset, e.g. 2026-11-01T00:00:00Z")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise ReportRequestError("invalid_period", "period.end", "period.end must be after period.start")
    if end > now + timedelta(minutes=1):
        raise ReportRequestError("period_not_ended", "period.end",
                                 f"period.end {iso_z(end)} is in the future: a report covers time that has passed")
    reports = config.reports
    if end - start > timedelta(days=reports.max_period_days):
        raise ReportRequestError("period_too_long", "period",
                                 f"a report covers at most {reports.max_period_days} days (reports.max_period_days)")
    retention = max([config.lake.retention_days, *(t.retention_days for t in config.lake.tables.values()
                                                  if t.retention_days)])
    oldest = now.astimezone(UTC) - timedelta(days=retention)
    if start < oldest.replace(hour=0, minute=0, second=0, microsecond=0):
        raise ReportRequestError("period_beyond_retention", "period.start",
                                 f"the lake keeps {retention} days (lake.retention_days): start on or after "
                                 f"{oldest.strftime('%Y-%m-%d')}, or the usage figures would be missing rows")
    known = reports.section_names()
    chosen = list(dict.fromkeys(sections)) if sections else list(reports.sections)
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise ReportRequestError("unknown_section", "sections",
                                 f"unknown section(s) {', '.join(map(str, unknown))}; valid: {', '.join(known)}")
    chosen_formats = list(dict.fromkeys(formats)) if formats else list(reports.formats)
    bad = [f for f in chosen_formats if f not in FORMATS]
    if bad or not chosen_formats:
        raise ReportRequestError("unknown_format", "formats",
                                 f"unknown format(s) {', '.join(map(str, bad))}; valid: {', '.join(FORMATS)}")
    ids = tuple(dict.fromkeys(record_ids or ()))
    if len(ids) > MAX_RECORD_IDS:
        raise ReportRequestError("too_many_record_ids", "record_ids", f"at most {MAX_RECORD_IDS} record ids")
    malformed = [i for i in ids if not is_log_id(i)]
    if malformed:
        raise ReportRequestError("invalid_record_id", "record_ids",
                                 f"not log ids: {', '.join(map(str, malformed[:5]))} (expected log_<32 hex>)")
    return ReportRequest(start, end, tuple(chosen), tuple(chosen_formats), requested_by, ids, preset)


@dataclass
class ReportJob:
    report_id: str
    status: str  # pending | processing | completed | failed
    request: ReportRequest
    error: str | None = None
    created_at: str = field(default_factory=utc_now)


def new_report_id() -> str:
    return f"rpt_{uuid.uuid4().hex[:12]}{secrets.token_hex(4)}"


def _compact(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


class ReportService:
    def __init__(self, *, catalog: Catalog, store: ObjectStore, lake, signer, config: Callable[[], Any],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), workers: int = 1,
                 max_queue: int = 8) -> None:
        self.catalog, self.store, self.lake, self.signer, self.config, self.clock = (
            catalog, store, lake, signer, config, clock)
        self.max_queue = max_queue
        self._jobs: dict[str, ReportJob] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vault-report")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- requests ------------------------------------------------------------------------
    def check(self, *, start=None, end=None, preset=None, sections=None, formats=None, requested_by: str,
              record_ids=None) -> ReportRequest:
        return check_request(self.config(), start=start, end=end, preset=preset, sections=sections, formats=formats,
                             requested_by=requested_by, record_ids=record_ids, now=self.clock())

    def create(self, *, start=None, end=None, preset=None, sections=None, formats=None, requested_by: str,
               record_ids=None) -> ReportJob:
        """Check the request and queue it; the job's status moves pending -> processing ->
        completed | failed. ``ReportRequestError`` at once for a bad request; RuntimeError when
        ``max_queue`` reports are waiting."""
        request = self.check(start=start, end=end, preset=preset, sections=sections, formats=formats,
                             requested_by=requested_by, record_ids=record_ids)
        with self._lock:
            waiting = sum(1 for j in self._jobs.values() if j.status in ("pending", "processing"))
            if waiting >= self.max_queue:
                raise RuntimeError(f"{waiting} reports are being generated; try again shortly")
            job = ReportJob(new_report_id(), "pending", request)
            self._jobs[job.report_id] = job
        self._pool.submit(self._run, job)
        return job

    def _run(self, job: ReportJob) -> None:
        job.status = "processing"
        try:
            self.generate(job.request, report_id=job.report_id)
            job.status = "completed"
        except Exception as exc:  # noqa: BLE001 - the job records why it failed
            job.status, job.error = "failed", _error_text(exc)
            log.warning("report %s failed: %s", job.report_id, job.error)

    # -- generation ----------------------------------------------------------------------
    def generate(self, request: ReportRequest, *, report_id: str | None = None) -> dict[str, Any]:
        """Build, render, store, sign and index one report; its index entry (``describe``)."""
        report_id = report_id or new_report_id()
        config = self.config()
        now = self.clock()
        ctx = ReportContext(catalog=self.catalog, store=self.store, lake=self.lake, verifier=self.signer.verifier(),
                            config=config, start=request.start, end=request.end, now=now,
                            record_ids=list(request.record_ids) or None, lineage_sample=config.reports.lineage_sample)
        sections = build_sections(ctx, list(request.sections))  # ReportSourceError: nothing stored yet
        with self._period_lease(request.period_key):
            version = self._next_version(request.period_key)
            report = ComplianceReport(
                report_id=report_id, version=version, period_start=iso_z(request.start),
                period_end=iso_z(request.end), generated_at=iso_z(now), sections=sections,
                data_lineage=ctx.data_lineage, audit_trail=ctx.audit_events,
                sources={**ctx.sources, "requested_by": request.requested_by, "preset": request.preset,
                         "sections": list(request.sections)},
            )
            document = report.canonical_bytes()
            digest = "sha256:" + hashlib.sha256(document).hexdigest()
            forms = {"json": document} | {fmt: RENDERERS[fmt](report, digest) for fmt in request.formats}
            return self._store(report, digest, forms, request)

    def _store(self, report: ComplianceReport, digest: str, forms: dict[str, bytes],
               request: ReportRequest) -> dict[str, Any]:
        prefix = f"reports/{VAULT_CHAIN}/compliance/{_compact(request.start)}-{_compact(request.end)}"
        stored: dict[str, dict[str, Any]] = {}
        for fmt, data in forms.items():
            hexdigest = hashlib.sha256(data).hexdigest()
            put = self.store.put(f"{prefix}/{hexdigest}.{fmt}", data, retain_days=ledger_retention_days(),
                                 known_checksum=f"sha256:{hexdigest}")
            stored[fmt] = {"key": put.key, "checksum": put.checksum, "size": put.size,
                           "media_type": MEDIA_TYPES.get(fmt, "application/json")}
        body = {"report_id": report.report_id, "version": report.version, "digest": digest,
                "period_start": report.period_start, "period_end": report.period_end,
                "sections": list(request.sections), "formats": sorted(stored), "requested_by": request.requested_by}
        draft = LedgerEntry(provider=VAULT_CHAIN, partition=VAULT_PARTITIONS[KIND_COMPLIANCE_REPORT], sequence=1,
                            previous_hash=GENESIS_HASH, created_at=utc_now(), run_id=report.report_id,
                            kind=KIND_COMPLIANCE_REPORT, objects=tuple((v["key"], v["checksum"]) for v in stored.values()),
                            body=body)
        entry = append_entry(store=self.store, catalog=self.catalog, signer=self.signer, draft=draft)
        metadata = body | {"status": "completed", "generated_at": report.generated_at, "forms": stored,
                           "ledger": {"provider": entry.provider, "sequence": entry.sequence,
                                      "entry_hash": entry.entry_hash}}
        upstream = [f"lake:{table}@{version}" for table, version in
                    sorted(report.sources.get("lake_versions", {}).items()) if version is not None]
        self.catalog.put_artifacts([Artifact(
            f"{ARTIFACT_KIND}:{report.report_id}", ARTIFACT_KIND, VAULT_CHAIN, request.period_key,
            stored["json"]["key"], stored["json"]["checksum"], stored["json"]["size"], report.report_id,
            report.generated_at, upstream, metadata)])
        return metadata

    def _next_version(self, period_key: str) -> int:
        versions = [int(a.metadata.get("version") or 0) for a in self._artifacts(partition=period_key)]
        return max(versions, default=0) + 1

    def _period_lease(self, period_key: str):
        def busy(holder: str | None) -> RuntimeError:
            return RuntimeError(f"another generation of the period {period_key} ({holder or 'unknown'}) held its "
                                f"lease for over {_LEASE_WAIT_S:g}s; nothing was stored: try again")

        return held_lease(self.catalog, f"report:{period_key}", f"report-{uuid.uuid4().hex[:12]}",
                          ttl_s=_LEASE_TTL_S, wait_s=_LEASE_WAIT_S, busy=busy)

    # -- reading -------------------------------------------------------------------------
    def _artifacts(self, *, partition: str | None = None) -> list[Artifact]:
        found, offset = [], 0
        while True:
            page = self.catalog.search_artifacts(provider=VAULT_CHAIN, kind=ARTIFACT_KIND, partition=partition,
                                                 limit=1000, offset=offset)
            found += page
            offset += len(page)
            if len(page) < 1000:
                return found

    def _artifact(self, report_id: str) -> Artifact | None:
        return next((a for a in self._artifacts() if a.metadata.get("report_id") == report_id), None)

    def list(self, *, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Reports newest first (queued and failed ones of this process included)."""
        done = [describe(a) for a in self._artifacts()]
        indexed = {d["report_id"] for d in done}
        with self._lock:
            live = [self._job_view(j) for j in self._jobs.values() if j.report_id not in indexed]
        # Newest first; the vault chain's sequence orders reports generated within one second.
        items = sorted(done + live, key=lambda d: (d.get("generated_at") or d.get("created_at") or "",
                                                   (d.get("ledger") or {}).get("sequence", 1 << 62)), reverse=True)
        return items[offset:offset + limit], len(items)

    def _job_view(self, job: ReportJob) -> dict[str, Any]:
        return {"report_id": job.report_id, "status": job.status, "error": job.error, "created_at": job.created_at,
                "period_start": iso_z(job.request.start), "period_end": iso_z(job.request.end),
                "sections": list(job.request.sections), "formats": list(job.request.formats),
                "requested_by": job.request.requested_by, "version": None, "digest": None, "generated_at": None}

    def status(self, report_id: str) -> dict[str, Any]:
        artifact = self._artifact(report_id)
        if artifact is not None:
            return describe(artifact)
        with self._lock:
            job = self._jobs.get(report_id)
        if job is None:
            raise ReportNotFoundError(report_id)
        return self._job_view(job)

    def get(self, report_id: str) -> dict[str, Any]:
        """The report (seed 002's ComplianceReport) with its status, version, digest and ledger entry."""
        state = self.status(report_id)
        if state["status"] != "completed":
            return state
        data, _ = self._read(report_id, "json", state)
        return json.loads(data) | {key: state[key] for key in ("status", "digest", "formats", "ledger", "requested_by")}

    def export(self, report_id: str, fmt: str) -> tuple[bytes, str, str]:
        """(bytes, media type, checksum) of one stored form, re-hashed before it is served."""
        data, checksum = self._read(report_id, fmt)
        return data, MEDIA_TYPES.get(fmt, "application/json"), checksum

    def _read(self, report_id: str, fmt: str, state: dict[str, Any] | None = None) -> tuple[bytes, str]:
        state = state or self.status(report_id)
        if state["status"] != "completed":
            raise ReportNotReadyError(f"report {report_id} is {state['status']}")
        form = state["forms_detail"].get(fmt)
        if form is None:
            raise ReportRequestError("format_not_generated", "format",
                                     f"report {report_id} was generated as {', '.join(state['formats'])}")
        try:
            data = self.store.get(form["key"])
        except ObjectMissingError:
            raise ReportAlteredError(f"the stored {fmt} of report {report_id} ({form['key']}) is gone") from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != form["checksum"]:
            raise ReportAlteredError(f"the stored {fmt} of report {report_id} no longer matches its checksum")
        return data, form["checksum"]


def describe(artifact: Artifact) -> dict[str, Any]:
    m = artifact.metadata
    forms = m.get("forms", {})
    return {"report_id": m.get("report_id"), "status": m.get("status", "completed"), "error": None,
            "version": m.get("version"), "digest": m.get("digest"), "period_start": m.get("period_start"),
            "period_end": m.get("period_end"), "generated_at": m.get("generated_at"), "created_at": artifact.created_at,
            "sections": m.get("sections", []), "formats": sorted(f for f in forms if f != "json"),
            "requested_by": m.get("requested_by"), "ledger": m.get("ledger"),
            "forms_detail": forms}


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ReportSourceError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
