"""The tamper-evident ledger: a signed hash chain of what every partition committed to.

For each provider the vault appends one signed entry per landed partition (and, in later
stages, per promotion decision). A partition entry names the Merkle root over the
partition's record checksums in log order, the record count and every stored object with its
checksum; each entry carries the hash of the one before it, and a separately stored, signed
checkpoint names the newest entry. An auditor holding the public key (or the shared HMAC
secret) can then tell, without trusting the vault, whether a byte, a record, an object, a
catalog entry or a ledger entry was altered, inserted, reordered or removed, including the
newest entries, whose removal only the checkpoint can reveal.

Keys and signatures (``VAULT_LEDGER_KEY``, ``$VAULT_HOME/ledger.key``) are in
``core/ledger_keys.py``; their names are re-exported here as the ledger's key API.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from vault_pipeline.core.ledger_keys import (  # noqa: F401 - re-exported: the ledger's key API
    ED25519,
    HMAC_SHA256,
    KEY_ENV,
    KEY_FILE,
    PUBLIC_KEY_FILE,
    Ed25519Signer,
    Ed25519Verifier,
    HmacSigner,
    HmacVerifier,
    LedgerKeyError,
    Signer,
    Verifier,
    load_or_create_ledger_key,
    load_public_verifier,
    signer_from_spec,
)
from vault_pipeline.core.ledger_keys import b64 as _b64
from vault_pipeline.core.ledger_keys import unb64 as _unb64
from vault_pipeline.core.merkle import (
    EMPTY_ROOT,
    MerkleBuilder,
    as_leaf,
    inclusion_proof,
    leaf_hash,
    root_from_path,
)
from vault_pipeline.core.windows import iso_z

FORMAT_VERSION = 1
#: ``previous_hash`` of a provider's first entry.
GENESIS_HASH = "0" * 64
KIND_PARTITION = "partition"
KIND_PROMOTION_DECISION = "promotion_decision"
# Entries of the vault-wide chain (VAULT_CHAIN): a redacted snapshot of vault.yaml or of the
# API key ring whenever one changes, and (written by the report service and maintenance) a
# compliance report's digest or a maintenance run.
KIND_CONFIG_SNAPSHOT = "config_snapshot"
KIND_KEY_RING_SNAPSHOT = "key_ring_snapshot"
KIND_COMPLIANCE_REPORT = "compliance_report"
KIND_MAINTENANCE_RUN = "maintenance_run"
VAULT_KINDS = frozenset({KIND_CONFIG_SNAPSHOT, KIND_KEY_RING_SNAPSHOT, KIND_COMPLIANCE_REPORT, KIND_MAINTENANCE_RUN})
KINDS = frozenset({KIND_PARTITION, KIND_PROMOTION_DECISION}) | VAULT_KINDS
#: The chain of the vault's own history (configuration, key ring, reports, maintenance). It
#: cannot be a provider's: provider names start with a letter or digit (providers/config.py).
VAULT_CHAIN = "_vault"

_CHECKPOINT_TYPE = "vault-ledger-checkpoint"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHECKSUM = re.compile(r"sha256:[0-9a-f]{64}")

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


class LedgerError(ValueError):
    """The ledger cannot be extended or read as asked (never raised by the verify functions)."""


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


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 (not ASCII-escaped), no NaN/Infinity: the signed form."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def utc_now() -> str:
    return iso_z(datetime.now(UTC))


# -- entries and checkpoints ---------------------------------------------------------------


def _load_json(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LedgerError(f"{what} is not JSON: {exc}") from None


def _without_signature(data: dict[str, Any]) -> bytes:
    del data["signature"]
    return canonical_json(data)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise LedgerError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class LedgerEntry:
    """One link of a provider's chain. Unsigned until :func:`sign_entry` fills the last three fields."""

    provider: str
    partition: str
    sequence: int
    previous_hash: str
    created_at: str
    run_id: str
    kind: str = KIND_PARTITION
    merkle_root: str = EMPTY_ROOT.hex()
    record_count: int = 0
    objects: tuple[tuple[str, str], ...] = ()
    body: Mapping[str, Any] = field(default_factory=dict)
    version: int = FORMAT_VERSION
    algorithm: str = ""
    key_id: str = ""
    signature: str = ""

    def __post_init__(self) -> None:
        objects = tuple((key, value) for key, value in self.objects)
        object.__setattr__(self, "objects", objects)
        object.__setattr__(self, "body", dict(self.body))
        _check(isinstance(self.provider, str) and bool(self.provider), "provider must be a non-empty string")
        _check(isinstance(self.partition, str), "partition must be a string")
        _check(_is_int(self.sequence) and self.sequence >= 1, f"sequence must be an integer >= 1, not {self.sequence!r}")
        _check(isinstance(self.previous_hash, str) and bool(_HEX64.fullmatch(self.previous_hash)),
               "previous_hash must be 64 lowercase hex")
        _check(isinstance(self.merkle_root, str) and bool(_HEX64.fullmatch(self.merkle_root)),
               "merkle_root must be 64 lowercase hex")
        _check(_is_int(self.record_count) and self.record_count >= 0, "record_count must be an integer >= 0")
        _check(self.kind in KINDS, f"kind must be one of {sorted(KINDS)}, not {self.kind!r}")
        _check(isinstance(self.created_at, str) and isinstance(self.run_id, str), "created_at and run_id are strings")
        for key, value in objects:
            _check(isinstance(key, str) and bool(key), f"object key must be a non-empty string, not {key!r}")
            _check(isinstance(value, str) and bool(_CHECKSUM.fullmatch(value)),
                   f"object {key!r}: checksum must be 'sha256:<hex>'")
        _check(all(isinstance(k, str) for k in self.body), "body keys must be strings")
        _check(_is_int(self.version), "version must be an integer")

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "provider": self.provider,
            "partition": self.partition,
            "sequence": self.sequence,
            "kind": self.kind,
            "merkle_root": self.merkle_root,
            "record_count": self.record_count,
            "objects": [[key, value] for key, value in self.objects],
            "previous_hash": self.previous_hash,
            "created_at": self.created_at,
            "run_id": self.run_id,
            "body": dict(self.body),
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    def to_json(self) -> str:
        return canonical_json(self.to_dict()).decode("utf-8")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        """Parse a stored entry; raises LedgerError on anything but the exact shape written."""
        if not isinstance(data, Mapping):
            raise LedgerError(f"a ledger entry is a JSON object, not {type(data).__name__}")
        names = set(cls.__dataclass_fields__)
        unknown = set(data) - names
        missing = names - set(data)
        # Extra fields would be covered by no signature check of ours: refuse rather than drop.
        _check(not unknown, f"unknown ledger entry fields: {sorted(unknown)}")
        _check(not missing, f"ledger entry lacks fields: {sorted(missing)}")
        objects = data["objects"]
        _check(isinstance(objects, list) and all(isinstance(o, list) and len(o) == 2 for o in objects),
               "objects must be a list of [key, checksum] pairs")
        _check(isinstance(data["body"], Mapping), "body must be an object")
        for name in ("algorithm", "key_id", "signature"):
            _check(isinstance(data[name], str), f"{name} must be a string")
        return cls(**{**data, "objects": tuple(tuple(o) for o in objects)})

    @classmethod
    def from_json(cls, text: str | bytes) -> LedgerEntry:
        return cls.from_dict(_load_json(text, "ledger entry"))

    def signed_bytes(self) -> bytes:
        """What the signature covers and what ``entry_hash`` hashes: everything but the signature."""
        return _without_signature(self.to_dict())

    @property
    def entry_hash(self) -> str:
        return entry_hash(self)


