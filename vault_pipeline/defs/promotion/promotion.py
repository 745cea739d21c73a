"""Promotion raw -> golden: verify a partition against its ledger entry, then decide per record.

Nothing reaches the golden zone on the catalog's word alone. First the partition's newest
ledger entry must exist, the catalog's record checksums (log order) must reproduce its signed
Merkle root, and every raw object must re-hash to the checksum the entry committed to. Then
each record is decided (``decisions.py``: re-read and re-hashed; copied byte-exact, copied masked,
or quarantined with its reason), one raw object per task, in worker processes side by side when
the hour is large and the store can be opened again in another process (the PII scan is pure
Python: threads would share one core). The decisions become one signed
``promotion_decision`` ledger entry chained like partition entries. The raw zone is only read;
re-promoting an unchanged partition writes nothing. Work is streamed one raw object (page) at
a time (a few in flight with workers) and golden output is written in parts (``records-{n:05d}.ndjson`` +
``manifest-{n:05d}.ndjson`` per raw object, indexed by ``manifest.json``), so memory stays
bounded by the largest page. The scratch files that takes (up to the size of the hour) live in
``$VAULT_HOME/work/promotion-*``, never the system temp dir, with the owning process's stamp
inside: a promotion killed with -9 leaves its directory behind, and the next promotion removes
every one whose owner is provably gone (never a running one's). No Dagster here: the asset and
the HTTP API both call :func:`promote_partition`.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vault_pipeline.allocators import returns_freed_memory
from vault_pipeline.core.layout import golden_prefix, quarantine_key
from vault_pipeline.core.ledger import (
    KIND_PROMOTION_DECISION,
    LedgerEntry,
    Signer,
    utc_now,
)
from vault_pipeline.core.merkle import MerkleBuilder
from vault_pipeline.core.pii import MaskPolicy, PiiScanner
from vault_pipeline.core.processes import own_work_dir
from vault_pipeline.core.windows import HourWindow, split_partition_key
from vault_pipeline.defs.collector import cyclic_gc_paused
from vault_pipeline.defs.integrity.artifacts import artifact_id
from vault_pipeline.defs.integrity.ledger_stage import append_entry, partition_entries
from vault_pipeline.defs.promotion.decisions import (  # noqa: F401 - re-exported: the decisions' names
    APPROVABLE,
    APPROVED_STATUS,
    CHECKSUM_MISMATCH,
    CLEAN,
    DECISIONS,
    FAILED_INPUT_VALIDATION,
    LEDGER_MISMATCH,
    MASKED,
    NOT_JSON,
    QUARANTINED,
    QUARANTINED_STATUS,
    RAW_OBJECT_ALTERED,
    RAW_OBJECT_MISSING,
    RELEASED_STATUS,
    PartOutcome,
    PartTask,
    Promotion,
    decide_part,
    decide_part_in_worker,
    sealed_index_reproduces_root,
    staged_part,
    start_worker,
    workspace_reproduces_root,
)
from vault_pipeline.defs.promotion.workspace import WORK_PREFIX, _Workspace, default_work_root
from vault_pipeline.storage.catalog import Artifact, Catalog
from vault_pipeline.storage.object_store import ObjectStore


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


PART_RECORDS, PART_MANIFEST, INDEX = "records-{:05d}.ndjson", "manifest-{:05d}.ndjson", "manifest.json"
QUARANTINED_SAMPLE = 1000  # log_ids listed per summary (counts carry the totals)
# Worker processes decide raw objects side by side from this many records on (below it, starting
# them costs more than they save: each imports the scanner's modules, about a second).
PARALLEL_FROM_RECORDS = 50_000
MAX_WORKERS = 4


def manifest_key(prefix: str) -> str:
    """The partition's small index: the parts with their checksums and counts, and the decision root."""
    return prefix + INDEX


def part_records_key(prefix: str, part: int) -> str:
    return prefix + PART_RECORDS.format(part)


