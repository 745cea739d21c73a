"""An operator's Prometheus scraping ``/metrics``: what the pipeline did, from the vault's own records.

Real runs of the hourly graph go through the API's job backend onto the vault's Dagster
instance (SQLite files under this test's VAULT_HOME); then ``/metrics`` is scraped over HTTP on
loopback and parsed with prometheus_client's parser, and each figure is held against another
source: the job's status, the golden manifests in the object store, the quarantine in the
catalog, the JSON ``vault verify`` printed.
"""

from __future__ import annotations

import json

import dagster as dg
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from vault_pipeline import cli
from vault_pipeline.api.pipeline_metrics import PipelineMetrics, is_sla_check
from vault_pipeline_tests.fixtures.metrics import Scrape
from vault_pipeline_tests.fixtures.provider_server import closed_port_url

HOUR = "2026-01-01T05"
NEXT = "2026-01-01T06"
JOB = "hourly_ingestion"
SIMULATORS = {
    # 15 % invalid records: dead letters, which promotion quarantines; the input check lets the
    # partition through at this provider's pass rate.
    "sim_audit": {"type": "simulator", "kind": "audit_event", "records_per_hour": 40, "seed": 3, "lookback_hours": 0,
                  "invalid_fraction": 0.15, "input_pass_rate": 0.5},
    "sim_qa": {"type": "simulator", "kind": "test_result", "records_per_hour": 30, "seed": 5, "lookback_hours": 0,
               "invalid_fraction": 0},
}
KINDS = {"sim_audit": "audit_event", "sim_qa": "test_result"}
OWN_FAMILIES = ("vault_runs", "vault_run_", "vault_step_", "vault_sla_", "vault_promotion_", "vault_quarantine_",
                "vault_catalog_", "vault_dead_letters", "vault_verify_", "vault_pipeline_metrics_")
ALLOWED_LABELS = {"job", "step", "status", "provider", "decision", "reason", "check", "asset", "type", "source", "le"}


@pytest.fixture
def pipeline(vault_service_factory, monkeypatch):
    """The embedded vault served on loopback, metrics uncached, with two simulators and a provider
    whose port refuses connections."""
    monkeypatch.setenv("VAULT_METRICS_CACHE_S", "0")
    with closed_port_url() as offline:
        providers = {**SIMULATORS, "offline": {"type": "rest", "kind": "audit_event", "url": offline,
                                               "records": "records", "lookback_hours": 0,
                                               "retry": {"max_attempts": 1, "backoff_base_s": 0, "timeout_s": 2}}}
        yield vault_service_factory(stack="embedded", providers=providers)


def _manifest_counts(service, provider: str) -> dict[str, int]:
    prefix = f"golden/{KINDS[provider]}/{provider}/2026-01-01/05/"
    return json.loads(service.objects.get(prefix + "manifest.json"))["counts"]


def _sla_checked_asset():
    """An hourly export with freshness/SLA checks that fail, one that passes, and a failing check
    that is about something else."""
    partitions = dg.MultiPartitionsDefinition({"hour": dg.StaticPartitionsDefinition(["2026-01-01-05:00"]),
                                               "provider": dg.StaticPartitionsDefinition(["sim_audit"])})

    @dg.asset(partitions_def=partitions, check_specs=[
        dg.AssetCheckSpec("export_freshness", asset="hourly_export"),
        dg.AssetCheckSpec("sla_met", asset="hourly_export"),
        dg.AssetCheckSpec("sla_ok", asset="hourly_export"),
        dg.AssetCheckSpec("row_count_positive", asset="hourly_export"),
    ])
    def hourly_export():
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(check_name="export_freshness", passed=False,
                                  severity=dg.AssetCheckSeverity.WARN, description="landed 14 min after the hour")
        yield dg.AssetCheckResult(check_name="sla_met", passed=False)
        yield dg.AssetCheckResult(check_name="sla_ok", passed=True)
        yield dg.AssetCheckResult(check_name="row_count_positive", passed=False)

    return hourly_export


