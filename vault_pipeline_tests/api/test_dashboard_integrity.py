"""The dashboard never shows bytes that fail verification: a record whose stored bytes were
altered after indexing is flagged, like ``/v1/logs/{id}/raw`` does, and only its checksum shows."""

from __future__ import annotations

from vault_pipeline.storage.catalog import CHECKSUM_MISMATCH
from vault_pipeline_tests.fixtures.dashboard import DashboardClient


def test_altered_bytes_are_refused_and_flagged(fresh_dashboard):
    vault = fresh_dashboard
    client = DashboardClient(vault)
    try:
        assert client.sign_in("operator").status_code == 303
        page = client.http.get("/dashboard/data/records", params={"provider": "llm", "hour": "2026-01-01T03:00"})
        assert page.status_code == 200 and page.json()["total_count"] > 0
        record = page.json()["data"][0]
        intact = client.http.get(f"/dashboard/data/record/{record['id']}").json()
        assert intact["raw"]["verified"] is True and intact["golden"]["decision"] in ("clean", "masked")
        assert intact["proof"]["available"] is True

        entry = vault.api.catalog.get_record(record["id"])
        stored = bytearray(vault.objects.get(entry.object_key))
        stored[entry.offset] ^= 0x01  # one bit of the record's first byte
        vault.objects.put(entry.object_key, bytes(stored))

        shown = client.http.get(f"/dashboard/data/record/{record['id']}").json()
        assert shown["raw"] == {"available": False, "error": "checksum_mismatch",
                                "reason": "stored bytes no longer match the indexed checksum; not shown"}
        assert shown["checksum"] == entry.checksum
        raw = client.http.get(f"/dashboard/data/record/{record['id']}/raw")
        assert raw.status_code == 409 and raw.json()["error"] == "checksum_mismatch"
        assert bytes(stored[entry.offset:entry.offset + entry.length]) not in raw.content
        assert vault.api.catalog.get_record(record["id"]).status == CHECKSUM_MISMATCH
    finally:
        client.close()
