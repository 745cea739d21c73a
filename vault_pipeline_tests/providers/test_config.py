"""``vault.yaml``: the documented example parses, defaults are per kind, mistakes are explained."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vault_pipeline.providers.config import (
    DEFAULT_FIELDS,
    ConfigError,
    VaultConfig,
    config_path,
    load_config,
    parse_config,
)

REPO = Path(__file__).resolve().parents[2]

# The example of DESIGN.md, verbatim.
DESIGN_EXAMPLE = """\
providers:
  acme_audit:
    type: rest                 # rest | simulator
    kind: audit_event          # audit_event | generation_event | test_result
    url: http://127.0.0.1:9900/events
    window_params: {start: since, end: until}   # query params carrying the window, ISO-8601 UTC
    records: records           # JSON key holding the record array; "$" = top-level array; "ndjson"
    id_field: eventID          # natural id; absent -> sha256 of the record's bytes
    time_field: eventTime
    pagination: {type: none}   # none | link_header | cursor {field, param} | page {param}
    auth: {type: bearer, token_env: ACME_TOKEN}   # none | bearer | header {name, value_env}
  demo_cloudtrail:
    type: simulator
    kind: audit_event
    records_per_hour: 1000
    seed: 7
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vault.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _sim(**extra) -> dict:
    return {"type": "simulator", "kind": "audit_event", **extra}


def _rest(**extra) -> dict:
    return {"type": "rest", "kind": "audit_event", "url": "https://audit.example.com/events", **extra}


def _error(document, source="cfg/vault.yaml") -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(document, source)
    message = str(info.value)
    assert source in message  # every message names the file
    return message


# -- what parses ---------------------------------------------------------------------------


def test_design_example_parses(tmp_path):
    path = _write(tmp_path, DESIGN_EXAMPLE)
    config = load_config(path)
    assert isinstance(config, VaultConfig)
    assert config.source == str(path)
    assert sorted(config.providers) == ["acme_audit", "demo_cloudtrail"]
    acme = config.provider("acme_audit")
    assert (acme.name, acme.type, acme.kind) == ("acme_audit", "rest", "audit_event")
    assert acme.url == "http://127.0.0.1:9900/events"
    assert (acme.window_params.start, acme.window_params.end) == ("since", "until")
    assert acme.records == "records"
    assert acme.pagination.type == "none"
    assert acme.auth.type == "bearer" and acme.auth.secret_env() == "ACME_TOKEN"
    demo = config.provider("demo_cloudtrail")
    assert (demo.type, demo.records_per_hour, demo.seed) == ("simulator", 1000, 7)
    assert config.policies.input_pass_rate == 0.99


def test_repository_vault_yaml_parses():
    config = load_config(REPO / "vault.yaml")
    assert config.providers
    # Runs offline: it simulates what it pulls, and takes pushed test runs and agent results.
    assert {p.type for p in config.providers.values()} == {"simulator", "push"}
    assert {(p.name, p.kind) for p in config.providers.values() if p.type == "push"} == {
        ("ci_junit", "test_result"), ("qa_agents", "agent_result")}
    assert all(p.lookback_hours == 0 for p in config.providers.values() if p.type == "push")


def test_config_path_comes_from_vault_config(monkeypatch, tmp_path):
    path = _write(tmp_path, DESIGN_EXAMPLE)
    monkeypatch.setenv("VAULT_CONFIG", str(path))
    assert config_path() == path
    assert sorted(load_config().providers) == ["acme_audit", "demo_cloudtrail"]
    monkeypatch.delenv("VAULT_CONFIG")
    assert config_path() == Path("vault.yaml")


@pytest.mark.parametrize("kind", sorted(DEFAULT_FIELDS))
def test_default_id_and_time_fields_per_kind(kind):
    provider = parse_config({"providers": {"p": _sim(kind=kind)}}).provider("p")
    assert (provider.natural_id_field, provider.event_time_field) == DEFAULT_FIELDS[kind]


