"""The ``vault`` command: operator entry points that are not Dagster's own CLI.

``vault demo`` runs the hourly job for every configured provider over the last complete hours
on the local Dagster instance (``$VAULT_HOME/dagster``), so the runs show up in ``make ui``,
and prints what was stored and where.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

LOCAL_INSTANCE_YAML = """\
telemetry:
  enabled: false
# dagster-daemon (`make ui` starts it) fails runs stuck STARTING or CANCELING. The default run
# launcher can neither check nor resume a run worker (so max_resume_run_attempts stays 0): runs
# whose process was killed while STARTED are failed by the vault's own commands instead.
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_resume_run_attempts: 0
  poll_interval_seconds: 60
"""
# The demo prints its own summary; step-level DEBUG lines are in the UI for whoever wants them.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def vault_home() -> Path:
    return Path(os.environ.get("VAULT_HOME", ".vault")).resolve()


def prepare_local_instance() -> Path:
    """``$VAULT_HOME/dagster`` as DAGSTER_HOME, created on first use, with run monitoring on.

    A ``dagster.yaml`` an earlier version wrote (telemetry only) is upgraded to
    LOCAL_INSTANCE_YAML; any other is the user's own and is left as it is, with a warning when
    it does not enable run monitoring. Runs left STARTED by a process that is gone (kill -9)
    are then marked failed (``defs/stale_runs.py``), so their partitions can be re-run.
    """
    import warnings

    home = vault_home() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    written_before = ("telemetry:\n  enabled: false\n",)  # what earlier versions wrote: ours to upgrade
    current = settings.read_text(encoding="utf-8") if settings.exists() else None
    if current is None or current in written_before:
        staged = settings.with_name(f".dagster.yaml.{os.getpid()}.tmp")
        staged.write_text(LOCAL_INSTANCE_YAML, encoding="utf-8")
        os.replace(staged, settings)  # a reader (the daemon, the UI) never sees half a file
    elif current != LOCAL_INSTANCE_YAML:
        import yaml

        try:
            monitoring = (yaml.safe_load(current) or {}).get("run_monitoring") or {}
            enabled = isinstance(monitoring, dict) and monitoring.get("enabled") is True
        except (yaml.YAMLError, AttributeError):
            enabled = False
        if not enabled:
            warnings.warn(
                f"{settings} is not the vault's and does not enable run monitoring, so dagster-daemon will not "
                "fail runs stuck starting: add `run_monitoring: {enabled: true, max_resume_run_attempts: 0}` "
                "to it (left unchanged)", stacklevel=2,
            )
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg

    from vault_pipeline.defs.stale_runs import fail_orphaned_runs

    try:
        with dg.DagsterInstance.get() as instance:
            fail_orphaned_runs(instance)
    except Exception as exc:  # noqa: BLE001 - housekeeping must not keep the command from running
        # The type only: a storage error may quote a connection string.
        warnings.warn(f"could not check {home} for runs left STARTED by killed processes "
                      f"({type(exc).__name__}); run `vault init-instance` to see why", stacklevel=2)
    return home


def last_complete_hours(count: int, now: datetime | None = None) -> list[str]:
    now = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    return [(now - timedelta(hours=n)).strftime("%Y-%m-%d-%H:00") for n in range(count, 0, -1)]


def run_demo(hours: int) -> int:
    prepare_local_instance()
    import dagster as dg

    from vault_pipeline.definitions import build_definitions
    from vault_pipeline.defs.ingestion.landing import landing_was_interrupted
    from vault_pipeline.defs.run_results import asset_metadata, check_outcomes
    from vault_pipeline.defs.schedules import HOURLY_JOB

    definitions = build_definitions()
    job = definitions.resolve_job_def(HOURLY_JOB)
    vault = definitions.resources["vault"]
    instance = dg.DagsterInstance.get()
    providers = sorted(vault.vault_config().providers)
    totals = {"runs": 0, "failed_runs": 0, "records": 0, "bytes": 0, "checks_passed": 0, "checks_failed": 0}
    print(f"vault demo: {len(providers)} providers x {hours} hours into {vault_home()}")
    for hour in last_complete_hours(hours):
        for provider in providers:
            key = dg.MultiPartitionKey({"hour": hour, "provider": provider})
            result = job.execute_in_process(
                partition_key=key, instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE
            )
            totals["runs"] += 1
            totals["failed_runs"] += int(not result.success)
            landing = asset_metadata(result, "raw_landing") or {}
            records, bytes_ = landing.get("records", 0), landing.get("bytes", 0)
            outcomes = check_outcomes(result).values()
            passed, failed = sum(outcomes), len(outcomes) - sum(outcomes)
            totals["records"] += records
            totals["bytes"] += bytes_
            totals["checks_passed"] += passed
            totals["checks_failed"] += failed
            state = "ok" if result.success else "FAILED"
            print(f"  {hour}|{provider:<18} {state:<6} records={records:<7} bytes={bytes_:<9} checks {passed} passed, {failed} failed  run {result.run_id[:8]}")
            if landing_was_interrupted():  # SIGTERM/SIGINT while fetching: stop, do not start the next partition
                print("vault demo: interrupted (SIGTERM/SIGINT); the partition above failed cleanly, nothing of it was indexed")
                return 130
    home = vault_home()
    from vault_pipeline.defs.integrity.verification import verify_vault

    kinds = {name: provider.kind for name, provider in vault.vault_config().providers.items()}
    proof = verify_vault(store=vault.object_store(), catalog=vault.catalog(), verifier=vault.ledger_signer().verifier(),
                         lake=vault.lake(), kinds=kinds)
    print(
        f"\n{totals['runs']} runs ({totals['failed_runs']} failed): {totals['records']} records, "
        f"{totals['bytes'] / 1e6:.2f} MB landed; checks {totals['checks_passed']} passed, {totals['checks_failed']} failed.\n"
        f"  raw objects    {home / 'objects' / 'raw'}\n"
        f"  catalog        {home / 'catalog.db'}\n"
        f"  delta tables   {home / 'lake'}\n"
        f"  reports        {home / 'objects' / 'reports'}  (dead letters under objects/dlq)\n"
        f"  ledger         {home / 'objects' / 'ledger'}  (public key {home / 'ledger.pub'})\n"
        f"  traces         {home / 'traces.jsonl'}\n"
        f"vault verify: {'OK' if proof.clean else 'FAIL'} {proof.summary()}\n"
        f"Open the Dagster UI on these runs with: make ui   (then http://127.0.0.1:3000)"
    )
    return 0 if totals["failed_runs"] == 0 else 1


def _hour_key(text: str) -> str | None:
    from vault_pipeline.core.windows import HOUR_KEY_FORMAT, parse_timestamp

    try:
        return datetime.strptime(text, HOUR_KEY_FORMAT).strftime(HOUR_KEY_FORMAT)
    except ValueError:
        moment = parse_timestamp(text)
        return moment.strftime("%Y-%m-%d-%H:00") if moment else None


def run_verify(providers: list[str] | None, since: str | None, as_json: bool, workers: int | None = None) -> int:
    """Exit 0 when everything verifies, 1 with a report naming every finding, 2 when the
    configuration or the selection is wrong, 3 when the selection holds nothing to verify."""
    import json

    from vault_pipeline.defs.integrity.coverage import providers_with_data
    from vault_pipeline.defs.integrity.verification import verify_vault
    from vault_pipeline.defs.resources import resources_for_env
    from vault_pipeline.providers.config import ConfigError

    vault = resources_for_env()["vault"]
    try:
        config = vault.vault_config()
    except ConfigError as exc:
        return _usage_error(f"cannot read the vault configuration: {exc}")
    kinds = {name: provider.kind for name, provider in config.providers.items()}
    store, catalog = vault.object_store(), vault.catalog()
    if providers:
        known = providers_with_data(catalog, store, kinds)
        unknown = sorted(set(providers) - known)
        if unknown:
            return _usage_error(f"unknown provider(s) {', '.join(unknown)}: the vault knows "
                                f"{', '.join(sorted(known)) or 'no providers yet'} (vault.yaml, ledger, catalog, raw/)")
    report = verify_vault(store=store, catalog=catalog, verifier=vault.ledger_signer().verifier(),
                          providers=providers, since_partition_hour=since, workers=workers,
                          lake=vault.lake(), kinds=kinds, in_progress=_partitions_in_progress())
    if as_json:
        print(json.dumps({"clean": report.clean, "checked_anything": report.checked_anything,
                          "summary": report.summary(), "in_progress": report.in_progress,
                          "findings": [f.to_dict() for f in report.findings]}, indent=1))
    else:
        for finding in report.findings:
            where = finding.partition or (f"ledger #{finding.sequence}" if finding.sequence else "-")
            print(f"FINDING {finding.type:<24} {finding.provider} {where}: {finding.detail}")
        label = "OK   " if report.clean else ("NOTHING VERIFIED " if not report.findings else "FAIL ")
        print(label + report.summary())
    if report.findings:
        return 1
    return 0 if report.clean else 3


def _usage_error(message: str) -> int:
    print(f"vault: error: {message}", file=sys.stderr)
    return 2


def _partitions_in_progress() -> set[str]:
    """Partitions a run is writing now, from the Dagster instance the runs are recorded on
    (``$DAGSTER_HOME``, else the embedded ``$VAULT_HOME/dagster``); none when there is no instance."""
    home = os.environ.get("DAGSTER_HOME") or str(vault_home() / "dagster")
    if not (Path(home) / "dagster.yaml").exists():
        return set()
    os.environ["DAGSTER_HOME"] = home
    import dagster as dg

    from vault_pipeline.defs.partitions import partitions_in_progress

    from vault_pipeline.defs.stale_runs import fail_orphaned_runs

    with dg.DagsterInstance.get() as instance:
        fail_orphaned_runs(instance)  # a run killed with -9 is not in progress: its partition is unsealed
        return partitions_in_progress(instance)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vault", description="vault_pipeline operator commands")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the hourly job for every provider over the last complete hours")
    demo.add_argument("--hours", type=int, default=3, help="how many complete hours (default 3)")
    commands.add_parser("init-instance", help="create $VAULT_HOME/dagster for the Dagster UI and CLI")
    verify = commands.add_parser("verify", help="re-hash everything and check it against the signed ledger")
    verify.add_argument("--provider", action="append", help="only this provider (repeatable)")
    verify.add_argument("--since", help="only partitions from this hour on (YYYY-MM-DD-HH:00 or ISO-8601)")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument("--workers", type=int, help="processes re-hashing a large partition side by side "
                        "(default: one per core; 1: this process only)")
    serve = commands.add_parser("serve", help="run the HTTP API (FastAPI + uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.hours < 1 or args.hours > 168:
            parser.error("--hours must be between 1 and 168")
        return run_demo(args.hours)
    if args.command == "verify":
        since = _hour_key(args.since) if args.since else None
        if args.since and since is None:
            parser.error(f"--since {args.since!r} is not an hour (YYYY-MM-DD-HH:00) or an ISO-8601 time")
        if args.workers is not None and args.workers < 1:
            parser.error("--workers must be at least 1")
        return run_verify(args.provider, since, args.json, args.workers)
    if args.command == "serve":
        from vault_pipeline.api.server import serve

        return serve(args.host, args.port)
    if args.command == "init-instance":
        home = prepare_local_instance()
        import dagster as dg

        # Create the instance's SQLite storage now: `dagster dev` starts the webserver and the
        # daemon together, and on an empty home both race to create the same tables.
        dg.DagsterInstance.get().dispose()
        print(home)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
