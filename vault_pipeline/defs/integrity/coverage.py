"""What `vault verify` proves beyond the sealed records: that nothing the vault holds is unseen.

Re-hashing the partitions the ledger covers says nothing about what it does not cover, so an
auditor is also told, with the partition each time:

- catalog records of partitions that no ledger entry seals (a run killed mid-way, a blocked
  partition, a row forged into an unsealed hour), unless a run of that partition is going on;
- the lake against the catalog the ledger vouches for: every record that belongs in the lake
  (an event time, not a dead letter) there exactly once, no dead letter there, no row whose
  log_id the catalog does not know;
- every object under ``raw/`` re-hashed against the digest its name carries, also the pages of
  partitions that never completed;
- the signed checkpoint as an object of its own (the catalog's copy is no substitute: it is
  what makes deleting the newest entries detectable);
- which records a ``record_deleted`` finding is about: the landing snapshot names the records
  the partition fetched, and the candidates are accepted only if they reproduce the signed
  Merkle root.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vault_pipeline.core.kinds import fact_table_name
from vault_pipeline.core.ledger import CHECKPOINT_INVALID, CHECKPOINT_MISSING, Finding, LedgerEntry, PartitionDigest
from vault_pipeline.core.windows import HourWindow, PartitionKeyError
from vault_pipeline.defs.ingestion.landed import LandedPartition, NotLandedError
from vault_pipeline.defs.integrity.ledger_stage import checkpoint_key
from vault_pipeline.storage.catalog import Catalog
from vault_pipeline.storage.lake import DeltaLake
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore

RECORDS_UNSEALED = "records_unsealed"
LAKE_ROWS_MISSING = "lake_rows_missing"
LAKE_ROWS_DUPLICATED = "lake_rows_duplicated"
LAKE_ROWS_NOT_EXPECTED = "lake_rows_not_expected"  # dead letters or untimed records in the lake
LAKE_ROWS_ORPHANED = "lake_rows_orphaned"  # log_ids the catalog does not know
RAW_OBJECT_ALTERED = "raw_object_altered"
RAW_OBJECT_UNEXPECTED = "raw_object_unexpected"  # a key under raw/ that is no content address

FACT_TABLES = ("audit_events", "generation_events", "test_results", "jailbreak_tests", "agent_results")
_RAW_KEY = re.compile(r"^raw/([^/]+)/(\d{4})/(\d{2})/(\d{2})/(\d{2})/([0-9a-f]{64})\.(?:json|xml)$")
_EXAMPLES = 5


def _examples(ids: Iterable[str]) -> str:
    ids = sorted(ids)
    shown = ", ".join(ids[:_EXAMPLES])
    return shown + (f" and {len(ids) - _EXAMPLES} more" if len(ids) > _EXAMPLES else "")


def _hour_of(partition: str) -> str:
    return partition.split("|", 1)[0]


# -- the checkpoint object -------------------------------------------------------------------


def checkpoint_object_findings(store: ObjectStore, provider: str, newest_sequence: int) -> list[Finding]:
    """A provider with entries must have its signed checkpoint object; verify_chain checks the
    checkpoint it is given, which falls back to the catalog's copy when the object is gone."""
    if not newest_sequence:
        return []
    key = checkpoint_key(provider)
    try:
        store.get(key)
    except ObjectMissingError:
        return [Finding(CHECKPOINT_MISSING, provider, newest_sequence,
                        f"the signed checkpoint {key} is missing: deleting the newest entries could go unseen "
                        "(the catalog's copy was checked instead)")]
    return []


def checkpoint_unreadable(provider: str, newest_sequence: int, error: Exception) -> Finding:
    return Finding(CHECKPOINT_INVALID, provider, newest_sequence,
                   f"the signed checkpoint {checkpoint_key(provider)} cannot be read: {error}")


# -- records no ledger entry covers ------------------------------------------------------------


