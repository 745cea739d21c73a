"""Masking PII in a record on its way to the golden zone, keeping the record usable.

The golden copy of a record has the same shape as the raw one: it is still valid JSON, every
value keeps its JSON type (a masked string is still a string; numbers, booleans and nulls are
never touched), and only the detected spans inside a string change. Two policies: ``redact``
replaces a span with a type tag such as ``[EMAIL]``; ``pseudonym`` replaces it with a keyed
token such as ``email_3f2a9c01d4e5b6a7`` (HMAC-SHA256 of the normalised value under a key the
caller holds), so the same person gets the same token in every record and analytics can still
count distinct users, while nobody without the key can reverse or even confirm a token. Keys
that contain PII are masked too; if two masked keys would collide, the later one gets a ``#n``
suffix and the collision is reported. The ``MaskReport`` says which paths and types were
masked and never contains a value. Masking is idempotent: masked output contains nothing the
scanner detects, so masking it again changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, NamedTuple

from vault_pipeline.core.pii_detectors import (
    CLEAN,
    CREDIT_CARD,
    EMAIL,
    IPV4,
    IPV6,
    PHONE,
    SSN,
    PiiScanner,
    format_path,
    placeholder,
    replace_spans,
    unique_keys,
)

REDACT = "redact"
PSEUDONYM = "pseudonym"
MIN_KEY_BYTES = 16
_NON_DIGIT = re.compile(r"\D")


@dataclass(frozen=True)
class MaskPolicy:
    """How detected spans are replaced. Build with ``MaskPolicy.redact()`` or
    ``MaskPolicy.pseudonym(key)``; the key is never part of the repr or of any output."""

    mode: str
    key: bytes | None = field(default=None, repr=False, compare=False)
    token_hex: int = 16  # 64-bit tokens: collisions are negligible below ~10^9 distinct values

    def __post_init__(self) -> None:
        if self.mode == REDACT:
            if self.key is not None:
                raise ValueError("the redact policy takes no key")
        elif self.mode == PSEUDONYM:
            if not isinstance(self.key, bytes) or len(self.key) < MIN_KEY_BYTES:
                raise ValueError(f"the pseudonym policy needs a secret key of at least {MIN_KEY_BYTES} bytes")
            if not 8 <= self.token_hex <= 64:
                raise ValueError("token_hex must be between 8 and 64")
        else:
            raise ValueError(f"unknown masking policy {self.mode!r}; use {REDACT!r} or {PSEUDONYM!r}")
        object.__setattr__(self, "_tokens", {})
        object.__setattr__(self, "_replaced", {})

    @classmethod
    def redact(cls) -> "MaskPolicy":
        return cls(REDACT)

    @classmethod
    def pseudonym(cls, key: bytes | str, token_hex: int = 16) -> "MaskPolicy":
        return cls(PSEUDONYM, key.encode("utf-8") if isinstance(key, str) else key, token_hex)

    def token(self, pii_type: str, value: str) -> str:
        """The replacement for ``value`` of type ``pii_type``."""
        if self.mode == REDACT:
            return placeholder(pii_type)
        tokens: dict = self._tokens  # type: ignore[attr-defined]
        cached = tokens.get((pii_type, value))
        if cached is None:
            message = f"{pii_type}\x1f{normalise(pii_type, value)}".encode("utf-8")
            digest = hmac.new(self.key, message, hashlib.sha256).hexdigest()  # type: ignore[arg-type]
            cached = f"{pii_type}_{digest[: self.token_hex]}"
            if len(tokens) >= 1 << 16:
                tokens.clear()
            tokens[(pii_type, value)] = cached
        return cached

    def replaced(self, text: str, hits: tuple) -> str:
        """``text`` with its ``hits`` replaced. Memoised by text for the scanner's memoised
        hits (the very tuple object): an audit record's PII values (source addresses, contacts)
        repeat across the hour."""
        memo: dict = self._replaced  # type: ignore[attr-defined]
        cached = memo.get(text)
        if cached is not None and cached[0] is hits:
            return cached[1]
        new = replace_spans(text, hits, self.token)
        if len(text) <= 512:  # like the scanner's memo: long strings are usually unique
            if len(memo) >= 1 << 16:
                memo.clear()
            memo[text] = (hits, new)
        return new


def normalise(pii_type: str, value: str) -> str:
    """The canonical form a pseudonym is computed from, so that equivalent spellings of the
    same value (``Alice@Example.com``, ``+1 (415) 555-0134`` / ``415.555.0134``,
    ``4111-1111-1111-1111``, ``2001:DB8:0::1``) get the same token."""
    if pii_type == EMAIL:
        return value.strip().lower()
    if pii_type in (CREDIT_CARD, SSN):
        return _NON_DIGIT.sub("", value)
    if pii_type == PHONE:
        digits = _NON_DIGIT.sub("", value.replace("(0)", ""))
        if value.lstrip().startswith("00"):
            digits = digits[2:]
        if len(digits) == 10 and digits[0] in "23456789" and not value.lstrip().startswith("+"):
            digits = "1" + digits  # a NANP number written without its country code
        return digits
    if pii_type in (IPV4, IPV6):
        address, _, zone = value.partition("%")
        try:
            return ipaddress.ip_address(address).compressed + (f"%{zone}" if zone else "")
        except ValueError:
            return value
    return value


class MaskedItem(NamedTuple):  # a tuple: one is made per masked span of every record
    path: str  # path in the masked value (masked key names), never a raw value
    type: str
    in_key: bool


@dataclass
class MaskReport:
    """What masking changed: one item per masked span, plus keys renamed to avoid collisions."""

    policy: str
    items: list[MaskedItem] = field(default_factory=list)
    key_collisions: list[str] = field(default_factory=list)  # paths of keys that got a '#n' suffix

    @property
    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(item.type for item in self.items).items()))

    @property
    def paths(self) -> list[str]:
        return sorted({item.path for item in self.items})

    def as_dict(self) -> dict:
        return {
            "policy": self.policy,
            "masked": len(self.items),
            "by_type": self.counts,
            "items": [{"path": i.path, "type": i.type, "in_key": i.in_key} for i in self.items],
            "key_collisions": list(self.key_collisions),
        }


_DEFAULT_SCANNER: PiiScanner | None = None


def default_scanner() -> PiiScanner:
    global _DEFAULT_SCANNER
    if _DEFAULT_SCANNER is None:
        _DEFAULT_SCANNER = PiiScanner()
    return _DEFAULT_SCANNER


def _as_policy(policy: MaskPolicy | str) -> MaskPolicy:
    if isinstance(policy, MaskPolicy):
        return policy
    if policy == REDACT:
        return MaskPolicy.redact()
    if policy == PSEUDONYM:
        raise ValueError("the pseudonym policy needs a key: pass MaskPolicy.pseudonym(key)")
    raise ValueError(f"unknown masking policy {policy!r}; use {REDACT!r} or MaskPolicy.pseudonym(key)")


def mask(value: Any, policy: MaskPolicy | str, scanner: PiiScanner | None = None) -> tuple[Any, MaskReport]:
    """``value`` with every finding masked under ``policy``, and the report of what changed.

    The input is not modified. Containers with nothing to mask are returned as the same
    objects (copying every record would halve promotion throughput), so treat the result as
    read-only or copy it before mutating.
    """
    return _Masker(_as_policy(policy), scanner or default_scanner()).run(value)


class _Masker:
    def __init__(self, policy: MaskPolicy, scanner: PiiScanner):
        self.policy, self.scanner = policy, scanner
        self.report = MaskReport(policy.mode)

    def run(self, value: Any) -> tuple[Any, MaskReport]:
        return self._value(value, None, 0), self.report

    def _string(self, text: str, path: tuple | None, ctx: int) -> str:
        found = self.scanner.hits(text) if not ctx else self.scanner.value_hits(text, ctx)
        if not found:
            return text
        where = format_path(path)
        items = self.report.items
        for hit in found:
            items.append(MaskedItem(where, hit[0], False))
        return self.policy.replaced(text, found) if not ctx else replace_spans(text, found, self.policy.token)

    def _new_key(self, key: str) -> str | None:
        key_hits = self.scanner.key_info(key)[0]
        return replace_spans(key, key_hits, self.policy.token) if key_hits else None

    def _value(self, value: Any, path: tuple | None, ctx: int) -> Any:
        kind = type(value)
        if kind is str:
            return self._string(value, path, ctx)
        if kind is dict:
            return self._dict(value, path)
        if kind is list or kind is tuple:
            return self._list(value, path, ctx)
        if isinstance(value, str):  # a str subclass: masked as a plain string
            return self._string(str(value), path, ctx)
        if isinstance(value, dict):
            return self._dict(value, path)
        if isinstance(value, (list, tuple)):
            return self._list(value, path, ctx)
        return value  # numbers, booleans, None: never touched

    # _list and _dict run for every container of every record, so the common cases are inlined:
    # a string the memo already knows to be clean (its entry is the one ``CLEAN`` tuple), a
    # scalar, a plain key (in the scanner's set of keys with no finding and no context).
    # Nothing is copied until a member changes.
    def _list(self, value: list | tuple, path: tuple | None, ctx: int) -> list | tuple:
        memo_get = self.scanner._memo.get
        out = None
        index = -1
        for child in value:
            index += 1
            kind = type(child)
            if kind is str:
                if not ctx and memo_get(child) is CLEAN:
                    if out is not None:
                        out.append(child)
                    continue
                new = self._string(child, (path, index), ctx)
            elif child is None or kind in _SCALARS:
                if out is not None:
                    out.append(child)
                continue
            else:
                new = self._value(child, (path, index), ctx)
            if out is None:
                if new is child:
                    continue
                out = list(islice(value, index))
            out.append(new)
        if out is None:
            return value
        return out if type(value) is list else type(value)(out)

    def _dict(self, value: dict, path: tuple | None) -> dict:
        scanner = self.scanner
        plain, memo_get = scanner._plain_keys, scanner._memo.get
        names = None
        out = None
        index = -1
        for key, child in value.items():
            index += 1
            kind = type(child)
            if key in plain:
                if kind is str:
                    if memo_get(child) is CLEAN:
                        if out is not None:
                            out[key] = child
                        continue
                    new_child = self._string(child, (path, key), 0)
                elif child is None or kind in _SCALARS:
                    if out is not None:
                        out[key] = child
                    continue
                elif kind is dict:
                    new_child = self._dict(child, (path, key))
                else:
                    new_child = self._value(child, (path, key), 0)
                if out is None:
                    if new_child is child:
                        continue
                    out = dict(islice(value.items(), index))
                out[key] = new_child
                continue
            # Any other key: scanned (its findings masked, a colliding masked name suffixed),
            # and its context flags passed to its value.
            new_key, ctx = key, 0
            if type(key) is str:
                key_hits, ctx = scanner.key_info(key)
                if key_hits:
                    if names is None:
                        names = unique_keys(value, self._new_key)
                    new_key = names[key]
                    where = format_path((path, new_key))
                    self.report.items.extend(MaskedItem(where, t, True) for t, _, _ in key_hits)
                    if new_key != self._new_key(key):
                        self.report.key_collisions.append(where)
            if kind is str:
                new_child = self._string(child, (path, new_key), ctx)
            elif child is None or kind in _SCALARS:
                new_child = child
            elif kind is dict:
                new_child = self._dict(child, (path, new_key))
            else:
                new_child = self._value(child, (path, new_key), ctx)
            if out is None:
                if new_key is key and new_child is child:
                    continue
                out = dict(islice(value.items(), index))
            out[new_key] = new_child
        return value if out is None else out


_SCALARS = frozenset({int, float, bool})
