"""What every provider client yields: byte-exact pages, already framed into records.

Landing stores ``Page.body`` untouched and uses ``Page.framed`` for the record boundaries, so
a body is parsed once per fetch. Failures are ProviderError: the message names the provider,
the window, the URL without secrets and the cause, and carries the body that could not be
used (kept in the dead-letter zone for forensics).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from vault_pipeline.core.framing import FramedPage
from vault_pipeline.core.windows import HourWindow, iso_z
from vault_pipeline.providers.config import ProviderConfig


@dataclass(slots=True)
class Page:
    number: int  # 1-based position within the fetch
    url: str  # the request URL, without any secret
    body: bytes  # exactly as received
    framed: FramedPage
    content_type: str | None = None
    sha256: str | None = None  # hex digest of ``body`` when the provider computed it already
    extension: str = "json"  # of its raw key: "xml" for a pushed JUnit report
    context: dict | None = None  # a pushed body's run (core/pushed_records.PushContext.to_dict)


class ProviderError(RuntimeError):
    def __init__(self, message: str, *, url: str | None = None, body: bytes | None = None, retryable: bool = False):
        super().__init__(message)
        self.url = url
        self.body = body
        self.retryable = retryable


class Provider(ABC):
    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @abstractmethod
    def fetch_pages(self, window: HourWindow) -> Iterator[Page]:
        """Pages of records whose event time falls in ``window``, in provider order."""

    def describe(self, window: HourWindow) -> str:
        return f"provider {self.config.name!r} window {iso_z(window.start)}..{iso_z(window.end)}"

    def close(self) -> None:
        pass
