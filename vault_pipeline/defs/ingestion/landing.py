"""Raw landing: fetch a partition's window from its provider and keep every byte as received.

Each response page is stored content-addressed under ``raw/``; its records are located as
byte ranges, checksummed and named (``log_id``) into the landing snapshot. Nothing is indexed
here, so a failure part-way leaves no half-ingested partition: the pages already stored are
harmless (content-addressed, reused by the retry) and an unusable body is kept under ``dlq/``
with a dead letter saying why. A stop request (SIGTERM, SIGINT) while a provider is being read
ends the landing at once as a non-retryable failure: Dagster would otherwise turn the
interrupt into a step retry and start the same slow fetch again instead of stopping.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from vault_pipeline.allocators import returns_freed_memory
from vault_pipeline.core.checksums import PREFIX
from vault_pipeline.core.framing import FramedPage
from vault_pipeline.core.identity import natural_id_from
from vault_pipeline.core.key_fields import KeyFieldsDecoder
from vault_pipeline.core.key_set import count_repeats_in
from vault_pipeline.core.layout import dlq_body_key, raw_key, snapshot_objects_key, snapshot_records_key
from vault_pipeline.core.processes import own_work_dir
from vault_pipeline.core.snapshot import LandedObject, SnapshotWriter, encode_objects, read_snapshot_batches
from vault_pipeline.core.windows import HourWindow, fixed_width_timestamps
from vault_pipeline.providers.base import Provider, ProviderError
from vault_pipeline.storage.catalog import Catalog, DeadLetter, fixed_width_timestamp
from vault_pipeline.storage.object_store import ObjectStore


class LandingError(RuntimeError):
    """The provider could not deliver the window; nothing of this run was indexed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable  # worth another attempt (timeouts, 5xx), unlike a 401 or a malformed body


class LandingInterrupted(LandingError):
    """The process was asked to stop (SIGTERM/SIGINT) while landing; not retried."""


WORK_PREFIX = "landing"  # $VAULT_HOME/work/landing-XXXXXXXX, one per landing under way

_INTERRUPTS = (KeyboardInterrupt, dg.DagsterExecutionInterruptedError)
_INTERRUPTED = threading.Event()


def landing_was_interrupted() -> bool:
    """Whether the latest landing in this process was stopped by SIGTERM/SIGINT (a loop of runs,
    such as ``vault demo``, then stops instead of starting the next partition)."""
    return _INTERRUPTED.is_set()


@dataclass(slots=True)
class LandingSummary:
    pages: int = 0
    records: int = 0
    bytes: int = 0
    new_objects: int = 0
    duplicate_records: int = 0  # same log_id seen twice within this fetch
    missing_time: int = 0
    newest_event: str | None = None
    oldest_event: str | None = None
    objects: list[LandedObject] = field(default_factory=list)


@returns_freed_memory
def land_window(
    *,
    provider: Provider,
    store: ObjectStore,
    catalog: Catalog,
    window: HourWindow,
    partition: str,
    run_id: str,
    work_root: str | os.PathLike[str],
) -> LandingSummary:
    """Land the partition's window. The snapshot is written as the pages arrive into a staging
    file in a directory of this landing's own under ``work_root`` (``$VAULT_HOME/work``), and
    handed to the store whole once every page is stored: memory holds a few pages whatever the
    hour's size (an in-memory snapshot was ~85 bytes a record, 420 MB at 5M records)."""
    with own_work_dir(work_root, WORK_PREFIX) as directory:
        staged = directory / "landing-records.parquet"
        with pa.OSFile(str(staged), "wb") as sink:
            summary = _fetch(provider, store, catalog, window, partition, SnapshotWriter(sink))
        # Counted from the finished snapshot, not from log_ids kept page by page through the fetch
        # (2M records: 150 MB held for the whole loop, and Arrow's distinct count 258 MB more).
        with pa.OSFile(str(staged), "rb") as source:
            summary.duplicate_records = count_repeats_in(
                (batch.column(0) for batch in read_snapshot_batches(source, columns=["log_id"])), summary.records)
        name = provider.config.name
        store.put_file(snapshot_records_key(name, window), staged, overwrite=True)
        store.put(snapshot_objects_key(name, window), encode_objects(summary.objects), overwrite=True)
        return summary


