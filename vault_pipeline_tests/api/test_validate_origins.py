"""Scenario: an ingest key cannot use ``POST /v1/providers/validate`` to probe what the server reaches.

The check calls only the origin of a configured provider or one an operator listed in
``api.validate_allowed_origins``; anything else (cloud metadata, internal hosts, other ports,
look-alike hosts, parser tricks) is a 403 ``origin_not_allowed`` naming what to fix, and no
request leaves the server: a respx router behind the vault's own records every outbound
request that is not the provider stub's, and a real loopback server records what reaches it.
The documented contract is unchanged: 200 ``{"connection", "latency_ms"}``, 401 ``{"error":
"Invalid Provider Credentials"}``.
"""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from vault_pipeline_tests.fixtures.api import PROVIDER_URL
from vault_pipeline_tests.fixtures.provider_server import LoopbackProvider, running


@pytest.fixture
def outbound():
    """Every request the vault makes that its provider stub does not answer (none may be made)."""
    with respx.mock(assert_all_called=False, assert_all_mocked=False) as router:
        yield router.route().mock(return_value=httpx.Response(200, json={"records": []}))


def _allow(vault, *origins: str) -> None:
    with vault.harness.config_path.open("a") as config:
        config.write(f"api: {json.dumps({'validate_allowed_origins': list(origins)})}\n")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",  # cloud metadata
        "http://10.0.0.5:22/",  # an internal host and port
        "https://internal.test:8443/admin",
        "https://provider.test:8443/v1/events",  # the provider's host, another port
        "http://provider.test/v1/events",  # the provider's host, another scheme
        "https://provider.test.evil.test/v1/events",  # a look-alike host
        "https://provider.test\\@evil.test/v1/events",  # a parser trick: the host is evil.test
        "https://user:pw@evil.test/",
    ],
)
def test_validate_refuses_an_origin_that_is_not_configured_and_sends_nothing(vault_service_factory, outbound, url):
    vault = vault_service_factory(stack="embedded")
    answer = vault.client("ingester").validate(url=url, api_key="k-probe")
    assert answer.status_code == 403, answer.text
    body = answer.json()
    assert body["error"] == "origin_not_allowed"
    assert "api.validate_allowed_origins" in body["detail"] and "provider_id" in body["detail"]
    assert not outbound.called
    assert vault.provider.requests == []  # nor to the configured provider


def test_validate_refuses_another_origin_for_a_configured_provider_too(vault_service_factory, outbound):
    vault = vault_service_factory(stack="embedded")
    answer = vault.client("ingester").validate(provider_id="acme", url="http://10.0.0.5:8080/v1/events",
                                               api_key=vault.provider.token)
    assert answer.status_code == 403 and answer.json()["error"] == "origin_not_allowed"
    assert "http://10.0.0.5:8080" in answer.json()["detail"]
    assert not outbound.called and vault.provider.requests == []


def test_validate_does_not_connect_to_a_loopback_port_it_was_not_told_about(vault_service_factory):
    vault = vault_service_factory(stack="embedded")
    with running(LoopbackProvider("t")) as listening:  # a real service on a port of this host
        answer = vault.client("ingester").validate(url=listening.url, api_key="t")
    assert answer.status_code == 403 and answer.json()["error"] == "origin_not_allowed"
    assert listening.authorizations == []  # nothing reached it


def test_validate_calls_a_configured_providers_origin_by_url(vault_service_factory, outbound):
    vault = vault_service_factory(stack="embedded")
    ingester = vault.client("ingester")
    accepted = ingester.validate(url=PROVIDER_URL.replace("/v1/events", "/v2/health"), api_key=vault.provider.token)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["connection"] == "secure" and accepted.json()["latency_ms"] >= 0
    rejected = ingester.validate(url=PROVIDER_URL.replace("provider.test", "PROVIDER.test:443"), api_key="wrong")
    assert rejected.status_code == 401 and rejected.json() == {"error": "Invalid Provider Credentials"}
    assert len(vault.provider.requests) == 2 and not outbound.called


def test_validate_calls_an_origin_on_the_allowlist(vault_service_factory, outbound):
    vault = vault_service_factory(stack="embedded")
    _allow(vault, "https://staging-audit.test", "http://10.0.0.9:8080")
    ingester = vault.client("ingester")
    secure = ingester.validate(url="https://staging-audit.test/v1/events", api_key="k1")
    assert secure.status_code == 200 and secure.json()["connection"] == "secure"
    insecure = ingester.validate(url="http://10.0.0.9:8080/events", api_key="k2")
    assert insecure.status_code == 200 and insecure.json()["connection"] == "insecure"
    assert [str(call.request.url) for call in outbound.calls] == [
        "https://staging-audit.test/v1/events", "http://10.0.0.9:8080/events"]
    assert outbound.calls[0].request.headers["authorization"] == "Bearer k1"
    refused = ingester.validate(url="http://10.0.0.9:8081/events", api_key="k3")  # not that port
    assert refused.status_code == 403 and outbound.call_count == 2


def test_a_malformed_allowlist_is_a_configuration_error_naming_the_key(vault_service_factory, outbound):
    vault = vault_service_factory(stack="embedded")
    _allow(vault, "https://staging-audit.test/with/a/path")
    answer = vault.client("ingester").validate(provider_id="acme", api_key=vault.provider.token)
    assert answer.status_code == 500 and answer.json()["error"] == "configuration_error"
    assert "validate_allowed_origins" in answer.json()["detail"] and "is not an origin" in answer.json()["detail"]
    assert not outbound.called and vault.provider.requests == []