def test_metrics_count_runs_steps_records_promotions_quarantine_sla_misses_and_verify_findings(pipeline, monkeypatch):
    service = pipeline
    jobs = {provider: service.api.ingest_and_wait(provider, HOUR, NEXT, timeout=60) for provider in SIMULATORS}
    assert {provider: job["state"] for provider, job in jobs.items()} == {"sim_audit": "completed", "sim_qa": "completed"}
    failed = service.api.ingest_and_wait("offline", HOUR, NEXT, timeout=60)
    assert failed["state"] == "failed"
    export = _sla_checked_asset()
    assert dg.materialize([export], instance=service.harness.instance, partition_key="2026-01-01-05:00|sim_audit",
                          raise_on_error=False).success

    scrape = Scrape(service.client("reader").metrics())

    # runs: the failed ingest counted as failed, the two others as successes, all of them timed
    assert scrape.value("vault_runs_total", job=JOB, status="success") == 2
    assert scrape.value("vault_runs_total", job=JOB, status="failure") == 1
    assert scrape.value("vault_runs_total", job=JOB, status="canceled") == 0
    assert scrape.value("vault_run_duration_seconds_gcount", job=JOB) == 3
    assert scrape.value("vault_run_duration_seconds_bucket", job=JOB, le="+Inf") == 3
    assert scrape.value("vault_run_duration_seconds_gsum", job=JOB) > 0
    assert scrape.types["vault_run_duration_seconds"] == "histogram"
    # steps: landing failed once and succeeded twice; what came after it ran only twice
    assert scrape.value("vault_step_outcomes", step="raw_landing", status="failure") == 1
    assert scrape.value("vault_step_outcomes", step="raw_landing", status="success") == 2
    assert scrape.value("vault_step_outcomes", step="golden_promotion", status="success") == 2
    assert scrape.value("vault_step_outcomes", step="golden_promotion", status="failure") is None
    assert scrape.value("vault_step_duration_seconds_gcount", job=JOB, step="raw_landing") == 3
    assert scrape.value("vault_step_duration_seconds_gcount", job=JOB, step="golden_promotion") == 2

    # records per provider: what each job reported it synced, and what the catalog holds
    for provider, job in jobs.items():
        assert job["metrics"]["records_synced"] > 0
        assert scrape.value("vault_catalog_records", provider=provider) == job["metrics"]["records_synced"]
        assert scrape.value("vault_dead_letters", provider=provider) == service.catalog.port.count_dead_letters(
            provider=provider)
    assert scrape.value("vault_catalog_records", provider="offline") is None  # it landed nothing

    # promotion: the decisions of each partition's golden manifest; quarantined = the quarantine
    for provider in SIMULATORS:
        counts = _manifest_counts(service, provider)
        for decision in ("clean", "masked", "quarantined"):
            assert scrape.value("vault_promotion_decisions", provider=provider, decision=decision) == counts[decision]
    quarantined = _manifest_counts(service, "sim_audit")["quarantined"]
    assert quarantined > 0 and quarantined == scrape.value("vault_dead_letters", provider="sim_audit")
    items = service.catalog.port.list_quarantine(provider="sim_audit", limit=1000)
    assert len(items) == quarantined
    assert scrape.series("vault_quarantine_items") == {
        (("provider", "sim_audit"), ("reason", "failed_input_validation"), ("status", "quarantined")): quarantined}

    # SLA misses: failed checks named for freshness or an SLA, whatever their severity, by provider
    assert scrape.series("vault_sla_misses") == {
        (("asset", "hourly_export"), ("check", "export_freshness"), ("provider", "sim_audit")): 1,
        (("asset", "hourly_export"), ("check", "sla_met"), ("provider", "sim_audit")): 1,
    }
    assert scrape.value("vault_verify_clean") is None  # no verify run stored yet
    assert scrape.value("vault_pipeline_metrics_source_up", source="dagster") == 1
    assert scrape.value("vault_pipeline_metrics_source_up", source="catalog") == 1

    # bounded labels, no secret: no run id, no partition key, no provider token anywhere
    for (name, labels), _ in scrape.samples.items():
        if name.startswith(OWN_FAMILIES):
            assert {label for label, _ in labels} <= ALLOWED_LABELS, name
            assert not any("|" in value or value in (failed["job_id"], *[j["job_id"] for j in jobs.values()])
                           for _, value in labels), (name, labels)
    assert service.provider.token not in scrape.text

    # verify findings: an edited raw byte, as `vault verify` reports and stores it
    record = service.catalog.records(provider="sim_qa")[0]
    data = bytearray(service.objects.get(record.object_key))
    data[record.offset + 1] ^= 0x01
    service.objects.put(record.object_key, bytes(data))
    monkeypatch.setenv("VAULT_CONFIG", str(service.harness.config_path))
    monkeypatch.setenv("DAGSTER_HOME", str(service.harness.home / "dagster"))  # restored after the test
    assert cli.main(["verify", "--json"]) == 1
    scrape = Scrape(service.client("reader").metrics())
    assert scrape.value("vault_verify_clean") == 0
    assert scrape.value("vault_verify_findings", type="object_altered") == 1
    assert scrape.value("vault_verify_findings", type="record_bytes_altered") == 1
    assert scrape.value("vault_verify_last_finished_timestamp_seconds") > 0


def test_a_source_that_does_not_answer_is_reported_and_the_rest_is_still_scraped(vault):
    vault.write_providers({"sim_qa": SIMULATORS["sim_qa"]})

    def no_instance():
        raise ConnectionError("the run storage is down")

    registry = CollectorRegistry()
    registry.register(PipelineMetrics(instance=no_instance, catalog=vault.catalog, store=vault.store, cache_s=0))
    scrape = Scrape(generate_latest(registry).decode())
    assert scrape.value("vault_pipeline_metrics_source_up", source="dagster") == 0
    assert scrape.value("vault_pipeline_metrics_source_up", source="catalog") == 1
    assert scrape.value("vault_pipeline_metrics_source_up", source="verify") == 1
    assert scrape.names("vault_runs") == set()  # nothing made up for the source that is down
    assert scrape.value("vault_pipeline_metrics_window_seconds") == 24 * 3600


@pytest.mark.parametrize("name, counted", [
    ("freshness_check", True), ("export_freshness", True), ("hourly_sla", True), ("SLA_met", True),
    ("sla", True), ("translation_sanity", False), ("row_count_positive", False), ("isolated_rows", False),
])
def test_only_freshness_and_sla_checks_count_as_sla_misses(name, counted):
    assert is_sla_check(name) is counted


def test_a_bad_window_or_cache_setting_names_the_variable(vault):
    class Api:
        catalog, store = vault.catalog, vault.store

        class jobs:
            runner = None

    with pytest.raises(ValueError, match=r"VAULT_METRICS_WINDOW_HOURS='a day': give a number"):
        PipelineMetrics.for_api(Api, env={"VAULT_METRICS_WINDOW_HOURS": "a day"})
    with pytest.raises(ValueError, match=r"must be positive.*VAULT_METRICS_WINDOW_HOURS"):
        PipelineMetrics.for_api(Api, env={"VAULT_METRICS_WINDOW_HOURS": "0"})
    with pytest.raises(ValueError, match=r"VAULT_METRICS_CACHE_S"):
        PipelineMetrics.for_api(Api, env={"VAULT_METRICS_CACHE_S": "-1"})
