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
from collections.abc import Collection, Iterable

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

FACT_TABLES = ("audit_events", "generation_events", "test_results")
_RAW_KEY = re.compile(r"^raw/([^/]+)/(\d{4})/(\d{2})/(\d{2})/(\d{2})/([0-9a-f]{64})\.json$")
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


def unsealed_findings(catalog: Catalog, provider: str, sealed: Collection[str], in_progress: Collection[str],
                      since_hour: str | None) -> tuple[list[Finding], list[str]]:
    """(a finding per unsealed partition, the partitions skipped because a run of them is going on)."""
    findings, skipped = [], []
    for partition, count in sorted(catalog.partition_record_counts(provider=provider).items()):
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


def lake_findings(lake: DeltaLake, catalog: Catalog, provider: str, kind: str | None,
                  sealed: Collection[str], in_progress: Collection[str], since_hour: str | None) -> tuple[list[Finding], int]:
    """(findings, lake rows checked) for one provider's rows in its kind's fact table(s)."""
    expected_ids, expected_partition, loadable = [], [], []
    for partition in sorted(catalog.partition_record_counts(provider=provider)):
        if since_hour and _hour_of(partition) < since_hour:
            continue
        ids, flags = catalog.partition_lake_keys(partition)
        expected_ids += ids
        expected_partition += [partition] * len(ids)
        loadable += flags
    held = pa.table({"log_id": pa.array(expected_ids, pa.string()), "partition": pa.array(expected_partition, pa.string()),
                     "loadable": pa.array(loadable, pa.bool_())})
    del expected_ids, expected_partition, loadable
    tables = [fact_table_name(kind)] if kind else list(FACT_TABLES)
    findings: list[Finding] = []
    checked = 0
    for table in tables:
        rows = lake.read(table, columns=["log_id", "date", "hour"], provider=provider)
        if not rows.num_columns:
            rows = pa.table({"log_id": pa.array([], pa.string()), "date": pa.array([], pa.string()),
                             "hour": pa.array([], pa.string())})
        if since_hour:
            # Lake rows sit in their event hour; a record of the first selected partitions can
            # be a late one from up to two days before (the longest lookback).
            earliest = HourWindow.for_hour_key(since_hour).with_lookback(48).start
            floor = earliest.strftime("%Y-%m-%d %H")
            at = pc.binary_join_element_wise(rows["date"], rows["hour"], " ")
            rows = rows.filter(pc.greater_equal(at, floor))
        checked += rows.num_rows
        findings += _compare_lake(table, rows, held, catalog, provider, sealed, in_progress, since_hour)
    return findings, checked


def _compare_lake(table: str, rows: pa.Table, held: pa.Table, catalog: Catalog, provider: str,
                  sealed: Collection[str], in_progress: Collection[str], since_hour: str | None) -> list[Finding]:
    counts = rows.group_by("log_id").aggregate([("log_id", "count"), ("date", "min"), ("hour", "min")])
    joined = counts.join(held, "log_id", join_type="full outer")
    findings: list[Finding] = []
    by_partition: dict[tuple[str, str], list[str]] = defaultdict(list)

    def ids_where(mask) -> pa.Table:
        return joined.filter(mask)

    # Rows whose log_id is not among the selected partitions' records: known elsewhere (an older
    # partition outside --since) or unknown to the catalog altogether.
    stray = ids_where(pc.is_null(joined["partition"]))
    if stray.num_rows:
        known = catalog.known_log_ids(stray["log_id"].to_pylist())
        orphans = [(log_id, f"{date}/{hour}") for log_id, date, hour in zip(
            stray["log_id"].to_pylist(), stray["date_min"].to_pylist(), stray["hour_min"].to_pylist(), strict=True)
            if log_id not in known]
        if orphans:
            hours = sorted({where for _, where in orphans})
            findings.append(Finding(
                LAKE_ROWS_ORPHANED, provider, None,
                f"{len(orphans)} row(s) of lake table {table!r} (hours {', '.join(hours[:_EXAMPLES])}) have log_ids the "
                f"catalog does not hold: {_examples(log_id for log_id, _ in orphans)}"))
    matched = ids_where(pc.is_valid(joined["partition"]))
    present = pc.fill_null(matched["log_id_count"], 0)
    for mask, kind in (
        (pc.and_(matched["loadable"], pc.equal(present, 0)), LAKE_ROWS_MISSING),
        (pc.greater(present, 1), LAKE_ROWS_DUPLICATED),
        (pc.and_(pc.invert(matched["loadable"]), pc.greater(present, 0)), LAKE_ROWS_NOT_EXPECTED),
    ):
        picked = matched.filter(mask)
        for log_id, partition in zip(picked["log_id"].to_pylist(), picked["partition"].to_pylist(), strict=True):
            by_partition[(kind, partition)].append(log_id)
    for (kind, partition), ids in sorted(by_partition.items(), key=lambda item: (item[0][1], item[0][0])):
        if partition in in_progress:
            continue
        if kind == LAKE_ROWS_MISSING and partition not in sealed:
            continue  # an unsealed partition is reported as such; its load may not have run
        detail = {
            LAKE_ROWS_MISSING: f"{len(ids)} record(s) that belong in lake table {table!r} are not there",
            LAKE_ROWS_DUPLICATED: f"{len(ids)} record(s) appear more than once in lake table {table!r} "
                                  "(a re-run of the partition repairs it)",
            LAKE_ROWS_NOT_EXPECTED: f"{len(ids)} dead-lettered or untimed record(s) are in lake table {table!r} "
                                    "(a re-run of the partition removes them)",
        }[kind]
        findings.append(Finding(kind, provider, None, f"{detail}: {_examples(ids)}", partition))
    return findings


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
                                        f"{key} under raw/ is not a content-addressed page (raw/<provider>/YYYY/MM/DD/HH/<sha256>.json)"))
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

