"""The landing snapshot: what a partition's landing stored, record by record.

Written once by landing (checksums computed from the bytes as received) and compared later
against what the object store, the catalog and the lake hold. It is a Parquet table of record
spans plus a JSON list of the objects, so it stays compact for a million-record hour and can
be streamed back in batches.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import pyarrow as pa
import pyarrow.parquet as pq

RECORD_SCHEMA = pa.schema(
    [
        ("log_id", pa.string()),
        ("natural_id", pa.string()),
        ("object_key", pa.string()),
        ("offset", pa.int64()),
        ("length", pa.int64()),
        ("checksum", pa.string()),
        ("timestamp", pa.string()),
        ("page", pa.int32()),
    ]
)


@dataclass(frozen=True, slots=True)
class LandedObject:
    key: str
    checksum: str
    size: int
    page: int
    records: int
    source: str  # request URL without secrets
    context: dict | None = None  # a pushed body's run: how its records are read (core/pushed_records.py)


class SnapshotWriter:
    """Accumulates record spans page by page into Parquet row groups, written through to the
    caller's ``sink`` (landing's staging file in the vault's work directory), so an hour's
    snapshot, ~85 bytes a record, is never held while the hour is fetched."""

    def __init__(self, sink: pa.NativeFile) -> None:
        self._writer = pq.ParquetWriter(sink, RECORD_SCHEMA, compression="zstd")
        self.rows = 0

    def add_page(self, columns: dict[str, list | pa.Array]) -> pa.RecordBatch:
        """Append one page's record spans; returns them as the Arrow batch written."""
        batch = pa.RecordBatch.from_pydict(columns, schema=RECORD_SCHEMA)
        if batch.num_rows:
            self._writer.write_batch(batch)
            self.rows += batch.num_rows
        return batch

    def finish(self) -> None:
        """Complete the Parquet file (its footer); the sink stays the caller's to close."""
        self._writer.close()


def _readable(source: bytes | memoryview | pa.NativeFile):
    # Arrow reads the bytes where they are; io.BytesIO would copy them first.
    return pa.BufferReader(pa.py_buffer(source)) if isinstance(source, bytes | bytearray | memoryview) else source


def read_snapshot_batches(source: bytes | memoryview | pa.NativeFile, columns: list[str] | None = None,
                          batch_size: int = 100_000, dictionary: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The snapshot's rows in batches, from its bytes or an open file (read row group by row group).

    ``dictionary`` names columns to read dictionary-encoded (object keys repeat page after page).
    """
    # pre_buffer=False: with Arrow's default the reader caches every row group it has read for
    # as long as it lives (~96 B a record; measured +480 MB at 5M records in each stage that
    # streams the snapshot), so a streaming read held the whole hour after all.
    snapshot = pq.ParquetFile(_readable(source), read_dictionary=dictionary, pre_buffer=False)
    yield from snapshot.iter_batches(batch_size=batch_size, columns=columns)


def snapshot_rows(source: bytes | memoryview | pa.NativeFile) -> int:
    """How many rows the snapshot holds, from its footer (nothing else is read)."""
    return pq.ParquetFile(_readable(source)).metadata.num_rows


def read_snapshot(source: bytes | pa.NativeFile, columns: list[str] | None = None,
                  dictionary: list[str] | None = None) -> pa.Table:
    # Row group by row group: reading the whole file at once kept ~2.5x the table's size in
    # transient buffers (measured: a 157 MB table of 1M rows raised RSS by 400 MB, this by 257).
    snapshot = pq.ParquetFile(_readable(source), read_dictionary=dictionary, pre_buffer=False)
    batches = list(snapshot.iter_batches(batch_size=65_536, columns=columns, use_threads=False))
    schema = snapshot.schema_arrow if columns is None else pa.schema([snapshot.schema_arrow.field(c) for c in columns])
    return pa.Table.from_batches(batches, schema=schema)


def encode_objects(objects: list[LandedObject]) -> bytes:
    # ``context`` only where there is one, so pulled partitions encode as they always have.
    entries = [{k: v for k, v in asdict(o).items() if k != "context" or v is not None} for o in objects]
    return json.dumps(entries, indent=1).encode()


def decode_objects(data: bytes) -> list[LandedObject]:
    return [LandedObject(**entry) for entry in json.loads(data)]
