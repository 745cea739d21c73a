"""The Catalog contract: what every catalog backend must answer, checked against each of them.

Every test here runs once per backend (the ``catalog`` fixture: SQLite file, MongoDB via
mongomock), so an auditor's query, an idempotent re-run or a conflict report never depends
on the deployment. A few adapter-specific checks (SQLite file handling, MongoDB connection
errors) sit at the end.
"""

from __future__ import annotations

import pickle
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from vault_pipeline.storage import mongo_records, sqlite_records
from vault_pipeline.storage.catalog import (
    DEAD_LETTER,
    VALID,
    Artifact,
    Catalog,
    CatalogError,
    DeadLetter,
    IdempotencyRecord,
    RecordEntry,
)
from vault_pipeline.storage.mongo_catalog import MongoCatalog, redact_uri
from vault_pipeline.storage.sqlite_catalog import SqliteCatalog
from vault_pipeline_tests.fixtures.catalogs import CATALOG_BACKENDS, make_catalog

HOUR = "2026-01-01-05:00|acme_audit"

HOSTILE_STRINGS = [
    "it's \"quoted\" `twice`",
    "'; DROP TABLE records; --",
    "\"); db.records.drop(); //",
    "ünïcødé ✓ 日本語",
    "astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀 🀄",
    "back\\slash % _ * wildcards",
    "$where.dotted.key",
    "new\nline\ttab\r",
    "nul\x00byte",
]


