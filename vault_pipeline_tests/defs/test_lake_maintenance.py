"""The ``lake_maintenance`` job on a real vault: what it did shows as asset metadata and in the
artifact index, dead letters expire, the raw zone is untouched, and maintenance of a table
never interleaves with a load of it (both take the table's lake-writer lease)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa

from vault_pipeline.core.kinds import fact_schema
from vault_pipeline.core.windows import HourWindow
from vault_pipeline.defs.analytics import maintenance
from vault_pipeline.defs.analytics.maintenance import (
    MAINTENANCE_JOB,
    MAINTENANCE_SCHEDULE,
    maintain_table,
)
from vault_pipeline.defs.analytics.normalisation import normalise_partition
from vault_pipeline.defs.run_results import asset_metadata
from vault_pipeline.storage.catalog import DeadLetter, fixed_width_timestamp
from vault_pipeline.storage.lake import TablePolicy
from vault_pipeline.storage.sqlite_catalog import SqliteCatalog

NOW = datetime.now(UTC)
HOUR = "2026-01-01-05:00"


def audit_rows(ids: range, days_ago: int) -> pa.Table:
    schema = fact_schema("audit_event")
    stamp = NOW - timedelta(days=days_ago)
    columns = {}
    for f in schema:
        if f.name == "log_id":
            columns[f.name] = pa.array([f"log_{i:032x}" for i in ids], f.type)
        elif f.name == "date":
            columns[f.name] = pa.array([stamp.strftime("%Y-%m-%d")] * len(ids), f.type)
        elif f.name == "hour":
            columns[f.name] = pa.array(["04"] * len(ids), f.type)
        elif f.name == "event_time":
            columns[f.name] = pa.array([stamp] * len(ids), f.type)
        elif pa.types.is_string(f.type):
            columns[f.name] = pa.array([f"{f.name}-{i % 3}" for i in ids], f.type)
        else:
            columns[f.name] = pa.nulls(len(ids), f.type)
    return pa.table(columns, schema=schema)


def test_lake_maintenance_job_reports_what_it_did(vault) -> None:
    vault.write_providers({"sim_audit": {"type": "simulator", "kind": "audit_event", "records_per_hour": 50}})
    lake = vault.lake
    lake.merge("audit_events", audit_rows(range(6), days_ago=95))
    for start in range(6, 36, 10):
        lake.merge("audit_events", audit_rows(range(start, start + 10), days_ago=1))
    catalog = vault.catalog
    letter = {"provider": "sim_audit", "partition": f"{HOUR}|sim_audit", "stage": "input_validation", "reason": "bad"}
    catalog.add_dead_letters([
        DeadLetter("dl_old", created_at=fixed_width_timestamp(NOW - timedelta(days=8)), **letter),
        DeadLetter("dl_new", created_at=fixed_width_timestamp(NOW - timedelta(days=1)), **letter),
    ])

    definitions = vault.definitions()
    assert definitions.resolve_schedule_def(MAINTENANCE_SCHEDULE).default_status == dg.DefaultScheduleStatus.RUNNING
    result = definitions.resolve_job_def(MAINTENANCE_JOB).execute_in_process(instance=vault.instance, raise_on_error=False)
    assert result.success

    metadata = asset_metadata(result, "maintain_audit_events")
    assert metadata["rows_expired"] == 6
    assert metadata["files_compacted"] == 3 and metadata["files_written"] == 1
    assert metadata["bytes_compacted"] > 0 and metadata["dagster/row_count"] == 30
    assert asset_metadata(result, "maintain_test_results")["skipped"] == "table does not exist yet"
    assert asset_metadata(result, "dead_letter_expiry")["dead_letters_expired"] == 1
    assert [d.dead_letter_id for d in catalog.list_dead_letters()] == ["dl_new"]

    assert lake.count("audit_events") == 30
    assert lake.count("audit_events", version=4) == 36  # before maintenance, by time travel
    artifacts = catalog.search_artifacts(kind="lake_maintenance")
    table_artifact = next(a for a in artifacts if a.metadata.get("table") == "audit_events")
    assert table_artifact.metadata["rows_expired"] == 6 and table_artifact.metadata["files_compacted"] == 3
    assert table_artifact.location == lake.table_uri("audit_events")
    assert any(a.metadata.get("dead_letters_expired") == 1 for a in artifacts)


def test_maintenance_and_a_load_of_the_same_table_never_interleave(vault, monkeypatch) -> None:
    vault.write_providers({"sim_audit": {"type": "simulator", "kind": "audit_event", "records_per_hour": 200,
                                         "seed": 5, "page_size": 50}})
    assert vault.run(HOUR, "sim_audit", only=["raw_landing", "record_index"]).success
    lake = vault.lake
    lake.merge("audit_events", audit_rows(range(1000, 1010), days_ago=2))
    spans: dict[str, list[float]] = {}
    real_maintain, real_merge = type(lake).maintain, type(lake).merge_batches

    def slow_maintain(self, *args, **kwargs):
        spans["maintenance"] = [time.monotonic()]
        time.sleep(1.0)  # a long compaction: the load must wait for it
        try:
            return real_maintain(self, *args, **kwargs)
        finally:
            spans["maintenance"].append(time.monotonic())

    def timed_merge(self, *args, **kwargs):
        spans["load"] = [time.monotonic()]
        try:
            return real_merge(self, *args, **kwargs)
        finally:
            spans["load"].append(time.monotonic())

    monkeypatch.setattr(type(lake), "maintain", slow_maintain)
    monkeypatch.setattr(type(lake), "merge_batches", timed_merge)
    started = threading.Event()
    errors: list[Exception] = []

    def maintain() -> None:
        catalog = SqliteCatalog(vault.home / "catalog.db")  # its own connection, as another process
        try:
            original = maintenance.exclusive_table_writer

            def signalling(*a, **k):
                context = original(*a, **k)

                class Wrapped:
                    def __enter__(self):
                        value = context.__enter__()
                        started.set()
                        return value

                    def __exit__(self, *exc):
                        return context.__exit__(*exc)

                return Wrapped()

            monkeypatch.setattr(maintenance, "exclusive_table_writer", signalling)
            maintain_table(catalog=catalog, lake=lake, table="audit_events", policy=TablePolicy(), holder="maintenance")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            catalog.close()

    worker = threading.Thread(target=maintain)
    worker.start()
    assert started.wait(10)
    summary = normalise_partition(store=vault.store, catalog=vault.catalog, lake=lake, kind="audit_event",
                                  provider="sim_audit", window=HourWindow.for_hour_key(HOUR),
                                  partition=f"{HOUR}|sim_audit", run_id="load-run")
    worker.join()
    assert not errors
    assert spans["load"][0] >= spans["maintenance"][1]  # the load started after maintenance ended
    assert summary.inserted > 0
    assert lake.count("audit_events", provider="sim_audit") == summary.inserted


def test_vault_lake_history_lists_versions_and_names_known_tables(vault, monkeypatch, capsys) -> None:
    import json

    from vault_pipeline.cli import main

    vault.write_providers({"sim_audit": {"type": "simulator", "kind": "audit_event", "records_per_hour": 50}})
    monkeypatch.setenv("VAULT_CONFIG", str(vault.config_path))
    lake = vault.lake
    lake.merge("audit_events", audit_rows(range(5), days_ago=1))
    lake.merge("audit_events", audit_rows(range(5, 12), days_ago=1))
    assert main(["lake", "history", "audit_events", "--json"]) == 0
    versions = json.loads(capsys.readouterr().out)["versions"]
    assert [(v["version"], v["operation"], v["rows"]) for v in versions] == [
        (2, "WRITE", 12), (1, "WRITE", 5), (0, "CREATE TABLE", 0)]
    assert main(["lake", "history", "audit_events", "--limit", "1"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 and table[1].split()[:2] == ["2", versions[0]["timestamp"]]
    assert main(["lake", "history", "nope"]) == 2
    assert "the lake holds: audit_events" in capsys.readouterr().err
