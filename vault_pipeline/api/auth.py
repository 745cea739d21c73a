"""API keys and roles: who may call which endpoint.

Keys come from ``VAULT_API_KEYS`` as ``name:key:role+role,...`` with roles ``ingest``,
``read``, ``audit`` (raw bytes) and ``admin`` (everything). Only SHA-256 hashes of keys are
kept in memory and compared in constant time; a key's *name* is what the access log records.
On the embedded default with no keys configured, ``vault serve`` generates an admin key into
``$VAULT_HOME/api-keys`` (mode 0600) and prints it once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

ROLES = frozenset({"ingest", "read", "audit", "admin"})
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class KeyConfigError(ValueError):
    """VAULT_API_KEYS is malformed; the message says which entry and why (never the key)."""


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    roles: frozenset[str]

    def may(self, role: str) -> bool:
        return "admin" in self.roles or role in self.roles


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyRing:
    def __init__(self, entries: list[tuple[str, str, frozenset[str]]]) -> None:
        self._keys = [(_digest(key), Principal(name, roles)) for name, key, roles in entries]

    def __len__(self) -> int:
        return len(self._keys)

    def principals(self) -> list[Principal]:
        """Who the keys belong to (names and roles): what the audit trail records, never a key."""
        return [principal for _digest, principal in self._keys]

    def authenticate(self, presented: str | None) -> Principal | None:
        if not presented:
            return None
        digest = _digest(presented)
        found = None
        for known, principal in self._keys:  # no early exit: timing does not reveal which key matched
            if hmac.compare_digest(known, digest):
                found = principal
        return found


def parse_api_keys(text: str) -> KeyRing:
    entries = []
    for position, item in enumerate(filter(None, (part.strip() for part in text.split(","))), start=1):
        parts = item.split(":")
        if len(parts) != 3:
            raise KeyConfigError(f"VAULT_API_KEYS entry #{position} must be name:key:role+role")
        name, key, roles_text = parts
        roles = frozenset(filter(None, roles_text.split("+")))
        if not _NAME.match(name):
            raise KeyConfigError(f"VAULT_API_KEYS entry #{position}: key names are 1-64 of [A-Za-z0-9_.-]")
        if len(key) < 16:
            raise KeyConfigError(f"VAULT_API_KEYS entry {name!r}: keys must be at least 16 characters")
        if not roles or roles - ROLES:
            raise KeyConfigError(f"VAULT_API_KEYS entry {name!r}: roles must be from {sorted(ROLES)}")
        entries.append((name, key, roles))
    return KeyRing(entries)


def local_admin_key(home: Path) -> tuple[str, bool]:
    """The embedded default's admin key in ``$VAULT_HOME/api-keys``: (key, newly created)."""
    path = home / "api-keys"
    if path.exists():
        return path.read_text().strip(), False
    home.mkdir(parents=True, exist_ok=True)
    key = "vk_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key, True


def key_ring_from_env(home: Path) -> tuple[KeyRing, str | None]:
    """Keys from VAULT_API_KEYS, or the generated local admin key (returned when new, to print once)."""
    configured = os.environ.get("VAULT_API_KEYS", "").strip()
    if configured:
        return parse_api_keys(configured), None
    key, created = local_admin_key(home)
    return KeyRing([("local-admin", key, frozenset({"admin"}))]), key if created else None
