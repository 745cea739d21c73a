"""What promotion decides, record by record and raw object by raw object.

Each record's bytes are re-read and re-hashed against its catalog checksum: verified and clean
records are copied byte-exact, verified records holding PII are copied masked (with a report of
which paths and types were masked, never the values), and everything else is quarantined with
its reason. ``decide_part`` does that for every record of one raw object and returns the part's
golden bytes, its manifest rows, the decision digests for the signed root and the quarantine
changes it implies. It needs only the object store and the scanner, no catalog and no Dagster,
so promotion can run it in worker processes, one raw object per task, and get the very same
bytes as in its own process.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import sqlite3
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from vault_pipeline.core.checksums import checksum
from vault_pipeline.core.framing import RecordDecodeError, decode_record
from vault_pipeline.core.ledger import LedgerEntry, PartitionDigest, verify_partition_digest
from vault_pipeline.core.merkle import digests_from_checksums
from vault_pipeline.core.pii import MaskPolicy, PiiScanner, mask
from vault_pipeline.core.pushed_records import stored_case_value
from vault_pipeline.core.test_runs import JUnitError
from vault_pipeline.defs.promotion.workspace import DecisionRecord, checksum_pages_in_log_order, open_sealed, records_of
from vault_pipeline.storage.catalog import DEAD_LETTER
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

# Masked golden records, manifest rows and decision lines: msgspec writes compact UTF-8 JSON (key
# order kept, integers of any size exact) several times faster than json.dumps.
_ENCODER = msgspec.json.Encoder()
_encode_json, _encode_json_into = _ENCODER.encode, _ENCODER.encode_into


@dataclass
class _Decision:
    record: DecisionRecord
    decision: str
    actual_checksum: str | None = None
    golden: bytes | None = None
    masked: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    approval: dict[str, Any] | None = None

    def line(self, tier: str, policy: str, golden_checksum: str | None) -> bytes:
        """What the ledger commits to per record: deterministic, so an unchanged partition re-promotes to the same root."""
        return _encode_json(_DecisionLine(
            bool(self.approval), self.decision, golden_checksum, self.record.log_id,
            [[m["path"], m["type"]] for m in self.masked], policy, self.record.checksum, self.reason, tier,
        ))


class _DecisionLine(msgspec.Struct):
    """A record's decision line, the ledger's signed form of it: ``canonical_json`` of these
    fields (sorted keys, compact, UTF-8). Declared in sorted order, so msgspec writes the very
    same bytes as ``canonical_json`` of the dict, without json.dumps' sort and Python encoder
    (~4 us of a decision's ~50); ``test_promotion_decisions.py`` holds the two equal."""

    approved: bool
    decision: str
    golden_checksum: Any
    log_id: Any
    masked: list
    policy: str
    raw_checksum: Any
    reason: Any
    tier: str



@dataclass(frozen=True, slots=True)
class Promotion:
    """What every decision of one partition's promotion depends on (picklable, sent to each worker once)."""

    committed: dict[str, str]  # raw object key -> its checksum in the partition's ledger entry
    ledger_ok: bool
    approved: dict[str, dict]  # log_id -> approval
    known: dict[str, dict]  # log_id -> existing quarantine item
    tier: str
    requested_by: str
    now: str
    entry_ref: dict[str, Any]
    stage: str  # the work directory the parts are staged in
    watched: frozenset[str] = frozenset()  # log_ids whose decisions the caller reports


@dataclass(frozen=True, slots=True)
class PartTask:
    part: int
    key: str  # the raw object
    records_name: str  # the golden part's object key


@dataclass(slots=True)
class PartOutcome:
    object_ok: bool
    records: int
    golden_checksum: str  # of the staged golden part (``part-<n>.records`` in the work directory)
    golden_size: int
    manifest_checksum: str  # of the staged manifest part (``part-<n>.manifest``)
    manifest_size: int
    positions: bytes  # the records' places in log order (native int64), in the part's order
    digests: bytes  # their decision digests, 32 bytes each, in the same order
    counts: dict[str, int]
    decisions: dict[str, str]  # log_id -> decision, of the watched records only (not a million strings back)
    quarantined: dict[str, str]  # log_id -> reason
    pending: list[str]  # quarantine changes as JSON lines (a quarantine document, or a release)


def staged_part(stage: str, part: int, what: str) -> str:
    """Where a part's golden records (``what="records"``) or manifest rows are staged."""
    return os.path.join(stage, f"part-{part}.{what}")


def decide_part(task: PartTask, records: list[DecisionRecord], promotion: Promotion, store: ObjectStore,
                scanner: PiiScanner, policy: MaskPolicy) -> PartOutcome:
    """Every record of one raw object, decided (the object is read once), its golden records and
    manifest rows staged in the work directory."""
    try:
        data = store.get(task.key)
    except ObjectMissingError:
        data = None
    object_ok = data is not None and promotion.committed.get(task.key) == checksum(data)
    view = memoryview(data) if data is not None else None
    golden, manifest, pending = bytearray(), bytearray(), []
    positions, digests = array("q"), bytearray()
    counts = {name: 0 for name in DECISIONS}
    decisions: dict[str, str] = {}
    quarantined: dict[str, str] = {}
    tier, entry_ref, now, watched = promotion.tier, promotion.entry_ref, promotion.now, promotion.watched
    for record in records:
        piece = bytes(view[record.offset: record.offset + record.length]) if view is not None else None
        d = _decide_record(record, piece, object_ok, promotion.ledger_ok, promotion.approved.get(record.log_id),
                           scanner, policy)
        if d.golden is None:
            golden_checksum = None
        elif d.golden is piece:  # a clean record is copied as is: its digest was just taken
            golden_checksum = d.actual_checksum
        else:
            golden_checksum = checksum(d.golden)
        positions.append(record.position)
        digests += hashlib.sha256(d.line(tier, policy.mode, golden_checksum)).digest()
        counts[d.decision] += 1
        if watched and record.log_id in watched:
            decisions[record.log_id] = d.decision
        row = {"log_id": record.log_id, "decision": d.decision,
               "raw": {"key": record.object_key, "offset": record.offset, "length": record.length,
                       "digest": record.checksum},
               "golden": None, "masked": d.masked, "reason": d.reason, "approval": d.approval,
               "ledger_entry": entry_ref,
               "policy_tier": tier, "masking_policy": policy.mode, "requested_by": promotion.requested_by,
               "promoted_at": now}
        if d.golden is not None:
            row["golden"] = {"key": task.records_name, "offset": len(golden), "length": len(d.golden),
                             "digest": golden_checksum}
            # One record per line; a raw record may hold newlines as JSON whitespace, so the
            # manifest's offsets, not line splitting, are the authoritative way to read it back.
            golden += d.golden
            golden += b"\n"
        # Encoded straight onto the part, a line each: no list of row strings joined and copied after.
        _encode_json_into(row, manifest, -1)
        manifest += b"\n"
        line = _pending_quarantine(d, promotion.known.get(record.log_id), entry_ref, now)
        if line is not None:
            pending.append(line)
        if d.decision == QUARANTINED:
            quarantined[record.log_id] = d.reason
    with open(staged_part(promotion.stage, task.part, "records"), "wb") as out:
        out.write(golden)
    with open(staged_part(promotion.stage, task.part, "manifest"), "wb") as out:
        out.write(manifest)
    return PartOutcome(object_ok, len(records), checksum(golden), len(golden), checksum(manifest),
                       len(manifest), positions.tobytes(), bytes(digests), counts, decisions, quarantined, pending)


def _decide_record(record: DecisionRecord, piece: bytes | None, object_ok: bool, ledger_ok: bool,
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
        # A pushed JUnit report's records are <testcase> elements: scanned as the case's fields.
        value = stored_case_value(piece) if record.object_key.endswith(".xml") else decode_record(piece)
    except (RecordDecodeError, JUnitError):
        return _Decision(record, QUARANTINED, actual, reason=NOT_JSON)
    masked_value, report = mask(value, policy, scanner)
    if not report.items:
        return _Decision(record, CLEAN, actual, golden=piece, approval=grant)
    # A masked copy is a new serialisation (the raw bytes stay untouched in the raw zone):
    # compact UTF-8 JSON, integers of any size exact; msgspec, as fast as the decode. A masked
    # test case is its fields as JSON too: XML is not rewritten.
    golden = _encode_json(masked_value)
    masked = [{"path": item.path, "type": item.type, "in_key": item.in_key} for item in report.items]
    return _Decision(record, MASKED, actual, golden=golden, masked=masked, approval=grant)


def _pending_quarantine(d: _Decision, existing: dict | None, entry_ref: dict[str, Any], now: str) -> str | None:
    """The catalog change a decision implies (a quarantine document, or a release), as a JSON line."""
    record = d.record
    if d.decision != QUARANTINED:
        if existing is not None and existing.get("status") != RELEASED_STATUS:
            return json.dumps({"release": existing | {"status": RELEASED_STATUS, "released_at": now}}) + "\n"
        return None
    document = {
        "log_id": record.log_id, "provider": record.provider, "partition": record.partition, "reason": d.reason,
        "raw": {"key": record.object_key, "offset": record.offset, "length": record.length},
        "catalog_checksum": record.checksum, "actual_checksum": d.actual_checksum,
        "ledger_entry": entry_ref, "quarantined_at": now,
    }
    return json.dumps({"document": document, "existing": existing}) + "\n"


def workspace_reproduces_root(db: sqlite3.Connection, entry: LedgerEntry) -> bool:
    """Whether the workspace's records (their catalog checksums, in log order) reproduce the
    Merkle root the partition's signed ledger entry committed to."""
    digest = PartitionDigest()
    for page in checksum_pages_in_log_order(db):
        # A catalog checksum that is not even a digest cannot match the signed root: it stands
        # in as zero bytes, so the partition fails the ledger check (every record is
        # quarantined) instead of the promotion stopping half-way. A page at a time: 1M
        # checksums one by one through as_leaf took ~2 s of a worker.
        digests, _odd = digests_from_checksums(page, flag_invalid=True)
        digest.add_digests(digests)
    return not verify_partition_digest(entry, digest)


# -- in a worker process ---------------------------------------------------------------------------

_worker: tuple[sqlite3.Connection, Promotion, ObjectStore, PiiScanner, MaskPolicy] | None = None


def start_worker(records_index: str, promotion: Promotion, open_store: Callable[[], ObjectStore],
                 scanner: PiiScanner, policy: MaskPolicy) -> None:
    """A promotion worker's set-up: the sealed record index read-only, its own store handle, and no
    cyclic GC (it lives for one partition)."""
    global _worker
    gc.disable()
    _worker = (open_sealed(records_index), promotion, open_store(), scanner, policy)


def sealed_index_reproduces_root(entry: LedgerEntry) -> bool:
    """``workspace_reproduces_root`` over the sealed index, in a worker beside the decisions."""
    return workspace_reproduces_root(_worker[0], entry)


def decide_part_in_worker(task: PartTask) -> PartOutcome:
    index, promotion, store, scanner, policy = _worker
    return decide_part(task, records_of(index, task.key), promotion, store, scanner, policy)
