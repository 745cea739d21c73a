"""Landing names records with an inlined copy of ``log_id_for`` (it runs once per record):
both must give the same id for every kind of natural id, and every record's checksum must be
the SHA-256 of exactly its stored bytes."""

from __future__ import annotations

import hashlib

from vault_pipeline.core.framing import frame_records
from vault_pipeline.core.identity import log_id_for, natural_id_from
from vault_pipeline.core.key_fields import KeyFieldsDecoder
from vault_pipeline.defs.ingestion.landing import LandingSummary, _frame_columns

BODY = (
    '{"records": [\n'
    ' {"id": "plain-1", "t": "2026-01-01T05:00:00Z"},\n'
    ' {"id": "Ωmega 𝔘𝔫𝔦 🦄", "t": "2026-01-01T05:00:01.5+01:00"},\n'
    ' {"id": 18446744073709551617, "t": null},\n'
    ' {"id": "", "t": "2026-01-01T05:59:59.999999Z", "x": [1, {"y": null}]},\n'
    ' {"t": "2026-01-01T05:30:00Z"}\n'
    "]}"
).encode()


def test_landing_ids_and_checksums_match_the_reference_functions() -> None:
    framed = frame_records(BODY, "records")
    columns = _frame_columns("acme", "raw/acme/x.json", 1, BODY, framed, KeyFieldsDecoder("id", "t"), LandingSummary())
    expected_checksums, expected_ids = [], []
    for piece, natural in zip(framed.slices(BODY), ["plain-1", "Ωmega 𝔘𝔫𝔦 🦄", 18446744073709551617, "", None], strict=True):
        checksum = "sha256:" + hashlib.sha256(piece).hexdigest()
        expected_checksums.append(checksum)
        expected_ids.append(log_id_for("acme", natural_id_from(natural, checksum)))
    assert columns["checksum"] == expected_checksums
    assert columns["log_id"] == expected_ids
    assert columns["natural_id"][2] == "18446744073709551617"  # exact, not a float
    assert columns["natural_id"][3] == expected_checksums[3] and columns["natural_id"][4] == expected_checksums[4]
    assert columns["timestamp"].to_pylist() == [
        "2026-01-01T05:00:00.000000Z", "2026-01-01T04:00:01.500000Z", None, "2026-01-01T05:59:59.999999Z",
        "2026-01-01T05:30:00.000000Z",
    ]
