"""Finding personal data and credentials in audit records before they are promoted to golden.

A record promoted from the raw zone to the golden zone must not carry people's contact
details, government ids, card numbers or live credentials. ``PiiScanner`` looks at every
string of a record, keys included, at any depth, and reports each hit as a ``Finding``
(type, JSON path, character span, whether it was in a key); a key also sharpens the rules for
its value (``{"appVersion": "1.2.3.4"}`` holds no IP address, ``{"ssn": "123456789"}`` an SSN).
Scanning is fast because almost every string of an audit record is rejected by one
pre-filter regex, and strings already seen (keys, enum-like values) are answered from a
bounded memo. Paths never contain a detected value: a key that is itself PII appears in paths
in its redacted form. Each type's precise rule, which leaves alone the ids, checksums,
timestamps and versions that merely look similar, is in ``core/pii_personal.py`` (email, SSN,
payment card, phone, IP address) or ``core/pii_credentials.py`` (AWS keys, JWTs, Bearer and
Basic tokens, PEM private keys, random-looking API keys); the types and findings shared with
masking are in ``core/pii_findings.py``. Every public name of those modules is re-exported here.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from typing import Any

from vault_pipeline.core.pii_credentials import (  # noqa: F401 - re-exported: the credential rules
    _TOKEN_RUN,
    MAX_API_KEY_LENGTH,
    _keyword_credentials,
    _token_credentials,
    looks_random,
    shannon_entropy,
)
from vault_pipeline.core.pii_findings import (  # noqa: F401 - re-exported: the PII types and findings
    API_KEY,
    AWS_ACCESS_KEY_ID,
    AWS_SECRET_KEY,
    BEARER_TOKEN,
    CREDIT_CARD,
    EMAIL,
    IP_TYPES,
    IPV4,
    IPV6,
    JWT,
    PHONE,
    PII_TYPES,
    PRIVATE_KEY,
    PSEUDONYM,
    SSN,
    Finding,
    Hit,
    format_path,
    placeholder,
    replace_spans,
    unique_keys,
)
from vault_pipeline.core.pii_personal import (  # noqa: F401 - re-exported: the personal-data rules
    _DATE_LIKE,
    _OCTET,
    _PHONE_LOOSE,
    _PHONE_WORDS,
    _SSN_BARE,
    _SSN_WORDS,
    _cards,
    _emails,
    _ipv4s,
    _ipv6s,
    _phones,
    _ssns,
    card_network_known,
    luhn_valid,
    ssn_valid,
)

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

# -- key context (scan of structured values only) --------------------------------------------
_CTX_VERSION, _CTX_PHONE, _CTX_SSN, _CTX_SECRET = 1, 2, 4, 8
_CTX_EXTRA = _CTX_PHONE | _CTX_SSN | _CTX_SECRET  # contexts that can add a finding
# Anchored at the end of the key: "phone_number" and "mobilePhone" name a phone, while
# "cancellation_id" (contains "cell") or "max_tokens" / "tokenizer" (contain "token") do not.
_KEY_VERSION = re.compile(r"(?i)(?:version|ver|release|build|firmware)(?:_?(?:number|id|no))?$")
_KEY_PHONE = re.compile(r"(?i)(?:phone|mobile|tel|telephone|fax|msisdn|cell)(?:_?(?:number|num|no))?s?$")
_KEY_SSN = re.compile(r"(?i)(?:ssn|social_?security(?:_?number)?)$")
_KEY_SECRET = re.compile(r"(?i)(?:secret|token|api_?key|access_?key|credentials?|private_?key)$")


CLEAN: tuple[Hit, ...] = ()  # what ``PiiScanner.hits`` answers for a string with no finding


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
        # Keys with no finding that give their value no context: the walks' commonest case,
        # answered by one set lookup (a subset of ``_keys``, cleared with it).
        self._plain_keys: set[str] = set()

    # -- strings ---------------------------------------------------------------------------

    def hits(self, text: str) -> tuple[Hit, ...]:
        """(type, start, end) of every reported finding in ``text``; memoised."""
        found = self._memo.get(text)
        if found is None:
            found = detect(text)
            if not self._all and found:
                found = tuple(h for h in found if h[0] in self.types)
            if not found:
                found = CLEAN  # the one empty result: the walks test memo entries with ``is``
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
                    self._plain_keys.clear()
                self._keys[key] = info
                if not info[0] and not ctx and type(key) is str:
                    self._plain_keys.add(key)
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


def redacted_keys(value: dict, scanner: PiiScanner) -> dict:
    def new_name(key: str) -> str | None:
        key_hits = scanner.key_info(key)[0]
        return replace_spans(key, key_hits, lambda t, _v: placeholder(t)) if key_hits else None

    return unique_keys(value, new_name)
