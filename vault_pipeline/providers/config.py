"""The ``vault.yaml`` configuration: which providers exist and the vault's policies.

Loaded every time the definitions load (so a provider added to the file can be materialized
at once) and validated with pydantic, so a mistake is reported with the file, the provider
and the field to fix. Secrets are never in this file, only the names of the environment
variables holding them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

KINDS = ("audit_event", "generation_event", "test_result")
Kind = Literal["audit_event", "generation_event", "test_result"]
PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,62}$")

# Natural id and event time field of each kind, when a provider does not name its own.
DEFAULT_FIELDS: dict[str, tuple[str, str]] = {
    "audit_event": ("eventID", "eventTime"),
    "generation_event": ("id", "timestamp"),
    "test_result": ("id", "finished_at"),
}


class ConfigError(ValueError):
    """``vault.yaml`` is missing or wrong; the message names the file and what to fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    def _needs(self) -> "Pagination":
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
    def _needs(self) -> "Auth":
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
    type: Literal["rest", "simulator"]
    kind: Kind
    id_field: str | None = None
    time_field: str | None = None
    lookback_hours: int = Field(default=1, ge=0, le=48)
    # rest
    url: str | None = None
    window_params: WindowParams = WindowParams()
    records: str = "records"
    pagination: Pagination = Pagination()
    auth: Auth = Auth()
    retry: Retry = Retry()
    headers: dict[str, str] = Field(default_factory=dict)
    # simulator
    records_per_hour: int = Field(default=1000, ge=0, le=50_000_000)
    seed: int = 0
    invalid_fraction: float = Field(default=0.002, ge=0, le=1)
    page_size: int = Field(default=5000, gt=0)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not PROVIDER_NAME.match(value):
            raise ValueError("provider names are 1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit")
        return value

    @model_validator(mode="after")
    def _rest_needs_url(self) -> "ProviderConfig":
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


class VaultConfig(_Strict):
    providers: dict[str, ProviderConfig]
    policies: Policies = Policies()
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
    unknown = set(document) - {"providers", "policies"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level keys {sorted(unknown)}; allowed: providers, policies")
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
    return VaultConfig(providers=providers, policies=policies, source=source)


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "entry"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


