"""The masking settings a promotion runs with, built from ``vault.yaml`` policies and the key.

``pii_masking: redact`` needs nothing else. ``pseudonym`` needs a secret so tokens cannot be
reversed or confirmed by anyone without it: ``VAULT_PSEUDONYM_KEY`` if set (at least 16
characters), else a key generated once into ``$VAULT_HOME/pseudonym.key`` with mode 0600, the
same way the embedded default keeps its ledger key. The key never appears in the catalog, a
manifest, a ledger entry or a log line; only the policy name does.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vault_pipeline.core.pii import PSEUDONYM, MaskPolicy, PiiScanner
from vault_pipeline.providers.config import Policies

KEY_ENV = "VAULT_PSEUDONYM_KEY"
KEY_FILE = "pseudonym.key"


class PseudonymKeyError(ValueError):
    """The pseudonym key is missing, short or stored unsafely (messages never hold the key)."""


@dataclass(frozen=True)
class MaskingSettings:
    policy: MaskPolicy
    scanner: PiiScanner
    tier: str

    @property
    def mode(self) -> str:
        return self.policy.mode


def pseudonym_key(home: Path, env: Mapping[str, str] = os.environ) -> bytes:
    value = env.get(KEY_ENV)
    if value:
        if len(value) < 16:
            raise PseudonymKeyError(f"{KEY_ENV} must be at least 16 characters")
        return value.encode("utf-8")
    path = Path(home) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
    mode = path.stat().st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PseudonymKeyError(f"{path} is accessible to group or others; run: chmod 600 {path}")
    key = path.read_text(encoding="ascii").strip()
    if len(key) < 16:
        raise PseudonymKeyError(f"{path} holds no usable key (at least 16 characters)")
    return key.encode("ascii")


def masking_settings(policies: Policies, home: Path, env: Mapping[str, str] = os.environ) -> MaskingSettings:
    if policies.pii_masking == PSEUDONYM:
        policy = MaskPolicy.pseudonym(pseudonym_key(home, env))
    else:
        policy = MaskPolicy.redact()
    return MaskingSettings(policy, PiiScanner(count_ip_addresses=policies.count_ip_addresses), policies.promotion_tier)
