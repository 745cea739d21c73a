"""Promotion raw -> golden through the real graph: clean, PII and corrupted partitions."""

import hashlib
import json
import sqlite3

import dagster as dg
import httpx
import pytest
import respx

from vault_pipeline.core.checksums import checksum
from vault_pipeline.core.framing import decode_record
from vault_pipeline.core.ledger import KIND_PARTITION, KIND_PROMOTION_DECISION, LedgerEntry
from vault_pipeline.defs.integrity.verification import verify_vault
from vault_pipeline.defs.promotion.promotion import iter_manifest_rows
from vault_pipeline_tests.fixtures.payloads import edge_case_records, hour_records
from vault_pipeline_tests.fixtures.vault import check_results, materialization_metadata

HOUR = "2026-01-01-05:00"
URL = "https://provider.test/v1/events"


def _raw_state(vault) -> dict[str, str]:
    return {key: checksum(vault.store.get(key)) for key in vault.store.list("raw/")}


def _manifest(vault, kind, provider, hour="05"):
    """The index, with every part's rows gathered under "records" (small partitions only)."""
    prefix = f"golden/{kind}/{provider}/2026-01-01/{hour}/"
    index = json.loads(vault.store.get(prefix + "manifest.json"))
    return index | {"records": list(iter_manifest_rows(vault.store, prefix))}


def _golden_bytes(vault, manifest, row) -> bytes:
    golden = row["golden"]
    return vault.store.get_range(golden["key"], golden["offset"], golden["length"])


def _golden_file(vault, manifest) -> bytes:
    return b"".join(vault.store.get(part["records_key"]) for part in manifest["parts"])


def _ledger(vault, provider) -> list[LedgerEntry]:
    return [LedgerEntry.from_json(text) for _, text in vault.catalog.ledger_entries(provider)]


def _promote_only(vault, provider):
    """Run just golden_promotion for a partition (what a re-promotion after landing does)."""
    definitions = vault.definitions()
    assets = [definitions.get_assets_def(key) for key in definitions.get_repository_def().asset_graph.get_all_asset_keys()
              if key.path[-1] != "hourly_completion"]  # an external asset (the SLA's), nothing to materialize
    return dg.materialize(assets, selection="golden_promotion", resources={"vault": vault.resource},
                          partition_key=f"{HOUR}|{provider}", instance=vault.instance, raise_on_error=False)


def test_a_clean_partition_is_promoted_byte_exact_with_provenance(vault):
    vault.write_providers({"acme": {"type": "rest", "kind": "audit_event", "url": URL, "lookback_hours": 0,
                                    "retry": {"max_attempts": 1}}}, promotion_tier="gold")
    records = hour_records("2026-01-01T05", 12) + edge_case_records("2026-01-01T05")
    body = ('{"records": [\n' + ",\n".join(records) + "\n]}").encode()
    with respx.mock() as mock:
        mock.get(URL).mock(return_value=httpx.Response(200, content=body))
        result = vault.run(HOUR, "acme")
    assert result.success, check_results(result)
    metadata = materialization_metadata(result, "golden_promotion")
    assert (metadata["count_clean"], metadata["count_masked"], metadata["count_quarantined"]) == (len(records), 0, 0)
    manifest = _manifest(vault, "audit_event", "acme")
    partition_entry = [e for e in _ledger(vault, "acme") if e.kind == KIND_PARTITION][-1]
    assert len(manifest["records"]) == len(records)
    for row in manifest["records"]:
        entry = vault.catalog.get_record(row["log_id"])
        raw = vault.store.get_range(entry.object_key, entry.offset, entry.length)
        assert _golden_bytes(vault, manifest, row) == raw  # byte for byte, CRLF whitespace and big ints included
        assert row["raw"] == {"key": entry.object_key, "offset": entry.offset, "length": entry.length,
                              "digest": entry.checksum}
        assert row["golden"]["digest"] == entry.checksum
        assert row["ledger_entry"] == {"sequence": partition_entry.sequence, "hash": partition_entry.entry_hash}
        assert (row["decision"], row["policy_tier"], row["requested_by"]) == ("clean", "gold", "dagster")
    prefix = "golden/audit_event/acme/2026-01-01/05/"
    raw_ids = {a.artifact_id for a in vault.catalog.search_artifacts(partition=f"{HOUR}|acme", kind="raw_object")}
    assert len(manifest["parts"]) == len(raw_ids) >= 1
    for n, part in enumerate(manifest["parts"]):
        assert part["records_key"] == prefix + f"records-{n:05d}.ndjson"
        assert part["manifest_key"] == prefix + f"manifest-{n:05d}.ndjson"
        assert part["records_checksum"] == checksum(vault.store.get(part["records_key"]))
        assert part["manifest_checksum"] == checksum(vault.store.get(part["manifest_key"]))
    assert sum(part["records"] for part in manifest["parts"]) == len(records)
    golden_records = vault.catalog.search_artifacts(partition=f"{HOUR}|acme", kind="golden_records")
    assert {a.location for a in golden_records} == {part["records_key"] for part in manifest["parts"]}
    assert all(a.upstream and all(u.startswith("art_") for u in a.upstream) for a in golden_records)
    assert {u for a in golden_records for u in a.upstream} == raw_ids
    [index] = vault.catalog.search_artifacts(partition=f"{HOUR}|acme", kind="golden_manifest")
    assert index.location == prefix + "manifest.json" and index.metadata["policy_tier"] == "gold"
    assert raw_ids <= set(index.upstream)


