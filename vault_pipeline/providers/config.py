"""The ``vault.yaml`` configuration: which providers exist and the vault's policies.

Loaded every time the definitions load (so a provider added to the file can be materialized
at once) and validated with pydantic, so a mistake is reported with the file, the provider
and the field to fix. Secrets are never in this file, only the names of the environment
variables holding them.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import httpx
import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from vault_pipeline.providers.config_sections import (  # noqa: F401 - re-exported: the vault.yaml sections
    REPORT_AGGREGATIONS,
    REPORT_METRICS,
    REPORT_SECTIONS,
    AlertsConfig,
    CustomReportSection,
    LakeConfig,
    LakeTableConfig,
    NotificationTarget,
    ReportMetric,
    ReportSchedules,
    ReportsConfig,
    Strict,
    notification_targets,
)

KINDS = ("audit_event", "generation_event", "test_result", "jailbreak_test", "agent_result")
Kind = Literal["audit_event", "generation_event", "test_result", "jailbreak_test", "agent_result"]
# What a push provider accepts (POST /v1/test-runs, /v1/agent-executions): its kinds.
PUSH_KINDS = ("test_result", "agent_result")
PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,62}$")
# allowed_hosts entries: a host name or IP literal, optionally with a port.
HOST_ENTRY = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
                        r"(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$")
# fields: a dotted path into the provider's record, members separated by '.', none empty.
FIELD_PATH = re.compile(r"^[^.\s][^.]*(?:\.[^.\s][^.]*)*$")
# Nesting the decoders and every later stage (masking walks records recursively) follow safely.
MAX_NESTING_DEPTH = 256

# Natural id and event time field of each kind, when a provider does not name its own.
DEFAULT_FIELDS: dict[str, tuple[str, str]] = {
    "audit_event": ("eventID", "eventTime"),
    "generation_event": ("id", "timestamp"),
    "test_result": ("id", "finished_at"),
    "jailbreak_test": ("test_id", "timestamp"),
    "agent_result": ("execution_id", "timestamp"),
}


class ConfigError(ValueError):
    """``vault.yaml`` is missing or wrong; the message names the file and what to fix."""


_Strict = Strict  # every model of vault.yaml: extra keys forbidden, frozen once loaded

class WindowParams(_Strict):
    start: str = "since"
    end: str = "until"


class Pagination(_Strict):
    type: Literal["none", "link_header", "cursor", "page"] = "none"
    field: str | None = None  # cursor: top-level JSON member holding the next cursor
    param: str | None = None  # cursor/page: query parameter carrying it
    start: int = 1  # page: number of the first page
    size_param: str | None = None  # page: optional page-size parameter
    page_size: int | None = Field(default=None, gt=0)
    max_pages: int = Field(default=10_000, gt=0)

    @model_validator(mode="after")
    def _needs(self) -> Pagination:
        if self.type == "cursor" and not (self.field and self.param):
            raise ValueError("cursor pagination needs 'field' (JSON member with the next cursor) and 'param'")
        if self.type == "page" and not self.param:
            raise ValueError("page pagination needs 'param' (query parameter carrying the page number)")
        return self


class Auth(_Strict):
    type: Literal["none", "bearer", "header"] = "none"
    token_env: str | None = None  # bearer
    name: str | None = None  # header
    value_env: str | None = None  # header

    @model_validator(mode="after")
    def _needs(self) -> Auth:
        if self.type == "bearer" and not self.token_env:
            raise ValueError("bearer auth needs 'token_env' (the environment variable holding the token)")
        if self.type == "header" and not (self.name and self.value_env):
            raise ValueError("header auth needs 'name' and 'value_env'")
        return self

    def secret_env(self) -> str | None:
        return self.token_env if self.type == "bearer" else self.value_env if self.type == "header" else None


class Retry(_Strict):
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    timeout_s: float = Field(default=30.0, gt=0)


class ProviderConfig(_Strict):
    name: str
    type: Literal["rest", "simulator", "push"]
    kind: Kind
    id_field: str | None = None
    time_field: str | None = None
    # column -> dotted path in this provider's records, for the kind's columns it sends elsewhere
    # (e.g. {latency_ms: metrics.latency}); columns not named keep the kind's default path.
    fields: dict[str, str] = Field(default_factory=dict)
    lookback_hours: int = Field(default=1, ge=0, le=48)
    # The input check's pass rate for this provider (default: policies.input_pass_rate). A push
    # provider's default is 0: each push's rejected records are dead-lettered and reported to the
    # pusher, and one bad upload does not block the hour for everyone else who pushes into it.
    input_pass_rate: float | None = Field(default=None, ge=0, le=1)
    # An hour must be materialized this many minutes after it ends (alerts.sla); null: no SLA.
    sla_minutes: int | None = Field(default=10, ge=1, le=7 * 24 * 60)
    # rest
    url: str | None = None
    window_params: WindowParams = WindowParams()
    records: str = "records"
    pagination: Pagination = Pagination()
    auth: Auth = Auth()
    retry: Retry = Retry()
    headers: dict[str, str] = Field(default_factory=dict)
    # Limits on what one response may cost: wall-clock for the whole response (connect, headers
    # and every body byte; retry.timeout_s only bounds each single read), its size, its nesting.
    response_timeout_s: float = Field(default=120.0, gt=0, le=86_400)
    max_response_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    max_nesting_depth: int = Field(default=MAX_NESTING_DEPTH, ge=2, le=MAX_NESTING_DEPTH)
    # Hosts (``host`` or ``host:port``) a next link may lead to besides the url's own origin.
    allowed_hosts: list[str] = Field(default_factory=list)
    # push: the largest upload accepted (413 above it); bodies up to it that cannot be used are
    # kept in the dead-letter zone
    max_body_bytes: int = Field(default=64 * 1024 * 1024, gt=0, le=1024 * 1024 * 1024)
    # simulator
    records_per_hour: int = Field(default=1000, ge=0, le=50_000_000)
    seed: int = 0
    invalid_fraction: float = Field(default=0.002, ge=0, le=1)
    page_size: int = Field(default=5000, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _push_defaults(cls, data: object) -> object:
        # A pushed body belongs to the hour it names; nothing arrives late for a lookback to find.
        # Its rejected records are the pusher's to fix (see input_pass_rate).
        if isinstance(data, dict) and data.get("type") == "push":
            return {"lookback_hours": 0, "input_pass_rate": 0.0, **data}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not PROVIDER_NAME.match(value):
            raise ValueError("provider names are 1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not HOST_ENTRY.match(entry):
                raise ValueError(
                    f"{entry!r} is not a host name or host:port (e.g. api2.example.com or cdn.example.com:8443; "
                    f"no scheme or path)"
                )
        return [entry.lower() for entry in value]

    @model_validator(mode="after")
    def _fields(self) -> ProviderConfig:
        from vault_pipeline.core.kinds import KIND_COLUMNS  # here, not at import: the config loads without pyarrow

        known = [column.name for column in KIND_COLUMNS[self.kind]]
        for column, path in self.fields.items():
            if column not in known:
                raise ValueError(f"fields.{column}: {self.kind} has no column {column!r}; its columns: {', '.join(known)}")
            if not isinstance(path, str) or not FIELD_PATH.match(path) or len(path) > 512:
                raise ValueError(f"fields.{column}: {path!r} is not a dotted path such as 'metrics.latency' "
                                 f"(members separated by '.', none empty)")
        return self

    @model_validator(mode="after")
    def _push_kinds(self) -> ProviderConfig:
        if self.type == "push" and self.kind not in PUSH_KINDS:
            raise ValueError(f"a push provider receives {' or '.join(PUSH_KINDS)} records, not {self.kind}")
        return self

    @model_validator(mode="after")
    def _rest_needs_url(self) -> ProviderConfig:
        if self.type == "rest":
            if not self.url or not self.url.startswith(("http://", "https://")):
                raise ValueError("a rest provider needs 'url' starting with http:// or https://")
            if any(h.lower() in ("authorization", "cookie") for h in self.headers):
                raise ValueError("put credentials in 'auth' (read from an environment variable), not in 'headers'")
        return self

    @property
    def natural_id_field(self) -> str:
        return self.id_field or DEFAULT_FIELDS[self.kind][0]

    @property
    def event_time_field(self) -> str:
        return self.time_field or DEFAULT_FIELDS[self.kind][1]


class Policies(_Strict):
    input_pass_rate: float = Field(default=0.99, ge=0, le=1)
    output_pass_rate: float = Field(default=1.0, ge=0, le=1)
    # raw -> golden promotion: the tier recorded with every promoted record, how PII is masked
    # (pseudonym keys come from VAULT_PSEUDONYM_KEY, never this file), and whether IP
    # addresses count as PII (audit trails often must keep source addresses).
    promotion_tier: str = Field(default="standard", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    pii_masking: Literal["redact", "pseudonym"] = "redact"
    count_ip_addresses: bool = True


class ApiPolicy(_Strict):
    # Origins (scheme://host[:port]) POST /v1/providers/validate may call besides the origins
    # of the configured rest providers.
    validate_allowed_origins: list[str] = Field(default_factory=list)

    @field_validator("validate_allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        normalised = []
        for entry in value:
            origin = origin_of(entry) if _ORIGIN_ENTRY.match(entry) else None
            if origin is None:
                raise ValueError(
                    f"{entry!r} is not an origin: give scheme://host[:port] with scheme http or https, "
                    f"e.g. https://audit.example.com, and no path, query or credentials"
                )
            normalised.append(origin)
        return normalised


_ORIGIN_ENTRY = re.compile(r"^https?://(?:\[[0-9A-Fa-f:.]+\]|[^\s/?#@\\:\[\]]+)(?::[0-9]{1,5})?/?$", re.IGNORECASE)


def origin_of(url: str | httpx.URL) -> str | None:
    """``scheme://host:port`` of an http(s) URL (host IDNA-encoded, port always explicit), read
    by the same parser the HTTP client uses, or None when the URL is not http(s) with a host."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        return None
    host = parsed.raw_host.decode("ascii").lower()
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if port > 65535:
        return None
    return f"{parsed.scheme}://{f'[{host}]' if ':' in host else host}:{port}"


