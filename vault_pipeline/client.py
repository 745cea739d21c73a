"""The Python client QA agents use: push an execution result, validated, and read the patterns back.

Seed 000's usage, unchanged::

    from vault_pipeline.client import SecureDataPipeline

    pipeline = SecureDataPipeline()
    success, result = pipeline.execute_with_validation("QA_Assistant", {
        "timestamp": "2026-01-23T10:00:00.000Z", "agent_name": "QA_Assistant",
        "status": "success", "output": {"test_count": 42, "passed": 40}})
    if success:
        patterns = pipeline.analyze_patterns()

With ``url`` (or ``VAULT_URL``) the client talks to a running vault over HTTP (``vault serve``;
the key from ``api_key`` or ``VAULT_API_KEY``, roles ``ingest`` and ``read``); without, it is the
embedded vault of this machine (``VAULT_HOME``, ``vault.yaml``), and each push runs its hour's
graph in this process. Either way the execution goes through the whole vault: stored byte-exact,
checksummed, validated by the ``agent_result`` Great Expectations suite, indexed, in the Delta
table ``agent_results``, sealed in the ledger and promoted. ``execute_with_validation`` returns
``(True, result)`` only when its run completed and the record passed validation; otherwise
``(False, result)`` with ``error`` and the failed expectations. Nothing is retried silently: a
refused push (a missing ``timestamp``, an unknown provider) is ``(False, ...)`` with the vault's
error code. The provider is ``qa_agents`` (the default ``vault.yaml``'s) unless named. Embedded, an
hour of 50k records or more is promoted in spawned worker processes, which import the script that
started them: keep the usual ``if __name__ == "__main__":`` guard around a script's work, or set
``VAULT_PROMOTION_WORKERS=1`` to promote in the script's own process.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

import httpx

DEFAULT_PROVIDER = "qa_agents"
TERMINAL = ("completed", "failed")


class VaultClientError(RuntimeError):
    """The vault could not be reached, or answered what the client cannot use."""


class SecureDataPipeline:
    def __init__(self, url: str | None = None, *, api_key: str | None = None, provider: str | None = None,
                 timeout_s: float = 300.0, http: httpx.Client | None = None) -> None:
        self.url = url or os.environ.get("VAULT_URL") or None
        self.provider = provider
        self.timeout_s = timeout_s
        if self.url:
            key = api_key or os.environ.get("VAULT_API_KEY")
            if not key:
                raise VaultClientError("talking to a vault over HTTP needs an API key: pass api_key= or set VAULT_API_KEY")
            self._backend: _Backend = _HttpBackend(self.url, key, http or httpx.Client(timeout=60.0), timeout_s)
        else:
            self._backend = _EmbeddedBackend()

    def execute_with_validation(self, agent_name: str, result: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Push one execution result of ``agent_name`` and wait until the vault has validated it."""
        if not isinstance(result, Mapping):
            return False, {"error": "invalid_result", "detail": f"result is {type(result).__name__}, not a mapping"}
        named = result.get("agent_name")
        if named is not None and named != agent_name:
            return False, {"error": "agent_name_mismatch",
                           "detail": f"the result names agent {named!r}, not {agent_name!r}"}
        record = {**result, "agent_name": agent_name}
        try:
            body = json.dumps(record, ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            return False, {"error": "invalid_result", "detail": f"the result is not JSON: {exc}"}
        outcome = self._backend.push(self._provider(), body)
        if "error" in outcome and "state" not in outcome:
            return False, outcome
        success = outcome.get("state") == "completed" and not outcome.get("dead_letters")
        if not success and not outcome.get("error"):
            outcome["error"] = "failed_validation" if outcome.get("dead_letters") else (outcome.get("error") or "run_failed")
        return success, outcome

    def analyze_patterns(self, agent_name: str | None = None) -> dict[str, Any]:
        """Per agent: executions by status, success rate, the tests its outputs report; and the
        test insights (flaky tests, failure clusters, regressions) of the last refresh."""
        return self._backend.patterns(agent_name)

    def _provider(self) -> str:
        if self.provider is None:
            self.provider = self._backend.default_provider()
        return self.provider


class _Backend:
    def push(self, provider: str, body: bytes) -> dict[str, Any]: ...

    def patterns(self, agent_name: str | None) -> dict[str, Any]: ...

    def default_provider(self) -> str:
        return DEFAULT_PROVIDER


class _HttpBackend(_Backend):
    def __init__(self, url: str, key: str, http: httpx.Client, timeout_s: float) -> None:
        self.url, self.http, self.timeout_s = url.rstrip("/"), http, timeout_s
        self.headers = {"X-API-Key": key}

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, self.url + path, headers={**self.headers, **kwargs.pop("headers", {})},
                                     **kwargs)
        except httpx.HTTPError as exc:
            raise VaultClientError(f"the vault at {self.url} cannot be reached: {type(exc).__name__}: {exc}") from None

    def push(self, provider: str, body: bytes) -> dict[str, Any]:
        response = self._call("POST", "/v1/agent-executions", params={"provider_id": provider}, content=body,
                              headers={"Content-Type": "application/json"})
        if response.status_code != 202:
            return _error_of(response)
        execution_id = response.json()["run_id"]
        deadline = time.monotonic() + self.timeout_s
        while True:
            status = self._call("GET", f"/v1/agent-executions/{execution_id}")
            if status.status_code != 200:
                return _error_of(status)
            answer = status.json()
            if answer["state"] in TERMINAL:
                return {"execution_id": execution_id, **answer}
            if time.monotonic() > deadline:
                return {"execution_id": execution_id, **answer, "error": "timeout",
                        "detail": f"still {answer['state']} after {self.timeout_s} s"}
            time.sleep(0.2)

    def patterns(self, agent_name: str | None) -> dict[str, Any]:
        agents = self._call("GET", "/v1/insights/agents", params={"agent_name": agent_name} if agent_name else None)
        tests = self._call("GET", "/v1/insights")
        for response in (agents, tests):
            if response.status_code != 200:
                raise VaultClientError(f"{response.request.url.path}: {response.status_code} {response.text[:300]}")
        return {"agents": agents.json()["data"], "tests": tests.json()}