def ts(hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> str:
    return f"2026-01-01T{hour:02d}:{minute:02d}:{second:02d}.{micro:06d}Z"


def entry(n: int, **overrides: object) -> RecordEntry:
    fields: dict[str, object] = {
        "log_id": f"log_{n:032x}",
        "provider": "acme_audit",
        "partition": HOUR,
        "natural_id": f"evt-{n}",
        "object_key": f"raw/acme_audit/2026/01/01/05/{n // 10:064x}.json",
        "offset": (n % 10) * 120,
        "length": 120,
        "checksum": f"sha256:{n:064x}",
        "timestamp": ts(5, n % 60, n % 7, n),
        "run_id": "run-1",
        "ingested_at": "2026-01-01T06:00:00.000000Z",
    }
    fields.update(overrides)
    return RecordEntry(**fields)  # type: ignore[arg-type]


def sort_key(record: RecordEntry) -> tuple[bool, str, str]:
    return (record.timestamp is not None, record.timestamp or "", record.log_id)


def all_pages(catalog: Catalog, **filters: object) -> list[RecordEntry]:
    return catalog.search_records(limit=10_000, **filters).items  # type: ignore[arg-type]


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink the adapters' internal batch sizes so a few records cross every boundary (in the
    modules that read them; sqlite_catalog and mongo_catalog only re-export them)."""
    for module, names in (
        (sqlite_records, ("IN_CHUNK", "UPSERT_CHUNK", "PARTITION_PAGE")),
        (mongo_records, ("ID_CHUNK", "INSERT_CHUNK")),
    ):
        for name in names:
            monkeypatch.setattr(module, name, 3)


# records: upsert --------------------------------------------------------------------------
def test_upsert_indexes_new_entries_and_get_record_round_trips_every_field(catalog: Catalog) -> None:
    full = entry(1, status=DEAD_LETTER, offset=2**40, length=7, timestamp=ts(5, 59, 59, 999999))
    untimed = entry(2, timestamp=None, ingested_at="")
    result = catalog.upsert_records([full, untimed])

    assert (result.inserted, result.unchanged, result.conflicts) == (2, 0, [])
    assert catalog.get_record(full.log_id) == full
    assert catalog.get_record(untimed.log_id) == untimed
    stored = catalog.get_record(full.log_id)
    assert stored is not None and type(stored.offset) is int and type(stored.length) is int
    assert catalog.get_record(untimed.log_id).timestamp is None  # type: ignore[union-attr]
    assert catalog.get_record("log_unknown") is None


def test_log_id_is_unique(catalog: Catalog) -> None:
    catalog.upsert_records([entry(1)])
    catalog.upsert_records([entry(1, partition="2026-01-01-06:00|acme_audit", run_id="run-2")])

    assert catalog.count_records() == 1
    assert catalog.get_record(entry(1).log_id) == entry(1)


def test_second_upsert_of_the_same_entries_changes_nothing(catalog: Catalog) -> None:
    entries = [entry(n) for n in range(40)]
    catalog.upsert_records(entries)
    before = all_pages(catalog)

    again = catalog.upsert_records(entries)

    assert (again.inserted, again.unchanged, again.conflicts) == (0, 40, [])
    assert all_pages(catalog) == before
    assert catalog.count_records() == 40


def test_conflicting_checksum_is_reported_and_the_first_copy_kept(catalog: Catalog) -> None:
    original = entry(1)
    catalog.upsert_records([original])
    tampered = replace(original, checksum="sha256:" + "f" * 64, object_key="raw/other.json", run_id="run-9")

    result = catalog.upsert_records([tampered])

    assert (result.inserted, result.unchanged, result.conflicts) == (0, 0, [original.log_id])
    assert catalog.get_record(original.log_id) == original


@pytest.mark.usefixtures("small_batches")
def test_overlapping_batch_counts_new_unchanged_and_conflicting_entries(catalog: Catalog) -> None:
    catalog.upsert_records([entry(n) for n in range(10)])
    batch = [
        *(entry(n) for n in range(5, 10)),  # a lookback re-delivers these unchanged
        entry(3, checksum="sha256:" + "a" * 64),
        *(entry(n) for n in range(10, 17)),
        entry(8, checksum="sha256:" + "b" * 64),
    ]

    result = catalog.upsert_records(batch)

    assert (result.inserted, result.unchanged) == (7, 5)
    assert result.conflicts == [entry(3).log_id, entry(8).log_id]
    assert catalog.count_records() == 17
    assert catalog.get_record(entry(3).log_id) == entry(3)


@pytest.mark.usefixtures("small_batches")
def test_duplicate_log_ids_within_one_batch_keep_the_first_copy(catalog: Catalog) -> None:
    first_b = entry(2)
    batch = [entry(1), entry(1), first_b, replace(first_b, checksum="sha256:" + "c" * 64)]

    result = catalog.upsert_records(batch)

    assert (result.inserted, result.unchanged, result.conflicts) == (2, 1, [first_b.log_id])
    assert catalog.get_record(first_b.log_id) == first_b


def test_empty_upsert_is_a_no_op(catalog: Catalog) -> None:
    result = catalog.upsert_records([])
    assert (result.inserted, result.unchanged, result.conflicts) == (0, 0, [])
    assert catalog.count_records() == 0


# records: search --------------------------------------------------------------------------
def test_search_orders_by_timestamp_then_log_id_with_untimed_records_first(catalog: Catalog) -> None:
    same_moment = ts(7, 30)
    records = [
        entry(9, timestamp=ts(8)),
        entry(4, timestamp=same_moment),
        entry(2, timestamp=None),
        entry(7, timestamp=ts(6, 59, 59, 999999)),
        entry(3, timestamp=same_moment),
        entry(8, timestamp=None),
        entry(1, timestamp=ts(23, 59)),
    ]
    catalog.upsert_records(records)

    page = catalog.search_records()

    assert [r.log_id for r in page.items] == [r.log_id for r in sorted(records, key=sort_key)]
    assert [r.timestamp for r in page.items[:2]] == [None, None]
    assert page.total_count == len(records)


def test_search_by_provider_and_time_range_counts_every_match(catalog: Catalog) -> None:
    records = [
        entry(n, provider=provider, timestamp=ts(hour, n % 60))
        for n, (provider, hour) in enumerate(
            (p, h) for p in ("acme_audit", "llm_events", "qa_runs") for h in range(3, 9) for _ in range(3)
        )
    ]
    records.append(entry(500, provider="llm_events", timestamp=None))
    records.append(entry(501, provider="llm_events", timestamp=ts(5)))  # exactly at start: included
    records.append(entry(502, provider="llm_events", timestamp=ts(7)))  # exactly at end: excluded
    catalog.upsert_records(records)
    start, end = ts(5), ts(7)
    expected = sorted(
        (r for r in records if r.provider == "llm_events" and r.timestamp and start <= r.timestamp < end),
        key=sort_key,
    )

    page = catalog.search_records(provider="llm_events", start=start, end=end, limit=4)

    assert page.total_count == len(expected) == 7
    assert page.items == expected[:4]
    assert catalog.search_records(provider="llm_events").total_count == 21
    assert catalog.search_records(provider="nobody").total_count == 0


def test_any_time_filter_excludes_records_without_timestamp(catalog: Catalog) -> None:
    catalog.upsert_records([entry(1, timestamp=None), entry(2, timestamp=ts(4)), entry(3, timestamp=ts(6))])

    assert [r.log_id for r in catalog.search_records(start=ts(0)).items] == [entry(2).log_id, entry(3).log_id]
    assert [r.log_id for r in catalog.search_records(end=ts(5)).items] == [entry(2).log_id]
    assert catalog.search_records(end=ts(5)).total_count == 1
    assert catalog.search_records(start=ts(6), end=ts(6)).total_count == 0
    assert catalog.search_records().total_count == 3


def test_pages_walk_the_whole_order_without_gaps_or_repeats(catalog: Catalog) -> None:
    records = [entry(n, timestamp=None if n % 9 == 0 else ts(5, n % 4)) for n in range(30)]
    catalog.upsert_records(records)
    expected = sorted(records, key=sort_key)

    walked: list[RecordEntry] = []
    offset = 0
    while True:
        page = catalog.search_records(limit=7, offset=offset)
        assert page.total_count == 30
        walked += page.items
        offset += len(page.items)
        has_more = offset < page.total_count
        assert len(page.items) == (7 if has_more else 30 % 7)
        if not has_more:
            break

    assert walked == expected
    past_the_end = catalog.search_records(limit=7, offset=30)
    assert (past_the_end.items, past_the_end.total_count) == ([], 30)
    assert len(catalog.search_records().items) == 30  # the default limit is 50


def test_search_limit_zero_counts_and_negative_paging_is_refused(catalog: Catalog) -> None:
    catalog.upsert_records([entry(n) for n in range(3)])

    empty = catalog.search_records(limit=0)
    assert (empty.items, empty.total_count) == ([], 3)
    with pytest.raises(ValueError):
        catalog.search_records(limit=-1)
    with pytest.raises(ValueError):
        catalog.search_records(offset=-1)


# records: partitions, counts, status ------------------------------------------------------
@pytest.mark.usefixtures("small_batches")
def test_iter_partition_records_yields_its_records_by_log_id_while_status_changes(catalog: Catalog) -> None:
    other = "2026-01-01-06:00|acme_audit"
    mine = [entry(n) for n in (17, 3, 11, 5, 8, 1, 13)]
    catalog.upsert_records([*mine, *(entry(n, partition=other) for n in (2, 4, 6))])

    seen = []
    for record in catalog.iter_partition_records(HOUR):
        # callers mark records while iterating; that must neither deadlock nor disturb the walk
        catalog.set_status([record.log_id], DEAD_LETTER)
        seen.append(record.log_id)

    assert seen == sorted(r.log_id for r in mine)
    assert list(catalog.iter_partition_records("2030-01-01-00:00|nobody")) == []
    assert all(r.status == DEAD_LETTER for r in catalog.iter_partition_records(HOUR))
    assert all(r.status == VALID for r in catalog.iter_partition_records(other))


def test_copy_partition_records_appends_exactly_the_partitions_records_in_log_order(catalog: Catalog, tmp_path) -> None:
    """Promotion's workspace is filled by this: every field as the catalog holds it (hostile
    text included), only the partition's records, ascending log_id, appended to what is there."""
    other = "2026-01-01-06:00|acme_audit"
    mine = [replace(entry(n), natural_id=text) for n, text in zip((17, 3, 11, 5, 8), HOSTILE_STRINGS, strict=False)]
    catalog.upsert_records([*mine, *(entry(n, partition=other) for n in (2, 4, 6))])
    catalog.set_status([mine[1].log_id], DEAD_LETTER)
    work = sqlite3.connect(tmp_path / "work.sqlite")
    work.execute(f"CREATE TABLE records ({', '.join(f'c{i}' for i in range(12))})")
    work.execute("INSERT INTO records VALUES (" + ",".join("?" * 12) + ")", ("already",) * 12)
    work.commit()

    assert catalog.copy_partition_records(HOUR, work, "records") == 5
    rows = work.execute("SELECT * FROM records ORDER BY rowid").fetchall()
    assert rows[0] == ("already",) * 12
    assert [RecordEntry(*row) for row in rows[1:]] == list(catalog.iter_partition_records(HOUR))
    assert [row[0] for row in rows[1:]] == sorted(r.log_id for r in mine)
    assert catalog.copy_partition_records("2030-01-01-00:00|nobody", work, "records") == 0
    with pytest.raises(ValueError, match="invalid table name"):
        catalog.copy_partition_records(HOUR, work, "records; DROP TABLE records")
    assert work.execute("SELECT count(*) FROM records").fetchone() == (6,)
    work.close()


