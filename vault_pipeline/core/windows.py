"""Hourly windows and partition keys: which slice of provider time a run is about.

The asset graph is partitioned by hour x provider; the Dagster key looks like
``2026-01-01-00:00|acme_audit``. This module turns keys into UTC windows (with the lookback
that catches late data) and parses event timestamps the way every stage agrees on: one at a
time (``parse_timestamp``) or a page at a time (``fixed_width_timestamps``, in Arrow, with
the per-value parser for anything outside the plain ISO-8601 shapes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

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


HOUR_FORMATS_HELP = "an hour as 2026-01-01T00, 2026-01-01T00:00Z, 2026-01-01T00:00:00+00:00 or 2026-01-01-00:00 (UTC)"
_BARE_HOUR = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2})$")


def parse_hour(text: str) -> datetime:
    """The UTC hour an operator names: ``2026-01-01T00`` (hours are UTC), any ISO-8601 time
    with ``Z`` or an offset (the hour containing it), or a partition hour key. ValueError
    says which forms are accepted."""
    value = text.strip()
    bare = _BARE_HOUR.match(value)
    if bare:
        value = f"{bare.group(1)}T{bare.group(2)}:00Z"
    moment = None
    if _HOUR_KEY.match(value):
        moment = datetime.strptime(value, HOUR_KEY_FORMAT).replace(tzinfo=UTC)
    else:
        moment = parse_timestamp(value)
    if moment is None:
        raise ValueError(f"{text!r} is not {HOUR_FORMATS_HELP}")
    return moment.replace(minute=0, second=0, microsecond=0)


def iso_z(moment: datetime) -> str:
    """UTC ISO-8601 with a ``Z`` suffix and microseconds only when present."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


# Shapes Arrow's ISO-8601 cast parses exactly as ``parse_timestamp`` does: a full date and
# time, 1-6 fraction digits, and ``Z`` or a ``±HH:MM`` offset. Years 1000-8999 only, so an
# offset can never carry a value past the range Python's datetime accepts. Everything else
# (lowercase z, spaces, other years, naive values, garbage) goes through parse_timestamp.
_ARROW_ISO = (
    r"^[1-8]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
# Already in the catalog's fixed-width form: most providers send this, and the value then is
# its own answer once Arrow has checked it names a real moment (February 30 fails the cast).
_CANONICAL = (
    r"^[1-8]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{6}Z$"
)
_UTC_US = pa.timestamp("us", tz="UTC")


def fixed_width_timestamps(values: Sequence[object]) -> pa.Array:
    """Event-time values as fixed-width UTC strings (``2026-01-01T00:00:00.000000Z``), or null.

    The same answer as ``parse_timestamp`` + the catalog's fixed-width format, value by value:
    offsets are converted to UTC, naive or unparseable values and non-strings become null.
    """
    strings = pa.array([v if isinstance(v, str) else None for v in values], pa.string())
    if pc.all(pc.fill_null(pc.match_substring_regex(strings, _CANONICAL), True)).as_py():
        try:
            pc.cast(strings, _UTC_US)
            return strings
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # not a real date somewhere: value by value below
    plain = pc.fill_null(pc.match_substring_regex(strings, _ARROW_ISO), False)
    try:
        moments = pc.cast(pc.if_else(plain, strings, None), _UTC_US)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. February 30: value by value
        plain = pa.array([False] * len(strings))
        moments = pa.nulls(len(strings), _UTC_US)
    result = pc.binary_join_element_wise(pc.strftime(moments, "%Y-%m-%dT%H:%M:%S"), "Z", "")
    others = pc.and_(pc.is_valid(strings), pc.invert(plain))
    if not pc.any(others).as_py():
        return result
    merged = result.to_pylist()
    for i in pc.indices_nonzero(others).to_pylist():
        moment = parse_timestamp(values[i])
        merged[i] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else None
    return pa.array(merged, pa.string())
