"""``alert_delivery``: the sensor that retries alerts whose first attempt did not get through.

The sensors that raise alerts try to deliver them at once; whatever a target refused, or
could not be reached for, waits in the outbox with its next attempt due after a backoff. This
sensor gives the outbox a delivery pass every 30 seconds, so a receiver that was down gets its
alerts (each once) soon after it is back, without any run or step waiting on it.
"""

import dagster as dg

from vault_pipeline.alerts.outbox import AlertOutbox
from vault_pipeline.defs.operations.alerting import TICK_DELIVERY_BUDGET_S, always_on_sensor
from vault_pipeline.defs.resources import VaultResource

DELIVERY_SENSOR = "alert_delivery"


def build_delivery_sensor() -> dg.SensorDefinition:
    @always_on_sensor(
        DELIVERY_SENSOR, 30,
        "Delivers due alerts from the outbox (retries with backoff; undeliverable ones stay listed in "
        "`vault alerts` and GET /v1/alerts).",
    )
    def alert_delivery(context: dg.SensorEvaluationContext, vault: VaultResource):
        config = vault.vault_config()
        if not config.notifications:
            return dg.SkipReason("no notifications targets in vault.yaml")
        try:
            report = AlertOutbox(vault.catalog(), config).deliver_due(budget_s=TICK_DELIVERY_BUDGET_S)
        except Exception as exc:  # noqa: BLE001 - the next tick tries again
            return dg.SkipReason(f"alert delivery failed ({type(exc).__name__}); retrying next tick")
        return dg.SkipReason(f"alert delivery: {report.summary()}")

    return alert_delivery
