"""Paging through the catalog for ``GET /v1/logs``: offsets that stay cheap, cursors that stay stable.

A plain OFFSET costs time proportional to the offset. The API keeps, per filter, a sparse list
of anchor keys (every ``ANCHOR_EVERY``-th record in (timestamp, log_id) order) and the total
count, tagged with the catalog's records version; a deep offset becomes a keyset seek to the
nearest anchor plus a short offset. Anchors are rebuilt in one index pass when records were
added. Clients that page while an ingest is writing should follow ``meta.next_cursor``
instead: a keyset cursor never returns a record twice, whatever is inserted meanwhile.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass

from vault_pipeline.storage.catalog import Catalog, RecordEntry, RecordKey

ANCHOR_EVERY = 10_000
MAX_CACHED_FILTERS = 64


class InvalidCursorError(ValueError):
    pass


def encode_cursor(entry: RecordEntry) -> str:
    raw = json.dumps([entry.timestamp, entry.log_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> RecordKey:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        timestamp, log_id = json.loads(raw)
    except (ValueError, TypeError):
        raise InvalidCursorError("cursor is not one this API returned") from None
    if not (timestamp is None or isinstance(timestamp, str)) or not isinstance(log_id, str):
        raise InvalidCursorError("cursor is not one this API returned")
    return timestamp, log_id


@dataclass(frozen=True, slots=True)
class _Anchors:
    version: str
    total: int
    keys: list[RecordKey] | None  # None until a deep offset needed them


@dataclass(frozen=True, slots=True)
class LogPageResult:
    items: list[RecordEntry]
    total_count: int
    next_cursor: str | None


class LogSearch:
    def __init__(self, catalog: Catalog, anchor_every: int = ANCHOR_EVERY) -> None:
        self.catalog = catalog
        self.anchor_every = anchor_every
        self._cache: OrderedDict[tuple, _Anchors] = OrderedDict()
        self._lock = threading.Lock()

    def page(self, *, provider: str | None, start: str | None, end: str | None, limit: int, offset: int = 0,
             cursor: str | None = None) -> LogPageResult:
        filters = {"provider": provider, "start": start, "end": end}
        anchors = self._anchors(filters, deep=cursor is None and offset >= self.anchor_every)
        if cursor is not None:
            page = self.catalog.search_records(**filters, limit=limit, after=decode_cursor(cursor), with_total=False)
        elif anchors.keys is not None and offset >= self.anchor_every:
            slot = min(offset // self.anchor_every, len(anchors.keys))
            after = anchors.keys[slot - 1] if slot else None
            page = self.catalog.search_records(**filters, limit=limit, offset=offset - slot * self.anchor_every,
                                               after=after, with_total=False)
        else:
            page = self.catalog.search_records(**filters, limit=limit, offset=offset, with_total=False)
        items = page.items
        more = len(items) == limit and (cursor is not None or offset + len(items) < anchors.total)
        return LogPageResult(items, anchors.total, encode_cursor(items[-1]) if items and more else None)

    def _anchors(self, filters: dict, *, deep: bool) -> _Anchors:
        key = tuple(sorted(filters.items()))
        version = self.catalog.records_version()
        with self._lock:
            cached = self._cache.get(key)
            if cached and cached.version == version and (cached.keys is not None or not deep):
                self._cache.move_to_end(key)
                return cached
        if deep:
            total, keys = self.catalog.sample_record_keys(**filters, every=self.anchor_every)
            fresh = _Anchors(version, total, keys)
        else:
            fresh = _Anchors(version, self.catalog.search_records(**filters, limit=0).total_count, None)
        with self._lock:
            self._cache[key] = fresh
            self._cache.move_to_end(key)
            while len(self._cache) > MAX_CACHED_FILTERS:
                self._cache.popitem(last=False)
        return fresh
