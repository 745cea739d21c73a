"""Data lineage of a record, re-proved at report time: provider to raw bytes to ledger.

For each record the chain an auditor follows is walked and every link checked now, not taken
from an earlier run's word: the provider that sent it; the raw object (re-read: the object's
checksum against its content address and the ledger's commitment, the record's byte range
against its catalog checksum); the catalog entry (partition, offset, length, status); the Delta
row in its kind's fact table (present exactly once, at the table version read, unless the record
is a dead letter or has no event time, which never reach the lake); the golden copy (the
promotion decision: clean, masked or quarantined, the golden object and its bytes re-hashed,
or not promoted yet); and the partition's signed ledger entry with the record's Merkle inclusion
proof, built from the catalog and checked against the signed root and signature. Each step says
``ok`` or ``problem`` with a plain reason. Records are traced a partition at a time: its log order,
ledger entry, golden manifest, lake rows and each raw object are read once for all its records.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from vault_pipeline.core.kinds import fact_table_name
from vault_pipeline.core.ledger import (
    KIND_PROMOTION_DECISION,
    VAULT_CHAIN,
    LedgerEntry,
    LedgerError,
    record_proof,
    verify_entry_signature,
)
from vault_pipeline.core.merkle import as_leaf, verify_inclusion
from vault_pipeline.core.windows import HOUR_KEY_FORMAT, split_partition_key
from vault_pipeline.defs.integrity.coverage import FACT_TABLES
from vault_pipeline.defs.integrity.ledger_stage import partition_entries
from vault_pipeline.reports.moments import period
from vault_pipeline.storage.catalog import (
    CHECKSUM_MISMATCH,
    DEAD_LETTER,
    Catalog,
    RecordEntry,
)
from vault_pipeline.storage.lake import DeltaLake, LakeError, sql_ident, sql_literal
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore

OK, PROBLEM = "ok", "problem"
STEPS = ("provider", "raw_object", "catalog_entry", "delta_row", "golden_copy", "ledger_entry")
_IN_CHUNK = 1000


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _step(name: str, problem: str | None, reason: str, **fields: Any) -> dict[str, Any]:
    return {**fields, "step": name, "status": PROBLEM if problem else OK, "reason": problem or reason}


def trace_record(*, catalog: Catalog, store: ObjectStore, lake: DeltaLake | None, verifier, log_id: str) -> dict[str, Any]:
    """The lineage of one record (see :func:`trace_records`)."""
    return trace_records(catalog=catalog, store=store, lake=lake, verifier=verifier, log_ids=[log_id])[0]


def trace_records(*, catalog: Catalog, store: ObjectStore, lake: DeltaLake | None, verifier,
                  log_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The lineage of each record, in the order asked: ``{"log_id", "ok", "steps": [...]}`` with
    one step per STEPS entry (``step``, ``status`` ok/problem, ``reason`` and the step's fields).
    ``verifier`` is the ledger's trusted key (``signer.verifier()`` or the public key's)."""
    records: dict[str, RecordEntry | None] = {log_id: catalog.get_record(log_id) for log_id in dict.fromkeys(log_ids)}
    by_partition: dict[str, list[RecordEntry]] = defaultdict(list)
    for record in records.values():
        if record is not None:
            by_partition[record.partition].append(record)
    traced: dict[str, dict[str, Any]] = {}
    for partition, group in sorted(by_partition.items()):
        traced.update(_PartitionTrace(catalog, store, lake, verifier, partition).trace(group))
    out = []
    for log_id in log_ids:
        if log_id in traced:
            out.append(traced[log_id])
            continue
        reason = "no catalog entry with this id: the vault never indexed it, or its entry was deleted"
        out.append({"log_id": log_id, "ok": False, "steps": [
            _step(name, reason if name == "catalog_entry" else "not traced: the record has no catalog entry", "")
            for name in STEPS]})
    return out