def test_default_fields_values():
    assert DEFAULT_FIELDS == {
        "audit_event": ("eventID", "eventTime"),
        "generation_event": ("id", "timestamp"),
        "test_result": ("id", "finished_at"),
        "jailbreak_test": ("test_id", "timestamp"),
        "agent_result": ("execution_id", "timestamp"),
    }


def test_explicit_fields_win_over_defaults():
    provider = parse_config({"providers": {"p": _sim(kind="test_result", id_field="uuid", time_field="meta.at")}}).provider("p")
    assert (provider.natural_id_field, provider.event_time_field) == ("uuid", "meta.at")


def test_other_defaults():
    provider = parse_config({"providers": {"p": _rest()}}).provider("p")
    assert provider.lookback_hours == 1
    assert provider.records == "records"
    assert provider.auth.type == "none" and provider.auth.secret_env() is None
    assert provider.retry.max_attempts == 5


def test_cursor_page_and_header_auth_accepted():
    provider = parse_config(
        {"providers": {"p": _rest(pagination={"type": "cursor", "field": "next", "param": "cursor"},
                                   auth={"type": "header", "name": "X-Key", "value_env": "P_KEY"})}}
    ).provider("p")
    assert provider.pagination.field == "next"
    assert provider.auth.secret_env() == "P_KEY"


def test_provider_names_at_the_edges_of_the_rule():
    names = ["a", "acme_audit", "acme-audit-2", "0day", "a" * 63]
    config = parse_config({"providers": {n: _sim() for n in names}})
    assert sorted(config.providers) == sorted(names)


def test_config_is_frozen():
    provider = parse_config({"providers": {"p": _sim()}}).provider("p")
    with pytest.raises(ValidationError, match="frozen"):
        provider.seed = 3  # type: ignore[misc]


# -- what is refused, and how it is explained ----------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(path)
    assert str(path) in str(info.value) and "VAULT_CONFIG" in str(info.value)


def test_bad_yaml_names_the_file(tmp_path):
    path = _write(tmp_path, "providers:\n  acme: {type: rest\n  kind: [\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("document", [None, [], "providers", {"providers": {}}, {"providers": None}, {"providers": ["a"]}, {"policies": {}}])
def test_no_providers(document):
    assert "non-empty 'providers'" in _error(document)


def test_empty_file_has_no_providers(tmp_path):
    with pytest.raises(ConfigError, match="non-empty 'providers'"):
        load_config(_write(tmp_path, "# nothing yet\n"))


def test_unknown_top_level_key():
    message = _error({"providers": {"p": _sim()}, "provider": {"x": 1}})
    assert "unknown top-level keys ['provider']" in message


@pytest.mark.parametrize("name", ["a|b", "acme audit", "Acme", "-acme", "_acme", "acme.audit", "a" * 64, ""])
def test_bad_provider_name(name):
    message = _error({"providers": {name: _sim()}})
    assert f"provider {name!r}" in message
    assert "a-z, 0-9" in message


def test_provider_entry_must_be_a_mapping():
    assert "provider 'p' must be a mapping" in _error({"providers": {"p": "rest"}})


def test_unknown_type():
    message = _error({"providers": {"p": _sim(type="soap")}})
    assert "provider 'p'" in message and "type" in message and "'rest', 'simulator' or 'push'" in message


def test_unknown_kind():
    message = _error({"providers": {"p": _sim(kind="metrics")}})
    assert "provider 'p'" in message and "kind" in message and "audit_event" in message


@pytest.mark.parametrize("url", [None, "", "ftp://x", "audit.example.com/events"])
def test_rest_without_http_url(url):
    entry = _rest(url=url) if url is not None else {"type": "rest", "kind": "audit_event"}
    message = _error({"providers": {"acme": entry}})
    assert "provider 'acme'" in message and "'url'" in message


@pytest.mark.parametrize("pagination", [{"type": "cursor"}, {"type": "cursor", "field": "next"}, {"type": "cursor", "param": "c"}])
def test_cursor_pagination_needs_field_and_param(pagination):
    message = _error({"providers": {"acme": _rest(pagination=pagination)}})
    assert "provider 'acme'" in message and "pagination" in message and "'field'" in message and "'param'" in message


def test_page_pagination_needs_param():
    message = _error({"providers": {"acme": _rest(pagination={"type": "page"})}})
    assert "pagination" in message and "'param'" in message


def test_bearer_without_token_env():
    message = _error({"providers": {"acme": _rest(auth={"type": "bearer"})}})
    assert "provider 'acme'" in message and "auth" in message and "token_env" in message


def test_header_auth_needs_name_and_value_env():
    message = _error({"providers": {"acme": _rest(auth={"type": "header", "name": "X-Key"})}})
    assert "value_env" in message


@pytest.mark.parametrize("header", ["Authorization", "authorization", "Cookie"])
def test_credentials_in_headers_are_refused(header):
    message = _error({"providers": {"acme": _rest(headers={header: "Bearer s3cret", "Accept": "application/json"})}})
    assert "provider 'acme'" in message and "'auth'" in message and "'headers'" in message
    assert "s3cret" not in message  # the secret itself is never echoed


def test_harmless_headers_are_fine():
    provider = parse_config({"providers": {"acme": _rest(headers={"Accept": "application/json"})}}).provider("acme")
    assert provider.headers == {"Accept": "application/json"}


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (_sim(recods="x"), "recods"),
        (_rest(pagination={"type": "none", "size": 3}), "pagination.size"),
        (_rest(auth={"type": "bearer", "token_env": "T", "token": "literal"}), "auth.token"),
        (_sim(name="other"), "'name'"),
    ],
)
def test_unknown_field_is_named(entry, field):
    message = _error({"providers": {"p": entry}})
    assert "provider 'p'" in message and field in message


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (_sim(lookback_hours=49), "lookback_hours"),
        (_sim(invalid_fraction=1.5), "invalid_fraction"),
        (_sim(page_size=0), "page_size"),
        (_sim(records_per_hour=-1), "records_per_hour"),
        (_rest(retry={"max_attempts": 0}), "retry.max_attempts"),
    ],
)
def test_out_of_range_values_are_named(entry, field):
    message = _error({"providers": {"p": entry}})
    assert "provider 'p'" in message and field in message


