"""Holding a catalog lease for the length of a block: one holder at a time across processes.

The catalog's leases (``Catalog.acquire_lease``) expire, so a holder killed with -9 blocks the
others only until its time to live runs out; while the block runs, a heartbeat thread renews
the lease, so a long holder keeps it. Used by the lake loaders (one writer per Delta table) and
the report service (one version number per report period at a time).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from vault_pipeline.storage.catalog import Catalog

_POLL_S = 0.25


@contextmanager
def held_lease(catalog: Catalog, name: str, holder: str, *, wait_s: float, ttl_s: float,
               busy: Callable[[str | None], Exception]) -> Iterator[None]:
    """Hold lease ``name`` for the block; after ``wait_s`` without it, raise ``busy(holder now)``."""
    deadline = time.monotonic() + wait_s
    while not catalog.acquire_lease(name, holder, ttl_s):
        if time.monotonic() >= deadline:
            raise busy(catalog.lease_holder(name))
        time.sleep(_POLL_S)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(ttl_s / 3):
            catalog.acquire_lease(name, holder, ttl_s)

    beat = threading.Thread(target=heartbeat, name=f"vault-lease-{name}"[:60], daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        catalog.release_lease(name, holder)