class _PartitionTrace:
    """What every record of one partition shares, read once."""

    def __init__(self, catalog: Catalog, store: ObjectStore, lake: DeltaLake | None, verifier, partition: str) -> None:
        self.catalog, self.store, self.lake, self.verifier, self.partition = catalog, store, lake, verifier, partition
        entries = partition_entries(catalog, partition)
        self.entry: LedgerEntry | None = entries[-1] if entries else None
        decisions = partition_entries(catalog, partition, KIND_PROMOTION_DECISION)
        self.decision_entry: LedgerEntry | None = decisions[-1] if decisions else None
        self._objects: dict[str, bytes | None] = {}

    # shared reads ----------------------------------------------------------------------------
    def _object(self, key: str) -> bytes | None:
        if key not in self._objects:
            try:
                self._objects[key] = self.store.get(key)
            except ObjectMissingError:
                self._objects[key] = None
        return self._objects[key]

    def _log_order(self, wanted: set[str]) -> tuple[list[bytes | str], dict[str, int]]:
        """The partition's record checksums in log order (the Merkle leaves) and the positions of ``wanted``."""
        leaves: list[bytes | str] = []
        positions: dict[str, int] = {}
        for page in self.catalog.iter_partition_pointer_pages(self.partition):
            for log_id, value in zip(page.log_ids, page.checksums, strict=True):
                if log_id in wanted:
                    positions[log_id] = len(leaves)
                try:
                    leaves.append(as_leaf(value))
                except (TypeError, ValueError):
                    leaves.append(bytes(32))  # not a digest: cannot reproduce the root, as verify reports
        return leaves, positions

    def trace(self, records: list[RecordEntry]) -> dict[str, dict[str, Any]]:
        leaves, positions = self._log_order({r.log_id for r in records})
        lake_rows, lake_table, lake_version, lake_error = self._lake_rows(records)
        golden = _GoldenIndex(self.catalog, self.store, self.partition, self.decision_entry)
        out = {}
        for record in records:
            raw_step, actual = self._raw_step(record)
            steps = [
                _step("provider", None, f"sent by provider {record.provider!r}, landed by run {record.run_id}",
                      provider=record.provider, natural_id=record.natural_id, run_id=record.run_id,
                      ingested_at=record.ingested_at),
                raw_step,
                self._catalog_step(record),
                self._lake_step(record, lake_rows, lake_table, lake_version, lake_error),
                golden.step(record, self._object),
                self._ledger_step(record, leaves, positions, actual),
            ]
            out[record.log_id] = {"log_id": record.log_id, "ok": all(s["status"] == OK for s in steps), "steps": steps}
        return out

    # steps ----------------------------------------------------------------------------------
    def _raw_step(self, record: RecordEntry) -> tuple[dict[str, Any], str | None]:
        key = record.object_key
        data = self._object(key)
        fields = {"key": key, "offset": record.offset, "length": record.length, "uri": _uri(self.store, key)}
        if data is None:
            return _step("raw_object", f"raw object {key} is missing from the object store", "", **fields), None
        object_checksum = _sha(data)
        committed = dict(self.entry.objects).get(key) if self.entry else None
        piece = data[record.offset : record.offset + record.length]
        actual = _sha(piece) if len(piece) == record.length and record.offset >= 0 else None
        fields |= {"object_checksum": object_checksum, "committed_checksum": committed, "record_checksum": actual}
        named = key.rsplit("/", 1)[-1].removesuffix(".json")
        problems = []
        if actual != record.checksum:
            problems.append(f"the record's bytes {record.offset}..{record.offset + record.length} hash to {actual}, "
                            f"not to the catalog's {record.checksum}")
        if named != object_checksum.removeprefix("sha256:"):
            problems.append(f"the object hashes to {object_checksum}, not to the digest its name carries")
        if committed is not None and committed != object_checksum:
            problems.append(f"the ledger committed to {committed} for this object")
        if self.entry is not None and committed is None:
            problems.append("the partition's ledger entry does not name this object")
        return _step("raw_object", "; ".join(problems) or None,
                     "object re-read: its checksum matches its name and the ledger, the record's bytes their checksum",
                     **fields), actual

    def _catalog_step(self, record: RecordEntry) -> dict[str, Any]:
        fields = {"partition": record.partition, "offset": record.offset, "length": record.length,
                  "checksum": record.checksum, "record_status": record.status, "timestamp": record.timestamp}
        if record.status == CHECKSUM_MISMATCH:
            return _step("catalog_entry", "flagged checksum_mismatch: a read found its bytes changed", "", **fields)
        reason = ("indexed; a dead letter (failed input validation), kept but not loaded" if record.status == DEAD_LETTER
                  else "indexed and valid")
        return _step("catalog_entry", None, reason, **fields)

    def _lake_rows(self, records: list[RecordEntry]) -> tuple[dict[str, int], str | None, int | None, str | None]:
        """(log_id -> rows in the fact table, the table, its version read, why it could not be read)."""
        if self.lake is None:
            return {}, None, None, "no lake was given to trace against"
        provider = split_partition_key(self.partition)[1]
        table = self._table(provider)
        if table is None:
            return {}, None, None, "no fact table holds rows of this provider"
        try:
            version = self.lake.version(table)
            if version is None:
                return {}, table, None, f"lake table {table!r} does not exist"
            # Lake rows sit in their event hour: only those (date, hour) partitions are read.
            hours = sorted({(r.timestamp[:10], r.timestamp[11:13]) for r in records if r.timestamp})
            ids = [r.log_id for r in records]
            counts: dict[str, int] = defaultdict(int)
            for i in range(0, len(ids), _IN_CHUNK):
                chunk = ids[i : i + _IN_CHUNK]
                for log_id in self._select(table, version, provider, hours, chunk):
                    counts[log_id] += 1
            return dict(counts), table, version, None
        except (LakeError, OSError) as exc:
            return {}, table, None, f"lake table {table!r} cannot be read: {exc}"

    def _select(self, table: str, version: int, provider: str, hours: list[tuple[str, str]], ids: list[str]) -> list[str]:
        if not hours:
            return []

        def compose(columns: frozenset[str]) -> str:
            where = " OR ".join(f"({sql_ident('date')} = {sql_literal(d)} AND {sql_ident('hour')} = {sql_literal(h)})"
                                for d, h in hours)
            return (f"SELECT {sql_ident('log_id')} FROM {sql_ident(table)} WHERE ({where}) "
                    f"AND {sql_ident('provider')} = {sql_literal(provider)} "
                    f"AND {sql_ident('log_id')} IN ({', '.join(sql_literal(i) for i in ids)})")

        rows = self.lake.sql(table, compose, version=version)
        return rows.column("log_id").to_pylist() if rows.num_rows else []

    def _table(self, provider: str) -> str | None:
        for artifact in self.catalog.search_artifacts(partition=self.partition, kind="lake_table", limit=10):
            table = artifact.metadata.get("table")
            if table:
                return table
        kind = (self.decision_entry.body.get("kind") if self.decision_entry else None)
        if kind:
            try:
                return fact_table_name(kind)
            except KeyError:
                pass
        for table in FACT_TABLES:  # a partition indexed before the artifact index ran
            try:
                if self.lake.count(table, provider=provider):
                    return table
            except LakeError:
                continue
        return None

    def _lake_step(self, record: RecordEntry, rows: dict[str, int], table: str | None, version: int | None,
                   error: str | None) -> dict[str, Any]:
        belongs = record.timestamp is not None and record.status != DEAD_LETTER
        present = rows.get(record.log_id, 0)
        fields = {"table": table, "version": version, "rows": present, "expected": belongs,
                  "date": record.timestamp[:10] if record.timestamp else None,
                  "hour": record.timestamp[11:13] if record.timestamp else None}
        if error is not None:
            return _step("delta_row", error if belongs else None,
                         "not expected in the lake (dead letter or no event time)", **fields)
        if belongs and present == 1:
            return _step("delta_row", None, f"one row in {table} at version {version}", **fields)
        if belongs and present == 0:
            return _step("delta_row", f"no row in {table} at version {version} (expected one)", "", **fields)
        if present > 1:
            return _step("delta_row", f"{present} rows in {table} at version {version} (expected one)", "", **fields)
        if present:
            return _step("delta_row", f"a row in {table} although the record is a dead letter or has no event time",
                         "", **fields)
        return _step("delta_row", None, "not in the lake, as intended: a dead letter or a record without event time",
                     **fields)

    def _ledger_step(self, record: RecordEntry, leaves: list[bytes | str], positions: dict[str, int],
                     actual: str | None) -> dict[str, Any]:
        entry = self.entry
        if entry is None:
            return _step("ledger_entry", f"partition {self.partition} has no ledger entry: it was never sealed", "")
        fields: dict[str, Any] = {"provider": entry.provider, "partition": entry.partition, "sequence": entry.sequence,
                                  "entry_hash": entry.entry_hash, "merkle_root": entry.merkle_root,
                                  "signature_verified": verify_entry_signature(entry, self.verifier),
                                  "proof_verified": False}
        index = positions.get(record.log_id)
        if index is None:
            return _step("ledger_entry", "the record is not in its partition's log order", "", **fields)
        try:
            proof = record_proof(entry, leaves, index)
        except LedgerError as exc:
            return _step("ledger_entry", f"no valid inclusion proof: {exc}", "", **fields, leaf_index=index)
        fields |= {"leaf_index": index, "tree_size": proof["tree_size"], "audit_path": proof["audit_path"]}
        # Checked again from the proof alone, as an auditor would: leaf, path, size and root.
        fields["proof_verified"] = verify_inclusion(proof["record_checksum"], index, proof["tree_size"],
                                                    proof["audit_path"], entry.merkle_root)
        problems = []
        if not fields["signature_verified"]:
            problems.append("the ledger entry's signature does not verify with the trusted key")
        if not fields["proof_verified"]:
            problems.append("the inclusion proof does not reproduce the signed Merkle root")
        if actual is not None and actual != proof["record_checksum"]:
            problems.append(f"the ledger's leaf is {proof['record_checksum']}, the stored bytes hash to {actual}")
        return _step("ledger_entry", "; ".join(problems) or None,
                     f"in ledger {entry.provider} #{entry.sequence}: inclusion proof and signature verified now",
                     **fields)


