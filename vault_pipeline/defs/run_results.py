"""Reading what a finished run of the hourly job materialized, for the CLI, benchmarks and tests.

One place that knows how Dagster's in-process results expose asset metadata and check
outcomes, so ``vault demo``, the ingest benchmark and the test harness report the same figures.
"""

from typing import Any

import dagster as dg


def asset_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any] | None:
    """The metadata values the run recorded for ``asset``, or None if it did not materialize."""
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.path[-1] == asset:
            return {name: value.value for name, value in materialization.metadata.items()}
    return None


def check_outcomes(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """check name -> passed, for every asset check the run evaluated."""
    return {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}
