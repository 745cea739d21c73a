"""LocalObjectStore: the embedded default, a directory under ``$VAULT_HOME/objects``.

Writes go to a temporary file in the same directory and are renamed into place, so a crash
never leaves a half-written object under a real key; a file handed over whole (``put_file``:
promotion's staged parts, in the work directory on the same disk) is renamed from where it is.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore, ObjectStoreError, validate_key


class LocalObjectStore(ObjectStore):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ObjectStoreError(f"object key {key!r} resolves outside the store")
        return path

    def uri(self, key: str = "") -> str:
        return (self.root / key).as_uri() if key else self.root.as_uri() + "/"

    def immutability(self) -> dict[str, object]:
        return {"backend": "local directory", "object_lock": False, "default_retention": None, "versioning": None,
                "retained_objects": "made read-only (mode 0444): a local disk has no retention clock"}

    def local_path(self, key: str) -> str | None:
        path = self._path(validate_key(key))
        return str(path) if path.is_file() else None

    def _size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def _read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectMissingError(f"object {key!r} is missing from {self.root}") from None

    def _read_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            with open(self._path(key), "rb") as handle:
                handle.seek(offset)
                data = handle.read(length)
        except FileNotFoundError:
            raise ObjectMissingError(f"object {key!r} is missing from {self.root}") from None
        if len(data) != length:
            raise ObjectStoreError(f"object {key!r} is shorter than the range {offset}+{length}")
        return data

    def _write(self, key: str, data: bytes | memoryview, digest: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _write_file(self, key: str, path: str | os.PathLike[str], digest: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o600)  # as every other object (mkstemp's mode)
        try:
            os.replace(path, target)  # a rename: the staged bytes become the object, none copied
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            super()._write_file(key, path, digest)  # the work dir is on another filesystem: copy

    def _retain(self, key: str, days: int) -> None:
        # No retention clock on a local disk: read-only is the closest honest equivalent.
        self._path(key).chmod(0o444)

    def _list(self, prefix: str) -> Iterator[str]:
        base = self.root
        start = self._path(prefix.rsplit("/", 1)[0]) if "/" in prefix else base
        keys = []
        for dirpath, _dirnames, filenames in os.walk(start):
            for name in filenames:
                if name.startswith(".tmp-"):
                    continue
                key = Path(dirpath, name).relative_to(base).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def _delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def worker_opener(self) -> Callable[[], LocalObjectStore] | None:
        # The directory is the whole store: another process opens it by its (resolved) root. Only
        # this class itself: a subclass (a test double counting or failing reads) would be
        # re-opened as something else.
        if type(self) is not LocalObjectStore:
            return None
        return functools.partial(LocalObjectStore, self.root)
