"""Promotion raw -> golden: verify a partition against its ledger entry, then decide per record.

Nothing reaches the golden zone on the catalog's word alone. First the partition's newest
ledger entry must exist, the catalog's record checksums (log order) must reproduce its signed
Merkle root, and every raw object must re-hash to the checksum the entry committed to. Then
each record's bytes are re-read and re-hashed against its catalog checksum: verified and clean
records are copied byte-exact, verified records holding PII are copied masked (with a report
of which paths and types were masked, never the values), and everything else is quarantined
with its reason and never reaches golden. The decisions become one signed
``promotion_decision`` ledger entry chained like partition entries. The raw zone is only read;
re-promoting an unchanged partition writes nothing. No Dagster here: the asset and the HTTP
API both call :func:`promote_partition`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from vault_pipeline.core.checksums import checksum
from vault_pipeline.core.framing import RecordDecodeError, decode_record
from vault_pipeline.core.layout import golden_prefix, quarantine_key
from vault_pipeline.core.ledger import (
    KIND_PROMOTION_DECISION,
    LedgerEntry,
    Signer,
    canonical_json,
    decision_entry,
    utc_now,
    verify_partition_records,
)
from vault_pipeline.core.pii import MaskPolicy, PiiScanner, mask
from vault_pipeline.core.windows import HourWindow, split_partition_key
from vault_pipeline.defs.integrity.artifacts import artifact_id
from vault_pipeline.defs.integrity.ledger_stage import append_entry, partition_entries
from vault_pipeline.storage.catalog import DEAD_LETTER, Artifact, Catalog, RecordEntry
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore

CLEAN, MASKED, QUARANTINED = "clean", "masked", "quarantined"
DECISIONS = (CLEAN, MASKED, QUARANTINED)

# Quarantine reasons (stable names: the API, reports and the ledger carry them).
RAW_OBJECT_MISSING = "raw_object_missing"
LEDGER_MISMATCH = "ledger_mismatch"  # the catalog no longer reproduces the signed Merkle root
CHECKSUM_MISMATCH = "checksum_mismatch"  # the record's bytes differ from its catalog checksum
RAW_OBJECT_ALTERED = "raw_object_altered"  # the record is intact, the page around it is not
FAILED_INPUT_VALIDATION = "failed_input_validation"
NOT_JSON = "not_json"
# An admin may approve these: the record's own bytes still prove intact. The others mean the
# bytes (or the index vouching for them) cannot be trusted, and no approval changes that.
APPROVABLE = frozenset({RAW_OBJECT_ALTERED, FAILED_INPUT_VALIDATION})

QUARANTINED_STATUS, APPROVED_STATUS, RELEASED_STATUS = "quarantined", "approved", "released"


class PromotionError(RuntimeError):
    """The partition cannot be promoted at all (e.g. it has no ledger entry); ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class PromotionSummary:
    provider: str
    partition: str
    kind: str
    counts: dict[str, int]
    golden_prefix: str
    manifest_key: str
    records_key: str
    entry_sequence: int
    entry_hash: str
    new_entry: bool
    quarantined: dict[str, str] = field(default_factory=dict)  # log_id -> reason
    decisions: dict[str, str] = field(default_factory=dict)  # log_id -> decision

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider, "partition": self.partition, "kind": self.kind, "counts": dict(self.counts),
            "golden_prefix": self.golden_prefix, "manifest_key": self.manifest_key, "records_key": self.records_key,
            "ledger_sequence": self.entry_sequence, "ledger_entry_hash": self.entry_hash, "new_entry": self.new_entry,
            "quarantined": dict(self.quarantined),
        }


