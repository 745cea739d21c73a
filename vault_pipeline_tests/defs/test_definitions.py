"""The definitions load from vault.yaml, carry the hourly job and schedule, and work from the CLI.

vault.yaml also sets the first hour of the partitions (``partitions.start``) and whether the
hourly schedule runs by default (``schedule.enabled``).
"""

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
from vault_pipeline.defs.schedules import HOURLY_JOB, HOURLY_SCHEDULE
from vault_pipeline.providers.config import DEFAULT_PARTITIONS_START, ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
UNUSED = {"vault": VaultResource(home="/nonexistent")}  # definitions only; nothing runs
HOURLY_ASSETS = {"raw_landing", "record_index", "normalised_records", "integrity_report", "ledger_entry", "golden_promotion",
                 "artifact_index"}
MART_ASSETS = {"agg_provider_metrics", "agg_technique_effectiveness", "dim_providers"}  # group analytics, same job


def _write(path: Path, providers: dict, **sections) -> Path:
    path.write_text(yaml.safe_dump({"providers": providers, **sections}))
    return path


def _hours(definitions: dg.Definitions, now: datetime) -> list[str]:
    partitions = definitions.resolve_job_def(HOURLY_JOB).partitions_def
    return sorted({key.split("|")[0] for key in partitions.get_partition_keys(current_time=now)})


def test_repository_definitions_load_with_every_stage_check_job_and_schedule(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("VAULT_CONFIG", raising=False)
    definitions = build_definitions()
    repository = definitions.get_repository_def()
    keys = {key.path[-1] for key in repository.asset_graph.get_all_asset_keys()}
    assert keys >= HOURLY_ASSETS | MART_ASSETS  # plus the lake lifecycle's assets (their own group)
    checks = {key.name for key in repository.asset_graph.asset_check_keys}
    assert checks == {"input_validation", "output_validation", "integrity_clean",
                      "new_flaky_tests", "new_failure_clusters",  # the insights group's (WARN, not blocking)
                      "hourly_sla"}  # operations: each hour x provider materialized by its deadline
    for key in repository.asset_graph.get_all_asset_keys():
        if key.path[-1] in HOURLY_ASSETS | MART_ASSETS:
            assert repository.asset_graph.get(key).group_name == ("analytics" if key.path[-1] in MART_ASSETS else "hourly")
    assert {k.path[-1] for k in definitions.resolve_job_def(HOURLY_JOB).asset_layer.selected_asset_keys} >= MART_ASSETS
    job = definitions.resolve_job_def(HOURLY_JOB)
    assert job.partitions_def is not None
    schedule = definitions.resolve_schedule_def("hourly_ingestion_schedule")
    assert schedule.cron_schedule == "2 * * * *"


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


SIM = {"sim": {"type": "simulator", "kind": "audit_event"}}


def test_the_hourly_schedule_runs_by_default_and_vault_yaml_can_turn_it_off(tmp_path):
    on = build_definitions(load_config(_write(tmp_path / "on.yaml", SIM)), resources=UNUSED)
    assert on.resolve_schedule_def(HOURLY_SCHEDULE).default_status == dg.DefaultScheduleStatus.RUNNING
    off_yaml = _write(tmp_path / "off.yaml", SIM, schedule={"enabled": False})
    off = build_definitions(load_config(off_yaml), resources=UNUSED)
    assert off.resolve_schedule_def(HOURLY_SCHEDULE).default_status == dg.DefaultScheduleStatus.STOPPED
    # Loading definitions with a running schedule launches nothing: only a dagster-daemon ticks it.
    with dg.DagsterInstance.ephemeral() as instance:
        on.resolve_job_def(HOURLY_JOB)
        assert instance.get_runs() == []


def test_the_partitions_start_at_the_hour_vault_yaml_names(tmp_path):
    now = datetime(2026, 11, 1, 3, 30, tzinfo=UTC)
    config = load_config(_write(tmp_path / "vault.yaml", SIM, partitions={"start": "2026-11-01T00:00:00Z"}))
    definitions = build_definitions(config, resources=UNUSED)
    # The hours that ended, and the hour under way (03:00), which pushes land in as they arrive.
    assert _hours(definitions, now) == ["2026-11-01-00:00", "2026-11-01-01:00", "2026-11-01-02:00", "2026-11-01-03:00"]
    # The schedule's first tick after the start requests it; a tick for an earlier hour skips.
    schedule = definitions.resolve_schedule_def(HOURLY_SCHEDULE)
    repository = definitions.get_repository_def()
    tick = schedule.evaluate_tick(dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 1, 1, 10, tzinfo=UTC), repository_def=repository))
    assert [r.partition_key for r in tick.run_requests] == ["2026-11-01-00:00|sim"]
    early = schedule.evaluate_tick(dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 1, 0, 10, tzinfo=UTC), repository_def=repository))
    assert not early.run_requests and "before partitions.start (2026-11-01-00:00)" in early.skip_message


