"""Catalog contract for the alert outbox: what every backend answers about alerts and their delivery.

Runs on every backend (the ``catalog`` fixture: SQLite file, MongoDB via mongomock): an alert
raised twice is stored once, due deliveries come oldest-due first and only when due, an
attempt changes only what an attempt changes, lists are newest first and filterable, and a
re-queue never re-sends what was delivered.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from vault_pipeline.core.alerts import DELIVERED, FAILED, PENDING, delivery_id_for, event_id_for
from vault_pipeline.storage.catalog import AlertDelivery, Catalog

HOSTILE = ["'; DROP TABLE alert_outbox; --", "$where.dotted", "ünïcødé 😀", "nul\x00byte", "back\\slash"]


def ts(minute: int, second: int = 0) -> str:
    return f"2026-01-01T06:{minute:02d}:{second:02d}.000000Z"


def delivery(n: int, target: str = "ops-webhook", **overrides) -> AlertDelivery:
    event_id = event_id_for(f"run_failure:run-{n}")
    fields = {
        "delivery_id": delivery_id_for(event_id, target), "event_id": event_id, "kind": "run_failure",
        "severity": "error", "title": f"vault run failed #{n}", "target": target, "target_type": "webhook",
        "created_at": ts(n % 60), "next_attempt_at": ts(n % 60),
        "event": {"event_id": event_id, "kind": "run_failure", "title": f"vault run failed #{n}", "text": "boom",
                  "fields": {"partition": f"2026-01-01-05:00|p{n}", "big": 2**70}},
    }
    fields.update(overrides)
    return AlertDelivery(**fields)


def test_an_alert_raised_twice_is_stored_once(catalog: Catalog) -> None:
    first, second = delivery(1), delivery(2)
    assert catalog.enqueue_alerts([first, second]) == 2
    changed = replace(first, title="a later raising with other words", status=DELIVERED, attempts=9)
    assert catalog.enqueue_alerts([changed, second]) == 0
    assert catalog.get_alert(first.delivery_id) == first  # the first copy, untouched
    assert catalog.count_alerts() == 2
    assert catalog.enqueue_alerts([]) == 0


def test_one_event_for_two_targets_is_two_deliveries(catalog: Catalog) -> None:
    assert catalog.enqueue_alerts([delivery(1, "ops-webhook"), delivery(1, "slack:#ops", target_type="slack")]) == 2
    assert {d.target for d in catalog.list_alerts()} == {"ops-webhook", "slack:#ops"}
    assert len({d.event_id for d in catalog.list_alerts()}) == 1


def test_due_alerts_are_the_pending_ones_whose_time_has_come_oldest_first(catalog: Catalog) -> None:
    catalog.enqueue_alerts([delivery(n, next_attempt_at=ts(10 - n)) for n in range(1, 6)])
    catalog.enqueue_alerts([delivery(7, status=FAILED, next_attempt_at=ts(0)),
                            delivery(8, status=DELIVERED, next_attempt_at=ts(0))])
    due = catalog.due_alerts(now=ts(7))
    assert [d.next_attempt_at for d in due] == [ts(5), ts(6), ts(7)]  # 9, 8 are later; failed/delivered never
    assert catalog.due_alerts(now=ts(7), limit=1) == due[:1]
    assert catalog.due_alerts(now=ts(4)) == []


def test_an_attempt_changes_only_the_delivery_state(catalog: Catalog) -> None:
    stored = delivery(1)
    catalog.enqueue_alerts([stored])
    attempted = replace(stored, status=PENDING, attempts=1, last_attempt_at=ts(1), next_attempt_at=ts(2),
                        last_error="the webhook answered HTTP 503", title="not an attempt's to change",
                        event={"changed": True})
    catalog.save_alert_attempt(attempted)
    now = catalog.get_alert(stored.delivery_id)
    assert (now.status, now.attempts, now.last_attempt_at, now.next_attempt_at, now.last_error) == (
        PENDING, 1, ts(1), ts(2), "the webhook answered HTTP 503")
    assert now.title == stored.title and now.event == stored.event and now.created_at == stored.created_at
    catalog.save_alert_attempt(replace(now, status=DELIVERED, attempts=2, delivered_at=ts(3), last_error=None))
    done = catalog.get_alert(stored.delivery_id)
    assert (done.status, done.attempts, done.delivered_at, done.last_error) == (DELIVERED, 2, ts(3), None)
    assert catalog.due_alerts(now=ts(59)) == []


def test_alerts_are_listed_newest_first_filtered_and_paged(catalog: Catalog) -> None:
    catalog.enqueue_alerts([delivery(n, created_at=ts(n)) for n in range(10)])
    catalog.enqueue_alerts([delivery(20, created_at=ts(30), kind="sla_miss", status=FAILED)])
    listed = catalog.list_alerts()
    assert [d.created_at for d in listed] == sorted((d.created_at for d in listed), reverse=True)
    assert listed[0].kind == "sla_miss"
    assert [d.delivery_id for d in catalog.list_alerts(limit=3, offset=2)] == [d.delivery_id for d in listed[2:5]]
    assert [d.kind for d in catalog.list_alerts(kind="sla_miss")] == ["sla_miss"]
    assert catalog.count_alerts(status=FAILED) == 1 and catalog.count_alerts(status=PENDING) == 10
    assert catalog.count_alerts(kind="run_failure", status=FAILED) == 0
    assert catalog.list_alerts(limit=0) == []
    with pytest.raises(ValueError):
        catalog.list_alerts(limit=-1)


def test_a_requeue_never_resends_what_was_delivered(catalog: Catalog) -> None:
    failed, delivered, pending = (delivery(1, status=FAILED, attempts=8), delivery(2, status=DELIVERED, attempts=1),
                                  delivery(3, attempts=2, next_attempt_at=ts(50)))
    catalog.enqueue_alerts([failed, delivered, pending])
    assert catalog.requeue_alerts(None, now=ts(5)) == 1  # every failed one
    again = catalog.get_alert(failed.delivery_id)
    assert (again.status, again.attempts, again.next_attempt_at) == (PENDING, 0, ts(5))
    assert catalog.requeue_alerts([delivered.delivery_id, pending.delivery_id, "ad_unknown"], now=ts(6)) == 1
    assert catalog.get_alert(delivered.delivery_id).status == DELIVERED
    assert catalog.get_alert(pending.delivery_id).next_attempt_at == ts(6)  # due now instead of later
    assert {d.delivery_id for d in catalog.due_alerts(now=ts(6))} == {failed.delivery_id, pending.delivery_id}


def test_event_documents_keep_any_text_and_number_exactly(catalog: Catalog) -> None:
    stored = [delivery(n, title=text, event={"text": text, "fields": {text: text, "big": 2**70, "neg": -(2**65)}})
              for n, text in enumerate(HOSTILE)]
    catalog.enqueue_alerts(stored)
    for original in stored:
        assert catalog.get_alert(original.delivery_id) == original
    assert catalog.get_alert("ad_" + "0" * 32) is None
