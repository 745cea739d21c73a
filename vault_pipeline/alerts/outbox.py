"""The alert outbox: alerts raised once, delivered to each target once, retried until they are.

``raise_event`` stores one delivery per notification target that subscribes to the alert's
kind (``notifications[].events``), keyed by the event's id and the target's name: raising the
same event again adds nothing, so a sensor tick evaluated twice, or two daemons, deliver it
once. ``deliver_due`` sends what is due, under the catalog lease ``alert_delivery`` (one pass at
a time across processes), within a time budget, recording each attempt: delivered, or due
again after a backoff that doubles up to ``alerts.delivery.backoff_max_s``, or, after
``max_attempts``, failed (kept, listed by ``vault alerts``, re-queued by ``vault alerts retry``).
Delivery never raises: whatever a target does, the caller (a sensor) goes on. Every text is
redacted of the configured secrets before it is stored, so the outbox, logs and the API never
hold a webhook URL, a Slack token or a provider credential.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from vault_pipeline.alerts.transports import DeliveryError, Transport, target_secrets, transport_for
from vault_pipeline.core.alerts import (
    DELIVERED,
    FAILED,
    PENDING,
    AlertEvent,
    clip_error,
    delivery_id_for,
    next_attempt_at,
    redact,
)
from vault_pipeline.providers.config import VaultConfig
from vault_pipeline.storage.catalog import AlertDelivery, Catalog, fixed_width_timestamp

log = logging.getLogger(__name__)

DELIVERY_LEASE = "alert_delivery"


@dataclass
class DeliveryReport:
    delivered: list[str] = field(default_factory=list)  # delivery ids
    retrying: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: bool = False  # another pass holds the lease

    def summary(self) -> str:
        if self.skipped:
            return "another delivery pass is running"
        return f"{len(self.delivered)} delivered, {len(self.retrying)} to retry, {len(self.failed)} given up"


def configured_secrets(config: VaultConfig, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every secret value vault.yaml names an environment variable for: the targets' URLs and
    tokens, the providers' credentials. None of them may appear in an alert."""
    environ = os.environ if environ is None else environ
    names = [p.auth.secret_env() for p in config.providers.values()]
    values = [environ[name] for name in names if name and environ.get(name)]
    return values + target_secrets(list(config.notifications), environ)