def test_bad_policy_is_named():
    message = _error({"providers": {"p": _sim()}, "policies": {"input_pass_rate": 2}})
    assert "policies" in message and "input_pass_rate" in message


def test_unknown_provider_lists_the_configured_ones():
    config = parse_config({"providers": {"zeta": _sim(), "alpha": _sim()}}, "here.yaml")
    with pytest.raises(ConfigError) as info:
        config.provider("nope")
    message = str(info.value)
    assert "'nope'" in message and "here.yaml" in message
    assert "configured providers: alpha, zeta" in message


# -- limits on hostile providers (issue 8) ----------------------------------------------------


def test_response_limits_have_safe_defaults_and_can_be_set():
    acme = parse_config({"providers": {"acme": _rest()}}).provider("acme")
    assert (acme.response_timeout_s, acme.max_nesting_depth, acme.allowed_hosts) == (120.0, 256, [])
    assert acme.max_response_bytes == 256 * 1024 * 1024
    tuned = parse_config({"providers": {"acme": _rest(
        response_timeout_s=15, max_response_bytes=1024, max_nesting_depth=32,
        allowed_hosts=["CDN.example.com", "cdn2.example.com:8443", "[::1]:9000", "10.0.0.7"])}}).provider("acme")
    assert (tuned.response_timeout_s, tuned.max_response_bytes, tuned.max_nesting_depth) == (15.0, 1024, 32)
    assert tuned.allowed_hosts == ["cdn.example.com", "cdn2.example.com:8443", "[::1]:9000", "10.0.0.7"]


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"response_timeout_s": "two minutes"}, "response_timeout_s"),
        ({"response_timeout_s": 0}, "response_timeout_s"),
        ({"response_timeout_s": [120]}, "response_timeout_s"),
        ({"max_response_bytes": "lots"}, "max_response_bytes"),
        ({"max_response_bytes": 0}, "max_response_bytes"),
        ({"max_nesting_depth": 10_000}, "max_nesting_depth"),
        ({"max_nesting_depth": "deep"}, "max_nesting_depth"),
        ({"allowed_hosts": "cdn.example.com"}, "allowed_hosts"),
        ({"allowed_hosts": [42]}, "allowed_hosts"),
        ({"allowed_hosts": ["https://cdn.example.com"]}, "allowed_hosts"),
        ({"allowed_hosts": ["cdn.example.com/path"]}, "allowed_hosts"),
    ],
)
def test_bad_limit_values_name_the_provider_and_key(entry, field):
    message = _error({"providers": {"acme": _rest(**entry)}})
    assert "provider 'acme'" in message and field in message


