"""``vault doctor`` as an operator meets it: one line per finding, what to do, and never a secret.

Each scenario runs the real command in-process on a fresh VAULT_HOME (the ``operator``
fixture): a healthy embedded vault after a run, a secret vault.yaml names but nobody exported,
a ledger key that is not the one the chains were signed with, a production deployment whose
S3 endpoint and MongoDB refuse connections (it must answer fast), and S3 Object Lock on and
off on moto's S3 server.
"""

from __future__ import annotations

import json
import secrets
import time

import pytest
import yaml

from vault_pipeline.core.ledger import Ed25519Signer
from vault_pipeline_tests.fixtures.cli import OPERATOR_SIMULATOR
from vault_pipeline_tests.fixtures.provider_server import closed_port_url


def _findings(out: str) -> list[dict]:
    return json.loads(out)["findings"]


def _by_check(findings: list[dict], check: str) -> list[dict]:
    return [f for f in findings if f["check"] == check]


@pytest.fixture
def ran_vault(operator, monkeypatch):
    """The embedded vault after one hour of the simulator, on its own Dagster instance."""
    monkeypatch.setenv("DAGSTER_HOME", str(operator.home / "dagster"))  # `vault run` sets it; restored after
    code, out, err = operator("run", "--provider", "qa", "--hour", "2026-01-01T05")
    assert code == 0, out + err
    return operator


def test_a_healthy_embedded_vault_after_a_run_is_all_ok(ran_vault):
    code, out, err = ran_vault("doctor")
    assert code == 0, out + err
    lines = out.strip().splitlines()
    assert lines[-1].startswith("vault doctor: ") and lines[-1].endswith(" ok, 0 warnings, 0 failures")
    assert all(line.split()[0] == "ok" for line in lines[:-1]), out
    checks = {line.split()[1] for line in lines[:-1]}
    assert checks == {"config", "secrets", "object_store", "catalog", "lake", "dagster", "ledger_key", "clock"}
    assert "60 records" in out and "test_results" in out  # what the run stored, read through the ports
    assert "the newest checkpoints of" in out and "verify with this key" in out

    code, out, _ = ran_vault("doctor", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True and report["summary"]["fail"] == report["summary"]["warn"] == 0
    clock = _by_check(report["findings"], "clock")[0]
    assert "newest Dagster run record" in clock["what"]  # locally it says what it compared


def test_a_secret_named_in_vault_yaml_but_not_set_fails_naming_the_variable_never_a_value(operator, monkeypatch):
    missing = f"DOCTOR_MISSING_{secrets.token_hex(4).upper()}"
    present_value = "s3cr3t-" + secrets.token_hex(12)
    monkeypatch.delenv(missing, raising=False)
    monkeypatch.setenv("DOCTOR_PRESENT_TOKEN", present_value)
    operator.config.write_text(yaml.safe_dump({"providers": {
        "qa": OPERATOR_SIMULATOR,
        "acme": {"type": "rest", "kind": "audit_event", "url": "https://audit.example.test/events",
                 "auth": {"type": "bearer", "token_env": missing}},
        "partner": {"type": "rest", "kind": "audit_event", "url": "https://partner.example.test/events",
                    "auth": {"type": "header", "name": "X-Partner-Key", "value_env": "DOCTOR_PRESENT_TOKEN"}},
    }}))

    code, out, err = operator("doctor")
    assert code == 1
    failed = [line for line in out.splitlines() if line.startswith("fail")]
    assert len(failed) == 1 and "secrets" in failed[0]
    assert f"{missing} is not set (named by providers.acme.auth.token_env" in failed[0]
    assert f"-> export {missing}" in failed[0]
    assert "ok    secrets      DOCTOR_PRESENT_TOKEN is set (named by providers.partner.auth.value_env" in out
    assert out.strip().splitlines()[-1].endswith(" 1 failure")

    code, out_json, _ = operator("doctor", "--json")
    assert code == 1 and json.loads(out_json)["ok"] is False
    assert present_value not in out + err + out_json


def test_a_broken_vault_yaml_is_named_and_fails(operator):
    operator.config.write_text("providers:\n  qa: {type: simulator, kind: no_such_kind}\n")
    code, out, _ = operator("doctor")
    assert code == 1
    config = [line for line in out.splitlines() if " config " in line][0]
    assert config.startswith("fail") and "provider 'qa': kind" in config and "-> correct" in config


def test_a_ledger_key_that_did_not_sign_the_chains_or_is_readable_by_others_fails(ran_vault, monkeypatch):
    other = Ed25519Signer.generate()
    monkeypatch.setenv("VAULT_LEDGER_KEY", other.spec())
    code, out, err = ran_vault("doctor")
    assert code == 1
    key_lines = [line for line in out.splitlines() if " ledger_key " in line]
    assert any(line.startswith("fail") and f"this key (key id {other.key_id}) did not sign the newest checkpoint of"
               in line and "-> restore the key" in line for line in key_lines), out
    assert other.spec() not in out + err and other.spec().split(":", 1)[1] not in out + err

    monkeypatch.delenv("VAULT_LEDGER_KEY")
    (ran_vault.home / "ledger.key").chmod(0o644)
    code, out, _ = ran_vault("doctor")
    assert code == 1
    assert f"is readable by group or others (mode 0644) -> chmod 600 {ran_vault.home / 'ledger.key'}" in out


@pytest.fixture
def prod_env(operator, monkeypatch, aws_env):
    """VAULT_ENV=prod with a signing key from the environment; the endpoints are the test's to set."""
    key = Ed25519Signer.generate().spec()
    monkeypatch.setenv("VAULT_ENV", "prod")
    monkeypatch.setenv("VAULT_LEDGER_KEY", key)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    return key


def test_an_unreachable_store_and_catalog_fail_fast_saying_what_to_check(operator, prod_env, monkeypatch):
    password = "pw-" + secrets.token_hex(8)
    with closed_port_url("") as s3_url, closed_port_url("") as mongo_url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3_url)
        monkeypatch.setenv("VAULT_S3_BUCKET", "vault-doctor-bucket")
        monkeypatch.setenv("VAULT_MONGO_URI", f"mongodb://vault:{password}@{mongo_url.split('://')[1]}/")
        started = time.monotonic()
        code, out, err = operator("doctor", "--json", "--timeout", "1")
        elapsed = time.monotonic() - started
    assert code == 1
    assert elapsed < 12, f"doctor took {elapsed:.1f} s against closed ports"
    findings = _findings(out)
    store, catalog, lake = (_by_check(findings, name)[0] for name in ("object_store", "catalog", "lake"))
    assert store["status"] == "fail" and "vault-doctor-bucket does not answer" in store["what"]
    assert "AWS_ENDPOINT_URL" in store["fix"] and "credentials" in store["fix"]
    assert catalog["status"] == "fail" and "does not answer" in catalog["what"]
    assert "VAULT_MONGO_URI" in catalog["fix"] and "vault:***@" in catalog["what"]
    assert lake["status"] == "fail" and lake["fix"]
    assert _by_check(findings, "object_lock")[0]["status"] == "fail"  # not checkable without the store
    assert _by_check(findings, "ledger_key")[0]["status"] == "ok"
    assert password not in out + err and prod_env not in out + err


