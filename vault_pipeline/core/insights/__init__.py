"""Test-results intelligence: what a history of pushed test runs says beyond pass and fail.

Three pure detectors over an Arrow table of test-result rows (``suite``, ``test``, ``status``,
``duration_ms``, ``commit``, ``branch``, ``build``, ``timestamp``, ``error_type``,
``error_message``, ``error_text``, ``log_id``): *flaky tests* (passed and failed on one commit,
ranked by flip rate), *failure clusters* (failure messages grouped into templates with their
variable parts masked, each occurrence as ``{test, build}``) and *duration regressions* (the
build where a test's or a suite's duration shifted, confirmed by a Mann-Whitney U test with a
false-discovery-rate control across tests). No Dagster, no I/O: Arrow in, Arrow out, the same
code in the ``insights`` assets, the API and ``benchmarks/insights.py``.
"""

from .clusters import (
    CLUSTER_SCHEMA,
    failure_clusters,
    failure_messages,
    group_messages,
    grouping_accuracy,
    mask,
)
from .flaky import FLAKY_SCHEMA, flaky_tests
from .regressions import (
    REGRESSION_SCHEMA,
    SUITE_TREND_SCHEMA,
    duration_regressions,
    suite_trends,
)

__all__ = [
    "CLUSTER_SCHEMA", "FLAKY_SCHEMA", "REGRESSION_SCHEMA", "SUITE_TREND_SCHEMA",
    "duration_regressions", "failure_clusters", "failure_messages", "flaky_tests",
    "group_messages", "grouping_accuracy", "mask", "suite_trends",
]
