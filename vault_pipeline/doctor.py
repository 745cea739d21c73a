"""``vault doctor``: is this vault able to work, and if not, what to do about it.

Before a run fails at 3 a.m., an operator asks the vault itself: ``vault.yaml`` loads and every
secret it names (``*_env`` keys) is in the environment; the object store, the catalog, the lake
and the Dagster instance answer; the ledger's signing key is there, safe, and the key the
chains were signed with; on ``VAULT_ENV=prod`` the S3 bucket has Object Lock; and this
machine's clock agrees with the store's. Each finding is one line: ``ok``, ``warn`` or
``fail``, what was found, and what to do. Every check that crosses the network waits at most
``--timeout`` seconds (clients with short timeouts and no retries, and a deadline around each
check), so doctor answers even when everything is down. It only reads: nothing is created,
written or repaired. Secret values are never printed; every line is also scrubbed of the
values of the variables it knows to be secret. Exit 0 when nothing failed (warnings
included), 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

OK, WARN, FAIL = "ok", "warn", "fail"
DEFAULT_TIMEOUT_S = 5.0
# Beyond this the vault's hours, ledger times and S3 request signatures drift from the store's.
SKEW_WARN_S, SKEW_FAIL_S = 5.0, 300.0
DAEMON_FRESH_S = 120.0
PROD_VARIABLES = {"VAULT_S3_BUCKET": "the S3 bucket of the objects and the lake",
                  "VAULT_MONGO_URI": "the MongoDB catalog"}
# Environment variables whose values are secret even though vault.yaml does not name them.
KNOWN_SECRETS = ("VAULT_MONGO_URI", "VAULT_LEDGER_KEY", "VAULT_API_KEYS", "VAULT_SESSION_SECRET",
                 "VAULT_PSEUDONYM_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True, slots=True)
class Finding:
    status: str  # ok | warn | fail
    check: str  # config, secrets, object_store, object_lock, catalog, lake, dagster, ledger_key, clock
    what: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.status:<5} {self.check:<12} {self.what}" + (f" -> {self.fix}" if self.fix else "")


class CheckTimedOut(TimeoutError):
    pass


def within(seconds: float, work: Callable[[], Any]) -> Any:
    """``work()`` on a daemon thread, or CheckTimedOut after ``seconds``: a client that ignores its
    own timeout (a DNS lookup, a storage driver) cannot hang doctor."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="vault-doctor-check", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise CheckTimedOut(f"no answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def secret_variables(document: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(where, value) of every ``*_env`` key in vault.yaml, e.g. ``providers.acme.auth.token_env``."""
    if isinstance(document, Mapping):
        for key, value in document.items():
            where = f"{path}.{key}" if path else str(key)
            if str(key).endswith("_env"):
                yield where, value
            else:
                yield from secret_variables(value, where)
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from secret_variables(value, f"{path}[{index}]")


def _first_line(exc: BaseException, limit: int = 240) -> str:
    """The cause in one line: drivers' messages can run to topology dumps and ANSI-coloured trees."""
    lines = [_ANSI.sub("", line).strip() for line in str(exc).splitlines()]
    text = next((line for line in lines if line), type(exc).__name__).replace(" -> ", ": ")
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


class Doctor:
    """Runs the checks against the deployment the environment describes (``VAULT_ENV``, ``VAULT_HOME``, ...)."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.env = dict(os.environ)  # read as the vault's own commands read it
        self.timeout_s, self.now = timeout_s, now
        self.deployment = self.env.get("VAULT_ENV", "local") or "local"
        self.home = Path(self.env.get("VAULT_HOME", ".vault")).resolve()
        self.config_path = Path(self.env.get("VAULT_CONFIG", "vault.yaml"))
        self.findings: list[Finding] = []
        self._secrets: set[str] = set()
        self._config = None
        self._store = None  # the bounded object store, once it answered
        self._server_time: tuple[datetime, float] | None = None  # (store's time, local time at the answer)
        self._catalog = None
        self._document: Any = None  # vault.yaml as parsed YAML, for the *_env keys
        self._newest_run: float | None = None

    # reporting ------------------------------------------------------------------------------
    def add(self, status: str, check: str, what: str, fix: str = "") -> None:
        self.findings.append(Finding(status, check, self._scrub(what), self._scrub(fix)))

    def _scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    @property
    def failed(self) -> bool:
        return any(f.status == FAIL for f in self.findings)

    def summary(self) -> dict[str, int]:
        return {status: sum(f.status == status for f in self.findings) for status in (OK, WARN, FAIL)}

    # running --------------------------------------------------------------------------------
    def run(self) -> list[Finding]:
        self._learn_secrets()
        if self.deployment not in ("local", "prod"):
            self.add(FAIL, "config", f"VAULT_ENV={self.deployment!r} is not a deployment",
                     "set VAULT_ENV to local (the embedded default) or prod")
            return self.findings
        self._check_config()
        self._check_secrets()
        with ExitStack() as stack:
            vault = self._resource(stack)
            self._check_object_store(vault)
            if self.deployment == "prod":
                self._check_object_lock(vault)
            self._check_catalog(vault, stack)
            self._check_lake(vault)
            self._check_dagster()
            self._check_ledger_key()
            self._check_clock()
        return self.findings

    def _learn_secrets(self) -> None:
        names = set(KNOWN_SECRETS)
        try:
            import yaml

            document = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except Exception:  # noqa: BLE001 - the config check says what is wrong with the file
            document = None
        names |= {value for _, value in secret_variables(document) if isinstance(value, str)}
        for name in names:
            value = self.env.get(name, "")
            if len(value) >= 4:
                self._secrets.add(value)
        uri = self.env.get("VAULT_MONGO_URI", "")
        try:
            password = unquote(urlsplit(uri).password or "") if "://" in uri else ""
        except ValueError:  # not a URI urllib can split: its value as a whole is scrubbed anyway
            password = ""
        if len(password) >= 4:
            self._secrets.add(password)
        self._document = document

    # configuration --------------------------------------------------------------------------
    def _check_config(self) -> None:
        from vault_pipeline.providers.config import ConfigError, load_config

        try:
            self._config = load_config(self.config_path)
        except ConfigError as exc:
            self.add(FAIL, "config", str(exc).splitlines()[0],
                     f"correct {self.config_path} where the message points (docs/configuration.md lists every key)")
            return
        providers = sorted(self._config.providers)
        self.add(OK, "config", f"{self.config_path} loads: {len(providers)} providers ({', '.join(providers)})")

    def _check_secrets(self) -> None:
        named = list(secret_variables(self._document))
        for where, name in named:
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                self.add(FAIL, "secrets", f"{where} in {self.config_path} must name an environment variable",
                         f"write the variable's name there (e.g. {where}: ACME_TOKEN), never the secret itself")
            elif self.env.get(name):
                self.add(OK, "secrets", f"{name} is set (named by {where}; its value is not shown)")
            else:
                self.add(FAIL, "secrets", f"{name} is not set (named by {where} in {self.config_path})",
                         f"export {name} in the environment of vault serve, dagster-daemon and the run workers")
        if not named and self._document is not None:
            self.add(OK, "secrets", f"{self.config_path} names no secret environment variables")
        if self.deployment == "prod":
            for name, what in PROD_VARIABLES.items():
                if not self.env.get(name):
                    self.add(FAIL, "secrets", f"{name} is not set: VAULT_ENV=prod needs it for {what}",
                             f"export {name} (see README, deployments)")

    def _resource(self, stack: ExitStack):
        """The deployment's vault resource with its environment variables resolved, or None."""
        from vault_pipeline.defs.resources import resources_for_env

        if self.deployment == "prod" and any(not self.env.get(name) for name in PROD_VARIABLES):
            return None
        try:
            vault = resources_for_env(self.deployment)["vault"]
            # Resolved as a run resolves it: dg.EnvVar settings become their values.
            return stack.enter_context(vault.process_config_and_initialize_cm())
        except Exception as exc:  # noqa: BLE001 - reported as a finding, never a traceback
            self.add(FAIL, "config", f"the {self.deployment} storage settings do not resolve: {_first_line(exc)}",
                     "check the VAULT_* variables of the deployment (README, deployments)")
            return None

    # storage --------------------------------------------------------------------------------
    def _not_checked(self, what: str) -> None:
        self.add(FAIL, what, "not checked: the deployment's settings are incomplete (see above)",
                 "fix the settings named above, then run vault doctor again")

    def _check_object_store(self, vault) -> None:
        if vault is None:
            return self._not_checked("object_store")
        if vault.object_store_backend == "local":
            root = self.home / "objects"
            if not root.is_dir():
                self.add(WARN, "object_store", f"no object directory yet at {root}",
                         "run `vault demo` or `vault run` to create the vault there (or set VAULT_HOME)")
                return
            if not os.access(root, os.R_OK | os.W_OK | os.X_OK):
                self.add(FAIL, "object_store", f"{root} is not readable and writable by this user",
                         f"give the vault's user access: chown -R $(id -un) {root}")
                return
            store = vault.object_store()
            store.exists("healthz")
            self._store = store
            self.add(OK, "object_store", f"local directory {store.uri()} is readable and writable")
            return
        try:
            store = vault.object_store().with_timeout(self.timeout_s)
            started = time.time()
            server_time = within(self.timeout_s * 2, store.server_time)
        except Exception as exc:  # noqa: BLE001
            self.add(FAIL, "object_store", f"S3 bucket {vault.bucket} does not answer: {_first_line(exc)}",
                     "check VAULT_S3_BUCKET, AWS_ENDPOINT_URL / AWS_REGION, the credentials and the network path to S3")
            return
        self._store = store
        if server_time is not None:
            self._server_time = (server_time, (started + time.time()) / 2)
        self.add(OK, "object_store", f"S3 bucket {vault.bucket} answers ({store.uri()})")

    def _check_object_lock(self, vault) -> None:
        if self._store is None:
            self.add(FAIL, "object_lock", "not checked: the object store did not answer",
                     "fix the object store first")
            return
        try:
            facts = within(self.timeout_s * 2, self._store.immutability)
        except Exception as exc:  # noqa: BLE001
            self.add(FAIL, "object_lock", f"cannot read the Object Lock configuration of {vault.bucket}: "
                     f"{_first_line(exc)}", "grant s3:GetBucketObjectLockConfiguration and s3:GetBucketVersioning")
            return
        if facts.get("object_lock"):
            retention = facts.get("default_retention") or "none (the vault locks each retained object itself)"
            self.add(OK, "object_lock", f"Object Lock is on for bucket {vault.bucket}: default retention {retention}, "
                     f"versioning {facts.get('versioning')}")
        else:
            self.add(WARN, "object_lock",
                     f"bucket {vault.bucket} has no Object Lock (versioning {facts.get('versioning')}): anyone with "
                     "write access can overwrite or delete raw objects; `vault verify` detects it, nothing prevents it",
                     "enable Object Lock on the bucket (aws s3api put-object-lock-configuration, or a new bucket "
                     "created with --object-lock-enabled-for-bucket) and set a COMPLIANCE default retention")

    def _check_catalog(self, vault, stack: ExitStack) -> None:
        if vault is None:
            return self._not_checked("catalog")
        if vault.catalog_backend == "sqlite":
            path = self.home / "catalog.db"
            if not path.exists():
                self.add(WARN, "catalog", f"no catalog yet at {path}", "run `vault demo` or `vault run` to create it")
                return
            where = f"SQLite catalog {path}"
            open_catalog = vault.catalog
        else:
            from vault_pipeline.storage.mongo_catalog import MongoCatalog, redact_uri

            where = f"MongoDB catalog {redact_uri(vault.mongo_uri)} (database {vault.mongo_database})"
            milliseconds = int(self.timeout_s * 1000)

            def open_catalog():
                catalog = MongoCatalog.from_uri(vault.mongo_uri, vault.mongo_database,
                                                serverSelectionTimeoutMS=milliseconds, connectTimeoutMS=milliseconds,
                                                socketTimeoutMS=milliseconds)
                stack.callback(catalog.close)
                return catalog
        try:
            catalog = within(self.timeout_s * 2, open_catalog)
            records = within(self.timeout_s * 2, catalog.count_records)
        except Exception as exc:  # noqa: BLE001
            fix = ("check VAULT_MONGO_URI (host, port, credentials) and that the server is up"
                   if vault.catalog_backend == "mongodb" else f"check {self.home} is readable; `vault verify` says more")
            # The adapters' errors name the catalog (path, or URI without its password) themselves.
            self.add(FAIL, "catalog", f"the catalog does not answer: {_first_line(exc)}", fix)
            return
        self._catalog = catalog
        self.add(OK, "catalog", f"{where} answers: {records} records")

    def _check_lake(self, vault) -> None:
        if vault is None:
            return
        from vault_pipeline.defs.analytics.maintenance import known_tables
        from vault_pipeline.storage.lake import DeltaLake

        lake = vault.lake()
        if "://" not in lake.root and not Path(lake.root).is_dir():
            self.add(WARN, "lake", f"no lake yet at {lake.root}", "run `vault demo` or `vault run` to create its tables")
            return
        if "://" in lake.root:
            seconds = f"{max(1, round(self.timeout_s))}s"
            lake = DeltaLake(lake.root, {**lake.storage_options, "timeout": seconds, "connect_timeout": seconds,
                                         "max_retries": "0"})
        try:
            tables = within(self.timeout_s * 3, lambda: known_tables(lake, self._config))
        except Exception as exc:  # noqa: BLE001
            self.add(FAIL, "lake", f"Delta lake at {lake.root} does not answer: {_first_line(exc)}",
                     "check VAULT_LAKE_ROOT / the bucket, AWS_ENDPOINT_URL and the credentials delta-rs reads")
            return
        if tables:
            self.add(OK, "lake", f"Delta lake at {lake.root}: {len(tables)} tables ({', '.join(tables)})")
        else:
            self.add(WARN, "lake", f"Delta lake at {lake.root} holds no tables yet",
                     "run `vault demo` or `vault run`: the first run of a kind creates its table")

    # Dagster --------------------------------------------------------------------------------
    def _check_dagster(self) -> None:
        explicit = self.env.get("DAGSTER_HOME")
        home = Path(explicit or self.home / "dagster")
        if not (home / "dagster.yaml").exists():
            if explicit:
                self.add(FAIL, "dagster", f"DAGSTER_HOME={home} has no dagster.yaml",
                         "point DAGSTER_HOME at the directory of the deployment's dagster.yaml (deploy/)")
            elif self.deployment == "prod":
                self.add(WARN, "dagster", f"DAGSTER_HOME is not set and there is no instance at {home}",
                         "set DAGSTER_HOME to the directory of the deployment's dagster.yaml (deploy/)")
            else:
                self.add(WARN, "dagster", f"no Dagster instance yet at {home}",
                         "run `vault init-instance` (or `vault demo`) to create it")
            return
        import dagster as dg

        def probe():
            with dg.DagsterInstance.from_config(str(home)) as instance:
                runs = instance.get_runs_count()
                newest = instance.get_run_records(limit=1, order_by="update_timestamp", ascending=False)
                beats = instance.get_daemon_heartbeats()
                return (runs, newest[0].update_timestamp.timestamp() if newest else None,
                        max((beat.timestamp for beat in beats.values()), default=None),
                        instance.run_monitoring_enabled, type(instance.run_storage).__name__)

        try:
            runs, self._newest_run, beat, monitoring, storage = within(self.timeout_s * 3, probe)
        except Exception as exc:  # noqa: BLE001
            self.add(FAIL, "dagster", f"the Dagster instance at {home} does not open: {_first_line(exc)}",
                     "check its dagster.yaml (storage settings, e.g. the Postgres host) and that the database is up")
            return
        self.add(OK, "dagster", f"Dagster instance at {home} opens ({storage}): {runs} run(s) recorded")
        if not monitoring:
            self.add(WARN, "dagster", "run monitoring is off: runs stuck starting are never failed",
                     f"add `run_monitoring: {{enabled: true}}` to {home / 'dagster.yaml'}")
        age = time.time() - beat if beat is not None else None
        if age is not None and age <= DAEMON_FRESH_S:
            self.add(OK, "dagster", f"dagster-daemon is running (heartbeat {age:.0f} s ago)")
        elif self.deployment == "prod":
            self.add(WARN, "dagster", "no dagster-daemon heartbeat in the last 2 minutes: schedules, sensors, "
                     "alerts and the run queue are stopped", "start `dagster-daemon run` on this instance")
        else:
            self.add(OK, "dagster", "no dagster-daemon running: the embedded vault runs on demand; schedules and "
                     "sensors tick only while one runs (`make ui` starts one)")

    # keys -----------------------------------------------------------------------------------
    def _check_ledger_key(self) -> None:
        from vault_pipeline.core.ledger import (
            KEY_ENV,
            KEY_FILE,
            PUBLIC_KEY_FILE,
            Checkpoint,
            Ed25519Signer,
            LedgerError,
            LedgerKeyError,
            load_public_verifier,
            signer_from_spec,
            verify_checkpoint_signature,
        )

        key_file = self.home / KEY_FILE
        try:
            if self.env.get(KEY_ENV):
                signer, source = signer_from_spec(self.env[KEY_ENV]), KEY_ENV
            elif key_file.exists():
                mode = stat.S_IMODE(key_file.stat().st_mode)
                if os.name == "posix" and mode & 0o077:
                    self.add(FAIL, "ledger_key", f"{key_file} is readable by group or others (mode {mode:04o})",
                             f"chmod 600 {key_file}")
                    return
                signer, source = signer_from_spec(key_file.read_text(encoding="ascii"), source=str(key_file)), str(key_file)
            elif self.deployment == "prod":
                self.add(FAIL, "ledger_key", f"no ledger key: {KEY_ENV} is not set",
                         f"set {KEY_ENV} (ed25519:<base64 32-byte key>) from your secret store; a key generated into "
                         "an ephemeral home would be lost and the chains could not be extended")
                return
            else:
                self.add(WARN, "ledger_key", f"no ledger key yet at {key_file}",
                         "the first run generates one (or set VAULT_LEDGER_KEY)")
                return
        except (LedgerKeyError, OSError, UnicodeDecodeError) as exc:
            self.add(FAIL, "ledger_key", f"the ledger key cannot be used: {_first_line(exc)}",
                     f"replace it with a valid key in {KEY_ENV} or {key_file}")
            return
        self.add(OK, "ledger_key", f"{source} holds the {signer.algorithm} signing key (key id {signer.key_id})")
        public = self.home / PUBLIC_KEY_FILE
        if isinstance(signer, Ed25519Signer) and public.exists():
            try:
                published = load_public_verifier(self.home).key_id
            except Exception as exc:  # noqa: BLE001
                published = f"unreadable ({type(exc).__name__})"
            if published != signer.key_id:
                self.add(FAIL, "ledger_key", f"{public} (key id {published}) is not the public half of the signing key",
                         f"delete {public}: the next run writes the right one (auditors must fetch it again)")
        if self._catalog is None:
            return
        try:
            providers = within(self.timeout_s * 2, self._catalog.ledger_providers)
            mismatched, checked = [], 0
            for provider in providers:
                text = within(self.timeout_s * 2, lambda p=provider: self._catalog.get_checkpoint(p))
                if text is None:
                    continue
                checked += 1
                checkpoint = Checkpoint.from_json(text)
                if not verify_checkpoint_signature(checkpoint, signer.verifier()):
                    mismatched.append(f"{provider} (signed by key id {checkpoint.key_id})")
        except (LedgerError, ValueError) as exc:
            self.add(FAIL, "ledger_key", f"a ledger checkpoint cannot be read: {_first_line(exc)}",
                     "run `vault verify` to see which chain and why")
            return
        except Exception as exc:  # noqa: BLE001
            self.add(FAIL, "ledger_key", f"the ledger checkpoints cannot be read: {_first_line(exc)}",
                     "fix the catalog first")
            return
        if mismatched:
            self.add(FAIL, "ledger_key", f"this key (key id {signer.key_id}) did not sign the newest checkpoint of "
                     f"{', '.join(mismatched)}: new entries would not verify against those chains",
                     f"restore the key the chains were signed with ({KEY_ENV} or {key_file})")
        elif checked:
            self.add(OK, "ledger_key", f"the newest checkpoints of {checked} chains verify with this key")

    # time -----------------------------------------------------------------------------------
    def _check_clock(self) -> None:
        local = self.now()
        if self._server_time is not None:
            server, at = self._server_time
            skew = at - server.timestamp()  # >0: this machine is ahead
            compared = f"local UTC vs the Date header of the S3 bucket ({server.strftime('%Y-%m-%dT%H:%M:%SZ')})"
            if abs(skew) > SKEW_FAIL_S:
                self.add(FAIL, "clock", f"{compared}: this machine is {skew:+.0f} s off",
                         "synchronise the clock (timedatectl set-ntp true, or chrony): hours, ledger times and S3 "
                         "request signatures depend on it")
            elif abs(skew) > SKEW_WARN_S:
                self.add(WARN, "clock", f"{compared}: this machine is {skew:+.0f} s off",
                         "synchronise the clock (timedatectl set-ntp true, or chrony)")
            else:
                self.add(OK, "clock", f"{compared}: within {SKEW_WARN_S:g} s (off by {skew:+.1f} s, the header has 1 s "
                         "resolution)")
            return
        stamp = local.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.deployment == "prod":
            why = "the S3 bucket did not answer" if self._store is None else "S3 sent no Date header"
            self.add(WARN, "clock", f"local UTC is {stamp}; not compared: {why}",
                     "fix the object store, then run vault doctor again")
            return
        if self._newest_run is None:
            self.add(OK, "clock", f"local UTC is {stamp}; the embedded vault's stores share this machine's clock and "
                     "no run is recorded yet to compare it with")
            return
        ahead = self._newest_run - local.timestamp()
        newest = datetime.fromtimestamp(self._newest_run, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        compared = f"local UTC {stamp} vs the newest Dagster run record (updated {newest})"
        if ahead > SKEW_WARN_S:
            self.add(WARN, "clock", f"{compared}: the clock is {ahead:.0f} s behind a time the vault already recorded",
                     "the clock went back: synchronise it (timedatectl set-ntp true, or chrony)")
        else:
            self.add(OK, "clock", f"{compared}: not in the future (the embedded stores have no clock of their own)")


# the command ----------------------------------------------------------------------------------
def add_doctor_parser(commands) -> None:
    doctor = commands.add_parser(
        "doctor", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="check configuration, secrets, storage, the Dagster instance, keys, Object Lock and the clock",
        description="Check that this vault can work: vault.yaml and the secrets it names, the object store, "
                    "catalog, lake and Dagster instance, the ledger key, Object Lock (VAULT_ENV=prod) and clock "
                    "skew. One line per finding (ok / warn / fail, what, what to do); exit 1 on any failure.")
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")
    doctor.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help="seconds each network check may wait")


def run_doctor(args: argparse.Namespace) -> int:
    if not args.timeout > 0:
        print("vault doctor: --timeout must be a positive number of seconds", file=sys.stderr)
        return 2
    doctor = Doctor(timeout_s=args.timeout)
    findings = doctor.run()
    summary = doctor.summary()
    if args.json:
        print(json.dumps({"ok": not doctor.failed, "summary": summary, "findings": [asdict(f) for f in findings]},
                         indent=1))
    else:
        for finding in findings:
            print(finding.line())
        print(f"vault doctor: {summary[OK]} ok, {_plural(summary[WARN], 'warning')}, "
              f"{_plural(summary[FAIL], 'failure')}")
    return 1 if doctor.failed else 0


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")
