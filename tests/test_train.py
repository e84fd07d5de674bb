"""Training runs and cohort jobs: outputs, divergence as a result, determinism, resumption."""

from __future__ import annotations

import json
import re
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import REPO

from pipeline.training.cohort import cohort_spec
from pipeline.config.schema import config_hash
from pipeline.config.rates import run_dir
from pipeline.training.data import save_npz
from pipeline.tables import HISTORY_COLUMNS
from pipeline.training.run import is_complete, summarise, train_run

#: The study of the conftest's ``study`` and ``arrays`` fixtures.
STUDY = "study=smoke study.epochs=3 schedule=[constant,cosine] optimizer=[adam,momentum]"


def read_history(directory: Path) -> pd.DataFrame:
    return pd.read_csv(directory / "history.csv")


@pytest.mark.tf
def test_a_tiny_run_writes_its_folder(study, arrays, tmp_path):
    run_config = study.run_config("adam", "cosine", 0, 0.01)
    summary = train_run(run_config, arrays, tmp_path / "run")
    history = read_history(tmp_path / "run")
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2, 3]
    steps_per_epoch = math.ceil(len(arrays["x_train"]) / study.settings.batch_size)
    # The logged rate is the cosine schedule at the step count reached by each epoch's end.
    expected = [0.01 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * epoch * steps_per_epoch / (3 * steps_per_epoch)))) for epoch in (1, 2, 3)]
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-5)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert summary["status"] == "ok" and summary["diverged_epoch"] is None
    assert summary["steps"] == 3 * steps_per_epoch
    assert summary["best_val_loss"] == history["val_loss"].min()
    assert summary["best_epoch"] == int(history["val_loss"].idxmin()) + 1
    assert summary["final_val_accuracy"] == history["val_accuracy"].iloc[-1]
    assert summary["config_hash"] == config_hash(run_config)
    assert set(summary["versions"]) >= {"tensorflow", "keras", "numpy", "python"}
    assert summary["device"] == "" or summary["device"]
    assert is_complete(tmp_path / "run", run_config)
    assert not is_complete(tmp_path / "run", study.run_config("adam", "cosine", 0, 0.02))
    assert not [path.name for path in (tmp_path / "run").iterdir() if path.name.startswith(".")]


@pytest.mark.tf
def test_divergence_is_recorded_not_raised(study, arrays, tmp_path):
    summary = train_run(study.run_config("adam", "constant", 0, 30.0), arrays, tmp_path / "run")
    history = read_history(tmp_path / "run")
    assert summary["status"] == "diverged"
    assert summary["diverged_epoch"] == len(history) == 1
    loss = history["loss"].iloc[-1]
    assert not math.isfinite(loss) or loss > study.settings.divergence_factor * summary["initial_loss"]
    assert 2.0 < summary["initial_loss"] < 2.6  # untrained 10-class logits: about ln(10)


def test_summary_of_a_history():
    rows = [
        {"epoch": 1, "lr": 0.1, "loss": 2.0, "accuracy": 0.2, "val_loss": 1.5, "val_accuracy": 0.4, "seconds": 1.0},
        {"epoch": 2, "lr": 0.1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.2, "val_accuracy": 0.5, "seconds": 1.0},
        {"epoch": 3, "lr": 0.1, "loss": math.nan, "accuracy": 0.1, "val_loss": math.nan, "val_accuracy": 0.1, "seconds": 1.0},
    ]
    summary = summarise(rows, diverged_epoch=3)
    assert summary["status"] == "diverged" and summary["diverged_epoch"] == 3
    assert summary["best_epoch"] == 2 and summary["best_val_loss"] == 1.2
    assert summary["best_val_accuracy"] == 0.5 and summary["val_accuracy_at_best"] == 0.5
    assert math.isnan(summary["final_loss"]) and summary["epochs_run"] == 3
    nothing = summarise(rows[2:], diverged_epoch=1)
    assert nothing["best_epoch"] is None and math.isnan(nothing["best_val_loss"])


