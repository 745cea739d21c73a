"""Alerts from real runs of the vault to a real webhook on loopback, through the sensors a daemon ticks.

Each scenario runs partitions of the hourly job in-process on the test's instance, then ticks
the operations sensors the way dagster-daemon does (``SensorTicker``: the previous cursor, the
definitions' resources, the tick's asset events reported to the instance), and looks at what
the ``WebhookReceiver`` got and what the catalog's outbox holds: a failing partition, a
successful run, an SLA miss (shown as a failed ``hourly_sla`` check), a pass-rate drop, a
spike of quarantines and of digest mismatches, and a receiver that is down and then back.
Provider credentials and the webhook's URL are secrets that must show up nowhere.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import pytest
import yaml

from vault_pipeline.defs.operations import alerting
from vault_pipeline.defs.resources import VaultResource
from vault_pipeline.defs.operations.sla import COMPLETION_ASSET, SLA_CHECK
from vault_pipeline_tests.fixtures.alerts import SensorTicker, WebhookReceiver, free_port, running_receiver
from vault_pipeline_tests.fixtures.provider_server import LoopbackProvider, running
from vault_pipeline_tests.fixtures.vault import VaultHarness, check_results, materialization_metadata

HOUR = "2026-01-01-05:00"
PROVIDER_TOKEN = "acme-provider-t0ken-5ecret"
DAGSTER_UI = "http://dagster.vault.example:3000"


def simulator(**overrides):
    return {"type": "simulator", "kind": "audit_event", "records_per_hour": 200, "seed": 3, "lookback_hours": 0,
            "invalid_fraction": 0.0, **overrides}


class AlertingVault:
    """The ``vault`` harness with vault.yaml notifications pointing at a webhook, and a sensor ticker."""

    def __init__(self, harness, monkeypatch, url: str) -> None:
        self.harness, self.monkeypatch = harness, monkeypatch
        monkeypatch.setenv("VAULT_ALERT_WEBHOOK_URL", url)
        monkeypatch.setenv("VAULT_DAGSTER_URL", DAGSTER_UI)
        self.ticker: SensorTicker | None = None

    def configure(self, providers, *, events=None, **sections) -> None:
        target = {"type": "webhook", "url_env": "VAULT_ALERT_WEBHOOK_URL", "name": "ops"}
        if events:
            target["events"] = events
        document = {"providers": providers, "notifications": [target], **sections}
        self.harness.config_path.write_text(yaml.safe_dump(document))
        self.ticker = SensorTicker(self.harness.definitions(), self.harness.instance)

    def tick(self, sensor: str):
        return self.ticker.tick(sensor)

    def run(self, provider: str, hour: str = HOUR):
        return self.harness.run(hour, provider)

    def outbox(self):
        return self.harness.catalog.list_alerts(limit=1000)


@pytest.fixture
def webhook_receiver():
    with running_receiver() as receiver:
        yield receiver


@pytest.fixture
def local_vault(tmp_path, monkeypatch):
    """The vault harness on an instance stored like the embedded deployment's ($VAULT_HOME/dagster:
    SQLite, one event log per run), which is what the sensors must read in production."""
    home = tmp_path / "vault_home"
    monkeypatch.setenv("VAULT_HOME", str(home))
    monkeypatch.setenv("VAULT_OTEL_EXPORTER", "none")
    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "dagster"), overrides={"telemetry": {"enabled": False}})
    harness = VaultHarness(home, VaultResource(home=str(home), config_path=str(tmp_path / "vault.yaml")), instance)
    try:
        yield harness
    finally:
        instance.dispose()


@pytest.fixture
def alerting_vault(local_vault, webhook_receiver, monkeypatch):
    return AlertingVault(local_vault, monkeypatch, webhook_receiver.url)


def test_a_failing_partition_is_announced_with_its_step_error_and_a_link_to_the_run(alerting_vault, webhook_receiver,
                                                                                      monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ACME_TOKEN", PROVIDER_TOKEN)
    with running(LoopbackProvider(token="the-token-the-provider-expects")) as provider:
        alerting_vault.configure({"acme": {"type": "rest", "kind": "audit_event", "url": provider.url,
                                           "lookback_hours": 0, "auth": {"type": "bearer", "token_env": "ACME_TOKEN"},
                                           "retry": {"max_attempts": 1}}})
        alerting_vault.tick("run_failure_alerts")  # the daemon's first tick starts watching from now
        result = alerting_vault.run("acme")
    assert not result.success
    alerting_vault.tick("run_failure_alerts")
    alerting_vault.tick("run_failure_alerts")  # nothing new: the run is announced once

    (alert,) = webhook_receiver.alerts()
    run_id = result.run_id
    assert alert["kind"] == "run_failure" and alert["severity"] == "error"
    assert alert["title"] == f"vault run failed: hourly_ingestion for {HOUR}|acme at raw_landing"
    assert alert["fields"]["provider"] == "acme" and alert["fields"]["partition"] == f"{HOUR}|acme"
    assert alert["fields"]["failed_step"] == "raw_landing" and alert["fields"]["run_id"] == run_id
    assert alert["fields"]["error"].startswith(f"raw landing of {HOUR}|acme failed")
    assert "credentials rejected (HTTP 401" in alert["fields"]["error"] and "\n" not in alert["fields"]["error"]
    assert alert["link"] == f"{DAGSTER_UI}/runs/{run_id}"
    (row,) = alerting_vault.outbox()
    assert (row.status, row.target, row.attempts) == ("delivered", "ops", 1)
    for text in (str(alert), repr(asdict(row)), caplog.text):
        assert PROVIDER_TOKEN not in text and webhook_receiver.path not in text


def test_a_successful_run_is_announced_once(alerting_vault, webhook_receiver):
    alerting_vault.configure({"sim": simulator()}, events=["run_success"])
    alerting_vault.tick("run_success_alerts")
    result = alerting_vault.run("sim")
    assert result.success
    alerting_vault.tick("run_success_alerts")
    alerting_vault.tick("run_failure_alerts")
    (alert,) = webhook_receiver.alerts()
    assert alert["kind"] == "run_success" and alert["title"] == f"vault run succeeded: hourly_ingestion for {HOUR}|sim"
    assert alert["link"] == f"{DAGSTER_UI}/runs/{result.run_id}" and alert["fields"]["duration_s"] > 0


def test_a_partition_missing_its_sla_fails_the_check_and_raises_one_alert(alerting_vault, webhook_receiver,
                                                                          monkeypatch):
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)  # the hour under way: its deadline is ahead
    key = hour.strftime("%Y-%m-%d-%H:%M")
    alerting_vault.configure({"punctual": simulator(records_per_hour=20), "tardy": simulator(records_per_hour=20),
                              "unwatched": simulator(records_per_hour=20, sla_minutes=None),
                              "pushed": {"type": "push", "kind": "test_result"}})
    assert alerting_vault.run("punctual", key).success  # complete now, long before hour end + 10 min
    # The sensor's clock: 11 minutes after the hour's end, past the 10-minute deadlines.
    judged_at = hour + timedelta(hours=1, minutes=11)
    monkeypatch.setattr(alerting, "now_utc", lambda: judged_at)
    alerting_vault.tick("hourly_sla_sensor")

    (alert,) = webhook_receiver.alerts()  # neither unwatched (sla_minutes: null) nor pushed (no SLA) are judged
    assert alert["kind"] == "sla_miss" and alert["title"] == f"SLA missed: {key}|tardy"
    assert alert["fields"]["deadline"] == (hour + timedelta(hours=1, minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert alert["fields"]["overdue_minutes"] == 1.0
    assert alert["link"] == f"{DAGSTER_UI}/assets/artifact_index?view=partitions&partition={quote(key + '|tardy', safe='')}"

    check = dg.AssetCheckKey(COMPLETION_ASSET, SLA_CHECK)
    record = alerting_vault.harness.instance.event_log_storage.get_latest_asset_check_execution_by_key([check])[check]
    evaluation = record.event.dagster_event.event_specific_data
    assert not evaluation.passed  # what the UI shows on hourly_completion
    assert evaluation.metadata["partitions_judged"].value == 2 and evaluation.metadata["partitions_missed"].value == 1
    assert evaluation.metadata["on_time"].value == [f"{key}|punctual"]
    assert f"{key}|tardy" in evaluation.description

    # Executing the check (the UI's "Execute" on hourly_completion) judges the newest deadlines alike.
    job = alerting_vault.ticker.definitions.resolve_implicit_global_asset_job_def()
    executed = job.get_subset(asset_selection=set(), asset_check_selection={check}).execute_in_process(
        instance=alerting_vault.harness.instance)
    (verdict,) = executed.get_asset_check_evaluations()
    assert not verdict.passed and verdict.metadata["on_time"].value == [f"{key}|punctual"]

    alerting_vault.tick("hourly_sla_sensor")  # the same clock again: nothing more is due
    monkeypatch.setattr(alerting, "now_utc", lambda: judged_at + timedelta(minutes=30))
    alerting_vault.tick("hourly_sla_sensor")
    assert len(webhook_receiver.alerts()) == 1  # each partition is judged once, at its deadline


def test_a_pass_rate_under_the_threshold_raises_a_quality_alert(alerting_vault, webhook_receiver):
    alerting_vault.configure({"noisy": simulator(invalid_fraction=0.3), "mostly": simulator(seed=5, records_per_hour=300,
                                                                                            invalid_fraction=0.004)},
                             events=["quality", "run_failure"],
                             alerts={"quality": {"min_pass_rate": {"audit_event.input": 0.999}}})
    alerting_vault.tick("quality_alerts")
    alerting_vault.tick("run_failure_alerts")
    failed = alerting_vault.run("noisy")
    assert check_results(failed) == {"input_validation": False}  # blocking: the partition stops there
    passed = alerting_vault.run("mostly")
    assert check_results(passed)["input_validation"] is True
    alerting_vault.tick("quality_alerts")
    alerting_vault.tick("quality_alerts")
    alerting_vault.tick("run_failure_alerts")

    (stopped,) = [a for a in webhook_receiver.alerts() if a["kind"] == "run_failure"]
    assert stopped["fields"]["failed_step"] == "raw_landing_input_validation"
    assert stopped["fields"]["error"] == "1 blocking asset check failed with ERROR severity: raw_landing: input_validation"
    alerts = {a["fields"]["provider"]: a for a in webhook_receiver.alerts() if a["kind"] == "quality"}
    assert set(alerts) == {"noisy", "mostly"}
    noisy = alerts["noisy"]
    assert noisy["severity"] == "error" and noisy["fields"]["suite"] == "audit_event.input"
    assert noisy["fields"]["pass_rate"] < 0.99 and noisy["fields"]["threshold"] == 0.99
    assert "The input_validation check failed; downstream stages of the partition did not run." in noisy["text"]
    assert noisy["link"] == f"{DAGSTER_UI}/runs/{failed.run_id}"
    mostly = alerts["mostly"]  # passed its blocking 99 %, but under the 99.9 % alert threshold
    assert mostly["severity"] == "warning" and 0.99 <= mostly["fields"]["pass_rate"] < 0.999
    assert mostly["fields"]["threshold"] == 0.999


def test_quarantine_and_digest_mismatch_spikes_raise_promotion_alerts(alerting_vault, webhook_receiver):
    alerting_vault.configure({"sim": simulator(invalid_fraction=0.2)}, events=["promotion"],
                             policies={"input_pass_rate": 0.5})
    alerting_vault.tick("promotion_alerts")
    result = alerting_vault.run("sim")
    counts = materialization_metadata(result, "golden_promotion")
    assert result.success and counts["count_quarantined"] > 0.05 * (counts["count_masked"] + counts["count_clean"])
    alerting_vault.tick("promotion_alerts")
    (quarantines,) = webhook_receiver.alerts()
    assert quarantines["fields"]["metric"] == "quarantine_rate" and quarantines["fields"]["provider"] == "sim"
    assert quarantines["fields"]["quarantined"] == counts["count_quarantined"]

    # Someone alters a sealed record's bytes; promoting the partition again finds the mismatch.
    harness = alerting_vault.harness
    record = next(harness.catalog.iter_partition_records(f"{HOUR}|sim"))
    path = Path(harness.home) / "objects" / record.object_key
    body = bytearray(path.read_bytes())
    body[record.offset + record.length // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(body))
    promoted_at = time.time()
    definitions = harness.definitions()
    assets = [definitions.get_assets_def(k) for k in definitions.get_repository_def().asset_graph.get_all_asset_keys()
              if k.path[-1] != "hourly_completion"]
    again = dg.materialize(assets, selection="golden_promotion", resources={"vault": harness.resource},
                           partition_key=f"{HOUR}|sim", instance=harness.instance, raise_on_error=False)
    assert again.success
    alerting_vault.tick("promotion_alerts")
    alerts = webhook_receiver.alerts()
    metrics = [a["fields"]["metric"] for a in alerts]
    # The quarantine rate is still over its threshold: one alert per window-long slice of time
    # (a second one only if the re-promotion fell into the next hour's slice).
    same_slice = int(promoted_at // 3600) == int(time.time() // 3600)
    assert metrics.count("quarantine_rate") == (1 if same_slice else 2) and metrics.count("digest_mismatches") == 1
    mismatch = next(a for a in alerts if a["fields"]["metric"] == "digest_mismatches")
    assert mismatch["severity"] == "critical" and mismatch["fields"]["digest_mismatches"] >= 1
    assert "vault verify" in mismatch["text"]


def test_a_receiver_that_is_down_gets_the_alert_once_it_is_back(local_vault, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    receiver = WebhookReceiver(port=free_port())  # down: nothing listens on its port yet
    alerting_vault = AlertingVault(local_vault, monkeypatch, receiver.url)
    alerting_vault.configure({"sim": simulator()}, events=["run_success"],
                             alerts={"delivery": {"backoff_s": 0.3, "backoff_max_s": 1}})
    alerting_vault.tick("run_success_alerts")
    assert alerting_vault.run("sim").success
    started = time.monotonic()
    alerting_vault.tick("run_success_alerts")  # raised, and its first attempt fails at once
    (row,) = alerting_vault.outbox()
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "cannot connect to the webhook (connection refused)")
    alerting_vault.tick("alert_delivery")
    if time.monotonic() - started < 0.2:  # still inside its backoff: not attempted again
        assert alerting_vault.harness.catalog.get_alert(row.delivery_id).attempts == 1
    receiver.start()
    try:
        deadline = time.monotonic() + 10
        while alerting_vault.harness.catalog.get_alert(row.delivery_id).status != "delivered":
            assert time.monotonic() < deadline, alerting_vault.harness.catalog.get_alert(row.delivery_id)
            time.sleep(0.1)
            alerting_vault.tick("alert_delivery")
        alerting_vault.tick("alert_delivery")
        alerting_vault.tick("run_success_alerts")
        assert len(receiver.alerts()) == 1
    finally:
        receiver.stop()
    assert receiver.path not in caplog.text
