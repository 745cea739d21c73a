"""The REST provider client: pulls one hourly window of records from a provider's HTTP API.

Each response body is handed to landing exactly as received (never re-parsed and re-written),
already framed into record byte ranges, one ``Page`` per HTTP response. The client follows the
provider's pagination (Link header, cursor or page number) with guards against endless
loops (a cursor, next link or whole body seen before), stays on the provider's origin unless
``allowed_hosts`` says otherwise, authenticates with a secret read from an environment
variable named in ``vault.yaml``, retries transient failures with bounded, jittered backoff,
and reports every failure as a ``ProviderError`` that names the provider, the window, the URL
and the cause, never a secret. What one response may cost is bounded: wall-clock for the
whole response (``response_timeout_s``, enforced at the socket), size
(``max_response_bytes``) and nesting (``max_nesting_depth``).
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

import httpx

from vault_pipeline.core.framing import AmbiguousBodyError, FramedPage, FramingError, NestingTooDeepError, frame_records
from vault_pipeline.core.windows import HourWindow, iso_z
from vault_pipeline.providers.base import Page, Provider, ProviderError
from vault_pipeline.providers.config import MAX_NESTING_DEPTH, ProviderConfig
from vault_pipeline.providers.deadline import DeadlineBackend, deadline_transport

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "vault_pipeline (audit-data vault)"
_SNIPPET_CHARS = 200
# Names of query parameters whose values are redacted in messages and logs unless the vault
# itself set them (window, cursor, page): a URL pasted into vault.yaml or a provider's next
# link may carry a credential.
_SECRET_NAME = r"[\w.-]*(?:token|secret|passw|signature|api_?key|access_?key|authorization|credential)[\w.-]*|sig|key|auth"
_SENSITIVE_PARAM = re.compile(rf"(?:{_SECRET_NAME})", re.IGNORECASE)
_URL_SECRET_PARAM = re.compile(rf"([?&](?:{_SECRET_NAME})=)[^&#\s\"']*", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?<=//)[^/@\s]+@")


class _RedactUrlCredentials(logging.Filter):
    """httpx logs every request URL at INFO; keep credentials a URL may carry out of that log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _URL_SECRET_PARAM.sub(r"\1REDACTED", _URL_USERINFO.sub("REDACTED@", message))
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_httpx_logger = logging.getLogger("httpx")
if not any(isinstance(f, _RedactUrlCredentials) for f in _httpx_logger.filters):
    _httpx_logger.addFilter(_RedactUrlCredentials())


