"""The MongoDB catalog's records and dead letters: what landed in the vault, and what was refused.

A record's log_id is its ``_id``, so indexing an hour is an unordered ``insert_many`` of
``INSERT_CHUNK`` documents at a time in which a duplicate key means "indexed already"; only
those documents are read back, and one stored with another checksum is a conflict. Search
sorts on the (timestamp, _id) indexes and never sends ``limit(0)``, which MongoDB takes for
"no limit"; pointer pages for ``vault verify`` project only the pointer fields. A dead letter
is replaced by its deterministic id, so a re-run of a partition counts none twice, and every
``$in`` list stays at ``ID_CHUNK`` ids, far below the 16 MiB command limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pymongo
from pymongo.errors import BulkWriteError

from vault_pipeline.storage.catalog import (
    DEAD_LETTER,
    STATUSES,
    CatalogError,
    DeadLetter,
    PointerPage,
    RecordEntry,
    RecordKey,
    RecordPage,
    RecordPointer,
    UpsertResult,
)
from vault_pipeline.storage.mongo_common import (
    DEAD_LETTER_FIELDS,
    RECORD_FIELDS,
    RECORD_ORDER,
    _check_page,
    _equals,
    _to_json,
)

DUPLICATE_KEY = 11000
# Keep $in lists and insert_many payloads well below the 16 MiB BSON command limit.
ID_CHUNK = 1000
INSERT_CHUNK = 10_000


class MongoRecords:
    """MongoCatalog's records and dead letters (a mixin: ``_translated``, ``database`` and the
    collections are MongoCatalog's)."""

    # records -----------------------------------------------------------------------------
    def upsert_records(self, entries: Sequence[RecordEntry]) -> UpsertResult:
        inserted = 0
        conflicts: list[str] = []
        with self._translated("upsert_records"):
            for start in range(0, len(entries), INSERT_CHUNK):
                chunk = entries[start : start + INSERT_CHUNK]
                documents = [self._record_document(entry) for entry in chunk]
                try:
                    inserted += len(self.records.insert_many(documents, ordered=False).inserted_ids)
                except BulkWriteError as exc:
                    refused = [error for error in exc.details["writeErrors"] if error["code"] != DUPLICATE_KEY]
                    if refused:
                        raise CatalogError(
                            f"MongoDB catalog {self.database.name}: {len(refused)} records refused, "
                            f"first: {refused[0]['errmsg']}"
                        ) from exc
                    inserted += exc.details["nInserted"]
                    # sorted so conflicts come back in batch order, as from SQLite
                    failed_positions = sorted(error["index"] for error in exc.details["writeErrors"])
                    already_indexed = [chunk[position] for position in failed_positions]
                    conflicts += self._conflicting_ids(already_indexed)
        return UpsertResult(inserted=inserted, unchanged=len(entries) - inserted - len(conflicts), conflicts=conflicts)

    def _conflicting_ids(self, entries: Sequence[RecordEntry]) -> list[str]:
        conflicts: list[str] = []
        for start in range(0, len(entries), ID_CHUNK):
            chunk = entries[start : start + ID_CHUNK]
            stored = {
                document["_id"]: document["checksum"]
                for document in self.records.find(
                    {"_id": {"$in": list({entry.log_id for entry in chunk})}}, {"checksum": 1}
                )
            }
            conflicts.extend(entry.log_id for entry in chunk if stored[entry.log_id] != entry.checksum)
        return conflicts

    @staticmethod
    def _record_document(entry: RecordEntry) -> dict[str, Any]:
        document: dict[str, Any] = {"_id": entry.log_id}
        for name in RECORD_FIELDS:
            document[name] = getattr(entry, name)
        return document

    @staticmethod
    def _record_entry(document: dict[str, Any]) -> RecordEntry:
        return RecordEntry(log_id=document["_id"], **{name: document.get(name) for name in RECORD_FIELDS})

    def get_record(self, log_id: str) -> RecordEntry | None:
        with self._translated("get_record"):
            document = self.records.find_one({"_id": log_id})
        return self._record_entry(document) if document else None

    def search_records(
        self,
        *,
        provider: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int = 50,
        offset: int = 0,
        after: RecordKey | None = None,
        with_total: bool = True,
    ) -> RecordPage:
        _check_page(limit, offset)
        query = self._record_filter(provider, start, end)
        page_query = query
        if after is not None:
            if after[0] is None:  # still among the untimed records, which sort first
                seek = {"$or": [{"timestamp": None, "_id": {"$gt": after[1]}}, {"timestamp": {"$ne": None}}]}
            else:
                seek = {"$or": [{"timestamp": {"$gt": after[0]}}, {"timestamp": after[0], "_id": {"$gt": after[1]}}]}
            page_query = {"$and": [query, seek]} if query else seek
        with self._translated("search_records"):
            total = self.records.count_documents(query) if with_total else -1
            items: list[RecordEntry] = []
            # limit(0) means "no limit" to MongoDB, so an empty page is never asked for.
            if limit and (not with_total or offset < total):
                cursor = self.records.find(page_query).sort(RECORD_ORDER).skip(offset).limit(limit)
                items = [self._record_entry(document) for document in cursor]
        return RecordPage(items=items, total_count=total)

    @staticmethod
    def _record_filter(provider: str | None, start: str | None, end: str | None) -> dict[str, Any]:
        query = _equals(provider=provider)
        # A string comparison never matches null (BSON type bracketing), so any time bound
        # drops untimed records, as NULL comparisons do in SQLite.
        bounds = _equals(**{"$gte": start, "$lt": end})
        if bounds:
            query["timestamp"] = bounds
        return query

    def sample_record_keys(
        self, *, provider: str | None = None, start: str | None = None, end: str | None = None, every: int = 10_000
    ) -> tuple[int, list[RecordKey]]:
        if every < 1:
            raise ValueError("every must be at least 1")
        keys: list[RecordKey] = []
        count = 0
        with self._translated("sample_record_keys"):
            cursor = self.records.find(self._record_filter(provider, start, end), {"timestamp": 1}).sort(RECORD_ORDER)
            for document in cursor:
                count += 1
                if count % every == 0:
                    keys.append((document.get("timestamp"), document["_id"]))
        return count, keys

    def records_version(self) -> str:
        # Records are only ever added, so their number moves on every insert (a metadata read).
        with self._translated("records_version"):
            return str(self.records.estimated_document_count())

    def iter_partition_records(self, partition: str) -> Iterator[RecordEntry]:
        with self._translated("iter_partition_records"):
            cursor = self.records.find({"partition": partition}).sort("_id", pymongo.ASCENDING)
            for document in cursor:
                yield self._record_entry(document)

    def _pointer_pages(self, partition: str, start: int, stop: int | None, page_size: int) -> Iterator[PointerPage]:
        # Only the pointer fields travel, not whole record documents.
        projection = {"object_key": 1, "offset": 1, "length": 1, "checksum": 1}
        with self._translated("iter_partition_pointer_pages"):
            cursor = (self.records.find({"partition": partition}, projection)
                      .sort("_id", pymongo.ASCENDING).skip(start).batch_size(page_size))
            if stop is not None:
                cursor = cursor.limit(stop - start)
            rows: list[RecordPointer] = []
            for document in cursor:
                rows.append((document["_id"], document.get("object_key"), document.get("offset"),
                             document.get("length"), document.get("checksum")))
                if len(rows) == page_size:
                    yield PointerPage.from_rows(rows)
                    rows = []
            if rows:
                yield PointerPage.from_rows(rows)

    def count_records(self, *, provider: str | None = None, partition: str | None = None) -> int:
        with self._translated("count_records"):
            return self.records.count_documents(_equals(provider=provider, partition=partition))

    def set_status(self, log_ids: Sequence[str], status: str) -> int:
        if status not in STATUSES:
            raise ValueError(f"unknown record status {status!r}; expected one of {', '.join(STATUSES)}")
        unique_ids = list(dict.fromkeys(log_ids))
        changed = 0
        with self._translated("set_status"):
            for start in range(0, len(unique_ids), ID_CHUNK):
                result = self.records.update_many(
                    {"_id": {"$in": unique_ids[start : start + ID_CHUNK]}, "status": {"$ne": status}},
                    {"$set": {"status": status}},
                )
                changed += result.modified_count
        return changed

    def _partition_counts(self) -> dict[str, int]:
        with self._translated("partition_record_counts"):
            rows = self.records.aggregate([{"$group": {"_id": "$partition", "n": {"$sum": 1}}}])
            return {row["_id"]: row["n"] for row in rows}

    def known_log_ids(self, log_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        unique_ids = list(dict.fromkeys(log_ids))
        with self._translated("known_log_ids"):
            for start in range(0, len(unique_ids), ID_CHUNK):
                cursor = self.records.find({"_id": {"$in": unique_ids[start : start + ID_CHUNK]}}, {"_id": 1})
                found.update(document["_id"] for document in cursor)
        return found

    def partition_lake_keys(self, partition: str, *, page_size: int = 100_000) -> Iterator[tuple[list[str], list[bool]]]:
        log_ids: list[str] = []
        loadable: list[bool] = []
        with self._translated("partition_lake_keys"):
            cursor = (self.records.find({"partition": partition}, {"timestamp": 1, "status": 1})
                      .sort("_id", pymongo.ASCENDING).batch_size(page_size))
            for document in cursor:
                log_ids.append(document["_id"])
                loadable.append(document.get("timestamp") is not None and document.get("status") != DEAD_LETTER)
                if len(log_ids) == page_size:
                    yield log_ids, loadable
                    log_ids, loadable = [], []
        if log_ids:
            yield log_ids, loadable

    # dead letters ------------------------------------------------------------------------
    def add_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        added = 0
        with self._translated("add_dead_letters"):
            for letter in letters:
                document = {name: getattr(letter, name) for name in DEAD_LETTER_FIELDS}
                document["detail"] = _to_json(letter.detail)
                result = self.dead_letters.replace_one({"_id": letter.dead_letter_id}, document, upsert=True)
                added += result.upserted_id is not None
        return added

    def list_dead_letters(
        self, *, provider: str | None = None, partition: str | None = None, limit: int = 1000, offset: int = 0
    ) -> list[DeadLetter]:
        _check_page(limit, offset)
        if not limit:
            return []
        with self._translated("list_dead_letters"):
            cursor = (
                self.dead_letters.find(_equals(provider=provider, partition=partition))
                .sort("_id", pymongo.ASCENDING)
                .skip(offset)
                .limit(limit)
            )
            return [
                DeadLetter(
                    dead_letter_id=document["_id"],
                    **{name: document.get(name) for name in DEAD_LETTER_FIELDS},
                    detail=json.loads(document["detail"]),
                )
                for document in cursor
            ]

    def count_dead_letters(self, *, provider: str | None = None, partition: str | None = None) -> int:
        with self._translated("count_dead_letters"):
            return self.dead_letters.count_documents(_equals(provider=provider, partition=partition))

    def dead_lettered(self, log_ids: Sequence[str], *, stage: str = "input_validation") -> set[str]:
        found: set[str] = set()
        unique_ids = list(dict.fromkeys(log_ids))
        with self._translated("dead_lettered"):
            for start in range(0, len(unique_ids), ID_CHUNK):
                cursor = self.dead_letters.find(
                    {"log_id": {"$in": unique_ids[start : start + ID_CHUNK]}, "stage": stage}, {"log_id": 1})
                found.update(document["log_id"] for document in cursor)
        return found

    # dead-letter expiry ------------------------------------------------------------------
    def expire_dead_letters(self, before: str) -> int:
        with self._translated("expire_dead_letters"):
            return self.dead_letters.delete_many({"created_at": {"$lt": before, "$gt": ""}}).deleted_count
