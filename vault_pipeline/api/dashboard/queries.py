"""What the dashboard shows, as plain dicts: one overview per view, the drill-down, the alerts.

Everything is derived from the vault's own ports and the analytics queries (never a second copy
of the data): the cards, charts and provider table from ``AnalyticsQueries`` over the lake;
an hour's providers from that hour's single Delta partition; its records from the catalog
(paged like ``/v1/logs``); one record's bytes, proof and golden decision exactly as the API's
``raw``/``proof`` endpoints and the promotion manifests hold them. An overview is computed once
per lake and catalog version and view (range, provider), so the page's auto-refresh costs a
version check while nothing lands.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from vault_pipeline.api.analytics_queries import (
    AnalyticsError,
    AnalyticsQueries,
    ResultCache,
    Snapshot,
    check_range,
    iso_z,
)
from vault_pipeline.api.pagination import LogSearch
from vault_pipeline.core.checksums import checksum
from vault_pipeline.core.identity import is_log_id
from vault_pipeline.core.ledger import KIND_PROMOTION_DECISION, LedgerError, record_proof
from vault_pipeline.defs.analytics.maintenance import fact_tables
from vault_pipeline.defs.integrity.ledger_stage import partition_entries
from vault_pipeline.storage.catalog import CHECKSUM_MISMATCH, fixed_width_timestamp
from vault_pipeline.storage.lake import LakeError
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStoreError

FACT_TABLE = "generation_events"
PRESETS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_PRESET = "24h"
PASS_RATE_TARGET = 0.99  # the design's data-quality target; a suite under it is an alert
HOURLY_UP_TO = timedelta(hours=72)  # longer ranges chart per day
RECORDS_PAGE = 25
QUARANTINE_SCAN = 10_000  # quarantine items looked at per overview (the count says when it stopped)
LISTED = 8  # items listed per alert (the panels stay short; the count says how many in all)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# One error type for the query layers: the analytics queries' refusals reach the routes as they are.
DashboardError = AnalyticsError


def _parse_time(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise DashboardError(422, "invalid_request", {"parameter": name, "msg": f"{name} must be a date and time, "
                                                      "e.g. 2026-01-01T00:00 (UTC)"}) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # the page's fields are UTC


def resolve_view(params: dict[str, str], now: datetime) -> dict[str, Any]:
    """The view a URL query names: range (preset or custom start/end, UTC), provider, interval."""
    preset = params.get("preset") or (DEFAULT_PRESET if not params.get("start") else "custom")
    provider = (params.get("provider") or "").strip() or None
    if provider is not None and len(provider) > 64:
        raise DashboardError(422, "invalid_request", {"parameter": "provider", "msg": "at most 64 characters"})
    if preset in PRESETS:
        end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        if end < now:
            end += timedelta(hours=1)  # the hour under way is shown as it fills
        start = end - PRESETS[preset]
    elif preset == "custom":
        if not params.get("start") or not params.get("end"):
            raise DashboardError(422, "invalid_request", {"parameter": "start", "msg": "a custom range needs a start "
                                                          "and an end"})
        start, end = _parse_time(params["start"], "start"), _parse_time(params["end"], "end")
    else:
        raise DashboardError(422, "invalid_request", {"parameter": "preset", "msg": f"one of {[*PRESETS, 'custom']}"})
    window = check_range(start, end)
    return {"preset": preset, "start": start, "end": end, "provider": provider, "window": window,
            "interval": "hour" if end - start <= HOURLY_UP_TO else "day"}


class DashboardQueries:
    def __init__(self, api, cache: ResultCache | None = None) -> None:
        self.api = api
        self.cache = cache  # the analytics API's answers per table version, shared
        self._cache: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._oldest: dict[str, tuple[int | None, str | None]] = {}  # table -> (version, oldest date)

    def _analytics(self) -> AnalyticsQueries:
        if self.api.lake is None:
            raise DashboardError(503, "lake_unavailable", "this API was started without a lake")
        return AnalyticsQueries(self.api.lake, self.api.catalog, self.api.store, self.cache)

    # -- change detection ---------------------------------------------------------------
    def version(self, view: dict[str, Any]) -> str:
        """Changes whenever what an overview shows may have: a load, an index, a verify run."""
        lake = self.api.lake.version(FACT_TABLE) if self.api.lake is not None else None
        verify = self._newest_verify_artifact()
        return ":".join(str(part) for part in (
            lake, self.api.catalog.records_version(), verify.artifact_id if verify else "-",
            iso_z(view["start"]), iso_z(view["end"]), view["provider"] or ""))

    def overview(self, view: dict[str, Any]) -> dict[str, Any]:
        version = self.version(view)
        key = (version, view["interval"])
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        result = self._overview(view) | {"version": version}
        with self._lock:
            self._cache[key] = result
            while len(self._cache) > 32:
                self._cache.popitem(last=False)
        return result

    def _overview(self, view: dict[str, Any]) -> dict[str, Any]:
        q, window, provider, now = self._analytics(), view["window"], view["provider"], Snapshot()
        # Six independent scans: DataFusion runs outside the GIL, so side by side they share the
        # cores (measured over 30 days of 10M events: 3.0 s one after another, 2.3 s like this).
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="vault-dashboard") as pool:
            asked = {
                "metrics": pool.submit(q.metrics, window, now, provider),
                "providers": pool.submit(q.providers, window, now),
                "before": pool.submit(q.providers, window.previous(), now),
                "hourly": pool.submit(q.timeseries, window, now, "requests", "count", "hour", provider),
                "latency": pool.submit(q.timeseries, window, now, "latency_ms", "p95", view["interval"], provider),
                "techniques": pool.submit(q.techniques, window, now, provider),
            }
            answers = {name: future.result() for name, future in asked.items()}
        metrics = {m["metric_name"]: m for m in answers["metrics"]}
        providers, hourly, latency = answers["providers"], answers["hourly"], answers["latency"]
        before = {p["provider_id"]: p for p in answers["before"]}
        techniques = answers["techniques"]
        requests = hourly if view["interval"] == "hour" else _daily_sums(hourly)
        return {
            "range": {"preset": view["preset"], "start": iso_z(view["start"]), "end": iso_z(view["end"]),
                      "provider": provider, "interval": view["interval"]},
            "cards": _cards(metrics, providers, before, provider),
            "metrics": list(metrics.values()),
            "series": {"requests": requests, "latency_p95_ms": latency, "hourly_requests": hourly},
            "heatmap": _heatmap(hourly),
            "providers": [p | {"previous_share": (before.get(p["provider_id"]) or {}).get("request_share")}
                          for p in providers],
            "provider_choices": self._provider_choices(providers, provider),
            "techniques": techniques,
            "compliance": self.compliance(view),
        }

    def _provider_choices(self, providers: list[dict[str, Any]], chosen: str | None) -> list[str]:
        names = {p["provider_id"] for p in providers if p["provider_id"]}
        if chosen:
            names.add(chosen)  # a linked view keeps its filter even over a range without that provider
        return sorted(names)

    # -- compliance and alerts ------------------------------------------------------------
    def compliance(self, view: dict[str, Any]) -> dict[str, Any]:
        window = view["window"]
        quality = self._analytics().data_quality(window, Snapshot())
        failing = [r for r in quality if r["pass_rate"] is not None and r["pass_rate"] < PASS_RATE_TARGET]
        return {
            "failing_checks": {"target": PASS_RATE_TARGET, "evaluated": len(quality), "count": len(failing),
                               "items": failing[:LISTED]},
            "quarantine": self._quarantined(window),
            "verify": self._verify(),
            "retention": self._retention(),
        }

    def _quarantined(self, window) -> dict[str, Any]:
        if window.empty:
            return {"count": 0, "complete": True, "items": []}
        low, high = window.first.strftime("%Y-%m-%d-%H:00"), window.stop.strftime("%Y-%m-%d-%H:00")
        found, scanned, offset = [], 0, 0
        while scanned < QUARANTINE_SCAN:
            page = self.api.catalog.list_quarantine(status="quarantined", limit=500, offset=offset)
            offset += len(page)
            scanned += len(page)
            found += [item for item in page if low <= str(item.get("partition", ""))[:16] < high]
            if len(page) < 500:
                break
        items = sorted(found, key=lambda item: (item.get("partition", ""), item.get("log_id", "")), reverse=True)
        return {"count": len(found), "complete": scanned < QUARANTINE_SCAN,
                "items": [{k: item.get(k) for k in ("log_id", "provider", "partition", "reason", "quarantined_at")}
                          for item in items[:LISTED]]}

    def _newest_verify_artifact(self):
        newest, offset = None, 0
        while True:  # verify runs are few; the index orders by partition, so the newest is looked for
            page = self.api.catalog.search_artifacts(kind="verify_report", limit=1000, offset=offset)
            for artifact in page:
                if newest is None or (artifact.created_at, artifact.artifact_id) > (newest.created_at,
                                                                                    newest.artifact_id):
                    newest = artifact
            offset += len(page)
            if len(page) < 1000:
                return newest

    def _verify(self) -> dict[str, Any]:
        artifact = self._newest_verify_artifact()
        if artifact is None:
            return {"recorded": False, "message": "no verify run recorded"}
        try:
            report = json.loads(self.api.store.get(artifact.location))
        except (ObjectMissingError, ObjectStoreError, ValueError):
            return {"recorded": True, "readable": False, "location": artifact.location,
                    "message": "the newest verify report cannot be read"}
        findings = report.get("findings") or []
        return {"recorded": True, "readable": True, "clean": bool(report.get("clean")) and not findings,
                "finished_at": report.get("finished_at"), "count": len(findings),
                "findings": [{k: f.get(k) for k in ("type", "provider", "partition", "detail")}
                             for f in findings[:LISTED]]}

    def _retention(self) -> dict[str, Any]:
        """Per fact table: the oldest date partition against the table's retention (cheap: one
        top-1 read per table version)."""
        lake = self.api.lake
        lake_config = self.api.config().lake
        today = self.api.clock().astimezone(UTC)
        tables, breaches = [], 0
        for table in fact_tables():
            version = lake.version(table)
            if version is None:
                continue
            cached = self._oldest.get(table)
            if cached is None or cached[0] != version:
                try:
                    rows = lake.read(table, columns=["date"], order_by=["date"], limit=1)
                except LakeError:
                    continue
                cached = (version, rows.column("date")[0].as_py() if rows.num_rows else None)
                self._oldest[table] = cached
            days = lake_config.retention_days_of(table)
            cutoff = (today - timedelta(days=days)).strftime("%Y-%m-%d")
            breach = cached[1] is not None and cached[1] < cutoff
            breaches += breach
            tables.append({"table": table, "oldest_date": cached[1], "retention_days": days, "keep_from": cutoff,
                           "breach": breach})
        return {"breaches": breaches, "tables": tables}

    # -- drill-down ----------------------------------------------------------------------
    def hour(self, hour_text: str) -> dict[str, Any]:
        """One hour: its requests by pipeline provider (the partition key) and, in each, by LLM provider."""
        hour = _parse_time(hour_text, "hour").astimezone(UTC)
        if hour.minute or hour.second or hour.microsecond:
            raise DashboardError(422, "invalid_request", {"parameter": "hour", "msg": "an hour, e.g. 2026-01-01T03:00"})
        if self.api.lake is None:
            raise DashboardError(503, "lake_unavailable", "this API was started without a lake")
        date, hh = hour.strftime("%Y-%m-%d"), hour.strftime("%H")
        try:
            rows = self.api.lake.read(FACT_TABLE, columns=["provider", "llm_provider", "success"],
                                      partitions=[(date, hh)])
        except LakeError as exc:
            raise DashboardError(503, "lake_unavailable", str(exc)) from None
        groups: dict[str, dict[str, Any]] = {}
        if rows.num_rows:
            success = pc.fill_null(rows.column("success").cast(pa.bool_()), False).to_pylist()
            for pipeline, llm, ok in zip(rows.column("provider").to_pylist(), rows.column("llm_provider").to_pylist(),
                                         success):
                group = groups.setdefault(pipeline, {"requests": 0, "successes": 0, "llm_providers": {}})
                group["requests"] += 1
                group["successes"] += bool(ok)
                group["llm_providers"][llm or "(none)"] = group["llm_providers"].get(llm or "(none)", 0) + 1
        start, end = fixed_width_timestamp(hour), fixed_width_timestamp(hour + timedelta(hours=1))
        out = []
        for pipeline in sorted(groups):
            group = groups[pipeline]
            indexed = self.api.catalog.search_records(provider=pipeline, start=start, end=end, limit=0).total_count
            out.append({"provider": pipeline, "partition": f"{hour:%Y-%m-%d-%H}:00|{pipeline}",
                        "requests": group["requests"], "success_rate": group["successes"] / group["requests"],
                        "records_indexed": indexed,
                        "llm_providers": [{"llm_provider": k, "requests": v}
                                          for k, v in sorted(group["llm_providers"].items())]})
        return {"hour": iso_z(hour), "providers": out}

    def records(self, provider: str, hour_text: str, offset: int, search: LogSearch) -> dict[str, Any]:
        """A pipeline provider's records of one hour (by event time), paged as ``/v1/logs`` pages."""
        hour = _parse_time(hour_text, "hour").astimezone(UTC)
        page = search.page(provider=provider, start=fixed_width_timestamp(hour),
                           end=fixed_width_timestamp(hour + timedelta(hours=1)), limit=RECORDS_PAGE, offset=offset)
        return {"provider": provider, "hour": iso_z(hour), "offset": offset, "limit": RECORDS_PAGE,
                "total_count": page.total_count, "has_more": offset + len(page.items) < page.total_count,
                "data": [{"id": e.log_id, "timestamp": e.timestamp, "checksum": e.checksum, "size": e.length,
                          "status": e.status, "partition": e.partition} for e in page.items]}

    def _entry(self, log_id: str):
        entry = self.api.catalog.get_record(log_id) if is_log_id(log_id) else None
        if entry is None:
            raise DashboardError(404, "log_not_found", "no log with that id")
        return entry

    def verified_bytes(self, log_id: str) -> tuple[Any, bytes]:
        """The record's stored bytes, only if they hash to the indexed checksum (as ``/v1/logs/{id}/raw``)."""
        entry = self._entry(log_id)
        try:
            data = self.api.store.get_range(entry.object_key, entry.offset, entry.length)
        except ObjectMissingError:
            raise DashboardError(410, "raw_object_missing", f"the stored object {entry.object_key} is gone") from None
        except ObjectStoreError:
            data = b""  # shorter than the indexed range: the bytes changed
        if checksum(data) != entry.checksum:
            self.api.catalog.set_status([log_id], CHECKSUM_MISMATCH)
            raise DashboardError(409, "checksum_mismatch",
                                 "stored bytes no longer match the indexed checksum; not shown")
        return entry, data

    def record(self, log_id: str, *, may_audit: bool) -> dict[str, Any]:
        entry = self._entry(log_id)
        out: dict[str, Any] = {
            "id": entry.log_id, "provider": entry.provider, "partition": entry.partition,
            "timestamp": entry.timestamp, "checksum": entry.checksum, "size": entry.length, "status": entry.status,
            "object_key": entry.object_key, "offset": entry.offset, "golden": self._decision(entry),
        }
        if not may_audit:
            out["raw"] = out["proof"] = {"available": False, "reason": "raw bytes and proofs need the audit role"}
            return out
        try:
            _, data = self.verified_bytes(log_id)
            out["raw"] = {"available": True, "verified": True, "base64": base64.b64encode(data).decode()}
        except DashboardError as exc:
            out["raw"] = {"available": False, "error": exc.code, "reason": exc.detail}
        out["proof"] = self._proof(entry)
        return out

    def _proof(self, entry) -> dict[str, Any]:
        stored = partition_entries(self.api.catalog, entry.partition)
        if not stored:
            return {"available": False, "reason": f"partition {entry.partition} has no ledger entry yet"}
        records = list(self.api.catalog.iter_partition_records(entry.partition))
        index = next(i for i, record in enumerate(records) if record.log_id == entry.log_id)
        try:
            proof = record_proof(stored[-1], [record.checksum for record in records], index)
        except LedgerError as exc:
            return {"available": False, "error": "ledger_mismatch", "reason": str(exc)}
        return {"available": True} | proof

    def _decision(self, entry) -> dict[str, Any]:
        """The record's row in its partition's promotion manifest, read through checksummed objects."""
        held = self.api.catalog.get_quarantine(entry.log_id)
        artifacts = self.api.catalog.search_artifacts(partition=entry.partition, kind="golden_manifest", limit=10)
        if not artifacts:
            if held is not None:
                return {"promoted": True, "decision": "quarantined", "reason": held.get("reason"),
                        "status": held.get("status")}
            return {"promoted": False, "message": "not promoted yet"}
        artifact = artifacts[-1]
        try:
            index_bytes = self.api.store.get(artifact.location)
            if artifact.checksum and checksum(index_bytes) != artifact.checksum:
                return {"promoted": True, "error": "manifest_altered",
                        "message": "the promotion manifest no longer matches its indexed checksum"}
            index = json.loads(index_bytes)
            part = next((p for p in index.get("parts", []) if p.get("raw_key") == entry.object_key), None)
            if part is None:
                return {"promoted": False, "message": "not promoted yet"}
            rows = self.api.store.get(part["manifest_key"])
            if checksum(rows) != part.get("manifest_checksum"):
                return {"promoted": True, "error": "manifest_altered",
                        "message": "the promotion manifest part no longer matches its checksum"}
        except (ObjectMissingError, ObjectStoreError, ValueError, KeyError):
            return {"promoted": True, "error": "manifest_unreadable", "message": "the promotion manifest is unreadable"}
        needle = f'"log_id":"{entry.log_id}"'.encode()
        for line in rows.splitlines():
            if needle in line:
                row = json.loads(line)
                decisions = partition_entries(self.api.catalog, entry.partition, KIND_PROMOTION_DECISION)
                return {"promoted": True, "decision": row.get("decision"), "reason": row.get("reason"),
                        "masked": row.get("masked") or [], "golden": row.get("golden"),
                        "approval": row.get("approval"), "promoted_at": row.get("promoted_at"),
                        "policy_tier": row.get("policy_tier"), "masking_policy": row.get("masking_policy"),
                        "ledger_entry": row.get("ledger_entry"),
                        "decision_entry": ({"sequence": decisions[-1].sequence, "hash": decisions[-1].entry_hash}
                                           if decisions else None),
                        "quarantine_status": held.get("status") if held else None}
        return {"promoted": False, "message": "not promoted yet"}


