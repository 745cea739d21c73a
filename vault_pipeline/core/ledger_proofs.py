"""Inclusion proofs: a record's proof that it belongs, unchanged and in place, to its signed partition.

An auditor holding one record can ask the vault for its audit path and check it against the
partition's signed Merkle root with ``merkle.verify_proof`` and the public key alone, without
trusting the vault. The proof is built only after the vault has re-derived the signed root
from the records it holds now, so it never hands out a proof it knows to be false.
Re-exported by ``core/ledger.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vault_pipeline.core.ledger_entries import KIND_PARTITION, LedgerEntry, LedgerError
from vault_pipeline.core.merkle import as_leaf, inclusion_proof, leaf_hash, root_from_path


def record_proof(entry: LedgerEntry, record_checksums: Sequence[str | bytes], index: int) -> dict[str, Any]:
    """Inclusion proof for record ``index`` of a partition, verifiable with ``merkle.verify_proof``.

    Raises LedgerError when the records no longer match the signed root: the vault must not
    hand out a proof it knows to be false.
    """
    if entry.kind != KIND_PARTITION:
        raise LedgerError(f"entry {entry.sequence} is a {entry.kind!r} entry, not a partition entry")
    if len(record_checksums) != entry.record_count:
        raise LedgerError(
            f"partition {entry.partition} of {entry.provider!r} holds {len(record_checksums)} records, "
            f"the ledger committed to {entry.record_count}"
        )
    path = inclusion_proof(record_checksums, index)
    leaf = as_leaf(record_checksums[index])
    digest = leaf_hash(leaf)
    root = root_from_path(digest, index, len(record_checksums), path)
    if root is None or root.hex() != entry.merkle_root:
        raise LedgerError(
            f"partition {entry.partition} of {entry.provider!r} no longer matches its signed Merkle root"
        )
    return {
        "provider": entry.provider,
        "partition": entry.partition,
        "sequence": entry.sequence,
        "leaf_index": index,
        "tree_size": entry.record_count,
        "record_checksum": "sha256:" + leaf.hex(),
        "leaf_hash": digest.hex(),
        "audit_path": [p.hex() for p in path],
        "merkle_root": entry.merkle_root,
        "entry": entry.to_dict(),
    }