class _GoldenIndex:
    """The partition's golden manifest and the part manifests, read once and when first needed."""

    def __init__(self, catalog: Catalog, store: ObjectStore, partition: str, decision_entry: LedgerEntry | None) -> None:
        self.store, self.decision_entry = store, decision_entry
        self.manifest_key = None
        for artifact in catalog.search_artifacts(partition=partition, kind="golden_manifest", limit=10):
            self.manifest_key = artifact.location
        self._index: dict[str, Any] | None = None
        self._error: str | None = None
        self._rows: dict[str, dict[str, dict[str, Any]]] = {}

    def _load(self) -> None:
        if self._index is not None or self._error is not None or self.manifest_key is None:
            return
        try:
            data = self.store.get(self.manifest_key)
        except ObjectMissingError:
            self._error = f"golden manifest {self.manifest_key} is missing"
            return
        committed = dict(self.decision_entry.objects).get(self.manifest_key) if self.decision_entry else None
        if committed is not None and committed != _sha(data):
            self._error = f"golden manifest {self.manifest_key} differs from what the decision entry committed to"
            return
        self._index = json.loads(data)

    def _part_rows(self, part: dict[str, Any]) -> dict[str, dict[str, Any]] | str:
        key = part["manifest_key"]
        if key not in self._rows:
            try:
                data = self.store.get(key)
            except ObjectMissingError:
                return f"golden part manifest {key} is missing"
            if _sha(data) != part.get("manifest_checksum"):
                return f"golden part manifest {key} no longer matches its checksum in the index"
            self._rows[key] = {row["log_id"]: row for row in map(json.loads, filter(None, data.splitlines()))}
        return self._rows[key]

    def step(self, record: RecordEntry, read_object) -> dict[str, Any]:
        self._load()
        if self.manifest_key is None:
            return _step("golden_copy", None, "not promoted (yet): the partition has no golden manifest",
                         decision="not promoted")
        if self._error:
            return _step("golden_copy", self._error, "", decision=None, manifest_key=self.manifest_key)
        entry_ref = ({"sequence": self.decision_entry.sequence, "entry_hash": self.decision_entry.entry_hash}
                     if self.decision_entry else None)
        parts = [p for p in self._index.get("parts", []) if p.get("raw_key") == record.object_key]
        for part in parts:
            rows = self._part_rows(part)
            if isinstance(rows, str):
                return _step("golden_copy", rows, "", decision=None, manifest_key=self.manifest_key)
            row = rows.get(record.log_id)
            if row is None:
                continue
            fields = {"decision": row["decision"], "manifest_key": self.manifest_key, "decision_entry": entry_ref,
                      "golden_key": (row.get("golden") or {}).get("key"), "reason_code": row.get("reason"),
                      "masked": [[m["path"], m["type"]] for m in row.get("masked") or []],
                      "approval": row.get("approval")}
            golden = row.get("golden")
            if golden is None:
                return _step("golden_copy", None, f"{row['decision']}: {row.get('reason')}; never reached golden", **fields)
            data = read_object(golden["key"])
            piece = data[golden["offset"] : golden["offset"] + golden["length"]] if data is not None else None
            if piece is None:
                return _step("golden_copy", f"golden object {golden['key']} is missing", "", **fields)
            if _sha(piece) != golden["digest"]:
                return _step("golden_copy", f"the golden copy's bytes no longer hash to {golden['digest']}", "", **fields)
            how = "masked copy (PII replaced)" if row["decision"] == "masked" else "byte-exact copy"
            return _step("golden_copy", None, f"promoted: {how} in {golden['key']}, bytes verified", **fields)
        return _step("golden_copy", "the golden manifest has no decision for this record", "",
                     decision=None, manifest_key=self.manifest_key)


