"""The ObjectStore port: byte-exact, content-addressed object storage.

Raw provider pages, dead-letter bodies, snapshots and reports live here. Keys are validated
(no traversal, no absolute paths) before any backend sees them; a put of an existing key with
identical bytes is a no-op, and a put that would silently change stored bytes is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from vault_pipeline.core.checksums import PREFIX, checksum

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._=:+\-]*(/[A-Za-z0-9_][A-Za-z0-9._=:+\-]*)*$")


class ObjectStoreError(RuntimeError):
    """The object store could not do what was asked; the message names the key and cause."""


class ObjectMissingError(ObjectStoreError):
    pass


class ObjectConflictError(ObjectStoreError):
    """A put would replace different bytes already stored under the same key."""


class InvalidKeyError(ObjectStoreError, ValueError):
    pass


@dataclass(frozen=True, slots=True)
class PutResult:
    key: str
    checksum: str
    size: int
    created: bool  # False when identical bytes were already stored


def validate_key(key: str) -> str:
    if not isinstance(key, str) or len(key) > 1024 or not _SAFE_KEY.match(key) or ".." in key.split("/"):
        raise InvalidKeyError(f"invalid object key {key!r}: use relative '/'-separated names of [A-Za-z0-9._=:+-]")
    return key


class ObjectStore(ABC):
    """Port implemented by LocalObjectStore and S3ObjectStore."""

    def put(self, key: str, data: bytes | memoryview, *, overwrite: bool = False, retain_days: int | None = None,
            known_checksum: str | None = None) -> PutResult:
        """Store ``data`` under ``key``.

        Identical bytes already present: no write, ``created=False``. Different bytes present:
        ObjectConflictError unless ``overwrite`` (used only for derived, re-computable objects
        such as reports; raw objects are never overwritten). ``retain_days`` asks the backend
        to make the new object immutable for that long where it can (S3 Object Lock on a
        bucket that has it; a read-only file locally). ``known_checksum`` is ``checksum(data)``
        when the caller has just computed it from these same bytes (landing names a page by
        its digest), so a page is hashed once, not once per layer.
        """
        validate_key(key)
        digest = known_checksum or checksum(data)
        if self._already_stored(key, len(data), digest, overwrite):
            return PutResult(key, digest, len(data), created=False)
        self._write(key, data, digest)
        if retain_days:
            self._retain(key, retain_days)
        return PutResult(key, digest, len(data), created=True)

    def put_file(self, key: str, path: str | os.PathLike[str], *, overwrite: bool = False,
                 known_checksum: str | None = None) -> PutResult:
        """``put`` of a local file's bytes: a part staged on the vault's own disk (promotion's golden
        records and manifests, 1.4 GB at a million records). The file is given away: a backend
        that keeps objects as local files moves it into place rather than copying it, others
        read it; do not use it after the call. ``known_checksum`` as for ``put``."""
        validate_key(key)
        size = os.path.getsize(path)
        digest = known_checksum or _file_checksum(path)
        if self._already_stored(key, size, digest, overwrite):
            return PutResult(key, digest, size, created=False)
        self._write_file(key, path, digest)
        return PutResult(key, digest, size, created=True)

    def _already_stored(self, key: str, size: int, digest: str, overwrite: bool) -> bool:
        """Whether identical bytes are stored under ``key`` already; refuses a silent change."""
        existing_size = self._size(key)
        if existing_size is None:
            return False
        if existing_size == size and self.digest_of(key)[0] == digest:
            return True
        if not overwrite:
            raise ObjectConflictError(
                f"object {key!r} already exists with different bytes; refusing to overwrite stored data"
            )
        return False

    def _write_file(self, key: str, path: str | os.PathLike[str], digest: str) -> None:
        with open(path, "rb") as handle:
            self._write(key, handle.read(), digest)

    def _retain(self, key: str, days: int) -> None:  # noqa: B027 - backends that can, do
        pass

    def get(self, key: str) -> bytes:
        return self._read(validate_key(key))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        validate_key(key)
        if offset < 0 or length < 0:
            raise ValueError(f"invalid byte range offset={offset} length={length}")
        if length == 0:
            return b""
        return self._read_range(key, offset, length)

    def exists(self, key: str) -> bool:
        return self._size(validate_key(key)) is not None

    def local_path(self, key: str) -> str | None:
        """The object's own file, when this store keeps objects as local files and the object
        is there: a reader that takes a file in pieces (a landing snapshot's row groups) can
        read it instead of holding all its bytes. None otherwise (S3); ``get`` then."""
        validate_key(key)
        return None

    def size(self, key: str) -> int | None:
        return self._size(validate_key(key))

    def digest_of(self, key: str) -> tuple[str, int]:
        """(vault checksum, size) of a stored object, hashed as it is read: an object kept as a
        local file in chunks (a landing snapshot of 5M records is ~420 MB), any other whole.
        ObjectMissingError when there is none."""
        path = self.local_path(key)
        if path is not None:
            try:
                return _file_checksum(path), os.path.getsize(path)
            except FileNotFoundError:
                pass  # removed meanwhile: the backend's own read says so
        data = self.get(key)
        return checksum(data), len(data)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix`` in lexicographic order."""
        if prefix:
            validate_key(prefix.rstrip("/"))
        return self._list(prefix)

    @abstractmethod
    def uri(self, key: str = "") -> str:
        """Where a key (or prefix) lives, as a ``file://`` or ``s3://`` URI."""

    @abstractmethod
    def immutability(self) -> dict[str, object]:
        """What keeps stored objects from being changed, as facts for the retention report:
        ``backend``, ``object_lock`` (bool), ``default_retention`` (e.g. "COMPLIANCE 30 days" or
        None), ``versioning`` and ``retained_objects`` (what ``retain_days`` does here)."""

    @abstractmethod
    def _size(self, key: str) -> int | None: ...

    @abstractmethod
    def _read(self, key: str) -> bytes: ...

    @abstractmethod
    def _read_range(self, key: str, offset: int, length: int) -> bytes: ...

    @abstractmethod
    def _write(self, key: str, data: bytes | memoryview, digest: str) -> None:
        """Store the bytes; ``digest`` is their ``sha256:`` checksum, for backends that send it along."""

    @abstractmethod
    def _list(self, prefix: str) -> Iterator[str]: ...

    def delete(self, key: str) -> None:
        """Remove an object (maintenance and tests only; the pipeline never deletes)."""
        self._delete(validate_key(key))

    @abstractmethod
    def _delete(self, key: str) -> None: ...

    def worker_opener(self) -> Callable[[], ObjectStore] | None:
        """A picklable callable of no arguments that opens an equivalent store in another
        process (what ``vault verify`` hands its worker processes), or None when this one cannot
        be re-opened from a description; the caller closes what the callable opens."""
        return None

    def with_timeout(self, seconds: float) -> ObjectStore:
        """The same store, with every request giving up after ``seconds`` and never retried: what
        a health check (``vault doctor``) uses so an unreachable store answers at once. A local
        directory has nothing to wait for and returns itself."""
        return self

    def server_time(self) -> datetime | None:
        """The store's own clock, for clock-skew checks: a remote store's time as it answers a
        request for the bucket (S3: its Date header); None when the store is on this machine.
        Raises ObjectStoreError when the store cannot be reached."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


def _file_checksum(path: str | os.PathLike[str]) -> str:
    """The vault checksum of a file's bytes, read in chunks (a file of any size in bounded memory)."""
    with open(path, "rb") as handle:
        return PREFIX + hashlib.file_digest(handle, "sha256").hexdigest()
