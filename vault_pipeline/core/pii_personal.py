"""Rules for personal data: email addresses, SSNs, payment cards, phone numbers, IP addresses.

Audit records are full of ids, dates, versions and checksums that look like personal data, so
each type is a regex for its shape plus checks that reject the look-alikes: an email's domain
must not end in a file extension and the address must not be an ssh remote; an SSN must not
use a never-issued area, group or serial, and nine bare digits count only after an SSN
keyword; a card number must pass Luhn and fall in a known card network's range; a phone must
be international (``+`` or ``00``) or NANP-shaped, or follow a phone keyword; a dotted quad
after a version word or product token is a version, not an address; an IPv6 candidate must
parse. Each rule appends ``(priority, start, end, type)`` candidates that
``pii_detectors.detect`` resolves. Split from ``core/pii_detectors.py``, which re-exports the
public names here.
"""

from __future__ import annotations

import ipaddress
import re

from vault_pipeline.core.pii_credentials import _HAS_DIGIT
from vault_pipeline.core.pii_findings import _PRIORITY, CREDIT_CARD, EMAIL, IPV4, IPV6, PHONE, SSN

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

