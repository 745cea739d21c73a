"""Compliance reports from a real vault: every section from its own records, stored content-addressed
with versions, signed into the ledger, exported byte-exact; bad requests refused naming what to fix;
a failing source stores nothing."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from vault_pipeline.core.ledger import KIND_COMPLIANCE_REPORT, VAULT_CHAIN, LedgerEntry
from vault_pipeline.core.report_model import SECTION_NAMES
from vault_pipeline.providers.config import load_config
from vault_pipeline.reports.service import ReportRequestError, ReportService, preset_period

LLM = {"type": "simulator", "kind": "generation_event", "records_per_hour": 60, "seed": 3, "lookback_hours": 0,
       "invalid_fraction": 0.0}
HOURS = ("2026-11-20-03:00", "2026-11-20-04:00")
START, END = datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def _load_llm_hours(harness):
    harness.write_providers({"llm": LLM})
    for hour in HOURS:
        assert harness.run(hour, "llm").success


@pytest.fixture
def loaded(prebuilt):
    return prebuilt(_load_llm_hours)


def _service(vault, clock=lambda: NOW) -> ReportService:
    return ReportService(catalog=vault.catalog, store=vault.store, lake=vault.lake, signer=vault.resource.ledger_signer(),
                         config=lambda: load_config(vault.config_path), clock=clock)


def _queued_and_finished(service: ReportService) -> dict:
    """Queue a report of the period as the API does, wait for the worker, return its status."""
    try:
        job = service.create(start=START, end=END, requested_by="a")
        service._pool.shutdown(wait=True)
        return service.status(job.report_id)
    finally:
        service.close()


def test_a_report_holds_every_section_from_the_vaults_records(loaded):
    service = _service(loaded)
    try:
        request = service.check(start=START, end=END, requested_by="auditor")
        described = service.generate(request)
        report = service.get(described["report_id"])
    finally:
        service.close()
    assert [s["name"] for s in report["sections"]] == list(SECTION_NAMES)
    usage = next(s for s in report["sections"] if s["name"] == "usage")
    rows = loaded.lake.count("generation_events")
    assert usage["summary"]["requests"] == rows > 0
    lineage = next(s for s in report["sections"] if s["name"] == "data_lineage")
    assert lineage["summary"]["records traced"] > 0 and lineage["summary"]["with a problem"] == 0
    assert report["data_lineage"] and all(r["ok"] for r in report["data_lineage"])
    quality = next(s for s in report["sections"] if s["name"] == "data_quality")
    assert quality["summary"]["partitions validated"] >= 2 * len(HOURS)

    # stored content-addressed, signed, and served byte-exact
    for fmt, form in described["forms"].items():
        data = loaded.store.get(form["key"])
        assert form["key"].endswith(f"{hashlib.sha256(data).hexdigest()}.{fmt}")
        assert form["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert described["digest"] == described["forms"]["json"]["checksum"]
    entries = [LedgerEntry.from_json(t) for _, t in loaded.catalog.ledger_entries(VAULT_CHAIN)]
    signed = [e for e in entries if e.kind == KIND_COMPLIANCE_REPORT]
    assert [e.body["digest"] for e in signed] == [described["digest"]]
    assert dict(signed[0].objects) == {f["key"]: f["checksum"] for f in described["forms"].values()}
    pdf, media, checksum = _service(loaded).export(described["report_id"], "pdf")
    assert pdf.startswith(b"%PDF") and media == "application/pdf" and checksum == described["forms"]["pdf"]["checksum"]
    assert described["digest"].encode() in _pdf_text(pdf)


def _pdf_text(pdf: bytes) -> bytes:
    import io

    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).encode()


def test_generating_a_period_again_makes_a_new_version_and_keeps_the_first(loaded):
    service = _service(loaded)
    try:
        first = service.generate(service.check(start=START, end=END, requested_by="a", sections=["usage"]))
        second = service.generate(service.check(start=START, end=END, requested_by="b", sections=["usage"]))
        listed, total = service.list()
    finally:
        service.close()
    assert (first["version"], second["version"]) == (1, 2)
    assert first["forms"]["json"]["key"] != second["forms"]["json"]["key"]
    assert loaded.store.exists(first["forms"]["json"]["key"])
    assert total == 2 and [r["report_id"] for r in listed] == [second["report_id"], first["report_id"]]


@pytest.mark.parametrize("kwargs, code, parameter", [
    ({"start": END, "end": START}, "invalid_period", "period.end"),
    ({"start": START, "end": datetime(2027, 1, 1, tzinfo=UTC)}, "period_not_ended", "period.end"),
    ({"start": datetime(2026, 1, 1, tzinfo=UTC), "end": END}, "period_beyond_retention", "period.start"),
    ({"start": START, "end": END, "sections": ["usage", "gossip"]}, "unknown_section", "sections"),
    ({"start": START, "end": END, "formats": ["docx"]}, "unknown_format", "formats"),
    ({"start": START, "end": END, "record_ids": ["nope"]}, "invalid_record_id", "record_ids"),
    ({"preset": "hourly"}, "unknown_preset", "preset"),
    ({"start": START, "end": END, "preset": "daily"}, "period_with_preset", "preset"),
])
def test_bad_requests_name_what_to_fix(loaded, kwargs, code, parameter):
    service = _service(loaded)
    try:
        with pytest.raises(ReportRequestError) as refused:
            service.check(requested_by="a", **kwargs)
    finally:
        service.close()
    assert (refused.value.code, refused.value.parameter) == (code, parameter)
    if code == "unknown_section":
        assert "gossip" in refused.value.msg and "data_lineage" in refused.value.msg


def test_presets_are_the_last_complete_day_week_and_month():
    now = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)  # a Wednesday
    assert preset_period("daily", now) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC))
    assert preset_period("weekly", now) == (datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
    assert preset_period("monthly", now) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


def test_a_failing_source_fails_the_report_and_stores_nothing(loaded, monkeypatch):
    service = _service(loaded)
    before = set(loaded.store.list("reports/_vault/compliance/"))

    def broken(*_args, **_kwargs):
        raise OSError("catalog unreachable")

    monkeypatch.setattr("vault_pipeline.reports.sections.audit_trail", broken)
    state = _queued_and_finished(service)
    assert state["status"] == "failed" and "audit_trail" in state["error"] and "catalog unreachable" in state["error"]
    assert set(loaded.store.list("reports/_vault/compliance/")) == before
    assert not [t for _, t in loaded.catalog.ledger_entries(VAULT_CHAIN) if KIND_COMPLIANCE_REPORT in t]


def test_an_altered_stored_form_is_never_served(loaded):
    from vault_pipeline.reports.service import ReportAlteredError

    service = _service(loaded)
    try:
        described = service.generate(service.check(start=START, end=END, requested_by="a", sections=["usage"]))
        path = loaded.home / "objects" / described["forms"]["csv"]["key"]
        path.chmod(0o644)
        path.write_bytes(path.read_bytes() + b"x")
        with pytest.raises(ReportAlteredError):
            service.export(described["report_id"], "csv")
    finally:
        service.close()


def test_custom_sections_come_from_configuration(loaded):
    text = loaded.config_path.read_text() + json.dumps({"reports": {"custom_sections": {"slow_google": {
        "title": "Google latency", "interval": "hour",
        "metrics": [{"metric": "latency_ms", "aggregation": "p95", "label": "p95 latency"},
                    {"metric": "requests", "aggregation": "count"}]}}}})[1:-1].join(["\n", "\n"])
    loaded.config_path.write_text(text)
    service = _service(loaded)
    try:
        described = service.generate(service.check(start=START, end=END, requested_by="a",
                                                   sections=["usage", "slow_google"]))
        report = service.get(described["report_id"])
    finally:
        service.close()
    section = report["sections"][1]
    assert section["name"] == "slow_google" and section["title"] == "Google latency"
    table = section["tables"][0]
    assert table["columns"] == ["bucket", "p95 latency", "count of requests"] and len(table["rows"]) == 24
    counts = {row[0]: row[2] for row in table["rows"]}
    assert counts["2026-11-20T03"] + counts["2026-11-20T04"] == loaded.lake.count("generation_events")


def test_report_configuration_mistakes_name_the_key(tmp_path):
    from vault_pipeline.api.analytics_queries import AGGREGATIONS, SERIES_METRICS
    from vault_pipeline.providers.config import REPORT_AGGREGATIONS, REPORT_METRICS, ConfigError, parse_config

    assert (REPORT_METRICS, REPORT_AGGREGATIONS) == (SERIES_METRICS, AGGREGATIONS)
    providers = {"llm": LLM}
    for reports, words in (
        ({"custom_sections": {"x": {"title": "X", "metrics": [{"metric": "vibes", "aggregation": "sum"}]}}},
         ["reports.", "custom_sections.x.metrics.0.metric"]),
        ({"custom_sections": {"usage": {"title": "X", "metrics": [{"metric": "requests", "aggregation": "sum"}]}}},
         ["built-in section"]),
        ({"sections": ["usage", "nope"]}, ["nope", "custom_sections"]),
    ):
        with pytest.raises(ConfigError) as refused:
            parse_config({"providers": providers, "reports": reports}, "vault.yaml")
        assert all(word in str(refused.value) for word in words), str(refused.value)


def test_retention_names_the_last_maintenance_and_the_rows_past_retention(loaded):
    from vault_pipeline.reports.sections import ReportContext, build_retention

    loaded.write_providers({"llm": LLM, "llm2": {**LLM, "seed": 4}})
    assert loaded.run(HOURS[0], "llm2").success  # a second file in that hour: compaction has work
    result = loaded.definitions().resolve_job_def("lake_maintenance").execute_in_process(instance=loaded.instance)
    assert result.success
    later = datetime(2027, 2, 25, tzinfo=UTC)  # 97 days on: the loaded rows (2026-11-20) are past the 90 days
    ctx = ReportContext(catalog=loaded.catalog, store=loaded.store, lake=loaded.lake,
                        verifier=loaded.resource.ledger_signer().verifier(), config=load_config(loaded.config_path),
                        start=START, end=END, now=later)
    section = build_retention(ctx)
    rows = {r[0]: dict(zip(section.tables[0].columns, r)) for r in section.tables[0].rows}
    facts = rows["generation_events"]
    assert facts["oldest date"] == "2026-11-20" and facts["rows past retention"] == loaded.lake.count("generation_events")
    assert facts["last optimize"] is not None and facts["last optimize"].startswith("20")
    assert section.summary["rows past retention"] >= facts["rows past retention"] > 0
    assert section.summary["they are deleted at"] == "2027-02-25T03:30:00Z"  # lake.cron's next tick (03:30 UTC)
    assert section.summary["Object Lock"] is False and "local directory" in section.summary["object store"]


def test_a_lake_that_is_gone_fails_the_report_instead_of_reading_as_no_usage(loaded):
    import shutil

    shutil.rmtree(loaded.home / "lake")
    state = _queued_and_finished(_service(loaded))
    assert state["status"] == "failed" and "usage" in state["error"] and "holds no fact table" in state["error"]
    assert not list(loaded.store.list("reports/_vault/compliance/"))  # nothing stored
