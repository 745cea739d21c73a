"""Telling whether the process that owns something is still running, and scratch directories
that a crash cannot leak.

A process killed with ``kill -9`` (or by the OOM killer, or a power cut) runs no cleanup, so
whatever it left behind must be recognisable as orphaned by the next run. Ownership is recorded
as a :class:`ProcessStamp`: host, pid, and the kernel's own identity of that process (its start
time in clock ticks since boot, the boot id and the pid namespace), so a pid the kernel has
since handed to another process is not mistaken for the owner. Only Linux exposes all of that
(``/proc``); elsewhere only "is a process with this pid running" can be asked, which is
conservative: a reused pid keeps the leftover until that other process ends, never the reverse.

:func:`claim_work_dir` creates a directory with its owner's stamp inside;
:func:`sweep_stale_work_dirs` removes the ones whose owner is provably gone and never one
whose owner may still be running (another host, another pid namespace, or simply alive);
:func:`own_work_dir` does both around a block of work (landing's snapshot, promotion's workspace).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

_log = logging.getLogger(__name__)

OWNER_FILE = "owner.json"
# A directory is created and its owner file written a few microseconds apart; one without an
# owner file is only taken for a crashed creator's once it is clearly older than that.
UNCLAIMED_GRACE_S = 600.0
# /proc/stat's btime has whole-second resolution (and NTP may nudge it): allowance when a
# process's start is compared with a wall-clock time.
START_TIME_SLACK_S = 2.0
_DELETING = ".deleting-"


@dataclass(frozen=True)
class ProcessStamp:
    """Who owns something: enough to tell that exact process apart from a later one with its pid."""

    pid: int
    host: str
    started_at: float  # wall clock, seconds since the epoch (what the owner reported about itself)
    start_ticks: int | None = None  # /proc/<pid>/stat field 22: exact, unlike the wall clock
    boot_id: str | None = None
    pid_namespace: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ProcessStamp:
        data = json.loads(text)
        return cls(pid=int(data["pid"]), host=str(data["host"]), started_at=float(data["started_at"]),
                   start_ticks=data.get("start_ticks"), boot_id=data.get("boot_id"),
                   pid_namespace=data.get("pid_namespace"))


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _boot_id() -> str | None:
    return _read("/proc/sys/kernel/random/boot_id")


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """Clock ticks after boot at which ``pid`` started; None when unknown or not running."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[19])  # field 22 overall; fields[0] here is field 3
    except (IndexError, ValueError):
        return None


def _boot_time() -> float | None:
    for line in (_read("/proc/stat") or "").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return None


def process_started_at(pid: int) -> float | None:
    """When ``pid``'s current process started (wall clock, ~1 s accuracy); None if unknown or gone."""
    ticks, boot = _start_ticks(pid), _boot_time()
    if ticks is None or boot is None:
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def pid_running(pid: int) -> bool:
    """Whether some process (any user's) has this pid now; a zombie counts as gone."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    state = _read(f"/proc/{pid}/stat")
    if state is not None:
        fields = state[state.rfind(")") + 2:].split()
        if fields and fields[0] in ("Z", "X"):
            return False
    return True


def current_process() -> ProcessStamp:
    pid = os.getpid()
    return ProcessStamp(pid=pid, host=socket.gethostname(), started_at=process_started_at(pid) or time.time(),
                        start_ticks=_start_ticks(pid), boot_id=_boot_id(), pid_namespace=_pid_namespace())


def owner_gone(stamp: ProcessStamp) -> bool:
    """True only when the stamped process provably no longer runs; False when it may."""
    here = current_process()
    if stamp.host != here.host:
        return False  # another machine's process (a shared volume): nothing here can tell
    if stamp.pid_namespace and here.pid_namespace and stamp.pid_namespace != here.pid_namespace:
        return False  # another container on this kernel: its pids are not ours
    if stamp.boot_id and here.boot_id and stamp.boot_id != here.boot_id:
        return True  # the machine rebooted since: every process of then is gone
    if not pid_running(stamp.pid):
        return True
    if stamp.start_ticks is not None:
        ticks = _start_ticks(stamp.pid)
        if ticks is not None and ticks != stamp.start_ticks:
            return True  # the pid was handed to another process
    return False


def process_gone_since(pid: int, seen_at: float) -> bool:
    """True only when no process that was running at ``seen_at`` (wall clock) holds ``pid`` now.

    For owners that recorded just a pid and a time (a Dagster run's engine events): a process
    with that pid which started after ``seen_at`` is a later one that got the pid reused.
    """
    if not pid_running(pid):
        return True
    started = process_started_at(pid)
    return started is not None and started > seen_at + START_TIME_SLACK_S


def claim_work_dir(root: str | os.PathLike[str], prefix: str) -> Path:
    """A new directory ``root/{prefix}-XXXXXXXX`` owned by this process (stamp in ``owner.json``)."""
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=base))
    fd, staged = tempfile.mkstemp(dir=directory, prefix=".owner-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(current_process().to_json())
    os.replace(staged, directory / OWNER_FILE)  # never a half-written owner file
    return directory


def release_work_dir(directory: str | os.PathLike[str]) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def work_dir_owner(directory: str | os.PathLike[str]) -> ProcessStamp | None:
    try:
        return ProcessStamp.from_json((Path(directory) / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _is_stale(directory: Path, now: float) -> bool:
    owner = work_dir_owner(directory)
    if owner is not None:
        return owner_gone(owner)
    try:
        age = now - directory.stat().st_mtime
    except FileNotFoundError:
        return False  # someone else swept it meanwhile
    return age > UNCLAIMED_GRACE_S


def sweep_stale_work_dirs(root: str | os.PathLike[str], prefix: str) -> list[Path]:
    """Remove ``root/{prefix}-*`` directories whose owner is gone; returns the ones removed.

    Each is first renamed out of the way (atomic), so two sweepers never both delete one, and a
    sweeper killed half-way leaves a ``.deleting-*`` directory the next sweep finishes.
    """
    base = Path(root)
    if not base.is_dir():
        return []
    now = time.time()
    removed: list[Path] = []
    for directory in sorted(base.glob(f"{prefix}-*")):
        if not directory.is_dir() or directory.is_symlink() or not _is_stale(directory, now):
            continue
        doomed = base / f"{_DELETING}{directory.name}"
        try:
            directory.rename(doomed)
        except OSError:
            continue  # another sweeper took it (or it vanished)
        shutil.rmtree(doomed, ignore_errors=True)
        removed.append(directory)
    for leftover in base.glob(f"{_DELETING}{prefix}-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return removed


@contextmanager
def own_work_dir(root: str | os.PathLike[str], prefix: str) -> Iterator[Path]:
    """A work directory of this process's own, ``root/{prefix}-XXXXXXXX``, removed when the block
    ends. What earlier runs of the same kind killed with -9 left behind (their ``finally`` never
    ran) is swept first, before this one takes its own share of the disk."""
    for stale in sweep_stale_work_dirs(root, prefix):
        _log.info("removed %s: left by a %s whose process is gone", stale, prefix)
    directory = claim_work_dir(root, prefix)
    try:
        yield directory
    finally:
        release_work_dir(directory)
