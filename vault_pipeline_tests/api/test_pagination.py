"""Deep offsets through anchors give exactly the pages a plain OFFSET would; cursors stay stable."""

import pytest

from vault_pipeline.api.pagination import InvalidCursorError, LogSearch, decode_cursor
from vault_pipeline.storage.catalog import RecordEntry


def _entry(n: int, provider: str = "acme", timestamp: str | None = "auto") -> RecordEntry:
    stamp = f"2026-01-01T05:{n % 60:02d}:{n % 13:02d}.{n:06d}Z" if timestamp == "auto" else timestamp
    return RecordEntry(f"log_{n:032x}", provider, f"2026-01-01-05:00|{provider}", f"e{n}", "raw/k.json", 0, 10,
                       f"sha256:{n:064x}", stamp, "run")


@pytest.fixture
def filled(catalog):
    catalog.upsert_records([_entry(n) for n in range(230)] + [_entry(900 + n, timestamp=None) for n in range(4)]
                           + [_entry(500 + n, provider="other") for n in range(30)])
    return catalog


@pytest.mark.parametrize("offset", [0, 9, 10, 11, 99, 150, 229, 233, 263, 264, 400])
@pytest.mark.parametrize("provider", [None, "acme"])
def test_anchored_offsets_match_plain_offsets(filled, offset, provider):
    search = LogSearch(filled, anchor_every=10)
    plain = filled.search_records(provider=provider, limit=7, offset=offset)
    page = search.page(provider=provider, start=None, end=None, limit=7, offset=offset)
    assert [e.log_id for e in page.items] == [e.log_id for e in plain.items]
    assert page.total_count == plain.total_count
    assert (page.next_cursor is not None) == (offset + len(plain.items) < plain.total_count and len(plain.items) == 7)


def test_anchors_are_rebuilt_when_records_are_added(filled):
    search = LogSearch(filled, anchor_every=10)
    search.page(provider="acme", start=None, end=None, limit=5, offset=100)
    filled.upsert_records([_entry(n) for n in range(1000, 1050)])
    plain = filled.search_records(provider="acme", limit=5, offset=100)
    page = search.page(provider="acme", start=None, end=None, limit=5, offset=100)
    assert [e.log_id for e in page.items] == [e.log_id for e in plain.items]
    assert page.total_count == plain.total_count == 284


def test_following_cursors_visits_each_record_once_while_records_arrive(filled):
    search = LogSearch(filled, anchor_every=10)
    seen, cursor, added = [], None, False
    while True:
        page = search.page(provider="acme", start=None, end=None, limit=25, cursor=cursor)
        seen += [e.log_id for e in page.items]
        if not added:
            filled.upsert_records([_entry(n) for n in range(2000, 2040)])
            added = True
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    assert len(seen) >= 234


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGpzb24", "WzEsMl0"])
def test_foreign_cursors_are_refused(cursor):
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor)
