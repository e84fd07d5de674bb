"""How the workflow was started: a dry run or not, verbose or not, and Snakemake's lock a killed
workflow leaves behind.

Snakemake locks a working directory while a workflow runs (``.snakemake/locks/``), so that a
second workflow on the same results is refused. A workflow killed with SIGKILL (or by a lost
node, or an out-of-memory killer) cannot remove its lock, and the next start fails with
``LockException`` until ``snakemake --unlock``. The workflow records who holds the lock
(:func:`record_owner`, from the Snakefile's ``onstart``: host, process id and that process's
start time) and, when it is started again (:func:`remove_stale_lock`, from ``rules/common.smk``),
removes a lock whose owner ran on this host and is gone. A lock held by a live process, by a
process on another host (a shared file system), or recorded by no one is left to Snakemake: the
second workflow is still refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Iterator, Optional, Sequence

from pipeline.io import write_json_atomic

LOCK_DIR = Path(".snakemake") / "locks"
#: The lock's owner, beside Snakemake's own lock files (which are named ``<n>.input.lock`` and
#: ``<n>.output.lock``; Snakemake removes the whole folder when it unlocks).
OWNER_FILE = "lrstudy-owner.json"


def _start_time(pid: int) -> Optional[str]:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat``, field 22), or
    None where there is no /proc: with the pid it tells a process from a later one given its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    return stat[stat.rfind(")") + 2 :].split()[19]


def _alive(pid: int, started: Optional[str]) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return started is None or _start_time(pid) in (None, started)


def record_owner(workdir: Path = Path(".")) -> None:
    """Record this process as the holder of the working directory's lock."""
    locks = Path(workdir) / LOCK_DIR
    if not locks.is_dir():
        return  # --nolock: no lock to own
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid())}
    write_json_atomic(locks / OWNER_FILE, owner)  # a kill mid-write leaves no half-written owner


def remove_stale_lock(workdir: Path = Path(".")) -> Optional[str]:
    """Remove the lock of a workflow that was killed on this host; returns a line saying so, or
    None when there is no lock or it is not provably stale."""
    locks = Path(workdir) / LOCK_DIR
    if not any(locks.glob("*.lock")):
        return None
    try:
        owner = json.loads((locks / OWNER_FILE).read_text())
        host, pid, started = owner["host"], int(owner["pid"]), owner.get("started")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname() or _alive(pid, started):
        return None
    shutil.rmtree(locks, ignore_errors=True)
    return f"removed the lock of a workflow that was killed (process {pid} on {host} is gone)"


def dry_run(argv: Sequence[str]) -> bool:
    """Whether Snakemake's command line asks for a dry run (``-n``, ``--dry-run``, ``--dryrun``,
    or ``n`` among clustered short flags such as ``-np``). The Snakefile is read before Snakemake
    knows its executor (``workflow.dryrun`` is False then), so the command line is all there is."""
    for argument in argv[1:]:
        if argument in ("--dry-run", "--dryrun"):
            return True
        if argument.startswith("-") and not argument.startswith("--") and argument[1:].isalpha() and "n" in argument[1:]:
            return True
    return False


#: Set to 1 (or true, yes, on) to see TensorFlow's own log lines (``lrstudy --verbose`` sets it).
VERBOSE_ENV = "LRSTUDY_VERBOSE"


def verbose() -> bool:
    """Whether TensorFlow's own log lines were asked for (:data:`VERBOSE_ENV`)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool = True) -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to ``/dev/null`` while the block runs:
    TensorFlow's C++ start-up lines, printed during its import before any log level applies.
    Python's own ``sys.stderr`` is flushed first; exceptions raised in the block still propagate."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