# The first hour of the partitions when vault.yaml does not name one. Fixed, not "now minus
# N days": Dagster keys partition history by the partitions definition, so a start that moved
# at every load would drop hours out of the UI and make backfills of them impossible. Recent
# enough that a new vault does not show two years of "missing" hours; early enough that every
# test hour (2026-01-01) is a partition.
DEFAULT_PARTITIONS_START = "2026-01-01-00:00"
PARTITIONS_START_FORMATS = ("'YYYY-MM-DD-HH:00' (UTC, e.g. 2026-11-01-00:00) or ISO-8601 with Z or an offset "
                            "(e.g. 2026-11-01T00:00:00Z), on the hour")
_HOUR_KEY = re.compile(r"^(\d{4}-\d{2}-\d{2})-(\d{2}):00$")


class PartitionsConfig(_Strict):
    """``partitions:``: the first hour of the hour dimension (``start``), normalised to the
    partition hour key ``YYYY-MM-DD-HH:00``. Hours before it are not partitions: the UI does not
    list them as missing, and neither the schedule, the CLI nor the API can run them."""

    start: str = DEFAULT_PARTITIONS_START

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: object) -> str:
        return _hour_key(value).strftime("%Y-%m-%d-%H:%M")

    @property
    def start_time(self) -> datetime:
        return datetime.strptime(self.start, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)