def test_count_records_by_provider_and_partition(catalog: Catalog) -> None:
    catalog.upsert_records(
        [
            *(entry(n) for n in range(4)),
            *(entry(n, partition="2026-01-01-06:00|acme_audit") for n in range(4, 6)),
            *(entry(n, provider="llm_events", partition="2026-01-01-05:00|llm_events") for n in range(6, 9)),
        ]
    )

    assert catalog.count_records() == 9
    assert catalog.count_records(provider="acme_audit") == 6
    assert catalog.count_records(partition=HOUR) == 4
    assert catalog.count_records(provider="llm_events", partition="2026-01-01-05:00|llm_events") == 3
    assert catalog.count_records(provider="llm_events", partition=HOUR) == 0


@pytest.mark.usefixtures("small_batches")
def test_set_status_reports_only_records_it_changed(catalog: Catalog) -> None:
    catalog.upsert_records([entry(n) for n in range(6)])
    targets = [entry(n).log_id for n in (0, 2, 4, 5)]

    assert catalog.set_status([*targets, targets[0], "log_unknown"], DEAD_LETTER) == 4
    assert catalog.set_status(targets, DEAD_LETTER) == 0
    assert catalog.set_status([entry(4).log_id, entry(1).log_id], VALID) == 1
    assert catalog.set_status([], VALID) == 0
    statuses = {r.log_id: r.status for r in all_pages(catalog)}
    assert [statuses[entry(n).log_id] for n in range(6)] == [DEAD_LETTER, VALID, DEAD_LETTER, VALID, VALID, DEAD_LETTER]
    with pytest.raises(ValueError):
        catalog.set_status(targets, "deleted")


def test_partition_record_counts_name_every_partition_holding_records(catalog: Catalog) -> None:
    other = "2026-01-01-06:00|acme_audit"
    catalog.upsert_records([entry(n) for n in range(5)] + [entry(n, partition=other) for n in range(5, 7)]
                           + [entry(9, provider="demo", partition="2026-01-01-05:00|demo")])

    assert catalog.partition_record_counts() == {HOUR: 5, other: 2, "2026-01-01-05:00|demo": 1}
    assert catalog.partition_record_counts(provider="acme_audit") == {HOUR: 5, other: 2}
    assert catalog.partition_record_counts(provider="nobody") == {}


@pytest.mark.usefixtures("small_batches")
def test_known_log_ids_are_the_ones_the_catalog_holds_in_any_partition(catalog: Catalog) -> None:
    catalog.upsert_records([entry(n) for n in range(4)] + [entry(5, partition="2026-01-01-06:00|acme_audit")])
    asked = [entry(n).log_id for n in range(8)] + [entry(1).log_id]

    assert catalog.known_log_ids(asked) == {entry(n).log_id for n in (0, 1, 2, 3, 5)}
    assert catalog.known_log_ids([]) == set()


def test_partition_lake_keys_say_which_records_belong_in_the_lake(catalog: Catalog) -> None:
    catalog.upsert_records([entry(3), entry(1), entry(2, timestamp=None), entry(0), entry(7, partition="other|x")])
    catalog.set_status([entry(0).log_id], DEAD_LETTER)

    pages = list(catalog.partition_lake_keys(HOUR, page_size=3))

    assert [len(ids) for ids, _ in pages] == [3, 1]
    assert [i for ids, _ in pages for i in ids] == [entry(n).log_id for n in (0, 1, 2, 3)]
    assert [f for _, flags in pages for f in flags] == [False, True, False, True]  # dead letter, ok, no time, ok
    assert list(catalog.partition_lake_keys("nothing|here")) == []


# watermarks -------------------------------------------------------------------------------
def test_watermarks_only_move_forward(catalog: Catalog) -> None:
    assert catalog.get_watermark("acme_audit") is None

    assert catalog.advance_watermark("acme_audit", ts(5)) == ts(5)
    assert catalog.advance_watermark("acme_audit", ts(4, 59)) == ts(5)
    assert catalog.get_watermark("acme_audit") == ts(5)
    assert catalog.advance_watermark("acme_audit", ts(5, 0, 0, 1)) == ts(5, 0, 0, 1)
    assert catalog.advance_watermark("llm_events", ts(1)) == ts(1)
    assert catalog.get_watermark("acme_audit") == ts(5, 0, 0, 1)


