"""Runs that overlap never leave the lake wrong: loads of a table are exclusive, dead letters
stay out whichever partition sees them, and a lake damaged before that is repaired by a rerun.

Scenarios an operator meets: a retried partition next to its original, the schedule next to
an API ingest of the same hour, and adjacent hours whose lookback windows share records.
"""

from __future__ import annotations

import threading

import pytest

from vault_pipeline.core.windows import HourWindow
from vault_pipeline.defs.analytics import lake_lease
from vault_pipeline.defs.analytics.lake_lease import LakeBusyError, exclusive_table_writer, lease_name
from vault_pipeline.defs.analytics.normalisation import normalise_partition
from vault_pipeline.storage.catalog import DeadLetter
from vault_pipeline.storage.sqlite_catalog import SqliteCatalog
from vault_pipeline_tests.fixtures.vault import check_results

HOUR, NEXT_HOUR = "2026-01-01-05:00", "2026-01-01-06:00"
UP_TO_INDEX = ["raw_landing", "record_index"]


@pytest.fixture
def audit(vault):
    vault.write_providers({"sim_audit": {"type": "simulator", "kind": "audit_event", "records_per_hour": 1000,
                                         "seed": 11, "page_size": 100, "invalid_fraction": 0.004}})
    return vault


def lake_ids(vault) -> list[str]:
    return vault.lake.read("audit_events", columns=["log_id"], provider="sim_audit").column("log_id").to_pylist()


def test_two_loads_of_one_partition_at_once_insert_every_row_once(audit) -> None:
    assert audit.run(HOUR, "sim_audit", only=UP_TO_INDEX).success
    window = HourWindow.for_hour_key(HOUR)
    start = threading.Barrier(2)
    summaries, errors = [], []

    def load(run_id: str) -> None:
        catalog = SqliteCatalog(audit.home / "catalog.db")  # each loader its own connection, as two processes
        try:
            start.wait()
            summaries.append(normalise_partition(
                store=audit.store, catalog=catalog, lake=audit.lake, kind="audit_event", provider="sim_audit",
                window=window, partition=f"{HOUR}|sim_audit", run_id=run_id))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            catalog.close()

    loaders = [threading.Thread(target=load, args=(f"run-{n}",)) for n in range(2)]
    for loader in loaders:
        loader.start()
    for loader in loaders:
        loader.join()

    assert errors == []
    ids = lake_ids(audit)
    assert len(ids) == len(set(ids)) > 0
    assert sorted(s.inserted for s in summaries) == [0, len(ids)]  # the second found everything loaded


def test_a_loader_that_cannot_get_the_table_fails_cleanly_before_writing(audit, monkeypatch) -> None:
    monkeypatch.setattr(lake_lease, "LEASE_WAIT_S", 0.5)
    assert audit.catalog.acquire_lease(lease_name("audit_events"), "run other-run (pid 1 on elsewhere)", 60)

    blocked = audit.run(HOUR, "sim_audit")

    assert not blocked.success
    failure = next(e for e in blocked.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert "being loaded by run other-run" in message and "wrote nothing" in message
    assert not audit.lake.exists("audit_events")

    audit.catalog.release_lease(lease_name("audit_events"), "run other-run (pid 1 on elsewhere)")
    assert audit.run(HOUR, "sim_audit").success
    assert audit.catalog.lease_holder(lease_name("audit_events")) is None  # released after the load


def test_a_killed_loaders_lease_expires_and_a_long_load_keeps_its_own(audit) -> None:
    catalog = audit.catalog
    assert catalog.acquire_lease(lease_name("audit_events"), "killed", 0.2)
    with exclusive_table_writer(catalog, "audit_events", "next", wait_s=5, ttl_s=0.3):
        # Held past several time-to-lives: the heartbeat renews it, nobody else gets it.
        threading.Event().wait(1.0)
        assert not catalog.acquire_lease(lease_name("audit_events"), "intruder", 60)
    assert catalog.lease_holder(lease_name("audit_events")) is None

    assert catalog.acquire_lease(lease_name("audit_events"), "long-run", 60)
    with pytest.raises(LakeBusyError, match="being loaded by long-run"):
        with exclusive_table_writer(catalog, "audit_events", "late", wait_s=0.3):
            pytest.fail("entered the block without the lease")


def test_a_record_dead_lettered_by_the_previous_hour_never_reaches_the_lake_through_the_lookback(audit) -> None:
    # Hour 06 fetches 05 again (lookback); its validation rejects the same records. Then hour 05
    # runs and re-files those dead letters under itself, as it does when the two run at once.
    assert audit.run(NEXT_HOUR, "sim_audit", only=["raw_landing"]).success
    assert audit.run(HOUR, "sim_audit").success
    rejected = {letter.log_id for letter in audit.catalog.list_dead_letters(provider="sim_audit", limit=10_000)}
    shared = rejected & {i for ids, _ in audit.catalog.partition_lake_keys(f"{HOUR}|sim_audit") for i in ids}
    assert shared, "the scenario needs dead letters in the shared hour"
    assert not [letter for letter in audit.catalog.list_dead_letters(partition=f"{NEXT_HOUR}|sim_audit")
                if letter.log_id in shared]  # filed under hour 05 only

    result = audit.run(NEXT_HOUR, "sim_audit", only=["record_index", "normalised_records"])

    assert result.success and check_results(result)["output_validation"]
    assert not shared & set(lake_ids(audit))


def test_a_dead_letter_already_in_the_lake_is_removed_by_the_next_load(audit) -> None:
    assert audit.run(HOUR, "sim_audit").success
    rows = audit.lake.read("audit_events", columns=["log_id", "hour"], provider="sim_audit")
    victim = next(log_id for log_id, hour in zip(*rows.to_pydict().values(), strict=True) if hour == "05")
    # A stricter suite, or a race before loads were exclusive, left a rejected record in the lake.
    audit.catalog.add_dead_letters([DeadLetter(dead_letter_id="dl_test", provider="sim_audit",
                                               partition=f"{HOUR}|sim_audit", stage="input_validation",
                                               reason="failed a later rule", log_id=victim)])

    result = audit.run(NEXT_HOUR, "sim_audit")  # its lookback covers hour 05's lake partition

    assert result.success
    ids = lake_ids(audit)
    assert victim not in ids and len(ids) == len(set(ids))
