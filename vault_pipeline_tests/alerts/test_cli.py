"""``vault alerts``: an operator sees what was raised and what is stuck, retries it, and tests a target.

The command runs in-process on a fresh VAULT_HOME (the ``operator`` fixture) with a webhook
target pointing at a real receiver on loopback; the outbox is filled the way the sensors fill
it (``AlertOutbox.raise_event``). Targets are shown by name: the URL is never printed.
"""

from __future__ import annotations

import json

import pytest
import yaml

from vault_pipeline.alerts.outbox import AlertOutbox
from vault_pipeline.core.alerts import AlertEvent
from vault_pipeline.providers.config import load_config
from vault_pipeline.storage.sqlite_catalog import SqliteCatalog
from vault_pipeline_tests.fixtures.alerts import WebhookReceiver, free_port
from vault_pipeline_tests.fixtures.cli import OPERATOR_SIMULATOR


@pytest.fixture
def receiver():
    built = WebhookReceiver(port=free_port())
    yield built
    built.stop()


@pytest.fixture
def alerting_operator(operator, receiver, monkeypatch):
    monkeypatch.setenv("OPS_WEBHOOK_URL", receiver.url)
    operator.config.write_text(yaml.safe_dump({
        "providers": {"qa": OPERATOR_SIMULATOR},
        "notifications": [{"type": "webhook", "url_env": "OPS_WEBHOOK_URL", "name": "ops"}],
        "alerts": {"delivery": {"max_attempts": 1}},
    }))
    return operator


def raise_failure(operator, run: str = "run-7") -> None:
    catalog = SqliteCatalog(operator.home / "catalog.db")
    try:
        outbox = AlertOutbox(catalog, load_config(operator.config))
        outbox.raise_event(AlertEvent(kind="run_failure", severity="error", title=f"vault run failed: {run}",
                                      text="raw_landing: boom", dedup_key=f"run_failure:{run}",
                                      created_at="2026-03-04T10:00:00.000000Z", fields={"partition": "2026-03-04-09:00|qa"}))
        outbox.deliver_due()
    finally:
        catalog.close()


def test_with_no_alerts_it_says_so_and_where_targets_are_configured(operator):
    code, out, err = operator("alerts")
    assert code == 0 and err == ""
    assert out == "no alerts in the outbox; no targets yet: notifications: in vault.yaml names where alerts go, see docs/alerts.md\n"


def test_an_undeliverable_alert_is_listed_with_its_error_then_retried_once_the_receiver_is_back(
        alerting_operator, receiver):
    raise_failure(alerting_operator)  # the receiver is down: one attempt (max_attempts 1), given up
    code, out, _ = alerting_operator("alerts")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["DELIVERY", "STATUS", "TRIES", "RAISED", "KIND", "TARGET", "TITLE"]
    assert lines[1].split()[1:6] == ["failed", "1", "2026-03-04T10:00", "run_failure", "ops"]
    assert "last error: cannot connect to the webhook (connection refused); gave up (vault alerts retry)" in lines[2]
    assert lines[-1] == "1 alerts: 0 pending, 0 delivered, 1 failed"

    code, out, _ = alerting_operator("alerts", "--json", "--status", "failed")
    listed = json.loads(out)
    assert code == 0 and listed["meta"]["total_count"] == 1 and listed["meta"]["targets"] == ["ops"]
    (alert,) = listed["data"]
    assert (alert["status"], alert["target"], alert["event"]["fields"]["partition"]) == ("failed", "ops",
                                                                                        "2026-03-04-09:00|qa")

    receiver.start()
    code, out, _ = alerting_operator("alerts", "retry")
    assert code == 0 and out.startswith("1 deliveries queued again; 1 delivered")
    assert f"{alert['delivery_id']} ops: delivered" in out
    code, out, _ = alerting_operator("alerts", "retry")
    assert code == 0 and out.startswith("0 deliveries queued again")
    assert len(receiver.alerts()) == 1
    code, out, _ = alerting_operator("alerts", "--status", "delivered")
    assert "1 alerts: 0 pending, 1 delivered, 0 failed" in out
    for text in (out, json.dumps(listed)):
        assert receiver.path not in text


def test_a_test_alert_checks_a_target_and_fails_loudly_when_it_cannot(alerting_operator, receiver):
    code, out, _ = alerting_operator("alerts", "test")  # the receiver is down
    assert code == 1 and "failed: cannot connect to the webhook (connection refused)" in out
    receiver.start()
    code, out, _ = alerting_operator("alerts", "test", "--target", "ops")
    assert code == 0 and out.splitlines()[-1].endswith("ops: delivered")
    (sent,) = receiver.alerts()
    assert sent["kind"] == "test" and sent["title"] == "vault alerts test"
    code, _, err = alerting_operator("alerts", "test", "--target", "pager")
    assert code == 2 and "unknown target(s) pager; configured: ops" in err


def test_unknown_ids_and_bad_limits_are_usage_errors(alerting_operator):
    code, _, err = alerting_operator("alerts", "retry", "ad_nope")
    assert code == 2 and "no such alert ad_nope" in err
    code, _, err = alerting_operator("alerts", "--limit", "0")
    assert code == 2 and "--limit must be at least 1" in err