# dead letters -----------------------------------------------------------------------------
def letter(n: int, **overrides: object) -> DeadLetter:
    fields: dict[str, object] = {
        "dead_letter_id": f"dl_{n:04d}",
        "provider": "acme_audit",
        "partition": HOUR,
        "stage": "input_validation",
        "reason": f"missing eventTime #{n}",
        "object_key": f"raw/acme_audit/{n}.json",
        "log_id": f"log_{n:032x}",
        "offset": n * 10,
        "length": 10,
        "created_at": "2026-01-01T06:00:00.000000Z",
        "detail": {"rule": "expect_column_values_to_not_be_null", "n": n, "big": 2**70, "ok": False},
    }
    fields.update(overrides)
    return DeadLetter(**fields)  # type: ignore[arg-type]


def test_dead_letters_are_idempotent_by_id_and_replaced(catalog: Catalog) -> None:
    assert catalog.add_dead_letters([letter(2), letter(1), letter(2)]) == 2
    assert catalog.add_dead_letters([letter(1, reason="schema changed"), letter(3)]) == 1
    assert catalog.add_dead_letters([]) == 0

    listed = catalog.list_dead_letters()
    assert [d.dead_letter_id for d in listed] == ["dl_0001", "dl_0002", "dl_0003"]
    assert listed[0] == letter(1, reason="schema changed")
    assert catalog.count_dead_letters() == 3


def test_dead_letters_round_trip_optional_fields_and_nested_detail(catalog: Catalog) -> None:
    bare = DeadLetter("dl_bare", "acme_audit", HOUR, "landing", "body is not JSON")
    nested = letter(7, detail={"errors": [{"path": "$.a", "value": None}, 1.5, "ß"], "n": {"deep": [True, 2**64 + 1]}})
    catalog.add_dead_letters([bare, nested])

    assert catalog.list_dead_letters() == [nested, bare]
    assert catalog.list_dead_letters()[1].offset is None
    assert catalog.list_dead_letters()[0].detail["n"]["deep"][1] == 2**64 + 1


def test_dead_letters_filter_and_page_by_provider_and_partition(catalog: Catalog) -> None:
    other_hour = "2026-01-01-06:00|acme_audit"
    llm_hour = "2026-01-01-05:00|llm_events"
    catalog.add_dead_letters(
        [
            *(letter(n) for n in range(5)),
            *(letter(n, partition=other_hour) for n in range(5, 7)),
            *(letter(n, provider="llm_events", partition=llm_hour) for n in range(7, 10)),
        ]
    )

    assert [d.dead_letter_id for d in catalog.list_dead_letters(partition=HOUR, limit=2, offset=1)] == [
        "dl_0001",
        "dl_0002",
    ]
    assert len(catalog.list_dead_letters(provider="acme_audit")) == 7
    assert catalog.list_dead_letters(provider="llm_events", partition=HOUR) == []
    assert catalog.count_dead_letters(provider="acme_audit", partition=other_hour) == 2
    assert catalog.count_dead_letters(provider="llm_events") == 3
    assert catalog.list_dead_letters(limit=0) == []


@pytest.mark.usefixtures("small_batches")
def test_dead_lettered_finds_log_ids_rejected_by_any_partition(catalog: Catalog) -> None:
    catalog.add_dead_letters([letter(1), letter(2, partition="2026-01-01-06:00|acme_audit"),
                              letter(3, stage="landing"), letter(4, log_id=None)])
    asked = [f"log_{n:032x}" for n in range(8)] + [f"log_{1:032x}"]

    assert catalog.dead_lettered(asked) == {f"log_{1:032x}", f"log_{2:032x}"}
    assert catalog.dead_lettered(asked, stage="landing") == {f"log_{3:032x}"}
    assert catalog.dead_lettered([]) == set()


# leases -----------------------------------------------------------------------------------
def test_a_lease_has_one_holder_until_it_is_released(catalog: Catalog) -> None:
    assert catalog.acquire_lease("lake:audit_events", "run-a", 60)
    assert not catalog.acquire_lease("lake:audit_events", "run-b", 60)
    assert catalog.acquire_lease("lake:audit_events", "run-a", 60)  # renewal by its holder
    assert catalog.lease_holder("lake:audit_events") == "run-a"
    assert catalog.acquire_lease("lake:test_results", "run-b", 60)  # another name is another lease

    catalog.release_lease("lake:audit_events", "run-b")  # not the holder: nothing happens
    assert catalog.lease_holder("lake:audit_events") == "run-a"
    catalog.release_lease("lake:audit_events", "run-a")
    assert catalog.lease_holder("lake:audit_events") is None
    assert catalog.acquire_lease("lake:audit_events", "run-b", 60)


def test_an_expired_lease_can_be_taken_over(catalog: Catalog) -> None:
    assert catalog.acquire_lease("lake:audit_events", "killed-run", 0.05)
    time.sleep(0.1)

    assert catalog.lease_holder("lake:audit_events") is None
    assert catalog.acquire_lease("lake:audit_events", "next-run", 60)
    assert catalog.lease_holder("lake:audit_events") == "next-run"


def test_leases_exclude_each_other_across_threads(catalog: Catalog) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        won = list(pool.map(lambda n: catalog.acquire_lease("lake:x", f"holder-{n}", 60), range(8)))
    assert sum(won) == 1


# artifact index ---------------------------------------------------------------------------
def artifact(artifact_id: str, kind: str, partition: str = HOUR, **overrides: object) -> Artifact:
    fields: dict[str, object] = {
        "artifact_id": artifact_id,
        "kind": kind,
        "provider": partition.split("|")[1],
        "partition": partition,
        "location": f"raw/{artifact_id}.json",
        "checksum": f"sha256:{'0' * 63}1",
        "size": 2048,
        "run_id": "run-1",
        "created_at": "2026-01-01T06:00:00.000000Z",
        "upstream": ["raw_a", "raw_b"],
        "metadata": {"records": 12, "suite": "audit_event", "pass_rate": 0.995, "tags": ["x", None]},
    }
    fields.update(overrides)
    return Artifact(**fields)  # type: ignore[arg-type]


