"""The ``vault`` command: what an operator runs besides Dagster's own CLI.

``vault run`` runs the hourly graph for chosen hours and providers, ``vault demo`` for the last
complete hours (both on ``$VAULT_HOME/dagster``, so the runs show up in ``make ui``),
``vault verify`` re-proves the vault, ``vault serve`` starts the HTTP API. A configuration,
usage or connection error is printed as one or two lines naming what to fix, with exit code 2;
the traceback only with ``--debug`` (or ``VAULT_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import os
import sys
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


def run_demo(hours: int, providers: list[str] | None = None) -> int:
    """The hourly job for the providers over the last complete hours, then ``vault verify``."""
    prepare_local_instance()
    from vault_pipeline.defs.integrity.verification import verify_vault
    from vault_pipeline.hourly_runs import HourlyRunner, last_complete_hours, print_outcome, print_summary

    runner = HourlyRunner(show_steps=False)
    known = runner.providers()
    configured = runner.vault.vault_config().providers
    # Push providers hold what was pushed; the demo pulls (name one to run its hours anyway).
    selected = providers or [name for name in known if configured[name].type != "push"]
    unknown = sorted(set(selected) - set(known))
    if unknown:
        return _usage_error(f"unknown provider(s) {', '.join(unknown)}; vault.yaml configures {', '.join(known)}")
    vault = runner.vault
    _record_configuration(vault, "cli:vault demo")
    print(f"vault demo: {len(selected)} providers x {hours} hours into {vault_home()}")
    outcomes = []
    for hour in last_complete_hours(hours):
        for provider in selected:
            outcomes.append(runner.run(hour, provider))
            print_outcome(outcomes[-1], sys.stdout)
            _stop_if_interrupted()
    print_summary(outcomes, sys.stdout)
    kinds = {name: provider.kind for name, provider in vault.vault_config().providers.items()}
    catalog = vault.catalog()
    started = _now()
    proof = verify_vault(store=vault.object_store(), catalog=catalog, verifier=vault.ledger_signer().verifier(),
                         lake=vault.lake(), kinds=kinds)
    _store_verify_result(vault, proof, started, {"providers": sorted(selected), "since": None, "workers": None},
                         run_id="cli:vault demo")
    home = vault_home()
    print(
        f"The vault now holds {catalog.count_records()} records, {catalog.count_dead_letters()} of them dead letters.\n"
        f"  raw objects    {home / 'objects' / 'raw'}\n"
        f"  catalog        {home / 'catalog.db'}\n"
        f"  delta tables   {home / 'lake'}\n"
        f"  reports        {home / 'objects' / 'reports'}  (dead letters under objects/dlq)\n"
        f"  ledger         {home / 'objects' / 'ledger'}  (public key {home / 'ledger.pub'})\n"
        f"  traces         {home / 'traces.jsonl'}\n"
        f"vault verify: {'OK' if proof.clean else 'FAIL'} {proof.summary()}\n"
        f"Open the Dagster UI on these runs with: make ui   (then http://127.0.0.1:3000)"
    )
    return 0 if all(o.success for o in outcomes) and proof.clean else 1


def run_hours(providers: list[str], first: str, last: str | None) -> int:
    """``vault run``: check the request, then run the hourly graph hour by hour, step by step."""
    from vault_pipeline.core.windows import parse_hour
    from vault_pipeline.hourly_runs import HourlyRunner, RunRequestError, check_request, print_outcome, print_summary

    try:
        start = parse_hour(first)
        end = parse_hour(last) if last else start
    except ValueError as exc:
        return _usage_error(str(exc))
    prepare_local_instance()
    runner = HourlyRunner()
    try:
        hours = check_request(providers, runner.providers(), start, end,
                              first_hour=runner.vault.vault_config().partitions.start_time)
    except RunRequestError as exc:
        return _usage_error(str(exc))
    _record_configuration(runner.vault, "cli:vault run")
    outcomes = []
    for hour in hours:
        for provider in providers:
            print(f"{hour}|{provider}: running the hourly graph", flush=True)
            outcomes.append(runner.run(hour, provider))
            print_outcome(outcomes[-1], sys.stdout)
            _stop_if_interrupted()
    print_summary(outcomes, sys.stdout)
    print("Runs are in the Dagster UI (make ui); check everything with: vault verify")
    return 0 if all(o.success for o in outcomes) else 1


def _stop_if_interrupted() -> None:
    """SIGTERM/SIGINT while a provider was read fails that partition at once (landing turns the
    interrupt into a non-retryable failure); stop here too instead of starting the next one."""
    from vault_pipeline.defs.ingestion.landing import landing_was_interrupted

    if landing_was_interrupted():
        raise KeyboardInterrupt  # main() reports "vault: interrupted", exit 130


def _hour_key(text: str) -> str | None:
    from vault_pipeline.core.windows import parse_hour

    try:
        return parse_hour(text).strftime("%Y-%m-%d-%H:00")
    except ValueError:
        return None


def run_verify(providers: list[str] | None, since: str | None, as_json: bool, workers: int | None = None) -> int:
    """Exit 0 when everything verifies, 1 with a report naming every finding, 2 when the
    configuration or the selection is wrong, 3 when the selection holds nothing to verify."""
    import json

    from vault_pipeline.defs.integrity.coverage import providers_with_data
    from vault_pipeline.defs.integrity.verification import verify_vault
    from vault_pipeline.defs.resources import vault_resource
    from vault_pipeline.providers.config import ConfigError

    vault = vault_resource()
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
    started = _now()
    report = verify_vault(store=store, catalog=catalog, verifier=vault.ledger_signer().verifier(),
                          providers=providers, since_partition_hour=since, workers=workers,
                          lake=vault.lake(), kinds=kinds, in_progress=_partitions_in_progress())
    _store_verify_result(vault, report, started, {"providers": sorted(providers) if providers else None,
                                                  "since": since, "workers": workers})
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


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _record_configuration(vault, run_id: str) -> None:
    """The effective vault.yaml into the ledger's vault chain when it changed (audit trail);
    a failure to record warns and never stops the command."""
    from vault_pipeline.reports.audit_trail import record_vault_settings

    record_vault_settings(vault, run_id=run_id)


def _store_verify_result(vault, report, started, selection: dict, run_id: str = "cli:vault verify") -> None:
    """Keep the run's result (reports/_vault/verify/ + the artifact index) for reports and the
    dashboard. Storing is not verifying: a failure warns on stderr and leaves the exit code alone."""
    from vault_pipeline.reports.verify_runs import store_verify_result, verify_result

    try:
        result = verify_result(report, started_at=started, finished_at=_now(), selection=selection)
        store_verify_result(vault.object_store(), vault.catalog(), result, run_id=run_id)
    except Exception as exc:  # noqa: BLE001 - any storage failure: warn, the verdict stands
        # The type only: a storage error may quote a connection string.
        print(f"vault: warning: the verify result could not be stored ({type(exc).__name__})", file=sys.stderr)


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


def _parser() -> argparse.ArgumentParser:
    defaults = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="vault", description="vault_pipeline operator commands")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also VAULT_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", formatter_class=defaults,
        help="run the hourly graph (landing, checks, index, lake, integrity, ledger, promotion) for hours of providers",
        description="Run the hourly graph for each hour from --hour to --to (both included) and each --provider, "
                    "on the vault's Dagster instance, printing each step as it finishes. Hours are UTC: "
                    "2026-01-01T00, 2026-01-01T00:00Z or 2026-01-01-00:00.")
    run.add_argument("--provider", action="append", required=True, help="a provider of vault.yaml (repeatable)")
    run.add_argument("--hour", required=True, help="the (first) hour, e.g. 2026-01-01T00")
    run.add_argument("--to", help="the last hour, included (default: --hour)")
    demo = commands.add_parser("demo", formatter_class=defaults,
                               help="run the hourly graph for the providers over the last complete hours")
    demo.add_argument("--hours", type=int, default=3, help="how many complete hours")
    demo.add_argument("--provider", action="append", help="only this provider (repeatable; default: all of vault.yaml)")
    commands.add_parser("init-instance", help="create $VAULT_HOME/dagster for the Dagster UI and CLI")
    verify = commands.add_parser("verify", help="re-hash everything and check it against the signed ledger")
    verify.add_argument("--provider", action="append", help="only this provider (repeatable)")
    verify.add_argument("--since", help="only partitions from this hour on (2026-01-01T00, ISO-8601 with Z, "
                        "or 2026-01-01-00:00)")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument("--workers", type=int, help="processes re-hashing a large partition side by side "
                        "(default: one per core; 1: this process only)")
    lake = commands.add_parser("lake", help="the Delta lake's lifecycle: a table's versions (time travel)")
    lake_commands = lake.add_subparsers(dest="lake_command", required=True)
    history = lake_commands.add_parser(
        "history", formatter_class=defaults, help="list a lake table's versions, newest first",
        description="List the versions of a Delta table with operation, time (UTC) and row counts: what "
                    "analytics reads can time-travel to with as_of / version.")
    history.add_argument("table", help="a lake table, e.g. audit_events")
    history.add_argument("--limit", type=int, default=20, help="at most this many versions")
    history.add_argument("--json", action="store_true", help="print the versions as JSON")
    from vault_pipeline.reports.cli import add_report_parser

    add_report_parser(commands)
    from vault_pipeline.defs.insights.cli import add_insights_parser

    add_insights_parser(commands)
    from vault_pipeline.push.cli import add_push_parser

    add_push_parser(commands)
    from vault_pipeline.alerts.cli import add_alerts_parser

    add_alerts_parser(commands)
    from vault_pipeline.doctor import add_doctor_parser

    add_doctor_parser(commands)
    serve = commands.add_parser("serve", formatter_class=defaults, help="run the HTTP API (FastAPI + uvicorn)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("VAULT_DEBUG", "") not in ("", "0", "false")
    if debug:
        os.environ["VAULT_DEBUG"] = "1"  # what runs below (Dagster's console log) shows everything too
    try:
        return _dispatch(parser, args)
    except KeyboardInterrupt:
        print("vault: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug or not _is_operator_error(exc):
            raise
        return _usage_error(f"{_first_lines(exc)}\n  (run with --debug or VAULT_DEBUG=1 for the traceback)")


def _is_operator_error(exc: Exception) -> bool:
    """Errors an operator fixes (configuration, a service that does not answer, a file), not bugs."""
    from vault_pipeline.providers.config import ConfigError
    from vault_pipeline.storage.catalog import CatalogError
    from vault_pipeline.storage.lake import LakeError
    from vault_pipeline.storage.object_store import ObjectStoreError

    return isinstance(exc, (ConfigError, CatalogError, LakeError, ObjectStoreError, OSError))


def _first_lines(exc: Exception) -> str:
    """What is wrong, in at most two lines: operator errors lead with the cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    return "\n  ".join(lines[:2])


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "run":
        return run_hours(args.provider, args.hour, args.to)
    if args.command == "demo":
        if args.hours < 1 or args.hours > 168:
            parser.error("--hours must be between 1 and 168")
        return run_demo(args.hours, args.provider)
    if args.command == "verify":
        since = _hour_key(args.since) if args.since else None
        if args.since and since is None:
            from vault_pipeline.core.windows import HOUR_FORMATS_HELP

            parser.error(f"--since {args.since!r} is not {HOUR_FORMATS_HELP}")
        if args.workers is not None and args.workers < 1:
            parser.error("--workers must be at least 1")
        return run_verify(args.provider, since, args.json, args.workers)
    if args.command == "lake":  # vault lake history TABLE
        from vault_pipeline.defs.analytics.maintenance import known_tables, print_history
        from vault_pipeline.defs.resources import vault_resource
        from vault_pipeline.providers.config import ConfigError

        if args.limit < 1:
            parser.error("--limit must be at least 1")
        vault = vault_resource()
        lake = vault.lake()
        try:
            config = vault.vault_config()
        except ConfigError:
            config = None  # the lake is still readable; only lake.tables are not known then
        try:
            exists = lake.exists(args.table)
        except ValueError as exc:
            exists, reason = False, str(exc)
        else:
            reason = f"no lake table {args.table!r} at {lake.root}"
        if not exists:
            known = known_tables(lake, config)
            return _usage_error(f"{reason}; the lake holds: {', '.join(known) or 'no tables yet'}")
        print_history(lake.history(args.table, limit=args.limit), args.table, sys.stdout, as_json=args.json)
        return 0
    if args.command == "report":
        from vault_pipeline.reports.cli import run_report

        return run_report(args)
    if args.command == "push":  # vault push junit FILE... --provider P
        from vault_pipeline.push.cli import run_push

        return run_push(args)
    if args.command == "alerts":  # vault alerts [list|retry|test]
        from vault_pipeline.alerts.cli import run_alerts

        return run_alerts(args)
    if args.command == "doctor":  # vault doctor [--json]
        from vault_pipeline.doctor import run_doctor

        return run_doctor(args)
    if args.command == "insights":  # vault insights refresh [--suite S]
        from vault_pipeline.defs.insights.cli import run_insights

        return run_insights(args)
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
