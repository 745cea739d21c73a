"""Data-quality alerts: a validation suite's pass rate fell under its threshold for a partition.

The input check (``input_validation``, GX ``<kind>.input`` on the landed records) and the
output check (``output_validation``, ``<kind>.output`` on the rows read back from Delta)
record ``suite``, ``pass_rate`` and, for input, ``threshold`` in their evaluation metadata
(defs/ingestion/assets.py, defs/analytics/assets.py). This sensor reads every new execution
of the two checks (Dagster's check-execution history, which every event log storage indexes,
also the local run-sharded SQLite one), each once, through a cursor of execution ids (the
first tick starts at the newest one, so history raises nothing), and
raises a ``quality`` alert when the check failed (its pass rate is under the check's own
threshold, or the suite errored) or, for a suite named in ``alerts.quality.min_pass_rate``,
when the pass rate is under that (an earlier warning than the blocking threshold).
"""

import json
from typing import Any

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from vault_pipeline.core.alerts import QUALITY, AlertEvent
from vault_pipeline.defs.operations.alerting import always_on_sensor, now_utc, raise_and_deliver, run_link, stamp
from vault_pipeline.defs.resources import VaultResource

QUALITY_SENSOR = "quality_alerts"
QUALITY_CHECK_KEYS = (dg.AssetCheckKey(dg.AssetKey("raw_landing"), "input_validation"),
                      dg.AssetCheckKey(dg.AssetKey("normalised_records"), "output_validation"))
BATCH = 200
MAX_PAGES = 10
MAX_SEEN = 2000


def _value(metadata: dict[str, Any], name: str) -> Any:
    value = metadata.get(name)
    return getattr(value, "value", value)


def quality_event(evaluation: dg.AssetCheckEvaluation, run_id: str, partition: str | None, threshold: float | None,
                  *, failed_check: bool) -> AlertEvent:
    metadata = dict(evaluation.metadata)
    suite = _value(metadata, "suite") or evaluation.check_name
    rate, evaluated = _value(metadata, "pass_rate"), _value(metadata, "evaluated")
    provider = partition.rpartition("|")[2] if partition and "|" in partition else None
    where = f" for {partition}" if partition else ""
    shown_rate = f"{rate:.2%}" if isinstance(rate, (int, float)) else "unknown"
    parts = [f"Suite {suite} passed {shown_rate} of {evaluated if evaluated is not None else '?'} records{where}"]
    if threshold is not None:
        parts.append(f"(threshold {threshold:.2%})")
    dead = _value(metadata, "dead_letters")
    text = " ".join(parts) + "." + (f" {dead} records went to the dead-letter queue." if dead else "")
    if failed_check:
        text += f" The {evaluation.check_name} check failed" + (
            "; downstream stages of the partition did not run." if evaluation.blocking else ".")
    return AlertEvent(
        kind=QUALITY, severity="error" if failed_check else "warning",
        title=f"data quality: {suite} at {shown_rate}{where}",
        text=text, dedup_key=f"{QUALITY}:{evaluation.check_name}:{run_id}:{partition or '-'}", created_at=stamp(now_utc()),
        fields={"suite": suite, "check": evaluation.check_name, "provider": provider, "partition": partition,
                "pass_rate": rate, "threshold": threshold, "evaluated": evaluated, "run_id": run_id},
        link=run_link(run_id) if run_id else None,
    )


def _new_executions(instance: dg.DagsterInstance, key: dg.AssetCheckKey, after: int) -> list:
    """The key's executions with an id above ``after``, oldest first (a few pages at most)."""
    found, cursor = [], None
    for _ in range(MAX_PAGES):
        page = instance.event_log_storage.get_asset_check_execution_history(key, limit=BATCH, cursor=cursor)
        found += [record for record in page if record.id > after]
        if len(page) < BATCH or page[-1].id <= after:
            break
        cursor = page[-1].id
    return sorted(found, key=lambda record: record.id)


def _finished(instance: dg.DagsterInstance, record) -> bool:
    """An execution that has its evaluation, or never will (its run ended without one)."""
    if record.status in (AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED):
        return True
    run = instance.get_run_by_id(record.run_id) if record.run_id else None
    return run is None or run.is_finished


def build_quality_sensor() -> dg.SensorDefinition:
    @always_on_sensor(
        QUALITY_SENSOR, 30,
        "Raises a quality alert when an input or output validation suite's pass rate falls under its "
        "threshold (the check's own, or alerts.quality.min_pass_rate).",
    )
    def quality_alerts(context: dg.SensorEvaluationContext, vault: VaultResource):
        # The cursor, per check: every execution up to "after" was looked at, and so were the
        # "seen" ones above it (an execution still under way holds "after" back until it ends).
        instance = context.instance
        state = _cursor_state(context.cursor)
        config = vault.vault_config()
        rules = config.alerts.quality
        events, read = [], 0
        for key in QUALITY_CHECK_KEYS:
            name = key.to_user_string()
            if name not in state:  # first tick: watch from the newest execution on
                newest = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
                state[name] = {"after": newest[0].id if newest else 0, "seen": []}
                continue
            after, seen = state[name]["after"], set(state[name]["seen"])
            executions = _new_executions(instance, key, after)
            pending = []
            for record in executions:
                if record.id in seen:
                    continue
                if not _finished(instance, record):
                    pending.append(record.id)
                    continue
                seen.add(record.id)
                read += 1
                evaluation = record.event.dagster_event.event_specific_data if record.event is not None else None
                if rules.enabled and isinstance(evaluation, dg.AssetCheckEvaluation):
                    event = _judge(instance, config, evaluation, record.run_id, record.partition)
                    if event is not None:
                        events.append(event)
            after = min(pending) - 1 if pending else max([r.id for r in executions], default=after)
            state[name] = {"after": after, "seen": sorted(i for i in seen if i > after)[-MAX_SEEN:]}
        added = raise_and_deliver(context, vault, events) if events else 0
        context.update_cursor(json.dumps(state, sort_keys=True))
        return dg.SkipReason(f"{read} check evaluations read, {len(events)} quality alerts ({added} new deliveries)")

    return quality_alerts


def _judge(instance: dg.DagsterInstance, config, evaluation: dg.AssetCheckEvaluation, run_id: str,
           partition: str | None) -> AlertEvent | None:
    """The alert an evaluation calls for, if any."""
    partition = partition or evaluation.partition or _partition_of(instance, run_id)
    metadata = dict(evaluation.metadata)
    suite, rate, own = _value(metadata, "suite"), _value(metadata, "pass_rate"), _value(metadata, "threshold")
    if own is None and evaluation.check_name == "output_validation":
        own = config.policies.output_pass_rate
    alert_at = config.alerts.quality.min_pass_rate.get(suite) if suite else None
    if not evaluation.passed:
        return quality_event(evaluation, run_id, partition, own, failed_check=True)
    if alert_at is not None and isinstance(rate, (int, float)) and rate < alert_at:
        return quality_event(evaluation, run_id, partition, alert_at, failed_check=False)
    return None


def _cursor_state(cursor: str | None) -> dict[str, Any]:
    """The cursor's state; one in another shape (another version wrote it) starts afresh."""
    try:
        state = json.loads(cursor) if cursor else {}
    except ValueError:
        return {}
    return state if isinstance(state, dict) and all(isinstance(v, dict) for v in state.values()) else {}


def _partition_of(instance: dg.DagsterInstance, run_id: str) -> str | None:
    run = instance.get_run_by_id(run_id) if run_id else None
    return run.tags.get("dagster/partition") if run is not None else None