def test_artifacts_are_replaced_by_id_and_round_trip(catalog: Catalog) -> None:
    first = artifact("raw_a", "raw_object", checksum=None, size=None, upstream=[], metadata={})
    catalog.put_artifacts([first, artifact("iv_1", "input_validation")])
    replacement = replace(first, location="raw/moved.json", metadata={"replaced": True})

    catalog.put_artifacts([replacement])
    catalog.put_artifacts([])

    found = catalog.search_artifacts()
    assert found == [artifact("iv_1", "input_validation"), replacement]
    assert catalog.search_artifacts(kind="raw_object")[0].checksum is None


def test_artifacts_filter_by_provider_partition_kind_in_stable_order(catalog: Catalog) -> None:
    later = "2026-01-01-06:00|acme_audit"
    llm = "2026-01-01-05:00|llm_events"
    catalog.put_artifacts(
        [
            artifact("raw_b", "raw_object"),
            artifact("rep_1", "integrity_report", partition=later),
            artifact("raw_a", "raw_object"),
            artifact("iv_1", "input_validation"),
            artifact("raw_c", "raw_object", partition=llm),
        ]
    )

    ordered = [a.artifact_id for a in catalog.search_artifacts()]
    assert ordered == ["iv_1", "raw_a", "raw_b", "raw_c", "rep_1"]  # (partition, kind, artifact_id)
    assert [a.artifact_id for a in catalog.search_artifacts(provider="acme_audit", kind="raw_object")] == [
        "raw_a",
        "raw_b",
    ]
    assert [a.artifact_id for a in catalog.search_artifacts(partition=later)] == ["rep_1"]
    assert [a.artifact_id for a in catalog.search_artifacts(provider="llm_events")] == ["raw_c"]
    assert [a.artifact_id for a in catalog.search_artifacts(limit=2, offset=1)] == ["raw_a", "raw_b"]
    assert catalog.search_artifacts(kind="lake_table") == []


# hostile input ----------------------------------------------------------------------------
@pytest.mark.parametrize("hostile", HOSTILE_STRINGS)
def test_hostile_strings_are_stored_and_found_verbatim(catalog: Catalog, hostile: str) -> None:
    record = entry(
        1,
        log_id=f"log_{hostile}",
        provider=hostile,
        partition=f"2026-01-01-05:00|{hostile}",
        natural_id=hostile,
        object_key=f"raw/{hostile}.json",
        run_id=hostile,
        ingested_at=hostile,
    )
    catalog.upsert_records([record, entry(2)])
    catalog.add_dead_letters(
        [letter(1, dead_letter_id=hostile, provider=hostile, reason=hostile, detail={hostile: hostile})]
    )
    catalog.put_artifacts([artifact(hostile, hostile, partition=record.partition, metadata={hostile: [hostile]})])
    catalog.advance_watermark(hostile, ts(5))

    assert catalog.get_record(record.log_id) == record
    assert catalog.search_records(provider=hostile).items == [record]
    assert list(catalog.iter_partition_records(record.partition)) == [record]
    assert catalog.count_records() == 2  # nothing was dropped or injected
    assert catalog.list_dead_letters(provider=hostile)[0].detail == {hostile: hostile}
    assert catalog.search_artifacts(kind=hostile)[0].metadata == {hostile: [hostile]}
    assert catalog.get_watermark(hostile) == ts(5)


# both backends, one answer ----------------------------------------------------------------
def test_backends_answer_identically(tmp_path: Path) -> None:
    def scenario(catalog: Catalog) -> list[object]:
        records = [entry(n, timestamp=None if n % 5 == 0 else ts(n % 24, n % 60)) for n in range(60)]
        answers: list[object] = [
            catalog.upsert_records(records),
            catalog.upsert_records([*records[:10], replace(records[20], checksum="sha256:" + "d" * 64), entry(99)]),
            catalog.search_records(start=ts(3), end=ts(17), limit=9, offset=4),
            catalog.search_records(provider="acme_audit", limit=1000),
            list(catalog.iter_partition_records(HOUR)),
            catalog.set_status([entry(n).log_id for n in range(0, 60, 3)], DEAD_LETTER),
            catalog.get_record(entry(3).log_id),
            catalog.advance_watermark("acme_audit", ts(9)),
            catalog.advance_watermark("acme_audit", ts(2)),
            catalog.add_dead_letters([letter(2), letter(1), letter(1)]),
            catalog.list_dead_letters(),
        ]
        catalog.put_artifacts([artifact("b", "raw_object"), artifact("a", "raw_object"), artifact("a", "lake_table")])
        answers.append(catalog.search_artifacts())
        return answers

    sqlite_answers, mongo_answers = (scenario(make_catalog(backend, tmp_path)) for backend in CATALOG_BACKENDS)
    assert sqlite_answers == mongo_answers


# opening in another process -----------------------------------------------------------------
def test_worker_opener_opens_the_same_catalog_or_is_none(catalog: Catalog) -> None:
    catalog.upsert_records([entry(1), entry(2)])
    opener = catalog.worker_opener()
    if isinstance(catalog, MongoCatalog):
        assert opener is None  # a handed-in client (here mongomock) cannot be re-created elsewhere
        return
    reopened = pickle.loads(pickle.dumps(opener))()  # what a spawned worker process gets and calls
    try:
        assert type(reopened) is SqliteCatalog
        assert reopened.count_records() == 2 and reopened.get_record(entry(1).log_id) == entry(1)
        catalog.upsert_records([entry(3)])
        assert reopened.get_record(entry(3).log_id) == entry(3)  # the same file, not a copy
    finally:
        reopened.close()


