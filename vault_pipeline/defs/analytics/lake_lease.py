"""One loader per Delta table at a time, whatever runs, processes or machines are loading.

Delta appends never conflict with each other, so two runs loading the same hour (a retried
partition next to its original, the schedule next to an API ingest, adjacent hours sharing a
lookback) would both insert and the table would hold every row twice. Loads therefore take a
lease on the table in the catalog, which every deployment shares: a second loader waits for
it (bounded) and fails cleanly, before reading or writing anything, when it cannot get it.
The holder renews the lease from a heartbeat thread while it loads, so a long load keeps it
and a loader killed with -9 blocks the others only until the lease expires.
"""

from __future__ import annotations

import os
import socket

import dagster as dg

from vault_pipeline.storage.catalog import Catalog
from vault_pipeline.storage.leases import held_lease

#: Seconds a lease lives without a heartbeat: how long a killed loader can block the table.
LEASE_TTL_S = float(os.environ.get("VAULT_LAKE_LEASE_TTL_S", "60"))
#: Seconds a loader waits for a busy table before it fails (``VAULT_LAKE_LEASE_WAIT_S``).
LEASE_WAIT_S = float(os.environ.get("VAULT_LAKE_LEASE_WAIT_S", "900"))


class LakeBusyError(dg.Failure):
    """Another loader held the table for longer than this one was willing to wait.

    A Dagster failure that is not retried: the step has already waited its full time for the
    table, so a retry would only wait again. Outside a run it is an ordinary exception."""

    def __init__(self, message: str) -> None:
        super().__init__(description=message, allow_retries=False)


def lease_name(table: str) -> str:
    return f"lake-writer:{table}"


def holder_name(run_id: str) -> str:
    """Who holds a lease: the run, and the process that runs it, so an operator can find it."""
    return f"run {run_id} (pid {os.getpid()} on {socket.gethostname()})"


def exclusive_table_writer(
    catalog: Catalog, table: str, holder: str, *, wait_s: float | None = None, ttl_s: float | None = None,
):
    """Hold the lake-writer lease of ``table`` for the duration of the block."""
    wait_s = LEASE_WAIT_S if wait_s is None else wait_s
    ttl_s = LEASE_TTL_S if ttl_s is None else ttl_s

    def busy(current: str | None) -> LakeBusyError:
        return LakeBusyError(
            f"lake table {table!r} is being loaded by {current or 'another run'}; "
            f"waited {wait_s:g}s (VAULT_LAKE_LEASE_WAIT_S) and wrote nothing: re-run this partition "
            f"once that load has finished (a killed loader's lease expires after {ttl_s:g}s)"
        )

    return held_lease(catalog, lease_name(table), holder, wait_s=wait_s, ttl_s=ttl_s, busy=busy)
