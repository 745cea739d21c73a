"""``GET /v1/alerts``: the alert outbox over real HTTP on loopback, for keys with the read role.

The vault is served by uvicorn on the embedded stack (``vault_service_factory``); alerts are
raised into its catalog the way the sensors raise them, one delivered and one given up on,
and the API lists them newest first with their delivery, filtered and paged. The webhook
target's URL (its secret) never appears in what the API answers.
"""

from __future__ import annotations

from vault_pipeline.alerts.outbox import AlertOutbox
from vault_pipeline.core.alerts import AlertEvent
from vault_pipeline.providers.config import parse_config
from vault_pipeline_tests.fixtures.alerts import WebhookReceiver, free_port

SECRET_PATH = "/hooks/T0/B1/api-s3cr3t-path"


def raise_two(catalog, monkeypatch, receiver: WebhookReceiver) -> None:
    monkeypatch.setenv("OPS_WEBHOOK_URL", receiver.url)
    config = parse_config({"providers": {"sim": {"type": "simulator", "kind": "audit_event"}},
                           "notifications": [{"type": "webhook", "url_env": "OPS_WEBHOOK_URL", "name": "ops"}],
                           "alerts": {"delivery": {"max_attempts": 1}}})
    outbox = AlertOutbox(catalog, config)
    outbox.raise_event(AlertEvent(kind="sla_miss", severity="error", title="SLA missed: 2026-01-01-05:00|acme",
                                  text=f"not complete; was going to {receiver.url}", dedup_key="sla_miss:2026-01-01-05:00|acme",
                                  created_at="2026-01-01T06:11:00.000000Z",
                                  fields={"provider": "acme", "partition": "2026-01-01-05:00|acme"}))
    outbox.deliver_due()  # the receiver is down: given up after its one attempt
    receiver.start()
    outbox.raise_event(AlertEvent(kind="run_failure", severity="error", title="vault run failed", text="boom",
                                  dedup_key="run_failure:r1", created_at="2026-01-01T07:00:00.000000Z",
                                  link="http://127.0.0.1:3000/runs/r1"))
    outbox.deliver_due()


def test_alerts_are_listed_newest_first_with_their_delivery_and_no_secret(vault_service_factory, monkeypatch):
    service = vault_service_factory(stack="embedded")
    receiver = WebhookReceiver(port=free_port(), path=SECRET_PATH)
    try:
        raise_two(service.harness.catalog, monkeypatch, receiver)
    finally:
        receiver.stop()
    reader = service.client("reader")
    page = reader.expect(reader.request("GET", "/v1/alerts"), 200)
    assert page["meta"] == {"total_count": 2, "has_more": False, "limit": 50, "offset": 0}
    newest, oldest = page["data"]
    assert (newest["kind"], newest["status"], newest["attempts"], newest["target"]) == ("run_failure", "delivered", 1, "ops")
    assert newest["link"] == "http://127.0.0.1:3000/runs/r1" and newest["next_attempt_at"] is None
    assert (oldest["kind"], oldest["status"], oldest["target_type"]) == ("sla_miss", "failed", "webhook")
    assert oldest["last_error"] == "cannot connect to the webhook (connection refused)"
    assert oldest["fields"] == {"provider": "acme", "partition": "2026-01-01-05:00|acme"}
    assert SECRET_PATH not in str(page) and "***" in oldest["text"]

    failed = reader.expect(reader.request("GET", "/v1/alerts", params={"status": "failed"}), 200)
    assert [a["kind"] for a in failed["data"]] == ["sla_miss"] and failed["meta"]["total_count"] == 1
    paged = reader.expect(reader.request("GET", "/v1/alerts", params={"limit": 1, "offset": 0}), 200)
    assert paged["meta"]["has_more"] is True and paged["data"][0]["kind"] == "run_failure"
    by_kind = reader.expect(reader.request("GET", "/v1/alerts", params={"kind": "run_success"}), 200)
    assert by_kind == {"data": [], "meta": {"total_count": 0, "has_more": False, "limit": 50, "offset": 0}}


def test_alerts_need_a_read_key_and_well_formed_filters(vault_service_factory):
    service = vault_service_factory(stack="embedded")
    assert service.client(None).request("GET", "/v1/alerts").status_code == 401
    forbidden = service.client("ingester").request("GET", "/v1/alerts")
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"
    assert service.client("admin").request("GET", "/v1/alerts").status_code == 200
    bad = service.client("reader").request("GET", "/v1/alerts", params={"status": "lost"})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"