def test_pii_is_masked_in_golden_and_never_in_raw(vault):
    vault.write_providers({"trail": {"type": "simulator", "kind": "audit_event", "records_per_hour": 60, "seed": 5,
                                     "lookback_hours": 0, "invalid_fraction": 0}})
    result = vault.run(HOUR, "trail")
    assert result.success, check_results(result)
    raw_before = _raw_state(vault)
    manifest = _manifest(vault, "audit_event", "trail")
    assert manifest["counts"]["masked"] > 0
    golden_file = _golden_file(vault, manifest)
    entry_texts = [e.to_json() for e in _ledger(vault, "trail") if e.kind == KIND_PROMOTION_DECISION]
    for row in manifest["records"]:
        entry = vault.catalog.get_record(row["log_id"])
        raw = vault.store.get_range(entry.object_key, entry.offset, entry.length)
        if row["decision"] == "clean":
            assert _golden_bytes(vault, manifest, row) == raw
            continue
        assert row["decision"] == "masked" and row["masked"]
        original, masked = decode_record(raw), json.loads(_golden_bytes(vault, manifest, row))
        assert masked.keys() == original.keys()
        for key, value in original.items():
            assert type(masked[key]) is type(value), key  # types stable: strings stay strings, ints ints
        assert masked["additionalEventData"]["bytesTransferredIn"] == original["additionalEventData"]["bytesTransferredIn"]
        assert {m["type"] for m in row["masked"]} <= {"email", "ssn", "ipv4", "ipv6"}
        assert all(set(m) == {"path", "type", "in_key"} for m in row["masked"])
        # The values masked never appear in golden, the manifest, the quarantine or the ledger.
        for secret in {original.get("contact"), original.get("sourceIPAddress")} - {None}:
            if secret not in json.dumps(masked, ensure_ascii=False):
                for text in (golden_file.decode(), json.dumps(row), *entry_texts):
                    assert secret not in text
    assert "123-45-6789" not in golden_file.decode()
    assert _raw_state(vault) == raw_before  # the raw zone is never modified by promotion


def test_a_corrupted_partition_quarantines_the_affected_records_and_nothing_of_them_reaches_golden(vault):
    vault.write_providers({"qa": {"type": "simulator", "kind": "test_result", "records_per_hour": 30, "seed": 2,
                                  "lookback_hours": 0, "invalid_fraction": 0, "page_size": 10}})
    assert vault.run(HOUR, "qa").success
    records = list(vault.catalog.iter_partition_records(f"{HOUR}|qa"))
    victim = records[3]
    path = vault.home / "objects" / victim.object_key
    data = bytearray(path.read_bytes())
    data[victim.offset + 2] ^= 0x01  # one flipped bit inside one record, after landing
    path.write_bytes(bytes(data))

    result = _promote_only(vault, "qa")
    assert result.success
    manifest = _manifest(vault, "test_result", "qa")
    rows = {row["log_id"]: row for row in manifest["records"]}
    assert rows[victim.log_id]["decision"] == "quarantined"
    assert rows[victim.log_id]["reason"] == "checksum_mismatch" and rows[victim.log_id]["golden"] is None
    same_page = {r.log_id for r in records if r.object_key == victim.object_key} - {victim.log_id}
    assert same_page and all(rows[i]["reason"] == "raw_object_altered" for i in same_page)
    others = [r for r in records if r.object_key != victim.object_key]
    assert others and all(rows[r.log_id]["decision"] in ("clean", "masked") for r in others)
    golden_file = _golden_file(vault, manifest)
    assert len(golden_file.splitlines()) == len(others)
    assert bytes(data[victim.offset: victim.offset + victim.length]) not in golden_file
    item = vault.catalog.get_quarantine(victim.log_id)
    assert item["reason"] == "checksum_mismatch" and item["status"] == "quarantined"
    assert item["actual_checksum"] != item["catalog_checksum"] == victim.checksum
    document = json.loads(vault.store.get(item["quarantine_key"]))
    assert item["quarantine_key"] == f"quarantine/qa/2026/01/01/05/{victim.log_id}.json"
    assert document["raw"]["key"] == victim.object_key and document["reason"] == "checksum_mismatch"
    quarantined = {a.location for a in vault.catalog.search_artifacts(partition=f"{HOUR}|qa", kind="quarantine")}
    assert item["quarantine_key"] in quarantined
    decision = [e for e in _ledger(vault, "qa") if e.kind == KIND_PROMOTION_DECISION][-1]
    assert decision.body["counts"]["quarantined"] == len(same_page) + 1


