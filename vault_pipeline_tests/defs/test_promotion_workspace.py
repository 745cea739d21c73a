"""Promotion's workspace: a worker reads one raw object's records as one range of the sealed index.

The workspace's table is in log order (the order the signed root was built in), so an object's
records are spread all over it; the sealed index covers every column a decision reads, so a
worker never visits the table for them.
"""

from __future__ import annotations

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
    expected = {e.log_id: DecisionRecord(*(getattr(e, f) for f in DecisionRecord._fields)) for e in entries}
    assert all(r == expected[r.log_id] for group in by_object.values() for r in group)
