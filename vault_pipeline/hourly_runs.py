"""Running the hourly graph from the ``vault`` command: ``vault run`` and ``vault demo``.

Both run hour x provider partitions of the hourly job on the Dagster instance the vault's runs
are recorded on (``$VAULT_HOME/dagster`` by default, so ``make ui`` shows them), print each
step as it finishes, and end with a summary that reconciles: records fetched (the hour plus
its lookback) against records new to the vault and records it already held, the ledger
entries each partition wrote (its partition entry and its promotion decision, new or
unchanged), and the checks. ``vault run`` checks the provider, the hour's format and that the
hour has ended before anything starts, so a typo is one line naming what to fix, not a
Dagster traceback.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO


def console_config() -> dict:
    """Dagster's console logger: silent (the command prints progress and failures itself, every
    line is in the UI), everything with VAULT_DEBUG=1 / --debug."""
    debug = os.environ.get("VAULT_DEBUG", "") not in ("", "0", "false")
    return {"loggers": {"console": {"config": {"log_level": "DEBUG" if debug else "CRITICAL"}}}}
MAX_HOURS = 168


class RunRequestError(ValueError):
    """The operator asked for something that cannot run (unknown provider, bad or open hour)."""


@dataclass(slots=True)
class PartitionOutcome:
    partition: str
    run_id: str
    success: bool
    fetched: int = 0  # records in the fetch: the hour, its lookback, repeats
    new: int = 0  # records the vault did not hold before
    held: int = 0  # records of the fetch it already held (lookback, re-run, re-delivery)
    dead_letters: int = 0
    bytes: int = 0
    checks_passed: int = 0
    checks_failed: int = 0
    entries: list[str] = field(default_factory=list)  # "partition #5 new", "promotion #6 unchanged"
    failed_step: str | None = None
    error: str | None = None


def hours_between(first: datetime, last: datetime) -> list[str]:
    """Hour keys from ``first`` to ``last``, both included."""
    if last < first:
        raise RunRequestError(f"--to {last:%Y-%m-%dT%H}Z is before --hour {first:%Y-%m-%dT%H}Z")
    count = int((last - first) / timedelta(hours=1)) + 1
    if count > MAX_HOURS:
        raise RunRequestError(f"{count} hours asked for; run at most {MAX_HOURS} at a time (a week)")
    return [(first + timedelta(hours=n)).strftime("%Y-%m-%d-%H:00") for n in range(count)]


def check_request(providers: Sequence[str], known: Sequence[str], first: datetime, last: datetime,
                  now: datetime | None = None, first_hour: datetime | None = None) -> list[str]:
    """The hour keys to run, or RunRequestError naming what to fix (``first_hour``: partitions.start)."""
    unknown = sorted(set(providers) - set(known))
    if unknown:
        raise RunRequestError(f"unknown provider(s) {', '.join(unknown)}; vault.yaml configures "
                              f"{', '.join(sorted(known)) or 'none'}")
    if first_hour is not None and first < first_hour:
        raise RunRequestError(f"hour {first:%Y-%m-%dT%H}Z is before the vault's first hour {first_hour:%Y-%m-%dT%H}Z "
                              f"(partitions.start in vault.yaml)")
    now = now or datetime.now(UTC)
    if last + timedelta(hours=1) > now:
        raise RunRequestError(f"hour {last:%Y-%m-%dT%H}Z has not ended yet (now {now:%Y-%m-%dT%H:%M}Z): "
                              f"the latest complete hour is {now - timedelta(hours=1):%Y-%m-%dT%H}Z")
    return hours_between(first, last)


def last_complete_hours(count: int, now: datetime | None = None) -> list[str]:
    now = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    return [(now - timedelta(hours=n)).strftime("%Y-%m-%d-%H:00") for n in range(count, 0, -1)]


class HourlyRunner:
    """The hourly job of the vault's definitions, run partition by partition on one instance."""

    def __init__(self, out: TextIO | None = None, show_steps: bool = True) -> None:
        import dagster as dg

        from vault_pipeline.definitions import build_definitions
        from vault_pipeline.defs.schedules import HOURLY_JOB

        self.definitions = build_definitions()
        self.job = self.definitions.resolve_job_def(HOURLY_JOB)
        self.vault = self.definitions.resources["vault"]
        self.instance = dg.DagsterInstance.get()
        self._out, self.show_steps = out, show_steps

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout  # looked up when printing: the caller may redirect it

    def providers(self) -> list[str]:
        return sorted(self.vault.vault_config().providers)

    def run(self, hour: str, provider: str, *, as_job: bool = False) -> PartitionOutcome:
        """``as_job``: tag the run as an API job of its own (``vault/job_id`` = its run id), so
        ``GET /v1/jobs`` and a push's status can follow it like a run the API launched."""
        import dagster as dg

        from vault_pipeline.api.runs import JOB_TAG
        from vault_pipeline.defs.run_results import asset_metadata, check_outcomes

        partition = f"{hour}|{provider}"
        run_id = str(uuid.uuid4())
        self.instance.add_event_listener(run_id, self._progress(partition))
        result = self.job.execute_in_process(
            partition_key=dg.MultiPartitionKey({"hour": hour, "provider": provider}), instance=self.instance,
            raise_on_error=False, run_config=console_config(), run_id=run_id,
            tags={JOB_TAG: run_id} if as_job else None,
        )
        outcome = PartitionOutcome(partition, result.run_id, result.success)
        landing = asset_metadata(result, "raw_landing") or {}
        index = asset_metadata(result, "record_index") or {}
        outcome.fetched, outcome.bytes = landing.get("records", 0), landing.get("bytes", 0)
        outcome.new, outcome.dead_letters = index.get("inserted", 0), index.get("dead_letters", 0)
        outcome.held = outcome.fetched - outcome.new if index else 0
        checks = check_outcomes(result).values()
        outcome.checks_passed, outcome.checks_failed = sum(checks), len(checks) - sum(checks)
        ledger = asset_metadata(result, "ledger_entry")
        if ledger:
            outcome.entries.append(f"partition #{ledger['sequence']} {'new' if ledger['new_entry'] else 'unchanged'}")
        promotion = asset_metadata(result, "golden_promotion")
        if promotion:
            outcome.entries.append(f"promotion #{promotion['ledger_sequence']} "
                                   f"{'new' if promotion['new_decision_entry'] else 'unchanged'}")
        if not result.success:
            failure = next((e for e in result.all_events if e.event_type_value == "STEP_FAILURE"), None)
            if failure is not None:
                outcome.failed_step = failure.step_key
                error = failure.event_specific_data.error
                outcome.error = (error.message if error else "failed").strip().splitlines()[0][:300]
            failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
            if failed_checks:  # a blocking check: say which and why, not Dagster's exception text
                outcome.error = "; ".join(_check_failure(evaluation) for evaluation in failed_checks)
        return outcome

    def succeeded(self, run_ids: list[str]) -> bool:
        """Whether the newest of these runs (on this runner's instance) succeeded: a push landed before."""
        run = self.instance.get_run_by_id(run_ids[-1]) if run_ids else None
        return run is not None and run.status.value == "SUCCESS"

    def _progress(self, partition: str) -> Callable[[Any], None]:
        started: dict[str, float] = {}

        def on_event(entry) -> None:
            event = entry.dagster_event
            if not self.show_steps or event is None:
                return
            if event.event_type_value == "STEP_START":
                started[event.step_key] = entry.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_UP_FOR_RETRY"):
                took = entry.timestamp - started.get(event.step_key, entry.timestamp)
                mark = {"STEP_SUCCESS": "ok", "STEP_FAILURE": "FAILED", "STEP_UP_FOR_RETRY": "retrying"}[
                    event.event_type_value]
                try:
                    print(f"    {partition}  {event.step_key:<44} {mark:<8} {took:6.1f}s", file=self.out, flush=True)
                except (OSError, ValueError):
                    pass  # progress is a courtesy: a closed or broken stdout must not fail the run
        return on_event


