"""Rules for credentials: AWS keys, JWTs, Bearer and Basic tokens, PEM private keys, API keys.

Live credentials must never reach the golden zone. Vendor formats are recognised by prefix
(AWS key ids, ``sk-``, ``ghp_``, ...), JWTs only when their header decodes as JSON, Basic
credentials only when they decode to ``user:password``, and anything else only when it looks
machine-generated (mixed case and digits, high entropy, frequent changes of character class,
not made of words and not base64 of readable text), so identifiers, paths, hashes and our own
pseudonyms are left alone. Public certificates and keys shield their base64 bodies from being
read as API keys. Each rule appends ``(priority, start, end, type)`` candidates that
``pii_detectors.detect`` resolves. Split from ``core/pii_detectors.py``, which re-exports the
public names here.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter

from vault_pipeline.core.pii_findings import (
    _PRIORITY,
    API_KEY,
    AWS_ACCESS_KEY_ID,
    AWS_SECRET_KEY,
    BEARER_TOKEN,
    JWT,
    PRIVATE_KEY,
    PSEUDONYM,
)

_AWS_KEY_ID = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")
# '=' only as trailing padding, so "api_key=<token>" splits into the name and the token.
_TOKEN_RUN = re.compile(r"(?<![A-Za-z0-9_+/-])[A-Za-z0-9_+/-]{20,}={0,2}(?![A-Za-z0-9_+/=-])")
_AWS_SECRET_SHAPE = re.compile(r"[A-Za-z0-9/+]{40}")
_INTEGRITY = re.compile(r"sha(?:1|256|384|512)-")  # subresource-integrity hashes are base64, not keys
_AWS_SECRET_CONTEXT = re.compile(r"(?i)aws|secret")
_JWT = re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{4,}={0,2}\.[A-Za-z0-9_-]{4,}={0,2}\.[A-Za-z0-9_-]*={0,2}(?![\w-])")
_BEARER = re.compile(r"(?<![A-Za-z0-9])(?i:bearer)\s+([A-Za-z0-9._~+/-]{8,}=*)(?![A-Za-z0-9._~+/=-])")
_BASIC = re.compile(r"(?<![A-Za-z0-9])(?i:basic)\s+([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])")
# Certificates and public keys are not secret; their base64 bodies must not read as API keys.
_PUBLIC_PEM = re.compile(r"-----BEGIN (?![A-Z0-9 ]*PRIVATE)([A-Z0-9 ]+)-----.*?(?:-----END \1-----|\Z)", re.S)
_SHIELD = "_shield"  # a pseudo-finding that only blocks overlapping candidates
_PEM = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY((?: BLOCK)?)-----.*?(?:-----END \1PRIVATE KEY\2-----|\Z)", re.S)
# Vendor key formats: recognised by prefix, whatever their entropy.
_KNOWN_TOKEN = re.compile(
    r"sk-(?:proj-|ant-(?:api03-)?)?[A-Za-z0-9_-]{20,}|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|npm_[A-Za-z0-9]{36}|hf_[A-Za-z0-9]{30,}"
)
_HAS_DIGIT = re.compile(r"\d")
_CLASS_OF = str.maketrans(
    {**{chr(c): "A" for c in range(65, 91)}, **{chr(c): "a" for c in range(97, 123)}, **{chr(c): "0" for c in range(48, 58)}}
)
_CLASS_RUN = re.compile(r"A+|a+|0+|[^Aa0]+")
_WORD = re.compile(r"[A-Z]?[a-z]{2,}|[A-Z]{2,}(?![a-z])")
_VOWEL = re.compile(r"[aeiouyAEIOUY]")
MAX_API_KEY_LENGTH = 256  # longer runs are encoded blobs (images, payloads), not credentials


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text`` under its own character distribution."""
    n = len(text)
    return math.log2(n) - sum(c * math.log2(c) for c in Counter(text).values()) / n


