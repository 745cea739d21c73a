"""``GET /v1/alerts``: the alert outbox over HTTP, for a console or another service watching the vault.

The same list as ``vault alerts``: the newest alerts first, each with its target (by its
vault.yaml name, never a URL or token), delivery status (pending, delivered, failed),
attempts, last error and next attempt; filters by status and kind, paged with limit and offset
and a total count. Undeliverable alerts stay listed here until someone looks (and
``vault alerts retry`` re-queues them). Read-only, for ``read`` (and ``admin``) keys; the
access log records every call like any other.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Query
from pydantic import BaseModel

from vault_pipeline.core.alerts import DELIVERY_STATUSES, EVENT_KINDS


class AlertView(BaseModel):
    delivery_id: str
    event_id: str
    kind: str
    severity: str
    title: str
    text: str
    target: str
    target_type: str
    status: str
    attempts: int
    created_at: str
    next_attempt_at: str | None
    last_attempt_at: str | None
    delivered_at: str | None
    last_error: str | None
    fields: dict[str, Any]
    link: str | None


class AlertPage(BaseModel):
    data: list[AlertView]
    meta: dict[str, Any]


def alert_view(delivery) -> dict[str, Any]:
    event = delivery.event or {}
    return {
        "delivery_id": delivery.delivery_id, "event_id": delivery.event_id, "kind": delivery.kind,
        "severity": delivery.severity, "title": delivery.title, "text": event.get("text", ""),
        "target": delivery.target, "target_type": delivery.target_type, "status": delivery.status,
        "attempts": delivery.attempts, "created_at": delivery.created_at,
        "next_attempt_at": delivery.next_attempt_at if delivery.status == "pending" else None,
        "last_attempt_at": delivery.last_attempt_at, "delivered_at": delivery.delivered_at,
        "last_error": delivery.last_error, "fields": event.get("fields") or {}, "link": event.get("link"),
    }


def register_alert_routes(app, api, requires, api_error: type[Exception]) -> None:
    """The alert outbox endpoint on ``create_app``'s conventions (``requires``, ``ApiError``)."""

    @app.get("/v1/alerts", response_model=AlertPage, summary="alerts raised and their delivery, newest first")
    def list_alerts(
        _p=requires("read"),
        status: Literal[DELIVERY_STATUSES] | None = Query(  # type: ignore[valid-type]
            None, description="only alerts with this delivery status (failed: given up, kept)"),
        kind: Literal[EVENT_KINDS] | None = Query(None, description="only alerts of this kind"),  # type: ignore[valid-type]
        limit: int = Query(50, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=10_000_000),
    ) -> dict[str, Any]:
        deliveries = api.catalog.list_alerts(status=status, kind=kind, limit=limit, offset=offset)
        total = api.catalog.count_alerts(status=status, kind=kind)
        return {"data": [alert_view(d) for d in deliveries],
                "meta": {"total_count": total, "has_more": offset + len(deliveries) < total, "limit": limit,
                         "offset": offset}}
