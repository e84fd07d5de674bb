"""How the workflow was started: dry runs read from Snakemake's command line, and the lock of a
killed workflow removed only when its owner is provably gone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.invocation import LOCK_DIR, OWNER_FILE, dry_run, record_owner, remove_stale_lock


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["snakemake", "-n", "--cores", "2"], True),
        (["snakemake", "--dry-run"], True),
        (["snakemake", "--dryrun"], True),
        (["snakemake", "-np", "--config", "overrides=study=smoke"], True),
        (["snakemake", "-pn"], True),
        (["snakemake", "--cores", "2", "-p"], False),
        (["snakemake", "--cores", "all", "--config", "overrides=study.name=n"], False),
        (["snakemake", "-c2", "--unlock"], False),
        (["snakemake", "-s", "n"], False),
    ],
)
def test_a_dry_run_is_read_from_the_command_line(argv, expected) -> None:
    assert dry_run(argv) is expected


def lock(workdir: Path, owner: dict | None) -> Path:
    locks = workdir / LOCK_DIR
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("results/a\n")
    (locks / "0.output.lock").write_text("results/b\n")
    if owner is not None:
        (locks / OWNER_FILE).write_text(json.dumps(owner))
    return locks


def finished_process() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_lock_of_a_process_that_is_gone_is_removed(tmp_path: Path) -> None:
    pid = finished_process()
    locks = lock(tmp_path, {"host": socket.gethostname(), "pid": pid, "started": "1"})
    message = remove_stale_lock(tmp_path)
    assert message == f"removed the lock of a workflow that was killed (process {pid} on {socket.gethostname()} is gone)"
    assert not locks.exists()


def test_a_live_owner_keeps_its_lock(tmp_path: Path) -> None:
    record = lock(tmp_path, None)
    record_owner(tmp_path)  # this process, alive
    owner = json.loads((record / OWNER_FILE).read_text())
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    assert remove_stale_lock(tmp_path) is None and (record / "0.input.lock").exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times come from /proc (Linux)")
def test_a_pid_now_used_by_another_process_does_not_keep_the_lock(tmp_path: Path) -> None:
    locks = lock(tmp_path, {"host": socket.gethostname(), "pid": os.getpid(), "started": "12"})
    assert remove_stale_lock(tmp_path) is not None and not locks.exists()


@pytest.mark.parametrize(
    "owner",
    [None, {"host": "another-node", "pid": 1, "started": None}, {"pid": 1}, "not json"],
    ids=["no owner", "another host", "no host", "unreadable"],
)
def test_a_lock_not_provably_stale_is_left_to_snakemake(tmp_path: Path, owner) -> None:
    if owner == "not json":
        locks = lock(tmp_path, None)
        (locks / OWNER_FILE).write_text("{")
    else:
        locks = lock(tmp_path, owner)
    assert remove_stale_lock(tmp_path) is None and (locks / "0.input.lock").exists()


def test_no_lock_no_message(tmp_path: Path) -> None:
    assert remove_stale_lock(tmp_path) is None
    record_owner(tmp_path)  # --nolock: no lock folder, nothing recorded
    assert not (tmp_path / LOCK_DIR).exists()
