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


def test_importing_the_vault_puts_arrow_on_jemalloc_and_has_delta_rs_purge_in_the_background():
    found = _probe(_clean_env())
    assert found["pool"] == "jemalloc"
    assert "background_thread:true" in found["rjem"]


def test_an_operators_own_allocator_settings_win():
    found = _probe(_clean_env() | {"ARROW_DEFAULT_MEMORY_POOL": "system", "_RJEM_MALLOC_CONF": "narenas:2"})
    assert found == {"pool": "system", "rjem": "narenas:2"}
