"""The definitions load from vault.yaml, carry the hourly job and schedule, and work from the CLI."""

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from vault_pipeline.definitions import build_definitions
from vault_pipeline.defs.resources import VaultResource
from vault_pipeline.defs.schedules import HOURLY_JOB
from vault_pipeline.providers.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
UNUSED = {"vault": VaultResource(home="/nonexistent")}  # definitions only; nothing runs
HOURLY_ASSETS = {"raw_landing", "record_index", "normalised_records", "integrity_report", "ledger_entry", "golden_promotion",
                 "artifact_index"}


def _write(path: Path, providers: dict) -> Path:
    path.write_text(yaml.safe_dump({"providers": providers}))
    return path


def test_repository_definitions_load_with_every_stage_check_job_and_schedule(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("VAULT_CONFIG", raising=False)
    definitions = build_definitions()
    repository = definitions.get_repository_def()
    keys = {key.path[-1] for key in repository.asset_graph.get_all_asset_keys()}
    assert keys == HOURLY_ASSETS
    checks = {key.name for key in repository.asset_graph.asset_check_keys}
    assert checks == {"input_validation", "output_validation", "integrity_clean"}
    for key in repository.asset_graph.get_all_asset_keys():
        assert repository.asset_graph.get(key).group_name == "hourly"
    job = definitions.resolve_job_def(HOURLY_JOB)
    assert job.partitions_def is not None
    schedule = definitions.resolve_schedule_def("hourly_ingestion_schedule")
    assert schedule.cron_schedule == "10 * * * *"


def test_schedule_requests_the_last_complete_hour_for_every_provider(tmp_path):
    config = load_config(_write(tmp_path / "vault.yaml", {
        "a_sim": {"type": "simulator", "kind": "audit_event"},
        "b_sim": {"type": "simulator", "kind": "test_result"},
    }))
    definitions = build_definitions(config, resources=UNUSED)
    schedule = definitions.resolve_schedule_def("hourly_ingestion_schedule")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 4, 10, 10, tzinfo=UTC), repository_def=definitions.get_repository_def()
    )
    requests = list(schedule.evaluate_tick(context).run_requests)
    assert sorted(r.partition_key for r in requests) == ["2026-03-04-09:00|a_sim", "2026-03-04-09:00|b_sim"]
    assert len({r.run_key for r in requests}) == 2


def test_a_provider_added_to_the_file_is_a_partition_at_once(tmp_path):
    path = _write(tmp_path / "vault.yaml", {"first": {"type": "simulator", "kind": "audit_event"}})
    keys = build_definitions(load_config(path), resources=UNUSED).resolve_job_def(HOURLY_JOB).partitions_def
    assert "2026-01-01-00:00|first" in keys.get_partition_keys(current_time=datetime(2026, 1, 2, tzinfo=UTC))
    _write(path, {"first": {"type": "simulator", "kind": "audit_event"}, "second": {"type": "simulator", "kind": "test_result"}})
    partitions = build_definitions(load_config(path), resources=UNUSED).resolve_job_def(HOURLY_JOB).partitions_def
    assert "2026-01-01-00:00|second" in partitions.get_partition_keys(current_time=datetime(2026, 1, 2, tzinfo=UTC))


def test_a_bad_vault_yaml_says_what_to_fix(tmp_path):
    path = tmp_path / "vault.yaml"
    path.write_text("providers:\n  bad name:\n    type: simulator\n    kind: audit_event\n")
    with pytest.raises(ConfigError, match=r"provider 'bad name'.*name"):
        build_definitions(load_config(path), resources=UNUSED)


def _cli_env(tmp_path: Path, config: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER")}
    env.update(VAULT_CONFIG=str(config), VAULT_HOME=str(tmp_path / "home"), VAULT_OTEL_EXPORTER="none",
               DAGSTER_HOME=str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    return env


def test_dagster_cli_validates_and_materializes_a_provider_just_added(tmp_path):
    """From the repo root, as the README says: the whole hourly graph with its checks."""
    config = _write(tmp_path / "vault.yaml", {
        "fresh_provider": {"type": "simulator", "kind": "test_result", "records_per_hour": 50, "seed": 1, "lookback_hours": 0},
    })
    env = _cli_env(tmp_path, config)
    dagster = str(Path(sys.executable).with_name("dagster"))
    validate = subprocess.run([dagster, "definitions", "validate", "-w", "workspace.yaml"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    run = subprocess.run(
        [dagster, "asset", "materialize", "-m", "vault_pipeline", "--select", "group:hourly",
         "--partition", "2026-01-01-00:00|fresh_provider"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    for check in ("input_validation", "output_validation", "integrity_clean"):
        assert f"Asset check '{check}'" in output and "passed" in output
    assert list((tmp_path / "home" / "objects" / "raw" / "fresh_provider").rglob("*.json"))


def test_dagster_cli_rejects_an_unknown_provider_partition(tmp_path):
    config = _write(tmp_path / "vault.yaml", {"only_one": {"type": "simulator", "kind": "audit_event"}})
    dagster = str(Path(sys.executable).with_name("dagster"))
    run = subprocess.run(
        [dagster, "asset", "materialize", "-m", "vault_pipeline", "--select", "group:hourly",
         "--partition", "2026-01-01-00:00|nobody"],
        cwd=REPO, env=_cli_env(tmp_path, config), capture_output=True, text=True, timeout=300,
    )
    assert run.returncode != 0
    assert "nobody" in run.stdout + run.stderr