def test_without_a_start_the_partitions_begin_at_the_default_hour(tmp_path):
    definitions = build_definitions(load_config(_write(tmp_path / "vault.yaml", SIM)), resources=UNUSED)
    hours = _hours(definitions, datetime(2026, 1, 1, 6, tzinfo=UTC))
    assert DEFAULT_PARTITIONS_START == "2026-01-01-00:00"
    assert hours[0] == DEFAULT_PARTITIONS_START and len(hours) == 7  # every test hour of 2026-01-01 is one
    assert hours[-1] == "2026-01-01-06:00"  # ... and so is the hour under way


@pytest.mark.parametrize("start, problem", [
    ("2026-11-01 00:00", "has no time zone"),
    ("2026-11-01T00:00:00", "has no time zone"),
    ("2026-11-01-00:30", "is not an hour"),
    ("2026-11-01T00:30:00Z", "is not on the hour"),
    ("2026-11-01T00:00:00+05:30", "is not on the hour in UTC"),
    ("last month", "is not an hour"),
])
def test_a_bad_partitions_start_names_the_key_and_the_formats(tmp_path, start, problem):
    path = tmp_path / "vault.yaml"
    path.write_text(yaml.safe_dump({"providers": SIM, "partitions": {"start": start}}))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "partitions.start" in message and problem in message
    assert "YYYY-MM-DD-HH:00" in message and "ISO-8601 with Z" in message


def test_the_repository_vault_yaml_starts_recently(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("VAULT_CONFIG", raising=False)
    config = load_config()
    assert config.partitions.start_time >= datetime(2026, 11, 1, tzinfo=UTC)  # not years of "missing" hours
    assert config.schedule.enabled
    hours = _hours(build_definitions(config, resources=UNUSED), datetime(2026, 12, 1, tzinfo=UTC))
    assert hours[0] == config.partitions.start and "2026-11-30-23:00" in hours
    # The README's `dagster asset materialize` example runs as printed in vault_pipeline_tests/test_readme.py.


def test_vault_run_refuses_an_hour_before_partitions_start_naming_the_key(tmp_path, monkeypatch, capsys):
    from vault_pipeline import cli

    config = _write(tmp_path / "vault.yaml", SIM, partitions={"start": "2026-11-01-00:00"})
    for name, value in {"VAULT_HOME": str(tmp_path / "home"), "VAULT_CONFIG": str(config),
                        "VAULT_OTEL_EXPORTER": "none"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    code = cli.main(["run", "--provider", "sim", "--hour", "2026-10-31T23"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "before the vault's first hour 2026-11-01T00Z (partitions.start in vault.yaml)" in err


def test_outside_a_run_the_prod_resource_reads_its_bucket_and_mongo_uri_from_the_environment(monkeypatch):
    """Only a Dagster run resolves dg.EnvVar settings; the CLI and `vault serve` get them resolved too."""
    import pytest

    from vault_pipeline.defs.resources import resources_for_env, vault_resource
    from vault_pipeline.providers.config import ConfigError

    monkeypatch.setenv("VAULT_S3_BUCKET", "audit-bucket")
    monkeypatch.setenv("VAULT_MONGO_URI", "mongodb://127.0.0.1:1/vault")
    import dagster as dg

    assert isinstance(resources_for_env("prod")["vault"].bucket, dg.EnvVar)  # unresolved, unusable as it is
    vault = vault_resource("prod")
    assert (vault.bucket, vault.mongo_uri, vault.object_store_backend) == ("audit-bucket", "mongodb://127.0.0.1:1/vault", "s3")
    monkeypatch.delenv("VAULT_S3_BUCKET")
    with pytest.raises(ConfigError, match="VAULT_S3_BUCKET"):
        vault_resource("prod")
    local = vault_resource("local")
    assert local.object_store_backend == "local"
