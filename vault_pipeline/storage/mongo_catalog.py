"""MongoCatalog: the production index of the vault, kept in MongoDB.

It holds the same entries as the embedded SQLite catalog (where each record's bytes live and
their checksum, dead letters, per-provider watermarks, the artifact index) in four
collections, keyed by the vault's own deterministic ids, so re-running a partition against
production is as idempotent as it is on a laptop. The shared contract suite holds both
adapters to identical answers. This module connects and creates the indexes; the catalog's
methods are in storage/mongo_records.py (records and dead letters),
storage/mongo_provenance.py (artifacts, ledger, promotions and quarantine) and
storage/mongo_operations.py (watermarks, leases, idempotency keys, access log), what they
share in storage/mongo_common.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

import pymongo
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import PyMongoError

from vault_pipeline.storage.catalog import Catalog, CatalogError
from vault_pipeline.storage.mongo_common import ACCESS_FIELDS, ARTIFACT_FIELDS, DEAD_LETTER_FIELDS, RECORD_FIELDS  # noqa: F401
from vault_pipeline.storage.mongo_common import RECORD_ORDER
from vault_pipeline.storage.mongo_alerts import MongoAlerts
from vault_pipeline.storage.mongo_operations import MongoOperations
from vault_pipeline.storage.mongo_provenance import MongoProvenance
# Re-exported; the batch sizes are read (and shrunk by the contract tests) in mongo_records.
from vault_pipeline.storage.mongo_records import DUPLICATE_KEY, ID_CHUNK, INSERT_CHUNK  # noqa: F401
from vault_pipeline.storage.mongo_records import MongoRecords

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


class MongoCatalog(MongoRecords, MongoProvenance, MongoOperations, MongoAlerts, Catalog):
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

    def worker_opener(self) -> None:
        # Not re-openable from a description: the database handed in may be a test double
        # (mongomock) or a client whose credentials and sessions cannot be re-created in another
        # process from what this object holds, so vault verify keeps a MongoDB vault in-process.
        return None

    def close(self) -> None:
        # A database handed in belongs to a client the caller owns (and may share); only a
        # client built by from_uri is ours to close.
        if self._owns_client:
            self.database.client.close()