class _EmbeddedBackend(_Backend):
    """The vault of this machine, as the ``vault`` command opens it; runs execute in this process."""

    def __init__(self) -> None:
        from vault_pipeline.defs.resources import vault_resource

        self.vault = vault_resource()
        self._runner = None

    def default_provider(self) -> str:
        providers = self.vault.vault_config().providers
        if DEFAULT_PROVIDER in providers:
            return DEFAULT_PROVIDER
        pushing = sorted(n for n, p in providers.items() if p.type == "push" and p.kind == "agent_result")
        return pushing[0] if len(pushing) == 1 else DEFAULT_PROVIDER

    def _service(self):
        from vault_pipeline.push.service import PushService

        return PushService(store=self.vault.object_store(), catalog=self.vault.catalog(), config=self.vault.vault_config)

    def push(self, provider: str, body: bytes) -> dict[str, Any]:
        from vault_pipeline.push.service import AGENT_EXECUTION, PushRefused

        service = self._service()
        try:
            receipt = service.accept(AGENT_EXECUTION, provider, body, content_type="application/json",
                                     sent_by="embedded client")
        except PushRefused as exc:
            return {"error": exc.code, "detail": str(exc), "parameter": exc.parameter}
        outcome = self._run(receipt, service)
        rejected, letters = service.rejections(receipt, limit=20)
        return {"execution_id": receipt.push_id, "provider_id": provider, "partition": receipt.partition,
                "counts": receipt.counts, "duplicate": receipt.duplicate, "dead_letters": rejected,
                "rejections": [{"log_id": letter.log_id, "reason": letter.reason} for letter in letters], **outcome}

    def _run(self, receipt, service) -> dict[str, Any]:
        from vault_pipeline.cli import prepare_local_instance
        from vault_pipeline.hourly_runs import HourlyRunner

        if self._runner is None:
            prepare_local_instance()
            self._runner = HourlyRunner(show_steps=False)
        if receipt.duplicate and self._runner.succeeded(receipt.jobs):  # pushed and landed before
            return {"state": "completed", "run_ids": receipt.jobs}
        hour, provider = receipt.partition.split("|")
        outcome = self._runner.run(hour, provider, as_job=True)
        service.record_job(receipt, outcome.run_id)
        answer = {"state": "completed" if outcome.success else "failed", "run_ids": receipt.jobs,
                  "records_synced": outcome.fetched}
        if not outcome.success:
            answer["error"] = outcome.error or f"the run failed at {outcome.failed_step}"
        return answer

    def patterns(self, agent_name: str | None) -> dict[str, Any]:
        from vault_pipeline.api.agent_patterns import agent_patterns
        from vault_pipeline.api.insights import summarise_insights

        lake = self.vault.lake()
        return {"agents": agent_patterns(lake, agent=agent_name), "tests": summarise_insights(lake, self.vault.catalog())}


def _error_of(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {"error": "http_error", "detail": response.text[:500]}
    return {"status_code": response.status_code, **(body if isinstance(body, dict) else {"detail": body})}
