"""Promotion raw -> golden: verify a partition against its ledger entry, then decide per record.

Nothing reaches the golden zone on the catalog's word alone. First the partition's newest
ledger entry must exist, the catalog's record checksums (log order) must reproduce its signed
Merkle root, and every raw object must re-hash to the checksum the entry committed to. Then
each record's bytes are re-read and re-hashed against its catalog checksum: verified and clean
records are copied byte-exact, verified records holding PII are copied masked (with a report
of which paths and types were masked, never the values), and everything else is quarantined
with its reason and never reaches golden. The decisions become one signed
``promotion_decision`` ledger entry chained like partition entries. The raw zone is only read;
re-promoting an unchanged partition writes nothing. Work is streamed one raw object (page) at
a time and golden output is written in parts (``records-{n:05d}.ndjson`` +
``manifest-{n:05d}.ndjson`` per raw object, indexed by ``manifest.json``), so memory stays
bounded by the largest page. The scratch files that takes (up to the size of the hour) live in
``$VAULT_HOME/work/promotion-*``, never the system temp dir, with the owning process's stamp
inside: a promotion killed with -9 leaves its directory behind, and the next promotion removes
every one whose owner is provably gone (never a running one's). No Dagster here: the asset and
the HTTP API both call :func:`promote_partition`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import Any

import msgspec

from vault_pipeline.core.checksums import checksum
from vault_pipeline.core.framing import RecordDecodeError, decode_record
from vault_pipeline.core.layout import golden_prefix, quarantine_key
from vault_pipeline.core.ledger import (
    KIND_PROMOTION_DECISION,
    LedgerEntry,
    Signer,
    canonical_json,
    utc_now,
    verify_partition_records,
)
from vault_pipeline.core.merkle import MerkleBuilder, as_leaf
from vault_pipeline.core.pii import MaskPolicy, PiiScanner, mask
from vault_pipeline.core.processes import claim_work_dir, release_work_dir, sweep_stale_work_dirs
from vault_pipeline.core.pushed_records import stored_case_value
from vault_pipeline.core.test_runs import JUnitError
from vault_pipeline.core.windows import HourWindow, split_partition_key
from vault_pipeline.defs.collector import cyclic_gc_paused
from vault_pipeline.defs.integrity.artifacts import artifact_id
from vault_pipeline.defs.integrity.ledger_stage import append_entry, partition_entries
from vault_pipeline.storage.catalog import DEAD_LETTER, Artifact, Catalog, RecordEntry
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore

log = logging.getLogger(__name__)

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
    entry_sequence: int
    entry_hash: str
    new_entry: bool
    quarantined: dict[str, str] = field(default_factory=dict)  # log_id -> reason (a sample, plus tracked logs)
    decisions: dict[str, str] = field(default_factory=dict)  # log_id -> decision, for the tracked logs

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider, "partition": self.partition, "kind": self.kind, "counts": dict(self.counts),
            "golden_prefix": self.golden_prefix, "manifest_key": self.manifest_key,
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

    def line(self, tier: str, policy: str, golden_checksum: str | None) -> bytes:
        """What the ledger commits to per record: deterministic, so an unchanged partition re-promotes to the same root."""
        return canonical_json({
            "log_id": self.record.log_id, "decision": self.decision, "raw_checksum": self.record.checksum,
            "golden_checksum": golden_checksum,
            "masked": [[m["path"], m["type"]] for m in self.masked], "reason": self.reason,
            "approved": bool(self.approval), "tier": tier, "policy": policy,
        })


_GOLDEN_JSON = msgspec.json.Encoder()
PART_RECORDS, PART_MANIFEST, INDEX = "records-{:05d}.ndjson", "manifest-{:05d}.ndjson", "manifest.json"
QUARANTINED_SAMPLE = 1000  # log_ids listed per summary (counts carry the totals)
_BATCH = 10_000
WORK_PREFIX = "promotion"  # $VAULT_HOME/work/promotion-XXXXXXXX, one per promotion under way


def default_work_root() -> Path:
    """``$VAULT_HOME/work``: promotion's scratch stays on the vault's own disk, even when the
    objects are in S3 (VAULT_HOME is a local directory in every deployment)."""
    return Path(os.environ.get("VAULT_HOME", ".vault")) / "work"


def manifest_key(prefix: str) -> str:
    """The partition's small index: the parts with their checksums and counts, and the decision root."""
    return prefix + INDEX


def part_records_key(prefix: str, part: int) -> str:
    return prefix + PART_RECORDS.format(part)


