"""``vault serve``: the API wired to the deployment, served by uvicorn.

Storage comes from the same ``vault`` resource the asset graph uses (``VAULT_ENV``). Jobs run
on the embedded runner (in this process, on ``$VAULT_HOME/dagster``) unless
``VAULT_JOB_BACKEND=graphql``, which submits them to the Dagster webserver at
``VAULT_DAGSTER_URL`` through its run queue. With no ``VAULT_API_KEYS`` on the embedded
default, an admin key is generated, printed once, and the server listens on loopback only.
Idempotency keys are kept in the catalog for ``VAULT_API_IDEMPOTENCY_TTL_HOURS`` (24).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

from vault_pipeline.api.app import ApiSettings, VaultApi, create_app
from vault_pipeline.api.auth import KeyRing, key_ring_from_env
from vault_pipeline.api.jobs import JobService
from vault_pipeline.api.promotions import PromotionService
from vault_pipeline.api.runs import Runner
from vault_pipeline.reports.service import ReportService


def build_runner(definitions) -> Runner:
    backend = os.environ.get("VAULT_JOB_BACKEND", "embedded")
    if backend == "graphql":
        from vault_pipeline.api.graphql_runner import GraphQLRunner
        from vault_pipeline.defs.run_queue import partition_run_tags

        # Each run names the Delta table it loads, for the queue's one-writer-per-table limit.
        return GraphQLRunner.from_url(os.environ.get("VAULT_DAGSTER_URL", "http://127.0.0.1:3000"),
                                      run_tags=partition_run_tags)
    if backend != "embedded":
        raise SystemExit(f"VAULT_JOB_BACKEND={backend!r}: use 'embedded' or 'graphql'")
    import dagster as dg

    from vault_pipeline.api.runs import EmbeddedRunner
    from vault_pipeline.cli import prepare_local_instance
    from vault_pipeline.defs.schedules import HOURLY_JOB

    prepare_local_instance()
    return EmbeddedRunner(definitions, dg.DagsterInstance.get(), HOURLY_JOB)


def _positive_hours(name: str, default: str) -> float:
    text = os.environ.get(name, default)
    try:
        hours = float(text)
    except ValueError:
        hours = 0.0
    if not hours > 0:
        raise SystemExit(f"{name}={text!r}: give a positive number of hours, e.g. {default}")
    return hours


def session_secret(home: Path) -> bytes:
    """The dashboard's cookie-signing secret: ``VAULT_SESSION_SECRET``, else 32 random bytes kept
    in ``$VAULT_HOME/session-secret`` (mode 0600), so sessions survive nothing but a new secret."""
    configured = os.environ.get("VAULT_SESSION_SECRET", "")
    if configured:
        if len(configured.encode()) < 32:
            raise SystemExit("VAULT_SESSION_SECRET must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return configured.encode()
    path = home / "session-secret"
    if path.exists():
        try:
            return bytes.fromhex(path.read_text().strip())
        except ValueError:
            raise SystemExit(f"{path} is not a hex secret: delete it to have a new one generated") from None
    home.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret.hex() + "\n")
    return secret


def build_api_from_env(keys: KeyRing) -> VaultApi:
    from vault_pipeline.definitions import build_definitions
    from vault_pipeline.defs.resources import resolved
    from vault_pipeline.defs.promotion.masking import masking_settings
    from vault_pipeline.providers.config import load_config

    definitions = build_definitions()
    vault = resolved(definitions.resources["vault"])  # dg.EnvVar settings as their values
    jobs = JobService(
        build_runner(definitions),
        workers=int(os.environ.get("VAULT_API_WORKERS", "1")),
        max_queue=int(os.environ.get("VAULT_API_MAX_QUEUE", "16")),
    )
    promotions = PromotionService(
        catalog=vault.catalog(), store=vault.object_store(), signer=vault.ledger_signer, config=load_config,
        masking=lambda config: masking_settings(config.policies, Path(vault.home)),
        max_queue=int(os.environ.get("VAULT_API_MAX_PROMOTIONS", "32")),
    )
    return VaultApi(
        catalog=vault.catalog(), store=vault.object_store(), jobs=jobs, keys=keys, config=load_config,
        settings=ApiSettings(max_range_hours=int(os.environ.get("VAULT_API_MAX_RANGE_HOURS", "168")),
                             idempotency_ttl_s=_positive_hours("VAULT_API_IDEMPOTENCY_TTL_HOURS", "24") * 3600),
        promotions=promotions, lake=vault.lake(), session_secret=session_secret(Path(vault.home)),
        reports=ReportService(catalog=vault.catalog(), store=vault.object_store(), lake=vault.lake(),
                              signer=vault.ledger_signer(), config=load_config,
                              max_queue=int(os.environ.get("VAULT_API_MAX_REPORTS", "8"))),
    )


def serve(host: str, port: int) -> int:
    import uvicorn

    home = Path(os.environ.get("VAULT_HOME", ".vault")).resolve()
    keys, new_key = key_ring_from_env(home)
    if not os.environ.get("VAULT_API_KEYS"):
        if not ipaddress.ip_address(host if host != "localhost" else "127.0.0.1").is_loopback:
            print(f"no VAULT_API_KEYS configured: listening on 127.0.0.1 instead of {host}")
            host = "127.0.0.1"
        if new_key:
            print(f"generated an admin API key (stored in {home / 'api-keys'}, shown only now):\n  {new_key}")
        else:
            print(f"using the admin API key in {home / 'api-keys'}")
    api = build_api_from_env(keys)
    from vault_pipeline.reports.audit_trail import record_serve_start

    record_serve_start(keys)  # audit trail: vault.yaml and the key ring (names, roles) when they changed
    try:
        uvicorn.run(create_app(api), host=host, port=port, log_level="info", access_log=False)
    finally:
        api.jobs.close()
        for service in (api.promotions, api.reports):
            if service is not None:
                service.close()
    return 0
