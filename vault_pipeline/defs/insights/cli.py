"""``vault insights refresh [--suite S]``: the insights job now, in this process, on the vault's instance.

Like ``vault run``, the run is recorded on the Dagster instance the vault's runs go to
(``$VAULT_HOME/dagster`` by default, so ``make ui`` shows it), with the deployment's storage
(``VAULT_ENV``). It prints per insight the count, what is new since the previous refresh and
the summary's artifact; exit 0 when the run succeeded (new flaky tests or clusters are a
warning, not a failure), 1 when it failed. ``refresh_insights`` is also what
``POST /v1/insights/refresh`` runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class RefreshOutcome:
    run_id: str
    success: bool
    suite: str | None
    counts: dict[str, int] = field(default_factory=dict)
    new: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None


def refresh_insights(*, suite: str | None = None, window_days: int | None = None, as_of: str | None = None,
                     run_id: str | None = None, definitions=None, instance=None) -> RefreshOutcome:
    """Execute the ``insights`` job in process (defaults: the deployment's definitions and the
    vault's Dagster instance)."""
    import dagster as dg

    from vault_pipeline.defs.insights.assets import INSIGHTS_JOB, NEW_CHECKS, run_config
    from vault_pipeline.defs.insights.tables import INSIGHTS
    from vault_pipeline.defs.run_results import asset_metadata
    from vault_pipeline.hourly_runs import console_config

    if definitions is None:
        from vault_pipeline.definitions import build_definitions

        definitions = build_definitions()
    if instance is None:
        from vault_pipeline.cli import prepare_local_instance

        prepare_local_instance()
        instance = dg.DagsterInstance.get()
    job = definitions.resolve_job_def(INSIGHTS_JOB)
    result = job.execute_in_process(
        run_config={**run_config(suite=suite, window_days=window_days, as_of=as_of), **console_config()},
        instance=instance, raise_on_error=False, run_id=run_id or str(uuid.uuid4()),
        tags={"vault/insights_suite": suite or "(all)"})
    outcome = RefreshOutcome(result.run_id, result.success, suite)
    for name in INSIGHTS:
        metadata = asset_metadata(result, name)
        if metadata:
            outcome.metadata[name] = metadata
            outcome.counts[name] = int(metadata.get("count", 0))
    for asset in NEW_CHECKS:
        if asset in outcome.metadata:
            outcome.new[asset] = int(outcome.metadata[asset].get("new", 0))
    if not result.success:
        failure = next((e for e in result.all_events if e.event_type_value == "STEP_FAILURE"), None)
        error = failure.event_specific_data.error if failure is not None else None
        outcome.error = (error.message if error else "failed").strip().splitlines()[0][:300]
    return outcome


def add_insights_parser(commands) -> None:
    insights = commands.add_parser("insights", help="test-results insights: flaky tests, failure clusters, regressions")
    sub = insights.add_subparsers(dest="insights_command", required=True)
    refresh = sub.add_parser(
        "refresh", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="refresh the insights now (the insights job, in this process)",
        description="Mine the test_results of the window for flaky tests, failure clusters and duration "
                    "regressions, and replace the insights tables (only the suite's rows with --suite).")
    refresh.add_argument("--suite", help="only this suite (default: every suite)")
    refresh.add_argument("--window-days", type=int, default=30, help="days of test results before --as-of")
    refresh.add_argument("--as-of", help="the window's end, ISO-8601 with a zone (default: now)")
    refresh.add_argument("--run-id", help=argparse.SUPPRESS)  # the API names the run it answered with
    refresh.add_argument("--json", action="store_true", help="print the outcome as one JSON object")


def run_insights(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if args.window_days < 1:
        print("vault: error: --window-days must be at least 1", file=sys.stderr)
        return 2
    if args.as_of is not None:
        from vault_pipeline.core.windows import parse_timestamp

        if parse_timestamp(args.as_of) is None:
            print(f"vault: error: --as-of {args.as_of!r} is not an ISO-8601 time with a zone, "
                  "e.g. 2026-11-01T00:00:00Z", file=sys.stderr)
            return 2
    outcome = refresh_insights(suite=args.suite, window_days=args.window_days, as_of=args.as_of, run_id=args.run_id)
    if args.json:
        print(json.dumps({"run_id": outcome.run_id, "success": outcome.success, "suite": outcome.suite,
                          "counts": outcome.counts, "new": outcome.new, "error": outcome.error}), file=out)
        return 0 if outcome.success else 1
    scope = f"suite {args.suite}" if args.suite else "every suite"
    if not outcome.success:
        print(f"vault: insights refresh failed (run {outcome.run_id}): {outcome.error}", file=sys.stderr)
        return 1
    first = next(iter(outcome.metadata.values()), {})
    print(f"insights refreshed for {scope}, window {first.get('window_start')} .. {first.get('window_end')}, "
          f"{first.get('results_analysed', 0)} test results (run {outcome.run_id})", file=out)
    for name, metadata in outcome.metadata.items():
        new = f", {outcome.new[name]} new" if outcome.new.get(name) else ""
        print(f"  {name:<22} {metadata.get('count', 0):>6}{new}  {metadata.get('summary', '')}", file=out)
    return 0
