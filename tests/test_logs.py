"""What a user reads: a single run on the CPU prints its device once and none of TensorFlow's
C++ start-up noise (unless asked for), and a training job logs one progress line per epoch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from factories import REPO

pytestmark = pytest.mark.tf

#: TensorFlow's start-up lines on a machine without a GPU (and the ones users reported).
NOISE = re.compile(r"cuInit|NodeDef|cudart_stub|absl::InitializeLog|cpu_feature_guard|cuda_platform")


def single_run(tmp_path: Path, verbose: bool) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("TF_CPP_MIN_LOG_LEVEL", "LRSTUDY_VERBOSE")}
    env["PYTHONPATH"] = str(REPO)
    if verbose:
        env["LRSTUDY_VERBOSE"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pipeline.training.run", "study=smoke", "optimizer=adam", "schedule=cosine", "lr=3e-3", "seed=1", "study.epochs=1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def test_a_single_run_prints_its_device_once_and_no_tensorflow_noise(tmp_path: Path) -> None:
    (tmp_path / "quiet").mkdir()
    quiet = single_run(tmp_path / "quiet", verbose=False)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    output = quiet.stdout + quiet.stderr
    assert not NOISE.search(output), output
    devices = re.findall(r"^training on (?:CPU \(no GPU visible\)|GPU:\d+ \(.+\))$", output, re.MULTILINE)
    assert len(devices) == 1, output
    assert re.search(r"^results/smoke/runs/adam/cosine/seed1/lr3e-3: ok, best val_loss", quiet.stdout, re.MULTILINE), output
    # LRSTUDY_VERBOSE=1 brings TensorFlow's own lines back.
    (tmp_path / "verbose").mkdir()
    loud = single_run(tmp_path / "verbose", verbose=True)
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert len(loud.stderr.splitlines()) > len(quiet.stderr.splitlines()), loud.stderr
