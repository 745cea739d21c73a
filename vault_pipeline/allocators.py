"""Memory allocator settings for every process that runs the vault's stages.

An hour's stages run one after another in one process, and delta-rs links its own jemalloc
for the Parquet writer of every lake load: with its defaults, freed pages stay with it, and a
load of a 300k-row stream (~380 MB of rows) left ~190 MB resident after the load had finished
(peak 436 MB, 377 MB after; with the setting below 240 MB, returned by jemalloc's background
purge within a second), carried through every later stage of the run. The setting goes through
jemalloc's own environment variable, only where the operator has not set it, before delta-rs
allocates (so this module is imported by ``vault_pipeline/__init__``); worker processes
inherit it. Arrow's pool stays on its default (mimalloc): on jemalloc the peak of a 300k-record
hour fell from 1.31 to 1.15 GB, but the output check's ``take`` calls ran 4x slower (1M rows:
0.51 -> 2.04 s), so that trade is left to the operator (``ARROW_DEFAULT_MEMORY_POOL``); its
eager purge (``MIMALLOC_PURGE_DELAY=0``) was measured too: the output check 6.5 -> 10.2 s.
Instead each heavy stage hands what it freed back when it ends (``returns_freed_memory``):
Arrow's pool keeps freed segments for reuse, and the next stage of the run reused little of
them (1M records: the run's peak 1.82 -> 1.60 GB, nothing slower).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

SETTINGS = {
    # delta-rs's jemalloc (tikv-jemallocator reads this name): purge dirty pages in a
    # background thread after a second instead of keeping them.
    "_RJEM_MALLOC_CONF": "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0",
}


def apply() -> None:
    for name, value in SETTINGS.items():
        os.environ.setdefault(name, value)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` from the process's own symbols (no library search), looked up at
    the first stage's end rather than when the package is imported."""
    import ctypes

    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def return_freed_memory() -> None:
    """Give what the stage that just ended freed back to the machine.

    Arrow's pool (mimalloc) keeps freed segments for reuse, and the next stage of the run reuses
    little of them: a million-record lake load left 750 MB resident, 344 MB after this (a few
    milliseconds). glibc's heap, which holds Python's objects, is trimmed as well."""
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


Params = ParamSpec("Params")
Result = TypeVar("Result")


def returns_freed_memory(stage: Callable[Params, Result]) -> Callable[Params, Result]:
    """A stage of the hourly graph that gives back what it freed when it ends, however it ends:
    the run's stages share one process, so what one keeps every later one carries."""

    @functools.wraps(stage)
    def run(*args: Params.args, **kwargs: Params.kwargs) -> Result:
        try:
            return stage(*args, **kwargs)
        finally:
            return_freed_memory()

    return run
