"""Run notifications: a message for every run of the vault that fails, and for every one that succeeds.

Dagster's run status sensors keep their own cursor over the instance's run events, so each
outcome is seen once (also one whose handling raised: Dagster records the error on the run
and moves on); the alert's dedup key is the run id besides, so even a tick evaluated twice
notifies once. A failure names the job, the partition (``hour|provider``, from the
run's tags), the provider, every failed step with the first line of its error, and links to
the run in the Dagster UI. ``monitor_all_code_locations``: runs executed in-process by
``vault run``, ``vault demo`` and the API's embedded runner carry no code-location origin,
and a sensor watching only its own location would never see them. On by default
(``DefaultSensorStatus.RUNNING``): a running dagster-daemon is all it takes.
``alerts.runs.on_failure`` / ``on_success`` in vault.yaml switch either kind off.
"""

import re

import dagster as dg

from vault_pipeline.core.alerts import RUN_FAILURE, RUN_SUCCESS, AlertEvent, first_line
from vault_pipeline.defs.operations.alerting import now_utc, raise_and_deliver, run_link, stamp
from vault_pipeline.defs.resources import VaultResource

RUN_FAILURE_SENSOR = "run_failure_alerts"
RUN_SUCCESS_SENSOR = "run_success_alerts"
MAX_STEPS_LISTED = 5


def run_fields(run: dg.DagsterRun) -> dict[str, str | None]:
    """Job, partition and provider of a run, from its tags."""
    tags = run.tags
    partition = tags.get("dagster/partition")
    provider = tags.get("dagster/partition/provider") or tags.get("vault/provider")
    if provider is None and partition and "|" in partition:
        provider = partition.rpartition("|")[2]
    return {"job": run.job_name, "run_id": run.run_id, "partition": partition, "provider": provider}


def _where(fields: dict[str, str | None]) -> str:
    return f" for {fields['partition']}" if fields.get("partition") else ""


_EXCEPTION_PREFIX = re.compile(r"^(?:[A-Za-z_][\w]*\.)+[A-Za-z_]\w*: ")


def error_summary(message: str | None) -> str:
    """The first line of an error, without Dagster's ``module.Class: `` prefix; a line that ends
    in a colon takes the next one along (``1 blocking asset check failed ...: raw_landing: input_validation``)."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    if not lines:
        return ""
    head = _EXCEPTION_PREFIX.sub("", lines[0])
    if head.endswith(":") and len(lines) > 1 and not lines[1].startswith(("Stack Trace", "Traceback", "File ")):
        head = f"{head} {lines[1]}"
    return first_line(head)


def failure_event(context: dg.RunFailureSensorContext) -> AlertEvent:
    run = context.dagster_run
    fields = run_fields(run)
    failures = []
    for event in context.get_step_failure_events():
        data = event.event_specific_data
        described = getattr(getattr(data, "user_failure_data", None), "description", None)
        error = getattr(data, "error", None)
        failures.append((event.step_key or "?", error_summary(described or (error.message if error else ""))))
    steps = list(dict.fromkeys(step for step, _ in failures))
    if failures:
        step, reason = failures[0]
        lines = [f"{step}: {reason}" for step, reason in failures[:MAX_STEPS_LISTED]]
        if len(failures) > MAX_STEPS_LISTED:
            lines.append(f"... and {len(failures) - MAX_STEPS_LISTED} more failed steps")
    else:  # the run failed outside any step (its process was killed, it could not start)
        step, reason = None, error_summary(context.failure_event.message) or "the run failed"
        lines = [reason]
    return AlertEvent(
        kind=RUN_FAILURE, severity="error",
        title=f"vault run failed: {run.job_name}{_where(fields)}" + (f" at {step}" if step else ""),
        text="\n".join(lines), dedup_key=f"{RUN_FAILURE}:{run.run_id}", created_at=stamp(now_utc()),
        fields={**fields, "failed_step": step, "failed_steps": ", ".join(steps) or None, "error": reason},
        link=run_link(run.run_id),
    )


def success_event(context: dg.RunStatusSensorContext) -> AlertEvent:
    run = context.dagster_run
    fields = run_fields(run)
    record = context.instance.get_run_record_by_id(run.run_id)
    seconds = None
    if record is not None and record.start_time and record.end_time:
        seconds = round(record.end_time - record.start_time, 1)
    return AlertEvent(
        kind=RUN_SUCCESS, severity="info", title=f"vault run succeeded: {run.job_name}{_where(fields)}",
        text=f"{run.job_name}{_where(fields)} finished" + (f" in {seconds} s" if seconds is not None else ""),
        dedup_key=f"{RUN_SUCCESS}:{run.run_id}", created_at=stamp(now_utc()),
        fields={**fields, "duration_s": seconds}, link=run_link(run.run_id),
    )


def build_run_alert_sensors() -> list[dg.SensorDefinition]:
    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR, default_status=dg.DefaultSensorStatus.RUNNING, monitor_all_code_locations=True,
        minimum_interval_seconds=30,
        description="Tells the vault.yaml notifications targets about every failed run: job, partition, provider, "
                    "failed step, the error's first line and a link to the run (alerts.runs.on_failure).",
    )
    def run_failure_alerts(context: dg.RunFailureSensorContext, vault: VaultResource) -> None:
        # Returning nothing lets one tick handle every run that ended since the last (a value
        # would stop the tick after the first run).
        if vault.vault_config().alerts.runs.on_failure:
            added = raise_and_deliver(context, vault, [failure_event(context)])
            context.log.info(f"run {context.dagster_run.run_id} failed: {added} alert deliveries queued")

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS, name=RUN_SUCCESS_SENSOR, default_status=dg.DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=True, minimum_interval_seconds=30,
        description="Tells the vault.yaml notifications targets about every successful run (alerts.runs.on_success).",
    )
    def run_success_alerts(context: dg.RunStatusSensorContext, vault: VaultResource) -> None:
        if vault.vault_config().alerts.runs.on_success:
            added = raise_and_deliver(context, vault, [success_event(context)])
            context.log.info(f"run {context.dagster_run.run_id} succeeded: {added} alert deliveries queued")

    return [run_failure_alerts, run_success_alerts]
