"""Small hand-written CI histories: a run is (test, build, status[, commit, duration, message])."""

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

START = datetime(2026, 1, 1, tzinfo=UTC)


def make_results(runs: list[dict]) -> pa.Table:
    """Rows with defaults: suite ``s``, commit ``c<build>``, timestamp build minutes + order."""
    rows = []
    for i, run in enumerate(runs):
        build = run["build"]
        rows.append({
            "suite": run.get("suite", "s"), "test": run["test"], "status": run["status"],
            "duration_ms": run.get("duration_ms", 100.0), "commit": run.get("commit", f"c{build}"),
            "branch": "main", "build": build,
            "timestamp": run.get("timestamp", START + timedelta(minutes=build, seconds=i)),
            "error_type": run.get("error_type"), "error_message": run.get("error_message"),
            "error_text": run.get("error_text"), "log_id": f"log{i}",
        })
    schema = pa.schema([("suite", pa.string()), ("test", pa.string()), ("status", pa.string()),
                        ("duration_ms", pa.float64()), ("commit", pa.string()), ("branch", pa.string()),
                        ("build", pa.int64()), ("timestamp", pa.timestamp("us", tz="UTC")),
                        ("error_type", pa.string()), ("error_message", pa.string()),
                        ("error_text", pa.string()), ("log_id", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.fixture
def results():
    return make_results