@dataclass
class _Decision:
    record: RecordEntry
    decision: str
    actual_checksum: str | None = None
    golden: bytes | None = None
    masked: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    approval: dict[str, Any] | None = None

    def line(self, tier: str, policy: str) -> bytes:
        """What the ledger commits to per record: deterministic, so an unchanged partition re-promotes to the same root."""
        return canonical_json({
            "log_id": self.record.log_id, "decision": self.decision, "raw_checksum": self.record.checksum,
            "golden_checksum": checksum(self.golden) if self.golden is not None else None,
            "masked": [[m["path"], m["type"]] for m in self.masked], "reason": self.reason,
            "approved": bool(self.approval), "tier": tier, "policy": policy,
        })


def manifest_key(prefix: str) -> str:
    return prefix + "manifest.json"


def records_key(prefix: str) -> str:
    return prefix + "records.ndjson"


def promote_partition(
    *, store: ObjectStore, catalog: Catalog, signer: Signer, scanner: PiiScanner, policy: MaskPolicy, provider: str,
    kind: str, partition: str, requested_by: str, tier: str, run_id: str, promotion_id: str | None = None,
    approval: dict[str, Any] | None = None,
) -> PromotionSummary:
    """Promote one partition; ``approval`` (log_id, approved_by, reason_code) audits an admin's approval."""
    hour, name = split_partition_key(partition)
    if name != provider:
        raise PromotionError("invalid_partition", f"partition {partition} does not belong to provider {provider!r}")
    window = HourWindow.for_hour_key(hour)
    entries = partition_entries(catalog, partition)
    if not entries:
        raise PromotionError("not_in_ledger", f"partition {partition} has no ledger entry: it has not passed its checks")
    entry = entries[-1]
    records = list(catalog.iter_partition_records(partition))  # log order: ascending log_id
    ledger_ok = not verify_partition_records(entry, (record.checksum for record in records))
    known = {item["log_id"]: item for item in catalog.list_quarantine(partition=partition, limit=10_000_000)}
    approved = {log_id: item for log_id, item in known.items() if item.get("status") == APPROVED_STATUS}
    decisions = _decide(store, entry, records, ledger_ok, approved, scanner, policy)
    lines = [d.line(tier, policy.mode) for d in decisions]

    prefix = golden_prefix(kind, provider, window)
    draft = decision_entry(provider=provider, partition=partition, sequence=1, previous_hash="0" * 64,
                           decision_lines=lines, objects=(), run_id=run_id, body={})
    counts = {name: 0 for name in DECISIONS} | Counter(d.decision for d in decisions)
    previous = partition_entries(catalog, partition, KIND_PROMOTION_DECISION)
    if (approval is None and previous and previous[-1].merkle_root == draft.merkle_root
            and previous[-1].record_count == draft.record_count and store.exists(manifest_key(prefix))):
        return _summary(previous[-1], decisions, counts, prefix, kind, new=False)

    now = utc_now()
    sources = {key for key, _ in entry.objects}
    golden, manifest_records = bytearray(), []
    for d in decisions:
        row = {"log_id": d.record.log_id, "decision": d.decision,
               "raw": {"key": d.record.object_key, "offset": d.record.offset, "length": d.record.length,
                       "digest": d.record.checksum},
               "golden": None, "masked": d.masked, "reason": d.reason, "approval": d.approval,
               "ledger_entry": {"sequence": entry.sequence, "hash": entry.entry_hash},
               "policy_tier": tier, "masking_policy": policy.mode, "requested_by": requested_by, "promoted_at": now}
        if d.golden is not None:
            row["golden"] = {"offset": len(golden), "length": len(d.golden), "digest": checksum(d.golden)}
            # One record per line; a raw record may hold newlines as JSON whitespace, so the
            # manifest's offsets, not line splitting, are the authoritative way to read it back.
            golden += d.golden + b"\n"
        manifest_records.append(row)
    # Golden objects are derived and re-computable (like reports): an approval adds records, so
    # they are replaced; their checksums are in the manifest and in the signed decision entry.
    records_put = store.put(records_key(prefix), bytes(golden), overwrite=True)
    manifest = {
        "version": 1, "provider": provider, "kind": kind, "partition": partition, "golden_prefix": prefix,
        "records_key": records_key(prefix), "records_checksum": records_put.checksum, "counts": counts,
        "partition_entry": {"sequence": entry.sequence, "hash": entry.entry_hash, "merkle_root": entry.merkle_root},
        "ledger_verified": ledger_ok, "policy_tier": tier, "masking_policy": policy.mode,
        "requested_by": requested_by, "promoted_at": now, "promotion_id": promotion_id, "records": manifest_records,
    }
    manifest_put = store.put(manifest_key(prefix), json.dumps(manifest, ensure_ascii=False, indent=1).encode(),
                             overwrite=True)
    quarantine_objects = _quarantine(store, catalog, window, entry, decisions, known, now)
    objects = sorted([(records_put.key, records_put.checksum), (manifest_put.key, manifest_put.checksum),
                      *quarantine_objects])
    body = {"action": "quarantine_approval" if approval else "promotion", "counts": counts,
            "manifest_key": manifest_put.key, "manifest_checksum": manifest_put.checksum,
            "requested_by": requested_by, "tier": tier, "masking_policy": policy.mode,
            "partition_entry": {"sequence": entry.sequence, "hash": entry.entry_hash},
            "promotion_id": promotion_id, "approval": approval}
    written = append_entry(store=store, catalog=catalog, signer=signer,
                           draft=decision_entry(provider=provider, partition=partition, sequence=1,
                                                previous_hash="0" * 64, decision_lines=lines, objects=objects,
                                                run_id=run_id, body=body, created_at=now))
    _index(catalog, provider, partition, run_id, now, sources, records_put, manifest_put, quarantine_objects,
           counts, requested_by, tier, written)
    return _summary(written, decisions, counts, prefix, kind, new=True)


