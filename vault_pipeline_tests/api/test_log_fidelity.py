"""Scenario: an auditor gets back exactly what the provider sent, byte for byte, over the HTTP API.

The provider serves audit records that break naive JSON handling (astral-plane characters,
combining marks, escaped surrogate pairs and control characters, integers beyond 2**64, deep
nesting full of nulls, odd whitespace) over several cursor-linked pages. The auditor ingests
the hour, polls the job to ``completed``, lists every log, and fetches each one's raw bytes:
they must equal what was sent exactly and structurally, carry the catalog's checksum, and the
catalog's checksum must be the SHA-256 of the stored object bytes it points at. The scenario
runs on the production-like stack (S3 on moto, MongoDB on mongomock) and on the embedded
default (local directory, SQLite).
"""

import hashlib
import json

import pytest

from vault_pipeline_tests.fixtures.payloads import edge_case_records, parse_strict, structural_diff

HOUR, NEXT_HOUR = "2026-01-01T05", "2026-01-01T06"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("stack", ["s3", "embedded"])
def test_every_log_is_served_exactly_as_the_provider_sent_it(vault_service_factory, stack):
    vault = vault_service_factory(stack=stack)
    pages = vault.provider.serve_hour(HOUR, edge_case_records(HOUR), per_page=2)
    assert len(pages) == 3

    job = vault.api.ingest_and_wait("acme", HOUR, NEXT_HOUR)

    assert job["state"] == "completed", job
    assert job["metrics"] == {"records_synced": len(vault.provider.sent), "bytes_written": sum(map(len, pages))}
    logs = list(vault.api.iter_all_logs(provider_id="acme", limit=2))
    assert len(logs) == len(vault.provider.sent)
    served_ids = set()
    for log in logs:
        response = vault.api.raw(log["id"])
        assert response.status_code == 200, response.text
        served = response.content
        natural_id = json.loads(served)["eventID"]
        served_ids.add(natural_id)
        sent = vault.provider.sent[natural_id]
        # the same document, value for value (exact numbers, member order, types) ...
        assert structural_diff(parse_strict(sent), parse_strict(served)) == []
        # ... and the same bytes
        assert served == sent
        assert response.headers["X-Vault-Checksum"] == log["checksum"] == sha256(sent)
        assert log["size"] == len(sent)
        # the catalog points at stored bytes whose SHA-256 is its checksum
        entry = vault.catalog.record(log["id"])
        stored_object = vault.objects.get(entry.object_key)
        assert stored_object in pages  # each page is stored whole, as received ...
        assert entry.object_key.endswith(hashlib.sha256(stored_object).hexdigest() + ".json")  # ... content-addressed
        assert entry.checksum == sha256(stored_object[entry.offset: entry.offset + entry.length]) == log["checksum"]
    assert served_ids == set(vault.provider.sent)

    big = json.loads(vault.api.raw(next(l["id"] for l in logs if l["timestamp"].startswith(f"{HOUR}:03"))).content)
    assert big["bytes"] == 2**64 + 1 and big["exact"] == 2**128 + 1  # integers never went through a float
