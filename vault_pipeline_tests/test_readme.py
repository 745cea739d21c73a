"""The README works as written: its quick start and API walk-through run, as printed, after
`make demo`, in a checkout of their own.

The checkout is a fresh directory holding the repository's files (linked, not copied, and the
same `.venv`), so `make demo` writes its `./.vault` there and nothing of the developer's own
vault is touched. Each shell block runs with `bash -euo pipefail`, so a command that fails, or
a `jq -e` that finds the wrong answer, fails the test. The `vault serve` the walk-through
starts is stopped by the block itself; whatever is left of the block's process group is
killed here by its id.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SECTIONS = ("## Quick start", "## API walk-through")
LINKED = ("Makefile", "pyproject.toml", "vault.yaml", "workspace.yaml", "great_expectations", "vault_pipeline", ".venv")


def shell_blocks(section: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(section + "\n")
    end = text.find("\n## ", start + len(section))
    return re.findall(r"```bash\n(.*?)```", text[start : end if end > 0 else None], flags=re.S)


def test_the_readme_has_the_blocks_this_test_runs():
    assert [len(shell_blocks(section)) for section in SECTIONS] == [1, 1]
    assert "make demo" in README.read_text() and "make test" in README.read_text()


def test_every_file_the_readme_links_exists():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text()):
        if "://" not in target:
            assert (REPO / target).exists(), f"README links to {target}, which is not in the repository"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    if not (REPO / ".venv" / "bin" / "vault").exists():
        pytest.fail("run through `make test`, which creates .venv")
    root = tmp_path / "checkout"
    root.mkdir()
    for name in LINKED:
        (root / name).symlink_to(REPO / name)
    return root


def run_block(script: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULT_", "DAGSTER_", "PYTEST_")) and k not in ("VIRTUAL_ENV",)}
    log = cwd / f"block-{abs(hash(script))}.log"
    with log.open("w") as out:  # a file, not a pipe: what ran before a hang is still there to show
        process = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, text=True,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # a `vault serve &` the block did not stop
            except ProcessLookupError:
                pass
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, log.read_text(), "")


def test_the_quick_start_and_the_api_walk_through_run_as_printed(checkout: Path):
    demo = run_block("make demo", checkout, timeout=600)
    assert demo.returncode == 0, demo.stdout[-3000:]
    assert "vault verify: OK" in demo.stdout

    # One shell, as a reader pastes them: the walk-through uses the quick start's activated .venv.
    marker = "echo '=== API walk-through ==='"
    script = "\n".join([shell_blocks("## Quick start")[0], marker, shell_blocks("## API walk-through")[0]])
    session = run_block(script, checkout, timeout=600)
    assert session.returncode == 0, session.stdout[-4000:]
    quick_start, _, walk_through = session.stdout.partition("=== API walk-through ===")
    assert '"clean": true' in quick_start
    assert "Ledger: 0 new entries, 2 unchanged" in quick_start  # the demo's hour again: nothing new
    assert '"state": "completed"' in walk_through and '"records_synced"' in walk_through
    header = re.search(r"x-vault-checksum: sha256:([0-9a-f]{64})", walk_through, flags=re.I)
    assert header and f"{header.group(1)}  .vault/record.json" in walk_through  # served digest = bytes' digest
    assert '"audit_path"' in walk_through and '"leaf_index"' in walk_through
    assert re.search(r"^report rpt_[0-9a-f]{20} version 1 of ", quick_start, flags=re.M)
    assert (checkout / ".vault" / "reports").is_dir() and any((checkout / ".vault" / "reports").glob("*.pdf"))
    assert '{"metric_name":"total_requests","value":' in walk_through
    served = re.findall(r"x-vault-checksum: sha256:([0-9a-f]{64})", walk_through, flags=re.I)[-1]
    assert f"{served}  .vault/report.pdf" in walk_through  # the exported report's bytes are what it names
