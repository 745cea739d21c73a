"""Verifying the ledger: everything wrong with a chain, a partition's records or its objects.

``verify_chain`` checks one provider's chain without trusting the order it was read in: every
signature, every link to the entry before, no gap, no duplicate, no entry of another provider,
and the signed checkpoint, without which the deletion of the newest entries could not be seen.
``verify_partition_records`` and ``verify_partition_objects`` compare what the vault holds now
with what a partition entry committed to. What is wrong with the data is returned as
``Finding`` values rather than raised, so that one run of ``vault verify`` reports all of it.
Re-exported by ``core/ledger.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vault_pipeline.core.ledger_append import PartitionDigest
from vault_pipeline.core.ledger_entries import (
    GENESIS_HASH,
    KIND_PARTITION,
    Checkpoint,
    LedgerEntry,
    LedgerError,
    _is_int,
    entry_hash,
)
from vault_pipeline.core.ledger_keys import Verifier
from vault_pipeline.core.ledger_signing import _keyring, _signature_problem

# -- finding types (stable names: `vault verify` output, reports and alerts key on them) ------

SIGNATURE_INVALID = "signature_invalid"
CHAIN_BROKEN = "chain_broken"
ENTRY_MISSING = "entry_missing"
ENTRY_DUPLICATED = "entry_duplicated"
ENTRY_MISPLACED = "entry_misplaced"
ENTRY_UNREADABLE = "entry_unreadable"
LEDGER_TRUNCATED = "ledger_truncated"
CHECKPOINT_MISSING = "checkpoint_missing"
CHECKPOINT_INVALID = "checkpoint_invalid"
CHECKPOINT_MISMATCH = "checkpoint_mismatch"
RECORD_INSERTED = "record_inserted"
RECORD_DELETED = "record_deleted"
RECORD_ALTERED = "record_altered"
RECORDS_REORDERED = "records_reordered"
OBJECT_MISSING = "object_missing"
OBJECT_ALTERED = "object_altered"

FINDING_TYPES = frozenset(
    {
        SIGNATURE_INVALID, CHAIN_BROKEN, ENTRY_MISSING, ENTRY_DUPLICATED, ENTRY_MISPLACED,
        ENTRY_UNREADABLE, LEDGER_TRUNCATED, CHECKPOINT_MISSING, CHECKPOINT_INVALID,
        CHECKPOINT_MISMATCH, RECORD_INSERTED, RECORD_DELETED, RECORD_ALTERED,
        RECORDS_REORDERED, OBJECT_MISSING, OBJECT_ALTERED,
    }
)


@dataclass(frozen=True, slots=True)
class Finding:
    type: str
    provider: str
    sequence: int | None
    detail: str
    partition: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "provider": self.provider,
            "sequence": self.sequence,
            "partition": self.partition,
            "detail": self.detail,
        }


def entries_from_dicts(
    items: Iterable[Mapping[str, Any]], provider: str
) -> tuple[list[LedgerEntry], list[Finding]]:
    """Parse stored entries; the unparseable ones become ``entry_unreadable`` findings."""
    entries: list[LedgerEntry] = []
    findings: list[Finding] = []
    for position, item in enumerate(items):
        try:
            entries.append(LedgerEntry.from_dict(item))
        except (LedgerError, TypeError) as exc:
            sequence = item.get("sequence") if isinstance(item, Mapping) else None
            findings.append(Finding(
                ENTRY_UNREADABLE, provider, sequence if _is_int(sequence) else None,
                f"stored entry #{position} cannot be read: {exc}",
            ))
    return entries, findings


def verify_chain(
    entries: Iterable[LedgerEntry],
    checkpoint: Checkpoint | None,
    verifier: Verifier | Iterable[Verifier],
    *,
    provider: str | None = None,
) -> list[Finding]:
    """Everything wrong with one provider's chain, ordered by sequence; empty when it is intact.

    ``verifier`` is the trusted key (or several, for rotated keys). Entries are taken by their
    signed sequence numbers, so the order they were read in does not matter.
    """
    entries = list(entries)
    if provider is None:
        provider = checkpoint.provider if checkpoint else (entries[0].provider if entries else None)
    if provider is None:
        return []
    keyring = _keyring(verifier)
    findings: list[Finding] = []

    by_sequence: dict[int, LedgerEntry] = {}
    for entry in sorted(entries, key=lambda e: e.sequence):
        if entry.provider != provider:
            findings.append(Finding(
                ENTRY_MISPLACED, provider, entry.sequence,
                f"entry of provider {entry.provider!r} found in the ledger of {provider!r}", entry.partition,
            ))
            continue
        problem = _signature_problem(entry, keyring)
        if problem:
            findings.append(Finding(SIGNATURE_INVALID, provider, entry.sequence, problem, entry.partition))
        if entry.sequence in by_sequence:
            same = entry_hash(entry) == entry_hash(by_sequence[entry.sequence])
            findings.append(Finding(
                ENTRY_DUPLICATED, provider, entry.sequence,
                f"entry {entry.sequence} is stored twice" + ("" if same else " with different content"),
                entry.partition,
            ))
            continue
        by_sequence[entry.sequence] = entry

    hashes = {sequence: entry_hash(entry) for sequence, entry in by_sequence.items()}
    expected, previous_hash = 1, GENESIS_HASH
    for sequence in sorted(by_sequence):
        entry = by_sequence[sequence]
        if sequence > expected:
            gap = f"{expected}" if sequence - expected == 1 else f"{expected}..{sequence - 1}"
            for missing in range(expected, sequence):
                findings.append(Finding(
                    ENTRY_MISSING, provider, missing,
                    f"entry {missing} is missing (entries {gap} absent before entry {sequence})",
                ))
        elif entry.previous_hash != previous_hash:
            if sequence == 1:
                detail = "the first entry does not start from the genesis hash"
            else:
                detail = (
                    f"entry {sequence} commits to previous hash {entry.previous_hash[:16]}..., but entry "
                    f"{sequence - 1} hashes to {previous_hash[:16]}...: entry {sequence - 1} was altered or replaced"
                )
            findings.append(Finding(CHAIN_BROKEN, provider, sequence, detail, entry.partition))
        expected, previous_hash = sequence + 1, hashes[sequence]

    newest = max(by_sequence, default=0)
    if checkpoint is None:
        if by_sequence:
            findings.append(Finding(
                CHECKPOINT_MISSING, provider, newest,
                "no checkpoint is stored: deletion of the newest entries cannot be ruled out",
            ))
    else:
        problem = (
            f"checkpoint belongs to provider {checkpoint.provider!r}"
            if checkpoint.provider != provider
            else _signature_problem(checkpoint, keyring)
        )
        if problem:
            findings.append(Finding(CHECKPOINT_INVALID, provider, checkpoint.sequence, problem))
        elif checkpoint.sequence > newest:
            for missing in range(newest + 1, checkpoint.sequence + 1):
                findings.append(Finding(
                    LEDGER_TRUNCATED, provider, missing,
                    f"entry {missing} is missing: the checkpoint names entry {checkpoint.sequence} "
                    f"but the ledger ends at {newest}",
                ))
        elif checkpoint.sequence in hashes and hashes[checkpoint.sequence] != checkpoint.entry_hash:
            entry = by_sequence[checkpoint.sequence]
            findings.append(Finding(
                CHECKPOINT_MISMATCH, provider, checkpoint.sequence,
                f"entry {checkpoint.sequence} hashes to {hashes[checkpoint.sequence][:16]}..., but the "
                f"checkpoint commits to {checkpoint.entry_hash[:16]}...: the entry was altered or replaced",
                entry.partition,
            ))

    findings.sort(key=lambda f: (f.sequence is None, f.sequence or 0))
    return findings


def verify_partition_records(entry: LedgerEntry, record_checksums: Iterable[str | bytes]) -> list[Finding]:
    """Compare the records the vault holds now (checksums in log order) with what ``entry`` committed to."""
    if entry.kind != KIND_PARTITION:
        raise LedgerError(f"entry {entry.sequence} is a {entry.kind!r} entry, not a partition entry")
    digest = PartitionDigest()
    digest.add_many(record_checksums)
    return verify_partition_digest(entry, digest)


def verify_partition_digest(entry: LedgerEntry, digest: PartitionDigest) -> list[Finding]:
    """:func:`verify_partition_records` for a digest already computed (possibly in parts)."""
    if entry.kind != KIND_PARTITION:
        raise LedgerError(f"entry {entry.sequence} is a {entry.kind!r} entry, not a partition entry")

    def finding(kind: str, detail: str) -> Finding:
        return Finding(kind, entry.provider, entry.sequence, detail, entry.partition)

    if digest.count > entry.record_count:
        extra = digest.count - entry.record_count
        return [finding(RECORD_INSERTED, f"{extra} record(s) more than the {entry.record_count} the ledger committed to")]
    if digest.count < entry.record_count:
        gone = entry.record_count - digest.count
        return [finding(RECORD_DELETED, f"{gone} of the {entry.record_count} committed record(s) are missing")]
    if digest.root_hex() == entry.merkle_root:
        return []
    if entry.body.get("leaf_sum") == digest.leaf_sum_hex():
        return [finding(RECORDS_REORDERED, "the same records are present in a different order")]
    return [finding(RECORD_ALTERED, "at least one record's bytes differ from what the ledger committed to")]


def verify_partition_objects(entry: LedgerEntry, stored: Mapping[str, str | None]) -> list[Finding]:
    """Check each object the entry names against ``stored``: key -> checksum of its bytes now (None: gone)."""
    findings = []
    for key, committed in entry.objects:
        actual = stored.get(key)
        if actual is None:
            findings.append(Finding(OBJECT_MISSING, entry.provider, entry.sequence,
                                    f"object {key} is missing", entry.partition))
        elif actual != committed:
            findings.append(Finding(OBJECT_ALTERED, entry.provider, entry.sequence,
                                    f"object {key} has checksum {actual}, the ledger committed to {committed}",
                                    entry.partition))
    return findings
