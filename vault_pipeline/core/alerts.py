"""Alerts an operator is told about: what happened, how it is identified, when to try again.

An alert is raised when a run fails or succeeds, an hourly partition misses its SLA, a quality
suite's pass rate drops under its threshold, or promotion quarantines (or finds digest
mismatches) at a spike. Each :class:`AlertEvent` carries a *dedup key* naming the occurrence
(``run_failure:<run id>``, ``sla_miss:<partition>``), and its id is derived from that key, so
the same occurrence raised twice (a sensor tick evaluated again after a crash, two daemons) is
one event and is delivered once per target. Delivery is retried on a backoff schedule that
doubles from a base delay up to a cap, spread by a jitter derived from the delivery's own id
(deterministic, so two deliveries that failed together do not retry in lockstep, and a test
can name the bounds). Everything here is pure: no Dagster, no network, no clock of its own.
Secrets never enter an event: targets are named by their vault.yaml name, and every text can
be passed through :func:`redact` with the configured secret values first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

# What an alert is about (vault.yaml ``notifications[].events`` chooses among them).
RUN_FAILURE, RUN_SUCCESS, SLA_MISS, QUALITY, PROMOTION, TEST = (
    "run_failure", "run_success", "sla_miss", "quality", "promotion", "test")
EVENT_KINDS = (RUN_FAILURE, RUN_SUCCESS, SLA_MISS, QUALITY, PROMOTION, TEST)
SEVERITIES = ("critical", "error", "warning", "info")

# Where a delivery stands: waiting for its (next) attempt, done, or given up after
# ``alerts.delivery.max_attempts`` (kept, listed by ``vault alerts``, re-queued by ``vault alerts retry``).
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
DELIVERY_STATUSES = (PENDING, DELIVERED, FAILED)

MAX_TITLE = 200
MAX_TEXT = 3000
MAX_ERROR = 500


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One occurrence worth telling someone about; what every target receives."""

    kind: str  # one of EVENT_KINDS
    severity: str  # one of SEVERITIES
    title: str  # one line
    text: str  # a few lines a person reads in Slack or a pager
    dedup_key: str  # names the occurrence: raising it again is the same event
    created_at: str  # fixed-width ISO-8601 UTC, when it was first raised
    fields: Mapping[str, Any] = field(default_factory=dict)  # provider, partition, run_id, step, ...
    link: str | None = None  # where to look: the run or the asset in the Dagster UI

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"alert kind {self.kind!r} is not one of {', '.join(EVENT_KINDS)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")
        if not self.dedup_key:
            raise ValueError("an alert needs a dedup key naming its occurrence")

    @property
    def event_id(self) -> str:
        return event_id_for(self.dedup_key)

    def document(self) -> dict[str, Any]:
        """The event as stored in the outbox and sent to webhooks (JSON-safe)."""
        return {
            "event_id": self.event_id, "kind": self.kind, "severity": self.severity,
            "title": _clip(self.title, MAX_TITLE), "text": _clip(self.text, MAX_TEXT),
            "dedup_key": self.dedup_key, "created_at": self.created_at,
            "fields": {str(k): _plain(v) for k, v in self.fields.items()}, "link": self.link,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> AlertEvent:
        return cls(kind=document["kind"], severity=document["severity"], title=document["title"],
                   text=document["text"], dedup_key=document["dedup_key"], created_at=document["created_at"],
                   fields=dict(document.get("fields") or {}), link=document.get("link"))

    def redacted(self, secrets: Iterable[str]) -> AlertEvent:
        """The same event with every secret value replaced by ``***`` in every text it carries."""
        secrets = [s for s in secrets if s]
        if not secrets:
            return self
        fields = {k: redact(v, secrets) if isinstance(v, str) else v for k, v in self.fields.items()}
        return AlertEvent(kind=self.kind, severity=self.severity, title=redact(self.title, secrets),
                          text=redact(self.text, secrets), dedup_key=self.dedup_key, created_at=self.created_at,
                          fields=fields, link=redact(self.link, secrets) if self.link else None)


def event_id_for(dedup_key: str) -> str:
    return "al_" + hashlib.sha256(dedup_key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def delivery_id_for(event_id: str, target: str) -> str:
    """One delivery per event and target: the same event is sent to each target once."""
    return "ad_" + hashlib.sha256(f"{event_id}\x1f{target}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


# backoff ------------------------------------------------------------------------------------
def backoff_delay(attempt: int, *, base_s: float, cap_s: float, key: str = "") -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): ``base * 2**(attempt-1)``
    capped at ``cap``, times a jitter factor in [0.75, 1.25) derived from ``key`` and the attempt."""
    if attempt < 1:
        raise ValueError(f"attempts are counted from 1, not {attempt}")
    raw = min(cap_s, base_s * (2 ** min(attempt - 1, 40)))
    digest = hashlib.sha256(f"{key}\x1f{attempt}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return min(cap_s * 1.25, raw * (0.75 + 0.5 * fraction))


def next_attempt_at(now: datetime, attempt: int, *, base_s: float, cap_s: float, key: str = "") -> datetime:
    return now + timedelta(seconds=backoff_delay(attempt, base_s=base_s, cap_s=cap_s, key=key))


# rendering ----------------------------------------------------------------------------------
_EMOJI = {"critical": ":rotating_light:", "error": ":red_circle:", "warning": ":warning:", "info": ":white_check_mark:"}


def webhook_body(event_document: Mapping[str, Any]) -> dict[str, Any]:
    """What a webhook receives: the event document, marked with where it comes from."""
    return {"source": "vault_pipeline", **event_document}


def slack_text(event_document: Mapping[str, Any]) -> str:
    """A Slack message (mrkdwn): the title, the text, the fields, and a link to look at."""
    lines = [f"{_EMOJI.get(event_document['severity'], '')} *{_slack_escape(event_document['title'])}*".strip(),
             _slack_escape(event_document["text"])]
    fields = event_document.get("fields") or {}
    shown = [f"*{_slack_escape(str(k))}*: {_slack_escape(str(v))}" for k, v in fields.items() if v not in (None, "")]
    if shown:
        lines.append(" · ".join(shown))
    if event_document.get("link"):
        lines.append(f"<{event_document['link']}|Open in the Dagster UI>")
    return "\n".join(line for line in lines if line)


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# text hygiene -------------------------------------------------------------------------------
def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (and its URL-encoded forms) replaced by ``***``. Secrets shorter
    than 4 characters are not searched for: they would mangle ordinary words."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        for form in {secret, quote(secret, safe=""), quote(secret, safe="/:")}:
            text = text.replace(form, "***")
    return text


def first_line(text: str | None, limit: int = 300) -> str:
    """The first non-empty line of an error, at most ``limit`` characters."""
    for line in (text or "").splitlines():
        if line.strip():
            return _clip(line.strip(), limit)
    return ""


def clip_error(text: str) -> str:
    return _clip(" ".join(text.split()), MAX_ERROR)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return json.loads(json.dumps(value, default=str))