def _hour_key(value: object) -> datetime:
    """The UTC hour ``partitions.start`` names; YAML hands over unquoted timestamps as datetime
    (and a bare date as date) objects, quoted ones as text."""
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        text = value.strip()
        key = _HOUR_KEY.match(text)
        try:
            if key:
                moment = datetime.strptime(f"{key.group(1)}T{key.group(2)}", "%Y-%m-%dT%H").replace(tzinfo=UTC)
            elif "T" in text or " " in text:
                moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
            else:  # a bare date, as YAML would read it unquoted: its first hour
                day = date.fromisoformat(text)
                moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        except ValueError:
            moment = None
    shown = value.isoformat() if isinstance(value, datetime) else str(value)
    if moment is None:
        raise ValueError(f"{shown!r} is not an hour: expected {PARTITIONS_START_FORMATS}")
    if moment.tzinfo is None:
        # Refused rather than read as UTC: the start decides which hours exist.
        raise ValueError(f"{shown!r} has no time zone: expected {PARTITIONS_START_FORMATS}")
    moment = moment.astimezone(UTC)  # on the hour in UTC: +05:30 offsets are not
    if (moment.minute, moment.second, moment.microsecond) != (0, 0, 0):
        raise ValueError(f"{shown!r} is not on the hour in UTC: expected {PARTITIONS_START_FORMATS}")
    return moment