def _uri(store: ObjectStore, key: str) -> str | None:
    try:
        return store.uri(key)
    except Exception:  # noqa: BLE001 - a location is informative only
        return None


# -- sampling -----------------------------------------------------------------------------------


def _hours(low: datetime, high: datetime) -> Iterable[str]:
    hour = low.replace(minute=0, second=0, microsecond=0)
    while hour < high:
        yield hour.strftime(HOUR_KEY_FORMAT)
        hour += timedelta(hours=1)


def sealed_partitions(catalog: Catalog, start: datetime | str, end: datetime | str) -> list[tuple[str, int]]:
    """(partition, records its newest ledger entry sealed) of every sealed partition whose hour
    starts in [start, end), sorted; found by one indexed lookup per hour and provider."""
    low, high = period(start, end)
    providers = [p for p in catalog.ledger_providers() if p != VAULT_CHAIN]
    out = []
    for hour in _hours(low, high):
        for provider in providers:
            key = f"{hour}|{provider}"
            try:
                entries = partition_entries(catalog, key)
            except LedgerError:
                continue
            if entries and entries[-1].record_count:
                out.append((key, entries[-1].record_count))
    return sorted(out)


def sample_records(catalog: Catalog, start: datetime | str, end: datetime | str, n: int, seed: int) -> list[str]:
    """``n`` log_ids spread over the period's sealed partitions (evenly over the partitions, at
    random within each), the same for the same seed and vault content; fewer when the period
    holds fewer records."""
    if n < 0:
        raise ValueError(f"n must not be negative, not {n}")
    partitions = sealed_partitions(catalog, start, end)
    if not n or not partitions:
        return []
    rng = random.Random(seed)
    total = sum(count for _, count in partitions)
    n = min(n, total)
    share = {p: 0 for p, _ in partitions}
    capacity = dict(partitions)
    # Rounds over evenly spaced partitions (a random phase each round) until n are allotted.
    left = n
    while left:
        open_ = [p for p, _ in partitions if share[p] < capacity[p]]
        take = min(left, len(open_))
        phase = rng.random()
        for i in range(take):
            share[open_[int((i + phase) * len(open_) / take)]] += 1
        left -= take
    picked = []
    for partition, count in partitions:
        if not share[partition]:
            continue
        for index in sorted(rng.sample(range(count), share[partition])):
            for page in catalog.iter_partition_pointer_pages(partition, start=index, stop=index + 1, page_size=1):
                picked.extend(page.log_ids)
    return picked


__all__ = ["STEPS", "sample_records", "sealed_partitions", "trace_record", "trace_records"]