@pytest.mark.tf
def test_cohort_job_trains_every_rate_survives_divergence_and_skips_complete_runs(study, arrays, tmp_path):
    data_file = tmp_path / "data.npz"
    save_npz(arrays, data_file)
    spec = cohort_spec(study, "adam", "constant", 0, [0.01, 30.0])
    spec["study_dir"] = str(tmp_path / "results" / "smoke")
    manifest = tmp_path / "manifest.json"
    command = [sys.executable, "-m", "pipeline.training", "--spec", json.dumps(spec), "--data", str(data_file),
               "--threads", "1", "--manifest", str(manifest)]  # fmt: skip
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    entries = json.loads(manifest.read_text())["runs"]
    assert [(entry["lr"], entry["status"]) for entry in entries] == [(0.01, "ok"), (30.0, "diverged")]
    # One progress line per epoch, as population jobs log: the first run all epochs, the
    # diverging one until it diverged (then no run of its own goes on).
    epochs = study.settings.epochs
    lines = re.findall(r"^epoch (\d+)/(\d+): (\d) of 1 runs still training, best val_loss so far \S+, [\d.]+ s per epoch$", first.stdout, re.MULTILINE)
    assert [int(line[0]) for line in lines[:epochs]] == list(range(1, epochs + 1)) and lines[epochs - 1][2] == "0"
    assert lines[epochs][0] == "1" and lines[-1][2] == "0" and first.stdout.count("training on CPU (no GPU visible)") == 1
    history_file = run_dir(spec["study_dir"], "adam", "constant", 0, 0.01) / "history.csv"
    summary = json.loads((history_file.parent / "summary.json").read_text())
    assert summary["threads"] == {"intra_op": 1, "inter_op": 1}  # the job's --threads, not every core
    before = history_file.stat().st_mtime_ns
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0
    assert second.stdout.count("up to date") == 2
    assert history_file.stat().st_mtime_ns == before
    # Same options, different data (a user's .npz edited in place): the digest differs, so it retrains.
    save_npz({**arrays, "x_train": arrays["x_train"][:-1], "y_train": arrays["y_train"][:-1]}, data_file)
    third = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0
    assert third.stdout.count("up to date") == 0
    assert history_file.stat().st_mtime_ns != before


@pytest.mark.tf
def test_a_run_is_repeatable_across_processes(tmp_path):
    """Same run twice, each in a fresh process: identical history.csv but for seconds."""
    histories = []
    for attempt in ("a", "b"):
        workdir = tmp_path / attempt
        workdir.mkdir()
        result = subprocess.run(
            [sys.executable, "-m", "pipeline.training.run", "study=smoke", "study.epochs=3", "optimizer=momentum",
             "schedule=warmup_cosine", "lr=0.05", "seed=3"],  # fmt: skip
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert result.returncode == 0, result.stderr[-2000:]
        folder = workdir / "results" / "smoke" / "runs" / "momentum" / "warmup_cosine" / "seed3" / "lr5e-2"
        histories.append(read_history(folder).drop(columns="seconds"))
        assert json.loads((folder / "summary.json").read_text())["seed"] == 3
    pd.testing.assert_frame_equal(histories[0], histories[1], check_exact=True)
    assert len(histories[0]) == 3


def test_the_run_app_rejects_bad_input_naming_the_key(tmp_path):
    for arguments, message in (
        (["optimizer=adam", "schedule=cosine", "lr=-1"], "lr=-1"),
        (["schedule=cosine", "lr=0.1"], "exactly one optimizer"),
        (["optimizer=adam", "schedule=cosine"], "lr"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "pipeline.training.run", "study=smoke", *arguments],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert result.returncode != 0
        assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


class ScriptedTrial:
    """A search trial whose pruner says yes from the ``prune_from``-th report on."""

    def __init__(self, prune_from: int) -> None:
        self.prune_from = prune_from
        self.reports: list = []

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return len(self.reports) >= self.prune_from


@pytest.mark.tf
def test_the_pruning_callback_reports_finite_losses_and_stops_only_before_the_last_epoch(arrays):
    import keras

    from pipeline.training.callbacks import PruningCallback

    def callback_for(trial: ScriptedTrial, epochs: int) -> PruningCallback:
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.stop_training = False  # as fit sets it
        callback = PruningCallback(trial)
        callback.set_model(model)
        callback.set_params({"epochs": epochs})
        return callback

    trial = ScriptedTrial(prune_from=2)
    callback = callback_for(trial, epochs=3)
    callback.on_epoch_end(0, {"val_loss": 1.5})
    callback.on_epoch_end(1, {"val_loss": math.nan})  # not reported, not pruned
    assert trial.reports == [(0, 1.5)] and callback.pruned_epoch is None and not callback.model.stop_training
    callback.on_epoch_end(1, {"val_loss": 1.25})
    assert trial.reports == [(0, 1.5), (1, 1.25)] and callback.pruned_epoch == 2 and callback.model.stop_training

    last = callback_for(ScriptedTrial(prune_from=1), epochs=1)
    last.on_epoch_end(0, {"val_loss": 1.0})  # reported, but a run trained to its end is complete
    assert last.trial.reports == [(0, 1.0)] and last.pruned_epoch is None and not last.model.stop_training

    diverged = callback_for(ScriptedTrial(prune_from=1), epochs=3)
    diverged.model.stop_training = True  # the recorder stopped a diverging run
    diverged.on_epoch_end(0, {"val_loss": 9.0})
    assert diverged.trial.reports == [] and diverged.pruned_epoch is None


def test_the_job_modules_import_neither_tensorflow_nor_keras_nor_optuna():
    """TensorFlow reads its thread counts when first imported: the jobs' modules must not import
    it (nor the Keras callbacks and schedules modules) before ``configure_tensorflow`` runs."""
    modules = ["pipeline.training.run", "pipeline.training.resume", "pipeline.training.cohort", "pipeline.search.trial",
               "pipeline.search.worker", "pipeline.finder.range_test"]  # fmt: skip
    code = f"import sys\nfor name in {modules!r}: __import__(name)\nprint(sorted(set(sys.modules) & {{'tensorflow', 'keras', 'optuna'}}))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
