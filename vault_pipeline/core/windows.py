"""Hourly windows and partition keys: which slice of provider time a run is about.

The asset graph is partitioned by hour x provider; the Dagster key looks like
``2026-01-01-00:00|acme_audit``. This module turns keys into UTC windows (with the lookback
that catches late data) and parses event timestamps the way every stage agrees on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HOUR_KEY_FORMAT = "%Y-%m-%d-%H:%M"
_HOUR_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}:00$")


class PartitionKeyError(ValueError):
    """A partition key that is not ``YYYY-MM-DD-HH:00|<provider>``."""


@dataclass(frozen=True, slots=True)
class HourWindow:
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC

    @classmethod
    def for_hour_key(cls, hour_key: str) -> "HourWindow":
        if not _HOUR_KEY.match(hour_key):
            raise PartitionKeyError(f"hour {hour_key!r} is not of the form YYYY-MM-DD-HH:00")
        try:
            start = datetime.strptime(hour_key, HOUR_KEY_FORMAT).replace(tzinfo=UTC)
        except ValueError as exc:  # e.g. month 13, hour 24, February 30
            raise PartitionKeyError(f"hour {hour_key!r} is not a valid UTC hour: {exc}") from None
        return cls(start, start + timedelta(hours=1))

    @property
    def hour_key(self) -> str:
        return self.start.strftime(HOUR_KEY_FORMAT)

    def with_lookback(self, hours: int) -> "HourWindow":
        return HourWindow(self.start - timedelta(hours=hours), self.end)

    def contains(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end

    def object_prefix(self) -> str:
        """``YYYY/MM/DD/HH`` as used in object keys."""
        return self.start.strftime("%Y/%m/%d/%H")


def split_partition_key(key: str) -> tuple[str, str]:
    """``'2026-01-01-00:00|acme'`` -> (hour key, provider)."""
    hour, sep, provider = str(key).partition("|")
    if not sep or not provider:
        raise PartitionKeyError(f"partition key {key!r} is not of the form 'YYYY-MM-DD-HH:00|<provider>'")
    HourWindow.for_hour_key(hour)
    return hour, provider


def parse_timestamp(value: object) -> datetime | None:
    """An ISO-8601 timestamp as an aware UTC datetime; None if absent or unparseable.

    Naive timestamps are rejected rather than guessed: an audit trail must not shift by an
    unknown offset.
    """
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def iso_z(moment: datetime) -> str:
    """UTC ISO-8601 with a ``Z`` suffix and microseconds only when present."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"
