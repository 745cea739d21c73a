"""Signing the ledger and checking its signatures with the keys of ``core/ledger_keys.py``.

An entry is signed over everything but its signature, with the signer's algorithm and key id
written into the entry first, so that the key that signed it is part of what was signed; a
checkpoint, which names the newest entry by its hash, is signed the same way. Checking a
signature against a set of trusted keys (several when keys were rotated) says in plain words
what is wrong (unsigned, an untrusted key, an algorithm that does not match the key, a
signature that does not verify), because ``vault verify`` reports that reason to the auditor.
Re-exported by ``core/ledger.py``.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Mapping
from dataclasses import replace

from vault_pipeline.core.ledger_entries import Checkpoint, LedgerEntry, entry_hash, utc_now
from vault_pipeline.core.ledger_keys import Signer, Verifier
from vault_pipeline.core.ledger_keys import b64 as _b64
from vault_pipeline.core.ledger_keys import unb64 as _unb64


def sign_entry(entry: LedgerEntry, signer: Signer) -> LedgerEntry:
    unsigned = replace(entry, algorithm=signer.algorithm, key_id=signer.key_id, signature="")
    return replace(unsigned, signature=_b64(signer.sign(unsigned.signed_bytes())))


def make_checkpoint(entry: LedgerEntry, signer: Signer, created_at: str | None = None) -> Checkpoint:
    """A signed checkpoint naming ``entry`` as the head of its provider's chain."""
    unsigned = Checkpoint(
        provider=entry.provider,
        sequence=entry.sequence,
        entry_hash=entry_hash(entry),
        created_at=created_at or utc_now(),
        algorithm=signer.algorithm,
        key_id=signer.key_id,
    )
    return replace(unsigned, signature=_b64(signer.sign(unsigned.signed_bytes())))


def _keyring(verifiers: Verifier | Iterable[Verifier]) -> dict[str, Verifier]:
    if isinstance(verifiers, Verifier):
        verifiers = [verifiers]
    return {v.key_id: v for v in verifiers}


def _signature_problem(item: LedgerEntry | Checkpoint, keyring: Mapping[str, Verifier]) -> str | None:
    if not item.signature:
        return "unsigned"
    verifier = keyring.get(item.key_id)
    if verifier is None:
        return f"signed with key {item.key_id!r}, which is not a trusted key ({', '.join(sorted(keyring)) or 'none'})"
    if verifier.algorithm != item.algorithm:
        return f"algorithm {item.algorithm!r} does not match key {item.key_id!r} ({verifier.algorithm})"
    try:
        signature = _unb64(item.signature)
    except (binascii.Error, ValueError):
        return "signature is not valid base64"
    if not verifier.verify(item.signed_bytes(), signature):
        return "signature does not verify: the content or the signature was changed"
    return None


def verify_entry_signature(entry: LedgerEntry, verifier: Verifier | Iterable[Verifier]) -> bool:
    return _signature_problem(entry, _keyring(verifier)) is None


def verify_checkpoint_signature(checkpoint: Checkpoint, verifier: Verifier | Iterable[Verifier]) -> bool:
    return _signature_problem(checkpoint, _keyring(verifier)) is None
