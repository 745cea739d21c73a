"""PII detection and masking for the raw -> golden promotion: the one import point.

Promotion scans every string of a verified raw record (values and keys, at any depth) for
personal data and credentials, and writes a masked copy to the golden zone: same JSON shape
and types, detected spans replaced by a type tag (``redact``) or a keyed pseudonym
(``pseudonym``, stable per value so distinct users can still be counted), with a report of
which paths and types were masked and never the values themselves. Detection rules live in
``pii_detectors``, masking in ``pii_masking``; both are pure (no I/O, no Dagster).
"""

from __future__ import annotations

from vault_pipeline.core.pii_detectors import (
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
    SSN,
    Finding,
    PiiScanner,
    looks_random,
    luhn_valid,
    shannon_entropy,
)
from vault_pipeline.core.pii_masking import (
    PSEUDONYM,
    REDACT,
    MaskedItem,
    MaskPolicy,
    MaskReport,
    default_scanner,
    mask,
    normalise,
)

__all__ = [
    "API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_KEY", "BEARER_TOKEN", "CREDIT_CARD", "EMAIL",
    "IP_TYPES", "IPV4", "IPV6", "JWT", "PHONE", "PII_TYPES", "PRIVATE_KEY", "SSN",
    "Finding", "PiiScanner", "luhn_valid", "looks_random", "shannon_entropy",
    "PSEUDONYM", "REDACT", "MaskedItem", "MaskPolicy", "MaskReport", "default_scanner", "mask", "normalise",
]
