"""``notifications:`` and ``alerts:`` in vault.yaml: targets named by their secret's variable, thresholds, SLAs.

Every mistake is a ConfigError naming the key to fix; nothing here reads a secret.
"""

from __future__ import annotations

import pytest

from vault_pipeline.providers.config import ConfigError, parse_config

SIM = {"sim": {"type": "simulator", "kind": "audit_event"}}


def parse(**sections):
    return parse_config({"providers": sections.pop("providers", SIM), **sections}, "vault.yaml")


def test_targets_are_known_by_name_and_by_the_variable_holding_their_secret():
    config = parse(notifications=[
        {"type": "webhook", "url_env": "VAULT_ALERT_WEBHOOK_URL"},
        {"type": "slack", "token_env": "VAULT_SLACK_TOKEN", "channel": "#vault-alerts", "events": ["run_failure", "sla_miss"]},
        {"type": "webhook", "url_env": "PAGER_URL", "name": "pager", "events": ["sla_miss"], "timeout_s": 2},
    ])
    assert [t.target_name for t in config.notifications] == ["webhook:VAULT_ALERT_WEBHOOK_URL", "slack:#vault-alerts",
                                                            "pager"]
    assert [t.secret_env for t in config.notifications] == ["VAULT_ALERT_WEBHOOK_URL", "VAULT_SLACK_TOKEN", "PAGER_URL"]
    assert config.notifications[0].events[0] == "run_failure" and "test" in config.notifications[0].events
    assert config.notifications[1].api_url == "https://slack.com/api/"
    assert parse().notifications == []


@pytest.mark.parametrize("targets, message", [
    ([{"type": "webhook"}], r"notifications\[0\]\.url_env: Field required"),
    ([{"type": "webhook", "url": "https://hooks.example.com/x"}], r"notifications\[0\]\.url: Extra inputs"),
    ([{"type": "webhook", "url_env": "https://hooks.example.com/x"}], r"notifications\[0\]\.url_env: .*not an environment "
                                                                      r"variable name"),
    ([{"type": "slack", "token_env": "T"}], r"notifications\[0\]\.channel: Field required"),
    ([{"type": "slack", "token_env": "T", "channel": "vault alerts"}], r"notifications\[0\]\.channel: .*'#name'"),
    ([{"type": "sms", "number_env": "N"}], r"notifications\[0\]\.type: 'sms' is not a target type; use webhook or slack"),
    ([{"type": "webhook", "url_env": "A", "events": ["everything"]}], r"notifications\[0\]\.events\.0"),
    ([{"type": "webhook", "url_env": "A"}, {"type": "webhook", "url_env": "A"}], r"webhook:A are used twice"),
    ({"type": "webhook", "url_env": "A"}, r"notifications must be a list"),
    (["webhook"], r"notifications\[0\] must be a mapping"),
])
def test_a_wrong_target_names_the_key_to_fix(targets, message):
    with pytest.raises(ConfigError, match=message) as raised:
        parse(notifications=targets)
    assert str(raised.value).startswith("vault.yaml: ")


def test_slas_are_per_provider_ten_minutes_by_default_and_can_be_switched_off():
    config = parse(providers={"fast": {"type": "simulator", "kind": "audit_event"},
                              "slow": {"type": "simulator", "kind": "audit_event", "sla_minutes": 90},
                              "none": {"type": "simulator", "kind": "audit_event", "sla_minutes": None}})
    assert {n: p.sla_minutes for n, p in config.providers.items()} == {"fast": 10, "slow": 90, "none": None}
    with pytest.raises(ConfigError, match=r"provider 'fast': sla_minutes: Input should be greater than or equal to 1"):
        parse(providers={"fast": {"type": "simulator", "kind": "audit_event", "sla_minutes": 0}})


def test_alert_thresholds_have_sensible_defaults_and_say_what_is_wrong():
    alerts = parse().alerts
    assert (alerts.runs.on_failure, alerts.runs.on_success, alerts.sla.lookback_hours) == (True, True, 6)
    assert (alerts.promotion.window_minutes, alerts.promotion.max_quarantine_rate, alerts.promotion.max_digest_mismatches,
            alerts.promotion.min_records) == (60, 0.05, 0, 100)
    assert (alerts.delivery.max_attempts, alerts.delivery.backoff_s, alerts.delivery.backoff_max_s) == (8, 30, 3600)
    custom = parse(alerts={"quality": {"min_pass_rate": {"audit_event.input": 0.995}}, "promotion": {"window_minutes": 15}})
    assert custom.alerts.quality.min_pass_rate == {"audit_event.input": 0.995}
    for section, message in (({"quality": {"min_pass_rate": {"audit.input": 0.9}}}, r"alerts\.quality\.min_pass_rate: .*'audit"
                                                                                     r"\.input' is not a suite"),
                             ({"promotion": {"max_quarantine_rate": 2}}, r"alerts\.promotion\.max_quarantine_rate"),
                             ({"delivery": {"backoff_s": 60, "backoff_max_s": 10}}, r"alerts\.delivery.*backoff_max_s must "
                                                                                    r"be at least backoff_s"),
                             ({"runs": {"on_falure": True}}, r"alerts\.runs\.on_falure: Extra inputs"),
                             ("loud", r"alerts must be a mapping")):
        with pytest.raises(ConfigError, match=message):
            parse(alerts=section)
