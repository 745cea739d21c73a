"""Scenario: the vault tells the truth when storage and catalog disagree, and under concurrent use.

An auditor must never be handed bytes the vault cannot vouch for: a log whose stored object
was deleted answers ``410 raw_object_missing`` and fails its partition's integrity check; a
log whose stored bytes were altered answers ``409 checksum_mismatch``, is flagged in the
catalog and is never served, while untouched neighbours in the same object still are. Two
identical ingest requests arriving at once become one job and one set of logs. And an
auditor paging through a range while an ingest writes into it never sees a log twice.
"""

import threading
import time

from vault_pipeline_tests.fixtures.payloads import hour_records


def _ingest(vault, hour: str, count: int, per_page: int = 3) -> list[dict]:
    """Ingest ``count`` records into ``hour`` (``2026-01-01T08``) and return their listed logs."""
    vault.provider.serve_hour(hour, hour_records(hour, count), per_page=per_page)
    job = vault.api.ingest_and_wait("acme", hour, _next(hour))
    assert job["state"] == "completed", job
    return list(vault.api.iter_all_logs(provider_id="acme", start=hour, end=_next(hour)))


def _next(hour: str) -> str:
    return f"{hour[:-2]}{int(hour[-2:]) + 1:02d}"


def test_a_log_whose_object_was_deleted_is_gone_and_its_partition_fails_the_integrity_check(vault_service):
    vault = vault_service
    logs = _ingest(vault, "2026-01-01T08", 6)
    assert vault.check_integrity("2026-01-01-08:00").passed  # clean before anyone touches the bucket
    victim = vault.catalog.record(logs[0]["id"])
    survivors = [log for log in logs if vault.catalog.record(log["id"]).object_key != victim.object_key]
    assert survivors  # records on other pages

    vault.s3.delete(victim.object_key)

    response = vault.api.raw(victim.log_id)
    assert response.status_code == 410
    assert response.json()["error"] == "raw_object_missing"
    assert all(vault.api.raw(log["id"]).status_code == 200 for log in survivors)
    integrity = vault.check_integrity("2026-01-01-08:00")
    assert not integrity.passed
    assert integrity.findings.get("missing_object") == 1, integrity.findings


def test_altered_bytes_are_refused_with_409_and_flagged_never_served(vault_service):
    vault = vault_service
    logs = _ingest(vault, "2026-01-01T09", 6)
    victim = vault.catalog.record(logs[0]["id"])
    neighbour = next(vault.catalog.record(log["id"]) for log in logs[1:]
                     if vault.catalog.record(log["id"]).object_key == victim.object_key)
    original = vault.s3.get(victim.object_key)
    span = original[victim.offset: victim.offset + victim.length]
    forged = span.replace(b'"userName": "alice"', b'"userName": "mallo"')  # same length, one value changed
    assert forged != span and len(forged) == len(span)

    vault.s3.put(victim.object_key, original[:victim.offset] + forged + original[victim.offset + victim.length:])

    response = vault.api.raw(victim.log_id)
    assert response.status_code == 409
    assert response.json()["error"] == "checksum_mismatch"
    assert b"mallo" not in response.content and "X-Vault-Checksum" not in response.headers
    assert vault.catalog.record(victim.log_id).status == "checksum_mismatch"
    listed = {log["id"]: log for log in vault.api.iter_all_logs(provider_id="acme")}
    assert listed[victim.log_id]["status"] == "checksum_mismatch"
    # a neighbour in the same object whose own bytes are intact still verifies and is served
    assert vault.api.raw(neighbour.log_id).status_code == 200

    # a truncated object cannot serve the indexed range at all: also refused, not a 500
    other = next(vault.catalog.record(log["id"]) for log in logs
                 if vault.catalog.record(log["id"]).object_key != victim.object_key)
    vault.s3.put(other.object_key, vault.s3.get(other.object_key)[: other.offset + other.length // 2])
    truncated = vault.api.raw(other.log_id)
    assert truncated.status_code == 409 and truncated.json()["error"] == "checksum_mismatch"


def test_two_identical_ingest_requests_at_once_make_one_job_and_one_set_of_logs(vault_service):
    vault = vault_service
    hour = "2026-01-01T10"
    vault.provider.serve_hour(hour, hour_records(hour, 9), per_page=3)
    barrier = threading.Barrier(2)
    responses = [None, None]

    def ingest(slot: int) -> None:
        barrier.wait()
        responses[slot] = vault.api.ingest("acme", hour, _next(hour))

    # The provider is held so the first job is certainly still running when the twin arrives.
    with vault.provider.hold():
        threads = [threading.Thread(target=ingest, args=(slot,)) for slot in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert [r.status_code for r in responses] == [202, 202], [r.text for r in responses]
    job_ids = {r.json()["job_id"] for r in responses}
    assert len(job_ids) == 1

    job = vault.api.wait_for_job(job_ids.pop())
    assert job["state"] == "completed" and len(job["runs"]) == 1
    assert vault.provider.windows_requested == [f"{hour}:00:00Z"] * 3  # each page fetched once
    logs = list(vault.api.iter_all_logs(provider_id="acme"))
    assert len(logs) == len({log["id"] for log in logs}) == 9


def test_paging_through_a_range_while_an_ingest_writes_into_it_never_returns_a_log_twice(vault_service):
    vault = vault_service
    early = _ingest(vault, "2026-01-01T00", 4)
    late = _ingest(vault, "2026-01-01T02", 8)
    vault.provider.serve_hour("2026-01-01T01", hour_records("2026-01-01T01", 4), per_page=2)

    # Between the second and third page, an ingest lands records that sort before the
    # reader's position (hour 01 between hours 00 and 02): offsets would shift under it.
    def write_meanwhile(pages_read: int) -> None:
        if pages_read == 2:
            assert vault.api.ingest_and_wait("acme", "2026-01-01T01", "2026-01-01T02")["state"] == "completed"

    seen = [log["id"] for log in vault.api.iter_all_logs(start="2026-01-01T00", end="2026-01-01T03", limit=4,
                                                         between_pages=write_meanwhile)]
    assert len(seen) == len(set(seen)), "a log was returned twice"
    assert {log["id"] for log in early + late} <= set(seen)  # nothing that existed throughout was skipped

    # and with the writes truly concurrent: every pass while another hour is being written is duplicate-free
    vault.provider.serve_hour("2026-01-01T03", hour_records("2026-01-01T03", 15), per_page=3)
    job_id = vault.api.submit("acme", "2026-01-01T03", "2026-01-01T04")
    passes = 0
    while passes < 3 or vault.api.job(job_id)["state"] not in ("completed", "failed"):
        ids = [log["id"] for log in vault.api.iter_all_logs(start="2026-01-01T00", end="2026-01-01T04", limit=4)]
        assert len(ids) == len(set(ids)), "a log was returned twice"
        passes += 1
        time.sleep(0.02)  # read steadily, without starving the run of the GIL
    assert vault.api.job(job_id)["state"] == "completed"
    assert len(list(vault.api.iter_all_logs(start="2026-01-01T00", end="2026-01-01T04"))) == 4 + 8 + 4 + 15
