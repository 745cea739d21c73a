"""`vault verify` looks at everything the vault holds, and never says OK about nothing.

Each scenario leaves data that the sealed-partition checks alone would miss (a run killed
mid-way, a forged row in an unsealed hour, a lake holding rows twice, a deleted checkpoint,
an altered page of a partition that never completed) and expects the finding that names it.
"""

from __future__ import annotations

import json
from dataclasses import replace

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dagster._core.test_utils import create_run_for_test
from deltalake import DeltaTable, write_deltalake

from vault_pipeline import cli
from vault_pipeline.core.ledger import LedgerEntry, make_checkpoint
from vault_pipeline.defs.integrity import coverage
from vault_pipeline.defs.integrity.ledger_stage import checkpoint_key, entry_key
from vault_pipeline.defs.integrity.verification import verify_vault
from vault_pipeline.defs.partitions import partitions_in_progress
from vault_pipeline.storage.catalog import DeadLetter
from vault_pipeline_tests.defs.test_verify import HOURS, PROVIDER, _landed_vault, _partition, _sql

UNFINISHED = "2026-01-01-09:00"


@pytest.fixture
def landed(prebuilt):
    return prebuilt(_landed_vault)


def verify(harness, **options):
    return verify_vault(store=harness.store, catalog=harness.catalog, verifier=harness.resource.ledger_signer().verifier(),
                        lake=harness.lake, kinds={PROVIDER: "test_result"}, **options)


def findings(report, kind):
    return [f for f in report.findings if f.type == kind]


def test_a_sealed_vault_with_its_lake_verifies_clean(landed):
    report = verify(landed)
    assert report.clean, [f.to_dict() for f in report.findings]
    assert report.lake_rows == report.records > 0


# -- records no ledger entry covers ----------------------------------------------------------


def test_records_of_a_run_that_stopped_before_the_ledger_are_reported_unsealed(landed):
    assert landed.run(UNFINISHED, PROVIDER, only=["raw_landing", "record_index", "normalised_records"]).success

    report = verify(landed)

    [unsealed] = findings(report, "records_unsealed")
    assert unsealed.partition == _partition(UNFINISHED)
    assert f"{landed.catalog.count_records(partition=_partition(UNFINISHED))} catalog record(s)" in unsealed.detail
    assert not findings(report, "lake_rows_missing")  # its lake rows belong to records the ledger will seal


def test_a_partition_whose_run_is_in_progress_is_left_alone(landed):
    assert landed.run(UNFINISHED, PROVIDER, only=["raw_landing", "record_index"]).success

    report = verify(landed, in_progress={_partition(UNFINISHED)})

    assert report.clean and report.in_progress == [_partition(UNFINISHED)]
    assert "1 partitions left alone" in report.summary()


def test_a_forged_catalog_row_in_an_unsealed_hour_is_reported(landed):
    genuine = next(landed.catalog.iter_partition_records(_partition(HOURS[0])))
    landed.catalog.upsert_records([replace(genuine, log_id="log_" + "f" * 32, partition=_partition("2026-01-02-00:00"))])

    [forged] = findings(verify(landed), "records_unsealed")

    assert forged.partition == _partition("2026-01-02-00:00") and "1 catalog record(s)" in forged.detail


def test_an_entry_whose_run_is_appending_it_is_not_missing_its_object_yet(landed):
    # A run appends the catalog row, then the object, then moves the checkpoint: stop it between
    # the first two (the checkpoint still names the entry before).
    entries = dict(landed.catalog.ledger_entries(PROVIDER))
    newest = max(entries)
    previous = LedgerEntry.from_json(entries[newest - 1])
    checkpoint = make_checkpoint(previous, landed.resource.ledger_signer()).to_json()
    (landed.home / "objects" / checkpoint_key(PROVIDER)).write_text(checkpoint)
    landed.catalog.put_checkpoint(PROVIDER, checkpoint)
    (landed.home / "objects" / entry_key(PROVIDER, newest)).unlink()
    partition = LedgerEntry.from_json(entries[newest]).partition

    assert not verify(landed, in_progress={partition}).findings
    [missing] = findings(verify(landed), "ledger_object_missing")  # no run: the object is really gone
    assert missing.sequence == newest


