"""What every alert sensor shares: raising into the outbox, delivering, linking to the UI.

A sensor raises its events into the outbox first (if the catalog cannot take them, the tick
fails and its cursor stays, so the next tick raises them again, and the outbox keeps them
from being sent twice), then gives the outbox a short delivery pass. Delivery never fails the
tick: what a target does is recorded in the outbox, and ``alert_delivery`` retries it.
Links point at the Dagster UI at ``VAULT_DAGSTER_URL`` (default ``http://127.0.0.1:3000``,
what ``make ui`` serves), read when the alert is raised.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import quote

import dagster as dg

from vault_pipeline.alerts.outbox import AlertOutbox
from vault_pipeline.core.alerts import AlertEvent
from vault_pipeline.defs.resources import VaultResource
from vault_pipeline.storage.catalog import fixed_width_timestamp

DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
# Delivery inside a tick stays well under the daemon's 60 s sensor timeout.
TICK_DELIVERY_BUDGET_S = 20.0


def always_on_sensor(name: str, every_s: int, description: str):
    """``dg.sensor`` for operations' polling sensors: running by default (the issue's promise: a
    running dagster-daemon is all alerts take, no toggle in the UI), ticking every ``every_s``."""
    return dg.sensor(name=name, minimum_interval_seconds=every_s, default_status=dg.DefaultSensorStatus.RUNNING,
                     description=description)


def dagster_url() -> str:
    return (os.environ.get("VAULT_DAGSTER_URL") or DEFAULT_DAGSTER_URL).rstrip("/")


def run_link(run_id: str) -> str:
    return f"{dagster_url()}/runs/{run_id}"


def asset_link(asset: str, partition: str | None = None, view: str | None = None) -> str:
    query = [f"view={view}"] if view else []
    if partition:
        query.append(f"partition={quote(partition, safe='')}")
    return f"{dagster_url()}/assets/{asset}" + (f"?{'&'.join(query)}" if query else "")


def now_utc() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime | float) -> str:
    if isinstance(moment, (int, float)):
        moment = datetime.fromtimestamp(moment, UTC)
    return fixed_width_timestamp(moment.astimezone(UTC))


def raise_and_deliver(context: dg.SensorEvaluationContext | dg.RunStatusSensorContext, vault: VaultResource,
                      events: Iterable[AlertEvent]) -> int:
    """Queue ``events`` (errors propagate: the tick is retried), then deliver what is due (never
    raises). Returns how many deliveries were new."""
    outbox = AlertOutbox(vault.catalog(), vault.vault_config())
    added = sum(outbox.raise_event(event) for event in events)
    deliver(context, outbox)
    return added


def deliver(context, outbox: AlertOutbox) -> None:
    try:
        report = outbox.deliver_due(budget_s=TICK_DELIVERY_BUDGET_S)
    except Exception as exc:  # noqa: BLE001 - delivery must never fail the tick
        context.log.warning(f"alert delivery failed ({type(exc).__name__}); alert_delivery retries it")
        return
    if report.delivered or report.retrying or report.failed:
        context.log.info(f"alert delivery: {report.summary()}")