def test_a_catalog_checksum_that_is_not_a_digest_quarantines_the_partition_instead_of_crashing(vault):
    vault.write_providers({"qa": {"type": "simulator", "kind": "test_result", "records_per_hour": 30, "seed": 2,
                                  "lookback_hours": 0, "invalid_fraction": 0, "page_size": 10}})
    assert vault.run(HOUR, "qa").success
    records = list(vault.catalog.iter_partition_records(f"{HOUR}|qa"))
    with sqlite3.connect(vault.home / "catalog.db") as db:
        db.execute("UPDATE records SET checksum = 'not a digest' WHERE log_id = ?", (records[5].log_id,))
    result = _promote_only(vault, "qa")
    assert result.success
    manifest = _manifest(vault, "test_result", "qa")
    assert {row["reason"] for row in manifest["records"]} == {"ledger_mismatch"}
    assert len(manifest["records"]) == len(records)  # every record decided, none lost half-way
    assert _golden_file(vault, manifest) == b""


def test_re_promotion_is_idempotent_and_vault_verify_stays_clean_with_decision_entries(vault):
    vault.write_providers({"gen": {"type": "simulator", "kind": "generation_event", "records_per_hour": 25, "seed": 8,
                                   "lookback_hours": 0, "invalid_fraction": 0}})
    assert vault.run(HOUR, "gen").success
    prefix = "golden/generation_event/gen/2026-01-01/05/"
    golden = {key: vault.store.get(key) for key in vault.store.list(prefix)}
    index = json.loads(golden[prefix + "manifest.json"])
    parts = [(part["records_key"], part["manifest_key"]) for part in index["parts"]]
    assert parts and set(golden) == {prefix + "manifest.json", *(key for pair in parts for key in pair)}
    entries = _ledger(vault, "gen")
    assert [e.kind for e in entries] == [KIND_PARTITION, KIND_PROMOTION_DECISION]
    decision = entries[-1]
    assert decision.previous_hash == entries[0].entry_hash  # chained like partition entries
    assert decision.body["manifest_checksum"] == checksum(golden[prefix + "manifest.json"])
    landed = vault.catalog.count_records(partition=f"{HOUR}|gen")  # some of the 25 are published late
    assert landed > 20
    assert decision.record_count == landed and decision.body["requested_by"] == "dagster"
    assert index["decision_root"] == decision.merkle_root and index["record_count"] == landed
    for records_key, manifest_key in parts:
        assert dict(decision.objects)[records_key] == checksum(golden[records_key])
        assert dict(decision.objects)[manifest_key] == checksum(golden[manifest_key])

    rerun = vault.run(HOUR, "gen")
    assert rerun.success
    assert materialization_metadata(rerun, "golden_promotion")["new_decision_entry"] is False
    assert len(_ledger(vault, "gen")) == 2
    assert {key: vault.store.get(key) for key in vault.store.list(prefix)} == golden

    report = verify_vault(store=vault.store, catalog=vault.catalog, verifier=vault.resource.ledger_signer().verifier())
    assert report.clean, [f.to_dict() for f in report.findings]
    assert (report.entries, report.partitions) == (2, 1)
    assert hashlib.sha256(vault.store.get(parts[0][0])).hexdigest()


