"""The MongoDB catalog's bookkeeping of running the vault: watermarks, leases, idempotency keys, access log.

A provider's watermark (the newest event time landed) only ever moves forward, by the
server's atomic ``$max``; a lease lets one holder at a time do what must not run twice at
once, across processes and machines, and expires so a killed holder blocks the others only
for its time to live; an idempotency key lets a client repeat ``POST /v1/ingest`` and get the
same job, the unique ``_id`` making a claim atomic across API processes; the access log keeps
every request to the API, and a period's compliance summary is counted on the server from the
indexes on ``at`` and on status.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import pymongo
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from vault_pipeline.storage.catalog import (
    AUTH_FAILURE_STATUSES,
    AccessEntry,
    AccessSummary,
    CatalogError,
    IdempotencyRecord,
)
from vault_pipeline.storage.mongo_common import ACCESS_FIELDS, _check_page, _equals


class MongoOperations:
    """MongoCatalog's watermarks, leases, idempotency keys and access log (a mixin:
    ``_translated``, ``database`` and the collections are MongoCatalog's)."""

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
