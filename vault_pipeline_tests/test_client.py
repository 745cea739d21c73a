"""Scenario: a QA agent reports each execution through ``SecureDataPipeline`` and reads the patterns back.

The agent's code is seed 000's, unchanged: ``SecureDataPipeline()``, then
``execute_with_validation(agent_name, result)`` and, on success, ``analyze_patterns()``. Without a
URL the client is this machine's vault (``VAULT_HOME``, ``vault.yaml``) and the execution's hour
runs in this process; with one it is a vault served on loopback (``POST /v1/agent-executions``,
``GET /v1/insights/agents``). Either way ``(True, result)`` means the execution was stored,
validated and its run completed; a result the ``agent_result`` suite rejects is ``(False, ...)``
with ``failed_validation`` and the rejections; a result the vault refuses at the door (no
timestamp) is ``(False, ...)`` with the vault's code; a result naming another agent never leaves
the client. A vault that cannot be reached, or a URL without a key, is ``VaultClientError``.
``analyze_patterns`` aggregates the executions per agent: by status, success rate, the tests
their outputs report and their pass rate.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from vault_pipeline.client import SecureDataPipeline, VaultClientError
from vault_pipeline.defs.resources import VaultResource
from vault_pipeline_tests.fixtures.api import VaultService
from vault_pipeline_tests.fixtures.provider_server import closed_port_url

AGENTS = "qa_agents"
SEED_RESULT = {"timestamp": "2026-01-23T10:00:00.000Z", "agent_name": "QA_Assistant",
               "status": "success", "output": {"test_count": 42, "passed": 40}}
# The served vault's clock is 2026-01-02T00:00Z: its executions are of 2026-01-01.
SERVED_RESULT = {**SEED_RESULT, "timestamp": "2026-01-01T10:00:00.000Z"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class EmbeddedVault:
    """This machine's vault as the client opens it, seen through the product's own ports."""

    def __init__(self, home: Path, config: Path) -> None:
        self.home, self.config = home, config

    def _ports(self) -> VaultResource:
        return VaultResource(home=str(self.home), config_path=str(self.config))

    def count(self, provider: str = AGENTS) -> int:
        return self._ports().catalog().count_records(provider=provider)

    def rows(self, provider: str = AGENTS) -> list[dict[str, Any]]:
        lake = self._ports().lake()
        return lake.read("agent_results", provider=provider).to_pylist() if lake.exists("agent_results") else []

    def objects(self, prefix: str = "") -> list[str]:
        root = self.home / "objects"
        found = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else ()
        return sorted(k for k in found if k.startswith(prefix) and not k.rsplit("/", 1)[-1].startswith("."))

    def runs(self) -> int:
        if not (self.home / "dagster" / "dagster.yaml").exists():
            return 0
        with dg.DagsterInstance.from_config(str(self.home / "dagster")) as instance:
            return instance.get_runs_count()


def embedded_vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, providers: dict[str, Any]) -> EmbeddedVault:
    home, config = tmp_path / "home", tmp_path / "vault.yaml"
    config.write_text(yaml.safe_dump({"providers": providers}))
    monkeypatch.setenv("VAULT_HOME", str(home))
    monkeypatch.setenv("VAULT_CONFIG", str(config))
    monkeypatch.setenv("VAULT_OTEL_EXPORTER", "none")
    # the embedded client points DAGSTER_HOME at $VAULT_HOME/dagster in os.environ: registered here
    # so teardown restores it
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    for name in ("VAULT_URL", "VAULT_API_KEY", "VAULT_ENV", "VAULT_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return EmbeddedVault(home, config)


@pytest.fixture
def embedded(tmp_path, monkeypatch) -> EmbeddedVault:
    """A fresh embedded vault whose vault.yaml has the default ``qa_agents`` push provider."""
    return embedded_vault(tmp_path, monkeypatch, {AGENTS: {"type": "push", "kind": "agent_result"},
                                                  "ci": {"type": "push", "kind": "test_result"}})


@pytest.fixture
def served(vault_service_factory, monkeypatch) -> VaultService:
    for name in ("VAULT_URL", "VAULT_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return vault_service_factory(stack="embedded", providers={AGENTS: {"type": "push", "kind": "agent_result"}})


def client_of(vault: VaultService, principal: str = "operator") -> SecureDataPipeline:
    return SecureDataPipeline(vault.base_url, api_key=vault.keys[principal], timeout_s=60)


# -- embedded: this machine's vault ------------------------------------------------------------------
def test_the_seeds_usage_unchanged_on_the_embedded_vault(embedded):
    pipeline = SecureDataPipeline()
    success, result = pipeline.execute_with_validation("QA_Assistant", {
        "timestamp": "2026-01-23T10:00:00.000Z", "agent_name": "QA_Assistant",
        "status": "success", "output": {"test_count": 42, "passed": 40}})
    patterns = None
    if success:
        patterns = pipeline.analyze_patterns()

    assert success is True, result
    assert result["execution_id"].startswith("ax_") and len(result["execution_id"]) == 35
    assert result["state"] == "completed" and result["dead_letters"] == 0 and result["rejections"] == []
    assert result["provider_id"] == AGENTS and result["partition"] == f"2026-01-23-10:00|{AGENTS}"
    assert result["counts"] == {"executions": 1} and result["duplicate"] is False
    assert result["records_synced"] == 1 and len(result["run_ids"]) == 1
    assert patterns is not None
    (agent,) = patterns["agents"]
    assert {k: agent[k] for k in ("agent_name", "executions", "success_rate", "tests", "passed")} == {
        "agent_name": "QA_Assistant", "executions": 1, "success_rate": 1.0, "tests": 42, "passed": 40}
    assert agent["by_status"] == {"success": 1, "failure": 0, "error": 0, "partial": 0}
    assert agent["test_pass_rate"] == round(40 / 42, 6)
    assert agent["first_seen"].startswith("2026-01-23T10:00:00") and agent["last_seen"] == agent["first_seen"]
    assert isinstance(patterns["tests"], dict)

    # through the whole vault: the exact bytes pushed are the raw object, indexed, in the lake
    body = json.dumps(SEED_RESULT, ensure_ascii=False, allow_nan=False).encode()
    assert embedded.objects(f"raw/{AGENTS}/") == [f"raw/{AGENTS}/2026/01/23/10/{sha256(body)}.json"]
    assert embedded.count() == 1
    (row,) = embedded.rows()
    assert (row["agent_name"], row["status"], row["test_count"], row["passed"]) == ("QA_Assistant", "success", 42, 40)
    assert embedded.runs() == 1

    # the same execution reported again: the same id, nothing re-run
    again, repeat = SecureDataPipeline().execute_with_validation("QA_Assistant", SEED_RESULT)
    assert again is True and repeat["execution_id"] == result["execution_id"] and repeat["duplicate"] is True
    assert embedded.runs() == 1 and embedded.count() == 1


def test_an_execution_reported_as_it_happens_lands_in_the_hour_under_way(embedded):
    """The usual agent reports ``now``: its hour has not ended, and is a partition all the same."""
    now = datetime.now(UTC)
    success, result = SecureDataPipeline().execute_with_validation("QA_Assistant", {
        **SEED_RESULT, "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
    assert success is True, result
    assert result["partition"] == f"{now:%Y-%m-%d-%H}:00|{AGENTS}" and embedded.count() == 1


def test_embedded_results_the_vault_rejects_or_refuses_are_false_with_the_reason(embedded):
    pipeline = SecureDataPipeline()

    # the agent_result suite rejects it: stored and dead-lettered, the run completes, not a success
    success, result = pipeline.execute_with_validation("QA_Assistant", {
        "timestamp": "2026-01-23T11:00:00.000Z", "status": "exploded", "output": {"test_count": 2, "passed": 5}})
    assert success is False, result
    assert result["error"] == "failed_validation" and result["state"] == "completed", result
    assert result["dead_letters"] == 1
    (rejection,) = result["rejections"]
    assert rejection["log_id"] and "status" in rejection["reason"], rejection
    assert embedded.rows() == []  # never in the lake

    # refused at the door: nothing run
    runs = embedded.runs()
    success, result = pipeline.execute_with_validation("QA_Assistant", {"status": "success"})
    assert success is False and result["error"] == "invalid_timestamp", result
    assert "timestamp" in result["detail"] and result["parameter"] == "timestamp"
    # names another agent: never leaves the client
    stored = embedded.objects()
    success, result = pipeline.execute_with_validation("QA_Assistant", {**SEED_RESULT, "agent_name": "Other"})
    assert (success, result["error"]) == (False, "agent_name_mismatch") and "Other" in result["detail"]
    # not a JSON object
    assert pipeline.execute_with_validation("QA_Assistant", {**SEED_RESULT, "duration_ms": float("nan")})[1][
        "error"] == "invalid_result"
    assert pipeline.execute_with_validation("QA_Assistant", ["not", "a", "mapping"])[1]["error"] == "invalid_result"
    assert embedded.objects() == stored and embedded.runs() == runs
    # an unknown provider named by the agent
    success, result = SecureDataPipeline(provider="nobody").execute_with_validation("QA_Assistant", SEED_RESULT)
    assert (success, result["error"]) == (False, "unknown_provider") and AGENTS in result["detail"], result


def test_embedded_default_provider_is_the_only_agent_push_provider(tmp_path, monkeypatch):
    vault = embedded_vault(tmp_path, monkeypatch, {"bots": {"type": "push", "kind": "agent_result"},
                                                   "ci": {"type": "push", "kind": "test_result"}})
    # refused (no timestamp), so nothing runs; the body is kept under the provider the client chose
    success, result = SecureDataPipeline().execute_with_validation("QA_Assistant", {"status": "success"})
    assert (success, result["error"]) == (False, "invalid_timestamp"), result
    assert "dlq/bots/" in result["detail"] and vault.objects("dlq/bots/")


# -- over HTTP: a running vault ------------------------------------------------------------------------
def test_over_http_a_valid_execution_is_true_and_shows_in_the_patterns(served):
    pipeline = client_of(served)

    success, result = pipeline.execute_with_validation("QA_Assistant", SERVED_RESULT)

    assert success is True, result
    assert result["execution_id"].startswith("ax_") and result["execution_id"] == result["run_id"]
    assert result["state"] == "completed" and result["dead_letters"] == 0 and result["error"] is None
    assert result["partition"] == f"2026-01-01-10:00|{AGENTS}" and result["records_synced"] == 1
    patterns = pipeline.analyze_patterns()
    (agent,) = patterns["agents"]
    assert {k: agent[k] for k in ("agent_name", "executions", "success_rate", "tests", "passed")} == {
        "agent_name": "QA_Assistant", "executions": 1, "success_rate": 1.0, "tests": 42, "passed": 40}
    assert isinstance(patterns["tests"], dict) and patterns["tests"]  # GET /v1/insights' summary
    assert served.catalog.count(provider=AGENTS) == 1
    (row,) = served.harness.lake.read("agent_results", provider=AGENTS).to_pylist()
    assert (row["agent_name"], row["test_count"], row["passed"]) == ("QA_Assistant", 42, 40)


def failing_validation_over_http(served: VaultService) -> tuple[bool, dict[str, Any]]:
    """More tests passed than ran: the agent_result suite rejects it (stored, dead-lettered)."""
    success, result = client_of(served).execute_with_validation(
        "QA_Assistant", {**SERVED_RESULT, "output": {"test_count": 2, "passed": 5}})
    assert success is False, result
    assert result["state"] == "completed" and result["dead_letters"] == 1, result
    (rejection,) = result["rejections"]
    assert rejection["log_id"] and "passed" in rejection["reason"], rejection
    assert served.harness.lake.read("agent_results", provider=AGENTS).to_pylist() == []
    return success, result


def test_over_http_a_result_failing_validation_is_false_with_the_rejections(served):
    failing_validation_over_http(served)


def test_over_http_a_result_failing_validation_is_named_failed_validation(served):
    _success, result = failing_validation_over_http(served)
    assert result["error"] == "failed_validation", result


def test_over_http_refusals_and_a_mismatch_are_false_with_the_vaults_code(served):
    pipeline = client_of(served)

    success, result = pipeline.execute_with_validation("QA_Assistant", {"agent_name": "QA_Assistant",
                                                                        "status": "success"})
    assert success is False and result["error"] == "invalid_timestamp" and result["status_code"] == 422, result
    assert "timestamp" in json.dumps(result["detail"])

    success, result = pipeline.execute_with_validation("QA_Assistant", {**SERVED_RESULT, "agent_name": "Other"})
    assert (success, result["error"]) == (False, "agent_name_mismatch")

    success, result = client_of(served, "reader").execute_with_validation("QA_Assistant", SERVED_RESULT)
    assert (success, result["error"], result["status_code"]) == (False, "forbidden", 403), result

    success, result = SecureDataPipeline(served.base_url, api_key=served.keys["operator"], provider="nobody") \
        .execute_with_validation("QA_Assistant", SERVED_RESULT)
    assert (success, result["error"], result["status_code"]) == (False, "unknown_provider", 404), result
    assert served.harness.instance.get_runs_count() == 0 and served.catalog.count(provider=AGENTS) == 0


def test_a_vault_that_cannot_be_reached_or_a_url_without_a_key_is_a_client_error(monkeypatch):
    for name in ("VAULT_URL", "VAULT_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with closed_port_url("") as url:
        pipeline = SecureDataPipeline(url, api_key="key-anything-at-all")
        with pytest.raises(VaultClientError, match=f"the vault at {url} cannot be reached"):
            pipeline.execute_with_validation("QA_Assistant", SERVED_RESULT)
        with pytest.raises(VaultClientError, match="cannot be reached"):
            pipeline.analyze_patterns()

        with pytest.raises(VaultClientError, match="VAULT_API_KEY"):
            SecureDataPipeline(url)
        monkeypatch.setenv("VAULT_URL", url)
        with pytest.raises(VaultClientError, match="api_key"):
            SecureDataPipeline()
        monkeypatch.setenv("VAULT_API_KEY", "key-anything-at-all")
        assert SecureDataPipeline().url == url  # both from the environment


def test_over_http_patterns_aggregate_the_executions_by_agent(served):
    pipeline = client_of(served)
    executions = [
        ("QA_Assistant", {"timestamp": "2026-01-01T12:05:00.000Z", "status": "success", "duration_ms": 1000,
                          "output": {"test_count": 40, "passed": 38, "failed": 2}}),
        ("QA_Assistant", {"timestamp": "2026-01-01T12:15:00.000Z", "status": "failure", "duration_ms": 3000,
                          "error": {"message": "assertion failed"}, "output": {"test_count": 10, "passed": 2,
                                                                               "failed": 8}}),
        ("QA_Assistant", {"timestamp": "2026-01-01T13:25:00.000Z", "status": "error",
                          "error": {"message": "assertion failed"}}),
        ("QA_Reviewer", {"timestamp": "2026-01-01T12:45:00.000Z", "status": "partial", "duration_ms": 500,
                         "output": {"test_count": 5, "passed": 5}}),
    ]
    for agent_name, result in executions:
        success, answer = pipeline.execute_with_validation(agent_name, result)
        assert success is True, answer

    patterns = pipeline.analyze_patterns()

    assistant, reviewer = patterns["agents"]  # most executions first
    assert assistant["agent_name"] == "QA_Assistant" and assistant["executions"] == 3
    assert assistant["by_status"] == {"success": 1, "failure": 1, "error": 1, "partial": 0}
    assert assistant["success_rate"] == round(1 / 3, 6)
    assert (assistant["tests"], assistant["passed"], assistant["failed"]) == (50, 40, 10)
    assert assistant["test_pass_rate"] == 0.8
    assert assistant["mean_duration_ms"] == 2000.0
    assert assistant["top_error"] == {"message": "assertion failed", "count": 2}
    assert assistant["first_seen"].startswith("2026-01-01T12:05:00")
    assert assistant["last_seen"].startswith("2026-01-01T13:25:00")
    assert reviewer["agent_name"] == "QA_Reviewer" and reviewer["executions"] == 1
    assert reviewer["by_status"] == {"success": 0, "failure": 0, "error": 0, "partial": 1}
    assert (reviewer["success_rate"], reviewer["test_pass_rate"], reviewer["top_error"]) == (0.0, 1.0, None)

    # one agent only, and a reader may look
    (only,) = client_of(served, "reader").analyze_patterns("QA_Reviewer")["agents"]
    assert only == reviewer
