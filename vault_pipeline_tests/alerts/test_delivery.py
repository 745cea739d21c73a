"""Delivering alerts to real receivers on loopback: once per event, retried with backoff, never lost.

The outbox runs on the embedded SQLite catalog with a clock the test moves, so a backoff of
minutes is a step of the clock rather than a wait; the receivers are real HTTP servers
(``WebhookReceiver``, and ``SlackApiDouble`` answering Slack's Web API for dagster-slack's
client). The webhook URL's path and the Slack token are secrets: they must never appear in the
outbox, in what the outbox logs, or in an error it records.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest

from vault_pipeline.alerts.outbox import AlertOutbox
from vault_pipeline.core.alerts import DELIVERED, FAILED, PENDING, AlertEvent
from vault_pipeline.providers.config import parse_config
from vault_pipeline.storage.sqlite_catalog import SqliteCatalog
from vault_pipeline_tests.fixtures.alerts import SlackApiDouble, WebhookReceiver, free_port, running_receiver

START = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
SLACK_TOKEN = "xoxb-0000-1111-s3cr3t-t0ken"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


def config(targets, **delivery):
    return parse_config({"providers": {"sim": {"type": "simulator", "kind": "audit_event"}}, "notifications": targets,
                         "alerts": {"delivery": {"backoff_s": 30, "backoff_max_s": 3600, **delivery}}})


def failure(run: str = "run-1") -> AlertEvent:
    return AlertEvent(kind="run_failure", severity="error", title=f"vault run failed: hourly_ingestion ({run})",
                      text="raw_landing: credentials rejected (HTTP 401)", dedup_key=f"run_failure:{run}",
                      created_at="2026-03-04T10:00:00.000000Z", fields={"partition": "2026-03-04-09:00|acme"},
                      link=f"http://127.0.0.1:3000/runs/{run}")


@pytest.fixture
def webhook_receiver():
    with running_receiver() as receiver:
        yield receiver


@pytest.fixture
def catalog(tmp_path):
    built = SqliteCatalog(tmp_path / "catalog.db")
    yield built
    built.close()


@pytest.fixture
def clock():
    return Clock()


def stored_text(catalog) -> str:
    return repr([asdict(d) for d in catalog.list_alerts(limit=1000)])


def test_an_alert_raised_twice_reaches_the_webhook_once(catalog, clock, webhook_receiver, monkeypatch):
    monkeypatch.setenv("OPS_WEBHOOK_URL", webhook_receiver.url)
    outbox = AlertOutbox(catalog, config([{"type": "webhook", "url_env": "OPS_WEBHOOK_URL"}]), clock=clock)
    assert outbox.raise_event(failure()) == 1
    assert outbox.raise_event(failure()) == 0  # the same occurrence: nothing new
    report = outbox.deliver_due()
    assert len(report.delivered) == 1
    outbox.raise_event(failure())
    assert outbox.deliver_due().delivered == []
    (alert,) = webhook_receiver.alerts()
    assert alert["kind"] == "run_failure" and alert["fields"]["partition"] == "2026-03-04-09:00|acme"
    assert alert["source"] == "vault_pipeline" and alert["link"] == "http://127.0.0.1:3000/runs/run-1"
    assert webhook_receiver.requests[0].headers["x-vault-event-id"] == failure().event_id
    (row,) = catalog.list_alerts()
    assert (row.status, row.attempts, row.target) == (DELIVERED, 1, "webhook:OPS_WEBHOOK_URL")


def test_a_receiver_that_is_down_gets_the_alert_once_when_it_is_back(catalog, clock, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    receiver = WebhookReceiver(port=free_port())  # its address is known, nothing listens there yet
    monkeypatch.setenv("OPS_WEBHOOK_URL", receiver.url)
    outbox = AlertOutbox(catalog, config([{"type": "webhook", "url_env": "OPS_WEBHOOK_URL"}]), clock=clock)
    outbox.raise_event(failure())

    assert outbox.deliver_due().retrying  # first attempt: connection refused, kept
    (row,) = catalog.list_alerts()
    assert (row.status, row.attempts) == (PENDING, 1)
    assert row.last_error == "cannot connect to the webhook (connection refused)"
    wait = datetime.strptime(row.next_attempt_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) - clock.now
    assert timedelta(seconds=22.5) <= wait < timedelta(seconds=37.5)  # 30 s, with jitter

    clock.advance(seconds=10)
    assert outbox.deliver_due().retrying == []  # not due yet: no attempt, however often it is asked
    assert catalog.get_alert(row.delivery_id).attempts == 1

    clock.advance(seconds=30)
    assert outbox.deliver_due().retrying  # still down: the second wait doubles
    second = catalog.get_alert(row.delivery_id)
    assert second.attempts == 2
    wait = datetime.strptime(second.next_attempt_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) - clock.now
    assert timedelta(seconds=45) <= wait < timedelta(seconds=75)

    receiver.start()
    try:
        clock.advance(seconds=80)
        assert len(outbox.deliver_due().delivered) == 1
        clock.advance(hours=2)
        outbox.raise_event(failure())
        assert outbox.deliver_due().delivered == []
        assert len(receiver.alerts()) == 1  # exactly once, although attempted three times
    finally:
        receiver.stop()
    done = catalog.get_alert(row.delivery_id)
    assert (done.status, done.attempts, done.last_error) == (DELIVERED, 3, None)
    for text in (stored_text(catalog), caplog.text):
        assert receiver.path not in text and "T0KEN-s3cr3t" not in text


def test_errors_are_retried_then_kept_as_failed_and_a_retry_sends_them_once(catalog, clock, webhook_receiver,
                                                                             monkeypatch):
    monkeypatch.setenv("OPS_WEBHOOK_URL", webhook_receiver.url)
    outbox = AlertOutbox(catalog, config([{"type": "webhook", "url_env": "OPS_WEBHOOK_URL"}], max_attempts=3),
                         clock=clock)
    webhook_receiver.status = 503
    outbox.raise_event(failure())
    for _ in range(3):
        outbox.deliver_due()
        clock.advance(hours=2)  # past any backoff
    (row,) = catalog.list_alerts()
    assert (row.status, row.attempts, row.last_error) == (FAILED, 3, "the webhook answered HTTP 503")
    assert outbox.deliver_due().failed == [] and len(webhook_receiver.requests) == 3  # given up: no 4th attempt

    webhook_receiver.status = 200
    assert outbox.retry(None) == 1
    assert len(outbox.deliver_due().delivered) == 1
    assert catalog.get_alert(row.delivery_id).status == DELIVERED
    assert outbox.retry(None) == 0 and outbox.retry([row.delivery_id]) == 0  # delivered is never re-sent
    assert len([r for r in webhook_receiver.requests if r.headers.get("x-vault-event-id")]) == 4


def test_a_receiver_asking_to_wait_is_given_the_time_it_asks_for(catalog, clock, webhook_receiver, monkeypatch):
    monkeypatch.setenv("OPS_WEBHOOK_URL", webhook_receiver.url)
    outbox = AlertOutbox(catalog, config([{"type": "webhook", "url_env": "OPS_WEBHOOK_URL"}]), clock=clock)
    webhook_receiver.status = 429
    webhook_receiver.answer = lambda request: (429, b"{}", {"Retry-After": "600"})
    outbox.raise_event(failure())
    outbox.deliver_due()
    (row,) = catalog.list_alerts()
    assert row.next_attempt_at == "2026-03-04T10:10:00.000000Z" and row.last_error == "the webhook answered HTTP 429"


def test_a_slack_target_posts_through_dagster_slack_and_its_token_stays_secret(catalog, clock, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    slack = SlackApiDouble(SLACK_TOKEN).start()
    try:
        monkeypatch.setenv("VAULT_SLACK_TOKEN", SLACK_TOKEN)
        targets = [{"type": "slack", "token_env": "VAULT_SLACK_TOKEN", "channel": "#vault-alerts", "api_url": slack.api_url},
                   {"type": "slack", "token_env": "VAULT_SLACK_TOKEN", "channel": "#nowhere", "api_url": slack.api_url,
                    "name": "lost"}]
        outbox = AlertOutbox(catalog, config(targets), clock=clock)
        outbox.raise_event(failure())
        real_answer = slack.answer
        slack.answer = lambda r: ((200, b'{"ok": false, "error": "channel_not_found"}', {})
                                  if "nowhere" in r.body.decode() else real_answer(r))
        report = outbox.deliver_due()
        assert len(report.delivered) == 1 and len(report.retrying) == 1
        posted = [m for m in slack.messages() if m.get("channel") == "#vault-alerts"]
        assert len(posted) == 1 and "*vault run failed: hourly_ingestion (run-1)*" in posted[0]["text"]
        assert "<http://127.0.0.1:3000/runs/run-1|Open in the Dagster UI>" in posted[0]["text"]
        lost = next(d for d in catalog.list_alerts() if d.target == "lost")
        assert lost.status == PENDING and lost.last_error == "Slack answered channel_not_found (HTTP 200)"
    finally:
        slack.stop()
    assert SLACK_TOKEN not in stored_text(catalog) and SLACK_TOKEN not in caplog.text
    assert "s3cr3t" not in stored_text(catalog)


def test_a_target_whose_secret_is_not_set_says_which_variable_and_keeps_the_alert(catalog, clock, monkeypatch):
    monkeypatch.delenv("MISSING_WEBHOOK_URL", raising=False)
    outbox = AlertOutbox(catalog, config([{"type": "webhook", "url_env": "MISSING_WEBHOOK_URL"}]), clock=clock)
    outbox.raise_event(failure())
    outbox.deliver_due()
    (row,) = catalog.list_alerts()
    assert row.status == PENDING and row.last_error == (
        "environment variable MISSING_WEBHOOK_URL is not set (the webhook:MISSING_WEBHOOK_URL target's URL)")


def test_alert_texts_never_carry_a_configured_secret(catalog, clock, webhook_receiver, monkeypatch):
    monkeypatch.setenv("OPS_WEBHOOK_URL", webhook_receiver.url)
    monkeypatch.setenv("ACME_TOKEN", "acme-provider-token-42")
    document = {"providers": {"acme": {"type": "rest", "kind": "audit_event", "url": "https://acme.test/v1",
                                       "auth": {"type": "bearer", "token_env": "ACME_TOKEN"}}},
                "notifications": [{"type": "webhook", "url_env": "OPS_WEBHOOK_URL", "events": ["run_failure"]}]}
    outbox = AlertOutbox(catalog, parse_config(document), clock=clock)
    leaky = AlertEvent(kind="run_failure", severity="error", title="failed with acme-provider-token-42",
                       text=f"posting to {webhook_receiver.url} failed", dedup_key="run_failure:leaky",
                       created_at="2026-03-04T10:00:00.000000Z", fields={"error": "Bearer acme-provider-token-42"})
    outbox.raise_event(leaky)
    outbox.raise_event(AlertEvent(kind="sla_miss", severity="error", title="not for this target", text="-",
                                  dedup_key="sla_miss:x", created_at="2026-03-04T10:00:00.000000Z"))
    outbox.deliver_due()
    (alert,) = webhook_receiver.alerts()  # the sla_miss was not among this target's events
    for text in (str(alert), stored_text(catalog)):
        assert "acme-provider-token-42" not in text and "T0KEN-s3cr3t" not in text and "***" in text
