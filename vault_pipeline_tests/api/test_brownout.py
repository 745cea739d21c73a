"""Scenario: S3 browns out mid-ingest and the vault rides it out on its own, losing and duplicating nothing.

S3 answers the vault's first two uploads with ``503 SlowDown`` (injected on the wire by a
``before-send`` handler on the vault's own botocore clients, so moto never sees them), then
recovers. Nobody retries anything by hand: the ingest job must complete, botocore's standard
retry mode must be what absorbed the throttling (the same object sent three times, every other
object once, and no Dagster step retry), and afterwards every page is stored exactly once,
encrypted, and every record is listed and served exactly once with verified bytes.
"""

import hashlib

from vault_pipeline_tests.fixtures.payloads import hour_records

HOUR, NEXT_HOUR = "2026-01-01T07", "2026-01-01T08"


def test_two_slowdowns_are_retried_and_the_job_completes_with_every_record_once(vault_service):
    vault = vault_service
    pages = vault.provider.serve_hour(HOUR, hour_records(HOUR, 40), per_page=10)
    vault.s3.traffic.fail_next_puts(2)

    job = vault.api.ingest_and_wait("acme", HOUR, NEXT_HOUR)

    assert job["state"] == "completed", job
    # the retries happened, in botocore: the first upload was sent three times in a row (two
    # SlowDowns, then success), and no page of provider data was ever uploaded twice otherwise
    traffic = vault.s3.traffic
    first = traffic.sends[0]
    assert traffic.injected == [first, first] and traffic.sends[:3] == [first, first, first]
    raw_sends = {key: n for key, n in traffic.sends_by_key().items() if key.startswith("raw/")}
    assert all(n == (3 if key == first else 1) for key, n in raw_sends.items()), raw_sends
    assert len(job["runs"]) == 1 and job["runs"][0]["status"] == "SUCCESS"
    step_retries = [e for e in vault.harness.instance.all_logs(job["job_id"]) if e.dagster_event
                    and e.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"]
    assert step_retries == []  # absorbed by the S3 client, not by re-running the step

    # nothing lost, nothing duplicated: one object per page, encrypted at rest ...
    expected_keys = {f"raw/acme/2026/01/01/07/{hashlib.sha256(page).hexdigest()}.json" for page in pages}
    assert sorted(vault.s3.keys("raw/acme/")) == sorted(expected_keys) == sorted(raw_sends)
    for key in expected_keys:
        assert vault.s3.head(key)["ServerSideEncryption"] == "AES256"
    # ... and each record listed once, counted once, served with verified bytes
    logs = list(vault.api.iter_all_logs(provider_id="acme", limit=15))
    assert len(logs) == len({log["id"] for log in logs}) == 40
    assert job["metrics"]["records_synced"] == 40 and vault.catalog.count(provider="acme") == 40
    served = set()
    for log in logs:
        response = vault.api.raw(log["id"])
        assert response.status_code == 200
        assert response.content in vault.provider.sent.values()
        served.add(response.content)
    assert served == set(vault.provider.sent.values())