def part_manifest_key(prefix: str, part: int) -> str:
    return prefix + PART_MANIFEST.format(part)




def read_manifest(store: ObjectStore, prefix: str) -> dict[str, Any]:
    """The partition's index (``manifest.json``) under ``prefix``."""
    return json.loads(store.get(manifest_key(prefix)))


def iter_manifest_rows(store: ObjectStore, prefix: str) -> Iterator[dict[str, Any]]:
    """Every record's manifest row, part by part (one part in memory at a time)."""
    for part in read_manifest(store, prefix)["parts"]:
        for line in store.get(part["manifest_key"]).splitlines():
            if line:
                yield json.loads(line)


@returns_freed_memory
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
    with own_work_dir(root, WORK_PREFIX) as directory:
        work = _Workspace(str(directory))
        try:
            with cyclic_gc_paused():
                return _promote(work, store=store, catalog=catalog, signer=signer, scanner=scanner, policy=policy,
                                provider=provider, kind=kind, partition=partition, requested_by=requested_by,
                                tier=tier, run_id=run_id, promotion_id=promotion_id, approval=approval, window=window,
                                entry=entry, known=known, approved=approved, watched=watched, prefix=prefix)
        finally:
            work.close()


def _promote(work: _Workspace, *, store, catalog, signer, scanner, policy, provider, kind, partition, requested_by,
             tier, run_id, promotion_id, approval, window, entry, known, approved, watched, prefix) -> PromotionSummary:
    # 1. The catalog's records, streamed once into the workspace (in log order, so its rowid
    # order is the order the signed root was built in); the workspace is what is verified
    # against the root and what every decision reads, so both see the very same records.
    total = work.copy_records(catalog, partition)

    # 2. Decide per raw object; each part is staged on local disk until we know it is new.
    now = utc_now()
    committed = dict(entry.objects)
    # Hashed once: the entry's hash covers its whole body (every object), so computing it per
    # record made promotion quadratic in the partition's size.
    entry_ref = {"sequence": entry.sequence, "hash": entry.entry_hash}

    def promotion_of(ledger_ok: bool) -> Promotion:
        return Promotion(committed=committed, ledger_ok=ledger_ok, approved=approved, known=known, tier=tier,
                         requested_by=requested_by, now=now, entry_ref=entry_ref, stage=work.directory,
                         watched=frozenset(watched))

    # With workers the root is checked beside the decisions, which assume it holds; the rare
    # hour whose catalog no longer reproduces it is then decided again (every record
    # quarantined as ledger_mismatch) before anything is written.
    decided = _Decisions(work, entry, promotion_of(True), prefix, store, scanner, policy, total)
    collected = _collect(work, decided, watched, prefix)
    ledger_ok = decided.ledger_ok
    if not ledger_ok and decided.optimistic:
        work.clear_digests()
        again = _Decisions(work, entry, promotion_of(False), prefix, store, scanner, policy, total, workers=False)
        collected = _collect(work, again, watched, prefix)
    counts, quarantined, decisions, parts = collected

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
        for what in ("records", "manifest"):
            # The digests the decisions took of these very files; a local store renames them in.
            put = store.put_file(part[f"{what}_key"], staged_part(work.directory, part["part"], what),
                                 overwrite=True, known_checksum=part[f"{what}_checksum"])
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


