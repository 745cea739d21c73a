"""What the pushed agent executions say, per agent: how often each succeeds and what its tests found.

Seed 000's ``analyze_patterns()``: for every ``agent_name`` in the ``agent_results`` Delta table
(optionally one agent, and a time range on the execution's ``timestamp``), the executions by
status, the success rate (``success`` over all), the tests its outputs report (``test_count``,
``passed``, ``failed``) and their pass rate, the mean duration, the most frequent error, and the
first and last execution. One DataFusion query where the data is (``DeltaLake.sql``); served by
``GET /v1/insights/agents`` and by the embedded ``SecureDataPipeline`` client alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vault_pipeline.storage.lake import DeltaLake, sql_ident, sql_literal

TABLE = "agent_results"


def agent_patterns(lake: DeltaLake, *, agent: str | None = None, since: datetime | None = None,
                   until: datetime | None = None) -> list[dict[str, Any]]:
    """One entry per agent, most executions first (then by name)."""

    def compose(names: frozenset[str]) -> str:
        if "agent_name" not in names:
            return "SELECT 1 WHERE FALSE"
        where = ["agent_name IS NOT NULL"]
        if agent is not None:
            where.append(f"agent_name = {sql_literal(agent)}")
        if since is not None:
            where.append(f"event_time >= {_timestamp(since)}")
        if until is not None:
            where.append(f"event_time < {_timestamp(until)}")
        return (
            "SELECT agent_name, COUNT(*) AS executions, "
            "SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END) AS successes, "
            "SUM(CASE WHEN status = 'failure' THEN 1 ELSE 0 END) AS failures, "
            "SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors, "
            "SUM(CASE WHEN status = 'partial' THEN 1 ELSE 0 END) AS partials, "
            "SUM(test_count) AS tests, SUM(passed) AS passed, SUM(failed) AS failed, "
            "AVG(duration_ms) AS mean_duration_ms, MIN(event_time) AS first_seen, MAX(event_time) AS last_seen "
            f"FROM {sql_ident(TABLE)} WHERE {' AND '.join(where)} GROUP BY agent_name"
        )

    rows = lake.sql(TABLE, compose).to_pylist() if lake.exists(TABLE) else []
    errors = _top_errors(lake, agent) if rows else {}
    patterns = []
    for row in rows:
        executions = row["executions"] or 0
        tests = row["tests"]
        patterns.append({
            "agent_name": row["agent_name"], "executions": executions,
            "by_status": {"success": row["successes"] or 0, "failure": row["failures"] or 0,
                          "error": row["errors"] or 0, "partial": row["partials"] or 0},
            "success_rate": round((row["successes"] or 0) / executions, 6) if executions else None,
            "tests": tests, "passed": row["passed"], "failed": row["failed"],
            "test_pass_rate": round(row["passed"] / tests, 6) if tests and row["passed"] is not None else None,
            "mean_duration_ms": round(row["mean_duration_ms"], 3) if row["mean_duration_ms"] is not None else None,
            "top_error": errors.get(row["agent_name"]),
            "first_seen": _iso(row["first_seen"]), "last_seen": _iso(row["last_seen"]),
        })
    return sorted(patterns, key=lambda p: (-p["executions"], p["agent_name"]))


def _top_errors(lake: DeltaLake, agent: str | None) -> dict[str, dict[str, Any]]:
    def compose(names: frozenset[str]) -> str:
        scope = f" AND agent_name = {sql_literal(agent)}" if agent is not None else ""
        return (f"SELECT agent_name, error_message, COUNT(*) AS n FROM {sql_ident(TABLE)} "
                f"WHERE error_message IS NOT NULL{scope} GROUP BY agent_name, error_message")

    best: dict[str, dict[str, Any]] = {}
    for row in lake.sql(TABLE, compose).to_pylist():
        current = best.get(row["agent_name"])
        # The most frequent message; on a tie the first in sort order, so the answer is stable.
        if current is None or row["n"] > current["count"] or (
                row["n"] == current["count"] and row["error_message"] < current["message"]):
            best[row["agent_name"]] = {"message": row["error_message"], "count": row["n"]}
    return best


def _timestamp(moment: datetime) -> str:
    return f"CAST({sql_literal(moment.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ'))} AS TIMESTAMP)"


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if isinstance(value, datetime) else str(value)
