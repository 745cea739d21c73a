"""Input validation: the kind's GX input suite over every landed record, and the dead letters.

Records that fail go to the dead-letter queue (catalog ``dead_letters`` plus a report under
``dlq/``) with the expectations they failed; they stay byte-exact in ``raw/`` and are indexed
as dead letters, never silently dropped. The suite runs chunk by chunk so an hour of any size
validates in bounded memory.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from vault_pipeline.allocators import returns_freed_memory
from vault_pipeline.core.layout import dlq_report_key, report_key
from vault_pipeline.core.windows import HourWindow
from vault_pipeline.defs.collector import cyclic_gc_paused
from vault_pipeline.defs.ingestion.landed import LandedPartition
from vault_pipeline.quality.frames import input_frame
from vault_pipeline.quality.gx_runner import SuiteOutcome, SuiteRunner
from vault_pipeline.storage.catalog import Catalog, DeadLetter, fixed_width_timestamp
from vault_pipeline.storage.object_store import ObjectStore

CHUNK = 100_000
_SPAN_COLUMNS = ["log_id", "object_key", "offset", "length", "timestamp"]


def dead_letter_id(stage: str, log_id: str) -> str:
    return "dl_" + hashlib.sha256(f"{stage}|{log_id}".encode()).hexdigest()[:32]


@returns_freed_memory
def validate_input(
    *,
    runner: SuiteRunner,
    store: ObjectStore,
    catalog: Catalog,
    kind: str,
    provider: str,
    window: HourWindow,
    fetch_window: HourWindow,
    partition: str,
    run_id: str,
    fields: dict[str, str] | None = None,
) -> SuiteOutcome:
    landed = LandedPartition(store, provider, window)
    suite = f"{kind}.input"
    total: SuiteOutcome | None = None
    now = fixed_width_timestamp(datetime.now(UTC))
    for batch in landed.record_batches(CHUNK, columns=_SPAN_COLUMNS):
        log_ids = batch.column("log_id").to_pylist()
        rows = zip(log_ids, batch.column("timestamp").to_pylist(), landed.records_of(batch), strict=True)
        with cyclic_gc_paused():
            frame = input_frame(kind, fetch_window, rows, fields)
        outcome = runner.run(suite, frame)
        # Spans are looked up for the failing records only (usually a handful per chunk).
        failing = {log_id: i for i, log_id in enumerate(log_ids) if log_id in outcome.failing}
        keys, offsets, lengths = (batch.column(name) for name in ("object_key", "offset", "length"))
        letters = [
            DeadLetter(
                dead_letter_id=dead_letter_id("input_validation", log_id),
                provider=provider,
                partition=partition,
                stage="input_validation",
                reason="failed " + "; ".join(sorted(set(reasons))),
                object_key=keys[failing[log_id]].as_py(),
                log_id=log_id,
                offset=offsets[failing[log_id]].as_py(),
                length=lengths[failing[log_id]].as_py(),
                created_at=now,
                detail={"suite": suite, "run_id": run_id, "failed": sorted(set(reasons))},
            )
            for log_id, reasons in outcome.failing.items()
            if log_id in failing
        ]
        catalog.add_dead_letters(letters)
        if total is None:
            total = outcome
        else:
            total.merge(outcome)
    if total is None:  # an empty hour: nothing to validate, nothing failed
        total = SuiteOutcome(suite=suite, evaluated=0, expectations=[])
    report = outcome_report(total, run_id)
    store.put(report_key(provider, window, "input-validation"), report, overwrite=True)
    store.put(dlq_report_key(provider, window), json.dumps(
        {"suite": suite, "run_id": run_id, "dead_letters": {k: sorted(set(v)) for k, v in sorted(total.failing.items())}},
        indent=1, ensure_ascii=False).encode(), overwrite=True)
    return total


def outcome_report(outcome: SuiteOutcome, run_id: str) -> bytes:
    return json.dumps(
        {
            "suite": outcome.suite,
            "run_id": run_id,
            "evaluated": outcome.evaluated,
            "passed": outcome.passed_records,
            "pass_rate": outcome.pass_rate,
            "expectations": [
                {"type": e.type, "column": e.column, "success": e.success, "unexpected_count": e.unexpected_count, "error": e.error}
                for e in outcome.expectations
            ],
            "failing_log_ids": sorted(outcome.failing)[:10_000],
        },
        indent=1,
    ).encode()


def failure_markdown(outcome: SuiteOutcome, limit: int = 10) -> str:
    """A short markdown table of failing records for the Dagster UI."""
    if not outcome.failing and not outcome.errors:
        return "All records passed."
    lines = ["| log_id | failed expectations |", "|---|---|"]
    for log_id, reasons in sorted(outcome.failing.items())[:limit]:
        lines.append(f"| `{log_id}` | {'; '.join(sorted(set(reasons)))} |")
    if len(outcome.failing) > limit:
        lines.append(f"| ... | {len(outcome.failing) - limit} more |")
    for error in outcome.errors:
        lines.append(f"| (suite error) | {error} |")
    return "\n".join(lines)
