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
0.51 -> 2.04 s), so that trade is left to the operator (``ARROW_DEFAULT_MEMORY_POOL``).
"""

from __future__ import annotations

import os

SETTINGS = {
    # delta-rs's jemalloc (tikv-jemallocator reads this name): purge dirty pages in a
    # background thread after a second instead of keeping them.
    "_RJEM_MALLOC_CONF": "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0",
}


def apply() -> None:
    for name, value in SETTINGS.items():
        os.environ.setdefault(name, value)