def test_prod_without_its_settings_names_each_missing_variable(operator, prod_env, monkeypatch):
    monkeypatch.delenv("VAULT_S3_BUCKET", raising=False)
    monkeypatch.delenv("VAULT_MONGO_URI", raising=False)
    code, out, _ = operator("doctor")
    assert code == 1
    assert "fail  secrets      VAULT_S3_BUCKET is not set: VAULT_ENV=prod needs it" in out
    assert "fail  secrets      VAULT_MONGO_URI is not set: VAULT_ENV=prod needs it" in out
    assert "object_store not checked" in out


@pytest.mark.parametrize("locked, status", [(True, "ok"), (False, "warn")])
def test_object_lock_on_the_prod_bucket_is_checked_through_the_store(operator, prod_env, monkeypatch, moto_s3,
                                                                     locked, status):
    bucket = moto_s3.bucket
    if locked:
        bucket = f"{moto_s3.bucket}-locked"
        moto_s3.client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3.endpoint_url)
    monkeypatch.setenv("VAULT_S3_BUCKET", bucket)
    with closed_port_url("") as mongo_url:  # no MongoDB here: the catalog fails, the rest is still checked
        monkeypatch.setenv("VAULT_MONGO_URI", f"mongodb://{mongo_url.split('://')[1]}/")
        code, out, _ = operator("doctor", "--json", "--timeout", "1")
    findings = _findings(out)
    assert code == 1 and _by_check(findings, "catalog")[0]["status"] == "fail"
    assert _by_check(findings, "object_store")[0]["status"] == "ok"
    lock = _by_check(findings, "object_lock")[0]
    assert lock["status"] == status, lock
    if locked:
        assert f"Object Lock is on for bucket {bucket}" in lock["what"] and "versioning Enabled" in lock["what"]
    else:
        assert "has no Object Lock" in lock["what"] and "put-object-lock-configuration" in lock["fix"]
    clock = _by_check(findings, "clock")[0]
    assert clock["status"] == "ok" and "Date header of the S3 bucket" in clock["what"]
    assert _by_check(findings, "lake")[0]["status"] == "warn"  # reachable, no table yet


def test_a_timeout_that_is_not_positive_is_a_usage_error(operator):
    code, _, err = operator("doctor", "--timeout", "0")
    assert code == 2 and "--timeout must be a positive number of seconds" in err