def test_validate_allowed_origins_are_normalised_origins():
    config = parse_config({"providers": {"acme": _rest()}, "api": {"validate_allowed_origins": [
        "https://Audit.Example.com", "http://10.0.0.5:8080/", "https://audit2.example.com:443"]}})
    assert config.api.validate_allowed_origins == [
        "https://audit.example.com:443", "http://10.0.0.5:8080", "https://audit2.example.com:443"]
    assert parse_config({"providers": {"acme": _rest()}}).api.validate_allowed_origins == []


@pytest.mark.parametrize(
    "api",
    [
        {"validate_allowed_origins": "https://audit.example.com"},
        {"validate_allowed_origins": ["https://audit.example.com/v1/events"]},
        {"validate_allowed_origins": ["audit.example.com"]},
        {"validate_allowed_origins": ["ftp://audit.example.com"]},
        {"validate_allowed_origins": ["https://user:pw@audit.example.com"]},
        {"validate_origins": ["https://audit.example.com"]},
        ["https://audit.example.com"],
    ],
)
def test_bad_api_section_is_named(api):
    message = _error({"providers": {"acme": _rest()}, "api": api})
    assert "api" in message and ("validate_allowed_origins" in message or "validate_origins" in message
                                 or "mapping" in message)


# -- fields: a kind's columns read from the provider's own paths ----------------------------


def test_fields_map_columns_to_dotted_paths():
    entry = _sim(kind="generation_event", fields={"latency_ms": "metrics.latency", "success": "ok"})
    provider = parse_config({"providers": {"llm": entry}}).provider("llm")
    assert provider.fields == {"latency_ms": "metrics.latency", "success": "ok"}
    assert parse_config({"providers": {"llm": _sim(kind="generation_event")}}).provider("llm").fields == {}


@pytest.mark.parametrize("fields, message", [
    ({"latency": "metrics.latency"}, "fields.latency: generation_event has no column 'latency'"),
    ({"latency_ms": "metrics..latency"}, "fields.latency_ms: 'metrics..latency' is not a dotted path"),
    ({"latency_ms": ""}, "fields.latency_ms: '' is not a dotted path"),
    ({"latency_ms": ".latency"}, "fields.latency_ms: '.latency' is not a dotted path"),
    ({"latency_ms": "metrics."}, "fields.latency_ms: 'metrics.' is not a dotted path"),
    ({"latency_ms": 3}, "fields.latency_ms"),
])
def test_unknown_columns_and_malformed_paths_name_the_provider_and_key(fields, message):
    with pytest.raises(ConfigError) as caught:
        parse_config({"providers": {"llm_prod": _sim(kind="generation_event", fields=fields)}})
    assert "provider 'llm_prod'" in str(caught.value)
    assert message in str(caught.value)


def test_jailbreak_test_is_a_kind_with_its_own_columns():
    provider = parse_config({"providers": {"jb": _sim(kind="jailbreak_test", fields={"asr_rate": "result.asr"})}}).provider("jb")
    assert provider.kind == "jailbreak_test" and provider.natural_id_field == "test_id"
    with pytest.raises(ConfigError, match="jailbreak_test has no column 'latency_ms'"):
        parse_config({"providers": {"jb": _sim(kind="jailbreak_test", fields={"latency_ms": "x"})}})