class AlertOutbox:
    def __init__(self, catalog: Catalog, config: VaultConfig, *, environ: Mapping[str, str] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 transport_factory: Callable[..., Transport] = transport_for) -> None:
        self.catalog, self.config, self.clock = catalog, config, clock
        self.environ = os.environ if environ is None else environ
        self._transport_factory = transport_factory
        self._targets = {target.target_name: target for target in config.notifications}

    @property
    def targets(self) -> list[str]:
        return list(self._targets)

    # raising ------------------------------------------------------------------------------
    def raise_event(self, event: AlertEvent) -> int:
        """Queue ``event`` for every target that takes its kind; returns how many deliveries are new
        (0 when it was raised before, or no target takes it)."""
        event = event.redacted(configured_secrets(self.config, self.environ))
        document = event.document()
        now = self._now()
        deliveries = [
            AlertDelivery(delivery_id=delivery_id_for(event.event_id, name), event_id=event.event_id, kind=event.kind,
                          severity=event.severity, title=document["title"], target=name, target_type=target.type,
                          created_at=event.created_at, next_attempt_at=now, event=document)
            for name, target in self._targets.items() if event.kind in target.events
        ]
        if not deliveries:
            return 0
        added = self.catalog.enqueue_alerts(deliveries)
        if added:
            log.info("alert %s (%s) queued for %d target(s): %s", event.event_id, event.kind, added, document["title"])
        return added

    # delivering ---------------------------------------------------------------------------
    def deliver_due(self, *, limit: int = 50, budget_s: float = 30.0) -> DeliveryReport:
        """Attempt the due deliveries (oldest due first) for at most ``budget_s`` seconds."""
        report = DeliveryReport()
        holder = f"{os.getpid()}:{uuid.uuid4().hex[:8]}"
        policy = self.config.alerts.delivery
        longest = max([t.timeout_s for t in self._targets.values()] or [5.0])
        try:
            if not self.catalog.acquire_lease(DELIVERY_LEASE, holder, budget_s + 2 * longest + 10):
                report.skipped = True
                return report
        except Exception as exc:  # noqa: BLE001 - delivery never fails its caller
            log.warning("alert delivery skipped: the catalog is unavailable (%s)", type(exc).__name__)
            report.skipped = True
            return report
        started = time.monotonic()
        transports: dict[str, Transport | DeliveryError] = {}
        try:
            for delivery in self.catalog.due_alerts(now=self._now(), limit=limit):
                if time.monotonic() - started > budget_s:
                    break
                self._attempt(delivery, transports, policy, report)
        except Exception as exc:  # noqa: BLE001
            log.warning("alert delivery stopped early: %s", type(exc).__name__)
        finally:
            for transport in transports.values():
                if not isinstance(transport, DeliveryError):
                    transport.close()
            try:
                self.catalog.release_lease(DELIVERY_LEASE, holder)
            except Exception:  # noqa: BLE001 - it expires on its own
                pass
        return report

    def retry(self, delivery_ids: list[str] | None) -> int:
        """Make failed deliveries (or the named ones) due now, attempts counted afresh."""
        return self.catalog.requeue_alerts(delivery_ids, now=self._now())

    def _attempt(self, delivery: AlertDelivery, transports: dict[str, Any], policy, report: DeliveryReport) -> None:
        target = self._targets.get(delivery.target)
        attempted = self.clock()
        secrets = configured_secrets(self.config, self.environ)
        error: DeliveryError | None = None
        if target is None:
            error = DeliveryError(f"target {delivery.target!r} is no longer in vault.yaml notifications")
        else:
            if delivery.target not in transports:
                try:
                    transports[delivery.target] = self._transport_factory(target, self.environ)
                except DeliveryError as exc:
                    transports[delivery.target] = exc
            transport = transports[delivery.target]
            if isinstance(transport, DeliveryError):
                error = transport
            else:
                try:
                    transport.send(delivery.event)
                except DeliveryError as exc:
                    error = exc
                except Exception as exc:  # noqa: BLE001 - a transport bug must not stop the others
                    error = DeliveryError(f"unexpected {type(exc).__name__} while sending")
        attempts = delivery.attempts + 1
        stamp = fixed_width_timestamp(attempted)
        if error is None:
            self.catalog.save_alert_attempt(replace(delivery, status=DELIVERED, attempts=attempts, last_attempt_at=stamp,
                                                    delivered_at=stamp, last_error=None))
            report.delivered.append(delivery.delivery_id)
            log.info("alert %s delivered to %s (attempt %d)", delivery.event_id, delivery.target, attempts)
            return
        message = clip_error(redact(str(error), secrets))
        gave_up = target is None or attempts >= policy.max_attempts
        due = next_attempt_at(attempted, attempts, base_s=policy.backoff_s, cap_s=policy.backoff_max_s,
                              key=delivery.delivery_id)
        if error.retry_after_s is not None:
            due = max(due, datetime.fromtimestamp(attempted.timestamp() + min(error.retry_after_s, policy.backoff_max_s), UTC))
        self.catalog.save_alert_attempt(replace(
            delivery, status=FAILED if gave_up else PENDING, attempts=attempts, last_attempt_at=stamp,
            next_attempt_at=delivery.next_attempt_at if gave_up else fixed_width_timestamp(due), last_error=message))
        (report.failed if gave_up else report.retrying).append(delivery.delivery_id)
        log.warning("alert %s to %s: attempt %d failed: %s%s", delivery.event_id, delivery.target, attempts, message,
                    "; giving up (vault alerts retry re-queues it)" if gave_up else
                    f"; next attempt at {fixed_width_timestamp(due)}")

    def _now(self) -> str:
        return fixed_width_timestamp(self.clock())
