"""Scenario: an Idempotency-Key outlives ``vault serve``.

A client that lost the answer to ``POST /v1/ingest`` retries with the same ``Idempotency-Key``;
if the API restarted meanwhile it must still get the job it started, not a second one. Each
test runs ``vault serve``'s own wiring (``server.build_api_from_env``) on one ``VAULT_HOME``,
stops it completely (server, job workers, catalog, Dagster instance) and builds it again on the
same home: a real restart, with nothing carried over in memory. Keys are kept in the catalog as
fingerprints only, for ``VAULT_API_IDEMPOTENCY_TTL_HOURS``, then forgotten.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vault_pipeline.api import server
from vault_pipeline.api.app import VaultApi, create_app
from vault_pipeline.api.auth import parse_api_keys
from vault_pipeline.api.runs import Runner
from vault_pipeline_tests.api.test_openapi_contract import InstantRunner
from vault_pipeline_tests.fixtures.api import VaultApiClient, _LoopbackServer

NOW = datetime(2026, 1, 2, 0, 0, tzinfo=UTC)
HOUR, NEXT_HOUR, LATER = "2026-01-01T05", "2026-01-01T06", "2026-01-01T07"
PRINCIPALS = {"operator": "ingest+read", "other": "ingest+read"}


class VaultServe:
    """``vault serve`` on one VAULT_HOME, started and stopped as often as a test likes."""

    def __init__(self, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.home = home
        self.keys = {name: f"key-{name}-{secrets.token_hex(16)}" for name in PRINCIPALS}
        config = home.parent / "vault.yaml"
        config.write_text("providers:\n  demo_cloudtrail:\n    type: simulator\n    kind: audit_event\n"
                          "    records_per_hour: 5\n    lookback_hours: 0\n    invalid_fraction: 0\n")
        keys_env = ",".join(f"{name}:{self.keys[name]}:{roles}" for name, roles in PRINCIPALS.items())
        for name, value in {"VAULT_HOME": str(home), "VAULT_CONFIG": str(config), "VAULT_OTEL_EXPORTER": "none",
                            "VAULT_API_KEYS": keys_env, "DAGSTER_HOME": str(home / "dagster")}.items():
            monkeypatch.setenv(name, value)  # restored at teardown, DAGSTER_HOME included
        self._keys_env = keys_env
        self._running: tuple[VaultApi, _LoopbackServer] | None = None

    def start(self, clock: Callable[[], datetime] = lambda: NOW) -> VaultApiClient:
        api = server.build_api_from_env(parse_api_keys(self._keys_env))
        api.clock = clock
        loopback = _LoopbackServer(create_app(api))
        loopback.start()
        self._running = (api, loopback)
        return VaultApiClient(loopback.url, self.keys, "operator")

    @property
    def api(self) -> VaultApi:
        assert self._running is not None, "not started"
        return self._running[0]

    def stop(self) -> None:
        """Everything the process held goes: server, workers, catalog handle, Dagster instance."""
        if self._running is None:
            return
        api, loopback = self._running
        self._running = None
        loopback.stop()
        api.jobs.close()
        if api.promotions is not None:
            api.promotions.close()
        instance = getattr(api.jobs.runner, "instance", None)
        if instance is not None:
            instance.dispose()
        api.catalog.close()

    def restart(self, clock: Callable[[], datetime] = lambda: NOW) -> VaultApiClient:
        self.stop()
        return self.start(clock)


@pytest.fixture
def vault_serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[VaultServe]:
    served = VaultServe(tmp_path / "vault_home", monkeypatch)
    try:
        yield served
    finally:
        served.stop()


def _instant_runner(monkeypatch: pytest.MonkeyPatch) -> InstantRunner:
    """Jobs recorded, not run: for the tests about keys rather than runs."""
    runner = InstantRunner()
    monkeypatch.setattr(server, "build_runner", lambda _definitions: runner)
    return runner


def test_the_same_key_and_request_get_the_same_job_after_a_restart(vault_serve):
    api = vault_serve.start()
    key = "retry-" + secrets.token_hex(8)
    first = api.ingest("demo_cloudtrail", HOUR, NEXT_HOUR, idempotency_key=key)
    assert first.status_code == 202, first.text
    job_id = first.json()["job_id"]
    assert api.wait_for_job(job_id, timeout=120)["state"] == "completed"

    api = vault_serve.restart()  # nothing of the first process is left but its VAULT_HOME

    again = api.ingest("demo_cloudtrail", HOUR, NEXT_HOUR, idempotency_key=key)
    assert again.status_code == 202 and again.json()["job_id"] == job_id, again.text
    job = api.job(job_id)  # read back from the Dagster runs on $VAULT_HOME/dagster
    assert job["state"] == "completed" and len(job["runs"]) == 1  # no second run was started
    assert job["metrics"]["records_synced"] == 5

    other_request = api.ingest("demo_cloudtrail", NEXT_HOUR, LATER, idempotency_key=key)
    assert other_request.status_code == 422, other_request.text
    assert other_request.json()["error"] == "idempotency_key_reused" and job_id in other_request.json()["detail"]

    # Only a digest of the key was stored: not in the catalog file, its WAL, or the access log.
    stored = b"".join(path.read_bytes() for path in vault_serve.home.glob("catalog.db*"))
    assert key.encode() not in stored and stored  # (the catalog file is there and was read)
    assert key not in repr(vault_serve.api.catalog.list_access(limit=100))


def test_a_job_accepted_but_never_started_before_a_restart_runs_under_its_id(vault_serve, monkeypatch):
    runner = _instant_runner(monkeypatch)
    monkeypatch.setenv("VAULT_API_WORKERS", "0")  # accepted and queued, but no worker will take it
    api = vault_serve.start()
    key = "nightly-" + secrets.token_hex(8)
    job_id = api.submit("demo_cloudtrail", HOUR, LATER, idempotency_key=key)
    assert runner.launched == []

    monkeypatch.setenv("VAULT_API_WORKERS", "1")
    api = vault_serve.restart()  # the queue was in memory and is gone

    again = api.ingest("demo_cloudtrail", HOUR, LATER, idempotency_key=key)
    assert again.status_code == 202 and again.json()["job_id"] == job_id, again.text
    assert api.wait_for_job(job_id)["state"] == "completed"
    assert runner.launched == ["2026-01-01-05:00|demo_cloudtrail", "2026-01-01-06:00|demo_cloudtrail"]
    assert runner.runs_for_job(job_id)[0].run_id == job_id  # the first run still carries the job's id


def test_keys_expire_and_belong_to_the_principal_that_sent_them(vault_serve, monkeypatch):
    _instant_runner(monkeypatch)
    monkeypatch.setenv("VAULT_API_IDEMPOTENCY_TTL_HOURS", "1")
    now = [NOW]
    api = vault_serve.start(clock=lambda: now[0])
    key = "shared-" + secrets.token_hex(8)
    job_id = api.submit("demo_cloudtrail", HOUR, NEXT_HOUR, idempotency_key=key)
    # Another client happening to choose the same key has a key of its own.
    assert api.as_principal("other").submit("demo_cloudtrail", NEXT_HOUR, LATER, idempotency_key=key) != job_id

    now[0] = NOW + timedelta(minutes=59)
    api = vault_serve.restart(clock=lambda: now[0])
    assert api.submit("demo_cloudtrail", HOUR, NEXT_HOUR, idempotency_key=key) == job_id  # still within its hour
    assert api.ingest("demo_cloudtrail", NEXT_HOUR, LATER, idempotency_key=key).status_code == 422

    now[0] = NOW + timedelta(hours=1)
    api = vault_serve.restart(clock=lambda: now[0])
    renewed = api.submit("demo_cloudtrail", HOUR, NEXT_HOUR, idempotency_key=key)  # expired: forgotten
    assert renewed != job_id
    # ... and the key now names the new job, for as long as its own lifetime.
    assert api.ingest("demo_cloudtrail", NEXT_HOUR, LATER, idempotency_key=key).json()["error"] == "idempotency_key_reused"


def test_a_lifetime_that_is_not_a_positive_number_is_refused_naming_the_variable(vault_serve, monkeypatch):
    _instant_runner(monkeypatch)
    for wrong in ("0", "-1", "a day"):
        monkeypatch.setenv("VAULT_API_IDEMPOTENCY_TTL_HOURS", wrong)
        with pytest.raises(SystemExit, match="VAULT_API_IDEMPOTENCY_TTL_HOURS"):
            server.build_api_from_env(parse_api_keys(""))


def test_a_runner_without_a_catalog_store_says_what_is_missing():
    from vault_pipeline.api.jobs import JobService

    class _Unused(Runner):
        def launch(self, **_):
            raise AssertionError("not launched")

        def runs_for_job(self, job_id):
            return []

    jobs = JobService(_Unused(), workers=0)
    with pytest.raises(RuntimeError, match="IdempotencyKeys"):
        jobs.submit("demo_cloudtrail", ["2026-01-01-05:00"], idempotency_key="k")
    jobs.close()
