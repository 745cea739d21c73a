"""Promotion's workspace: a worker reads one raw object's records as one range of the sealed index.

The workspace's table is in log order (the order the signed root was built in), so an object's
records are spread all over it; the sealed index covers every column a decision reads, so a
worker never visits the table for them.
"""

from __future__ import annotations

import hashlib
from array import array

import pytest

from vault_pipeline.core.merkle import MerkleBuilder
from vault_pipeline.defs.promotion.workspace import (
    RECORDS_OF_OBJECT,
    DecisionRecord,
    _Workspace,
    open_sealed,
    records_of,
)
from vault_pipeline.storage.catalog import RECORD_FIELDS, RecordEntry


def _entry(log_id: str, key: str, offset: int, status: str = "valid") -> RecordEntry:
    return RecordEntry(log_id, "acme", "2026-01-01-00:00|acme", f"n-{log_id}", key, offset, 10,
                       f"sha256:{log_id * 64}"[:71], "2026-01-01T00:00:00.000000Z", "run-1", status, "now")


def test_a_sealed_index_gives_each_object_its_records_by_offset_from_the_covering_index(tmp_path):
    entries = [_entry("a", "raw/2.json", 20), _entry("b", "raw/1.json", 10), _entry("c", "raw/2.json", 0, "dead_letter"),
               _entry("d", "raw/1.json", 0), _entry("e", "raw/2.json", 10)]
    work = _Workspace(str(tmp_path))
    try:
        work.db.executemany(f"INSERT INTO records VALUES ({', '.join('?' * len(RECORD_FIELDS))})",
                            [tuple(getattr(e, f) for f in RECORD_FIELDS) for e in entries])
        in_process = {key: group for key, group in work.objects()}
        sealed = open_sealed(work.seal())
    finally:
        work.close()
    try:
        by_object = {key: records_of(sealed, key) for key in ("raw/1.json", "raw/2.json")}
        plan = " ".join(row[-1] for row in sealed.execute("EXPLAIN QUERY PLAN " + RECORDS_OF_OBJECT, ("raw/1.json",)))
    finally:
        sealed.close()
    assert "USING COVERING INDEX records_by_object" in plan, plan
    assert [r.log_id for r in by_object["raw/1.json"]] == ["d", "b"]
    assert [r.log_id for r in by_object["raw/2.json"]] == ["c", "e", "a"]
    assert by_object == in_process  # a worker and the run's own process read the same records
    expected = {e.log_id: DecisionRecord(*(getattr(e, f) for f in DecisionRecord._fields[:-1]), position)
                for position, e in enumerate(entries, start=1)}  # inserted in this order: their log order here
    assert all(r == expected[r.log_id] for group in by_object.values() for r in group)


class _Catalog:
    """Just the one port method a workspace calls, over a list of entries in log order."""

    def __init__(self, entries: list[RecordEntry]) -> None:
        self.entries = entries

    def copy_partition_records(self, partition, into, table):
        into.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(RECORD_FIELDS))})",
                         [tuple(getattr(e, f) for f in RECORD_FIELDS) for e in self.entries])
        return len(self.entries)


def _digest(n: int) -> bytes:
    return hashlib.sha256(b"decision %d" % n).digest()


def _part(positions: list[int]) -> tuple[bytes, bytes]:
    return array("q", positions).tobytes(), b"".join(_digest(p) for p in positions)


@pytest.fixture
def workspace(tmp_path):
    work = _Workspace(str(tmp_path))
    work.copy_records(_Catalog([_entry(f"{n:04d}", f"raw/{n % 3}.json", n) for n in range(1000)]), "p")
    yield work
    work.close()


def test_digests_sent_part_by_part_in_any_order_come_back_in_log_order(workspace):
    order = list(range(1, 1001))
    parts = [order[start::3] for start in (2, 0, 1)]  # each part's records spread over the whole log
    for positions in parts:
        workspace.add_digests(*_part(positions))
    got = list(workspace.digests())
    assert got == [_digest(p) for p in range(1, 1001)]
    tree, reference = MerkleBuilder(), MerkleBuilder()
    tree.add_many(iter(got))
    reference.add_many(_digest(p) for p in range(1, 1001))
    assert tree.root_hex() == reference.root_hex()


def test_a_record_decided_twice_or_never_stops_the_root(workspace):
    workspace.add_digests(*_part(list(range(1, 600))))
    with pytest.raises(RuntimeError, match="already has a decision"):
        workspace.add_digests(*_part([599, 600]))
    with pytest.raises(RuntimeError, match="already has a decision"):
        workspace.add_digests(*_part([700, 700]))
    with pytest.raises(RuntimeError, match="outside the workspace"):
        workspace.add_digests(*_part([1001]))
    with pytest.raises(RuntimeError, match="401 of the partition's 1000 records have no decision"):
        list(workspace.digests())
    workspace.clear_digests()  # decided again from the start (a ledger mismatch)
    workspace.add_digests(*_part(list(range(1, 1001))))
    assert len(list(workspace.digests())) == 1000


def test_an_empty_partition_has_an_empty_digest_file(tmp_path):
    work = _Workspace(str(tmp_path))
    try:
        assert work.copy_records(_Catalog([]), "p") == 0
        work.add_digests(b"", b"")
        assert list(work.digests()) == []
    finally:
        work.close()