def _fetch(provider: Provider, store: ObjectStore, catalog: Catalog, window: HourWindow, partition: str,
           snapshot: SnapshotWriter) -> LandingSummary:
    """Every page of the fetch window stored, and its records' spans written to ``snapshot``."""
    _INTERRUPTED.clear()
    config = provider.config
    name = config.name
    fetch_window = window.with_lookback(config.lookback_hours)
    keys = KeyFieldsDecoder(config.natural_id_field, config.event_time_field)
    summary = LandingSummary()
    # Storing a page and encoding its snapshot rows run on one background thread (file and
    # network writes, SHA-256 of a whole page and Parquet encoding release the GIL) while the
    # next page is fetched and framed. Single worker: pages reach the snapshot in order. At
    # most _IN_FLIGHT pages wait, so memory stays bounded by a few pages.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vault-landing") as sink:
        in_flight: deque[Future] = deque()
        fetched = 0
        try:
            for page in provider.fetch_pages(fetch_window):
                fetched += 1
                body = page.body
                digest = page.sha256 or hashlib.sha256(body).hexdigest()
                key = raw_key(name, window, digest, page.extension)
                columns = _frame_columns(name, key, page.number, body, page.framed, keys, summary)
                in_flight.append(sink.submit(_store_page, store, snapshot, key, PREFIX + digest, page, columns))
                while len(in_flight) > _IN_FLIGHT:
                    _collect(in_flight.popleft().result(), summary)
        except ProviderError as exc:
            _drain(in_flight)
            _keep_unusable_body(exc, store, catalog, window, partition, name)
            raise LandingError(str(exc), retryable=exc.retryable) from exc
        except _INTERRUPTS:
            _INTERRUPTED.set()
            _drain(in_flight)
            raise LandingInterrupted(
                f"{provider.describe(fetch_window)}: interrupted (SIGTERM/SIGINT) while fetching page {fetched + 1}; "
                f"the fetch was stopped at once and nothing of this run was indexed. Materialize the partition "
                f"again to land it",
                retryable=False,
            ) from None
        except BaseException:
            _drain(in_flight)
            raise
        while in_flight:
            _collect(in_flight.popleft().result(), summary)
    summary.records = snapshot.rows
    snapshot.finish()
    return summary


_IN_FLIGHT = 2


def _store_page(store: ObjectStore, snapshot: SnapshotWriter, key: str, digest: str, page,
                columns) -> tuple[LandedObject, bool]:
    stored = store.put(key, page.body, known_checksum=digest)
    snapshot.add_page(columns)
    landed = LandedObject(key, stored.checksum, len(page.body), page.number, len(page.framed), page.url, page.context)
    return landed, stored.created


def _collect(stored: tuple[LandedObject, bool], summary: LandingSummary) -> None:
    landed, created = stored
    summary.objects.append(landed)
    summary.pages += 1
    summary.bytes += landed.size
    summary.new_objects += int(created)


def _drain(in_flight: deque[Future]) -> None:
    """Let pages already handed to the sink finish (they are harmless, content-addressed) before
    the failure is reported, so no write is still running when the step ends."""
    for future in in_flight:
        future.exception()
    in_flight.clear()


def _frame_columns(name, key, page_number, body, framed: FramedPage, keys, summary) -> dict[str, list | pa.Array]:
    sha256, decode, view = hashlib.sha256, keys.decode, memoryview(body)
    id_prefix = f"{name}\x1f"
    log_ids, natural_ids, checksums, times = [], [], [], []
    named, dated = framed.natural_ids, framed.event_times  # a pushed body names and dates its records
    for index, (offset, length) in enumerate(zip(framed.offsets, framed.lengths, strict=True)):
        data = view[offset : offset + length]
        record_checksum = PREFIX + sha256(data).hexdigest()
        if named is None:
            natural_value, time_value, _is_object = decode(data)
            natural_id = natural_id_from(natural_value, record_checksum)
        else:
            natural_id, time_value = named[index], dated[index]
        # log_id_for, inlined: this loop runs once per record of the hour.
        log_ids.append("log_" + sha256((id_prefix + natural_id).encode("utf-8", "surrogatepass")).hexdigest()[:32])
        natural_ids.append(natural_id)
        checksums.append(record_checksum)
        times.append(time_value)
    # Event times are parsed and formatted for the whole page at once (Arrow, in C).
    timestamps = fixed_width_timestamps(times)
    summary.missing_time += timestamps.null_count
    if timestamps.null_count < len(timestamps):
        bounds = pc.min_max(timestamps)
        oldest, newest = bounds["min"].as_py(), bounds["max"].as_py()
        if summary.newest_event is None or newest > summary.newest_event:
            summary.newest_event = newest
        if summary.oldest_event is None or oldest < summary.oldest_event:
            summary.oldest_event = oldest
    count = len(log_ids)
    return {
        "log_id": log_ids, "natural_id": natural_ids, "object_key": [key] * count, "offset": framed.offsets,
        "length": framed.lengths, "checksum": checksums, "timestamp": timestamps, "page": [page_number] * count,
    }


def _keep_unusable_body(exc: ProviderError, store, catalog, window, partition, name) -> None:
    """Keep a body that could not be used, for forensics, and say why in a dead letter."""
    body = exc.body
    key = None
    if body is not None:
        digest = hashlib.sha256(body).hexdigest()
        key = dlq_body_key(name, window, digest)
        store.put(key, body)
    identity = hashlib.sha256(f"landing|{partition}|{key or exc}".encode()).hexdigest()[:32]
    catalog.add_dead_letters(
        [
            DeadLetter(
                dead_letter_id=f"dl_{identity}",
                provider=name,
                partition=partition,
                stage="landing",
                reason=str(exc),
                object_key=key,
                length=len(body) if body is not None else None,
                offset=0 if body is not None else None,
                created_at=fixed_width_timestamp(datetime.now(UTC)),
                detail={"url": exc.url, "retryable": exc.retryable},
            )
        ]
    )