class RestProvider(Provider):
    def __init__(
        self,
        config: ProviderConfig,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config)
        if config.type != "rest" or not config.url:
            raise ValueError(f"RestProvider needs a rest provider with a url, got {config.name!r} ({config.type})")
        self._timeout = httpx.Timeout(config.retry.timeout_s)
        self._owns_client = client is None
        # Every socket wait of a response is cut to what is left of response_timeout_s (an
        # injected client keeps its own transport; the deadline is then checked per chunk).
        self._backend = DeadlineBackend()
        # Redirects are not followed: httpx would forward custom auth headers to another host.
        self._client = client or httpx.Client(
            timeout=self._timeout, follow_redirects=False, transport=deadline_transport(self._backend)
        )
        self._sleep = sleep
        self._clock = clock
        self._env = env if env is not None else os.environ
        self._secrets: list[str] = []
        # user:password in the configured URL becomes Basic auth, so the URL httpx sees (and
        # logs) carries no credentials.
        url = httpx.URL(config.url)
        self._base_url = url.copy_with(userinfo=b"") if url.userinfo else url
        self._basic = httpx.BasicAuth(url.username, url.password) if url.userinfo else None

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # -- fetching -------------------------------------------------------------------------

    def fetch_pages(self, window: HourWindow) -> Iterator[Page]:
        """One ``Page`` per response. For page-number pagination the final empty page is
        yielded too: it is the provider's own statement that the window holds no more."""
        cfg = self.config
        pagination = cfg.pagination
        headers = self._headers(window)
        base_url = self._base_url
        base_params = {cfg.window_params.start: iso_z(window.start), cfg.window_params.end: iso_z(window.end)}
        own_params = set(base_params) | {pagination.param, pagination.size_param} - {None}

        if pagination.type == "page":
            url = base_url.copy_merge_params(self._page_params(base_params, pagination.start))
        else:
            url = base_url.copy_merge_params(base_params)
        # Every cursor / next link seen so far: a provider cycling through them would never end.
        seen: set[str] = {_canonical(url)} if pagination.type == "link_header" else set()
        # SHA-256 of every body so far -> its page number: a provider serving the same page
        # again (whatever URL or cursor it came with) would page forever too.
        bodies: dict[str, int] = {}

        for number in range(1, pagination.max_pages + 2):
            if number > pagination.max_pages:
                raise ProviderError(
                    f"{self.describe(window)}: GET {self._safe(url, own_params)}: stopped after "
                    f"pagination.max_pages={pagination.max_pages} pages and the provider still reports more; "
                    f"raise max_pages in vault.yaml if the window really holds that many pages",
                    url=self._safe(url, own_params),
                )
            response, body = self._send(url, headers, window, number, own_params)
            framed = self._frame(body, response, url, window, own_params)
            digest = hashlib.sha256(body).hexdigest()
            next_url, marker = self._next(response, body, framed, url, number, base_url, base_params, window, own_params)
            if marker is not None and marker in seen:
                if pagination.type == "cursor":
                    repeated = f"cursor {marker[:80]!r}{'...' if len(marker) > 80 else ''}"
                else:
                    repeated = f"next link {self._safe(next_url, own_params)}"
                raise ProviderError(
                    f"{self.describe(window)}: GET {self._safe(url, own_params)}: page {number}: the provider "
                    f"returned a {repeated} it had already returned; paging would loop forever",
                    url=self._safe(url, own_params),
                )
            if digest in bodies:
                raise ProviderError(
                    f"{self.describe(window)}: GET {self._safe(url, own_params)}: page {number} has the same body "
                    f"(sha256 {digest[:16]}...) as page {bodies[digest]} of this fetch: the provider repeats itself "
                    f"instead of moving on, so paging would never end (stopped at page {number})",
                    url=self._safe(url, own_params),
                )
            yield Page(
                number=number,
                url=self._safe(url, own_params),
                body=body,
                framed=framed,
                content_type=response.headers.get("content-type"),
                sha256=digest,
            )
            if next_url is None:
                return
            seen.add(marker)
            bodies.setdefault(digest, number)
            url = next_url

    def _next(self, response: httpx.Response, body: bytes, framed: FramedPage, url: httpx.URL, number: int,
              base_url: httpx.URL, base_params: dict[str, str], window: HourWindow,
              own: set[str]) -> tuple[httpx.URL | None, str | None]:
        """The next page's URL and what identifies it for loop detection; (None, None) after the last."""
        pagination = self.config.pagination
        if pagination.type == "link_header":
            target = response.links.get("next", {}).get("url")
            if not target:
                return None, None
            next_url = url.join(target)
            self._check_next_origin(base_url, next_url, window, own)
            return next_url, _canonical(next_url)
        if pagination.type == "cursor":
            cursor = self._cursor(framed, body, url, window, own)
            if cursor is None:
                return None, None
            return base_url.copy_merge_params({**base_params, pagination.param: cursor}), cursor
        if pagination.type == "page" and framed.offsets:
            page_number = pagination.start + number
            return base_url.copy_merge_params(self._page_params(base_params, page_number)), str(page_number)
        return None, None

    def _page_params(self, base: dict[str, str], page_number: int) -> dict[str, str]:
        pagination = self.config.pagination
        params = {**base, pagination.param: str(page_number)}
        if pagination.size_param and pagination.page_size:
            params[pagination.size_param] = str(pagination.page_size)
        return params

    def _cursor(self, framed: FramedPage, body: bytes, url: httpx.URL, window: HourWindow, own: set[str]) -> str | None:
        field = self.config.pagination.field
        value = _lookup(framed.envelope, field)
        if value is None or value == "" or value is False:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ProviderError(
                f"{self.describe(window)}: GET {self._safe(url, own)}: cursor field {field!r} holds a "
                f"{type(value).__name__}, expected a string or a number ({len(body)} bytes kept)",
                url=self._safe(url, own),
                body=body,
            )
        return str(value)

    def _check_next_origin(self, base: httpx.URL, target: httpx.URL, window: HourWindow, own: set[str]) -> None:
        """Paging stays on the configured url's origin (scheme, host, port), credentials or not,
        unless ``allowed_hosts`` names the link's host; never from https down to http."""
        if (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port):
            return
        if target.scheme in ("https", base.scheme) and _host_allowed(target, self.config.allowed_hosts):
            return
        allowed = f" (allowed_hosts: {', '.join(self.config.allowed_hosts)})" if self.config.allowed_hosts else ""
        raise ProviderError(
            f"{self.describe(window)}: the next link {self._safe(target, own)} leads to another origin than "
            f"{_origin(base)}, the origin of the provider's url{allowed}; refusing to follow it (nothing, and no "
            f"credential, is sent there). If the provider really pages across hosts, add the host to "
            f"allowed_hosts of this provider in vault.yaml",
            url=self._safe(target, own),
        )

    # -- one request, with retries --------------------------------------------------------

    def _send(
        self, url: httpx.URL, headers: dict[str, str], window: HourWindow, number: int, own: set[str]
    ) -> tuple[httpx.Response, bytes]:
        retry = self.config.retry
        safe_url = self._safe(url, own)
        where = f"{self.describe(window)}: GET {safe_url}"
        cause = ""
        for attempt in range(1, retry.max_attempts + 1):
            logger.debug("%s (page %d, attempt %d/%d)", where, number, attempt, retry.max_attempts)
            retry_after: float | None = None
            received = [0]  # body bytes read so far, for the message when the deadline cuts in
            started = self._clock()
            try:
                with self._backend.deadline(self.config.response_timeout_s) as socket_deadline:
                    response, body = self._receive(url, headers, where, safe_url, started, received)
            except _DeadlinePassed:
                cause = self._deadline_cause(received[0])
            except httpx.UnsupportedProtocol as exc:
                raise ProviderError(f"{where}: {self._scrub(str(exc))}", url=safe_url) from None
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.TimeoutException) and time.monotonic() >= socket_deadline - 0.01:
                    cause = self._deadline_cause(received[0])
                else:
                    cause = f"{type(exc).__name__}: {self._scrub(str(exc)) or 'no detail'}"
            except httpx.RequestError as exc:  # e.g. a body that fails content decoding
                raise ProviderError(f"{where}: {type(exc).__name__}: {self._scrub(str(exc))}", url=safe_url) from None
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response, body
                detail = f"HTTP {status} {response.reason_phrase}".rstrip() + self._snippet(response, body)
                if status in RETRYABLE_STATUS:
                    cause = detail
                    retry_after = _retry_after(response.headers.get("retry-after"))
                else:
                    raise ProviderError(f"{where}: {self._explain_status(status, detail)}", url=safe_url)
            if attempt == retry.max_attempts:
                break
            if retry_after is not None:
                delay = max(0.0, min(retry_after, retry.backoff_max_s * 4))
            else:
                delay = min(retry.backoff_max_s, retry.backoff_base_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            logger.warning(
                "%s failed (%s), attempt %d/%d; retrying in %.2fs", where, cause, attempt, retry.max_attempts, delay
            )
            self._sleep(delay)
        raise ProviderError(
            f"{where}: gave up after {retry.max_attempts} attempt(s); last cause: {cause}",
            url=safe_url,
            retryable=True,
        )

    def _receive(self, url: httpx.URL, headers: dict[str, str], where: str, safe_url: str, started: float,
                 received: list[int]) -> tuple[httpx.Response, bytes]:
        """One response and its whole body, within response_timeout_s and max_response_bytes."""
        limit = self.config.max_response_bytes
        deadline = started + self.config.response_timeout_s
        request = self._client.build_request("GET", url, headers=headers, timeout=self._timeout)
        response = self._client.send(request, auth=self._basic, follow_redirects=False, stream=True)
        try:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise ProviderError(f"{where}: {self._too_large(f'announces {int(declared)} bytes')}", url=safe_url)
            chunks = []
            for chunk in response.iter_bytes():
                received[0] += len(chunk)
                if received[0] > limit:
                    raise ProviderError(f"{where}: {self._too_large(f'sent more than {limit} bytes')}", url=safe_url)
                chunks.append(chunk)
                if self._clock() > deadline:
                    raise _DeadlinePassed
        finally:
            response.close()
        return response, b"".join(chunks)

    def _deadline_cause(self, received: int) -> str:
        return (
            f"the response did not complete within response_timeout_s={self.config.response_timeout_s:g} s "
            f"({received} body bytes received); the provider is too slow or stalls, raise response_timeout_s "
            f"in vault.yaml only if it is really that slow"
        )

    def _too_large(self, what: str) -> str:
        return (
            f"the response {what}, over max_response_bytes={self.config.max_response_bytes}; nothing of it was kept. "
            f"Ask the provider for smaller pages (pagination page_size) or raise max_response_bytes in vault.yaml"
        )

    def _explain_status(self, status: int, detail: str) -> str:
        if status in (401, 403):
            variable = self.config.auth.secret_env()
            if variable:
                return f"credentials rejected ({detail}); check the environment variable {variable}"
            return f"credentials rejected ({detail}); the provider has no auth configured in vault.yaml"
        if 300 <= status < 400:
            return f"{detail}; redirects are not followed, put the final URL in vault.yaml"
        return detail

    def _frame(
        self, body: bytes, response: httpx.Response, url: httpx.URL, window: HourWindow, own: set[str]
    ) -> FramedPage:
        try:
            return frame_records(body, self.config.records, max_depth=self.config.max_nesting_depth)
        except FramingError as exc:
            content_type = response.headers.get("content-type", "none")
            media = content_type.split(";")[0].strip().lower()
            if isinstance(exc, NestingTooDeepError):
                cause = (
                    f"{exc}; refused (not retried). max_nesting_depth in vault.yaml may be lowered, not raised "
                    f"above {MAX_NESTING_DEPTH}: every later stage must be able to walk the records"
                )
            elif isinstance(exc, AmbiguousBodyError):
                cause = f"{exc}; refused (not retried): ask the provider to send each member once"
            elif "json" in media or media in ("", "none", "text/plain", "application/octet-stream"):
                cause = f"response is not the configured JSON shape (records: {self.config.records!r}): {exc}"
            else:
                cause = f"response is not JSON (content-type {media})"
            raise ProviderError(
                f"{self.describe(window)}: GET {self._safe(url, own)}: {self._scrub(cause)} ({len(body)} bytes kept)",
                url=self._safe(url, own),
                body=body,
            ) from None

    # -- secrets --------------------------------------------------------------------------

    def _headers(self, window: HourWindow) -> dict[str, str]:
        # Read at every fetch, not at construction, so a rotated token is picked up.
        auth = self.config.auth
        accept = "application/x-ndjson, application/json" if self.config.records == "ndjson" else "application/json"
        headers = {"User-Agent": USER_AGENT, "Accept": accept, **self.config.headers}
        secrets = []
        if self._basic is not None and auth.type != "none":
            # Basic auth would silently replace the configured Authorization header.
            raise ProviderError(
                f"{self.describe(window)}: the url in vault.yaml carries user:password and auth.{auth.type} "
                f"is configured too; use one (preferably auth, with the secret in an environment variable)"
            )
        if auth.type != "none":
            variable = auth.secret_env()
            value = self._env.get(variable or "", "")
            if not value.strip():
                raise ProviderError(
                    f"{self.describe(window)}: the environment variable {variable} (auth.{auth.type} in vault.yaml) "
                    f"is not set or empty"
                )
            secrets.append(value)
            if auth.type == "bearer":
                headers["Authorization"] = f"Bearer {value}"
            else:
                headers[auth.name] = value
        password = httpx.URL(self.config.url).password
        if password:
            secrets.append(password)
        self._secrets = secrets
        return headers

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "REDACTED")
        return text

    def _safe(self, url: httpx.URL, own: set[str]) -> str:
        """The URL as it may appear in messages: no userinfo, no credential-like parameters."""
        if url.userinfo:
            url = url.copy_with(userinfo=b"REDACTED")
        items = url.params.multi_items()
        if any(_SENSITIVE_PARAM.fullmatch(k) and k not in own for k, _ in items):
            url = url.copy_with(
                params=[(k, "REDACTED" if _SENSITIVE_PARAM.fullmatch(k) and k not in own else v) for k, v in items]
            )
        return self._scrub(str(url))

    def _snippet(self, response: httpx.Response, body: bytes) -> str:
        # Short JSON/text error bodies usually say what is wrong (a bad parameter); HTML does not.
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not body or not ("json" in media or media.startswith("text/plain")):
            return ""
        text = " ".join(body[: _SNIPPET_CHARS * 4].decode("utf-8", "replace").split())
        text = self._scrub(text)
        return f": {text[:_SNIPPET_CHARS]}{'...' if len(text) > _SNIPPET_CHARS else ''}"


class _DeadlinePassed(Exception):
    """response_timeout_s passed while the body was still arriving."""


def _origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"


def _host_allowed(target: httpx.URL, allowed: list[str]) -> bool:
    """``host`` entries allow the link's scheme's default port, ``host:port`` entries that port."""
    default = 443 if target.scheme == "https" else 80
    for entry in allowed:
        host, port = entry, default
        if ":" in entry and not entry.endswith("]"):  # host:port or [v6]:port, not a bare [v6]
            host, _, digits = entry.rpartition(":")
            port = int(digits)
        if host.strip("[]") == target.host.lower() and port == (target.port or default):
            return True
    return False


def _canonical(url: httpx.URL) -> str:
    """A next link as compared for repeats: escaping and parameter order do not matter."""
    params = sorted(url.params.multi_items())
    return f"{url.scheme}://{url.host}:{url.port}{url.path}?{params}"


def _lookup(envelope: dict, field: str | None) -> object:
    """``envelope[field]``; a dotted field (``meta.next``) reaches into nested objects."""
    if not field:
        return None
    if field in envelope:
        return envelope[field]
    value: object = envelope
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) else None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime.now(UTC)).total_seconds()
