"""The push provider: what QA teams and agents pushed for an hour, as the pages of its fetch.

A ``type: push`` provider has no remote end. ``POST /v1/test-runs``, ``POST
/v1/agent-executions`` and ``vault push`` keep each body byte-exact in the vault's inbox
(``inbox/{provider}/YYYY/MM/DD/HH/``) with its ``PushContext``; the hour's run then fetches
from here like from any provider, so landing, validation, indexing, Delta, integrity, the
ledger and promotion treat pushed records as they treat pulled ones. Each pushed body is one
page (stored under ``raw/`` as ``.xml`` for a JUnit report), framed by the same reader that
checked it at the door, in the order the bodies were received.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta

from vault_pipeline.core.layout import inbox_body_key, inbox_prefix
from vault_pipeline.core.pushed_records import (
    EXTENSIONS,
    MEDIA_TYPES,
    PushContext,
    framed_push,
)
from vault_pipeline.core.test_runs import JUnitError
from vault_pipeline.core.windows import HourWindow
from vault_pipeline.providers.base import Page, Provider, ProviderError
from vault_pipeline.providers.config import ProviderConfig
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore

CONTEXT_SUFFIX = ".push.json"


class PushProvider(Provider):
    def __init__(self, config: ProviderConfig, *, store: ObjectStore) -> None:
        super().__init__(config)
        self.store = store

    def pushes(self, window: HourWindow) -> list[PushContext]:
        """Every push of the window's hours, oldest first (then by body digest)."""
        found = []
        hour = window.start.replace(minute=0, second=0, microsecond=0)
        while hour < window.end:
            one = HourWindow(hour, hour + timedelta(hours=1))
            for key in self.store.list(inbox_prefix(self.config.name, one)):
                if key.endswith(CONTEXT_SUFFIX):
                    found.append(PushContext.from_dict(json.loads(self.store.get(key))))
            hour += timedelta(hours=1)
        return sorted(found, key=lambda c: (c.received_at, c.body_sha256))

    def fetch_pages(self, window: HourWindow) -> Iterator[Page]:
        for number, context in enumerate(self.pushes(window), start=1):
            key = body_key(context)
            url = f"push://{self.config.name}/{context.push_id}"
            try:
                body = self.store.get(key)
            except ObjectMissingError:
                raise ProviderError(f"{self.describe(window)}: pushed body {key} is gone from the inbox") from None
            digest = hashlib.sha256(body).hexdigest()
            if digest != context.body_sha256:  # the inbox is not trusted either: what was pushed, or nothing
                raise ProviderError(f"{self.describe(window)}: pushed body {key} was altered in the inbox: it hashes "
                                    f"to sha256:{digest}, not to sha256:{context.body_sha256} as pushed "
                                    f"({context.push_id}); push the report again", url=url, body=body)
            try:
                framed, _run = framed_push(body, context)
            except JUnitError as exc:  # it was read at the door; only a changed body fails here
                raise ProviderError(f"{self.describe(window)}: pushed body {key} can no longer be read: {exc}",
                                    url=url, body=body) from None
            yield Page(number=number, url=url, body=body, framed=framed, content_type=MEDIA_TYPES[context.format],
                       sha256=digest, extension=EXTENSIONS[context.format], context=context.to_dict())


def body_key(context: PushContext) -> str:
    window = HourWindow.for_hour_key(context.hour)
    return inbox_body_key(context.provider, window, context.body_sha256, EXTENSIONS[context.format])