def _daily_sums(hourly: list[dict[str, Any]]) -> list[dict[str, Any]]:
    days: OrderedDict[str, dict[str, Any]] = OrderedDict()
    for point in hourly:
        day = point["timestamp"][:10]
        bucket = days.setdefault(day, {"timestamp": f"{day}T00:00:00Z", "value": 0.0, "label": point["label"]})
        bucket["value"] += point["value"] or 0.0
    return list(days.values())


def _heatmap(hourly: list[dict[str, Any]]) -> dict[str, Any]:
    """Requests per weekday (rows, Monday first) and hour of day (columns, UTC), summed over the range."""
    grid = [[0.0] * 24 for _ in WEEKDAYS]
    for point in hourly:
        moment = datetime.strptime(point["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
        grid[moment.weekday()][moment.hour] += point["value"] or 0.0
    return {"weekdays": list(WEEKDAYS), "hours": list(range(24)), "values": grid}


def _cards(metrics: dict[str, dict[str, Any]], providers: list[dict[str, Any]],
           before: dict[Any, dict[str, Any]], chosen: str | None) -> list[dict[str, Any]]:
    cards = []
    for name, title, unit in (("total_requests", "Requests", "count"), ("success_rate", "Success rate", "ratio"),
                              ("avg_latency_ms", "Average latency", "ms")):
        metric = metrics[name]
        cards.append({"id": name, "title": title, "unit": unit, "value": metric["value"],
                      "change_percent": metric["change_percent"], "period": metric["period"]})
    # Provider usage: the chosen provider's share of all requests, or how many providers served
    # and the top one's share; the trend is the share's change in percentage points.
    active = [p for p in providers if p["total_requests"]]
    focus = next((p for p in active if p["provider_id"] == chosen), None) if chosen else (
        max(active, key=lambda p: p["request_share"]) if active else None)
    share = focus["request_share"] if focus else (0.0 if chosen else None)
    previous = (before.get(focus["provider_id"] if focus else chosen) or {}).get("request_share")
    cards.append({"id": "provider_usage", "title": "Provider usage", "unit": "share",
                  "value": share, "providers": len(active),
                  "focus": focus["provider_id"] if focus else chosen,
                  "change_points": None if share is None or previous is None else (share - previous) * 100.0})
    return cards
