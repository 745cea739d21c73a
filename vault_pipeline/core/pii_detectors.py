"""Finding personal data and credentials in audit records before they are promoted to golden.

A record promoted from the raw zone to the golden zone must not carry people's contact
details, government ids, card numbers or live credentials. ``PiiScanner`` looks at every
string of a record, keys included, at any depth, and reports each hit as a ``Finding``
(type, JSON path, character span, whether it was in a key). Each type has a precise rule
(SSN ranges, Luhn plus card-network prefixes, NANP/E.164 phone shapes, real IP addresses
that are not version strings, AWS key ids, JWTs whose header decodes, PEM private-key blocks,
random-looking API keys) so that ids, checksums, timestamps and versions that merely look
similar are left alone. Scanning is fast because almost every string of an audit record is
rejected by one pre-filter regex, and strings already seen (keys, enum-like values) are
answered from a bounded memo. Paths never contain a detected value: a key that is itself
PII appears in paths in its redacted form.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import ipaddress
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

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


# -- the fast path ---------------------------------------------------------------------------
# A string can hold a finding only if it has an '@' (email), a digit run of 7+ characters or a
# '+digit' (SSN, card, phone), a dotted quad (IPv4, dotted phones), a colon-hex group (IPv6),
# a 20+ character token run (AWS keys, JWTs, API keys) or a keyword (PEM header, Bearer,
# Basic). One C-level search rejects almost every string of an audit record (names, enum
# values, regions, hostnames); for the rest, cheap preconditions select which rules run.
_GATE = re.compile(
    r"@|\d[\d ()/+-]{5,}\d|\+\d|\d\.\d{1,3}\.\d|::|:[\dA-Fa-f]{1,4}:|(?<![A-Za-z0-9_+/-])[A-Za-z0-9_+/-]{20}"
    r"|-----BEGIN|[Bb][Ee][Aa][Rr][Ee][Rr]|[Bb][Aa][Ss][Ii][Cc] "
)

# Whole-string shapes that cannot contain PII but do pass the gate: ISO timestamps, UUIDs,
# vault checksums and bare hex digests. Cheap to reject before the per-type rules.
_BENIGN = re.compile(
    r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:[.,]\d{1,9})?)?(?:Z|[+-]\d\d:?\d\d)?)?"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?:sha(?:1|224|256|384|512)|md5):[0-9a-fA-F]{32,128}|[0-9a-f]{32,128}|[0-9A-F]{32,128}"
)

# -- email -----------------------------------------------------------------------------------
_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w%+-]+(?:['.][\w%+-]+)*@((?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+([^\W\d_]{2,24}))"
    r"(?![\w-]|\.[^\W_])(?!:[\w~/])"  # not an ssh remote like git@github.com:org/repo.git
)
# "icon@2x.png" and friends: file names, not addresses (none of these is a real TLD).
_FILE_TLDS = frozenset("png jpg jpeg gif svg webp ico bmp tif tiff js mjs ts css scss json yaml yml html htm txt pdf lock map".split())

# -- SSN -------------------------------------------------------------------------------------
_SSN_DELIMITED = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])(?![.,]\d)")
_SSN_BARE = re.compile(r"(?<![\w-])(\d{3})(\d{2})(\d{4})(?![\w-])(?![.,]\d)")
_SSN_KEYWORD = re.compile(r"(?i)(?<![a-z])(?:ssn|social[\s_-]*security|ss#)")

# -- payment cards ---------------------------------------------------------------------------
_CARD_RUN = re.compile(r"(?<![\w.+])(?<!\d[ -])\d(?:[ -]?\d){12,}(?!\w)")
_CARD_SPLIT = re.compile(r"[ -]")
# (first-digits range, allowed lengths): the major networks' IIN ranges. A Luhn-valid number
# outside them (ids starting 0, 1, 7, 8, 9, ...) is not reported: one in ten random ids passes Luhn.
_CARD_NETWORKS: tuple[tuple[int, int, frozenset[int]], ...] = tuple(
    (lo, hi, frozenset(lengths))
    for lo, hi, lengths in (
        (4, 4, (13, 16, 19)),  # Visa
        (51, 55, (16,)), (2221, 2720, (16,)),  # Mastercard
        (34, 34, (15,)), (37, 37, (15,)),  # American Express
        (6011, 6011, range(16, 20)), (644, 649, range(16, 20)), (65, 65, range(16, 20)),  # Discover
        (622126, 622925, range(16, 20)), (62, 62, range(16, 20)),  # UnionPay
        (3528, 3589, range(16, 20)),  # JCB
        (300, 305, range(14, 20)), (3095, 3095, range(14, 20)), (36, 36, range(14, 20)), (38, 39, range(14, 20)),  # Diners
        (50, 50, range(13, 20)), (56, 58, range(13, 20)), (63, 63, range(13, 20)), (67, 67, range(13, 20)),  # Maestro
        (2200, 2204, range(16, 20)),  # Mir
        (60, 60, (16,)), (81, 82, (16,)),  # RuPay
    )
)

# -- phone -----------------------------------------------------------------------------------
_PHONE_INTL = re.compile(r"(?<![\w+])(?<!\d[ .-])(?:\+|(?<!\d)00)[1-9]\d{0,2}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,6})){1,6}(?!\w)")
_PHONE_NANP = re.compile(
    r"(?<![\w+.(-])(?<!\d[ .-])(?:1[ .-]?)?(?:\([2-9]\d\d\) ?|[2-9]\d\d[ .-])[2-9]\d\d[ .-]\d{4}(?!\w)(?![.-]\d)"
)
_PHONE_KEYWORD = re.compile(
    r"(?i)(?<![a-z])(?:phone|tel|telephone|mobile|cell|fax|sms|whatsapp|ph|call me(?: at)?)"
    r"(?:\s*(?:no\.?|number|#))?[\s:.=#-]{0,3}$"
)
# Case-insensitive alternations are slow in ``re``; these prechecks run on the lowercased text.
_PHONE_WORDS = ("ph", "tel", "mobile", "cell", "fax", "sms", "whatsapp", "call me")
_SSN_WORDS = ("ssn", "social", "ss#")
_PHONE_LOOSE = re.compile(r"(?<![\w+.-])(?:\(\d{1,4}\)[ .-]?)?\d(?:[ .-]?\d){6,14}(?!\w)(?![.-]\d)")
_GROUP_TAIL = re.compile(r"[ .-]?(?:\(\d{1,4}\)|\d{1,6})$")
_DATE_LIKE = re.compile(r"\d{4}[-./]\d\d[-./]\d\d|\d\d[-./]\d\d[-./]\d{4}")

# -- IP addresses ----------------------------------------------------------------------------
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w)(?!\.\d)")
# A dotted quad right after a version word or a product token ("Chrome/120.0.0.0"), or
# followed by a pre-release suffix ("1.2.3.4-beta"), is a version, not an address.
_VERSION_BEFORE = re.compile(r"(?i)(?:(?<![a-z])(?:version|ver|release|rel|build|firmware|fw|revision|rev|v)[\s:=#]{0,3}|[A-Za-z0-9]/)$")
_VERSION_AFTER = re.compile(r"[-+_~][A-Za-z]")
_IPV6 = re.compile(
    r"(?<![\w:.%])(?=[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]{2,39}(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?:%[0-9A-Za-z_.-]+)?(?![\w:])(?!\.\d)"
)

# -- credentials -----------------------------------------------------------------------------
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

# -- key context (scan of structured values only) --------------------------------------------
_CTX_VERSION, _CTX_PHONE, _CTX_SSN, _CTX_SECRET = 1, 2, 4, 8
_CTX_EXTRA = _CTX_PHONE | _CTX_SSN | _CTX_SECRET  # contexts that can add a finding
# Anchored at the end of the key: "phone_number" and "mobilePhone" name a phone, while
# "cancellation_id" (contains "cell") or "max_tokens" / "tokenizer" (contain "token") do not.
_KEY_VERSION = re.compile(r"(?i)(?:version|ver|release|build|firmware)(?:_?(?:number|id|no))?$")
_KEY_PHONE = re.compile(r"(?i)(?:phone|mobile|tel|telephone|fax|msisdn|cell)(?:_?(?:number|num|no))?s?$")
_KEY_SSN = re.compile(r"(?i)(?:ssn|social_?security(?:_?number)?)$")
_KEY_SECRET = re.compile(r"(?i)(?:secret|token|api_?key|access_?key|credentials?|private_?key)$")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_network_known(digits: str) -> bool:
    length = len(digits)
    for lo, hi, lengths in _CARD_NETWORKS:
        if length in lengths and lo <= int(digits[: len(str(lo))]) <= hi:
            return True
    return False


def ssn_valid(area: str, group: str, serial: str) -> bool:
    return area != "000" and area != "666" and area[0] != "9" and group != "00" and serial != "0000"


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


def _ipv4_is_version(text: str, start: int, end: int) -> bool:
    return bool(_VERSION_BEFORE.search(text, max(0, start - 12), start)) or bool(_VERSION_AFTER.match(text, end))


# -- per-type rules; each appends (priority, start, end, type) candidates ----------------------


def _emails(text: str, out: list) -> None:
    for m in _EMAIL.finditer(text):
        domain, tld = m.group(1), m.group(2).lower()
        if tld in _FILE_TLDS or ".." in domain:
            continue
        out.append((_PRIORITY[EMAIL], m.start(), m.end(), EMAIL))


def _ssns(text: str, out: list) -> None:
    for m in _SSN_DELIMITED.finditer(text):
        if ssn_valid(m.group(1), m.group(3), m.group(4)):
            out.append((_PRIORITY[SSN], m.start(), m.end(), SSN))
    # Nine bare digits are an SSN only right after an SSN keyword; otherwise they are ids.
    if not any(w in text.lower() for w in _SSN_WORDS):
        return
    for m in _SSN_BARE.finditer(text):
        if ssn_valid(m.group(1), m.group(2), m.group(3)) and _SSN_KEYWORD.search(text, max(0, m.start() - 24), m.start()):
            out.append((_PRIORITY[SSN], m.start(), m.end(), SSN))


def _cards(text: str, out: list) -> None:
    for m in _CARD_RUN.finditer(text):
        run = m.group()
        groups = _CARD_SPLIT.split(run)
        seps = [run[i] for i in range(len(run)) if run[i] in " -"]
        # Offsets of each group inside the run, to report exact spans for sub-ranges.
        starts, pos = [], 0
        for g in groups:
            starts.append(pos)
            pos += len(g) + 1
        used = [False] * len(groups)
        # Longest plausible sub-range of groups first: "order 12 4111 1111 1111 1111" holds a card.
        ranges = []
        for i in range(len(groups)):
            total = 0
            for j in range(i + 1, len(groups) + 1):
                total += len(groups[j - 1])
                if total > 19:
                    break
                if total >= 13:
                    ranges.append((-total, i, j))
        ranges.sort()
        for _, i, j in ranges:
            if any(used[i:j]):
                continue
            digits = "".join(groups[i:j])
            if not 13 <= len(digits) <= 19:
                continue
            if j - i > 1:
                if len(set(seps[i:j - 1])) != 1 or len(groups[i]) != 4:
                    continue
                if any(not 3 <= len(g) <= 6 for g in groups[i + 1:j]):
                    continue
            if luhn_valid(digits) and card_network_known(digits):
                for k in range(i, j):
                    used[k] = True
                s = m.start() + starts[i]
                out.append((_PRIORITY[CREDIT_CARD], s, s + len(" ".join(groups[i:j])), CREDIT_CARD))


def _phone_digits_ok(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate.replace("(0)", ""))
    if candidate.startswith("00"):
        if not re.search(r"[ .()-]", candidate):
            return False  # "0044..." without separators is more often a zero-padded id
        digits = digits[2:]
    if digits.startswith("1"):  # NANP: +1 NXX NXX XXXX
        return len(digits) == 11 and digits[1] in "23456789" and digits[4] in "23456789"
    return 8 <= len(digits) <= 15


def _phones(text: str, out: list) -> None:
    prio = _PRIORITY[PHONE]
    for m in _PHONE_INTL.finditer(text) if "+" in text or "00" in text else ():
        cand, s = m.group(), m.start()
        # A trailing number after the phone ("+1 415 555 0134 2026") is shed group by group.
        while cand and not _phone_digits_ok(cand):
            tail = _GROUP_TAIL.search(cand)
            if not tail or tail.start() == 0:
                cand = ""
                break
            cand = cand[: tail.start()]
        if cand and (cand[-1].isdigit() or cand[-1] == ")"):
            out.append((prio, s, s + len(cand), PHONE))
    for m in _PHONE_NANP.finditer(text):
        out.append((prio, m.start(), m.end(), PHONE))
    # National formats without '+' are recognised only right after a phone keyword.
    lower = text.lower()
    if any(w in lower for w in _PHONE_WORDS):
        for m in _PHONE_LOOSE.finditer(text):
            cand = m.group()
            if not _PHONE_KEYWORD.search(text, max(0, m.start() - 24), m.start()):
                continue
            n = sum(ch.isdigit() for ch in cand)
            if 7 <= n <= 15 and not _IPV4.fullmatch(cand) and not _DATE_LIKE.search(cand):
                out.append((prio, m.start(), m.end(), PHONE))


def _ipv4s(text: str, out: list) -> None:
    for m in _IPV4.finditer(text):
        if not _ipv4_is_version(text, m.start(), m.end()):
            out.append((_PRIORITY[IPV4], m.start(), m.end(), IPV4))


def _ipv6s(text: str, out: list) -> None:
    for m in _IPV6.finditer(text):
        cand = m.group()
        address = cand.split("%", 1)[0]
        # Full form has 7 colons (6 with an IPv4 tail); anything shorter needs "::". This
        # rejects clock times and MAC addresses before the (slow) stdlib parser runs.
        if "::" not in address and address.count(":") < 6:
            continue
        if not _HAS_DIGIT.search(address):
            continue  # "dead::beef", "abc::def": identifiers, not addresses
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            continue
        out.append((_PRIORITY[IPV6], m.start(), m.end(), IPV6))


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


def _resolve(cands: list) -> tuple[Hit, ...]:
    """Keep the highest-priority, then longest, of overlapping candidates; order by position."""
    if len(cands) > 1:
        cands.sort(key=lambda c: (c[0], c[1] - c[2], c[1]))
        # Kept spans are disjoint, so a sorted list of them answers "does this overlap?" with
        # two neighbours (bisect) instead of a scan: PII-dense text has thousands of candidates.
        starts: list[int] = []
        kept: list = []
        for c in cands:
            i = bisect.bisect_right(starts, c[1])
            if (i and kept[i - 1][2] > c[1]) or (i < len(kept) and kept[i][1] < c[2]):
                continue
            starts.insert(i, c[1])
            kept.insert(i, c)
        cands = kept
    return tuple((c[3], c[1], c[2]) for c in cands if c[0] >= 0)


def detect(text: str) -> tuple[Hit, ...]:
    """All findings in one string, of every type, overlaps resolved."""
    if not _GATE.search(text) or _BENIGN.fullmatch(text):
        return ()
    if _IPV4_EXACT.fullmatch(text):
        return ((IPV4, 0, len(text)),)  # sourceIPAddress and friends: the commonest PII value
    cands: list = []
    # Each family of rules runs only if its cheapest precondition holds (C-level checks).
    if "@" in text:
        _emails(text, cands)
    if _FAMILY_N.search(text):
        _ssns(text, cands)
        _cards(text, cands)
        _phones(text, cands)
    elif _DIGITS_7.search(text):  # a bare SSN or phone: only near its keyword
        lower = text.lower()
        if any(w in lower for w in _SSN_WORDS):
            _ssns(text, cands)
        if _DOTTED_PHONE.search(text) or any(w in lower for w in _PHONE_WORDS):
            _phones(text, cands)
    if "." in text:
        _ipv4s(text, cands)
    if ":" in text:
        _ipv6s(text, cands)
    if _TOKEN_GATE.search(text):
        _token_credentials(text, cands)
    if "-----BEGIN" in text or _KEYWORD_GATE.search(text):
        _keyword_credentials(text, cands)
    if not cands:
        return ()
    if "_" in text:
        cands = [c for c in cands if not PSEUDONYM.fullmatch(text, c[1], c[2])]
    return _resolve(cands)


# Preconditions of the rule families (see detect): digit runs with separators or 13+ digits
# (SSN, card, phone; bare 9-digit SSNs and bare phones need their keyword anyway), dotted
# NANP phones, 20-character token runs, credential keywords.
# (Written to start with a character class so ``re`` can skip non-candidate positions fast.)
_FAMILY_N = re.compile(r"[\d+](?:(?<=\+)\d|(?<!\d\d)[\d()+-]*[ ()+-][\d ()+-]*\d|(?<=\d)\d{12})")
_DOTTED_PHONE = re.compile(r"\d{3}\.\d{3}\.\d{4}")
_TOKEN_GATE = re.compile(r"(?<![A-Za-z0-9_+/-])[A-Za-z0-9_+/-]{20}")
_KEYWORD_GATE = re.compile(r"[Bb](?:[Ee][Aa][Rr][Ee][Rr]|[Aa][Ss][Ii][Cc] )")
_DIGITS_7 = re.compile(r"\d(?:[ .()-]?\d){6}")
_IPV4_EXACT = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def _with_key_context(text: str, hits: tuple[Hit, ...], ctx: int) -> tuple[Hit, ...]:
    """Adjust a value's findings using its key: ``{"appVersion": "1.2.3.4"}`` is not an IP;
    ``{"phone": "4155550134"}``, ``{"ssn": "123456789"}`` and ``{"api_key": "<hex>"}`` are PII
    even though the bare value would be ambiguous on its own."""
    stripped = text.strip()
    lead = len(text) - len(text.lstrip())
    whole = (lead, lead + len(stripped))
    if ctx & _CTX_VERSION:
        hits = tuple(h for h in hits if not (h[0] == IPV4 and (h[1], h[2]) == whole))
    if hits or not stripped:
        return hits
    extra: Hit | None = None
    if ctx & _CTX_PHONE and _PHONE_LOOSE.fullmatch(stripped) and 7 <= sum(ch.isdigit() for ch in stripped) <= 15 \
            and not _DATE_LIKE.search(stripped):
        extra = (PHONE, *whole)
    elif ctx & _CTX_SSN and (m := _SSN_BARE.fullmatch(stripped)) and ssn_valid(*m.groups()):
        extra = (SSN, *whole)
    elif ctx & _CTX_SECRET and 16 <= len(stripped) <= MAX_API_KEY_LENGTH and _TOKEN_RUN.fullmatch(stripped) \
            and not PSEUDONYM.fullmatch(stripped) and shannon_entropy(stripped) >= 3.0:
        extra = (API_KEY, *whole)
    return (extra,) if extra else hits


class PiiScanner:
    """Detects PII and credentials in strings and in parsed JSON values.

    ``types`` limits what is reported (default: every type in ``PII_TYPES``);
    ``count_ip_addresses=False`` stops reporting IPv4/IPv6 addresses (audit logs often must
    keep source addresses for forensics). All rules still run, so a value that is an IP
    address is never re-detected as something else when IPs are not reported.
    """

    MEMO_SIZE = 1 << 16  # distinct strings remembered (keys and repeated values dominate audit JSON)
    MEMO_MAX_LENGTH = 512  # longer strings are usually unique (messages, prompts): not worth keeping

    def __init__(self, types: Iterable[str] | None = None, count_ip_addresses: bool = True, memo: bool = True):
        chosen = set(PII_TYPES if types is None else types)
        unknown = chosen - set(PII_TYPES)
        if unknown:
            raise ValueError(f"unknown PII types {sorted(unknown)}; known: {', '.join(PII_TYPES)}")
        if not count_ip_addresses:
            chosen -= IP_TYPES
        self.types = frozenset(chosen)
        self.count_ip_addresses = count_ip_addresses
        self._all = self.types == frozenset(PII_TYPES)
        self._memo: dict[str, tuple[Hit, ...]] = {}
        self._memo_max_length = self.MEMO_MAX_LENGTH if memo else -1  # memo=False: the cold-cache benchmark
        self._keys: dict[str, tuple[tuple[Hit, ...], int]] = {}

    # -- strings ---------------------------------------------------------------------------

    def hits(self, text: str) -> tuple[Hit, ...]:
        """(type, start, end) of every reported finding in ``text``; memoised."""
        found = self._memo.get(text)
        if found is None:
            found = detect(text)
            if not self._all and found:
                found = tuple(h for h in found if h[0] in self.types)
            if len(text) <= self._memo_max_length:
                if len(self._memo) >= self.MEMO_SIZE:
                    self._memo.clear()  # cheap bound; the working set refills within a page
                self._memo[text] = found
        return found

    def key_info(self, key: str) -> tuple[tuple[Hit, ...], int]:
        """Findings in a key plus the context flags it gives its value."""
        info = self._keys.get(key)
        if info is None:
            ctx = 0
            if _KEY_VERSION.search(key):
                ctx |= _CTX_VERSION
            if _KEY_PHONE.search(key):
                ctx |= _CTX_PHONE
            if _KEY_SSN.search(key):
                ctx |= _CTX_SSN
            if _KEY_SECRET.search(key):
                ctx |= _CTX_SECRET
            info = (self.hits(key), ctx)
            # Keys are memoised even with memo=False: a provider's records share one schema.
            if len(key) <= self.MEMO_MAX_LENGTH:
                if len(self._keys) >= self.MEMO_SIZE:
                    self._keys.clear()
                self._keys[key] = info
        return info

    def value_hits(self, text: str, ctx: int) -> tuple[Hit, ...]:
        """Findings in a value whose key gave it context flags ``ctx``."""
        found = self.hits(text)
        if ctx & _CTX_EXTRA or (found and ctx & _CTX_VERSION):
            found = tuple(h for h in _with_key_context(text, found, ctx) if h[0] in self.types)
        return found

    def scan_text(self, text: str, path: str = "$") -> list[Finding]:
        return [Finding(t, path, s, e, False) for t, s, e in self.hits(text)]

    # -- structured values -----------------------------------------------------------------

    def scan(self, value: Any) -> list[Finding]:
        """Findings in every string of ``value`` (dicts, lists, tuples; keys included)."""
        out: list[Finding] = []
        if type(value) is str:
            return self.scan_text(value)
        self._walk(value, None, out, 0)
        return out

    def _walk(self, value: Any, path: tuple | None, out: list[Finding], ctx: int) -> None:
        # ``path`` is a linked (parent, segment) tuple, formatted only when something is found,
        # because almost every node of a record has no finding. The memo lookups are inlined:
        # this loop runs for every member of every record.
        memo_get, keys_get = self._memo.get, self._keys.get
        if isinstance(value, dict):
            renamed = None
            for key, child in value.items():
                if type(key) is str:
                    info = keys_get(key)
                    if info is None:
                        info = self.key_info(key)
                    key_hits, child_ctx = info
                    if key_hits:
                        if renamed is None:
                            renamed = redacted_keys(value, self)
                        where = format_path((path, renamed[key]))
                        out.extend(Finding(t, where, s, e, True) for t, s, e in key_hits)
                        key = renamed[key]
                else:
                    child_ctx, key = 0, str(key)
                kind = type(child)
                if kind is str:
                    if child_ctx:
                        found = self.value_hits(child, child_ctx)
                    else:
                        found = memo_get(child)
                        if found is None:
                            found = self.hits(child)
                    if found:
                        where = format_path((path, key))
                        out.extend(Finding(t, where, s, e, False) for t, s, e in found)
                elif kind is dict or kind is list or isinstance(child, (dict, list, tuple)):
                    self._walk(child, (path, key), out, child_ctx)
        elif isinstance(value, (list, tuple)):
            for index, child in enumerate(value):
                kind = type(child)
                if kind is str:
                    if ctx:
                        found = self.value_hits(child, ctx)
                    else:
                        found = memo_get(child)
                        if found is None:
                            found = self.hits(child)
                    if found:
                        where = format_path((path, index))
                        out.extend(Finding(t, where, s, e, False) for t, s, e in found)
                elif kind is dict or kind is list or isinstance(child, (dict, list, tuple)):
                    self._walk(child, (path, index), out, ctx)
        elif isinstance(value, str):  # str subclasses
            out.extend(self.scan_text(str(value), format_path(path)))


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


def redacted_keys(value: dict, scanner: PiiScanner) -> dict:
    def new_name(key: str) -> str | None:
        key_hits = scanner.key_info(key)[0]
        return replace_spans(key, key_hits, lambda t, _v: placeholder(t)) if key_hits else None

    return unique_keys(value, new_name)
