"""A decision's ledger line: the very bytes ``canonical_json`` gives, whatever its strings hold.

Promotion signs one line per record into the decision root, and re-promoting an unchanged
partition must give the same root, so the line's bytes are a contract. They are written by a
msgspec struct for speed; ``canonical_json`` (sorted keys, compact, UTF-8) is the reference.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault_pipeline.core.ledger import canonical_json
from vault_pipeline.defs.promotion.decisions import MASKED, QUARANTINED, _Decision
from vault_pipeline.storage.catalog import RecordEntry

_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20)  # any code point a key can hold


def _record(log_id: str, digest: str) -> RecordEntry:
    return RecordEntry(log_id, "acme", "2026-01-01-00:00|acme", "n1", "raw/acme/x.json", 0, 10, digest, None, "run")


def _reference(d: _Decision, tier: str, policy: str, golden_checksum: str | None) -> bytes:
    return canonical_json({
        "log_id": d.record.log_id, "decision": d.decision, "raw_checksum": d.record.checksum,
        "golden_checksum": golden_checksum, "masked": [[m["path"], m["type"]] for m in d.masked],
        "reason": d.reason, "approved": bool(d.approval), "tier": tier, "policy": policy,
    })


@settings(max_examples=200, deadline=None)
@given(log_id=_text, paths=st.lists(st.tuples(_text, _text), max_size=3), reason=st.none() | _text,
       approved=st.booleans(), tier=_text, golden=st.none() | _text)
def test_the_line_is_canonical_json_for_any_strings(log_id, paths, reason, approved, tier, golden):
    d = _Decision(_record(log_id, "sha256:" + "ab" * 32), MASKED if reason is None else QUARANTINED,
                  masked=[{"path": p, "type": t, "in_key": False} for p, t in paths], reason=reason,
                  approval={"approved_by": "admin"} if approved else None)
    assert d.line(tier, "redact", golden) == _reference(d, tier, "redact", golden)


def test_the_line_keeps_control_characters_escaped_and_unicode_raw():
    d = _Decision(_record("id\n\"\\\x00\x1f\u2028", "sha256:00"), MASKED,
                  masked=[{"path": '$["Ωmega 𝔘\t"]', "type": "email", "in_key": True}])
    line = d.line("standard", "pseudonym", None)
    assert line == _reference(d, "standard", "pseudonym", None)
    assert b'"log_id":"id\\n\\"\\\\\\u0000\\u001f\xe2\x80\xa8"' in line and "Ωmega 𝔘\\t".encode() in line


def test_a_line_that_cannot_be_utf8_fails_as_the_reference_does():
    d = _Decision(_record("\ud800", "sha256:00"), MASKED)
    with pytest.raises(UnicodeEncodeError):
        _reference(d, "standard", "redact", None)
    with pytest.raises(UnicodeEncodeError):
        d.line("standard", "redact", None)
