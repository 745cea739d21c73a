"""Moments for the report sources: a report period is a half-open UTC interval [start, end).

The vault stores times in three spellings (ledger ``iso_z``, the catalog's fixed-width form,
hour partition keys); the report sources turn each into an aware UTC ``datetime`` before
comparing, so a period boundary means the same instant for every source.
"""

from __future__ import annotations

from datetime import UTC, datetime

from vault_pipeline.core.windows import parse_timestamp


def utc_moment(value: datetime | str) -> datetime:
    """An aware UTC datetime from a datetime (naive ones are refused: a period must say its zone)
    or an ISO-8601 string with a zone; ValueError otherwise."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{value.isoformat()} has no time zone")
        return value.astimezone(UTC)
    moment = parse_timestamp(value)
    if moment is None:
        raise ValueError(f"{value!r} is not an ISO-8601 time with a zone")
    return moment.astimezone(UTC)


def period(start: datetime | str, end: datetime | str) -> tuple[datetime, datetime]:
    low, high = utc_moment(start), utc_moment(end)
    if high < low:
        raise ValueError(f"the period ends ({high.isoformat()}) before it starts ({low.isoformat()})")
    return low, high


def fixed_width(moment: datetime) -> str:
    """The catalog's fixed-width timestamp of ``moment`` (lexicographic order = time order)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