def test_worker_processes_decide_exactly_what_one_process_decides(vault, monkeypatch):
    """A large hour's raw objects are decided in worker processes side by side; the golden parts,
    every manifest row and the signed decision root are the very bytes one process writes, so
    promoting again in this process finds nothing changed (and the other way round)."""
    from vault_pipeline.defs.promotion import promotion

    vault.write_providers({"sim": {"type": "simulator", "kind": "audit_event", "records_per_hour": 1500, "seed": 4,
                                   "lookback_hours": 0, "page_size": 200, "invalid_fraction": 0.005}})
    monkeypatch.setattr(promotion, "PARALLEL_FROM_RECORDS", 0)  # workers for any size
    monkeypatch.setattr(promotion.os, "cpu_count", lambda: 2)
    spawned = []
    real_pool = promotion.ProcessPoolExecutor

    def counting_pool(*args, **kwargs):
        spawned.append(args[0] if args else kwargs.get("max_workers"))
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(promotion, "ProcessPoolExecutor", counting_pool)
    result = vault.run(HOUR, "sim")
    assert result.success, check_results(result)
    assert spawned == [2]  # the decisions were made by two worker processes
    with_workers = _manifest(vault, "audit_event", "sim")
    golden = _golden_file(vault, with_workers)
    decided = materialization_metadata(result, "golden_promotion")
    assert decided["count_masked"] > 0 and decided["count_quarantined"] > 0  # PII masked, dead letters held back
    assert len(with_workers["parts"]) == 8

    monkeypatch.setattr(promotion, "PARALLEL_FROM_RECORDS", 10**12)  # now in this process
    again = _promote_only(vault, "sim")
    assert again.success
    assert materialization_metadata(again, "golden_promotion")["new_decision_entry"] is False
    in_process = _manifest(vault, "audit_event", "sim")
    assert in_process["decision_root"] == with_workers["decision_root"]
    assert in_process["records"] == with_workers["records"] and _golden_file(vault, in_process) == golden
    assert verify_vault(store=vault.store, catalog=vault.catalog, verifier=vault.resource.ledger_signer().verifier(),
                        lake=vault.lake, kinds={"sim": "audit_event"}).clean


def test_with_workers_a_catalog_that_no_longer_reproduces_the_signed_root_is_decided_again_all_quarantined(
        vault, monkeypatch):
    """Workers decide while one of them checks the root, assuming it holds; when it does not,
    nothing they decided is written: every record is decided again as ledger_mismatch."""
    from vault_pipeline.defs.promotion import promotion

    vault.write_providers({"sim": {"type": "simulator", "kind": "audit_event", "records_per_hour": 400, "seed": 5,
                                   "lookback_hours": 0, "page_size": 100, "invalid_fraction": 0}})
    assert vault.run(HOUR, "sim").success
    clean = _manifest(vault, "audit_event", "sim")
    assert {row["decision"] for row in clean["records"]} <= {"clean", "masked"}
    records = list(vault.catalog.iter_partition_records(f"{HOUR}|sim"))
    with sqlite3.connect(vault.home / "catalog.db") as db:  # one catalog checksum rewritten behind the vault's back
        db.execute("UPDATE records SET checksum = ? WHERE log_id = ?", ("sha256:" + "0" * 64, records[7].log_id))
    monkeypatch.setattr(promotion, "PARALLEL_FROM_RECORDS", 0)
    monkeypatch.setattr(promotion.os, "cpu_count", lambda: 2)
    spawned = []
    real_pool = promotion.ProcessPoolExecutor
    monkeypatch.setattr(promotion, "ProcessPoolExecutor",
                        lambda *a, **k: spawned.append(a[0] if a else k.get("max_workers")) or real_pool(*a, **k))
    assert _promote_only(vault, "sim").success
    assert spawned == [2]
    manifest = _manifest(vault, "audit_event", "sim")
    assert {row["reason"] for row in manifest["records"]} == {"ledger_mismatch"}
    assert len(manifest["records"]) == len(records) and manifest["ledger_verified"] is False
    assert _golden_file(vault, manifest) == b""
    assert vault.catalog.get_quarantine(records[0].log_id)["reason"] == "ledger_mismatch"


def test_the_number_of_promotion_workers_comes_from_the_environment(monkeypatch):
    from vault_pipeline.defs.promotion import promotion

    monkeypatch.setattr(promotion.os, "cpu_count", lambda: 8)
    monkeypatch.delenv("VAULT_PROMOTION_WORKERS", raising=False)
    assert promotion.promotion_workers() == promotion.MAX_WORKERS == 4
    monkeypatch.setenv("VAULT_PROMOTION_WORKERS", "1")
    assert promotion.promotion_workers() == 1  # promote in the run's own process
    for wrong in ("0", "two", "-1"):
        monkeypatch.setenv("VAULT_PROMOTION_WORKERS", wrong)
        with pytest.raises(promotion.PromotionError, match="VAULT_PROMOTION_WORKERS") as refused:
            promotion.promotion_workers()
        assert refused.value.code == "invalid_configuration"
