"""Checksums in the one format the vault uses everywhere: ``sha256:<hex>``.

Every stored object, every record span and every artifact carries a checksum in this format,
so a value read from the catalog can be compared with a hash of the bytes without any
translation.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "sha256:"
_CHECKSUM = re.compile(r"sha256:[0-9a-f]{64}")


def sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def checksum(data: bytes | bytearray | memoryview) -> str:
    """The vault checksum of ``data``: ``sha256:`` followed by the lowercase hex digest."""
    return PREFIX + hashlib.sha256(data).hexdigest()


def hex_of(value: str) -> str:
    """The hex digest inside a vault checksum; raises ValueError for anything else."""
    # int(digest, 16) would also accept '_', '+', '-' and spaces; the format is exactly lowercase hex.
    if not isinstance(value, str) or not _CHECKSUM.fullmatch(value):
        raise ValueError(f"not a vault checksum (expected 'sha256:<64 lowercase hex>'): {value!r}")
    return value[len(PREFIX):]
