"""Preemption-safe training: per-epoch state, and a killed job that resumes exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import REPO, sigkill_after_saved_epochs

from pipeline.training.cohort import cohort_spec
from pipeline.config.compose import compose_study
from pipeline.config.schema import config_hash
from pipeline.config.rates import run_dir
from pipeline.training.data import build_dataset, save_npz
from pipeline.training.resume import STATE_FILE, epoch_batches, load_state, save_state, saved_epochs
from pipeline.training.device import configure_tensorflow
from pipeline.training.run import train_run

pytestmark = pytest.mark.tf


#: The study of the conftest's ``study`` and ``arrays`` fixtures.
STUDY = "study=smoke study.epochs=3 optimizer=[momentum] schedule=[step]"


def epoch_order(batches, shuffle, epoch: int) -> np.ndarray:
    shuffle.on_epoch_begin(epoch)
    return np.concatenate([labels.numpy() for _, labels in batches])


def test_each_epoch_is_a_permutation_drawn_from_seed_and_epoch_alone():
    configure_tensorflow(threads=1)
    count, batch_size = 103, 10
    x = np.arange(count, dtype=np.float32).reshape(count, 1)
    y = np.arange(count, dtype=np.int64)
    batches, shuffle = epoch_batches(x, y, batch_size, seed=7)
    assert int(batches.cardinality()) == 11
    sizes = [len(labels) for _, labels in batches]
    assert sizes == [10] * 10 + [3]
    orders = [epoch_order(batches, shuffle, epoch) for epoch in range(4)]
    for order in orders:
        assert sorted(order.tolist()) == list(range(count))
    assert not np.array_equal(orders[0], orders[1])
    # A restarted process that begins at epoch 3 sees epoch 3's order.
    fresh, fresh_shuffle = epoch_batches(x, y, batch_size, seed=7)
    np.testing.assert_array_equal(epoch_order(fresh, fresh_shuffle, 3), orders[3])
    features = np.concatenate([features.numpy()[:, 0] for features, _ in fresh])
    np.testing.assert_array_equal(features, orders[3].astype(np.float32))  # features travel with labels
    other_seed, other_shuffle = epoch_batches(x, y, batch_size, seed=8)
    assert not np.array_equal(epoch_order(other_seed, other_shuffle, 3), orders[3])


def test_a_finished_run_leaves_no_state_and_a_state_of_another_config_is_not_resumed(study, arrays, tmp_path):
    folder = tmp_path / "run"
    run_config = study.run_config("momentum", "step", 0, 0.05)
    reference = train_run(run_config, arrays, tmp_path / "reference", resumable=True)
    assert not (tmp_path / "reference" / STATE_FILE).exists()
    assert reference["resumed_from_epoch"] is None
    # A state saved by another configuration (another rate) in this folder: ignored, replaced.
    other = study.run_config("momentum", "step", 0, 0.5)
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    save_state(folder / STATE_FILE, model, {"config_hash": config_hash(other), "rows": [], "reference_loss": 1.0})
    assert load_state(folder / STATE_FILE, config_hash(run_config)) is None
    assert load_state(folder / STATE_FILE, config_hash(other))["reference_loss"] == 1.0
    summary = train_run(run_config, arrays, folder, resumable=True)
    assert summary["resumed_from_epoch"] is None
    pd.testing.assert_frame_equal(
        pd.read_csv(folder / "history.csv").drop(columns="seconds"),
        pd.read_csv(tmp_path / "reference" / "history.csv").drop(columns="seconds"),
        check_exact=True,
    )
    assert not (folder / STATE_FILE).exists()


def test_an_unreadable_state_is_not_resumed_and_a_mismatched_one_names_the_file(study, arrays, tmp_path):
    run_config = study.run_config("momentum", "step", 0, 0.05)
    (tmp_path / STATE_FILE).write_bytes(b"not a state")
    assert load_state(tmp_path / STATE_FILE, config_hash(run_config)) is None
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    meta = {"config_hash": config_hash(run_config), "rows": [], "reference_loss": 2.3, "diverged_epoch": None, "seconds": 1.0}
    save_state(tmp_path / STATE_FILE, model, meta)
    with pytest.raises(ValueError, match=f"{STATE_FILE}.*delete it"):
        train_run(run_config, arrays, tmp_path, resumable=True)


def job_command(spec: dict, data_file: Path, manifest: Path) -> list:
    return [sys.executable, "-m", "pipeline.training", "--spec", json.dumps(spec), "--data", str(data_file),
            "--threads", "1", "--manifest", str(manifest)]  # fmt: skip


@pytest.mark.slow
def test_a_training_job_killed_mid_run_resumes_and_ends_with_an_identical_history(tmp_path):
    """SIGKILL a real training job after a few epochs; run it again; compare with a job that
    was never interrupted."""
    epochs = 40
    study = compose_study(f"study=smoke study.epochs={epochs} optimizer=[adam] schedule=[warmup_cosine]")
    data_file = tmp_path / "data.npz"
    save_npz(build_dataset(study.dataset), data_file)
    specs = {}
    for name in ("reference", "killed"):
        specs[name] = cohort_spec(study, "adam", "warmup_cosine", 0, [0.003])
        specs[name]["study_dir"] = str(tmp_path / name)
    folders = {name: run_dir(spec["study_dir"], "adam", "warmup_cosine", 0, 0.003) for name, spec in specs.items()}
    reference = subprocess.run(job_command(specs["reference"], data_file, tmp_path / "reference.json"),
                               cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert reference.returncode == 0, reference.stderr[-2000:]

    state_file = folders["killed"] / STATE_FILE
    command = job_command(specs["killed"], data_file, tmp_path / "killed.json")
    done_before_kill = sigkill_after_saved_epochs(command, state_file, 3)
    assert 3 <= done_before_kill < epochs, f"the job was not killed mid-run ({done_before_kill} epochs saved)"
    assert not (folders["killed"] / "summary.json").exists()
    assert not (tmp_path / "killed.json").exists()

    resumed = subprocess.run(job_command(specs["killed"], data_file, tmp_path / "killed.json"),
                             cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    resumed_from = saved_epochs_from_log(resumed.stdout)
    assert resumed_from == done_before_kill  # nothing writes the state after the kill
    histories = {name: pd.read_csv(folder / "history.csv") for name, folder in folders.items()}
    assert len(histories["killed"]) == epochs
    pd.testing.assert_frame_equal(
        histories["killed"].drop(columns="seconds"), histories["reference"].drop(columns="seconds"), check_exact=True
    )
    summaries = {name: json.loads((folder / "summary.json").read_text()) for name, folder in folders.items()}
    assert summaries["killed"]["resumed_from_epoch"] == resumed_from
    assert summaries["killed"]["steps"] == summaries["reference"]["steps"]
    for key in ("seconds", "resumed_from_epoch"):
        summaries["killed"].pop(key), summaries["reference"].pop(key)
    assert summaries["killed"] == summaries["reference"]
    assert not state_file.exists()


def saved_epochs_from_log(stdout: str) -> int:
    line = next(line for line in stdout.splitlines() if "resuming after epoch" in line)
    return int(line.split("resuming after epoch")[1].split()[0])


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("switch", ["study.mixed_precision=true", "model=cnn"])
def test_an_interrupted_run_resumes_identically_with_mixed_precision_and_a_cnn(switch, tmp_path):
    """The state round-trips through a loss-scaling optimizer (mixed precision: its variables
    are counted and shape-checked on restore) and conv layers: a run stopped after epoch 2 and
    resumed equals an uninterrupted one."""
    import keras

    study = compose_study(f"study=smoke study.epochs=4 optimizer=[adam] schedule=[cosine] {switch}")
    arrays = build_dataset(study.dataset)
    configure_tensorflow(threads=1)
    run_config = study.run_config("adam", "cosine", 0, 0.003)

    class StopAfterSecondEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:  # the third epoch ends before its state is saved: the state says 2
                raise Interrupt

    try:
        reference = train_run(run_config, arrays, tmp_path / "reference")
        with pytest.raises(Interrupt):
            train_run(run_config, arrays, tmp_path / "run", callbacks=[StopAfterSecondEpoch()], resumable=True)
        assert saved_epochs(tmp_path / "run" / STATE_FILE) == 2
        resumed = train_run(run_config, arrays, tmp_path / "run", resumable=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert resumed["resumed_from_epoch"] == 2 and resumed["steps"] == reference["steps"]
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "run" / "history.csv").drop(columns="seconds"),
        pd.read_csv(tmp_path / "reference" / "history.csv").drop(columns="seconds"),
        check_exact=True,
    )


@pytest.mark.parametrize("lr,status", [(0.05, "ok"), (30.0, "diverged")])
def test_a_run_killed_after_its_last_state_ends_without_training_again(study, arrays, tmp_path, monkeypatch, lr, status):
    """Killed after the final (or diverged) epoch's state was saved, before the summary: the
    next attempt trains nothing and writes what the uninterrupted run wrote."""
    import pipeline.training.run

    run_config = study.run_config("momentum", "step", 0, lr)
    reference = train_run(run_config, arrays, tmp_path / "reference")
    assert reference["status"] == status

    def killed(*args, **kwargs):
        raise Interrupt

    with monkeypatch.context() as patch:
        patch.setattr(pipeline.training.run, "write_history", killed)
        with pytest.raises(Interrupt):
            train_run(run_config, arrays, tmp_path / "run", resumable=True)
    assert saved_epochs(tmp_path / "run" / STATE_FILE) == reference["epochs_run"]
    resumed = train_run(run_config, arrays, tmp_path / "run", resumable=True)
    assert resumed["resumed_from_epoch"] == reference["epochs_run"]
    assert resumed["steps"] == reference["steps"] and resumed["status"] == status
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "run" / "history.csv").drop(columns="seconds"),
        pd.read_csv(tmp_path / "reference" / "history.csv").drop(columns="seconds"),
        check_exact=True,
    )
    assert not (tmp_path / "run" / STATE_FILE).exists()


def test_a_truncated_state_is_ignored_and_the_run_starts_over(study, arrays, tmp_path):
    import keras

    run_config = study.run_config("momentum", "step", 0, 0.05)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    save_state(tmp_path / "whole.npz", model, {"config_hash": config_hash(run_config), "rows": [{}]})
    whole = (tmp_path / "whole.npz").read_bytes()
    for broken in (whole[: len(whole) // 2], b""):
        (tmp_path / STATE_FILE).write_bytes(broken)
        assert load_state(tmp_path / STATE_FILE, config_hash(run_config)) is None
        assert saved_epochs(tmp_path / STATE_FILE) == 0
    summary = train_run(run_config, arrays, tmp_path, resumable=True)
    assert summary["resumed_from_epoch"] is None and summary["epochs_run"] == 3


def test_a_complete_run_left_with_a_state_is_skipped_and_the_state_removed(study, arrays, tmp_path, capsys):
    """A job killed between writing summary.json and removing the state: the next job skips
    the run and removes the state, which must never be trusted later."""
    import shutil

    from pipeline.training.cohort import train_cohort

    data_file = tmp_path / "data.npz"
    save_npz(arrays, data_file)
    spec = cohort_spec(study, "momentum", "step", 0, [0.05])
    spec["study_dir"] = str(tmp_path / "results")
    folder = run_dir(spec["study_dir"], "momentum", "step", 0, 0.05)
    train_cohort(spec, data_file, threads=1)
    summary_before = (folder / "summary.json").read_bytes()
    shutil.copy(tmp_path / "data.npz", folder / STATE_FILE)  # any file: it must go, unread
    train_cohort(spec, data_file, threads=1)
    assert "up to date" in capsys.readouterr().out
    assert not (folder / STATE_FILE).exists()
    assert (folder / "summary.json").read_bytes() == summary_before
