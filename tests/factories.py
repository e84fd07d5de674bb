"""Synthetic study files for the tests: run folders and the tables built from cells of runs.

Run folders are written in the format of :func:`pipeline.training.run.train_run` (``history.csv``
with the columns ``HISTORY_COLUMNS``, ``summary.json`` with the keys of
:func:`pipeline.training.run.summarise` plus the run's identity) at the paths of
:func:`pipeline.config.rates.run_dir`. The summary is computed here, independently of the
pipeline, so that a test of the pipeline's reading never checks the pipeline against itself.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

import pandas as pd
import yaml

from pipeline.config.rates import run_dir
from pipeline.config.schema import config_hash
from pipeline.tables import HISTORY_COLUMNS

#: The repository's root (the Snakefile, conf/ and pipeline/ are here).
REPO = Path(__file__).resolve().parent.parent

#: One seed's values in a cell of a synthetic study; each test module chooses their shape.
SeedValues = TypeVar("SeedValues")

#: ``{(optimizer, schedule, lr): [values of seed 0, values of seed 1, ...]}``
Cells = Mapping[Tuple[str, str, float], Sequence[SeedValues]]


# --------------------------------------------------------------------------------------
# Workflow runs in scratch folders
# --------------------------------------------------------------------------------------


def make_workdir(path: Path, copy_conf: bool = False) -> Path:
    """A scratch checkout: the workflow's files linked in, results written locally."""
    path.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "rules", "pipeline", "report", "envs", "examples", "conf", "profiles"):
        if name == "conf" and copy_conf:
            shutil.copytree(REPO / name, path / name)
        else:
            (path / name).symlink_to(REPO / name)
    return path


def snakemake(workdir: Path, *arguments: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *arguments],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return result


# --------------------------------------------------------------------------------------
# Run folders
# --------------------------------------------------------------------------------------


def run_summary(rows: Sequence[Mapping[str, Any]], diverged_epoch: Optional[int]) -> Dict[str, Any]:
    """The summary ``train_run`` writes of these history rows (best = lowest finite val_loss)."""
    finite = [row for row in rows if math.isfinite(row["val_loss"])]
    best = min(finite, key=lambda row: row["val_loss"]) if finite else None
    accuracies = [row["val_accuracy"] for row in rows if math.isfinite(row["val_accuracy"])]
    return {
        "status": "diverged" if diverged_epoch is not None else "ok",
        "diverged_epoch": diverged_epoch,
        "epochs_run": len(rows),
        "best_epoch": best["epoch"] if best else None,
        "best_val_loss": best["val_loss"] if best else math.nan,
        "val_accuracy_at_best": best["val_accuracy"] if best else math.nan,
        "best_val_accuracy": max(accuracies) if accuracies else math.nan,
        "final_loss": rows[-1]["loss"],
        "final_accuracy": rows[-1]["accuracy"],
        "final_val_loss": rows[-1]["val_loss"],
        "final_val_accuracy": rows[-1]["val_accuracy"],
    }


def write_run(
    study_dir: Path,
    optimizer: str,
    schedule: str,
    seed: int,
    lr: float,
    rows: Sequence[Mapping[str, Any]],
    diverged_epoch: Optional[int] = None,
    **extra: Any,
) -> Path:
    """One run folder as ``train_run`` leaves it; returns the folder.

    Args:
        study_dir: The study's results folder.
        optimizer: The run's optimizer option.
        schedule: The run's schedule option.
        seed: The run's seed.
        lr: The run's rate.
        rows: The history, one mapping per epoch with the keys of ``HISTORY_COLUMNS``.
        diverged_epoch: The epoch the run diverged in, or None.
        **extra: More summary keys (steps, seconds, initial_loss, ...), added after the
            computed ones.
    """
    directory = run_dir(study_dir, optimizer, schedule, seed, lr)
    directory.mkdir(parents=True)
    with (directory / "history.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        for row in rows:
            # repr: the shortest text that reads back as the same float.
            writer.writerow({key: repr(value) if isinstance(value, float) else value for key, value in row.items()})
    # The run's config and its hash, as train_run writes them (the aggregate checks they match).
    config = {"optimizer": {"name": optimizer}, "schedule": {"name": schedule}, "training": {"lr": lr, "seed": seed, "batch_size": 128}}
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    identity = {"optimizer": optimizer, "schedule": schedule, "lr": lr, "seed": seed, "config_hash": config_hash(config)}
    summary = {**run_summary(rows, diverged_epoch), **identity, **extra}
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True, allow_nan=True) + "\n")
    return directory


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------


def cells_table(
    cells: Cells,
    row: Callable[[str, str, float, int, Any], Dict[str, Any]],
    reverse: bool = False,
) -> pd.DataFrame:
    """A runs-like table with one row per seed of each cell.

    Args:
        cells: The study, ``{(optimizer, schedule, lr): [values per seed]}``.
        row: The row of one run from ``(optimizer, schedule, lr, seed, values)``.
        reverse: Rows in the reverse order of ``cells`` and of its seeds (tables whose reader
            must sort them itself).
    """
    rows: List[Dict[str, Any]] = []
    for (optimizer, schedule, lr), seeds in reversed(list(cells.items())) if reverse else cells.items():
        numbered = list(enumerate(seeds))
        for seed, values in reversed(numbered) if reverse else numbered:
            rows.append(row(optimizer, schedule, lr, seed, values))
    return pd.DataFrame(rows)


def sigkill_after_saved_epochs(command: Sequence[str], state_file: Path, epochs: int, timeout: float = 300) -> int:
    """Start a training job, SIGKILL it once ``state_file`` holds ``epochs`` saved epochs; return
    how many epochs the state holds after the kill (the job's own exit is checked here)."""
    from pipeline.training.resume import saved_epochs

    job = subprocess.Popen(list(command), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while saved_epochs(state_file) < epochs and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(job.pid, signal.SIGKILL)
    job.wait(timeout=30)
    assert job.returncode == -signal.SIGKILL, f"the job ended before it was killed: {job.stdout.read()[-2000:]}"
    return saved_epochs(state_file)


def seeded_scale_mlp(input_shape, num_classes):
    """A user's model whose code holds a NumPy constant drawn from its seed (an input scale),
    not a variable: one traced step cannot serve two seeds of it, so the population engine
    must train it run by run."""
    import keras
    import numpy as np

    scale = np.random.uniform(0.5, 1.5, size=(int(np.prod(input_shape)),)).astype("float32")
    inputs = keras.Input(shape=tuple(input_shape))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Lambda(lambda features: features * scale)(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    outputs = keras.layers.Dense(num_classes, dtype="float32")(x)
    return keras.Model(inputs, outputs, name="seeded_scale_mlp")