def part_manifest_key(prefix: str, part: int) -> str:
    return prefix + PART_MANIFEST.format(part)


# Manifest rows hold only strings, ints, bools and None: msgspec encodes them (compact, UTF-8,
# key order kept) several times faster than json.dumps, the biggest per-record cost after masking.
_encode_row = msgspec.json.Encoder().encode
_RECORD_FIELDS = tuple(f.name for f in fields(RecordEntry))
_record_row = attrgetter(*_RECORD_FIELDS)


def read_manifest(store: ObjectStore, prefix: str) -> dict[str, Any]:
    """The partition's index (``manifest.json``) under ``prefix``."""
    return json.loads(store.get(manifest_key(prefix)))


def iter_manifest_rows(store: ObjectStore, prefix: str) -> Iterator[dict[str, Any]]:
    """Every record's manifest row, part by part (one part in memory at a time)."""
    for part in read_manifest(store, prefix)["parts"]:
        for line in store.get(part["manifest_key"]).splitlines():
            if line:
                yield json.loads(line)


class _Workspace:
    """Local scratch (a SQLite file in the work dir) that keeps memory bounded whatever the hour's size.

    Holds the partition's record index ordered by (object_key, offset) so records can be
    worked one raw object at a time, and the (log_id, decision digest) pairs so the decision
    Merkle root can be built in log order afterwards.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.db = sqlite3.connect(os.path.join(directory, "work.sqlite"))
        self.db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;"
            f"CREATE TABLE records ({', '.join(f'c{i}' for i in range(len(_RECORD_FIELDS)))});"
            "CREATE TABLE digests (log_id TEXT, digest BLOB);"
        )

    def add_records(self, records: list[RecordEntry]) -> None:
        self.db.executemany(f"INSERT INTO records VALUES ({','.join('?' * len(_RECORD_FIELDS))})",
                            map(_record_row, records))

    def objects(self) -> Iterator[tuple[str, list[RecordEntry]]]:
        """(object_key, its records by offset), one raw object at a time, in object_key order."""
        order = ", ".join(f"c{_RECORD_FIELDS.index(name)}" for name in ("object_key", "offset", "log_id"))
        rows = self.db.execute(f"SELECT * FROM records ORDER BY {order}")
        for key, group in groupby((RecordEntry(*row) for row in rows), key=attrgetter("object_key")):
            yield key, list(group)

    def add_digests(self, pairs: list[tuple[str, bytes]]) -> None:
        self.db.executemany("INSERT INTO digests VALUES (?,?)", pairs)

    def digests(self) -> Iterator[bytes]:
        """Decision-line digests in log order (ascending log_id)."""
        for (digest,) in self.db.execute("SELECT digest FROM digests ORDER BY log_id"):
            yield digest

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def close(self) -> None:
        self.db.close()


def promote_partition(
    *, store: ObjectStore, catalog: Catalog, signer: Signer, scanner: PiiScanner, policy: MaskPolicy, provider: str,
    kind: str, partition: str, requested_by: str, tier: str, run_id: str, promotion_id: str | None = None,
    approval: dict[str, Any] | None = None, track: Iterable[str] = (), work_root: str | os.PathLike[str] | None = None,
) -> PromotionSummary:
    """Promote one partition, one raw object at a time (memory bounded by the largest object).

    ``approval`` (log_id, approved_by, reason_code) audits an admin's approval; the decisions of
    the log_ids in ``track`` (and of ``approval``'s log) are reported in the summary. Scratch
    files go to a directory of its own under ``work_root`` (default ``$VAULT_HOME/work``).
    """
    hour, name = split_partition_key(partition)
    if name != provider:
        raise PromotionError("invalid_partition", f"partition {partition} does not belong to provider {provider!r}")
    window = HourWindow.for_hour_key(hour)
    entries = partition_entries(catalog, partition)
    if not entries:
        raise PromotionError("not_in_ledger", f"partition {partition} has no ledger entry: it has not passed its checks")
    entry = entries[-1]
    known = {item["log_id"]: item for item in catalog.list_quarantine(partition=partition, limit=10_000_000)}
    approved = {log_id: item for log_id, item in known.items() if item.get("status") == APPROVED_STATUS}
    watched = set(track) | ({approval["log_id"]} if approval and approval.get("log_id") else set())
    prefix = golden_prefix(kind, provider, window)
    root = Path(work_root) if work_root is not None else default_work_root()
    # What earlier promotions killed with -9 left behind (their finally never ran), before this
    # one takes its own share of the disk.
    for stale in sweep_stale_work_dirs(root, WORK_PREFIX):
        log.info("removed %s: left by a promotion whose process is gone", stale)
    directory = claim_work_dir(root, WORK_PREFIX)
    try:
        work = _Workspace(str(directory))
        try:
            with cyclic_gc_paused():
                return _promote(work, store=store, catalog=catalog, signer=signer, scanner=scanner, policy=policy,
                                provider=provider, kind=kind, partition=partition, requested_by=requested_by,
                                tier=tier, run_id=run_id, promotion_id=promotion_id, approval=approval, window=window,
                                entry=entry, known=known, approved=approved, watched=watched, prefix=prefix)
        finally:
            work.close()
    finally:
        release_work_dir(directory)


def _promote(work: _Workspace, *, store, catalog, signer, scanner, policy, provider, kind, partition, requested_by,
             tier, run_id, promotion_id, approval, window, entry, known, approved, watched, prefix) -> PromotionSummary:
    # 1. The catalog's records, streamed once: against the signed root, and into the workspace.
    buffer: list[RecordEntry] = []

    def checksums() -> Iterator[str | bytes]:
        for record in catalog.iter_partition_records(partition):  # log order: ascending log_id
            buffer.append(record)
            if len(buffer) >= _BATCH:
                work.add_records(buffer)
                buffer.clear()
            # A catalog checksum that is not even a digest cannot match the signed root: it
            # stands in as zero bytes, so the partition fails the ledger check (every record is
            # quarantined) instead of the promotion stopping half-way through the workspace.
            try:
                leaf = as_leaf(record.checksum)
            except (TypeError, ValueError):
                leaf = bytes(32)
            yield leaf

    ledger_ok = not verify_partition_records(entry, checksums())
    work.add_records(buffer)
    buffer.clear()

    # 2. Decide per raw object; each part is staged on local disk until we know it is new.
    now = utc_now()
    committed = dict(entry.objects)
    # Hashed once: the entry's hash covers its whole body (every object), so computing it per
    # record made promotion quadratic in the partition's size.
    entry_ref = {"sequence": entry.sequence, "hash": entry.entry_hash}
    counts = {name: 0 for name in DECISIONS}
    quarantined: dict[str, str] = {}
    decisions: dict[str, str] = {}
    parts: list[dict[str, Any]] = []
    with open(work.path("quarantine.ndjson"), "w", encoding="utf-8") as pending:
        for part, (key, group) in enumerate(work.objects()):
            try:
                data = store.get(key)
            except ObjectMissingError:
                data = None
            object_ok = data is not None and committed.get(key) == checksum(data)
            view = memoryview(data) if data is not None else None
            golden, rows, pairs = bytearray(), [], []
            part_counts = {name: 0 for name in DECISIONS}
            records_name, manifest_name = part_records_key(prefix, part), part_manifest_key(prefix, part)
            for record in group:
                piece = bytes(view[record.offset: record.offset + record.length]) if view is not None else None
                d = _decide_record(record, piece, object_ok, ledger_ok, approved.get(record.log_id), scanner, policy)
                if d.golden is None:
                    golden_checksum = None
                elif d.golden is piece:  # a clean record is copied as is: its digest was just taken
                    golden_checksum = d.actual_checksum
                else:
                    golden_checksum = checksum(d.golden)
                pairs.append((record.log_id, hashlib.sha256(d.line(tier, policy.mode, golden_checksum)).digest()))
                part_counts[d.decision] += 1
                if record.log_id in watched:
                    decisions[record.log_id] = d.decision
                row = {"log_id": record.log_id, "decision": d.decision,
                       "raw": {"key": record.object_key, "offset": record.offset, "length": record.length,
                               "digest": record.checksum},
                       "golden": None, "masked": d.masked, "reason": d.reason, "approval": d.approval,
                       "ledger_entry": entry_ref,
                       "policy_tier": tier, "masking_policy": policy.mode, "requested_by": requested_by,
                       "promoted_at": now}
                if d.golden is not None:
                    row["golden"] = {"key": records_name, "offset": len(golden), "length": len(d.golden),
                                     "digest": golden_checksum}
                    # One record per line; a raw record may hold newlines as JSON whitespace, so the
                    # manifest's offsets, not line splitting, are the authoritative way to read it back.
                    golden += d.golden
                    golden += b"\n"
                rows.append(_encode_row(row))
                _pending_quarantine(pending, d, known.get(record.log_id), entry_ref, now)
                if d.decision == QUARANTINED and (len(quarantined) < QUARANTINED_SAMPLE or record.log_id in watched):
                    quarantined[record.log_id] = d.reason
            work.add_digests(pairs)
            manifest_bytes = b"\n".join(rows) + b"\n"
            with open(work.path(f"part-{part}.records"), "wb") as out:
                out.write(golden)
            with open(work.path(f"part-{part}.manifest"), "wb") as out:
                out.write(manifest_bytes)
            for name, value in part_counts.items():
                counts[name] += value
            parts.append({"part": part, "raw_key": key, "raw_object_verified": object_ok,
                          "records_key": records_name, "records_checksum": checksum(bytes(golden)),
                          "records_size": len(golden), "manifest_key": manifest_name,
                          "manifest_checksum": checksum(manifest_bytes), "manifest_size": len(manifest_bytes),
                          "records": len(group), "counts": part_counts})
            del data, view, golden, rows

    # 3. The decision root in log order, streamed from the workspace.
    tree = MerkleBuilder()
    tree.add_many(work.digests())
    root, record_count = tree.root_hex(), tree.count
    previous = partition_entries(catalog, partition, KIND_PROMOTION_DECISION)
    if (approval is None and previous and previous[-1].merkle_root == root
            and previous[-1].record_count == record_count and store.exists(manifest_key(prefix))):
        return _summary(previous[-1], counts, quarantined, decisions, prefix, kind, new=False)

    # 4. Something changed: write the parts, the index, quarantine items and the decision entry.
    # Golden objects are derived and re-computable (like reports): an approval adds records, so
    # they are replaced; their checksums are in the index and in the signed decision entry.
    objects: list[tuple[str, str]] = []
    for part in parts:
        for name, suffix in (("records", "records"), ("manifest", "manifest")):
            with open(work.path(f"part-{part['part']}.{suffix}"), "rb") as staged:
                put = store.put(part[f"{name}_key"], staged.read(), overwrite=True)
            objects.append((put.key, put.checksum))
    index = {
        "version": 2, "provider": provider, "kind": kind, "partition": partition, "golden_prefix": prefix,
        "counts": counts, "record_count": record_count, "decision_root": root,
        "partition_entry": {"sequence": entry.sequence, "hash": entry.entry_hash, "merkle_root": entry.merkle_root},
        "ledger_verified": ledger_ok, "policy_tier": tier, "masking_policy": policy.mode,
        "requested_by": requested_by, "promoted_at": now, "promotion_id": promotion_id, "parts": parts,
    }
    manifest_put = store.put(manifest_key(prefix), json.dumps(index, ensure_ascii=False, indent=1).encode(),
                             overwrite=True)
    quarantine_objects = _quarantine(store, catalog, window, work.path("quarantine.ndjson"))
    objects = sorted([*objects, (manifest_put.key, manifest_put.checksum), *quarantine_objects])
    body = {"action": "quarantine_approval" if approval else "promotion", "counts": counts,
            "manifest_key": manifest_put.key, "manifest_checksum": manifest_put.checksum,
            "requested_by": requested_by, "tier": tier, "masking_policy": policy.mode,
            "partition_entry": {"sequence": entry.sequence, "hash": entry.entry_hash},
            "promotion_id": promotion_id, "approval": approval}
    draft = LedgerEntry(provider=provider, partition=partition, sequence=1, previous_hash="0" * 64, created_at=now,
                        run_id=run_id, kind=KIND_PROMOTION_DECISION, merkle_root=root, record_count=record_count,
                        objects=tuple(objects), body=body)
    written = append_entry(store=store, catalog=catalog, signer=signer, draft=draft)
    _index(catalog, provider, partition, run_id, now, parts, manifest_put, quarantine_objects, counts,
           requested_by, tier, written)
    return _summary(written, counts, quarantined, decisions, prefix, kind, new=True)


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
    golden = _GOLDEN_JSON.encode(masked_value)
    masked = [{"path": item.path, "type": item.type, "in_key": item.in_key} for item in report.items]
    return _Decision(record, MASKED, actual, golden=golden, masked=masked, approval=grant)


def _pending_quarantine(pending, d: _Decision, existing: dict | None, entry_ref: dict[str, Any], now: str) -> None:
    """Stage the catalog change a decision implies (a quarantine document, or a release)."""
    record = d.record
    if d.decision != QUARANTINED:
        if existing is not None and existing.get("status") != RELEASED_STATUS:
            pending.write(json.dumps({"release": existing | {"status": RELEASED_STATUS, "released_at": now}}) + "\n")
        return
    document = {
        "log_id": record.log_id, "provider": record.provider, "partition": record.partition, "reason": d.reason,
        "raw": {"key": record.object_key, "offset": record.offset, "length": record.length},
        "catalog_checksum": record.checksum, "actual_checksum": d.actual_checksum,
        "ledger_entry": entry_ref, "quarantined_at": now,
    }
    pending.write(json.dumps({"document": document, "existing": existing}) + "\n")


def _quarantine(store: ObjectStore, catalog: Catalog, window: HourWindow, staged: str) -> list[tuple[str, str]]:
    """Quarantine objects (reason, raw pointer, digests; never the bytes) and catalog items, in batches."""
    objects, items = [], []
    with open(staged, encoding="utf-8") as lines:
        for line in lines:
            change = json.loads(line)
            if "release" in change:
                items.append(change["release"])
            else:
                document, existing = change["document"], change["existing"]
                put = store.put(quarantine_key(document["provider"], window, document["log_id"]),
                                json.dumps(document, indent=1).encode(), overwrite=True)
                objects.append((put.key, put.checksum))
                # An approval stays on record (and in force) while the reason is one it cannot override.
                status = (APPROVED_STATUS if existing and existing.get("status") == APPROVED_STATUS
                          else QUARANTINED_STATUS)
                items.append((existing or {}) | document | {"status": status, "quarantine_key": put.key})
            if len(items) >= 1000:
                catalog.put_quarantine(items)
                items = []
    catalog.put_quarantine(items)
    return objects


def _index(catalog: Catalog, provider: str, partition: str, run_id: str, now: str, parts: list[dict[str, Any]],
           manifest_put, quarantine_objects: list[tuple[str, str]], counts: dict[str, int], requested_by: str,
           tier: str, entry: LedgerEntry) -> None:
    """Golden artifacts in the artifact index, lineage back to the raw objects they came from.

    Each part's records (``golden_records``) and per-record manifest (``golden_manifest_part``)
    descend from their raw object; the index (``golden_manifest``) from every part and raw object.
    """
    raw_ids = sorted({artifact_id("raw_object", partition, part["raw_key"]) for part in parts})
    meta = {"counts": counts, "requested_by": requested_by, "policy_tier": tier, "promoted_at": now,
            "ledger_sequence": entry.sequence}
    artifacts, part_ids = [], []
    for part in parts:
        raw_id = [artifact_id("raw_object", partition, part["raw_key"])]
        part_meta = meta | {"part": part["part"], "counts": part["counts"], "partition_counts": counts}
        records_id = artifact_id("golden_records", partition, part["records_key"])
        manifest_id = artifact_id("golden_manifest_part", partition, part["manifest_key"])
        artifacts.append(Artifact(records_id, "golden_records", provider, partition, part["records_key"],
                                  part["records_checksum"], part["records_size"], run_id, now, raw_id, part_meta))
        artifacts.append(Artifact(manifest_id, "golden_manifest_part", provider, partition, part["manifest_key"],
                                  part["manifest_checksum"], part["manifest_size"], run_id, now,
                                  [records_id, *raw_id], part_meta))
        part_ids += [records_id, manifest_id]
    artifacts.append(Artifact(artifact_id("golden_manifest", partition, manifest_put.key), "golden_manifest", provider,
                              partition, manifest_put.key, manifest_put.checksum, manifest_put.size, run_id, now,
                              [*part_ids, *raw_ids], meta | {"parts": len(parts)}))
    for key, digest in quarantine_objects:
        artifacts.append(Artifact(artifact_id("quarantine", partition, key), "quarantine", provider, partition, key,
                                  digest, None, run_id, now, raw_ids, {"ledger_sequence": entry.sequence}))
    catalog.put_artifacts(artifacts)


def _summary(entry: LedgerEntry, counts: dict[str, int], quarantined: dict[str, str], decisions: dict[str, str],
             prefix: str, kind: str, *, new: bool) -> PromotionSummary:
    return PromotionSummary(
        provider=entry.provider, partition=entry.partition, kind=kind, counts=dict(counts), golden_prefix=prefix,
        manifest_key=manifest_key(prefix), entry_sequence=entry.sequence, entry_hash=entry.entry_hash,
        new_entry=new, quarantined=dict(quarantined), decisions=dict(decisions),
    )