def test_the_runs_in_progress_come_from_the_dagster_instance():
    with dg.DagsterInstance.ephemeral() as instance:
        for status, hour in ((dg.DagsterRunStatus.STARTED, "05"), (dg.DagsterRunStatus.SUCCESS, "06"),
                             (dg.DagsterRunStatus.STARTING, "07"), (dg.DagsterRunStatus.FAILURE, "08")):
            create_run_for_test(instance, job_name="hourly_ingestion", status=status,
                                tags={"dagster/partition": f"2026-01-01-{hour}:00|{PROVIDER}"})
        create_run_for_test(instance, job_name="other", status=dg.DagsterRunStatus.STARTED)
        assert partitions_in_progress(instance) == {f"2026-01-01-05:00|{PROVIDER}", f"2026-01-01-07:00|{PROVIDER}"}


# -- the lake against the catalog --------------------------------------------------------------


def test_a_lake_holding_every_row_twice_is_found(landed):
    rows = landed.lake.read("test_results")
    write_deltalake(landed.lake.table_uri("test_results"), rows, mode="append")

    report = verify(landed)

    doubled = findings(report, "lake_rows_duplicated")
    assert {f.partition for f in doubled} == {_partition(hour) for hour in HOURS}
    assert sum(int(f.detail.split()[0]) for f in doubled) == rows.num_rows
    assert {f.type for f in report.findings} == {"lake_rows_duplicated"}


def test_a_lake_row_deleted_a_row_outside_the_catalog_and_a_dead_letter_in_the_lake_are_found(landed):
    rows = landed.lake.read("test_results")
    by_hour = {hour: rows.filter(pc.equal(rows["hour"], hour[11:13])) for hour in HOURS}
    gone = by_hour[HOURS[1]]["log_id"][0].as_py()
    dead = by_hour[HOURS[2]]["log_id"][0].as_py()
    table = landed.lake.table_uri("test_results")
    DeltaTable(table).delete(f"log_id = '{gone}'")
    stranger = by_hour[HOURS[0]].slice(0, 1).set_column(0, "log_id", [["log_" + "e" * 32]])
    write_deltalake(table, stranger, mode="append")
    landed.catalog.set_status([dead], "dead_letter")

    report = verify(landed)

    [missing] = findings(report, "lake_rows_missing")
    assert missing.partition == _partition(HOURS[1]) and gone in missing.detail
    [orphan] = findings(report, "lake_rows_orphaned")
    assert "log_" + "e" * 32 in orphan.detail and "2026-01-01/05" in orphan.detail
    [unexpected] = findings(report, "lake_rows_not_expected")
    assert unexpected.partition == _partition(HOURS[2]) and dead in unexpected.detail


# -- the ledger's own objects and the raw zone ---------------------------------------------------


def test_a_deleted_signed_checkpoint_is_a_finding(landed):
    (landed.home / "objects" / checkpoint_key(PROVIDER)).unlink()

    [missing] = findings(verify(landed), "checkpoint_missing")

    assert "HEAD.json is missing" in missing.detail


def test_an_unreadable_checkpoint_is_a_finding_not_a_crash(landed):
    (landed.home / "objects" / checkpoint_key(PROVIDER)).write_bytes(b"{not json")
    assert [f.type for f in verify(landed).findings] == ["checkpoint_invalid"]


def test_raw_pages_of_a_partition_that_never_completed_are_rehashed(landed):
    assert landed.run(UNFINISHED, PROVIDER, only=["raw_landing"]).success
    page = next(p for p in (landed.home / "objects" / "raw" / PROVIDER / "2026" / "01" / "01" / "09").iterdir())
    page.write_bytes(page.read_bytes().replace(b"passed", b"failed", 1))
    stray = page.with_name("notes.txt")
    stray.write_bytes(b"left here by hand")

    report = verify(landed)

    [altered] = findings(report, "raw_object_altered")
    assert page.name in altered.detail and altered.partition == _partition(UNFINISHED)
    assert [f.detail.split()[0] for f in findings(report, "raw_object_unexpected")] == [
        f"raw/{PROVIDER}/2026/01/01/09/notes.txt"]


