"""deploy/ as an operator receives it: a dagster.yaml Dagster accepts, with no credential in it,
Helm values that say the same, and every variable they read documented in deploy/README.md.

The deployment test (test_postgres_deployment.py) runs the same dagster.yaml on a real Postgres;
these checks are the fast ones that hold on any machine.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.ref import InstanceRef

from vault_pipeline.defs.run_queue import LAKE_TABLE_TAG
from vault_pipeline_tests.fixtures.deployment import DEPLOY, REPO

INSTANCE = DEPLOY / "dagster.yaml"
VALUES = DEPLOY / "helm" / "values.yaml"
PG_VARIABLES = {"hostname": "DAGSTER_PG_HOST", "port": "DAGSTER_PG_PORT", "username": "DAGSTER_PG_USERNAME",
                "password": "DAGSTER_PG_PASSWORD", "db_name": "DAGSTER_PG_DB"}


def _instance() -> dict:
    return yaml.safe_load(INSTANCE.read_text())


def _values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def test_the_instance_names_every_postgres_setting_by_environment_variable() -> None:
    postgres = _instance()["storage"]["postgres"]["postgres_db"]
    assert {field: postgres[field] for field in PG_VARIABLES} == {f: {"env": v} for f, v in PG_VARIABLES.items()}
    # dagster-postgres ships psycopg2; a bare postgresql:// would make SQLAlchemy 2.1 load psycopg 3.
    assert postgres["scheme"] == "postgresql+psycopg2"
    assert set(postgres) == {*PG_VARIABLES, "scheme"}  # nothing else, literal or not


def test_dagster_reads_the_instance_as_postgres_storage_and_a_run_queue(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copyfile(INSTANCE, tmp_path / "dagster.yaml")
    for name in PG_VARIABLES.values():
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "x")
    ref = InstanceRef.from_dir(str(tmp_path))  # validates the file against Dagster's schema
    assert (ref.storage_data.module_name, ref.storage_data.class_name) == ("dagster_postgres", "DagsterPostgresStorage")
    assert ref.run_coordinator_data.class_name == "QueuedRunCoordinator"
    assert ref.run_launcher_data.class_name == "DefaultRunLauncher"
    assert ref.settings["run_monitoring"]["enabled"] is True and ref.settings["telemetry"]["enabled"] is False
    queue = yaml.safe_load(ref.run_coordinator_data.config_yaml)
    # The tag the vault's runs carry (defs/run_queue.py), one run per table at a time.
    assert queue["tag_concurrency_limits"] == [{"key": LAKE_TABLE_TAG, "value": {"applyLimitPerUniqueValue": True},
                                                "limit": 1}]
    assert queue["max_concurrent_runs"] > 1


def test_the_kubernetes_launcher_is_ready_to_uncomment() -> None:
    lines = INSTANCE.read_text().splitlines()
    start = lines.index("# run_launcher:")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:])
    launcher = yaml.safe_load("\n".join(block))["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    # K8sRunLauncher's own fields (dagster-k8s), nothing misspelt.
    assert set(launcher["config"]) <= {
        "service_account_name", "job_namespace", "load_incluster_config", "kubeconfig_file", "image_pull_policy",
        "image_pull_secrets", "dagster_home", "instance_config_map", "postgres_password_secret", "job_image",
        "env_config_maps", "env_secrets", "env_vars", "volume_mounts", "volumes", "labels", "run_k8s_config",
        "fail_pod_on_run_failure", "resources", "scheduler_name", "security_context"}
    assert launcher["config"]["postgres_password_secret"] == _values()["global"]["postgresqlSecretName"]


def test_the_helm_values_say_what_the_instance_says() -> None:
    values, instance = _values(), _instance()
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    queued, queue = coordinator["config"]["queuedRunCoordinator"], instance["run_coordinator"]["config"]
    assert queued["tagConcurrencyLimits"] == queue["tag_concurrency_limits"]
    assert (queued["maxConcurrentRuns"], queued["dequeueIntervalSeconds"]) == (
        queue["max_concurrent_runs"], queue["dequeue_interval_seconds"])
    monitoring, helm_monitoring = instance["run_monitoring"], values["dagsterDaemon"]["runMonitoring"]
    assert helm_monitoring == {"enabled": True, "startTimeoutSeconds": monitoring["start_timeout_seconds"],
                               "maxResumeRunAttempts": monitoring["max_resume_run_attempts"],
                               "pollIntervalSeconds": monitoring["poll_interval_seconds"]}
    assert values["telemetry"]["enabled"] is instance["telemetry"]["enabled"] is False
    # Your Postgres, its password from a secret only, through the driver dagster-postgres ships.
    postgres = values["postgresql"]
    assert postgres["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert postgres["postgresqlPassword"] == ""
    assert postgres["postgresqlScheme"] == instance["storage"]["postgres"]["postgres_db"]["scheme"]
    # The code location serves the module workspace.yaml loads, and runs are Kubernetes Jobs.
    [location] = values["dagster-user-deployments"]["deployments"]
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    assert location["dagsterApiGrpcArgs"] == ["-m", workspace["load_from"][0]["python_module"]]
    assert location["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert values["runLauncher"]["type"] == "K8sRunLauncher"


def test_every_variable_the_deployment_reads_is_documented() -> None:
    readme = (DEPLOY / "README.md").read_text()
    read = set(re.findall(r"\{env: ([A-Z0-9_]+)\}", INSTANCE.read_text()))
    assert set(PG_VARIABLES.values()) <= read
    for name in sorted(read):
        assert f"`{name}" in readme, f"deploy/README.md does not document {name}"
    for name in ("VAULT_JOB_BACKEND", "VAULT_DAGSTER_URL", "VAULT_API_KEYS", "VAULT_LEDGER_KEY", "VAULT_MONGO_URI",
                 "VAULT_S3_BUCKET", "VAULT_ENV", "DAGSTER_HOME"):
        assert f"`{name}" in readme, f"deploy/README.md does not document {name}"


def test_make_test_installs_the_postgres_server_the_deployment_test_starts() -> None:
    line = next(line for line in (REPO / "Makefile").read_text().splitlines() if line.startswith("SYSTEM_PACKAGES"))
    assert "postgresql" in line.split(":=", 1)[1].split()
