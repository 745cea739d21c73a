"""``Catalog.upsert_rows``: the tuple form of ``upsert_records`` that indexing uses, on every backend."""

from __future__ import annotations

from dataclasses import astuple, replace

from vault_pipeline.storage.catalog import Catalog, RecordEntry


def entry(n: int) -> RecordEntry:
    return RecordEntry(
        log_id=f"log_{n:032x}", provider="acme", partition="2026-01-01-05:00|acme", natural_id=f"evt-{n}",
        object_key=f"raw/acme/2026/01/01/05/{n // 10:064x}.json", offset=n * 10, length=10,
        checksum=f"sha256:{n:064x}", timestamp=f"2026-01-01T05:00:{n % 60:02d}.000000Z", run_id="run-1",
        ingested_at="2026-01-01T06:00:00.000000Z",
    )


def test_upsert_rows_behaves_like_upsert_records(catalog: Catalog) -> None:
    first = catalog.upsert_rows([astuple(entry(n)) for n in range(5)])
    assert (first.inserted, first.unchanged, first.conflicts) == (5, 0, [])
    assert catalog.get_record(entry(3).log_id) == entry(3)
    changed = replace(entry(1), checksum="sha256:" + "f" * 64)
    again = catalog.upsert_rows([astuple(entry(n)) for n in range(4, 7)] + [astuple(changed)])
    assert (again.inserted, again.unchanged, again.conflicts) == (2, 1, [changed.log_id])
    assert catalog.get_record(changed.log_id) == entry(1)  # the first copy is kept
    assert catalog.upsert_rows([]).inserted == 0


def test_sqlite_catalogs_are_created_with_16k_pages_and_older_files_still_open(tmp_path) -> None:
    import sqlite3

    from vault_pipeline.storage.sqlite_catalog import SqliteCatalog

    fresh = SqliteCatalog(tmp_path / "fresh.db")
    assert fresh._db.execute("PRAGMA page_size").fetchone()[0] == 16384
    older = tmp_path / "older.db"
    with sqlite3.connect(older) as db:  # a catalog file made with SQLite's default 4 KiB pages
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE placeholder (x)")
    catalog = SqliteCatalog(older)
    assert catalog._db.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert catalog.upsert_rows([astuple(entry(1))]).inserted == 1
    assert catalog.get_record(entry(1).log_id) == entry(1)


def test_bulk_writes_index_like_any_other_write_on_every_backend(catalog: Catalog) -> None:
    with catalog.bulk_writes():
        assert catalog.upsert_rows([astuple(entry(n)) for n in range(3)]).inserted == 3
    assert catalog.get_record(entry(2).log_id) == entry(2)


def test_sqlite_holds_its_big_page_cache_only_while_an_hour_is_indexed(tmp_path) -> None:
    from vault_pipeline.storage.sqlite_catalog import SqliteCatalog

    catalog = SqliteCatalog(tmp_path / "catalog.db")

    def cache_kib() -> int:
        return -catalog._db.execute("PRAGMA cache_size").fetchone()[0]

    assert cache_kib() == 16 * 1024
    with catalog.bulk_writes():
        assert cache_kib() == 256 * 1024
        catalog.upsert_rows([astuple(entry(n)) for n in range(10)])
    assert cache_kib() == 16 * 1024
    try:
        with catalog.bulk_writes():
            raise RuntimeError("indexing failed half-way")
    except RuntimeError:
        pass
    assert cache_kib() == 16 * 1024  # given back whatever happens