def unsealed_findings(held: Mapping[str, int], provider: str, sealed: Collection[str], in_progress: Collection[str],
                      since_hour: str | None) -> tuple[list[Finding], list[str]]:
    """(a finding per unsealed partition, the partitions skipped because a run of them is going on);
    ``held`` is the catalog's records per partition of the provider."""
    findings, skipped = [], []
    for partition, count in sorted(held.items()):
        if partition in sealed or (since_hour and _hour_of(partition) < since_hour):
            continue
        if partition in in_progress:
            skipped.append(partition)
            continue
        findings.append(Finding(
            RECORDS_UNSEALED, provider, None,
            f"{count} catalog record(s) of partition {partition} are covered by no ledger entry (a run that "
            "did not finish, a blocked partition, or rows added outside a run): re-run the partition to "
            "seal it, or find out who wrote them", partition))
    return findings, skipped


# -- the lake -----------------------------------------------------------------------------------


_CANONICAL_LOG_ID = r"^log_[0-9a-f]{32}$"
_NIBBLE = np.zeros(256, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)


def _keys(ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(16-byte keys of the canonical log_ids, as a sortable numpy ``S16`` array; positions of
    the others). A log_id is ``log_`` + 128 bits in hex, so a million of them are 16 MB of keys
    instead of a hash table of Python strings; ids of any other shape (forged rows) go apart."""
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    ids = ids.cast(pa.string()) if ids.type != pa.string() else ids  # int32 offsets, contiguous data
    canonical = pc.match_substring_regex(ids, _CANONICAL_LOG_ID).fill_null(False)
    mask = canonical.to_numpy(zero_copy_only=False)
    hexes = pc.utf8_slice_codeunits(ids.filter(canonical), 4, 36)
    if not len(hexes):
        return np.array([], dtype="S16"), np.flatnonzero(~mask)
    # Every value is 32 hex digits, so the data buffer holds them back to back: decode it whole.
    offsets = np.frombuffer(hexes.buffers()[1], dtype=np.int32)[hexes.offset : hexes.offset + len(hexes) + 1]
    digits = np.frombuffer(hexes.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    nibbles = _NIBBLE[digits]
    return ((nibbles[0::2] << 4) | nibbles[1::2]).view("S16"), np.flatnonzero(~mask)


def _log_id(key: bytes) -> str:
    return "log_" + key.ljust(16, b"\0").hex()  # numpy drops trailing NUL bytes of an S16 item


class _LakeRows:
    """One provider's rows of one fact table, as sorted unique keys with their row counts.

    The rows are read a slice of log_ids at a time and only their keys kept (16 bytes a row),
    so the check of a million-row table never holds the table's strings at once."""

    def __init__(self, lake: DeltaLake, table: str, provider: str, floor: str | None) -> None:
        self.lake, self.table, self.provider, self.floor = lake, table, provider, floor
        parts, self.odd, self.rows = [], defaultdict(int), 0
        for rows in lake.read_in_buckets(table, key="log_id", buckets=8, provider=provider,
                                         columns=["log_id", "date", "hour"]):
            rows = self._since(rows)
            self.rows += rows.num_rows
            keys, odd = _keys(rows["log_id"])
            parts.append(keys)
            for log_id in (rows["log_id"].take(pa.array(odd, pa.int64())).to_pylist() if len(odd) else []):
                self.odd[log_id] += 1
        keys = np.concatenate(parts) if parts else np.array([], dtype="S16")
        self.unique, self.counts = np.unique(keys, return_counts=True)
        self.claimed = np.zeros(len(self.unique), dtype=bool)
        self.odd_claimed: set[str] = set()

    def _since(self, rows: pa.Table) -> pa.Table:
        if self.floor is None or not rows.num_rows:
            return rows
        return rows.filter(pc.greater_equal(pc.binary_join_element_wise(rows["date"], rows["hour"], " "), self.floor))

    def hours_of(self, log_ids: list[str]) -> list[str]:
        """The lake hours (date/hour) holding these log_ids: read again, only for the few reported."""
        wanted = pa.array(log_ids, pa.string())
        hours: set[str] = set()
        for rows in self.lake.read_in_buckets(self.table, key="log_id", buckets=1, provider=self.provider,
                                              columns=["log_id", "date", "hour"]):
            rows = self._since(rows.filter(pc.is_in(rows["log_id"], value_set=wanted)))
            hours |= {f"{d}/{h}" for d, h in zip(rows["date"].to_pylist(), rows["hour"].to_pylist(), strict=True)}
        return sorted(hours)

    def match(self, log_ids: list[str]) -> np.ndarray:
        """How many lake rows each given log_id has, marking the matched ones claimed."""
        ids = pa.array(log_ids, pa.string())
        keys, odd = _keys(ids)
        present = np.zeros(len(log_ids), dtype=np.int64)
        canonical = np.ones(len(log_ids), dtype=bool)
        canonical[odd] = False
        if len(self.unique) and len(keys):
            at = np.searchsorted(self.unique, keys).clip(0, len(self.unique) - 1)
            hit = self.unique[at] == keys
            self.claimed[at[hit]] = True
            present[np.flatnonzero(canonical)] = np.where(hit, self.counts[at], 0)
        for position in odd:
            log_id = log_ids[position]
            present[position] = self.odd.get(log_id, 0)
            if present[position]:
                self.odd_claimed.add(log_id)
        return present

    def unclaimed(self) -> list[str]:
        ids = [_log_id(key) for key in self.unique[~self.claimed].tolist()]
        return ids + [log_id for log_id in self.odd if log_id not in self.odd_claimed]


def lake_findings(lake: DeltaLake, catalog: Catalog, provider: str, kind: str | None, held: Iterable[str],
                  sealed: Collection[str], in_progress: Collection[str], since_hour: str | None) -> tuple[list[Finding], int]:
    """(findings, lake rows checked) for one provider's rows in its kind's fact table(s).

    The lake's keys are held once (16 bytes a row); the catalog is walked a partition at a time,
    each record looked up by binary search, so memory does not hold both sides as strings."""
    partitions = [p for p in held if not (since_hour and _hour_of(p) < since_hour)]
    findings: list[Finding] = []
    checked = 0
    # A provider no longer in vault.yaml: its kind is unknown, so check the tables holding its rows.
    tables = [fact_table_name(kind)] if kind else [t for t in FACT_TABLES if lake.count(t, provider=provider)]
    # Lake rows sit in their event hour; a record of the first selected partitions can be a late
    # one from up to two days before (the longest lookback).
    floor = HourWindow.for_hour_key(since_hour).with_lookback(48).start.strftime("%Y-%m-%d %H") if since_hour else None
    for table in tables:
        lake_rows = _LakeRows(lake, table, provider, floor)
        checked += lake_rows.rows
        for partition in partitions:
            findings += _partition_lake_findings(table, catalog, lake_rows, provider, partition,
                                                 sealed, in_progress)
        findings += _orphans(table, catalog, lake_rows, provider)
    return findings, checked


def _partition_lake_findings(table: str, catalog: Catalog, lake_rows: _LakeRows, provider: str, partition: str,
                             sealed: Collection[str], in_progress: Collection[str]) -> list[Finding]:
    problems = {
        LAKE_ROWS_MISSING: f"record(s) that belong in lake table {table!r} are not there",
        LAKE_ROWS_DUPLICATED: f"record(s) appear more than once in lake table {table!r} (a re-run of the partition repairs it)",
        LAKE_ROWS_NOT_EXPECTED: f"dead-lettered or untimed record(s) are in lake table {table!r} "
                                "(a re-run of the partition removes them)",
    }
    found: dict[str, list[str]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for log_ids, flags in catalog.partition_lake_keys(partition):
        present = lake_rows.match(log_ids)  # claims the rows even when the partition is skipped
        loadable = np.array(flags, dtype=bool)
        for kind, mask in ((LAKE_ROWS_MISSING, loadable & (present == 0)), (LAKE_ROWS_DUPLICATED, present > 1),
                           (LAKE_ROWS_NOT_EXPECTED, ~loadable & (present > 0))):
            picked = np.flatnonzero(mask)
            counts[kind] += len(picked)
            found[kind] += [log_ids[i] for i in picked[: _EXAMPLES + 1]]
    if partition in in_progress:
        return []
    findings = []
    for kind, what in problems.items():
        if kind == LAKE_ROWS_MISSING and partition not in sealed:
            continue  # an unsealed partition is reported as such; its load may not have run
        if counts[kind]:
            shown = _examples(found[kind][:_EXAMPLES]) + (f" and {counts[kind] - _EXAMPLES} more" if counts[kind] > _EXAMPLES else "")
            findings.append(Finding(kind, provider, None, f"{counts[kind]} {what}: {shown}", partition))
    return findings


def _orphans(table: str, catalog: Catalog, lake_rows: _LakeRows, provider: str) -> list[Finding]:
    """Rows no selected partition claimed: known elsewhere (a partition before --since), or not at all."""
    stray = lake_rows.unclaimed()
    if not stray:
        return []
    known = catalog.known_log_ids(stray)
    orphans = sorted(set(stray) - known)
    if not orphans:
        return []
    hours = lake_rows.hours_of(orphans[:1000])
    return [Finding(LAKE_ROWS_ORPHANED, provider, None,
                    f"{len(orphans)} row(s) of lake table {table!r} (hours {', '.join(hours[:_EXAMPLES])}) have log_ids "
                    f"the catalog does not hold: {_examples(orphans)}")]


# -- raw objects ------------------------------------------------------------------------------


def raw_object_findings(store: ObjectStore, providers: Collection[str] | None, already_hashed: Collection[str],
                        since_hour: str | None) -> tuple[list[Finding], int, int]:
    """(findings, objects hashed, bytes hashed) over every object under raw/ not hashed yet."""
    findings: list[Finding] = []
    hashed = size = 0
    prefixes = [f"raw/{p}/" for p in sorted(providers)] if providers is not None else ["raw/"]
    for prefix in prefixes:
        for key in store.list(prefix):
            match = _RAW_KEY.match(key)
            provider = match.group(1) if match else key.split("/")[1] if key.count("/") > 1 else "?"
            if match is None:
                findings.append(Finding(RAW_OBJECT_UNEXPECTED, provider, None,
                                        f"{key} under raw/ is not a content-addressed page (raw/<provider>/YYYY/MM/DD/HH/<sha256>.json, or .xml for a pushed JUnit report)"))
                continue
            hour = f"{match.group(2)}-{match.group(3)}-{match.group(4)}-{match.group(5)}:00"
            partition = f"{hour}|{provider}"
            if key in already_hashed or (since_hour and hour < since_hour):
                continue
            try:
                data = store.get(key)
            except ObjectMissingError:
                continue  # listed, then deleted while we walked: nothing left to vouch for
            hashed += 1
            size += len(data)
            digest = hashlib.sha256(data).hexdigest()
            if digest != match.group(6):
                findings.append(Finding(RAW_OBJECT_ALTERED, provider, None,
                                        f"{key} hashes to sha256:{digest}, not to the digest its name carries", partition))
    return findings, hashed, size


# -- naming deleted records -------------------------------------------------------------------


def name_deleted_records(store: ObjectStore, catalog: Catalog, entry: LedgerEntry) -> list[str] | None:
    """The log_ids of the partition's committed records that the catalog lost, or None when they
    cannot be told with certainty (no landing snapshot, or the candidates do not reproduce the
    signed root)."""
    hour, _, provider = entry.partition.partition("|")
    try:
        landed = LandedPartition(store, provider, HourWindow.for_hour_key(hour))
        snapshot = landed.snapshot_table(["log_id", "checksum"])
    except (NotLandedError, PartitionKeyError, OSError, ValueError, pa.ArrowException):
        return None
    fetched: dict[str, str] = {}
    for log_id, checksum in zip(snapshot["log_id"].to_pylist(), snapshot["checksum"].to_pylist(), strict=True):
        fetched.setdefault(log_id, checksum)
    held = {record.log_id: record.checksum for record in catalog.iter_partition_records(entry.partition)}
    candidates = [log_id for log_id in fetched if log_id not in held]
    known = catalog.known_log_ids(candidates)  # landed first by another partition: not this one's
    lost = sorted(log_id for log_id in candidates if log_id not in known)
    if not lost:
        return None
    digest = PartitionDigest()
    digest.add_many(held.get(log_id) or fetched[log_id] for log_id in sorted([*held, *lost]))
    return lost if digest.root_hex() == entry.merkle_root and digest.count == entry.record_count else None


def providers_with_data(catalog: Catalog, store: ObjectStore, configured: Iterable[str]) -> set[str]:
    """Every provider the vault holds anything of: configured, in the ledger, in the catalog, in raw/."""
    names = set(configured) | set(catalog.ledger_providers())
    names |= {partition.rpartition("|")[2] for partition in catalog.partition_record_counts()}
    names |= {key.split("/")[1] for key in store.list("raw/") if key.count("/") > 1}
    return names

