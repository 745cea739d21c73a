"""Scheduled compliance reports: the weekly schedule runs by default, daily and monthly follow
reports.schedules, and a tick materializes compliance_report for the last complete week."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from vault_pipeline.core.ledger import KIND_COMPLIANCE_REPORT, VAULT_CHAIN, LedgerEntry
from vault_pipeline.defs.reports.schedules import REPORT_JOB, SCHEDULE_PREFIX

LLM = {"type": "simulator", "kind": "generation_event", "records_per_hour": 20, "seed": 4, "lookback_hours": 0,
       "invalid_fraction": 0.0}


def test_weekly_is_on_by_default_and_the_others_follow_the_configuration(vault):
    vault.write_providers({"llm": LLM})
    statuses = {s.name: s.default_status for s in vault.definitions().schedules}
    assert statuses[f"{SCHEDULE_PREFIX}_weekly"] == dg.DefaultScheduleStatus.RUNNING
    assert statuses[f"{SCHEDULE_PREFIX}_daily"] == statuses[f"{SCHEDULE_PREFIX}_monthly"] == dg.DefaultScheduleStatus.STOPPED
    vault.config_path.write_text(vault.config_path.read_text() + "reports:\n  schedules: {daily: true, weekly: false}\n")
    statuses = {s.name: s.default_status for s in vault.definitions().schedules}
    assert statuses[f"{SCHEDULE_PREFIX}_daily"] == dg.DefaultScheduleStatus.RUNNING
    assert statuses[f"{SCHEDULE_PREFIX}_weekly"] == dg.DefaultScheduleStatus.STOPPED


def test_a_monday_tick_reports_the_week_before(vault):
    vault.write_providers({"llm": LLM})
    assert vault.run("2026-11-25-10:00", "llm").success  # a Wednesday of the week 2026-11-23 .. 30
    definitions = vault.definitions()
    schedule = definitions.get_schedule_def(f"{SCHEDULE_PREFIX}_weekly")
    tick = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # Monday 00:00 UTC
    with dg.build_schedule_context(instance=vault.instance, scheduled_execution_time=tick) as context:
        request = schedule.evaluate_tick(context).run_requests[0]
    assert request.run_key == f"{SCHEDULE_PREFIX}:weekly:2026-11-30T00"
    result = definitions.resolve_job_def(REPORT_JOB).execute_in_process(run_config=request.run_config,
                                                                        instance=vault.instance)
    assert result.success
    metadata = result.asset_materializations_for_node("compliance_report")[0].metadata
    assert metadata["period"].value == "2026-11-23T00:00:00Z .. 2026-11-30T00:00:00Z"
    assert metadata["version"].value == 1
    signed = [LedgerEntry.from_json(t) for _, t in vault.catalog.ledger_entries(VAULT_CHAIN)]
    report_entries = [e for e in signed if e.kind == KIND_COMPLIANCE_REPORT]
    assert [e.body["digest"] for e in report_entries] == [metadata["digest"].value]
    assert report_entries[0].body["requested_by"] == f"schedule:{SCHEDULE_PREFIX}_weekly"
