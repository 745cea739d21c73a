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
