"""Operations: the vault telling people when something goes wrong (alerts, SLAs).

Sensors, all on by default so that a running dagster-daemon is all it takes:
``run_failure_alerts`` / ``run_success_alerts`` (run outcomes), ``hourly_sla_sensor`` (each
partition at its SLA deadline, reported as the ``hourly_sla`` check of ``hourly_completion``),
``quality_alerts`` (validation pass rates), ``promotion_alerts`` (quarantine and digest
mismatch spikes) and ``alert_delivery`` (retries). They raise into the catalog's outbox and
deliver to the ``notifications:`` targets of vault.yaml (alerts/).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from vault_pipeline.defs.operations.delivery import build_delivery_sensor
from vault_pipeline.defs.operations.promotion_alerts import build_promotion_sensor
from vault_pipeline.defs.operations.quality_alerts import build_quality_sensor
from vault_pipeline.defs.operations.run_alerts import build_run_alert_sensors
from vault_pipeline.defs.operations.sla import build_sla_checks, build_sla_sensor, hourly_completion


@dataclass(frozen=True)
class Operations:
    assets: list[dg.AssetSpec]
    asset_checks: list[dg.AssetChecksDefinition]
    sensors: list[dg.SensorDefinition]


def build_operations() -> Operations:
    return Operations(
        assets=[hourly_completion],
        asset_checks=build_sla_checks(),
        sensors=[*build_run_alert_sensors(), build_sla_sensor(), build_quality_sensor(), build_promotion_sensor(),
                 build_delivery_sensor()],
    )
