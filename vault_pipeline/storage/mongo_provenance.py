"""The MongoDB catalog's provenance: the artifact index, the ledger, promotions and quarantine.

Artifacts (raw objects, snapshots, validation and integrity reports, lake tables) are indexed
by partition and kind with their location, checksum and the artifacts they were derived from,
kept as a native array so lineage can be queried on the server. The ledger's signed entries
and each provider's checkpoint are kept as the canonical JSON the ledger produced, opaque
here; an entry's ``_id`` is its provider and sequence, so a sequence taken twice is a
LedgerConflictError, which is how two writers racing for the next entry learn that one lost.
Promotion decisions and the records quarantined on the way to the golden zone are JSON
documents, with only the fields they are filtered on also kept as fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pymongo
from pymongo.errors import DuplicateKeyError

from vault_pipeline.storage.catalog import Artifact, CatalogError, LedgerConflictError
from vault_pipeline.storage.mongo_common import ARTIFACT_FIELDS, _check_page, _equals, _to_json


class MongoProvenance:
    """MongoCatalog's artifact index, ledger, promotions and quarantine (a mixin: ``_translated``
    and the collections are MongoCatalog's)."""

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
