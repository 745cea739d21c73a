"""The alert model and its rules, without Dagster or a network: identity, backoff, wording, deadlines, spikes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vault_pipeline.core.alert_rules import PromotionSample, SpikeThresholds, due_partitions, judge, spikes, window_of
from vault_pipeline.core.alerts import (
    AlertEvent,
    backoff_delay,
    delivery_id_for,
    first_line,
    redact,
    slack_text,
)

T = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def event(**overrides) -> AlertEvent:
    fields = {"kind": "run_failure", "severity": "error", "title": "vault run failed", "text": "raw_landing: boom",
              "dedup_key": "run_failure:run-1", "created_at": "2026-03-04T10:00:00.000000Z",
              "fields": {"partition": "2026-03-04-09:00|acme"}, "link": "http://127.0.0.1:3000/runs/run-1"}
    fields.update(overrides)
    return AlertEvent(**fields)


def test_the_same_occurrence_is_the_same_event_whatever_its_words():
    assert event().event_id == event(text="other words", created_at="2026-03-04T10:05:00.000000Z").event_id
    assert event().event_id != event(dedup_key="run_failure:run-2").event_id
    assert delivery_id_for(event().event_id, "ops") != delivery_id_for(event().event_id, "slack:#ops")
    assert AlertEvent.from_document(event().document()) == event()


def test_an_event_must_say_what_it_is():
    with pytest.raises(ValueError, match="kind"):
        event(kind="gossip")
    with pytest.raises(ValueError, match="severity"):
        event(severity="meh")
    with pytest.raises(ValueError, match="dedup key"):
        event(dedup_key="")


def test_backoff_doubles_up_to_its_cap_with_bounded_jitter():
    delays = [backoff_delay(n, base_s=30, cap_s=3600, key="ad_1") for n in range(1, 12)]
    for attempt, delay in enumerate(delays, start=1):
        nominal = min(3600, 30 * 2 ** (attempt - 1))
        assert 0.75 * nominal <= delay < 1.25 * nominal
    assert backoff_delay(3, base_s=30, cap_s=3600, key="ad_1") == backoff_delay(3, base_s=30, cap_s=3600, key="ad_1")
    assert backoff_delay(3, base_s=30, cap_s=3600, key="ad_1") != backoff_delay(3, base_s=30, cap_s=3600, key="ad_2")
    with pytest.raises(ValueError):
        backoff_delay(0, base_s=30, cap_s=3600)


def test_secrets_are_redacted_in_every_form_they_travel_in():
    url = "https://hooks.example.com/services/T0/B1/s3cr3t?x=1"
    text = f"POST {url} failed; encoded {url.replace(':', '%3A').replace('/', '%2F').replace('?', '%3F').replace('=', '%3D')}"
    assert "s3cr3t" not in redact(text, [url]) and redact(text, [url]).count("***") == 2
    redacted = event(text=f"token xoxb-123-456 in {url}", fields={"error": "xoxb-123-456"}).redacted(["xoxb-123-456", url])
    assert "xoxb" not in str(redacted.document()) and "s3cr3t" not in str(redacted.document())
    assert redact("a b c", ["b"]) == "a b c"  # too short to search for without mangling words


def test_the_first_line_of_an_error_is_what_is_shown():
    assert first_line("\n\n  dagster.Failure: raw landing failed\nTraceback ...") == "dagster.Failure: raw landing failed"
    assert len(first_line("x" * 1000, limit=50)) == 50
    assert first_line(None) == ""


def test_a_slack_message_escapes_what_slack_would_read_as_markup():
    text = slack_text(event(title="<!channel> & friends", text="a < b > c").document())
    assert "&lt;!channel&gt; &amp; friends" in text and "a &lt; b &gt; c" in text
    assert "<http://127.0.0.1:3000/runs/run-1|Open in the Dagster UI>" in text


def test_every_deadline_is_judged_exactly_once_across_evaluations():
    sla = {"acme": 10, "slow": 45}
    start = datetime(2026, 3, 4, 0, tzinfo=UTC)
    ticks = [start + timedelta(minutes=7 * n) for n in range(0, 60)]  # ~7 h of ticks, 7 min apart
    judged = []
    for after, until in zip(ticks, ticks[1:], strict=False):
        judged += due_partitions(sla, after=after, until=until, first_hour=start)
    keys = [d.partition for d in judged]
    assert len(keys) == len(set(keys))
    assert "2026-03-04-00:00|acme" in keys and "2026-03-04-00:00|slow" in keys
    acme_first = next(d for d in judged if d.partition == "2026-03-04-00:00|acme")
    assert acme_first.deadline == datetime(2026, 3, 4, 1, 10, tzinfo=UTC)
    # Everything due in the window, and nothing whose deadline is still ahead.
    assert all(ticks[0] < d.deadline <= ticks[-1] for d in judged)
    assert len([d for d in judged if d.provider == "acme"]) == len(range(0, 6))  # hours 00..05 (05's deadline 06:10)


def test_hours_before_the_first_partition_are_never_due():
    due = due_partitions({"acme": 10}, after=T - timedelta(hours=5), until=T, first_hour=T - timedelta(hours=2))
    assert [d.hour_key for d in due] == ["2026-03-04-08:00"]  # 08:00's deadline 09:10; 09:00's is 10:10, ahead


def test_a_partition_that_arrived_after_its_deadline_still_missed_it():
    (due,) = due_partitions({"acme": 10}, after=T - timedelta(minutes=1), until=T + timedelta(minutes=10),
                            first_hour=T - timedelta(days=1))
    on_time, late, missing = (judge([due], {due.partition: arrived})[0]
                              for arrived in (due.deadline - timedelta(minutes=1), due.deadline + timedelta(minutes=3), None))
    assert on_time.on_time and not late.on_time and not missing.on_time
    assert late.overdue_minutes(T + timedelta(hours=1)) == 3.0
    assert missing.overdue_minutes(due.deadline + timedelta(minutes=20)) == 20.0


def test_a_quarantine_spike_needs_enough_records_and_a_digest_mismatch_needs_none():
    rules = SpikeThresholds(window_s=3600, max_quarantine_rate=0.05, min_records=100, max_digest_mismatches=0)
    quiet = [PromotionSample(at=1000.0 + i, partition=f"h{i}|acme", records=100, quarantined=1, digest_mismatches=0)
             for i in range(3)]
    assert spikes(window_of(quiet, 1010.0, 3600), rules, 1010.0) == []
    few = [PromotionSample(at=1000.0, partition="h|acme", records=10, quarantined=9, digest_mismatches=0)]
    assert spikes(window_of(few, 1000.0, 3600), rules, 1000.0) == []  # 90 % of 10 records says little
    burst = [*quiet, PromotionSample(at=1005.0, partition="hx|acme", records=100, quarantined=40, digest_mismatches=2)]
    found = {s.metric: s for s in spikes(window_of(burst, 1010.0, 3600), rules, 1010.0)}
    assert found["quarantine_rate"].value == pytest.approx(43 / 400) and found["digest_mismatches"].value == 2
    assert window_of(burst, 1010.0 + 3600, 3600) == []  # the window has moved past them
    again = [*burst, PromotionSample(at=1006.0, partition="hx|acme", records=100, quarantined=0, digest_mismatches=0)]
    assert sum(s.records for s in window_of(again, 1010.0, 3600)) == 400  # a re-promotion replaces, never adds
