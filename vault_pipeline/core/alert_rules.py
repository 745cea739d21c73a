"""When a condition becomes an alert: hourly SLA deadlines and promotion spikes over a window.

**SLA.** The hour ``H`` of provider ``P`` must be materialized by ``H + 1 h + sla_minutes(P)``
(its *deadline*). Each evaluation looks at the deadlines that passed since the previous one
(``after < deadline <= until``), so every partition is judged exactly once, at its deadline;
a partition materialized after its deadline still missed it. :func:`due_partitions` lists
them; :func:`judge` compares a deadline with the first materialization's time.

**Promotion spikes.** Over the trailing window of promotions of one provider, the share of
records quarantined, and the number of digest mismatches (a record's bytes or the index no
longer matching what was signed), are compared with their thresholds; windows with too few
records to say anything are skipped. Pure arithmetic: the sensors supply times and counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class DuePartition:
    hour: datetime  # the hour's start, UTC
    provider: str
    deadline: datetime  # hour end + the provider's SLA

    @property
    def hour_key(self) -> str:
        return self.hour.strftime("%Y-%m-%d-%H:%M")

    @property
    def partition(self) -> str:
        return f"{self.hour_key}|{self.provider}"


@dataclass(frozen=True, slots=True)
class Verdict:
    due: DuePartition
    materialized_at: datetime | None  # the first materialization, if any (also after the deadline)

    @property
    def on_time(self) -> bool:
        return self.materialized_at is not None and self.materialized_at <= self.due.deadline

    def overdue_minutes(self, now: datetime) -> float:
        """How late: until it arrived, or until ``now`` while it has not."""
        if self.on_time:
            return 0.0
        arrived = self.materialized_at or now
        return round(max(0.0, (arrived - self.due.deadline).total_seconds() / 60), 1)


def due_partitions(sla_minutes: Mapping[str, int], *, after: datetime, until: datetime,
                   first_hour: datetime) -> list[DuePartition]:
    """Every (hour, provider) whose deadline falls in ``(after, until]``, oldest deadline first.
    ``sla_minutes``: provider -> minutes after the hour's end; hours before ``first_hour`` (the
    partitions' start) do not exist and are never due."""
    _aware(after, "after"), _aware(until, "until"), _aware(first_hour, "first_hour")
    due = []
    for provider, minutes in sla_minutes.items():
        grace = HOUR + timedelta(minutes=minutes)
        # The first hour whose deadline is after `after`: deadline = hour + grace > after.
        hour = _floor_hour(after - grace) + HOUR
        start = _floor_hour(first_hour)
        hour = max(hour, start if start == first_hour else start + HOUR)
        while hour + grace <= until:
            if hour + grace > after:
                due.append(DuePartition(hour, provider, hour + grace))
            hour += HOUR
    return sorted(due, key=lambda d: (d.deadline, d.provider))


def judge(due: Iterable[DuePartition], first_materialized: Mapping[str, datetime | None]) -> list[Verdict]:
    """One verdict per due partition, from ``partition -> first materialization time``."""
    return [Verdict(d, first_materialized.get(d.partition)) for d in due]


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be a time-zone aware datetime")


# promotion spikes ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PromotionSample:
    """One promotion of a partition: when, and what it decided."""

    at: float  # seconds since the epoch
    partition: str
    records: int
    quarantined: int
    digest_mismatches: int


@dataclass(frozen=True, slots=True)
class SpikeThresholds:
    window_s: float
    max_quarantine_rate: float
    min_records: int
    max_digest_mismatches: int


@dataclass(frozen=True, slots=True)
class Spike:
    metric: str  # "quarantine_rate" | "digest_mismatches"
    value: float
    threshold: float
    records: int  # in the window
    quarantined: int
    digest_mismatches: int
    partitions: tuple[str, ...]  # the window's partitions, oldest first
    window_start: float
    window_end: float


def window_of(samples: Sequence[PromotionSample], end: float, window_s: float) -> list[PromotionSample]:
    """The samples in ``(end - window_s, end]``, oldest first. A partition promoted again in the
    window counts once, as its latest promotion (a re-run re-decides the same records)."""
    latest: dict[str, PromotionSample] = {}
    for sample in sorted(samples, key=lambda s: s.at):
        if end - window_s < sample.at <= end:
            latest[sample.partition] = sample
    return sorted(latest.values(), key=lambda s: s.at)


def spikes(window: Sequence[PromotionSample], thresholds: SpikeThresholds, end: float) -> list[Spike]:
    """What in the window is over its threshold: the quarantine rate (only with at least
    ``min_records`` records) and the number of digest mismatches (any number of records)."""
    records = sum(s.records for s in window)
    quarantined = sum(s.quarantined for s in window)
    mismatches = sum(s.digest_mismatches for s in window)
    common = {"records": records, "quarantined": quarantined, "digest_mismatches": mismatches,
              "partitions": tuple(s.partition for s in window), "window_start": end - thresholds.window_s,
              "window_end": end}
    found = []
    if records >= max(thresholds.min_records, 1):
        rate = quarantined / records
        if rate > thresholds.max_quarantine_rate:
            found.append(Spike("quarantine_rate", round(rate, 6), thresholds.max_quarantine_rate, **common))
    if mismatches > thresholds.max_digest_mismatches:
        found.append(Spike("digest_mismatches", mismatches, thresholds.max_digest_mismatches, **common))
    return found


def window_bucket(at: float, window_s: float) -> int:
    """Which window-long slice of time ``at`` falls in: one alert per metric per slice, however
    many promotions keep the spike going."""
    return int(at // window_s)