def test_a_subclass_of_the_sqlite_catalog_has_no_worker_opener(tmp_path: Path) -> None:
    class Counting(SqliteCatalog):  # a test double: re-opening it as SqliteCatalog would lose what it does
        pass

    subclassed = Counting(tmp_path / "catalog.db")
    assert subclassed.worker_opener() is None
    subclassed.close()


# adapter-specific -------------------------------------------------------------------------
def test_sqlite_catalog_creates_its_directory_uses_wal_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "vault_home" / "nested" / "catalog.db"
    first = SqliteCatalog(path)
    first.upsert_records([entry(1)])
    first.close()

    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reopened = SqliteCatalog(path)
    assert reopened.get_record(entry(1).log_id) == entry(1)
    reopened.close()


def test_sqlite_search_order_is_served_by_an_index(tmp_path: Path) -> None:
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    for where in ("", ' WHERE "provider" = ?'):
        plan = catalog._db.execute(
            f'EXPLAIN QUERY PLAN SELECT rowid FROM records{where} ORDER BY "timestamp", "log_id" LIMIT 50 OFFSET 9000',
            ("acme_audit",) if where else (),
        ).fetchall()
        details = " ".join(row[-1] for row in plan)
        assert "USING COVERING INDEX" in details and "TEMP B-TREE" not in details, details


def test_sqlite_catalog_is_shared_by_a_thread_pool(tmp_path: Path) -> None:
    catalog = SqliteCatalog(tmp_path / "catalog.db")

    def work(worker: int) -> int:
        batch = [entry(worker * 1000 + n) for n in range(200)]
        catalog.upsert_records(batch)
        catalog.set_status([batch[0].log_id], DEAD_LETTER)
        return catalog.search_records(limit=5).total_count

    with ThreadPoolExecutor(max_workers=8) as pool:
        totals = list(pool.map(work, range(16)))

    assert catalog.count_records() == 16 * 200
    assert all(200 <= total <= 16 * 200 for total in totals)
    assert catalog.search_records(limit=0).total_count == 3200


def test_mongo_from_uri_fails_fast_with_the_password_redacted() -> None:
    uri = "mongodb://vault_user:s3cr3t-P%40ss@127.0.0.1:1/?directConnection=true"

    with pytest.raises(CatalogError) as raised:
        MongoCatalog.from_uri(uri, serverSelectionTimeoutMS=300, connectTimeoutMS=300)

    message = str(raised.value)
    assert "s3cr3t" not in message
    assert "unreachable at mongodb://vault_user:***@127.0.0.1:1/?directConnection=true" in message