def _decide(store: ObjectStore, entry: LedgerEntry, records: list[RecordEntry], ledger_ok: bool,
            approved: dict[str, dict], scanner: PiiScanner, policy: MaskPolicy) -> list[_Decision]:
    committed = dict(entry.objects)
    by_object: dict[str, list[RecordEntry]] = defaultdict(list)
    for record in records:
        by_object[record.object_key].append(record)
    decided: dict[str, _Decision] = {}
    for key, group in by_object.items():  # one object in memory at a time
        try:
            data = store.get(key)
        except ObjectMissingError:
            data = None
        object_ok = data is not None and committed.get(key) == checksum(data)
        view = memoryview(data) if data is not None else None
        for record in group:
            piece = bytes(view[record.offset: record.offset + record.length]) if view is not None else None
            decided[record.log_id] = _decide_record(record, piece, object_ok, ledger_ok, approved.get(record.log_id),
                                                    scanner, policy)
    return [decided[record.log_id] for record in records]


def _decide_record(record: RecordEntry, piece: bytes | None, object_ok: bool, ledger_ok: bool,
                   approval: dict | None, scanner: PiiScanner, policy: MaskPolicy) -> _Decision:
    actual = checksum(piece) if piece is not None and len(piece) == record.length else None
    if piece is None:
        reason = RAW_OBJECT_MISSING
    elif not ledger_ok:
        reason = LEDGER_MISMATCH
    elif actual != record.checksum:
        reason = CHECKSUM_MISMATCH
    elif not object_ok:
        reason = RAW_OBJECT_ALTERED
    elif record.status == DEAD_LETTER:
        reason = FAILED_INPUT_VALIDATION
    else:
        reason = None
    grant = None
    if reason in APPROVABLE and approval is not None:
        grant = {"approved_by": approval.get("approved_by"), "reason_code": approval.get("reason_code"),
                 "overrides": reason}
        reason = None
    if reason is not None:
        return _Decision(record, QUARANTINED, actual, reason=reason)
    try:
        value = decode_record(piece)
    except RecordDecodeError:
        return _Decision(record, QUARANTINED, actual, reason=NOT_JSON)
    masked_value, report = mask(value, policy, scanner)
    if not report.items:
        return _Decision(record, CLEAN, actual, golden=piece, approval=grant)
    golden = json.dumps(masked_value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    masked = [{"path": item.path, "type": item.type, "in_key": item.in_key} for item in report.items]
    return _Decision(record, MASKED, actual, golden=golden, masked=masked, approval=grant)


def _quarantine(store: ObjectStore, catalog: Catalog, window: HourWindow, entry: LedgerEntry,
                decisions: list[_Decision], known: dict[str, dict], now: str) -> list[tuple[str, str]]:
    """Quarantine objects (reason, raw pointer, digests; never the bytes) and catalog items."""
    objects, items = [], []
    for d in decisions:
        record = d.record
        existing = known.get(record.log_id)
        if d.decision != QUARANTINED:
            if existing is not None and existing.get("status") != RELEASED_STATUS:
                items.append(existing | {"status": RELEASED_STATUS, "released_at": now})
            continue
        document = {
            "log_id": record.log_id, "provider": record.provider, "partition": record.partition, "reason": d.reason,
            "raw": {"key": record.object_key, "offset": record.offset, "length": record.length},
            "catalog_checksum": record.checksum, "actual_checksum": d.actual_checksum,
            "ledger_entry": {"sequence": entry.sequence, "hash": entry.entry_hash}, "quarantined_at": now,
        }
        put = store.put(quarantine_key(record.provider, window, record.log_id),
                        json.dumps(document, indent=1).encode(), overwrite=True)
        objects.append((put.key, put.checksum))
        # An approval stays on record (and in force) while the reason is one it cannot override.
        status = APPROVED_STATUS if existing and existing.get("status") == APPROVED_STATUS else QUARANTINED_STATUS
        items.append((existing or {}) | document | {"status": status, "quarantine_key": put.key})
    catalog.put_quarantine(items)
    return objects


def _index(catalog: Catalog, provider: str, partition: str, run_id: str, now: str, sources: set[str], records_put,
           manifest_put, quarantine_objects: list[tuple[str, str]], counts: dict[str, int], requested_by: str,
           tier: str, entry: LedgerEntry) -> None:
    """Golden artifacts in the artifact index, lineage back to the raw objects they came from."""
    raw_ids = sorted(artifact_id("raw_object", partition, key) for key in sources)
    meta = {"counts": counts, "requested_by": requested_by, "policy_tier": tier, "promoted_at": now,
            "ledger_sequence": entry.sequence}
    records_id = artifact_id("golden_records", partition, records_put.key)
    artifacts = [
        Artifact(records_id, "golden_records", provider, partition, records_put.key, records_put.checksum,
                 records_put.size, run_id, now, raw_ids, meta),
        Artifact(artifact_id("golden_manifest", partition, manifest_put.key), "golden_manifest", provider, partition,
                 manifest_put.key, manifest_put.checksum, manifest_put.size, run_id, now, [records_id, *raw_ids], meta),
    ]
    for key, digest in quarantine_objects:
        artifacts.append(Artifact(artifact_id("quarantine", partition, key), "quarantine", provider, partition, key,
                                  digest, None, run_id, now, raw_ids, {"ledger_sequence": entry.sequence}))
    catalog.put_artifacts(artifacts)


def _summary(entry: LedgerEntry, decisions: list[_Decision], counts: dict[str, int], prefix: str, kind: str,
             *, new: bool) -> PromotionSummary:
    return PromotionSummary(
        provider=entry.provider, partition=entry.partition, kind=kind, counts=dict(counts), golden_prefix=prefix,
        manifest_key=manifest_key(prefix), records_key=records_key(prefix), entry_sequence=entry.sequence,
        entry_hash=entry.entry_hash, new_entry=new,
        quarantined={d.record.log_id: d.reason for d in decisions if d.decision == QUARANTINED},
        decisions={d.record.log_id: d.decision for d in decisions},
    )
