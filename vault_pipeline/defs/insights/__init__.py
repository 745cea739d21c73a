"""Test-results intelligence in Dagster: the ``insights`` asset group over the ``test_results`` fact table.

One multi-asset reads a window of the lake's test results (30 days by default) once and writes
what the pure detectors of ``core.insights`` find as Delta tables (flaky tests, failure clusters,
duration regressions, suite trends), each with a JSON summary in the object store and an entry
in the artifact index; asset checks warn when flaky tests or failure clusters appear that the
previous refresh did not have. The ``insights`` job runs daily (``insights_daily``) and on
demand from ``vault insights refresh`` and ``POST /v1/insights/refresh``.
"""