class ScheduleConfig(_Strict):
    """``schedule:``: whether ``hourly_ingestion_schedule`` runs by default where a dagster-daemon
    runs (``make ui``). A start or stop in the UI is kept by the instance and wins over this."""

    enabled: bool = True


class VaultConfig(_Strict):
    providers: dict[str, ProviderConfig]
    policies: Policies = Policies()
    api: ApiPolicy = ApiPolicy()
    partitions: PartitionsConfig = PartitionsConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    lake: LakeConfig = LakeConfig()
    reports: ReportsConfig = ReportsConfig()
    notifications: list[NotificationTarget] = Field(default_factory=list)  # alert targets (defs/operations/)
    alerts: AlertsConfig = AlertsConfig()
    source: str = ""

    def provider(self, name: str) -> ProviderConfig:
        try:
            return self.providers[name]
        except KeyError:
            known = ", ".join(sorted(self.providers)) or "none"
            raise ConfigError(
                f"unknown provider {name!r} in {self.source or 'vault.yaml'}; configured providers: {known}"
            ) from None


def config_path() -> Path:
    return Path(os.environ.get("VAULT_CONFIG", "vault.yaml"))


def load_config(path: str | os.PathLike[str] | None = None) -> VaultConfig:
    source = Path(path) if path is not None else config_path()
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"vault configuration {source} not found (set VAULT_CONFIG or create vault.yaml)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from None
    return parse_config(document, str(source))


def parse_config(document: object, source: str = "vault.yaml") -> VaultConfig:
    if not isinstance(document, dict) or not isinstance(document.get("providers"), dict) or not document["providers"]:
        raise ConfigError(f"{source}: expected a mapping with a non-empty 'providers' mapping")
    allowed = ("providers", "policies", "api", "partitions", "schedule", "lake", "reports", "notifications", "alerts")
    unknown = set(document) - set(allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown top-level keys {sorted(unknown)}; allowed: {', '.join(allowed)}")
    providers = {}
    for name, entry in document["providers"].items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: provider {name!r} must be a mapping")
        try:
            providers[str(name)] = ProviderConfig(name=str(name), **entry)
        except ValidationError as exc:
            raise ConfigError(f"{source}: provider {name!r}: {_explain(exc)}") from None
        except TypeError as exc:
            raise ConfigError(f"{source}: provider {name!r}: {exc}") from None
    try:
        policies = Policies(**(document.get("policies") or {}))
    except ValidationError as exc:
        raise ConfigError(f"{source}: policies: {_explain(exc)}") from None
    except TypeError:
        raise ConfigError(f"{source}: policies must be a mapping") from None
    try:
        api = ApiPolicy(**(document.get("api") or {}))
    except ValidationError as exc:
        raise ConfigError(f"{source}: api: {_explain(exc)}") from None
    except TypeError:
        raise ConfigError(f"{source}: api must be a mapping (e.g. api: {{validate_allowed_origins: [...]}})") from None
    sections = {}
    for name, model, example in (("partitions", PartitionsConfig, "partitions: {start: '2026-11-01-00:00'}"),
                                 ("schedule", ScheduleConfig, "schedule: {enabled: false}"),
                                 ("lake", LakeConfig, "lake: {retention_days: 90}"),
                                 ("reports", ReportsConfig, "reports: {schedules: {weekly: true}}"),
                                 ("alerts", AlertsConfig, "alerts: {promotion: {window_minutes: 60}}")):
        try:
            sections[name] = model(**(document.get(name) or {}))
        except ValidationError as exc:
            raise ConfigError(f"{source}: {name}.{_explain(exc)}") from None
        except TypeError:
            raise ConfigError(f"{source}: {name} must be a mapping (e.g. {example})") from None
    try:
        sections["notifications"] = notification_targets(document.get("notifications"))
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return VaultConfig(providers=providers, policies=policies, api=api, source=source, **sections)


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "entry"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


