"""A partition's ledger entry commits to the catalog checksums its run's integrity diff verified.

The diff reads the partition's catalog entries in log order anyway; it keeps their Merkle
digest in the integrity report, and the ledger step of the same run signs exactly that root
instead of reading the catalog a second time. Without a clean report of its own run (the
ledger materialized on its own, a report from another run, one whose digest does not add up)
the ledger reads the catalog itself.
"""

import json

from vault_pipeline.core.layout import report_key
from vault_pipeline.core.ledger import PartitionDigest, digest_document, digest_from_document
from vault_pipeline.core.merkle import merkle_root
from vault_pipeline.core.windows import HourWindow
from vault_pipeline.defs.integrity.ledger_stage import verified_digest
from vault_pipeline_tests.fixtures.vault import materialization_metadata

HOUR = "2026-01-01-05:00"
PROVIDER = "sim_audit"
PARTITION = f"{HOUR}|{PROVIDER}"
WINDOW = HourWindow.for_hour_key(HOUR)
UP_TO_THE_DIFF = ["raw_landing", "record_index", "normalised_records", "integrity_report"]


def _landed(vault):
    vault.write_providers({PROVIDER: {"type": "simulator", "kind": "audit_event", "records_per_hour": 300, "seed": 2,
                                      "lookback_hours": 0, "page_size": 70}})
    return vault


def _catalog_root(vault) -> str:
    """The root recomputed from the catalog's checksums in log order, by the plain tree."""
    checksums = [entry.checksum for entry in sorted(vault.catalog.iter_partition_records(PARTITION),
                                                    key=lambda entry: entry.log_id)]
    return merkle_root(checksums).hex()


def _report(vault) -> dict:
    return json.loads(vault.store.get(report_key(PROVIDER, WINDOW, "integrity")))


def test_the_entry_signs_the_root_the_integrity_diff_verified(vault):
    result = _landed(vault).run(HOUR, PROVIDER)
    assert result.success
    report = _report(vault)
    ledger = materialization_metadata(result, "ledger_entry")
    assert report["clean"] and report["run_id"] == result.run_id
    assert report["catalog_digest"]["merkle_root"] == ledger["merkle_root"] == _catalog_root(vault)
    assert report["catalog_digest"]["records"] == ledger["records"] == vault.catalog.count_records(partition=PARTITION)


def test_a_ledger_run_of_its_own_reads_the_catalog_not_another_runs_report(vault):
    assert _landed(vault).run(HOUR, PROVIDER, only=UP_TO_THE_DIFF).success
    # Another run's report, its digest made of other checksums (consistent with itself): if the
    # ledger took it, the entry would commit to records the catalog does not hold.
    report = _report(vault)
    other = PartitionDigest()
    other.add_many(["sha256:" + "ab" * 32] * 5)
    report["catalog_digest"] = digest_document(other)
    vault.store.put(report_key(PROVIDER, WINDOW, "integrity"), json.dumps(report).encode(), overwrite=True)
    ledger_only = vault.run(HOUR, PROVIDER, only=["ledger_entry"])
    assert ledger_only.success
    ledger = materialization_metadata(ledger_only, "ledger_entry")
    assert ledger["merkle_root"] == _catalog_root(vault) != other.root_hex()
    assert ledger["records"] == vault.catalog.count_records(partition=PARTITION)


def test_only_a_clean_consistent_report_of_this_run_is_taken(vault):
    result = _landed(vault).run(HOUR, PROVIDER, only=UP_TO_THE_DIFF)
    assert result.success
    store, run_id = vault.store, result.run_id
    assert verified_digest(store, PROVIDER, WINDOW, PARTITION, run_id).root_hex() == _catalog_root(vault)
    assert verified_digest(store, PROVIDER, WINDOW, PARTITION, "another-run") is None
    assert verified_digest(store, PROVIDER, WINDOW, "2026-01-01-06:00|sim_audit", run_id) is None
    original = _report(vault)

    def stored_as(change) -> None:
        document = json.loads(json.dumps(original))
        change(document)
        store.put(report_key(PROVIDER, WINDOW, "integrity"), json.dumps(document).encode(), overwrite=True)

    stored_as(lambda d: d.update(clean=False))
    assert verified_digest(store, PROVIDER, WINDOW, PARTITION, run_id) is None
    stored_as(lambda d: d["catalog_digest"].update(merkle_root="00" * 32))  # subtrees no longer give it
    assert verified_digest(store, PROVIDER, WINDOW, PARTITION, run_id) is None
    stored_as(lambda d: d["catalog_digest"].update(records=d["catalog_digest"]["records"] + 1))
    assert verified_digest(store, PROVIDER, WINDOW, PARTITION, run_id) is None
    stored_as(lambda d: d["catalog_digest"].update(subtrees=[[3, "zz"]]))
    assert verified_digest(store, PROVIDER, WINDOW, PARTITION, run_id) is None
    stored_as(lambda d: d.pop("catalog_digest"))
    assert verified_digest(store, PROVIDER, WINDOW, PARTITION, run_id) is None
    store.put(report_key(PROVIDER, WINDOW, "integrity"), b"{not json", overwrite=True)
    assert verified_digest(store, PROVIDER, WINDOW, PARTITION, run_id) is None


def test_a_digest_survives_its_document_at_every_size():
    for size in (0, 1, 2, 3, 7, 8, 9, 1000, 4097):
        digest = PartitionDigest()
        digest.add_many([f"sha256:{n:064x}" for n in range(size)])
        again = digest_from_document(json.loads(json.dumps(digest_document(digest))))
        assert (again.count, again.root_hex(), again.leaf_sum_hex()) == (size, digest.root_hex(), digest.leaf_sum_hex())