def test_a_deleted_catalog_row_is_named(landed):
    record = next(landed.catalog.iter_partition_records(_partition(HOURS[0])))
    _sql(landed, "DELETE FROM records WHERE log_id = ?", record.log_id)

    [deleted] = findings(verify(landed), "record_deleted")

    assert record.log_id in deleted.detail


# -- the command ---------------------------------------------------------------------------------


@pytest.fixture
def command(landed, monkeypatch, capsys):
    monkeypatch.setenv("VAULT_CONFIG", str(landed.config_path))
    monkeypatch.setenv("VAULT_ENV", "local")
    monkeypatch.setenv("DAGSTER_HOME", str(landed.home / "no-instance"))

    def run(*args):
        code = cli.main(["verify", *args])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def test_a_mistyped_provider_is_a_usage_error_naming_the_known_ones(command):
    code, out, err = command("--provider", "tamperr")
    assert code == 2 and out == ""
    assert "unknown provider(s) tamperr" in err and PROVIDER in err


def test_a_selection_with_nothing_in_it_is_never_ok(command):
    code, out, _ = command("--since", "2030-01-01-00:00")
    assert code == 3
    assert out.startswith("NOTHING VERIFIED") and "OK" not in out


def test_a_broken_vault_yaml_is_a_usage_error(command, landed):
    landed.config_path.write_text("providers: [this is: not a mapping")
    code, _, err = command()
    assert code == 2 and "vault configuration" in err


def test_an_empty_vault_has_nothing_to_verify(vault, monkeypatch, capsys):
    vault.write_providers({PROVIDER: {"type": "simulator", "kind": "test_result"}})
    monkeypatch.setenv("VAULT_CONFIG", str(vault.config_path))
    monkeypatch.setenv("DAGSTER_HOME", str(vault.home / "no-instance"))
    assert cli.main(["verify", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["clean"] is False and report["checked_anything"] is False and report["findings"] == []


def test_the_command_checks_the_lake_too(command, landed):
    write_deltalake(landed.lake.table_uri("test_results"), landed.lake.read("test_results").slice(0, 1), mode="append")
    code, out, _ = command()
    assert code == 1 and "lake_rows_duplicated" in out


def test_dead_letters_filed_by_another_partition_count_as_dead_letters_in_the_lake_check(landed):
    record = next(landed.catalog.iter_partition_records(_partition(HOURS[0])))
    landed.catalog.add_dead_letters([DeadLetter(dead_letter_id="dl_x", provider=PROVIDER, partition=_partition(HOURS[1]),
                                                stage="input_validation", reason="r", log_id=record.log_id)])
    landed.catalog.set_status([record.log_id], "dead_letter")
    [unexpected] = findings(verify(landed), "lake_rows_not_expected")
    assert record.log_id in unexpected.detail


def test_lake_keys_round_trip_every_log_id_and_keep_odd_ones_apart():
    ids = ["log_" + "ab" * 15 + "00", "log_" + "00" * 16, "log_" + "f" * 32, "not-a-log-id", "log_ABC"]
    keys, odd = coverage._keys(pa.array(ids))
    assert [coverage._log_id(key) for key in keys.tolist()] == ids[:3]  # trailing zero bytes survive
    assert odd.tolist() == [3, 4]


def test_forged_lake_rows_with_odd_ids_are_orphans_and_a_provider_gone_from_vault_yaml_is_still_checked(landed):
    rows = landed.lake.read("test_results")
    write_deltalake(landed.lake.table_uri("test_results"), rows.slice(0, 1).set_column(0, "log_id", [["forged"]]),
                    mode="append")
    report = verify_vault(store=landed.store, catalog=landed.catalog,
                          verifier=landed.resource.ledger_signer().verifier(), lake=landed.lake, kinds={})
    [orphan] = findings(report, "lake_rows_orphaned")
    assert "forged" in orphan.detail
    assert {f.type for f in report.findings} == {"lake_rows_orphaned"}  # no other table taken for its own
