"""Catalog contract for ``summarise_access``: the access log of a period, counted by the catalog.

Runs on every backend (the ``catalog`` fixture): counts equal a count by hand over generated
entries, the period is half-open, failed authentications come oldest first and honour the
limit, and on SQLite a period is served by the index rather than a table scan.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from vault_pipeline.storage.catalog import AccessEntry, Catalog
from vault_pipeline.storage.sqlite_catalog import SqliteCatalog

PRINCIPALS = ["alice", "bob", "anonymous", "ci-bot"]
PATHS = [("GET", "/v1/logs"), ("GET", "/v1/logs/log_" + "a" * 32 + "/raw"), ("POST", "/v1/ingest"),
         ("GET", "/api/v1/analytics/metrics")]
STATUSES = [200, 200, 200, 202, 401, 403, 404, 429]


def generated(n: int, seed: int = 1) -> list[AccessEntry]:
    rng = random.Random(seed)
    entries = []
    for i in range(n):
        method, path = rng.choice(PATHS)
        entries.append(AccessEntry(at=f"2026-01-{1 + i % 5:02d}T{i % 24:02d}:{i % 60:02d}:00.{i:06d}Z",
                                   principal=rng.choice(PRINCIPALS), method=method, path=path,
                                   status=rng.choice(STATUSES), latency_ms=1.5, client=f"10.0.0.{i % 7}"))
    return entries


def test_the_summary_equals_a_count_by_hand(catalog: Catalog) -> None:
    entries = generated(600)
    catalog.log_access(entries)
    start, end = "2026-01-02T00:00:00.000000Z", "2026-01-04T00:00:00.000000Z"
    inside = [e for e in entries if start <= e.at < end]
    assert 0 < len(inside) < len(entries)
    summary = catalog.summarise_access(start=start, end=end)
    assert summary.total == len(inside)
    assert summary.by_principal_status == sorted(
        (p, s, n) for (p, s), n in Counter((e.principal, e.status) for e in inside).items())
    assert summary.by_method_path == sorted((m, p, n) for (m, p), n in Counter((e.method, e.path) for e in inside).items())
    failed = sorted((e for e in inside if e.status in (401, 403)), key=lambda e: e.at)
    assert summary.auth_failures == failed and summary.auth_failures_total == len(failed)


def test_the_period_is_half_open_and_the_failure_list_can_be_capped(catalog: Catalog) -> None:
    at = ["2026-01-01T00:00:00.000000Z", "2026-01-01T01:00:00.000000Z", "2026-01-01T02:00:00.000000Z"]
    catalog.log_access([AccessEntry(t, "anonymous", "GET", "/v1/logs", 401, 0.1, "1.2.3.4") for t in at])
    summary = catalog.summarise_access(start=at[0], end=at[2], failure_limit=1)
    assert summary.total == 2 and summary.auth_failures_total == 2
    assert [e.at for e in summary.auth_failures] == [at[0]]
    assert catalog.summarise_access(start=at[0], end=at[2], failure_limit=0).auth_failures == []
    assert catalog.summarise_access(start=at[2], end=at[2]).total == 0
    with pytest.raises(ValueError):
        catalog.summarise_access(start=at[0], end=at[2], failure_limit=-1)


def test_an_empty_log_summarises_to_nothing(catalog: Catalog) -> None:
    summary = catalog.summarise_access(start="2026-01-01T00:00:00.000000Z", end="2027-01-01T00:00:00.000000Z")
    assert (summary.total, summary.by_principal_status, summary.by_method_path, summary.auth_failures,
            summary.auth_failures_total) == (0, [], [], [], 0)


def test_sqlite_reads_a_period_from_the_index_alone(tmp_path) -> None:
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    plans = [" ".join(row[-1] for row in catalog._read(f"EXPLAIN QUERY PLAN {sql}", params)) for sql, params in (
        ('SELECT "principal", "status", COUNT(*) FROM access_log INDEXED BY access_log_by_time '
         'WHERE "at" >= ? AND "at" < ? GROUP BY "principal", "status"', ("a", "b")),
        ('SELECT COUNT(*) FROM access_log INDEXED BY access_log_by_status WHERE "status" IN (401, 403) '
         'AND "at" >= ? AND "at" < ?', ("a", "b")))]
    assert "COVERING INDEX access_log_by_time" in plans[0] and "SCAN access_log" not in plans[0]
    assert "access_log_by_status" in plans[1]
    catalog.close()
