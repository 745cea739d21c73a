"""Reading a landed partition back: its snapshot rows joined with their stored bytes.

Every stage after landing (validation, indexing, normalisation, integrity) walks the
partition through this reader, in snapshot batches, so memory stays bounded by a batch and
one stored page, however large the hour is.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from vault_pipeline.core.layout import snapshot_objects_key, snapshot_records_key
from vault_pipeline.core.pushed_records import AGENT, PushContext, derived_records
from vault_pipeline.core.snapshot import LandedObject, decode_objects, read_snapshot, read_snapshot_batches, snapshot_rows
from vault_pipeline.core.test_runs import JUnitError
from vault_pipeline.core.windows import HourWindow
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore


class NotLandedError(RuntimeError):
    """The partition has no landing snapshot: materialize raw_landing first."""


class LandedPartition:
    def __init__(self, store: ObjectStore, provider: str, window: HourWindow) -> None:
        self.store, self.provider, self.window = store, provider, window
        key = snapshot_records_key(provider, window)
        try:
            # A local snapshot is read from its file, row group by row group, through one open
            # handle (the file as it was when this reader opened it, even if a re-run replaces
            # it): holding its bytes cost ~85 B a record for as long as the stage ran.
            path = store.local_path(key)
            self._snapshot: bytes | pa.NativeFile = pa.OSFile(path) if path else store.get(key)
            self.objects: list[LandedObject] = decode_objects(store.get(snapshot_objects_key(provider, window)))
        except (ObjectMissingError, FileNotFoundError):
            raise NotLandedError(
                f"partition {window.hour_key}|{provider} has not been landed (no snapshot); materialize raw_landing first"
            ) from None

    def row_count(self) -> int:
        """How many rows the landing snapshot holds (one per record fetched, repeats included)."""
        return snapshot_rows(self._snapshot)

    def record_batches(self, batch_size: int = 100_000, columns: list[str] | None = None,
                       dictionary: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """The snapshot as Arrow batches, for stages that work column-wise."""
        yield from read_snapshot_batches(self._snapshot, columns=columns, batch_size=batch_size, dictionary=dictionary)

    def with_bytes_of(self, batch: pa.RecordBatch) -> Iterator[memoryview]:
        """The record bytes of each row of a snapshot batch (zero-copy views of each stored page)."""
        current_key, current = None, memoryview(b"")
        for key, offset, length in zip(
            batch.column("object_key").to_pylist(), batch.column("offset").to_pylist(),
            batch.column("length").to_pylist(), strict=True,
        ):
            if key != current_key:
                current_key, current = key, memoryview(self.store.get(key))
            yield current[offset : offset + length]

    def records_of(self, batch: pa.RecordBatch) -> Iterator[bytes | memoryview]:
        """What validation and normalisation read for each row: the record's own bytes, or for a
        pushed test run each case as its ``test_result`` JSON record (core/pushed_records.py);
        the stored bytes stay as they were sent either way."""
        contexts = {o.key: o.context for o in self.objects if o.context and o.context.get("format") != AGENT}
        if not contexts:
            yield from self.with_bytes_of(batch)
            return
        current_key, current, derived = None, memoryview(b""), None
        for key, offset, length in zip(
            batch.column("object_key").to_pylist(), batch.column("offset").to_pylist(),
            batch.column("length").to_pylist(), strict=True,
        ):
            if key != current_key:
                current_key, current = key, memoryview(self.store.get(key))
                context = contexts.get(key)
                try:
                    derived = derived_records(bytes(current), PushContext.from_dict(context)) if context else None
                except JUnitError:  # altered since it landed: its own bytes then fail validation
                    derived = None
            if derived is not None and offset in derived:
                yield derived[offset]
            else:
                yield current[offset : offset + length]

    def snapshot_table(self, columns: list[str] | None = None, dictionary: list[str] | None = None) -> pa.Table:
        """The whole snapshot (or some columns); ``dictionary`` columns come back dictionary-encoded."""
        return read_snapshot(self._snapshot, columns, dictionary)
