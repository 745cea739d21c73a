"""The integrity snapshot diff: landing snapshot vs the object store, the catalog and the lake.

Every stored page of the partition is re-read and re-hashed; every landed record is matched
with its catalog entry (a merge-join on ``log_id``, streaming, so memory does not grow with
the hour) and, when it passed validation, with its lake row. The result is an
IntegrityReport whose failing findings make the blocking check fail.
"""

from __future__ import annotations

import hashlib
import heapq
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc

from vault_pipeline.allocators import return_freed_memory, returns_freed_memory
from vault_pipeline.core.checksums import checksum
from vault_pipeline.core.integrity import IntegrityReport
from vault_pipeline.core.key_set import KeySet
from vault_pipeline.core.kinds import fact_table_name
from vault_pipeline.core.layout import raw_prefix
from vault_pipeline.core.windows import HourWindow
from vault_pipeline.defs.analytics.normalisation import partitions_of
from vault_pipeline.defs.ingestion.indexing import rejected_in_fetch
from vault_pipeline.defs.ingestion.landed import LandedPartition
from vault_pipeline.storage.catalog import Catalog
from vault_pipeline.storage.lake import DeltaLake
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore

_LAKE_SLICE_KEYS = 1_250_000  # lake keys read per scan of the key column
_PROBE_KEYS = 250_000  # the hour's keys checked against the lake's at a time
_MISSING_LISTED = 1000  # missing_in_lake findings named one by one; the count carries the rest


@returns_freed_memory
def diff_partition(
    *, store: ObjectStore, catalog: Catalog, lake: DeltaLake, kind: str, provider: str,
    window: HourWindow, fetch_window: HourWindow, partition: str,
) -> IntegrityReport:
    report = IntegrityReport(partition=partition)
    landed = LandedPartition(store, provider, window)
    changed_objects = _check_objects(store, landed, provider, window, report)
    # Object keys repeat for every record of a page: dictionary-encoded they cost an index each.
    snapshot = landed.snapshot_table(["log_id", "object_key", "offset", "length", "checksum", "timestamp"],
                                     dictionary=["object_key"])
    report.counts["landed_records"] = snapshot.num_rows
    if changed_objects:
        _check_changed_records(store, snapshot, changed_objects, report)
    report.counts["unique_records"] = pc.count_distinct(snapshot["log_id"]).as_py()
    # Each check's transient buffers go back before the next one's (the lake check's are the largest).
    return_freed_memory()
    _check_catalog(catalog, snapshot, provider, window, fetch_window, partition, report)
    rejected = rejected_in_fetch(catalog, snapshot)
    return_freed_memory()
    _check_lake(lake, kind, snapshot, rejected, provider, fetch_window, report)
    return report


def _check_objects(store, landed, provider, window, report) -> set[str]:
    changed = set()
    listed = {o.key for o in landed.objects}
    report.counts["objects"] = len(listed)
    for obj in landed.objects:
        try:
            data = store.get(obj.key)
        except ObjectMissingError:
            report.add("missing_object", key=obj.key)
            changed.add(obj.key)
            continue
        digest = checksum(data)
        if digest != obj.checksum or len(data) != obj.size:
            report.add("changed_object", key=obj.key, expected=obj.checksum, found=digest)
            changed.add(obj.key)
    for key in store.list(raw_prefix(provider, window)):
        if key not in listed:
            report.add("orphaned_object", key=key)
    return changed


def _check_changed_records(store, snapshot: pa.Table, changed_objects: set[str], report) -> None:
    """Name the records inside altered or missing pages."""
    affected = snapshot.filter(pc.is_in(snapshot["object_key"], pa.array(sorted(changed_objects))))
    cache: dict[str, bytes | None] = {}
    for row in affected.to_pylist():
        key = row["object_key"]
        if key not in cache:
            try:
                cache[key] = store.get(key)
            except ObjectMissingError:
                cache[key] = None
        data = cache[key]
        if data is None:
            continue  # already reported as missing_object
        piece = data[row["offset"] : row["offset"] + row["length"]]
        if "sha256:" + hashlib.sha256(piece).hexdigest() != row["checksum"]:
            report.add("changed_record", log_id=row["log_id"], key=key)


def _catalog_stream(catalog: Catalog, provider: str, fetch_window: HourWindow):
    """Catalog entries of every partition whose fetch overlaps this one, in log_id order: the
    hours of the fetch window, and as many after it as its lookback, because a later hour run
    first (a backfill of earlier hours) indexes this hour's records through its own lookback."""
    streams = []
    moment = fetch_window.start
    end = fetch_window.end + (fetch_window.end - fetch_window.start) - timedelta(hours=1)
    while moment < end:
        streams.append(catalog.iter_partition_records(f"{moment.strftime('%Y-%m-%d-%H:00')}|{provider}"))
        moment += timedelta(hours=1)
    return heapq.merge(*streams, key=lambda entry: entry.log_id)


