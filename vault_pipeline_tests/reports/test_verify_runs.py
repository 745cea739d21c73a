"""Every `vault verify` run on record: stored as JSON, indexed by time, readable for a period in
the shape the dashboard reads; a failure to store it changes neither the exit code nor the verdict."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vault_pipeline.reports import verify_runs as runs_module
from vault_pipeline.reports.verify_runs import verify_runs
from vault_pipeline.storage.local_store import LocalObjectStore
from vault_pipeline.storage.sqlite_catalog import SqliteCatalog


@pytest.fixture
def operator(operator):
    """The shared operator, after one hour of its provider was run."""
    assert operator("run", "--provider", "qa", "--hour", "2026-01-01T05")[0] == 0
    return operator


def _ports(home: Path):
    return SqliteCatalog(home / "catalog.db"), LocalObjectStore(home / "objects")


def _period():
    now = datetime.now(UTC)
    return now - timedelta(minutes=5), now + timedelta(minutes=5)


def test_each_verify_run_is_stored_and_read_back_in_the_dashboards_shape(operator):
    code, out, _ = operator("verify", "--json")
    assert code == 0 and json.loads(out)["clean"]
    catalog, store = _ports(operator.home)
    (run,) = verify_runs(catalog, store, *_period())
    assert run["clean"] is True and run["checked_anything"] is True and run["findings"] == []
    assert run["selection"] == {"providers": None, "since": None, "workers": None}
    assert run["checked"]["partitions"] == 1 and run["checked"]["records"] == catalog.count_records() > 0
    assert run["started_at"] <= run["finished_at"] and run["summary"].startswith("1 providers")
    assert run["location"].startswith("reports/_vault/verify/") and store.exists(run["location"])

    # tampered: the next run is stored with its findings, the first stays as it was
    raw = next((operator.home / "objects" / "raw").rglob("*.json"))
    raw.chmod(0o644)
    raw.write_bytes(raw.read_bytes().replace(b"{", b"[", 1))
    code, out, _ = operator("verify", "--provider", "qa")
    assert code == 1
    first, second = verify_runs(catalog, store, *_period())
    assert first["clean"] and not second["clean"]
    assert {"type", "provider", "partition", "detail"} <= set(second["findings"][0])
    assert "object_altered" in {f["type"] for f in second["findings"]}
    assert second["selection"]["providers"] == ["qa"]
    later = datetime.now(UTC) + timedelta(hours=1)
    assert verify_runs(catalog, store, later, later + timedelta(days=2)) == []


def test_a_stored_result_that_was_altered_or_removed_is_listed_as_such(operator):
    assert operator("verify")[0] == 0
    assert operator("verify")[0] == 0
    catalog, store = _ports(operator.home)
    first, second = verify_runs(catalog, store, *_period())
    path = operator.home / "objects" / first["location"]
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b'"clean": true', b'"clean": false'))
    (operator.home / "objects" / second["location"]).unlink()
    altered, missing = verify_runs(catalog, store, *_period())
    assert altered["altered"] and altered["clean"] is True  # the index's word, flagged
    assert missing["missing"] and missing["finished_at"] == second["finished_at"]


def test_a_failure_to_store_warns_and_keeps_the_exit_code(operator, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full at /secret/path")

    monkeypatch.setattr(runs_module, "store_verify_result", broken)
    code, out, err = operator("verify")
    assert code == 0 and out.startswith("OK")
    assert "verify result could not be stored (OSError)" in err and "/secret/path" not in err
