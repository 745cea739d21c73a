"""The ``compliance_report`` asset and its schedules: reports generated on a calendar, in Dagster.

A materialization generates one report through ``ReportService`` (the same as ``vault report``
and the API) for a preset period relative to the tick (the last complete day, ISO week or
month) and records its id, version, digest, ledger entry and stored forms as metadata, so
every scheduled report is visible in the Dagster UI next to the runs that fed it. Weekly on
Mondays 00:00 UTC runs by default; daily and monthly exist and are off unless
``reports.schedules`` in vault.yaml turns them on (a start or stop in the UI wins).
"""

# No `from __future__ import annotations`: Dagster reads the config class from the signature.
from datetime import UTC, datetime

import dagster as dg

from vault_pipeline.core.windows import parse_timestamp
from vault_pipeline.defs.resources import VaultResource
from vault_pipeline.defs.schedules import default_status
from vault_pipeline.reports.sections import ReportSourceError
from vault_pipeline.reports.service import PRESETS, ReportRequestError, ReportService

REPORT_JOB = "compliance_reports"  # not the asset's name: a job and an op may not share one
SCHEDULE_PREFIX = "compliance_report"
REPORT_GROUP = "reports"
CRONS = {"daily": "0 0 * * *", "weekly": "0 0 * * 1", "monthly": "0 0 1 * *"}


class ReportRunConfig(dg.Config):
    preset: str = "weekly"  # daily | weekly | monthly
    as_of: str | None = None  # the tick: the period is the last complete one before it (default: now)


@dg.asset(name="compliance_report", group_name=REPORT_GROUP, kinds={"pdf", "html", "csv"},
          description="A compliance report (usage, retention, access logs, lineage, audit trail, data quality, "
                      "integrity) for the last complete day, week or month, stored versioned and signed.")
def compliance_report(context: dg.AssetExecutionContext, config: ReportRunConfig,
                      vault: VaultResource) -> dg.MaterializeResult:
    if config.preset not in PRESETS:
        raise dg.Failure(f"preset {config.preset!r}: use one of {', '.join(PRESETS)}", allow_retries=False)
    moment = parse_timestamp(config.as_of) if config.as_of else datetime.now(UTC)
    if moment is None:
        raise dg.Failure(f"as_of {config.as_of!r} is not an ISO-8601 time with a zone", allow_retries=False)
    service = ReportService(catalog=vault.catalog(), store=vault.object_store(), lake=vault.lake(),
                            signer=vault.ledger_signer(), config=vault.vault_config, clock=lambda: moment)
    try:
        request = service.check(preset=config.preset, requested_by=f"schedule:{SCHEDULE_PREFIX}_{config.preset}")
        stored = service.generate(request, report_id=None)
    except (ReportRequestError, ReportSourceError) as exc:
        raise dg.Failure(f"compliance report not generated, nothing stored: {exc}", allow_retries=False) from None
    finally:
        service.close()
    store = vault.object_store()
    return dg.MaterializeResult(metadata={
        "report_id": stored["report_id"], "version": stored["version"], "digest": stored["digest"],
        "period": f"{stored['period_start']} .. {stored['period_end']}",
        "ledger_entry": f"{stored['ledger']['provider']} #{stored['ledger']['sequence']}",
        **{f"{fmt}": dg.MetadataValue.url(store.uri(form["key"])) for fmt, form in stored["forms"].items()},
    })


def build_report_job():
    return dg.define_asset_job(REPORT_JOB, selection=dg.AssetSelection.assets(compliance_report),
                               description="Generate a compliance report (preset in the run config).")


def build_report_schedules(job, schedules) -> list[dg.ScheduleDefinition]:
    """``compliance_report_daily|weekly|monthly``; ``schedules`` is ``reports.schedules`` of vault.yaml."""
    built = []
    for preset, cron in CRONS.items():
        def evaluate(context: dg.ScheduleEvaluationContext, preset: str = preset) -> dg.RunRequest:
            tick = context.scheduled_execution_time.astimezone(UTC)
            return dg.RunRequest(
                run_key=f"{SCHEDULE_PREFIX}:{preset}:{tick:%Y-%m-%dT%H}",
                run_config={"ops": {"compliance_report": {"config": {"preset": preset,
                                                                     "as_of": tick.strftime("%Y-%m-%dT%H:%M:%SZ")}}}},
                tags={"vault/report_preset": preset})

        built.append(dg.ScheduleDefinition(
            name=f"{SCHEDULE_PREFIX}_{preset}", job=job, cron_schedule=cron, execution_timezone="UTC",
            execution_fn=evaluate, default_status=default_status(getattr(schedules, preset)),
            description=f"A {preset} compliance report of the last complete {preset[:-2] if preset != 'daily' else 'day'} "
                        "(reports.schedules in vault.yaml)."))
    return built