def looks_random(token: str) -> bool:
    """The generic high-entropy rule: what a machine-generated secret looks like.

    Upper case, lower case and digits all present (this alone excludes hex digests, UUIDs,
    ``sha256:`` checksums, our own pseudonyms and AWS user ids), Shannon entropy close to that
    of random base62 for the length, and frequent switches between character classes (random
    text switches on ~60 % of characters; camelCase identifiers and paths far less often).
    """
    n = len(token)
    if n < 20 or token.lower() == token or token.upper() == token or not _HAS_DIGIT.search(token):
        return False
    classes = token.translate(_CLASS_OF)
    if (len(_CLASS_RUN.findall(classes)) - 1) / (n - 1) < 0.3:
        return False
    if shannon_entropy(token) < min(4.0, math.log2(n) - 0.75):
        return False
    # Identifiers and paths are made of words ("getUserAccountDetailsV2Handler"): 85 %+ of
    # their letters sit in vowel-bearing word segments, which random base62 reaches < 1 % of
    # the time at 20 characters and practically never from 32 on.
    letters = sum(1 for ch in token if ch.isalpha())
    in_words = sum(len(w) for w in _WORD.findall(token) if _VOWEL.search(w))
    if in_words >= 0.85 * letters:
        return False
    return not _base64_of_text(token)


def _base64_of_text(token: str) -> bool:
    """Base64 of readable text or JSON (a lone JWT header, an encoded message) is encoded
    data, not a random key; random keys decode to random bytes."""
    body = token.rstrip("=")
    if len(body) % 4 == 1:
        return False
    try:
        raw = base64.b64decode(body.replace("-", "+").replace("_", "/") + "=" * (-len(body) % 4), validate=True)
    except (ValueError, binascii.Error):
        return False
    printable = sum(1 for b in raw if 32 <= b < 127 or b in (9, 10, 13))
    return printable >= 0.95 * len(raw)


def _jwt_header_ok(segment: str) -> bool:
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and ("alg" in header or "typ" in header)


# -- per-type rules; each appends (priority, start, end, type) candidates ----------------------


def _keyword_credentials(text: str, out: list) -> None:
    if "-----BEGIN" in text:
        for m in _PEM.finditer(text):
            out.append((_PRIORITY[PRIVATE_KEY], m.start(), m.end(), PRIVATE_KEY))
        for m in _PUBLIC_PEM.finditer(text):
            out.append((-1, m.start(), m.end(), _SHIELD))
    if "earer" in text or "EARER" in text:
        for m in _BEARER.finditer(text):
            token = m.group(1)
            if (len(token) >= 16 or _HAS_DIGIT.search(token)) and not PSEUDONYM.fullmatch(token):
                out.append((_PRIORITY[BEARER_TOKEN], m.start(1), m.end(1), BEARER_TOKEN))
    if "asic" in text or "ASIC" in text:
        # HTTP Basic credentials: base64 of "user:password"; reported as bearer_token (an
        # Authorization header credential) when the decoded value has the colon.
        for m in _BASIC.finditer(text):
            token = m.group(1)
            try:
                decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
            except (ValueError, binascii.Error):
                continue
            if b":" in decoded:
                out.append((_PRIORITY[BEARER_TOKEN], m.start(1), m.end(1), BEARER_TOKEN))


def _token_credentials(text: str, out: list) -> None:
    if "eyJ" in text:
        for m in _JWT.finditer(text):
            if _jwt_header_ok(m.group().split(".", 1)[0]):
                out.append((_PRIORITY[JWT], m.start(), m.end(), JWT))
    if "AKIA" in text or "ASIA" in text:
        for m in _AWS_KEY_ID.finditer(text):
            out.append((_PRIORITY[AWS_ACCESS_KEY_ID], m.start(), m.end(), AWS_ACCESS_KEY_ID))
    for m in _TOKEN_RUN.finditer(text):
        token = m.group()
        n = len(token)
        if n == 40 and _AWS_SECRET_SHAPE.fullmatch(token):
            # AWS secret access keys: 40 base64 characters, mixed case, and either named nearby
            # ("aws_secret_access_key=", "SecretAccessKey") or random-looking on their own.
            mixed = token.lower() != token and token.upper() != token
            if mixed and (_AWS_SECRET_CONTEXT.search(text, max(0, m.start() - 48), m.start()) or looks_random(token)):
                out.append((_PRIORITY[AWS_SECRET_KEY], m.start(), m.end(), AWS_SECRET_KEY))
                continue
        if n <= MAX_API_KEY_LENGTH and (_KNOWN_TOKEN.fullmatch(token) or (looks_random(token) and not _INTEGRITY.match(token))):
            out.append((_PRIORITY[API_KEY], m.start(), m.end(), API_KEY))
