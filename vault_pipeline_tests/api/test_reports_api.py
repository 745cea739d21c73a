"""`/api/v1/analytics/reports*`: a report requested over HTTP is generated from the vault's records,
listed, read and exported byte-exact with its checksum; only audit keys may; bad requests are 422
naming the parameter; every read is in the access log."""

from __future__ import annotations

import hashlib
import time

import pytest

LLM = {"llm": {"type": "simulator", "kind": "generation_event", "records_per_hour": 40, "seed": 9, "lookback_hours": 0,
               "invalid_fraction": 0.0}}
BASE = "/api/v1/analytics/reports"
DAY = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}


@pytest.fixture
def service(vault_service_factory):
    service = vault_service_factory(stack="embedded", providers=LLM)
    assert service.harness.run("2026-01-01-03:00", "llm").success
    return service


def _completed(service, report_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        answer = service.client("auditor").request("GET", f"{BASE}/{report_id}")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if body["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_a_requested_report_is_generated_listed_read_and_exported(service):
    auditor = service.client("auditor")
    accepted = auditor.request("POST", BASE, json={"period": DAY, "formats": ["pdf", "csv", "html"]})
    assert accepted.status_code == 202, accepted.text
    report_id = accepted.json()["report_id"]
    assert accepted.json()["status"] in ("pending", "processing", "completed")

    report = _completed(service, report_id)
    assert report["status"] == "completed", report
    assert (report["period_start"], report["period_end"]) == (DAY["start"], DAY["end"])
    assert [s["name"] for s in report["sections"]][:2] == ["usage", "retention"]
    usage = report["sections"][0]
    assert usage["summary"]["requests"] == service.harness.lake.count("generation_events")
    assert report["ledger"]["provider"] == "_vault" and report["digest"].startswith("sha256:")

    for fmt, media in (("pdf", "application/pdf"), ("csv", "text/csv"), ("html", "text/html")):
        export = auditor.request("GET", f"{BASE}/{report_id}/export", params={"format": fmt})
        assert export.status_code == 200, export.text
        assert export.headers["content-type"].startswith(media)
        assert export.headers["x-vault-checksum"] == "sha256:" + hashlib.sha256(export.content).hexdigest()
    listed = auditor.request("GET", BASE, params={"limit": 10}).json()
    assert listed["meta"]["total_count"] == 1 and listed["data"][0]["report_id"] == report_id
    assert listed["data"][0]["version"] == 1 and listed["data"][0]["requested_by"] == "auditor"

    reads = [e for e in service.catalog.access_log("auditor", at_least=6) if e.path.startswith(BASE)]
    assert {e.path for e in reads} >= {BASE, f"{BASE}/{report_id}", f"{BASE}/{report_id}/export"}


@pytest.mark.parametrize("body, code, parameter", [
    ({"period": {"start": DAY["end"], "end": DAY["start"]}}, "invalid_period", "period.end"),
    ({"period": DAY, "sections": ["usage", "horoscope"]}, "unknown_section", "sections"),
    ({"period": {"start": "2025-01-01T00:00:00Z", "end": DAY["end"]}}, "period_beyond_retention", "period.start"),
    ({"period": {"start": DAY["start"], "end": "2026-06-01T00:00:00Z"}}, "period_not_ended", "period.end"),
    ({"period": DAY, "record_ids": ["../../etc/passwd"]}, "invalid_record_id", "record_ids"),
])
def test_bad_requests_are_422_naming_what_to_fix(service, body, code, parameter):
    answer = service.client("auditor").request("POST", BASE, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == code and answer.json()["detail"]["parameter"] == parameter


def test_malformed_bodies_and_ids_are_refused(service):
    auditor = service.client("auditor")
    for body in ({}, {"period": DAY, "preset": "weekly"}, {"preset": "hourly"}, {"period": DAY, "formats": ["docx"]},
                 {"period": DAY, "colour": "red"}):
        answer = auditor.request("POST", BASE, json=body)
        assert answer.status_code == 422 and answer.json()["error"] == "invalid_request", (body, answer.text)
    assert auditor.request("GET", f"{BASE}/rpt_00000000000000000000").status_code == 404
    assert auditor.request("GET", f"{BASE}/not-an-id").status_code == 422
    missing = auditor.request("GET", f"{BASE}/rpt_00000000000000000000/export", params={"format": "pdf"})
    assert missing.status_code == 404 and missing.json()["error"] == "report_not_found"


def test_only_audit_keys_create_or_read_reports(service):
    assert service.client("reader").request("POST", BASE, json={"period": DAY}).status_code == 403
    assert service.client("reader").request("GET", BASE).status_code == 403
    assert service.client(None).request("GET", BASE).status_code == 401
    assert service.client("admin").request("GET", BASE).status_code == 200


def test_on_s3_every_stored_form_is_encrypted_and_content_addressed(vault_service_factory):
    service = vault_service_factory(stack="s3", providers=LLM)
    assert service.harness.run("2026-01-01-03:00", "llm").success
    accepted = service.client("auditor").request("POST", BASE, json={"period": DAY, "sections": ["usage"]})
    report = _completed(service, accepted.json()["report_id"])
    assert report["status"] == "completed", report
    keys = service.s3.keys("reports/_vault/compliance/")
    assert len(keys) == 4  # json, html, pdf, csv
    for key in keys:
        head = service.s3.head(key)
        assert head["ServerSideEncryption"] in ("AES256", "aws:kms")
        assert key.rsplit("/", 1)[1].split(".")[0] == hashlib.sha256(service.s3.get(key)).hexdigest()
