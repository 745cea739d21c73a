"""``Catalog.upsert_rows``: the tuple form of ``upsert_records`` that indexing uses, on every backend."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import astuple, replace

import pytest

from vault_pipeline.storage import sqlite_catalog
from vault_pipeline.storage.catalog import DEAD_LETTER, Catalog, CatalogError, RecordEntry


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


def _committed(path) -> int:
    """Records another connection sees: what has been committed."""
    with sqlite3.connect(path) as reader:
        return reader.execute("SELECT COUNT(*) FROM records").fetchone()[0]


def test_sqlite_commits_an_hours_upserts_a_group_at_a_time_and_the_rest_when_indexing_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_catalog, "BULK_TRANSACTION_ROWS", 4)
    path = tmp_path / "catalog.db"
    catalog = sqlite_catalog.SqliteCatalog(path)
    with catalog.bulk_writes():
        assert catalog.upsert_rows([astuple(entry(n)) for n in range(3)]).inserted == 3
        assert _committed(path) == 0  # the group's transaction is still open
        assert catalog.get_record(entry(2).log_id) == entry(2)  # the indexing thread reads its own upserts
        catalog.upsert_rows([astuple(entry(n)) for n in range(3, 5)])
        assert _committed(path) == 5  # four or more in the group: committed
        again = catalog.upsert_rows([astuple(entry(4)), astuple(replace(entry(5), checksum="sha256:" + "e" * 64)),
                                     astuple(replace(entry(1), checksum="sha256:" + "f" * 64))])
        assert (again.inserted, again.unchanged, again.conflicts) == (1, 1, [entry(1).log_id])
        assert _committed(path) == 5
        catalog.set_status([entry(0).log_id], DEAD_LETTER)  # another write of the indexing thread: the group first
        assert _committed(path) == 6
        with pytest.raises(CatalogError, match="already being indexed"):
            with catalog.bulk_writes():
                pass
        catalog.upsert_rows([astuple(entry(6))])
    assert _committed(path) == 7
    assert catalog.get_record(entry(0).log_id).status == DEAD_LETTER


def test_a_failed_upsert_rolls_its_whole_group_back_and_lets_go_of_the_catalog(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_catalog, "BULK_TRANSACTION_ROWS", 100)
    path = tmp_path / "catalog.db"
    catalog = sqlite_catalog.SqliteCatalog(path)
    with pytest.raises(CatalogError, match="upsert failed"):
        with catalog.bulk_writes():
            catalog.upsert_rows([astuple(entry(n)) for n in range(3)])
            catalog.upsert_rows([("log_broken", "too few columns")])
    assert _committed(path) == 0  # the group went back whole: re-running the hour indexes it again
    other = threading.Thread(target=catalog.upsert_rows, args=([astuple(entry(9))],))
    other.start()
    other.join(10)
    assert not other.is_alive() and _committed(path) == 1  # the lock was let go
    with catalog.bulk_writes():
        assert catalog.upsert_rows([astuple(entry(n)) for n in range(3)]).inserted == 3
    assert _committed(path) == 4


def test_other_threads_write_in_their_own_transactions_after_the_indexing_group(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_catalog, "BULK_TRANSACTION_ROWS", 100)
    path = tmp_path / "catalog.db"
    catalog = sqlite_catalog.SqliteCatalog(path)
    done: list[int] = []
    other = threading.Thread(target=lambda: done.append(catalog.upsert_rows([astuple(entry(7))]).inserted))
    with catalog.bulk_writes():
        catalog.upsert_rows([astuple(entry(n)) for n in range(3)])  # the group is open, holding the connection
        other.start()
        other.join(0.3)
        assert done == [] and other.is_alive()  # it waits for the group: it never writes into it
    other.join(10)
    assert done == [1] and _committed(path) == 4
