"""Every process that imports the vault gets allocators that give memory back between stages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = ("import json, os, vault_pipeline, pyarrow as pa;"
         "print(json.dumps({'pool': pa.default_memory_pool().backend_name,"
         " 'rjem': os.environ.get('_RJEM_MALLOC_CONF')}))")


def _probe(env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("ARROW_DEFAULT_MEMORY_POOL", "_RJEM_MALLOC_CONF")}


def test_importing_the_vault_has_delta_rs_purge_freed_pages_in_the_background():
    found = _probe(_clean_env())
    assert found["pool"] == "mimalloc"  # Arrow's own default, kept (see allocators.py)
    assert "background_thread:true" in found["rjem"] and "dirty_decay_ms:1000" in found["rjem"]


def test_an_operators_own_allocator_settings_win():
    found = _probe(_clean_env() | {"ARROW_DEFAULT_MEMORY_POOL": "jemalloc", "_RJEM_MALLOC_CONF": "narenas:2"})
    assert found == {"pool": "jemalloc", "rjem": "narenas:2"}


FREED = """
import json, vault_pipeline, pyarrow as pa, pyarrow.compute as pc, numpy as np
from vault_pipeline.allocators import return_freed_memory

def resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 // 2**20

before = resident_mb()
# a stage's transient buffers: many mid-sized Arrow results (64 KB each, ~320 MB), which
# mimalloc keeps for reuse when they are freed (large ones it unmaps by itself)
arrays = [pc.add(pa.array(np.arange(8_000, dtype=np.int64)), i) for i in range(5_000)]
held = resident_mb()
del arrays
kept = resident_mb()
return_freed_memory()
print(json.dumps({"before": before, "held": held, "kept": kept, "after": resident_mb()}))
"""


def test_what_a_stage_freed_goes_back_to_the_machine_when_it_ends():
    """Arrow's pool keeps freed segments for reuse; the run's next stage reuses little of them,
    so a stage's end hands them back (a fresh process: nothing else shares the measurement)."""
    done = subprocess.run([sys.executable, "-c", FREED], env=_clean_env(), capture_output=True, text=True,
                          check=True, timeout=120)
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    assert rss["held"] - rss["before"] >= 250  # the buffers were really resident
    assert rss["after"] - rss["before"] <= 60, rss  # and are back with the machine


def test_a_stage_gives_back_what_it_freed_however_it_ends(monkeypatch):
    from vault_pipeline import allocators

    calls = []
    monkeypatch.setattr(allocators, "return_freed_memory", lambda: calls.append("freed"))

    @allocators.returns_freed_memory
    def stage(*, fail: bool) -> str:
        if fail:
            raise ValueError("the stage's own error")
        return "done"

    assert stage(fail=False) == "done" and calls == ["freed"]
    try:
        stage(fail=True)
    except ValueError as exc:
        assert str(exc) == "the stage's own error"
    assert calls == ["freed", "freed"] and stage.__name__ == "stage"
