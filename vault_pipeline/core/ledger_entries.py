"""Ledger entries and checkpoints: the exact, signed form in which the ledger is stored.

Every link of a provider's chain is a ``LedgerEntry`` and the chain's newest link is named by
a ``Checkpoint``; both are parsed strictly (a field that is unknown, missing or of the wrong
type is refused, so nothing unsigned slips in) and serialised as canonical JSON, the bytes that
signatures cover and that the next entry's ``previous_hash`` commits to. The kinds of entry
(partitions, promotion decisions and the vault-wide chain's snapshots, reports and maintenance
runs) are named here too. Signing is in ``core/ledger_signing.py``; ``core/ledger.py``
re-exports every public name here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vault_pipeline.core.merkle import EMPTY_ROOT
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


class LedgerError(ValueError):
    """The ledger cannot be extended or read as asked (never raised by the verify functions)."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 (not ASCII-escaped), no NaN/Infinity: the signed form."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def utc_now() -> str:
    return iso_z(datetime.now(UTC))


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
