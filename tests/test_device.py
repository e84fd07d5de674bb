"""Device set-up: GPU claims through lock files, and a GPU asked for but missing."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

import pipeline.training.device
from pipeline.training.device import claim_gpu, configure_tensorflow


@pytest.fixture(autouse=True)
def release_claims():
    """Locks claimed in this process are released after each test."""
    yield
    pipeline.training.device._release_locks()


def test_jobs_claim_distinct_gpus_and_share_when_all_are_taken(tmp_path):
    # Each claim opens its own lock file description, as separate job processes do.
    assert claim_gpu(3, tmp_path) == 0
    assert claim_gpu(3, tmp_path) == 1
    assert claim_gpu(3, tmp_path) == 2
    assert claim_gpu(3, tmp_path) is None


def test_a_killed_job_frees_its_gpu(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from pathlib import Path; from pipeline.training.device import claim_gpu; "
         f"print(claim_gpu(2, Path({str(tmp_path)!r})), flush=True); import time; time.sleep(60)"],  # fmt: skip
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "0"
        assert claim_gpu(1, tmp_path) is None  # GPU 0 is held by the other process
    finally:
        holder.kill()
        holder.wait(timeout=30)
    deadline = time.monotonic() + 10
    claimed = claim_gpu(1, tmp_path)
    while claimed is None and time.monotonic() < deadline:
        time.sleep(0.1)
        claimed = claim_gpu(1, tmp_path)
    assert claimed == 0


@pytest.mark.tf
def test_a_job_that_asked_for_a_gpu_and_sees_none_stops_with_a_clear_error():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        assert configure_tensorflow(threads=1, gpus=1).startswith("GPU:")
        return
    with pytest.raises(RuntimeError, match=r"study.gpus=1.*sees none.*study.gpus=0"):
        configure_tensorflow(threads=1, gpus=1)
    assert configure_tensorflow(threads=1, gpus=0).startswith("CPU")


def test_locks_of_a_slurm_job_are_its_own(monkeypatch):
    from pipeline.training.device import GPU_LOCK_DIR, gpu_lock_dir

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert gpu_lock_dir() == GPU_LOCK_DIR
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert gpu_lock_dir() == GPU_LOCK_DIR / "slurm-job4242"


def test_released_claims_free_their_gpus(tmp_path):
    assert claim_gpu(2, tmp_path) == 0
    assert claim_gpu(2, tmp_path) == 1
    pipeline.training.device._release_locks()
    assert claim_gpu(2, tmp_path) == 0