def _in_log_order(snapshot: pa.Table, batch: int = 50_000):
    """The snapshot's rows in log_id order (stable: the first copy of a log_id comes first),
    gathered batch by batch rather than as a sorted copy of the whole table."""
    order = pc.sort_indices(snapshot, [("log_id", "ascending")])
    columns = ("log_id", "object_key", "offset", "length", "checksum")
    for start in range(0, len(order), batch):
        rows = snapshot.select(list(columns)).take(order[start : start + batch])
        yield from zip(*(rows.column(name).to_pylist() for name in columns), strict=True)


def _check_catalog(catalog, snapshot: pa.Table, provider, window, fetch_window, partition, report) -> None:
    entries = _catalog_stream(catalog, provider, fetch_window)
    current = next(entries, None)
    matched = 0
    previous_id = None
    elsewhere: list[tuple[str, str]] = []  # (log_id, checksum) of fetched records no overlapping partition holds
    for log_id, object_key, offset, length, record_checksum in _in_log_order(snapshot):
        if log_id == previous_id:
            continue  # a duplicate within the fetch; the first copy is the one indexed
        previous_id = log_id
        while current is not None and current.log_id < log_id:
            if current.partition == partition:
                report.add("orphaned_in_catalog", log_id=current.log_id)
            current = next(entries, None)
        if current is None or current.log_id != log_id:
            elsewhere.append((log_id, record_checksum))
            continue
        matched += 1
        if current.checksum != record_checksum:
            if current.partition == partition:
                report.add("catalog_checksum_mismatch", log_id=log_id, expected=record_checksum, found=current.checksum)
            else:
                report.add("revision_conflict", log_id=log_id, indexed_by=current.partition)
        elif current.partition == partition and (current.object_key, current.offset, current.length) != (object_key, offset, length):
            report.add("catalog_pointer_mismatch", log_id=log_id, expected=f"{object_key}@{offset}+{length}",
                       found=f"{current.object_key}@{current.offset}+{current.length}")
        current = next(entries, None)
    while current is not None:
        if current.partition == partition:
            report.add("orphaned_in_catalog", log_id=current.log_id)
        current = next(entries, None)
    # A record another partition indexed first (a re-delivery far from its hour) is still held.
    known = catalog.known_log_ids([log_id for log_id, _ in elsewhere]) if elsewhere else set()
    for log_id, record_checksum in elsewhere:
        if log_id not in known:
            report.add("missing_in_catalog", log_id=log_id)
            continue
        matched += 1
        held = catalog.get_record(log_id)
        if held is not None and held.checksum != record_checksum:
            report.add("revision_conflict", log_id=log_id, indexed_by=held.partition)
    report.counts["catalog_matched"] = matched
    indexed_here = catalog.count_records(partition=partition)
    report.counts["catalog_partition_records"] = indexed_here
    if indexed_here > report.counts["unique_records"]:
        report.add("count_mismatch", what="catalog entries of the partition exceed landed records",
                   catalog=indexed_here, landed=report.counts["unique_records"])


def _check_lake(lake: DeltaLake, kind, snapshot: pa.Table, rejected: set[str], provider, fetch_window, report) -> None:
    table = fact_table_name(kind)
    valid = snapshot.select(["log_id", "timestamp"]).filter(pc.is_valid(snapshot["timestamp"]))["log_id"]
    if rejected:
        valid = valid.filter(pc.invert(pc.is_in(valid, pa.array(sorted(rejected), pa.string()))))
    # The lake's keys and the hour's expected keys go into compact key sets (~37 B a key),
    # read and probed in slices: at 5M records the whole column read at once plus Arrow's hash
    # sets over it held ~2 GB. Each lake slice is one more scan of the key column (~2 s at 5M),
    # so slices come per 1.25M keys.
    held = KeySet()
    buckets = next((b for b in (1, 2, 4, 8) if len(valid) <= b * _LAKE_SLICE_KEYS), 16)
    for rows in lake.read_in_buckets(table, key="log_id", buckets=buckets, columns=["log_id"],
                                     partitions=partitions_of(fetch_window), provider=provider):
        if rows.num_rows:
            held.add_new(pc.drop_null(rows["log_id"]))
    expected, matched, missing = KeySet(), 0, []
    for start in range(0, len(valid), _PROBE_KEYS):
        keys = valid.slice(start, _PROBE_KEYS)
        new = expected.add_new(keys)  # each log_id once, at its first copy in the fetch
        there = held.contains(keys)
        matched += pc.sum(pc.and_(new, there)).as_py() or 0
        if len(missing) < _MISSING_LISTED:
            missing += keys.filter(pc.and_(new, pc.invert(there))).to_pylist()[: _MISSING_LISTED - len(missing)]
    report.counts["lake_expected"] = len(expected)
    report.counts["lake_matched"] = matched
    for log_id in missing:
        report.add("missing_in_lake", log_id=log_id)
    if len(expected) - matched > len(missing):
        report.finding_counts["missing_in_lake"] += len(expected) - matched - len(missing)
