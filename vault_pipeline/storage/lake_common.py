"""What the Delta lake's parts share: errors, result records, names and SQL text.

``DeltaLake`` (storage/lake.py) is put together from its reading, writing (storage/lake_writes.py)
and lifecycle (storage/lake_lifecycle.py) parts; this module holds what more than one of them
uses: ``LakeError``, the stats a merge or a partition replace returns, the table-name and
partition rules, quoting for DataFusion SQL, the writer settings of every Parquet file, and the
commit settings of a lake on S3 (``s3_commit_options``: conditional puts, so concurrent writers
never overwrite each other's commits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import WriterProperties

PARTITION_COLUMNS = ("date", "hour")
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOUR = re.compile(r"^(?:[01]\d|2[0-3])$")
_STRING_TYPES = (pa.string(), pa.large_string(), pa.string_view())




class LakeError(RuntimeError):
    """A lake operation failed; the message names the table and the cause."""


@dataclass(frozen=True, slots=True)
class MergeStats:
    inserted: int
    unchanged: int  # source rows already in the table (or repeated within the source)
    version: int | None  # table version after the merge; None when the table does not exist
    repaired: int = 0  # rows removed first: keys held twice, or keys the load excludes


@dataclass(frozen=True, slots=True)
class ReplaceStats:  # -- marts: replace_partition
    rows: int  # rows the partition holds now
    replaced: int  # rows it held before
    version: int | None  # table version after; None when the table does not exist
    changed: bool  # False: the rows were already there, no version was added


# ZSTD halves the table on disk next to the default Snappy.
_TARGET_FILE_SIZE = 64 * 2**20


def _writer_properties() -> WriterProperties:
    return WriterProperties(max_row_group_size=65_536, compression="ZSTD")


def _ident(name: str) -> str:
    # Names reaching SQL are table names and schema columns, checked against fixed patterns
    # or the table's schema; quoting keeps keywords such as date and hour plain columns.
    return '"' + name.replace('"', '""') + '"'


def _bucket_clause(table: str, schema: pa.Schema, key: str, buckets: int, bucket: int) -> str:
    if key not in schema.names:
        raise LakeError(f"lake table {table!r} has no column {key!r} to slice by")
    digits = [d for d in "0123456789abcdef" if int(d, 16) % buckets == bucket]
    last = f"lower(right({_ident(key)}, 1))"
    clause = f"{last} IN ({', '.join(_literal(d) for d in digits)})"
    if bucket == 0:  # keys not ending in a hex digit still belong to exactly one slice
        others = ", ".join(_literal(d) for d in "0123456789abcdef")
        clause = f"({clause} OR {last} NOT IN ({others}) OR {_ident(key)} IS NULL)"
    return clause


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


# For callers composing ``DeltaLake.sql`` statements.
sql_ident, sql_literal = _ident, _literal


def _partition(table: str, value: tuple[str, str]) -> tuple[str, str]:
    try:
        date, hour = value
    except (TypeError, ValueError):
        raise ValueError(f"partition for lake table {table!r} must be a (date, hour) pair, got {value!r}") from None
    if not (isinstance(date, str) and _DATE.match(date) and isinstance(hour, str) and _HOUR.match(hour)):
        raise ValueError(f"partition for lake table {table!r} must look like ('2026-01-01', '07'), got {value!r}")
    return date, hour


def _widened(batch: pa.RecordBatch, current: pa.Schema, target: pa.Schema) -> pa.RecordBatch:
    """A batch of the table as it was, in the evolved ``target`` schema (new columns null)."""
    batch = pa.Table.from_batches([batch]).select(current.names).cast(current)
    for column in target:
        if column.name not in batch.column_names:
            batch = batch.append_column(column, pa.nulls(batch.num_rows, column.type))
    return pa.RecordBatch.from_pylist([], schema=target) if not batch.num_rows else \
        batch.select(target.names).cast(target).combine_chunks().to_batches()[0]


def _same_rows(a: pa.Table, b: pa.Table) -> bool:
    """The same multiset of rows (marts: a replace with nothing new adds no version)."""
    if a.num_rows != b.num_rows or a.schema != b.schema:
        return False
    return sorted(map(repr, a.to_pylist())) == sorted(map(repr, b.to_pylist()))


def _dedupe(rows: pa.Table, key: str) -> pa.Table:
    """Keep the first row of each key (a lookback window can fetch a record twice)."""
    if pc.count_distinct(rows.column(key)).as_py() == rows.num_rows:
        return rows
    first = (
        rows.select([key])
        .append_column("__row", pa.array(range(rows.num_rows), pa.int64()))
        .group_by(key, use_threads=False)
        .aggregate([("__row", "min")])
        .column("__row_min")
        .combine_chunks()
    )
    return rows.take(first.take(pc.sort_indices(first)))


# -- commits on S3 --------------------------------------------------------------------------
# A Delta commit is the object _delta_log/<version>.json. deltalake 1.x writes it with S3's
# conditional put (If-None-Match: *): of two writers racing for one version, one is answered
# 412 and retries on top of the other's commit (after its conflict check), so no commit is ever
# replaced and the versions stay sequential. delta-rs turns it on for S3 by default today; the
# lake states it, so neither a change of that default nor a stray setting can make commits
# unsafe. Settings come from the storage options and, as delta-rs reads them too, the process
# environment (AWS_*).
SAFE_CONDITIONAL_PUT = "etag"
_CONDITIONAL_PUT_KEYS = ("conditional_put", "aws_conditional_put")


def s3_commit_options(options: dict[str, str], environ: dict[str, str] | None = None) -> dict[str, str]:
    """``options`` for a lake on S3 with safe commits (``conditional_put=etag`` unless given).

    Refused, naming the setting and the fix: a ``conditional_put`` other than ``etag``
    (``disabled`` leaves delta-rs no safe way to commit), ``AWS_S3_ALLOW_UNSAFE_RENAME=true``
    (a request for commits that may overwrite another writer's) and ``AWS_S3_LOCKING_PROVIDER``
    (deltalake 1.x removed the DynamoDB log store and ignores it, so it would only look safe).
    Messages quote names and these values only, never credentials.
    """
    chosen = dict(options)
    given = {key.lower(): ("storage option", key, str(value)) for key, value in chosen.items()}
    from_env = {key.lower(): ("environment variable", key, str(value))
                for key, value in (environ or {}).items() if key.upper().startswith("AWS_")}

    def setting(name: str) -> tuple[str, str, str] | None:
        return given.get(name) or from_env.get(name)

    found = setting("aws_s3_locking_provider")
    if found and found[2].strip():
        where, key, value = found
        raise ValueError(
            f"lake on S3: {where} {key}={value!r} is not supported: deltalake 1.x has no DynamoDB locking "
            f"provider and ignores it; commits are made safe by S3 conditional puts "
            f"(conditional_put={SAFE_CONDITIONAL_PUT}, set by the vault): remove {key}")
    found = setting("aws_s3_allow_unsafe_rename")
    if found and found[2].strip().lower() in ("true", "1", "yes", "on"):
        where, key, value = found
        raise ValueError(
            f"lake on S3: {where} {key}={value!r} asks for commits that can overwrite a concurrent writer's; "
            f"the vault commits with S3 conditional puts (conditional_put={SAFE_CONDITIONAL_PUT}): remove {key}")
    # One setting under two names; the storage options override the environment's.
    source = given if any(name in given for name in _CONDITIONAL_PUT_KEYS) else from_env
    for name in _CONDITIONAL_PUT_KEYS:
        found = source.get(name)
        if found and found[2].strip().lower() != SAFE_CONDITIONAL_PUT:
            where, key, value = found
            raise ValueError(
                f"lake on S3: {where} {key}={value!r} would leave commits without a safe conditional put: "
                f"set {key}={SAFE_CONDITIONAL_PUT} (S3, and S3-compatible stores that honour If-None-Match) "
                f"or remove it")
    if not any(name in given for name in _CONDITIONAL_PUT_KEYS):
        chosen["conditional_put"] = SAFE_CONDITIONAL_PUT
    return chosen
