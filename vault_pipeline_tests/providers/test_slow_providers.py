"""A provider that drips its response, on a real loopback socket (respx cannot drip).

Per-read timeouts never fire when a byte arrives every second, so the REST client bounds the
whole response with ``response_timeout_s``, at the socket, headers included. And a process
blocked on such a provider stops promptly and cleanly on SIGTERM: ``dagster asset
materialize`` and ``vault demo`` are run as subprocesses, signalled by pid, and must exit
within a few seconds with the partition failed by a clear message and nothing indexed
(Dagster used to turn the interrupt into a step retry and start the same fetch again).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vault_pipeline.core.windows import HourWindow
from vault_pipeline.providers.base import ProviderError
from vault_pipeline.providers.config import parse_config
from vault_pipeline.providers.rest import RestProvider
from vault_pipeline.storage.sqlite_catalog import SqliteCatalog
from vault_pipeline_tests.fixtures.hostile_server import start_dripping_server, stop_pid

REPO = Path(__file__).resolve().parents[2]
WINDOW = HourWindow.for_hour_key("2026-01-01-05:00")
EXIT_BOUND_S = 10.0  # from SIGTERM to the process being gone


def _provider(url: str, **entry) -> RestProvider:
    document = {"type": "rest", "kind": "audit_event", "url": url, "lookback_hours": 0,
                "retry": {"max_attempts": 1, "timeout_s": 5}, **entry}
    return RestProvider(parse_config({"providers": {"drip": document}}).provider("drip"))


@pytest.mark.parametrize("drip_headers", [False, True], ids=["body", "headers"])
def test_a_dripping_provider_is_cut_off_at_response_timeout(tmp_path, drip_headers):
    with start_dripping_server(tmp_path, interval=0.2, drip_headers=drip_headers) as server:
        provider = _provider(server.url, response_timeout_s=1.5)
        started = time.monotonic()
        try:
            with pytest.raises(ProviderError) as info:
                list(provider.fetch_pages(WINDOW))
        finally:
            provider.close()
        elapsed = time.monotonic() - started
    # Each read gets a byte well within timeout_s=5; only the response deadline can end this.
    assert 1.4 <= elapsed < 4.0, elapsed
    assert "did not complete within response_timeout_s=1.5 s" in str(info.value)
    assert "'drip'" in str(info.value) and server.url in str(info.value) and info.value.retryable


def test_a_prompt_provider_on_the_deadline_transport_lands_normally(tmp_path):
    with start_dripping_server(tmp_path, interval=0.0) as server:
        provider = _provider(server.url, response_timeout_s=10)
        try:
            [page] = list(provider.fetch_pages(WINDOW))
        finally:
            provider.close()
    assert len(page.framed) == 1 and page.body.startswith(b'{"records"')


# -- SIGTERM while blocked on the provider --------------------------------------------------------


def _environment(tmp_path: Path, url: str) -> dict[str, str]:
    (tmp_path / "vault.yaml").write_text(
        "providers:\n  drip:\n    type: rest\n    kind: audit_event\n"
        f"    url: {url}\n    lookback_hours: 0\n    retry: {{max_attempts: 1}}\n", encoding="utf-8")
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    return {**os.environ, "VAULT_CONFIG": str(tmp_path / "vault.yaml"), "VAULT_HOME": str(tmp_path / "vault_home"),
            "DAGSTER_HOME": str(dagster_home), "VAULT_OTEL_EXPORTER": "none", "PYTHONUNBUFFERED": "1"}


def _terminate_while_blocked(command: list[str], env: dict[str, str], server, output: Path) -> tuple[int, float, str]:
    """Start ``command``, SIGTERM it by pid once it is reading the provider; (exit code, seconds to exit, output)."""
    with output.open("wb") as sink:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
    try:
        server.wait_for_requests(1, timeout=120)  # the process is now blocked on the dripping body
        time.sleep(1.0)
        os.kill(process.pid, signal.SIGTERM)
        signalled = time.monotonic()
        try:
            code = process.wait(timeout=EXIT_BOUND_S)
        except subprocess.TimeoutExpired:
            code = None
        elapsed = time.monotonic() - signalled
    finally:
        stop_pid(process)
    text = output.read_text(errors="replace")
    assert code is not None, f"still running {EXIT_BOUND_S} s after SIGTERM:\n{text[-3000:]}"
    return code, elapsed, text


def _nothing_indexed(tmp_path: Path) -> None:
    database = tmp_path / "vault_home" / "catalog.db"
    if database.exists():
        assert SqliteCatalog(database).count_records() == 0


def test_sigterm_stops_dagster_asset_materialize_promptly_and_fails_the_partition(tmp_path):
    with start_dripping_server(tmp_path, interval=1.0) as server:
        env = _environment(tmp_path, server.url)
        command = [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "vault_pipeline",
                   "--select", "raw_landing", "--partition", "2026-01-01-05:00|drip"]
        code, elapsed, text = _terminate_while_blocked(command, env, server, tmp_path / "materialize.log")
        requests = server.requests()
    assert code == 1 and elapsed < EXIT_BOUND_S, (code, elapsed, text[-3000:])  # a failed run, not a killed process
    assert "interrupted (SIGTERM/SIGINT) while fetching page 1" in text and "provider 'drip'" in text
    assert "STEP_UP_FOR_RETRY" not in text and requests == 1  # the fetch was not started again
    _nothing_indexed(tmp_path)


def test_sigterm_stops_vault_demo_instead_of_moving_on_to_the_next_partition(tmp_path):
    with start_dripping_server(tmp_path, interval=1.0) as server:
        env = _environment(tmp_path, server.url)
        command = [sys.executable, "-m", "vault_pipeline.cli", "demo", "--hours", "3"]
        code, elapsed, text = _terminate_while_blocked(command, env, server, tmp_path / "demo.log")
        requests = server.requests()
    assert code == 130 and elapsed < EXIT_BOUND_S, (code, elapsed, text[-3000:])
    assert "vault: interrupted" in text and "interrupted (SIGTERM/SIGINT) while fetching page 1" in text
    assert requests == 1  # neither retried nor the next hour started
    _nothing_indexed(tmp_path)
