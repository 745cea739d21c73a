"""``vault_config_audit``: records a change of ``vault.yaml`` in the ledger even when nothing runs.

`vault run`, `vault demo` and `vault serve` record the configuration when they start; between
them an edit of the file would otherwise only show at the next run. This sensor (running by
default wherever a dagster-daemon runs) re-reads the file about every minute and appends a
signed ``config_snapshot`` entry to the vault chain when its redacted fingerprint differs from
the newest one; an unchanged file appends nothing. It launches no runs.
"""

from __future__ import annotations

import dagster as dg

from vault_pipeline.defs.resources import VaultResource
from vault_pipeline.providers.config import ConfigError, load_config
from vault_pipeline.reports.audit_trail import record_config

CONFIG_AUDIT_SENSOR = "vault_config_audit"
INTERVAL_S = 60


def build_config_audit_sensor() -> dg.SensorDefinition:
    @dg.sensor(
        name=CONFIG_AUDIT_SENSOR,
        minimum_interval_seconds=INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Appends a signed, redacted snapshot of vault.yaml to the ledger's vault chain whenever "
                    "the file changes (checked every minute); launches no runs.",
    )
    def vault_config_audit(context: dg.SensorEvaluationContext, vault: VaultResource):
        try:
            # Read afresh, not the resource's cached copy: the point is to see the file as it is now.
            config = load_config(vault.config_path)
        except ConfigError as exc:
            # The message names the file and the field, never a value.
            return dg.SkipReason(f"vault.yaml cannot be read, nothing recorded: {exc}")
        entry = record_config(store=vault.object_store(), catalog=vault.catalog(), signer=vault.ledger_signer(),
                              config=config, run_id=f"sensor:{CONFIG_AUDIT_SENSOR}")
        if entry is None:
            return dg.SkipReason("configuration unchanged since it was last recorded")
        context.log.info(f"configuration change recorded: ledger {entry.provider} #{entry.sequence} "
                         f"({entry.body['fingerprint']})")
        return dg.SkipReason(f"configuration change recorded as ledger {entry.provider} #{entry.sequence}")

    return vault_config_audit