def _collect(work: _Workspace, decided: Iterable[tuple[PartTask, PartOutcome]], watched: set[str], prefix: str):
    """Each part's outcome as it comes: its digests into the workspace, its quarantine changes
    into ``quarantine.ndjson`` (both started afresh), the counts, the quarantined sample, the
    watched logs' decisions and the part's index entry."""
    counts = {name: 0 for name in DECISIONS}
    quarantined: dict[str, str] = {}
    decisions: dict[str, str] = {}
    parts: list[dict[str, Any]] = []
    with open(work.path("quarantine.ndjson"), "w", encoding="utf-8") as pending:
        for task, outcome in decided:
            work.add_digests(outcome.positions, outcome.digests)
            pending.writelines(outcome.pending)
            for name, value in outcome.counts.items():
                counts[name] += value
            decisions.update(outcome.decisions)
            for log_id, reason in outcome.quarantined.items():
                if len(quarantined) < QUARANTINED_SAMPLE or log_id in watched:
                    quarantined[log_id] = reason
            parts.append({"part": task.part, "raw_key": task.key, "raw_object_verified": outcome.object_ok,
                          "records_key": task.records_name, "records_checksum": outcome.golden_checksum,
                          "records_size": outcome.golden_size, "manifest_key": part_manifest_key(prefix, task.part),
                          "manifest_checksum": outcome.manifest_checksum, "manifest_size": outcome.manifest_size,
                          "records": outcome.records, "counts": outcome.counts})
    return counts, quarantined, decisions, parts


class _Decisions:
    """Each raw object's decisions, in order, and (once they are all through) whether the
    workspace reproduces the entry's signed root. In worker processes (one raw object per
    task, read from the sealed record index, a few in flight, so memory stays bounded by a
    few objects; the root checked by one of them meanwhile) when the hour is big enough to pay
    for starting them and the store can be opened again in another process; else here, the
    root first."""

    def __init__(self, work: _Workspace, entry: LedgerEntry, promotion: Promotion, prefix: str,
                 store: ObjectStore, scanner: PiiScanner, policy: MaskPolicy, records: int, *,
                 workers: bool = True) -> None:
        self.work, self.entry, self.promotion, self.prefix = work, entry, promotion, prefix
        self.store, self.scanner, self.policy = store, scanner, policy
        self.opener = store.worker_opener()
        self.workers = promotion_workers()
        self.optimistic = (workers and self.opener is not None and self.workers >= 2
                           and records >= PARALLEL_FROM_RECORDS)
        self.ledger_ok: bool | None = None  # known once iterated through

    def __iter__(self) -> Iterator[tuple[PartTask, PartOutcome]]:
        if not self.optimistic:
            self.ledger_ok = self.promotion.ledger_ok and workspace_reproduces_root(self.work.db, self.entry)
            promotion = dataclasses.replace(self.promotion, ledger_ok=self.ledger_ok)
            for part, (key, group) in enumerate(self.work.objects()):
                task = PartTask(part, key, part_records_key(self.prefix, part))
                yield task, decide_part(task, group, promotion, self.store, self.scanner, self.policy)
            return
        index = self.work.seal()
        context = multiprocessing.get_context("spawn")  # never fork a process that runs Dagster's threads
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=start_worker,
                                 initargs=(index, self.promotion, self.opener, self.scanner, self.policy)) as pool:
            root_check = pool.submit(sealed_index_reproduces_root, self.entry)
            in_flight: deque[tuple[PartTask, Future]] = deque()
            for part, key in enumerate(self.work.object_keys()):
                task = PartTask(part, key, part_records_key(self.prefix, part))
                in_flight.append((task, pool.submit(decide_part_in_worker, task)))
                while len(in_flight) > 2 * self.workers:
                    done, future = in_flight.popleft()
                    yield done, future.result()
            while in_flight:
                done, future = in_flight.popleft()
                yield done, future.result()
            self.ledger_ok = root_check.result()


def promotion_workers() -> int:
    """Worker processes for a large hour: ``VAULT_PROMOTION_WORKERS`` (1: promote in this process),
    else one per core, at most MAX_WORKERS."""
    configured = os.environ.get("VAULT_PROMOTION_WORKERS", "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise PromotionError("invalid_configuration", f"VAULT_PROMOTION_WORKERS={configured!r}: give a whole "
                                 "number of worker processes, 1 or more (1: promote in the run's own process)")
        return int(configured)
    return min(os.cpu_count() or 1, MAX_WORKERS)


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