_WHY_A_CHECK_FAILED = ("pass_rate", "threshold", "dead_letters", "evaluated", "failing_findings", "finding_counts",
                      "failing_expectations")


def _check_failure(evaluation) -> str:
    shown = []
    for name in _WHY_A_CHECK_FAILED:
        if name in evaluation.metadata:
            value = evaluation.metadata[name].value
            shown.append(f"{name} {value if not isinstance(value, float) else round(value, 4)}")
    return f"check {evaluation.check_name} failed" + (f" ({', '.join(shown)})" if shown else "")


def print_outcome(outcome: PartitionOutcome, out: TextIO) -> None:
    state = "ok" if outcome.success else "FAILED"
    entries = ", ".join(outcome.entries) or "no ledger entry"
    print(f"  {outcome.partition:<34} {state:<6} fetched {outcome.fetched:>7}, new {outcome.new:>7}, "
          f"already held {outcome.held:>7}; checks {outcome.checks_passed} passed, {outcome.checks_failed} failed; "
          f"ledger: {entries}  (run {outcome.run_id[:8]})", file=out)
    if not outcome.success:
        print(f"    failed at {outcome.failed_step or '?'}: {outcome.error or 'see the run in the Dagster UI'}", file=out)


def print_summary(outcomes: Sequence[PartitionOutcome], out: TextIO) -> None:
    runs, failed = len(outcomes), sum(not o.success for o in outcomes)
    fetched, new, held = (sum(getattr(o, name) for o in outcomes) for name in ("fetched", "new", "held"))
    entries = [entry for o in outcomes for entry in o.entries]
    written = sum(entry.endswith(" new") for entry in entries)
    passed, failed_checks = sum(o.checks_passed for o in outcomes), sum(o.checks_failed for o in outcomes)
    print(f"\n{runs} partitions run ({failed} failed): {fetched} records fetched "
          f"({sum(o.bytes for o in outcomes) / 1e6:.2f} MB), of which {new} new to the vault and {held} already held "
          "(the lookback hour, a re-run or a re-delivery); "
          f"{sum(o.dead_letters for o in outcomes)} dead-lettered records among the fetches.", file=out)
    print(f"Ledger: {written} new entries, {len(entries) - written} unchanged "
          "(one partition entry and one promotion decision per partition); "
          f"checks {passed} passed, {failed_checks} failed.", file=out)
