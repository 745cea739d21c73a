"""Appending to the ledger: what a new entry commits to and where in its chain it goes.

A partition entry commits to the Merkle root over the partition's record checksums in log
order, the record count and an order-independent sum of the records (``PartitionDigest``, which
verification recomputes from the records the vault holds now); a promotion-decision entry
commits to the root over its per-record decision lines. ``next_position`` gives the sequence
and previous hash of the next entry and refuses to extend a chain that disagrees with its
signed checkpoint (newest entries deleted or altered). The entries built here are unsigned:
``core/ledger_signing.py`` signs them. Re-exported by ``core/ledger.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import Any

from vault_pipeline.core.ledger_entries import (
    GENESIS_HASH,
    KIND_PARTITION,
    KIND_PROMOTION_DECISION,
    Checkpoint,
    LedgerEntry,
    LedgerError,
    entry_hash,
    utc_now,
)
from vault_pipeline.core.ledger_keys import Verifier
from vault_pipeline.core.ledger_signing import verify_checkpoint_signature
from vault_pipeline.core.merkle import MerkleBuilder, as_leaf, digests_from_checksums


class PartitionDigest:
    """Streams a partition's record checksums (log order) into what its ledger entry commits to.

    Besides the Merkle root and the count it keeps the sum of the leaves modulo 2^256, which
    does not depend on order: when a root no longer matches but the sum does, the records
    were reordered rather than changed. The sum only names the kind of tampering; detecting
    it is the root's job.
    """

    __slots__ = ("_tree", "_sum")

    def __init__(self) -> None:
        self._tree = MerkleBuilder()
        self._sum = 0

    def add(self, record_checksum: str | bytes) -> None:
        self.add_many((record_checksum,))

    def add_many(self, record_checksums: Iterable[str | bytes]) -> None:
        # Converted a chunk at a time: a chunk of checksums (the usual stream) goes through
        # ``digests_from_checksums`` in one pass, anything else leaf by leaf; the builder hashes
        # either in chunks (a 1M-record root 1.25 -> 1.06 s, most of it now the hashing).
        values = iter(record_checksums)
        while chunk := list(islice(values, 8192)):
            if all(type(value) is str for value in chunk):
                digests, _odd = digests_from_checksums(chunk)  # an invalid one raises as as_leaf does
                self.add_digests(digests)
            else:
                self.add_leaves([as_leaf(value) for value in chunk])

    def add_digests(self, digests: bytes) -> None:
        """Add leaves given as concatenated 32-byte digests (see ``merkle.digests_from_checksums``)."""
        if len(digests) % 32:
            raise ValueError("digests must be a whole number of 32-byte SHA-256 digests")
        self.add_leaves([digests[i : i + 32] for i in range(0, len(digests), 32)])

    def add_leaves(self, leaves: Sequence[bytes]) -> None:
        """Add 32-byte digests (``bytes``) as they are: no conversion, no per-leaf checks."""
        self._tree.add_many(leaves)
        # A C-level big-int sum over the leaves; cheaper than numpy's carry handling here.
        self._sum += sum(map(int.from_bytes, leaves))

    def part(self) -> tuple[int, list[tuple[int, bytes]], int]:
        """This digest as a picklable part ``(count, subtrees, leaf sum)`` for :meth:`combine`."""
        return self._tree.count, self._tree.subtrees(), self._sum

    @classmethod
    def combine(cls, parts: Iterable[tuple[int, list[tuple[int, bytes]], int]]) -> PartitionDigest:
        """The digest of consecutive runs of leaves hashed separately (e.g. by several processes).

        Bit-identical to streaming every leaf through one digest, as long as each part but the
        last holds a multiple of the largest power of two subtree its successor starts with
        (in practice: parts cut at multiples of a fixed power of two).
        """
        digest = cls()
        for count, subtrees, leaf_sum in parts:
            for size, root in subtrees:
                digest._tree.add_subtree(size, root)
            if sum(size for size, _ in subtrees) != count:
                raise ValueError("a partition digest part's subtrees do not add up to its count")
            digest._sum += leaf_sum
        return digest

    @property
    def count(self) -> int:
        return self._tree.count

    def root_hex(self) -> str:
        return self._tree.root_hex()

    def leaf_sum_hex(self) -> str:
        return f"{self._sum % (1 << 256):064x}"


def next_position(
    head: LedgerEntry | None,
    checkpoint: Checkpoint | None,
    verifier: Verifier | Iterable[Verifier],
) -> tuple[int, str]:
    """``(sequence, previous_hash)`` for the next entry after ``head``, the newest stored entry.

    Refuses to extend a chain whose head disagrees with a valid checkpoint, so that a
    truncated ledger is never papered over by new entries reusing the deleted sequences.
    A head one or more entries past the checkpoint is accepted: the writer stores the entry
    before the checkpoint, so a crash in between leaves the checkpoint behind.
    """
    if checkpoint is not None:
        if not verify_checkpoint_signature(checkpoint, verifier):
            raise LedgerError(f"checkpoint for {checkpoint.provider!r} does not verify; run `vault verify`")
        if head is None or head.sequence < checkpoint.sequence:
            newest = head.sequence if head else 0
            raise LedgerError(
                f"ledger of {checkpoint.provider!r} ends at entry {newest} but its checkpoint names entry "
                f"{checkpoint.sequence}: entries were deleted; run `vault verify`"
            )
        if head.sequence == checkpoint.sequence and entry_hash(head) != checkpoint.entry_hash:
            raise LedgerError(
                f"entry {head.sequence} of {head.provider!r} differs from its checkpoint; run `vault verify`"
            )
    if head is None:
        return 1, GENESIS_HASH
    return head.sequence + 1, entry_hash(head)


def digest_document(digest: PartitionDigest) -> dict[str, Any]:
    """A digest as JSON (its root and record count for people, its subtrees to carry on from)."""
    count, subtrees, _leaf_sum = digest.part()
    return {"records": count, "merkle_root": digest.root_hex(), "leaf_sum": digest.leaf_sum_hex(),
            "subtrees": [[size, root.hex()] for size, root in subtrees]}


def digest_from_document(document: Mapping[str, Any]) -> PartitionDigest:
    """The digest ``digest_document`` wrote, checked against the root and count written beside it."""
    try:
        subtrees = [(int(size), bytes.fromhex(root)) for size, root in document["subtrees"]]
        digest = PartitionDigest.combine([(int(document["records"]), subtrees, int(document["leaf_sum"], 16))])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a partition digest: {exc}") from exc
    if (digest.count, digest.root_hex(), digest.leaf_sum_hex()) != (
            document["records"], document["merkle_root"], document["leaf_sum"]):
        raise ValueError("a partition digest whose subtrees do not give the root and count written beside them")
    return digest


def partition_entry(
    *,
    provider: str,
    partition: str,
    sequence: int,
    previous_hash: str,
    record_checksums: Iterable[str | bytes] | None = None,
    objects: Iterable[tuple[str, str]],
    run_id: str,
    created_at: str | None = None,
    body: Mapping[str, Any] | None = None,
    digest: PartitionDigest | None = None,
) -> LedgerEntry:
    """An unsigned partition entry; ``record_checksums`` may be a stream (O(log n) memory), or
    ``digest`` the same records' digest already taken."""
    if (record_checksums is None) == (digest is None):
        raise ValueError("a partition entry is made of record checksums or of their digest, exactly one")
    if digest is None:
        digest = PartitionDigest()
        digest.add_many(record_checksums)
    return _unsigned_entry(
        KIND_PARTITION, digest.root_hex(), digest.count, provider=provider, partition=partition,
        sequence=sequence, previous_hash=previous_hash, objects=objects, run_id=run_id, created_at=created_at,
        body={**(body or {}), "leaf_sum": digest.leaf_sum_hex()},
    )


