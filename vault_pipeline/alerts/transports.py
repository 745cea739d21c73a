"""How an alert reaches a notification target: a JSON POST to a webhook, or a Slack message.

A transport is built per delivery pass from the target's ``vault.yaml`` entry and the secret
in the environment variable it names (read then, never stored). Sending either succeeds or
raises :class:`DeliveryError`, whose message says what happened in words that are safe to
store and show: an HTTP status, Slack's error code, "connection refused", a timeout. Never
the URL or the token (httpx and slack_sdk put URLs in their own exception texts, so those are
not passed on; whatever is, goes through ``redact`` with the target's secret first), and not in
the HTTP libraries' own log lines either (a filter on their loggers redacts the targets' secrets).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from vault_pipeline.core.alerts import clip_error, redact, slack_text, webhook_body
from vault_pipeline.providers.config_sections import NotificationTarget, SlackTarget, WebhookTarget

USER_AGENT = "vault_pipeline-alerts/1"


class DeliveryError(Exception):
    """An attempt failed; ``str()`` is safe to store. ``retry_after_s``: the target asked to wait."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Transport(Protocol):
    def send(self, event: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class _RedactingFilter(logging.Filter):
    """Takes the secrets of the targets out of what the HTTP libraries log: httpx logs every
    request's full URL at INFO ("HTTP Request: POST https://hooks.../T0/B1/secret"), and a
    webhook's URL is its secret."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        with self._lock:
            self.secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            cleaned = redact(message, list(self.secrets))
            if cleaned != message:
                record.msg, record.args = cleaned, ()
        return True


_LOG_FILTER = _RedactingFilter()
# A logger's filters see only the records of that very logger (not its children): each by name.
for _name in ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy",
              "slack_sdk.web.base_client"):
    logging.getLogger(_name).addFilter(_LOG_FILTER)


def hide_in_logs(secret: str) -> None:
    """Redact ``secret`` from the HTTP libraries' log records from now on (this process)."""
    if secret:
        _LOG_FILTER.add(secret)


class WebhookTransport:
    """POST the event as JSON; any 2xx is delivered. ``X-Vault-Event-Id`` lets a receiver drop a
    copy it already has (an attempt whose answer was lost in transit is sent again)."""

    def __init__(self, url: str, timeout_s: float, client: httpx.Client | None = None) -> None:
        hide_in_logs(url)
        self._url, self._secret = url, url
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False,
                                              trust_env=False)
        self._owns_client = client is None

    def send(self, event: Mapping[str, Any]) -> None:
        try:
            response = self._client.post(self._url, json=webhook_body(event),
                                         headers={"User-Agent": USER_AGENT, "X-Vault-Event-Id": event["event_id"]})
        except httpx.TimeoutException:
            raise DeliveryError("the webhook did not answer in time (timeout)") from None
        except httpx.ConnectError as exc:
            raise DeliveryError(f"cannot connect to the webhook ({_reason(exc, self._secret)})") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"the webhook request failed ({type(exc).__name__})") from None
        if 200 <= response.status_code < 300:
            return
        retry_after = _retry_after(response.headers.get("Retry-After"))
        raise DeliveryError(f"the webhook answered HTTP {response.status_code}", retry_after)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


class SlackTransport:
    """``chat.postMessage`` through dagster-slack's ``SlackResource`` client (slack_sdk)."""

    def __init__(self, token: str, channel: str, api_url: str, timeout_s: float) -> None:
        from dagster_slack import SlackResource  # slack_sdk only when a Slack target is configured

        hide_in_logs(token)
        self._client = SlackResource(token=token).get_client()
        self._client.base_url = api_url  # Slack's own by default; GovSlack or a test double otherwise
        self._client.timeout = max(1, round(timeout_s))
        self._channel, self._secret = channel, token

    def send(self, event: Mapping[str, Any]) -> None:
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            self._client.chat_postMessage(channel=self._channel, text=slack_text(event), unfurl_links=False,
                                          unfurl_media=False)
        except SlackApiError as exc:
            status = getattr(exc.response, "status_code", None)
            code = exc.response.get("error") if hasattr(exc.response, "get") else None
            retry_after = _retry_after((getattr(exc.response, "headers", None) or {}).get("Retry-After"))
            raise DeliveryError(redact(f"Slack answered {code or 'an error'} (HTTP {status})", [self._secret]),
                                retry_after) from None
        except SlackClientError as exc:
            raise DeliveryError(f"the Slack request failed ({type(exc).__name__})") from None
        except (TimeoutError, OSError) as exc:  # urllib: refused, unreachable, timed out
            raise DeliveryError(f"cannot reach Slack ({_reason(exc, self._secret)})") from None

    def close(self) -> None:
        pass


def transport_for(target: NotificationTarget, environ: Mapping[str, str] | None = None) -> Transport:
    """The transport of ``target`` with its secret from the environment; DeliveryError naming the
    variable (not its value) when it is not set."""
    environ = os.environ if environ is None else environ
    secret = environ.get(target.secret_env, "").strip()
    if not secret:
        raise DeliveryError(f"environment variable {target.secret_env} is not set (the "
                            f"{target.target_name} target's {'URL' if target.type == 'webhook' else 'token'})")
    if isinstance(target, WebhookTarget):
        if not secret.startswith(("http://", "https://")):
            raise DeliveryError(f"environment variable {target.secret_env} does not hold an http(s) URL")
        return WebhookTransport(secret, target.timeout_s)
    if isinstance(target, SlackTarget):
        return SlackTransport(secret, target.channel, target.api_url, target.timeout_s)
    raise DeliveryError(f"unknown target type {target.type!r}")  # pragma: no cover - config allows none


def target_secrets(targets: list[NotificationTarget], environ: Mapping[str, str] | None = None) -> list[str]:
    """The secret values the targets' environment variables hold (for redaction)."""
    environ = os.environ if environ is None else environ
    return [environ[t.secret_env] for t in targets if environ.get(t.secret_env)]


def _reason(exc: BaseException, secret: str) -> str:
    """A short reason from a network error: the OS's words when there are any, never a URL."""
    node: BaseException | None = exc
    seen: set[int] = set()
    while node is not None and id(node) not in seen:  # the exception and what it was raised from
        seen.add(id(node))
        if isinstance(node, ConnectionRefusedError):
            return "connection refused"
        if isinstance(node, TimeoutError):
            return "timed out"
        if isinstance(node, OSError) and node.strerror:
            return clip_error(redact(node.strerror, [secret])).lower()
        node = node.__cause__ or node.__context__
    text = str(exc)
    if "refused" in text.lower():  # httpx re-raises the OS error as text: "[Errno 111] Connection refused"
        return "connection refused"
    return clip_error(redact(text, [secret])) or type(exc).__name__


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: the regular backoff applies
        return None
