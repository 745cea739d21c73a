"""The PII types the vault detects and how a finding is reported, shared by detection and masking.

Each type has a stable name (``email``, ``ssn``, ``credit_card``, ...) that appears in findings,
masking reports, placeholders and pseudonyms, and a priority that decides which type wins when
two detections overlap. A ``Finding`` says where a value is (a JSONPath-like path and a
character span) and never holds the value itself. The helpers for paths, span replacement and
collision-free key renaming live here because the scanner and the masker must agree on them.
Split from ``core/pii_detectors.py``, which re-exports every public name here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

EMAIL = "email"
SSN = "ssn"
CREDIT_CARD = "credit_card"
PHONE = "phone"
IPV4 = "ipv4"
IPV6 = "ipv6"
AWS_ACCESS_KEY_ID = "aws_access_key_id"
AWS_SECRET_KEY = "aws_secret_key"
JWT = "jwt"
BEARER_TOKEN = "bearer_token"
PRIVATE_KEY = "private_key"
API_KEY = "api_key"

# Priority order: when two detections overlap, the earlier (more specific) type wins, so a JWT
# after "Bearer" is a jwt, and the IPv4 tail of "::ffff:192.0.2.1" stays part of the ipv6.
PII_TYPES: tuple[str, ...] = (
    PRIVATE_KEY, JWT, BEARER_TOKEN, AWS_ACCESS_KEY_ID, AWS_SECRET_KEY, EMAIL,
    CREDIT_CARD, SSN, IPV6, IPV4, PHONE, API_KEY,
)
IP_TYPES = frozenset({IPV4, IPV6})
_PRIORITY = {name: rank for rank, name in enumerate(PII_TYPES)}


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected value: its type, where it is, and its span within that string."""

    type: str
    path: str  # JSONPath-like, e.g. $.user.emails[2]; PII keys appear redacted
    start: int  # character offsets within the string (the key's text when in_key)
    end: int
    in_key: bool = False


Hit = tuple[str, int, int]  # (type, start, end) within one string

# Masked output must never be detected again (masking is idempotent): pseudonym tokens look
# like "<type>_<hex>" and placeholders like "[EMAIL]"; detectors drop candidates of that shape.
PSEUDONYM = re.compile(r"(?:%s)_[0-9a-f]{8,64}" % "|".join(PII_TYPES))


def placeholder(pii_type: str) -> str:
    return f"[{pii_type.upper()}]"


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def format_path(path: tuple | None) -> str:
    segments = []
    while path is not None:
        path, seg = path
        segments.append(seg)
    parts = ["$"]
    for seg in reversed(segments):
        if type(seg) is int:
            parts.append(f"[{seg}]")
        elif _IDENTIFIER.fullmatch(seg):
            parts.append("." + seg)
        else:
            parts.append("[" + json.dumps(seg, ensure_ascii=False) + "]")
    return "".join(parts)


def replace_spans(text: str, hits: tuple[Hit, ...], token_for) -> str:
    """``text`` with each (type, start, end) span replaced by ``token_for(type, value)``."""
    pieces, last = [], 0
    for pii_type, start, end in hits:
        pieces.append(text[last:start])
        pieces.append(token_for(pii_type, text[start:end]))
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def unique_keys(value: dict, new_name) -> dict:
    """Map each str key of ``value`` to its masked name, never colliding with another key.

    Keys without findings keep their name; a masked key whose name is already taken (two
    emails both redacted to ``[EMAIL]``, or a key that is literally ``[EMAIL]``) gets ``#2``,
    ``#3``, ... appended. ``new_name(key)`` returns the masked name, or None if unchanged.
    """
    masked = {k: n for k in value if type(k) is str and (n := new_name(k)) is not None}
    taken = {k for k in value if k not in masked}
    names = {}
    for key in value:
        if key not in masked:
            names[key] = key
            continue
        name, n = masked[key], 1
        while name in taken:
            n += 1
            name = f"{masked[key]}#{n}"
        taken.add(name)
        names[key] = name
    return names