def entry_hash(entry: LedgerEntry) -> str:
    """SHA-256 hex of the entry's signed bytes: what the next entry and the checkpoint commit to."""
    return hashlib.sha256(entry.signed_bytes()).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """The signed head of a provider's chain, stored apart from the entries so truncation shows."""

    provider: str
    sequence: int
    entry_hash: str
    created_at: str
    algorithm: str = ""
    key_id: str = ""
    signature: str = ""

    def __post_init__(self) -> None:
        _check(isinstance(self.provider, str) and bool(self.provider), "provider must be a non-empty string")
        _check(_is_int(self.sequence) and self.sequence >= 1, "checkpoint sequence must be an integer >= 1")
        _check(isinstance(self.entry_hash, str) and bool(_HEX64.fullmatch(self.entry_hash)),
               "entry_hash must be 64 lowercase hex")
        for name in ("created_at", "algorithm", "key_id", "signature"):
            _check(isinstance(getattr(self, name), str), f"{name} must be a string")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": _CHECKPOINT_TYPE,
            "provider": self.provider,
            "sequence": self.sequence,
            "entry_hash": self.entry_hash,
            "created_at": self.created_at,
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    def to_json(self) -> str:
        return canonical_json(self.to_dict()).decode("utf-8")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        if not isinstance(data, Mapping) or data.get("type") != _CHECKPOINT_TYPE:
            raise LedgerError("not a ledger checkpoint")
        names = set(cls.__dataclass_fields__)
        _check(set(data) - {"type"} == names, f"checkpoint fields must be exactly {sorted(names | {'type'})}")
        return cls(**{k: v for k, v in data.items() if k != "type"})

    @classmethod
    def from_json(cls, text: str | bytes) -> Checkpoint:
        return cls.from_dict(_load_json(text, "checkpoint"))

    def signed_bytes(self) -> bytes:
        # The "type" marker keeps a checkpoint signature from ever passing as an entry's.
        return _without_signature(self.to_dict())


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


# -- building entries ----------------------------------------------------------------------


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
        # Converted and summed here, hashed by the builder in chunks: keeps the per-leaf cost
        # close to the bare builder's for million-record partitions.
        chunk: list[bytes] = []
        total = self._sum
        from_bytes = int.from_bytes
        for value in record_checksums:
            leaf = as_leaf(value)
            total += from_bytes(leaf, "big")
            chunk.append(leaf)
            if len(chunk) == 8192:
                self._tree.add_many(chunk)
                chunk.clear()
        self._tree.add_many(chunk)
        self._sum = total

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


def partition_entry(
    *,
    provider: str,
    partition: str,
    sequence: int,
    previous_hash: str,
    record_checksums: Iterable[str | bytes],
    objects: Iterable[tuple[str, str]],
    run_id: str,
    created_at: str | None = None,
    body: Mapping[str, Any] | None = None,
) -> LedgerEntry:
    """An unsigned partition entry; ``record_checksums`` may be a stream (O(log n) memory)."""
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


# -- verification --------------------------------------------------------------------------


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
