"""The tamper-evident ledger: signed entries, hash chain, checkpoint, record proofs, key handling."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import stat
import threading

import pytest

from vault_pipeline.core import ledger as L
from vault_pipeline.core.ledger import (
    Checkpoint,
    Ed25519Signer,
    Ed25519Verifier,
    Finding,
    HmacSigner,
    LedgerEntry,
    LedgerError,
    LedgerKeyError,
    entries_from_dicts,
    entry_hash,
    load_or_create_ledger_key,
    load_public_verifier,
    make_checkpoint,
    next_position,
    partition_entry,
    record_proof,
    sign_entry,
    signer_from_spec,
    verify_chain,
    verify_checkpoint_signature,
    verify_entry_signature,
    verify_partition_objects,
    verify_partition_records,
)
from vault_pipeline.core.merkle import merkle_root, verify_proof
from vault_pipeline_tests.fixtures.auditor import independent_verify

PROVIDER = "acme_audit"
HMAC_SECRET = bytes(range(32))


def record_bytes(hour: int, count: int) -> list[bytes]:
    return [json.dumps({"eventID": f"e-{hour}-{i}", "n": i}).encode() for i in range(count)]


def checksums_of(records: list[bytes]) -> list[str]:
    return ["sha256:" + hashlib.sha256(r).hexdigest() for r in records]


def build_chain(signer, n: int = 6, provider: str = PROVIDER):
    """n signed partition entries (hour i holds i+2 records), the checkpoint, and the records."""
    entries, records = [], {}
    head = None
    for i in range(n):
        recs = record_bytes(i, i + 2)
        records[i + 1] = recs
        sequence, previous = next_position(head, None, signer.verifier())
        entry = partition_entry(
            provider=provider,
            partition=f"2026-01-01-{i:02d}:00|{provider}",
            sequence=sequence,
            previous_hash=previous,
            record_checksums=checksums_of(recs),
            objects=[(f"raw/{provider}/2026/01/01/{i:02d}/obj.json", "sha256:" + "ab" * 32)],
            run_id=f"run-{i}",
            created_at=f"2026-01-01T{i:02d}:30:00Z",
        )
        head = sign_entry(entry, signer)
        entries.append(head)
    return entries, make_checkpoint(head, signer, created_at="2026-01-01T06:00:00Z"), records


@pytest.fixture(scope="module")
def signer():
    return Ed25519Signer.generate()


@pytest.fixture(scope="module")
def chain(signer):
    return build_chain(signer)


def types_at(findings: list[Finding]) -> list[tuple[str, int | None]]:
    return [(f.type, f.sequence) for f in findings]


# -- entries, canonical form, signatures ---------------------------------------------------


def test_entry_fields_and_canonical_json(chain):
    entries, _, records = chain
    entry = entries[2]
    assert entry.sequence == 3 and entry.kind == "partition"
    assert entry.record_count == len(records[3])
    assert entry.merkle_root == merkle_root(checksums_of(records[3])).hex()
    assert entry.previous_hash == entry_hash(entries[1])
    assert entries[0].previous_hash == L.GENESIS_HASH
    text = entry.to_json()
    assert " " not in text and "\n" not in text
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert LedgerEntry.from_json(text) == entry
    assert entry.signed_bytes() == L.canonical_json({k: v for k, v in data.items() if k != "signature"})
    assert entry.entry_hash == hashlib.sha256(entry.signed_bytes()).hexdigest()


def test_canonical_json_is_utf8_not_escaped():
    entry = LedgerEntry(provider="prøvider", partition="p", sequence=1, previous_hash=L.GENESIS_HASH,
                        created_at="t", run_id="r", body={"note": "𝄞 é"})
    assert "prøvider".encode() in entry.signed_bytes()
    assert "𝄞 é".encode() in entry.signed_bytes()
    with pytest.raises(ValueError):
        L.canonical_json({"x": float("nan")})


def test_entry_validation_and_unknown_fields(chain):
    entries, _, _ = chain
    data = entries[0].to_dict()
    with pytest.raises(LedgerError, match="unknown"):
        LedgerEntry.from_dict({**data, "extra": 1})
    with pytest.raises(LedgerError, match="lacks"):
        LedgerEntry.from_dict({k: v for k, v in data.items() if k != "run_id"})
    with pytest.raises(LedgerError):
        LedgerEntry.from_dict({**data, "sequence": 0})
    with pytest.raises(LedgerError):
        LedgerEntry.from_dict({**data, "merkle_root": "XY"})
    with pytest.raises(LedgerError):
        LedgerEntry.from_dict({**data, "kind": "bogus"})
    with pytest.raises(LedgerError):
        LedgerEntry.from_dict({**data, "objects": [["k", "md5:1"]]})
    parsed, findings = entries_from_dicts([data, {**data, "sequence": True}, "junk"], PROVIDER)
    assert parsed == [entries[0]]
    assert [f.type for f in findings] == ["entry_unreadable", "entry_unreadable"]


def test_decision_entries_keep_kind_specific_fields_in_body(signer):
    entry = sign_entry(LedgerEntry(
        provider=PROVIDER, partition="2026-01-01-00:00|acme_audit", sequence=1, previous_hash=L.GENESIS_HASH,
        created_at="2026-01-01T01:00:00Z", run_id="r", kind="promotion_decision",
        body={"decision": "promoted", "quarantined": 3},
    ), signer)
    assert verify_entry_signature(entry, signer.verifier())
    assert LedgerEntry.from_json(entry.to_json()).body == {"decision": "promoted", "quarantined": 3}
    with pytest.raises(LedgerError):
        verify_partition_records(entry, [])


def test_sign_and_verify_both_algorithms():
    for signer in (Ed25519Signer.generate(), HmacSigner(HMAC_SECRET)):
        entry = build_chain(signer, n=1)[0][0]
        assert entry.algorithm == signer.algorithm and entry.key_id == signer.key_id
        assert verify_entry_signature(entry, signer.verifier())
        assert not verify_entry_signature(dataclasses.replace(entry, run_id="other"), signer.verifier())
        assert not verify_entry_signature(entry, Ed25519Signer.generate().verifier())
        assert not verify_entry_signature(entry, HmacSigner(b"x" * 32).verifier())


def test_key_ids_never_reveal_the_secret():
    hmac_signer = HmacSigner(HMAC_SECRET)
    assert len(hmac_signer.key_id) == 16 and int(hmac_signer.key_id, 16) >= 0
    assert hmac_signer.key_id not in HMAC_SECRET.hex()
    assert hmac_signer.key_id != hashlib.sha256(HMAC_SECRET).hexdigest()[:16]
    assert HMAC_SECRET.hex() not in repr(hmac_signer)
    assert base64.b64encode(HMAC_SECRET).decode() not in repr(hmac_signer)
    ed = Ed25519Signer.generate()
    raw_public = ed.verifier().public_key.public_bytes_raw()
    assert ed.key_id == hashlib.sha256(raw_public).hexdigest()[:16]
    assert ed.spec().split(":", 1)[1] not in repr(ed)
    with pytest.raises(LedgerKeyError):
        HmacSigner(b"short")


# -- chain scenarios -----------------------------------------------------------------------


def test_clean_chain(chain, signer):
    entries, checkpoint, _ = chain
    assert verify_chain(entries, checkpoint, signer.verifier()) == []
    assert verify_checkpoint_signature(checkpoint, signer.verifier())
    # Read order does not matter: the signed sequence numbers do.
    assert verify_chain(list(reversed(entries)), checkpoint, signer.verifier()) == []


def test_clean_hmac_chain_and_key_rotation():
    old, new = HmacSigner(HMAC_SECRET), Ed25519Signer.generate()
    entries, _, _ = build_chain(old, n=3)
    sequence, previous = next_position(entries[-1], None, [old.verifier(), new.verifier()])
    fourth = sign_entry(partition_entry(
        provider=PROVIDER, partition="p4", sequence=sequence, previous_hash=previous,
        record_checksums=[], objects=[], run_id="r4", created_at="t"), new)
    checkpoint = make_checkpoint(fourth, new)
    assert verify_chain([*entries, fourth], checkpoint, [old.verifier(), new.verifier()]) == []
    findings = verify_chain([*entries, fourth], checkpoint, new.verifier())
    assert types_at(findings) == [("signature_invalid", 1), ("signature_invalid", 2), ("signature_invalid", 3)]


def test_altered_middle_entry(chain, signer):
    entries, checkpoint, _ = chain
    tampered = list(entries)
    tampered[2] = dataclasses.replace(entries[2], record_count=entries[2].record_count - 1)
    assert types_at(verify_chain(tampered, checkpoint, signer.verifier())) == [
        ("signature_invalid", 3),
        ("chain_broken", 4),
    ]


def test_altered_middle_entry_resigned_with_an_attackers_key(chain, signer):
    entries, checkpoint, _ = chain
    tampered = list(entries)
    tampered[2] = sign_entry(dataclasses.replace(entries[2], merkle_root="00" * 32), Ed25519Signer.generate())
    findings = verify_chain(tampered, checkpoint, signer.verifier())
    assert types_at(findings) == [("signature_invalid", 3), ("chain_broken", 4)]
    assert "not a trusted key" in findings[0].detail
    assert findings[1].partition == entries[3].partition


def test_deleted_middle_entry(chain, signer):
    entries, checkpoint, _ = chain
    remaining = entries[:2] + entries[3:]
    assert types_at(verify_chain(remaining, checkpoint, signer.verifier())) == [("entry_missing", 3)]


def test_two_consecutive_deleted_entries(chain, signer):
    entries, checkpoint, _ = chain
    remaining = entries[:2] + entries[4:]
    assert types_at(verify_chain(remaining, checkpoint, signer.verifier())) == [
        ("entry_missing", 3),
        ("entry_missing", 4),
    ]


def test_first_entry_deleted(chain, signer):
    entries, checkpoint, _ = chain
    assert types_at(verify_chain(entries[1:], checkpoint, signer.verifier())) == [("entry_missing", 1)]


def test_newest_entry_deleted_is_caught_only_by_the_checkpoint(chain, signer):
    entries, checkpoint, _ = chain
    remaining = entries[:-1]
    # The chain itself is intact: without the checkpoint nothing but the lack of one is reported.
    assert types_at(verify_chain(remaining, None, signer.verifier(), provider=PROVIDER)) == [("checkpoint_missing", 5)]
    findings = verify_chain(remaining, checkpoint, signer.verifier())
    assert types_at(findings) == [("ledger_truncated", 6)]
    assert "checkpoint names entry 6" in findings[0].detail


def test_two_newest_and_all_entries_deleted(chain, signer):
    entries, checkpoint, _ = chain
    assert types_at(verify_chain(entries[:-2], checkpoint, signer.verifier())) == [
        ("ledger_truncated", 5),
        ("ledger_truncated", 6),
    ]
    assert [f.sequence for f in verify_chain([], checkpoint, signer.verifier())] == [1, 2, 3, 4, 5, 6]


def test_newest_entry_altered_differs_from_the_checkpoint(chain, signer):
    entries, checkpoint, _ = chain
    tampered = entries[:-1] + [dataclasses.replace(entries[-1], run_id="forged")]
    assert types_at(verify_chain(tampered, checkpoint, signer.verifier())) == [
        ("signature_invalid", 6),
        ("checkpoint_mismatch", 6),
    ]


def test_forged_signature(chain, signer):
    entries, checkpoint, _ = chain
    tampered = list(entries)
    tampered[3] = dataclasses.replace(entries[3], signature=base64.b64encode(os.urandom(64)).decode())
    findings = verify_chain(tampered, checkpoint, signer.verifier())
    # The signature is not part of the hashed content, so the chain link itself still holds.
    assert types_at(findings) == [("signature_invalid", 4)]
    tampered[3] = dataclasses.replace(entries[3], signature="%%%")
    assert types_at(verify_chain(tampered, checkpoint, signer.verifier())) == [("signature_invalid", 4)]
    tampered[3] = dataclasses.replace(entries[3], signature="")
    assert verify_chain(tampered, checkpoint, signer.verifier())[0].detail == "unsigned"


def test_swapped_key_rewrites_nothing_unnoticed(chain, signer):
    entries, _, _ = chain
    attacker = Ed25519Signer.generate()
    # The attacker rebuilds the whole chain and checkpoint consistently under their own key.
    forged, forged_checkpoint, _ = build_chain(attacker)
    findings = verify_chain(forged, forged_checkpoint, signer.verifier())
    assert types_at(findings) == [(L.SIGNATURE_INVALID, s) for s in range(1, 7)] + [("checkpoint_invalid", 6)]
    # ...and verifying the genuine chain with a wrong key flags every entry too.
    assert len(verify_chain(entries, None, attacker.verifier(), provider=PROVIDER)) == 7
    # Same key id claimed, different algorithm.
    spoofed = dataclasses.replace(entries[0], algorithm="hmac-sha256")
    assert "algorithm" in verify_chain([spoofed, *entries[1:]], None, signer.verifier())[0].detail


def test_forged_or_foreign_checkpoint(chain, signer):
    entries, checkpoint, _ = chain
    # Rolling the checkpoint back to hide a truncation breaks its signature.
    rolled_back = dataclasses.replace(checkpoint, sequence=5, entry_hash=entry_hash(entries[4]))
    assert types_at(verify_chain(entries[:-1], rolled_back, signer.verifier())) == [("checkpoint_invalid", 5)]
    other = build_chain(signer, n=2, provider="other")[1]
    assert types_at(verify_chain(entries, other, signer.verifier(), provider=PROVIDER)) == [("checkpoint_invalid", 2)]
    assert Checkpoint.from_json(checkpoint.to_json()) == checkpoint
    with pytest.raises(LedgerError):
        Checkpoint.from_dict(entries[0].to_dict())


def test_duplicated_and_misplaced_entries(chain, signer):
    entries, checkpoint, _ = chain
    foreign = build_chain(signer, n=1, provider="other")[0][0]
    findings = verify_chain([*entries, entries[2], foreign], checkpoint, signer.verifier())
    assert types_at(findings) == [("entry_misplaced", 1), ("entry_duplicated", 3)]
    assert "other" in findings[0].detail


def test_checkpoint_lagging_one_entry_behind_is_fine(chain, signer):
    entries, _, _ = chain
    # The writer stores the entry first; a crash before the checkpoint leaves it one behind.
    lagging = make_checkpoint(entries[-2], signer)
    assert verify_chain(entries, lagging, signer.verifier()) == []
    assert next_position(entries[-1], lagging, signer.verifier()) == (7, entry_hash(entries[-1]))


def test_next_position_refuses_to_extend_a_truncated_chain(chain, signer):
    entries, checkpoint, _ = chain
    assert next_position(None, None, signer.verifier()) == (1, L.GENESIS_HASH)
    assert next_position(entries[-1], checkpoint, signer.verifier()) == (7, entry_hash(entries[-1]))
    with pytest.raises(LedgerError, match="deleted"):
        next_position(entries[-2], checkpoint, signer.verifier())
    with pytest.raises(LedgerError, match="deleted"):
        next_position(None, checkpoint, signer.verifier())
    with pytest.raises(LedgerError, match="differs"):
        next_position(dataclasses.replace(entries[-1], run_id="x"), checkpoint, signer.verifier())
    with pytest.raises(LedgerError, match="does not verify"):
        next_position(entries[-1], checkpoint, Ed25519Signer.generate().verifier())


# -- record scenarios ----------------------------------------------------------------------


def test_records_intact(chain):
    entries, _, records = chain
    for entry in entries:
        assert verify_partition_records(entry, checksums_of(records[entry.sequence])) == []


def test_altered_byte(chain):
    entries, _, records = chain
    recs = list(records[4])
    recs[1] = recs[1].replace(b'"n": 1', b'"n": 7')
    findings = verify_partition_records(entries[3], checksums_of(recs))
    assert types_at(findings) == [("record_altered", 4)]
    assert findings[0].partition == entries[3].partition


def test_inserted_record(chain):
    entries, _, records = chain
    recs = [*records[4][:2], b'{"eventID":"forged"}', *records[4][2:]]
    assert types_at(verify_partition_records(entries[3], checksums_of(recs))) == [("record_inserted", 4)]


def test_deleted_record_or_catalog_entry(chain):
    entries, _, records = chain
    recs = records[4][:1] + records[4][2:]
    findings = verify_partition_records(entries[3], checksums_of(recs))
    assert types_at(findings) == [("record_deleted", 4)]
    assert "1 of the 5" in findings[0].detail


def test_reordered_records(chain):
    entries, _, records = chain
    recs = list(records[4])
    recs[0], recs[3] = recs[3], recs[0]
    assert types_at(verify_partition_records(entries[3], checksums_of(recs))) == [("records_reordered", 4)]
    # Reordered and altered at once is an alteration.
    recs[1] = b"{}"
    assert types_at(verify_partition_records(entries[3], checksums_of(recs))) == [("record_altered", 4)]


def test_objects_deleted_or_altered(chain):
    entry = chain[0][0]
    (key, committed), = entry.objects
    assert verify_partition_objects(entry, {key: committed}) == []
    assert types_at(verify_partition_objects(entry, {})) == [("object_missing", 1)]
    assert types_at(verify_partition_objects(entry, {key: None})) == [("object_missing", 1)]
    assert types_at(verify_partition_objects(entry, {key: "sha256:" + "cd" * 32})) == [("object_altered", 1)]


def test_streaming_records_into_an_entry():
    checksums = checksums_of(record_bytes(0, 20_000))
    entry = partition_entry(provider=PROVIDER, partition="p", sequence=1, previous_hash=L.GENESIS_HASH,
                            record_checksums=iter(checksums), objects=[], run_id="r")
    assert entry.record_count == 20_000
    assert entry.merkle_root == merkle_root(checksums).hex()
    assert verify_partition_records(entry, iter(checksums)) == []


def test_a_digest_of_checksums_in_chunks_equals_the_digest_of_their_leaves_one_by_one():
    # Chunks of checksums convert in one pass; upper-case hex and raw digests mixed in convert leaf by leaf.
    checksums = checksums_of(record_bytes(0, 20_000))
    checksums[5] = checksums[5].upper().replace("SHA256:", "sha256:")
    mixed = [*checksums[:9000], L.as_leaf(checksums[9000]), *checksums[9001:]]
    chunked, one_by_one = L.PartitionDigest(), L.PartitionDigest()
    chunked.add_many(iter(mixed))
    for value in mixed:
        one_by_one.add_leaves([L.as_leaf(value)])
    assert (chunked.count, chunked.root_hex(), chunked.leaf_sum_hex()) == (
        one_by_one.count, one_by_one.root_hex(), one_by_one.leaf_sum_hex()) == (20_000, merkle_root(checksums).hex(),
                                                                                one_by_one.leaf_sum_hex())
    for invalid in ("sha256:" + "g" * 64, "md5:" + "0" * 32, "sha256:" + "0" * 62 + " 0"):
        with pytest.raises(ValueError) as as_leaf_error:
            L.as_leaf(invalid)
        with pytest.raises(ValueError) as raised:
            L.PartitionDigest().add_many([*checksums[:10], invalid])
        assert str(raised.value) == str(as_leaf_error.value)  # refused as a leaf on its own is


def test_a_partition_digest_combined_from_aligned_parts_equals_the_streamed_one():
    checksums = checksums_of(record_bytes(0, 1000))
    streamed = L.PartitionDigest()
    streamed.add_many(checksums)
    digests = b"".join(L.as_leaf(c) for c in checksums)
    parts = []
    for start in range(0, 1000, 64):  # cut at multiples of a power of two, as `vault verify` does
        part = L.PartitionDigest()
        part.add_digests(digests[32 * start : 32 * min(start + 64, 1000)])
        parts.append(part.part())
    combined = L.PartitionDigest.combine(parts)
    assert (combined.count, combined.root_hex(), combined.leaf_sum_hex()) == (
        streamed.count, streamed.root_hex(), streamed.leaf_sum_hex())
    with pytest.raises(ValueError):
        L.PartitionDigest().add_digests(b"\x00" * 33)


def test_verifying_a_digest_finds_what_verifying_the_checksums_finds(chain):
    entries, _, records = chain
    recs = list(records[4])
    variants = {"intact": recs, "reordered": [recs[3], *recs[1:3], recs[0], *recs[4:]],
                "deleted": recs[1:], "inserted": [*recs, b"{}"], "altered": [b"{}", *recs[1:]]}
    for name, variant in variants.items():
        digest = L.PartitionDigest()
        digest.add_many(checksums_of(variant))
        assert L.verify_partition_digest(entries[3], digest) == verify_partition_records(
            entries[3], checksums_of(variant)), name


# -- inclusion proofs verified outside the vault -------------------------------------------


def test_every_record_proof_verifies_independently(signer):
    recs = record_bytes(0, 37)
    entry = sign_entry(partition_entry(provider=PROVIDER, partition="p", sequence=1, previous_hash=L.GENESIS_HASH,
                                       record_checksums=checksums_of(recs), objects=[], run_id="r"), signer)
    pem = signer.public_key_pem()
    for index, record in enumerate(recs):
        proof = json.loads(json.dumps(record_proof(entry, checksums_of(recs), index)))  # as sent over HTTP
        assert proof["leaf_hash"] == hashlib.sha256(b"\x00" + hashlib.sha256(record).digest()).hexdigest()
        assert independent_verify(record, proof, pem)
        assert verify_proof(record, proof, public_key_pem=pem)
        assert not independent_verify(record + b" ", proof, pem)
        assert not verify_proof(record + b" ", proof, public_key_pem=pem)
        assert not verify_proof(recs[(index + 1) % len(recs)], proof, public_key_pem=pem)


def test_tampered_proofs_fail(signer):
    recs = record_bytes(1, 9)
    entry = sign_entry(partition_entry(provider=PROVIDER, partition="p", sequence=1, previous_hash=L.GENESIS_HASH,
                                       record_checksums=checksums_of(recs), objects=[], run_id="r"), signer)
    pem = signer.public_key_pem()
    proof = record_proof(entry, checksums_of(recs), 4)
    assert verify_proof(recs[4], proof, public_key_pem=pem)
    # A root the vault made up, with a matching path, is not signed.
    fake_recs = [b"forged", *recs[1:]]
    fake_entry = {**proof["entry"], "merkle_root": merkle_root(checksums_of(fake_recs)).hex()}
    fake_proof = {**record_proof(dataclasses.replace(entry, merkle_root=fake_entry["merkle_root"]),
                                 checksums_of(fake_recs), 0), "entry": fake_entry}
    assert not verify_proof(b"forged", fake_proof, public_key_pem=pem)
    assert not independent_verify(b"forged", fake_proof, pem)
    assert not verify_proof(recs[4], {**proof, "leaf_index": 5}, public_key_pem=pem)
    assert not verify_proof(recs[4], {**proof, "tree_size": 10}, public_key_pem=pem)
    assert not verify_proof(recs[4], {**proof, "audit_path": proof["audit_path"][:-1]}, public_key_pem=pem)
    assert not verify_proof(recs[4], proof, public_key_pem=Ed25519Signer.generate().public_key_pem())
    assert not verify_proof(recs[4], proof)  # no key given: nothing is trusted
    assert not verify_proof(recs[4], {"entry": {}}, public_key_pem=pem)


def test_hmac_proof_verifies_with_the_shared_secret():
    signer = HmacSigner(HMAC_SECRET)
    recs = record_bytes(2, 5)
    entry = sign_entry(partition_entry(provider=PROVIDER, partition="p", sequence=1, previous_hash=L.GENESIS_HASH,
                                       record_checksums=checksums_of(recs), objects=[], run_id="r"), signer)
    proof = record_proof(entry, checksums_of(recs), 2)
    assert verify_proof(recs[2], proof, hmac_secret=HMAC_SECRET)
    assert not verify_proof(recs[2], proof, hmac_secret=b"y" * 32)
    assert not verify_proof(recs[2], proof, public_key_pem=Ed25519Signer.generate().public_key_pem())


def test_no_proof_for_records_that_no_longer_match(signer):
    recs = record_bytes(3, 6)
    entry = sign_entry(partition_entry(provider=PROVIDER, partition="p", sequence=1, previous_hash=L.GENESIS_HASH,
                                       record_checksums=checksums_of(recs), objects=[], run_id="r"), signer)
    with pytest.raises(LedgerError, match="no longer matches"):
        record_proof(entry, checksums_of([b"x", *recs[1:]]), 3)
    with pytest.raises(LedgerError, match="holds 5 records"):
        record_proof(entry, checksums_of(recs[:5]), 0)


# -- key handling --------------------------------------------------------------------------


def test_key_from_environment(tmp_path):
    ed = Ed25519Signer.generate()
    loaded = load_or_create_ledger_key(tmp_path, env={"VAULT_LEDGER_KEY": ed.spec()})
    assert isinstance(loaded, Ed25519Signer) and loaded.key_id == ed.key_id
    assert not (tmp_path / "ledger.key").exists()
    assert load_public_verifier(tmp_path).key_id == ed.key_id
    spec = "hmac:" + base64.b64encode(HMAC_SECRET).decode()
    loaded = load_or_create_ledger_key(tmp_path / "h", env={"VAULT_LEDGER_KEY": spec})
    assert isinstance(loaded, HmacSigner) and loaded.key_id == HmacSigner(HMAC_SECRET).key_id
    assert not (tmp_path / "h").exists()  # a shared secret has no public half to publish


@pytest.mark.parametrize("value", ["c2VjcmV0c2VjcmV0c2VjcmV0", "rsa:AAAA", "ed25519:not*base64", "ed25519:AAAA",
                                   "hmac:c2hvcnQ="])
def test_bad_key_specs_never_echo_the_value(tmp_path, value):
    with pytest.raises(LedgerKeyError) as excinfo:
        load_or_create_ledger_key(tmp_path, env={"VAULT_LEDGER_KEY": value})
    assert value.split(":")[-1] not in str(excinfo.value)


def test_default_key_file_is_created_private_and_reused(tmp_path):
    home = tmp_path / "vault"
    first = load_or_create_ledger_key(home, env={})
    key_file = home / "ledger.key"
    assert isinstance(first, Ed25519Signer)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().startswith("ed25519:")
    assert [p.name for p in home.iterdir() if p.name.startswith(".")] == []  # no temp files left
    second = load_or_create_ledger_key(home, env={})
    assert second.key_id == first.key_id
    # The public key alone lets an auditor verify what the vault signed.
    pem = (home / "ledger.pub").read_bytes()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert Ed25519Verifier.from_pem(pem).key_id == first.key_id
    entries, checkpoint, _ = build_chain(second, n=2)
    assert verify_chain(entries, checkpoint, load_public_verifier(home)) == []


def test_key_file_readable_by_others_is_refused(tmp_path):
    load_or_create_ledger_key(tmp_path, env={})
    os.chmod(tmp_path / "ledger.key", 0o644)
    with pytest.raises(LedgerKeyError, match="chmod 600"):
        load_or_create_ledger_key(tmp_path, env={})


def test_concurrent_first_use_shares_one_key(tmp_path):
    results: list[str] = []

    def load():
        results.append(load_or_create_ledger_key(tmp_path, env={}).key_id)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1


def test_signer_spec_round_trip():
    ed = Ed25519Signer.generate()
    assert signer_from_spec(ed.spec()).key_id == ed.key_id
    hm = HmacSigner(HMAC_SECRET)
    assert signer_from_spec(hm.spec()).key_id == hm.key_id
