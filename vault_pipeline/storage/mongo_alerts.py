"""The MongoDB catalog's alert outbox: alerts waiting for delivery, delivered, or given up on.

One document per alert and notification target in ``alert_outbox``, its ``_id`` the delivery
id derived from both, so an alert raised twice (by two daemons, or one tick evaluated again)
is stored once: ``$setOnInsert`` with an upsert adds only what is new, atomically on the
server. The event itself is kept as JSON text, like ledger entries, so its fields keep any key
and integer. The collection's indexes are created on first use, so this part stands alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import pymongo
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from vault_pipeline.storage.catalog import AlertDelivery
from vault_pipeline.storage.mongo_common import _check_page, _equals, _to_json

ALERT_FIELDS = tuple(f.name for f in fields(AlertDelivery) if f.name != "delivery_id")
_ATTEMPT_FIELDS = ("status", "attempts", "next_attempt_at", "last_attempt_at", "delivered_at", "last_error")


def _document(delivery: AlertDelivery) -> dict[str, Any]:
    document: dict[str, Any] = {name: getattr(delivery, name) for name in ALERT_FIELDS}
    document["event"] = _to_json(delivery.event)
    return document


def _delivery(document: dict[str, Any]) -> AlertDelivery:
    values = {name: document.get(name) for name in ALERT_FIELDS}
    values["event"] = json.loads(document["event"])
    return AlertDelivery(delivery_id=document["_id"], **values)


class MongoAlerts:
    """MongoCatalog's alert outbox (a mixin: ``_translated`` and ``database`` are MongoCatalog's)."""

    def _alert_outbox(self) -> Collection:
        outbox: Collection = self.database["alert_outbox"]
        if not getattr(self, "_alerts_ready", False):
            with self._translated("create the alert_outbox indexes"):
                outbox.create_index([("status", pymongo.ASCENDING), ("next_attempt_at", pymongo.ASCENDING),
                                     ("_id", pymongo.ASCENDING)], name="alert_outbox_due")
                outbox.create_index([("created_at", pymongo.DESCENDING), ("_id", pymongo.ASCENDING)],
                                    name="alert_outbox_by_time")
            self._alerts_ready = True
        return outbox

    def enqueue_alerts(self, deliveries: Sequence[AlertDelivery]) -> int:
        outbox = self._alert_outbox()
        added = 0
        with self._translated("enqueue_alerts"):
            for delivery in {d.delivery_id: d for d in deliveries}.values():
                try:
                    result = outbox.update_one({"_id": delivery.delivery_id}, {"$setOnInsert": _document(delivery)},
                                               upsert=True)
                except DuplicateKeyError:  # two upserts racing for one _id: the other one added it
                    continue
                added += result.upserted_id is not None
        return added

    def due_alerts(self, *, now: str, limit: int = 100) -> list[AlertDelivery]:
        _check_page(limit, 0)
        if not limit:
            return []
        with self._translated("due_alerts"):
            cursor = (self._alert_outbox().find({"status": "pending", "next_attempt_at": {"$lte": now}})
                      .sort([("next_attempt_at", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)]).limit(limit))
            return [_delivery(document) for document in cursor]

    def save_alert_attempt(self, delivery: AlertDelivery) -> None:
        with self._translated("save_alert_attempt"):
            self._alert_outbox().update_one(
                {"_id": delivery.delivery_id}, {"$set": {name: getattr(delivery, name) for name in _ATTEMPT_FIELDS}})

    def get_alert(self, delivery_id: str) -> AlertDelivery | None:
        with self._translated("get_alert"):
            document = self._alert_outbox().find_one({"_id": delivery_id})
        return _delivery(document) if document else None

    def list_alerts(self, *, status: str | None = None, kind: str | None = None, limit: int = 100,
                    offset: int = 0) -> list[AlertDelivery]:
        _check_page(limit, offset)
        if not limit:
            return []
        with self._translated("list_alerts"):
            cursor = (self._alert_outbox().find(_equals(status=status, kind=kind))
                      .sort([("created_at", pymongo.DESCENDING), ("_id", pymongo.ASCENDING)]).skip(offset).limit(limit))
            return [_delivery(document) for document in cursor]

    def count_alerts(self, *, status: str | None = None, kind: str | None = None) -> int:
        with self._translated("count_alerts"):
            return self._alert_outbox().count_documents(_equals(status=status, kind=kind))

    def requeue_alerts(self, delivery_ids: Sequence[str] | None, *, now: str) -> int:
        reset = {"$set": {"status": "pending", "attempts": 0, "next_attempt_at": now}}
        with self._translated("requeue_alerts"):
            outbox = self._alert_outbox()
            if delivery_ids is None:
                return outbox.update_many({"status": "failed"}, reset).matched_count
            return outbox.update_many({"_id": {"$in": list(dict.fromkeys(delivery_ids))},
                                       "status": {"$in": ["failed", "pending"]}}, reset).matched_count
