"""The whole hourly graph on the simulator: every stage runs, every check passes, re-runs change nothing."""

import hashlib

import pyarrow.compute as pc
import pytest

from vault_pipeline.core.checksums import checksum
from vault_pipeline_tests.fixtures.vault import check_results, materialization_metadata

HOUR = "2026-01-01-05:00"


def _simulator(records=400, **extra):
    return {"type": "simulator", "kind": "generation_event", "records_per_hour": records, "seed": 3,
            "lookback_hours": 0, "page_size": 150, **extra}


def _assert_partition_consistent(vault, provider: str, partition: str, expected_records: int):
    catalog, store = vault.catalog, vault.store
    entries = list(catalog.iter_partition_records(partition))
    assert len(entries) == expected_records
    for entry in entries[:200]:
        piece = store.get_range(entry.object_key, entry.offset, entry.length)
        assert checksum(piece) == entry.checksum
        whole = store.get(entry.object_key)
        # content-addressed: the key names the SHA-256 of the stored page
        assert entry.object_key.endswith(hashlib.sha256(whole).hexdigest() + ".json")


def test_simulator_partition_runs_every_stage_and_passes_every_check(vault):
    vault.write_providers({"sim_llm": _simulator()})
    result = vault.run(HOUR, "sim_llm")
    assert result.success
    assert check_results(result) == {"input_validation": True, "output_validation": True, "integrity_clean": True}
    landing = materialization_metadata(result, "raw_landing")
    assert landing["records"] > 350 and landing["pages"] == -(-landing["records"] // 150)
    index = materialization_metadata(result, "record_index")
    assert index["inserted"] == landing["records"]
    partition = f"{HOUR}|sim_llm"
    _assert_partition_consistent(vault, "sim_llm", partition, landing["records"])
    lake_rows = vault.lake.count("generation_events", provider="sim_llm")
    dead = vault.catalog.count_dead_letters(partition=partition)
    assert lake_rows == landing["records"] - dead
    assert vault.catalog.get_watermark("sim_llm") is not None
    artifacts = vault.catalog.search_artifacts(partition=partition)
    kinds = {a.kind for a in artifacts}
    assert {"raw_object", "landing_snapshot", "input_validation", "lake_table", "output_validation", "integrity_report"} <= kinds
    stored = {"raw_object", "landing_snapshot", "input_validation", "dead_letter_report", "dead_letter_body",
              "output_validation", "integrity_report", "ledger_entry"}
    assert {a.kind for a in artifacts if a.kind in stored} >= {"raw_object", "landing_snapshot", "ledger_entry"}
    for artifact in artifacts:  # every stored artifact is registered with its bytes' checksum and size
        if artifact.kind in stored:
            data = vault.store.get(artifact.location)
            assert (artifact.checksum, artifact.size) == (checksum(data), len(data)), artifact.location


def test_rerunning_a_partition_changes_nothing(vault):
    vault.write_providers({"sim_llm": _simulator()})
    first = vault.run(HOUR, "sim_llm")
    assert first.success
    objects_before = list(vault.store.list("raw/"))
    lake_version = vault.lake.version("generation_events")
    second = vault.run(HOUR, "sim_llm")
    assert second.success
    index = materialization_metadata(second, "record_index")
    assert index["inserted"] == 0 and index["unchanged"] == index["records"]
    assert materialization_metadata(second, "raw_landing")["new_objects"] == 0
    assert materialization_metadata(second, "normalised_records")["inserted"] == 0
    assert list(vault.store.list("raw/")) == objects_before
    assert vault.lake.version("generation_events") == lake_version
    assert check_results(second)["integrity_clean"]


def test_invalid_records_go_to_the_dead_letter_queue_and_block_the_partition(vault):
    vault.write_providers({"sim_llm": _simulator(invalid_fraction=0.3)})
    result = vault.run(HOUR, "sim_llm")
    assert not result.success
    assert check_results(result) == {"input_validation": False}  # downstream never ran
    partition = f"{HOUR}|sim_llm"
    letters = vault.catalog.list_dead_letters(partition=partition)
    assert letters and all(letter.stage == "input_validation" and letter.reason.startswith("failed ") for letter in letters)
    # the rejected records are still byte-exact in raw/ where the dead letter points
    letter = letters[0]
    piece = vault.store.get_range(letter.object_key, letter.offset, letter.length)
    assert piece.startswith(b"{") and piece.endswith(b"}")
    assert vault.catalog.count_records(partition=partition) == 0
    assert vault.store.exists("dlq/sim_llm/2026/01/01/05/input-validation.json")


def test_a_few_invalid_records_are_dead_lettered_but_the_rest_flows_on(vault):
    vault.write_providers({"sim_qa": _simulator(records=2000, kind="test_result", invalid_fraction=0.004, seed=5)}, input_pass_rate=0.95)
    result = vault.run(HOUR, "sim_qa")
    assert result.success, check_results(result)
    partition = f"{HOUR}|sim_qa"
    dead = vault.catalog.count_dead_letters(partition=partition)
    assert dead > 0
    rows = vault.lake.read("test_results", columns=["log_id"], provider="sim_qa")
    dead_ids = {l.log_id for l in vault.catalog.list_dead_letters(partition=partition)}
    assert not dead_ids & set(rows["log_id"].to_pylist())
    statuses = {vault.catalog.get_record(i).status for i in dead_ids}
    assert statuses == {"dead_letter"}


@pytest.mark.parametrize("kind", ["audit_event", "generation_event", "test_result"])
def test_every_kind_lands_in_its_fact_table(vault, kind):
    vault.write_providers({"sim": _simulator(records=120, kind=kind)})
    result = vault.run(HOUR, "sim")
    assert result.success, check_results(result)
    table = {"audit_event": "audit_events", "generation_event": "generation_events", "test_result": "test_results"}[kind]
    rows = vault.lake.read(table, provider="sim")
    assert rows.num_rows > 0
    assert set(pc.unique(rows["date"]).to_pylist()) == {"2026-01-01"}
    assert set(pc.unique(rows["hour"]).to_pylist()) == {"05"}


def test_prod_deployment_on_s3_mongodb_and_delta_on_s3(vault_on_s3):
    vault = vault_on_s3
    vault.write_providers({"sim_audit": _simulator(records=300, kind="audit_event")})
    result = vault.run(HOUR, "sim_audit")
    assert result.success, check_results(result)
    assert all(check_results(result).values())
    store = vault.store
    assert store.uri("raw/").startswith("s3://")
    keys = list(store.list("raw/sim_audit/"))
    assert keys
    head = store.client.head_object(Bucket=store.bucket, Key=keys[0])
    assert head["ServerSideEncryption"] == "AES256"
    landing = materialization_metadata(result, "raw_landing")
    _assert_partition_consistent(vault, "sim_audit", f"{HOUR}|sim_audit", landing["records"])
    assert vault.lake.root.startswith("s3://")
    assert vault.lake.count("audit_events", provider="sim_audit") > 0


def test_an_earlier_hour_run_after_a_later_one_still_verifies(vault):
    """A backfill: hour 06 ran first and indexed hour 05's records through its lookback, then
    hour 05 runs; its integrity diff finds them held by partition 06, not missing."""
    vault.write_providers({"sim_llm": _simulator(lookback_hours=1, invalid_fraction=0)})
    assert vault.run("2026-01-01-06:00", "sim_llm").success
    earlier = vault.run(HOUR, "sim_llm")
    assert earlier.success, "the integrity check took records held by a later partition for missing"
    assert check_results(earlier)["integrity_clean"] is True
    index = materialization_metadata(earlier, "record_index")
    assert index["unchanged"] > 0  # really held by hour 06 already