def test_mongo_from_uri_rejects_a_malformed_uri_without_echoing_the_password() -> None:
    with pytest.raises(CatalogError, match="invalid MongoDB URI") as raised:
        MongoCatalog.from_uri("http://vault_user:s3cr3t@db.internal/vault")
    assert "s3cr3t" not in str(raised.value)


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (
            "mongodb+srv://u:p@cluster0.example.net/vault?retryWrites=true",
            "mongodb+srv://u:***@cluster0.example.net/vault?retryWrites=true",
        ),
        ("mongodb://u:p@h1:27017,h2:27017/?replicaSet=rs0", "mongodb://u:***@h1:27017,h2:27017/?replicaSet=rs0"),
        ("mongodb://onlyuser@h1/", "mongodb://onlyuser@h1/"),
        ("mongodb://h1:27017", "mongodb://h1:27017"),
    ],
)
def test_redact_uri_hides_only_the_password(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


def test_access_log_is_kept_newest_first_and_filterable(catalog):
    from vault_pipeline.storage.catalog import AccessEntry

    entries = [
        AccessEntry("2026-01-01T00:00:01.000000Z", "alice", "GET", "/v1/logs", 200, 3.5, "127.0.0.1"),
        AccessEntry("2026-01-01T00:00:02.000000Z", "bob", "POST", "/v1/ingest", 202, 12.0, "127.0.0.1"),
        AccessEntry("2026-01-01T00:00:03.000000Z", "alice", "GET", "/v1/logs/x/raw", 404, 1.25, "::1"),
    ]
    catalog.log_access(entries[:1])
    catalog.log_access(entries[1:])
    assert catalog.list_access() == list(reversed(entries))
    assert catalog.list_access(principal="alice") == [entries[2], entries[0]]
    assert catalog.list_access(limit=1, offset=1) == [entries[1]]


def test_a_record_can_be_flagged_as_checksum_mismatch(catalog):
    from vault_pipeline.storage.catalog import CHECKSUM_MISMATCH

    record = entry(1)
    catalog.upsert_records([record])
    assert catalog.set_status([record.log_id], CHECKSUM_MISMATCH) == 1
    assert catalog.get_record(record.log_id).status == CHECKSUM_MISMATCH
    with pytest.raises(ValueError):
        catalog.set_status([record.log_id], "whatever")


def test_keyset_paging_walks_every_record_once_even_while_records_are_added(catalog):
    catalog.upsert_records([entry(n) for n in range(0, 60, 2)] + [entry(1000 + n, timestamp=None) for n in range(3)])
    expected_first = sorted(all_pages(catalog), key=sort_key)
    seen, after = [], None
    while True:
        page = catalog.search_records(limit=7, after=after, with_total=False)
        assert page.total_count == -1
        if not page.items:
            break
        seen.extend(page.items)
        after = (page.items[-1].timestamp, page.items[-1].log_id)
        if len(seen) == 14:  # records arriving mid-walk, before and after the cursor
            catalog.upsert_records([entry(n) for n in range(1, 60, 2)])
    ids = [record.log_id for record in seen]
    assert len(ids) == len(set(ids))  # never the same record twice
    assert set(r.log_id for r in expected_first) <= set(ids)
    assert ids == [r.log_id for r in sorted(seen, key=sort_key)]


def test_keyset_paging_combines_with_filters_and_offset(catalog):
    catalog.upsert_records([entry(n) for n in range(40)] + [entry(100 + n, provider="other") for n in range(5)])
    ordered = all_pages(catalog, provider="acme_audit", start=ts(5, 10), end=ts(5, 50))
    key = (ordered[4].timestamp, ordered[4].log_id)
    page = catalog.search_records(provider="acme_audit", start=ts(5, 10), end=ts(5, 50), after=key, offset=2, limit=3)
    assert [r.log_id for r in page.items] == [r.log_id for r in ordered[7:10]]
    assert page.total_count == len(ordered)


def test_sampled_keys_are_anchors_for_deep_offsets(catalog):
    catalog.upsert_records([entry(n) for n in range(50)] + [entry(500, timestamp=None)])
    ordered = all_pages(catalog)
    count, keys = catalog.sample_record_keys(every=10)
    assert count == 51
    assert keys == [(ordered[i].timestamp, ordered[i].log_id) for i in (9, 19, 29, 39, 49)]
    assert catalog.sample_record_keys(provider="nobody", every=10) == (0, [])
    version = catalog.records_version()
    assert catalog.records_version() == version
    catalog.upsert_records([entry(60)])
    assert catalog.records_version() != version


def test_ledger_entries_are_append_only_and_ordered(catalog):
    from vault_pipeline.storage.catalog import LedgerConflictError

    catalog.append_ledger_entry("acme", 2, HOUR, '{"n": 2}')
    catalog.append_ledger_entry("acme", 1, HOUR, '{"n": 1}')
    catalog.append_ledger_entry("other", 1, "2026-01-01-06:00|other", '{"o": 1}')
    with pytest.raises(LedgerConflictError):
        catalog.append_ledger_entry("acme", 2, HOUR, '{"forged": true}')
    assert list(catalog.ledger_entries("acme")) == [(1, '{"n": 1}'), (2, '{"n": 2}')]
    assert list(catalog.ledger_entries("acme", since_sequence=2)) == [(2, '{"n": 2}')]
    assert catalog.ledger_entries_for_partition(HOUR) == ['{"n": 1}', '{"n": 2}']
    assert catalog.ledger_providers() == ["acme", "other"]
    assert catalog.get_checkpoint("acme") is None
    catalog.put_checkpoint("acme", '{"sequence": 1}')
    catalog.put_checkpoint("acme", '{"sequence": 2}')
    assert catalog.get_checkpoint("acme") == '{"sequence": 2}'


def test_promotions_round_trip_as_json(catalog):
    assert catalog.get_promotion("prm_1") is None
    document = {"state": "queued", "scope": {"scope": "partition"}, "counts": {}, "big": 2**70 + 1, "$odd.key": 1}
    catalog.put_promotion("prm_1", document)
    assert catalog.get_promotion("prm_1") == document
    catalog.put_promotion("prm_1", document | {"state": "completed"})
    assert catalog.get_promotion("prm_1")["state"] == "completed"


def _quarantined(log_id: str, partition: str = HOUR, provider: str = "acme", **extra) -> dict:
    return {"log_id": log_id, "provider": provider, "partition": partition, "status": "quarantined",
            "reason": "checksum_mismatch", **extra}


def test_quarantine_items_are_listed_filtered_and_approved_with_a_reason(catalog):
    later = "2026-01-01-06:00|acme"
    assert catalog.put_quarantine([_quarantined("log_b"), _quarantined("log_a"), _quarantined("log_c", later)]) == 3
    assert catalog.put_quarantine([_quarantined("log_a", detail={"n": 1})]) == 0  # replaced, not added
    assert [i["log_id"] for i in catalog.list_quarantine()] == ["log_a", "log_b", "log_c"]
    assert [i["log_id"] for i in catalog.list_quarantine(partition=later)] == ["log_c"]
    assert catalog.list_quarantine(provider="other") == []
    assert [i["log_id"] for i in catalog.list_quarantine(limit=1, offset=1)] == ["log_b"]
    assert catalog.get_quarantine("log_a")["detail"] == {"n": 1}
    approved = catalog.set_quarantine_status("log_b", "approved", "admin-1", "false_positive")
    assert approved["status"] == "approved" and approved["approved_by"] == "admin-1"
    assert [i["log_id"] for i in catalog.list_quarantine(status="approved")] == ["log_b"]
    assert catalog.get_quarantine("log_b")["reason_code"] == "false_positive"
    assert catalog.set_quarantine_status("log_unknown", "approved", "admin-1", "x") is None
    with pytest.raises(ValueError):
        catalog.list_quarantine(limit=-1)


def test_partition_pointer_pages_slice_the_log_order_in_columns(catalog):
    catalog.upsert_records([entry(n) for n in range(47)] + [entry(100 + n, partition="2026-01-01-06:00|acme_audit") for n in range(3)])
    expected = [(r.log_id, r.object_key, r.offset, r.length, r.checksum) for r in catalog.iter_partition_records(HOUR)]
    assert len(expected) == 47

    def read(**slice_args):
        pages = list(catalog.iter_partition_pointer_pages(HOUR, **slice_args))
        assert all(0 < len(page) <= slice_args.get("page_size", 20_000) for page in pages)
        assert all(len(page.log_ids) == len(page.object_keys) == len(page.offsets) == len(page.lengths)
                   == len(page.checksums) for page in pages)
        return [row for page in pages for row in page.rows()]

    assert read() == expected
    assert read(page_size=10) == expected
    # Slices cut anywhere, in any page size, put back together are the whole log order.
    for cuts in ([0, 16, 32, None], [0, 1, 46, None], [0, 47, None]):
        assert [row for start, stop in zip(cuts, cuts[1:]) for row in read(start=start, stop=stop, page_size=7)] == expected
    assert read(start=10, stop=20, page_size=3) == expected[10:20]
    assert read(start=47) == [] and read(start=500) == [] and read(start=5, stop=5) == []
    assert list(catalog.iter_partition_pointer_pages("2099-01-01-00:00|nobody")) == []
    assert read(start=3, stop=40, page_size=8) == expected[3:40]
    for bad in ({"start": -1}, {"start": 5, "stop": 4}, {"page_size": 0}):
        with pytest.raises(ValueError):
            list(catalog.iter_partition_pointer_pages(HOUR, **bad))


# idempotency keys ---------------------------------------------------------------------------
# What lets POST /v1/ingest return the same job for a repeated Idempotency-Key across restarts.
T0, T1, T2, T3 = (f"2026-01-01T0{h}:00:00.000000Z" for h in range(4))


def key_record(job_id: str, created: str = T0, expires: str = T2, fingerprint: str = "a" * 64,
               request: str = "b" * 64) -> IdempotencyRecord:
    return IdempotencyRecord(fingerprint, request, job_id, created, expires)


class TestIdempotencyKeys:
    def test_a_claim_is_stored_and_read_back_until_it_expires(self, catalog: Catalog) -> None:
        first = key_record("job-1")
        assert catalog.claim_idempotency_key(first) == first
        assert catalog.get_idempotency_key(first.key_fingerprint, now=T1) == first
        assert catalog.get_idempotency_key(first.key_fingerprint, now=T2) is None  # expires_at is exclusive
        assert catalog.get_idempotency_key("c" * 64, now=T0) is None

    def test_a_live_key_is_never_taken_over(self, catalog: Catalog) -> None:
        first = key_record("job-1")
        catalog.claim_idempotency_key(first)
        assert catalog.claim_idempotency_key(key_record("job-2", created=T1, expires=T3, request="d" * 64)) == first
        assert catalog.get_idempotency_key(first.key_fingerprint, now=T1) == first

    def test_an_expired_key_is_forgotten_and_can_name_a_new_job(self, catalog: Catalog) -> None:
        catalog.claim_idempotency_key(key_record("job-1", expires=T1))
        again = key_record("job-2", created=T1, expires=T3)
        assert catalog.claim_idempotency_key(again) == again
        assert catalog.get_idempotency_key(again.key_fingerprint, now=T2).job_id == "job-2"

    def test_purge_deletes_only_expired_keys(self, catalog: Catalog) -> None:
        for n, expires in enumerate((T1, T1, T3)):
            catalog.claim_idempotency_key(key_record(f"job-{n}", expires=expires, fingerprint=f"{n:064x}"))
        assert catalog.purge_idempotency_keys(now=T2) == 2
        assert catalog.purge_idempotency_keys(now=T2) == 0
        assert catalog.get_idempotency_key(f"{2:064x}", now=T2).job_id == "job-2"

    def test_racing_claims_for_one_key_store_exactly_one(self, catalog: Catalog) -> None:
        claims = [key_record(f"job-{n}") for n in range(8)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            winners = set(pool.map(catalog.claim_idempotency_key, claims))
        assert len(winners) == 1 and winners.pop() in claims


@pytest.mark.parametrize("backend", CATALOG_BACKENDS)
def test_idempotency_keys_outlive_the_catalog_handle(backend: str, tmp_path: Path) -> None:
    """A restarted API opens the catalog anew: the keys must be where it looks."""
    if backend == "sqlite":
        path = tmp_path / "catalog.db"
        reopen = lambda: SqliteCatalog(path)  # noqa: E731
    else:
        import mongomock

        database = mongomock.MongoClient()["vault"]
        reopen = lambda: MongoCatalog(database)  # noqa: E731
    before = reopen()
    record = key_record("job-1")
    before.claim_idempotency_key(record)
    before.close()
    after = reopen()
    try:
        assert after.get_idempotency_key(record.key_fingerprint, now=T1) == record
    finally:
        after.close()


# dead-letter expiry ------------------------------------------------------------------------
class TestDeadLetterExpiry:
    """lake_maintenance deletes dead letters past ``lake.dead_letter_days``; both backends alike."""

    def test_only_letters_created_before_the_cutoff_expire(self, catalog: Catalog) -> None:
        catalog.add_dead_letters([
            letter(1, created_at="2026-01-01T00:00:00.000000Z"),
            letter(2, created_at="2026-01-07T23:59:59.999999Z"),
            letter(3, created_at="2026-01-08T00:00:00.000000Z"),  # exactly at the cutoff: kept
            letter(4, created_at="2026-01-09T12:00:00.000000Z"),
            letter(5, created_at=""),  # no creation time: age unknown, kept
        ])
        assert catalog.expire_dead_letters("2026-01-08T00:00:00.000000Z") == 2
        assert [d.dead_letter_id for d in catalog.list_dead_letters()] == ["dl_0003", "dl_0004", "dl_0005"]
        assert catalog.count_dead_letters() == 3
        assert catalog.expire_dead_letters("2026-01-08T00:00:00.000000Z") == 0

    def test_expired_letters_no_longer_exclude_their_records(self, catalog: Catalog) -> None:
        catalog.add_dead_letters([letter(1, created_at="2026-01-01T00:00:00.000000Z"),
                                  letter(2, created_at="2026-02-01T00:00:00.000000Z")])
        assert catalog.expire_dead_letters("2026-01-15T00:00:00.000000Z") == 1
        assert catalog.dead_lettered([f"log_{1:032x}", f"log_{2:032x}"]) == {f"log_{2:032x}"}

    def test_an_empty_catalog_expires_nothing(self, catalog: Catalog) -> None:
        assert catalog.expire_dead_letters("2030-01-01T00:00:00.000000Z") == 0
