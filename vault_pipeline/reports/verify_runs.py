"""Every `vault verify` run on record: its result as JSON in the object store, indexed by time.

A verify run proves the vault at one moment; the integrity section of a compliance report and
the dashboard's compliance status need the runs of a period, not only the last one printed on
a terminal. Each run's result (``clean``, what was checked, every finding) is stored
content-addressed under ``reports/_vault/verify/`` (``_vault`` cannot be a provider, so no
provider's reports share the prefix) and registered in the artifact index as kind
``verify_report``, in the partition of the UTC day it finished, so a period is found by
indexed lookups of its days. Findings name providers, partitions, sequences and object keys,
never a secret.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from vault_pipeline.core.ledger import VAULT_CHAIN, canonical_json
from vault_pipeline.reports.moments import fixed_width, period, utc_moment
from vault_pipeline.storage.catalog import Artifact, Catalog
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore

ARTIFACT_KIND = "verify_report"
PREFIX = f"reports/{VAULT_CHAIN}/verify/"


def verify_result(report: Any, *, started_at: datetime, finished_at: datetime,
                  selection: dict[str, Any]) -> dict[str, Any]:
    """The stored JSON of a run from a ``VerifyReport`` (defs/integrity/verification.py)."""
    return {
        "clean": report.clean,
        "checked_anything": report.checked_anything,
        "started_at": fixed_width(started_at),
        "finished_at": fixed_width(finished_at),
        "selection": selection,
        "summary": report.summary(),
        "checked": {"providers": report.providers, "ledger_entries": report.entries, "partitions": report.partitions,
                    "objects": report.objects, "records": report.records, "lake_rows": report.lake_rows,
                    "bytes_hashed": report.bytes_hashed, "seconds": round(report.seconds, 3),
                    "in_progress": len(report.in_progress)},
        "in_progress": list(report.in_progress),
        "findings": [{"type": f.type, "provider": f.provider, "partition": f.partition, "sequence": f.sequence,
                      "detail": f.detail} for f in report.findings],
    }


def artifact_id(day: str, key: str) -> str:
    return "art_" + hashlib.sha256(f"{ARTIFACT_KIND}|{day}|{key}".encode()).hexdigest()[:32]


def store_verify_result(store: ObjectStore, catalog: Catalog, result: dict[str, Any], *, run_id: str = "cli:vault verify") -> Artifact:
    """Store ``result`` as ``reports/_vault/verify/{finished_at}-{digest}.json`` (never
    overwritten: the name is the content's) and index it; returns the artifact."""
    data = json.dumps(result, indent=1, sort_keys=True, ensure_ascii=False).encode()
    digest = hashlib.sha256(canonical_json(result)).hexdigest()
    finished = utc_moment(result["finished_at"])
    key = f"{PREFIX}{finished.strftime('%Y%m%dT%H%M%S%fZ')}-{digest[:16]}.json"
    put = store.put(key, data)  # the same bytes again are a no-op; different bytes cannot have this name
    checksum, size = put.checksum, put.size
    day = finished.strftime("%Y-%m-%d")
    artifact = Artifact(
        artifact_id(day, key), ARTIFACT_KIND, VAULT_CHAIN, day, key, checksum, size, run_id, result["finished_at"], [],
        {"clean": result["clean"], "checked_anything": result["checked_anything"],
         "findings": len(result["findings"]), "started_at": result["started_at"], "summary": result["summary"]},
    )
    catalog.put_artifacts([artifact])
    return artifact


def verify_runs(catalog: Catalog, store: ObjectStore, start: datetime | str, end: datetime | str) -> list[dict[str, Any]]:
    """The runs that finished in [start, end), oldest first: each the stored JSON plus
    ``location``, ``checksum`` and ``artifact_id``. A stored result that is gone or no longer
    matches its indexed checksum is still listed, as ``{"missing": True}`` or
    ``{"altered": True}`` with the index's metadata, never silently dropped."""
    low, high = period(start, end)
    runs: list[dict[str, Any]] = []
    day = low.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    while day < high:
        offset = 0
        while True:
            page = catalog.search_artifacts(provider=VAULT_CHAIN, partition=day.strftime("%Y-%m-%d"),
                                            kind=ARTIFACT_KIND, limit=1000, offset=offset)
            offset += len(page)
            for artifact in page:
                if low <= utc_moment(artifact.created_at) < high:
                    runs.append(_load(store, artifact))
            if len(page) < 1000:
                break
        day += timedelta(days=1)
    runs.sort(key=lambda run: (run["finished_at"], run["location"]))
    return runs


def _load(store: ObjectStore, artifact: Artifact) -> dict[str, Any]:
    ref = {"location": artifact.location, "checksum": artifact.checksum, "artifact_id": artifact.artifact_id}
    try:
        data = store.get(artifact.location)
    except ObjectMissingError:
        return {**artifact.metadata, "finished_at": artifact.created_at, "missing": True, **ref}
    if "sha256:" + hashlib.sha256(data).hexdigest() != artifact.checksum:
        return {**artifact.metadata, "finished_at": artifact.created_at, "altered": True, **ref}
    return {**json.loads(data), **ref}