def _unsigned_entry(kind: str, merkle_root: str, record_count: int, *, provider: str, partition: str, sequence: int,
                    previous_hash: str, objects: Iterable[tuple[str, str]], run_id: str, created_at: str | None,
                    body: Mapping[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        provider=provider, partition=partition, sequence=sequence, previous_hash=previous_hash,
        created_at=created_at or utc_now(), run_id=run_id, kind=kind, merkle_root=merkle_root,
        record_count=record_count, objects=tuple(objects), body=dict(body),
    )


def decision_entry(
    *,
    provider: str,
    partition: str,
    sequence: int,
    previous_hash: str,
    decision_lines: Iterable[bytes],
    objects: Iterable[tuple[str, str]],
    run_id: str,
    body: Mapping[str, Any],
    created_at: str | None = None,
) -> LedgerEntry:
    """An unsigned ``promotion_decision`` entry: the Merkle root over the SHA-256 of each
    per-record decision line (canonical JSON, in log order), the number of decisions, and
    the golden/quarantine objects written, with their checksums."""
    tree = MerkleBuilder()
    tree.add_many(hashlib.sha256(line).digest() for line in decision_lines)
    return _unsigned_entry(
        KIND_PROMOTION_DECISION, tree.root_hex(), tree.count, provider=provider, partition=partition,
        sequence=sequence, previous_hash=previous_hash, objects=objects, run_id=run_id, created_at=created_at,
        body=body,
    )
