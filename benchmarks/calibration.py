"""A fixed CPU loop that says how fast the machine is at the moment a benchmark runs.

The shared 2-core machine these figures come from changes speed by up to 2x within an hour,
so a figure means little without the speed it was measured at. The loop is SHA-256 of 1.5 GB
(C code, memory-bound) plus a 50M-term sum (the interpreter): ~1.5 s on a fast phase. The
benchmarks print it before and after their runs; compare figures taken at similar loop times.
"""

from __future__ import annotations

import hashlib
import time


def cpu_loop_seconds() -> float:
    started = time.perf_counter()
    digest, block = hashlib.sha256(), b"x" * (1 << 20)
    for _ in range(1500):
        digest.update(block)
    sum(range(50_000_000))
    return time.perf_counter() - started
