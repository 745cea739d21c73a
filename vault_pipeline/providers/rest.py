"""The REST provider client: pulls one hourly window of records from a provider's HTTP API.

Each response body is handed to landing exactly as received (never re-parsed and re-written),
already framed into record byte ranges, one ``Page`` per HTTP response. The client follows the
provider's pagination (Link header, cursor or page number) with guards against endless
loops, authenticates with a secret read from an environment variable named in ``vault.yaml``,
retries transient failures with bounded, jittered backoff, and reports every failure as a
``ProviderError`` that names the provider, the window, the URL and the cause, never a secret.
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

from vault_pipeline.core.framing import FramedPage, FramingError, frame_records
from vault_pipeline.core.windows import HourWindow, iso_z
from vault_pipeline.providers.base import Page, Provider, ProviderError
from vault_pipeline.providers.config import ProviderConfig

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
    ) -> None:
        super().__init__(config)
        if config.type != "rest" or not config.url:
            raise ValueError(f"RestProvider needs a rest provider with a url, got {config.name!r} ({config.type})")
        self._timeout = httpx.Timeout(config.retry.timeout_s)
        self._owns_client = client is None
        # Redirects are not followed: httpx would forward custom auth headers to another host.
        self._client = client or httpx.Client(timeout=self._timeout, follow_redirects=False)
        self._sleep = sleep
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

        page_number = pagination.start
        if pagination.type == "page":
            url = base_url.copy_merge_params(self._page_params(base_params, page_number))
        else:
            url = base_url.copy_merge_params(base_params)
        # Every cursor / next link seen so far: a provider cycling through them would never end.
        seen: set[str] = {_canonical(url)} if pagination.type == "link_header" else set()
        previous_digest: str | None = None

        for number in range(1, pagination.max_pages + 2):
            if number > pagination.max_pages:
                raise ProviderError(
                    f"{self.describe(window)}: GET {self._safe(url, own_params)}: stopped after "
                    f"pagination.max_pages={pagination.max_pages} pages and the provider still reports more; "
                    f"raise max_pages in vault.yaml if the window really holds that many pages",
                    url=self._safe(url, own_params),
                )
            response = self._send(url, headers, window, number, own_params)
            body = response.content
            framed = self._frame(body, response, url, window, own_params)
            yield Page(
                number=number,
                url=self._safe(url, own_params),
                body=body,
                framed=framed,
                content_type=response.headers.get("content-type"),
            )

            if pagination.type == "none":
                return
            if pagination.type == "link_header":
                target = response.links.get("next", {}).get("url")
                if not target:
                    return
                next_url = url.join(target)
                self._check_next_origin(base_url, next_url, window, own_params)
                marker = _canonical(next_url)
            elif pagination.type == "cursor":
                cursor = self._cursor(framed, url, window, own_params)
                if cursor is None:
                    return
                next_url = base_url.copy_merge_params({**base_params, pagination.param: cursor})
                marker = cursor
            else:  # page
                if not framed.offsets:
                    return
                # A provider that clamps out-of-range page numbers serves its last page forever.
                digest = hashlib.sha256(body).hexdigest()
                if digest == previous_digest:
                    raise ProviderError(
                        f"{self.describe(window)}: GET {self._safe(url, own_params)}: page {page_number} has "
                        f"the same body as the page before; the provider seems to repeat its last page "
                        f"instead of returning an empty one, so paging would never end",
                        url=self._safe(url, own_params),
                    )
                previous_digest = digest
                page_number += 1
                next_url = base_url.copy_merge_params(self._page_params(base_params, page_number))
                marker = str(page_number)
            if marker in seen:
                if pagination.type == "cursor":
                    repeated = f"cursor {marker[:80]!r}{'...' if len(marker) > 80 else ''}"
                else:
                    repeated = f"next link {self._safe(next_url, own_params)}"
                raise ProviderError(
                    f"{self.describe(window)}: GET {self._safe(url, own_params)}: the provider returned a "
                    f"{repeated} it had already returned; paging would loop forever",
                    url=self._safe(url, own_params),
                )
            seen.add(marker)
            url = next_url

    def _page_params(self, base: dict[str, str], page_number: int) -> dict[str, str]:
        pagination = self.config.pagination
        params = {**base, pagination.param: str(page_number)}
        if pagination.size_param and pagination.page_size:
            params[pagination.size_param] = str(pagination.page_size)
        return params

    def _cursor(self, framed: FramedPage, url: httpx.URL, window: HourWindow, own: set[str]) -> str | None:
        field = self.config.pagination.field
        value = _lookup(framed.envelope, field)
        if value is None or value == "" or value is False:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ProviderError(
                f"{self.describe(window)}: GET {self._safe(url, own)}: cursor field {field!r} holds a "
                f"{type(value).__name__}, expected a string or a number",
                url=self._safe(url, own),
            )
        return str(value)

    def _check_next_origin(self, base: httpx.URL, target: httpx.URL, window: HourWindow, own: set[str]) -> None:
        if self.config.auth.type == "none" and self._basic is None:
            return
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            raise ProviderError(
                f"{self.describe(window)}: the next link {self._safe(target, own)} leaves "
                f"{base.scheme}://{base.host}; refusing to send credentials to another origin",
                url=self._safe(target, own),
            )

    # -- one request, with retries --------------------------------------------------------

    def _send(
        self, url: httpx.URL, headers: dict[str, str], window: HourWindow, number: int, own: set[str]
    ) -> httpx.Response:
        retry = self.config.retry
        safe_url = self._safe(url, own)
        where = f"{self.describe(window)}: GET {safe_url}"
        cause = ""
        for attempt in range(1, retry.max_attempts + 1):
            logger.debug("%s (page %d, attempt %d/%d)", where, number, attempt, retry.max_attempts)
            retry_after: float | None = None
            try:
                response = self._client.get(
                    url, headers=headers, auth=self._basic, timeout=self._timeout, follow_redirects=False
                )
            except httpx.UnsupportedProtocol as exc:
                raise ProviderError(f"{where}: {self._scrub(str(exc))}", url=safe_url) from None
            except httpx.TransportError as exc:
                cause = f"{type(exc).__name__}: {self._scrub(str(exc)) or 'no detail'}"
            except httpx.RequestError as exc:  # e.g. a body that fails content decoding
                raise ProviderError(f"{where}: {type(exc).__name__}: {self._scrub(str(exc))}", url=safe_url) from None
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response
                detail = f"HTTP {status} {response.reason_phrase}".rstrip() + self._snippet(response)
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
            return frame_records(body, self.config.records)
        except FramingError as exc:
            content_type = response.headers.get("content-type", "none")
            media = content_type.split(";")[0].strip().lower()
            if "json" in media or media in ("", "none", "text/plain", "application/octet-stream"):
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

    def _snippet(self, response: httpx.Response) -> str:
        # Short JSON/text error bodies usually say what is wrong (a bad parameter); HTML does not.
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not response.content or not ("json" in media or media.startswith("text/plain")):
            return ""
        text = " ".join(response.content[: _SNIPPET_CHARS * 4].decode("utf-8", "replace").split())
        text = self._scrub(text)
        return f": {text[:_SNIPPET_CHARS]}{'...' if len(text) > _SNIPPET_CHARS else ''}"


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
