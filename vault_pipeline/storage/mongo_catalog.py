"""MongoCatalog: the production index of the vault, kept in MongoDB.

It holds the same entries as the embedded SQLite catalog (where each record's bytes live and
their checksum, dead letters, per-provider watermarks, the artifact index) in four
collections, keyed by the vault's own deterministic ids, so re-running a partition against
production is as idempotent as it is on a laptop. The shared contract suite holds both
adapters to identical answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, fields
from typing import Any
from urllib.parse import unquote

import pymongo
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from vault_pipeline.storage.catalog import (
    AUTH_FAILURE_STATUSES,
    DEAD_LETTER,
    STATUSES,
    AccessEntry,
    AccessSummary,
    Artifact,
    Catalog,
    CatalogError,
    DeadLetter,
    IdempotencyRecord,
    LedgerConflictError,
    PointerPage,
    RecordEntry,
    RecordKey,
    RecordPage,
    RecordPointer,
    UpsertResult,
)

DUPLICATE_KEY = 11000
# Keep $in lists and insert_many payloads well below the 16 MiB BSON command limit.
ID_CHUNK = 1000
INSERT_CHUNK = 10_000

RECORD_FIELDS = tuple(f.name for f in fields(RecordEntry) if f.name != "log_id")
DEAD_LETTER_FIELDS = tuple(f.name for f in fields(DeadLetter) if f.name not in ("dead_letter_id", "detail"))
ACCESS_FIELDS = tuple(f.name for f in fields(AccessEntry))
ARTIFACT_FIELDS = tuple(f.name for f in fields(Artifact) if f.name not in ("artifact_id", "metadata"))

RECORD_ORDER = [("timestamp", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)]

DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {
    "serverSelectionTimeoutMS": 5_000,
    "connectTimeoutMS": 5_000,
    "socketTimeoutMS": 60_000,
    "retryWrites": True,
    "appname": "vault_pipeline",
}


def redact_uri(uri: str) -> str:
    """The URI with any password replaced by ``***``, safe for messages and logs."""
    scheme, separator, rest = uri.partition("://")
    if not separator:
        return uri
    authority_and_path, query_mark, query = rest.partition("?")
    userinfo, at, hosts = authority_and_path.rpartition("@")
    if not at or ":" not in userinfo:
        return uri
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hosts}{query_mark}{query}"


def _without_password(message: str, uri: str) -> str:
    """Driver messages should not echo credentials, but never rely on it."""
    userinfo = uri.partition("://")[2].partition("?")[0].rpartition("@")[0]
    password = userinfo.partition(":")[2]
    for form in {password, unquote(password)} - {""}:
        message = message.replace(form, "***")
    return message


def _to_json(value: Any) -> str:
    # detail and metadata are stored as JSON text, as in SQLite: arbitrary keys ("$x", "a.b")
    # and integers beyond int64 would be refused by BSON in production only.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _check_page(limit: int, offset: int) -> None:
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must not be negative (limit={limit}, offset={offset})")


def _equals(**conditions: Any) -> dict[str, Any]:
    """A filter on the given fields, skipping the ones whose value is None (no filter)."""
    return {name: value for name, value in conditions.items() if value is not None}


class MongoCatalog(Catalog):
    def __init__(self, database: Database) -> None:
        self.database = database
        self._owns_client = False
        self.records: Collection = database["records"]
        self.watermarks: Collection = database["watermarks"]
        self.dead_letters: Collection = database["dead_letters"]
        self.artifacts: Collection = database["artifacts"]
        self.access_log: Collection = database["access_log"]
        self.ledger: Collection = database["ledger"]
        self.ledger_checkpoints: Collection = database["ledger_checkpoints"]
        self.promotions: Collection = database["promotions"]
        self.quarantine: Collection = database["quarantine"]
        self.leases: Collection = database["leases"]
        with self._translated("create indexes"):
            self.ledger.create_index([("partition", pymongo.ASCENDING), ("sequence", pymongo.ASCENDING)], name="ledger_by_partition")
            self.quarantine.create_index([("partition", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)], name="quarantine_by_partition")
            self.records.create_index(RECORD_ORDER, name="records_by_time")
            self.records.create_index(
                [("provider", pymongo.ASCENDING), *RECORD_ORDER], name="records_by_provider_time"
            )
            self.records.create_index(
                [("partition", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)], name="records_by_partition"
            )
            self.dead_letters.create_index(
                [("provider", pymongo.ASCENDING), ("partition", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)],
                name="dead_letters_by_provider",
            )
            self.dead_letters.create_index(
                [("partition", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)], name="dead_letters_by_partition"
            )
            self.dead_letters.create_index([("log_id", pymongo.ASCENDING), ("stage", pymongo.ASCENDING)],
                                           name="dead_letters_by_log_id")
            self.artifacts.create_index(
                [("partition", pymongo.ASCENDING), ("kind", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)],
                name="artifacts_by_partition",
            )
            # A period's access summary: a range of "at" (the grouped fields too, so it is covered),
            # and the failed authentications of a period by status.
            self.access_log.create_index(
                [("at", pymongo.ASCENDING), ("principal", pymongo.ASCENDING), ("status", pymongo.ASCENDING),
                 ("method", pymongo.ASCENDING), ("path", pymongo.ASCENDING)], name="access_log_by_time")
            self.access_log.create_index([("status", pymongo.ASCENDING), ("at", pymongo.ASCENDING)],
                                         name="access_log_by_status")
            self.artifacts.create_index(
                [
                    ("provider", pymongo.ASCENDING),
                    ("partition", pymongo.ASCENDING),
                    ("kind", pymongo.ASCENDING),
                    ("_id", pymongo.ASCENDING),
                ],
                name="artifacts_by_provider",
            )

    @classmethod
    def from_uri(cls, uri: str, database: str = "vault", **client_kwargs: Any) -> MongoCatalog:
        """Connect to ``uri`` and check the server answers before the first partition runs,
        so a wrong URI or a down server fails fast with a readable message."""
        options = {**DEFAULT_CLIENT_OPTIONS, **client_kwargs}
        shown = redact_uri(uri)
        try:
            client: pymongo.MongoClient = pymongo.MongoClient(uri, **options)
        except (PyMongoError, ValueError) as exc:
            raise CatalogError(f"invalid MongoDB URI {shown}: {_without_password(str(exc), uri)}") from exc
        try:
            client.admin.command("ping")
        except PyMongoError as exc:
            client.close()
            raise CatalogError(
                f"MongoDB catalog unreachable at {shown} (server selection timeout "
                f"{options['serverSelectionTimeoutMS']} ms): {_without_password(str(exc), uri)}"
            ) from exc
        try:
            catalog = cls(client[database])
        except CatalogError:
            client.close()
            raise
        catalog._owns_client = True
        return catalog

    @contextmanager
    def _translated(self, operation: str) -> Iterator[None]:
        try:
            yield
        except PyMongoError as exc:
            raise CatalogError(f"MongoDB catalog {self.database.name}: {operation} failed: {exc}") from exc

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

    # watermarks --------------------------------------------------------------------------
    def get_watermark(self, provider: str) -> str | None:
        with self._translated("get_watermark"):
            document = self.watermarks.find_one({"_id": provider})
        return document["watermark"] if document else None

    def advance_watermark(self, provider: str, timestamp: str) -> str:
        # $max is applied atomically by the server, so two runs racing never move it back.
        with self._translated("advance_watermark"):
            document = self.watermarks.find_one_and_update(
                {"_id": provider},
                {"$max": {"watermark": timestamp}},
                upsert=True,
                return_document=pymongo.ReturnDocument.AFTER,
            )
        return document["watermark"]

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

    # leases ------------------------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        now = time.time()
        with self._translated(f"acquire_lease {name!r}"):
            try:
                # Matches only a lease that is ours or expired; otherwise the upsert collides
                # with the live lease's _id and the server refuses it atomically.
                self.leases.find_one_and_update(
                    {"_id": name, "$or": [{"holder": holder}, {"expires_at": {"$lte": now}}]},
                    {"$set": {"holder": holder, "expires_at": now + ttl_s}},
                    upsert=True,
                )
            except DuplicateKeyError:
                return False
        return True

    def release_lease(self, name: str, holder: str) -> None:
        with self._translated(f"release_lease {name!r}"):
            self.leases.delete_one({"_id": name, "holder": holder})

    def lease_holder(self, name: str) -> str | None:
        with self._translated(f"lease_holder {name!r}"):
            document = self.leases.find_one({"_id": name, "expires_at": {"$gt": time.time()}})
        return document["holder"] if document else None

    # artifact index ----------------------------------------------------------------------
    def put_artifacts(self, artifacts: Sequence[Artifact]) -> None:
        with self._translated("put_artifacts"):
            for artifact in artifacts:
                # upstream stays a native array so lineage can be queried server-side.
                document = {name: getattr(artifact, name) for name in ARTIFACT_FIELDS}
                document["upstream"] = list(artifact.upstream)
                document["metadata"] = _to_json(artifact.metadata)
                self.artifacts.replace_one({"_id": artifact.artifact_id}, document, upsert=True)

    def search_artifacts(
        self,
        *,
        provider: str | None = None,
        partition: str | None = None,
        kind: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Artifact]:
        _check_page(limit, offset)
        if not limit:
            return []
        with self._translated("search_artifacts"):
            cursor = (
                self.artifacts.find(_equals(provider=provider, partition=partition, kind=kind))
                .sort([("partition", pymongo.ASCENDING), ("kind", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)])
                .skip(offset)
                .limit(limit)
            )
            return [
                Artifact(
                    artifact_id=document["_id"],
                    **{name: document.get(name) for name in ARTIFACT_FIELDS},
                    metadata=json.loads(document["metadata"]),
                )
                for document in cursor
            ]

    # ledger ------------------------------------------------------------------------------
    def append_ledger_entry(self, provider: str, sequence: int, partition: str, entry_json: str) -> None:
        document = {"_id": f"{provider}#{sequence:012d}", "provider": provider, "sequence": sequence,
                    "partition": partition, "entry": entry_json}
        try:
            with self._translated("append_ledger_entry"):
                self.ledger.insert_one(document)
        except CatalogError as exc:
            if isinstance(exc.__cause__, DuplicateKeyError):
                raise LedgerConflictError(f"ledger entry {provider} #{sequence} already exists") from None
            raise

    def ledger_entries(self, provider: str, *, since_sequence: int = 0) -> Iterator[tuple[int, str]]:
        with self._translated("ledger_entries"):
            cursor = self.ledger.find({"provider": provider, "sequence": {"$gte": since_sequence}}).sort("sequence", 1)
            for document in cursor:
                yield int(document["sequence"]), document["entry"]

    def ledger_entries_for_partition(self, partition: str) -> list[str]:
        with self._translated("ledger_entries_for_partition"):
            return [d["entry"] for d in self.ledger.find({"partition": partition}).sort("sequence", 1)]

    def ledger_providers(self) -> list[str]:
        with self._translated("ledger_providers"):
            return sorted(self.ledger.distinct("provider"))

    def put_checkpoint(self, provider: str, checkpoint_json: str) -> None:
        with self._translated("put_checkpoint"):
            self.ledger_checkpoints.replace_one({"_id": provider}, {"_id": provider, "checkpoint": checkpoint_json}, upsert=True)

    def get_checkpoint(self, provider: str) -> str | None:
        with self._translated("get_checkpoint"):
            document = self.ledger_checkpoints.find_one({"_id": provider})
            return document["checkpoint"] if document else None

    # promotions and quarantine -----------------------------------------------------------
    def put_promotion(self, promotion_id: str, document: dict[str, Any]) -> None:
        with self._translated("put_promotion"):
            self.promotions.replace_one({"_id": promotion_id}, {"_id": promotion_id, "document": _to_json(document)},
                                        upsert=True)

    def get_promotion(self, promotion_id: str) -> dict[str, Any] | None:
        with self._translated("get_promotion"):
            document = self.promotions.find_one({"_id": promotion_id})
            return json.loads(document["document"]) if document else None

    def put_quarantine(self, items: Sequence[dict[str, Any]]) -> int:
        new = 0
        with self._translated("put_quarantine"):
            # one replace per item: mongomock's bulk_write with ReplaceOne is broken (see DESIGN)
            for item in items:
                result = self.quarantine.replace_one(
                    {"_id": item["log_id"]},
                    {"_id": item["log_id"], "provider": item["provider"], "partition": item["partition"],
                     "status": item["status"], "item": _to_json(dict(item))},
                    upsert=True,
                )
                new += result.upserted_id is not None
        return new

    def list_quarantine(
        self, *, provider: str | None = None, partition: str | None = None, status: str | None = None,
        limit: int = 100, offset: int = 0,
    ) -> list[dict[str, Any]]:
        _check_page(limit, offset)
        if not limit:
            return []
        with self._translated("list_quarantine"):
            cursor = (
                self.quarantine.find(_equals(provider=provider, partition=partition, status=status))
                .sort([("partition", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)])
                .skip(offset)
                .limit(limit)
            )
            return [json.loads(document["item"]) for document in cursor]

    def get_quarantine(self, log_id: str) -> dict[str, Any] | None:
        with self._translated("get_quarantine"):
            document = self.quarantine.find_one({"_id": log_id})
            return json.loads(document["item"]) if document else None

    # idempotency keys ---------------------------------------------------------------------
    # One document per key fingerprint (its _id), so the unique _id index is what makes a
    # claim atomic across API processes. The collection and its expiry index are set up on
    # first use, so this section stands alone. Expiry is checked on read and purged on claim
    # (times are the catalog's fixed-width strings, which a TTL index cannot read).
    def _idempotency_keys(self) -> Collection:
        keys: Collection = self.database["idempotency_keys"]
        if not getattr(self, "_idempotency_ready", False):
            with self._translated("create the idempotency_keys index"):
                keys.create_index([("expires_at", pymongo.ASCENDING)], name="idempotency_keys_by_expiry")
            self._idempotency_ready = True
        return keys

    @staticmethod
    def _idempotency_record(document: dict[str, Any]) -> IdempotencyRecord:
        return IdempotencyRecord(document["_id"], document["request_fingerprint"], document["job_id"],
                                 document["created_at"], document["expires_at"])

    def claim_idempotency_key(self, record: IdempotencyRecord) -> IdempotencyRecord:
        keys = self._idempotency_keys()
        document = {"_id": record.key_fingerprint, "request_fingerprint": record.request_fingerprint,
                    "job_id": record.job_id, "created_at": record.created_at, "expires_at": record.expires_at}
        with self._translated("claim_idempotency_key"):
            # A few rounds at most: the record may expire (and be purged) between our failed
            # insert and our read.
            for _ in range(5):
                keys.delete_one({"_id": record.key_fingerprint, "expires_at": {"$lte": record.created_at}})
                try:
                    keys.insert_one(dict(document))
                    return record
                except DuplicateKeyError:
                    stored = keys.find_one({"_id": record.key_fingerprint})
                if stored is not None and stored["expires_at"] > record.created_at:
                    return self._idempotency_record(stored)
        raise CatalogError(f"MongoDB catalog {self.database.name}: claim_idempotency_key kept losing a race; retry")

    def get_idempotency_key(self, key_fingerprint: str, *, now: str) -> IdempotencyRecord | None:
        with self._translated("get_idempotency_key"):
            document = self._idempotency_keys().find_one({"_id": key_fingerprint, "expires_at": {"$gt": now}})
        return self._idempotency_record(document) if document else None

    def purge_idempotency_keys(self, *, now: str) -> int:
        with self._translated("purge_idempotency_keys"):
            return self._idempotency_keys().delete_many({"expires_at": {"$lte": now}}).deleted_count

    # access log --------------------------------------------------------------------------
    def log_access(self, entries: Sequence[AccessEntry]) -> None:
        if not entries:
            return
        with self._translated("log_access"):
            self.access_log.insert_many([asdict(entry) for entry in entries])

    def list_access(self, *, principal: str | None = None, limit: int = 100, offset: int = 0) -> list[AccessEntry]:
        _check_page(limit, offset)
        if not limit:
            return []
        with self._translated("list_access"):
            cursor = (
                self.access_log.find(_equals(principal=principal))
                .sort([("at", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)])
                .skip(offset)
                .limit(limit)
            )
            return [AccessEntry(**{f: document[f] for f in ACCESS_FIELDS}) for document in cursor]

    def summarise_access(self, *, start: str, end: str, failure_limit: int | None = None) -> AccessSummary:
        if failure_limit is not None and failure_limit < 0:
            raise ValueError(f"failure_limit must not be negative, not {failure_limit}")
        span = {"at": {"$gte": start, "$lt": end}}
        failed = {"status": {"$in": list(AUTH_FAILURE_STATUSES)}, **span}
        with self._translated("summarise_access"):
            by_status = sorted(
                (d["_id"]["principal"], int(d["_id"]["status"]), int(d["n"])) for d in self.access_log.aggregate([
                    {"$match": span},
                    {"$group": {"_id": {"principal": "$principal", "status": "$status"}, "n": {"$sum": 1}}}]))
            by_path = sorted(
                (d["_id"]["method"], d["_id"]["path"], int(d["n"])) for d in self.access_log.aggregate([
                    {"$match": span},
                    {"$group": {"_id": {"method": "$method", "path": "$path"}, "n": {"$sum": 1}}}]))
            failures_total = self.access_log.count_documents(failed)
            cursor = self.access_log.find(failed).sort([("at", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)])
            if failure_limit is not None:
                cursor = cursor.limit(failure_limit) if failure_limit else iter(())
            failures = [AccessEntry(**{f: document[f] for f in ACCESS_FIELDS}) for document in cursor]
        return AccessSummary(total=sum(n for _, _, n in by_status), by_principal_status=by_status,
                             by_method_path=by_path, auth_failures=failures, auth_failures_total=failures_total)

    def close(self) -> None:
        # A database handed in belongs to a client the caller owns (and may share); only a
        # client built by from_uri is ours to close.
        if self._owns_client:
            self.database.client.close()
