"""The TensorBoard export read back with TensorBoard's own reader: every run's curves equal its
history.csv, each run's HParams session and the experiment's configuration hold the grid."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
from factories import write_run

from pipeline.analysis.aggregate import read_runs, write_table
from pipeline.report.tensorboard import BEST_METRIC, CATEGORY_HPARAMS, NUMERIC_HPARAMS, SCALARS, export
from pipeline.tables import HISTORY, RUNS

pytestmark = pytest.mark.tf  # the tensorboard package imports TensorFlow


def rows(lr: float, losses: List[float]) -> List[Dict[str, Any]]:
    return [
        {"epoch": epoch, "lr": lr / epoch, "loss": loss, "accuracy": 1 - loss / 4, "val_loss": loss * 1.5,
         "val_accuracy": 1 - loss / 3, "seconds": 0.25 * epoch}
        for epoch, loss in enumerate(losses, start=1)
    ]  # fmt: skip


def accumulator(folder: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    loaded = EventAccumulator(str(folder))
    loaded.Reload()
    return loaded


def plugin_data(loaded: Any, tag: str) -> Any:
    from tensorboard.plugins.hparams import plugin_data_pb2

    return plugin_data_pb2.HParamsPluginData.FromString(loaded.SummaryMetadata(tag).plugin_data.content)


@pytest.fixture()
def exported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    study = Path("results") / "demo"

    def run(root: Path, optimizer: str, schedule: str, seed: int, lr: float, losses: List[float], diverged=None) -> None:
        history = rows(lr, losses)
        write_run(root, optimizer, schedule, seed, lr, history, diverged, steps=10 * len(history), steps_per_epoch=10,
                  initial_loss=2.25, seconds=0.25 * len(history), device="CPU")  # fmt: skip

    run(study, "adam", "constant", 0, 0.001, [2.0, 1.0, 0.5])
    run(study, "adam", "cosine", 0, 0.01, [1.0, 0.75])
    run(study, "sgd", "constant", 1, 0.1, [1.5, math.nan], diverged=2)
    run(study / "confirm", "adam", "constant", 7, 0.001, [2.0, 1.25])
    for table, folder in ((study / "runs.csv", study / "runs"), (study / "confirm" / "runs.csv", study / "confirm" / "runs")):
        runs, _ = read_runs(sorted(path.parent for path in folder.rglob("summary.json")))
        write_table(RUNS, runs, table)
    assert export([study / "runs.csv", study / "confirm" / "runs.csv"], study, study / "tensorboard") == 4
    return study


def test_every_runs_curves_read_back_equal_its_history(exported: Path) -> None:
    folders = sorted(path.parent for path in exported.rglob("runs/*/*/seed*/lr*/summary.json"))
    assert len(folders) == 4
    for folder in folders:
        history = HISTORY.read(folder / "history.csv")
        loaded = accumulator(exported / "tensorboard" / folder.relative_to(exported))
        assert set(SCALARS) <= set(loaded.Tags()["scalars"])
        for tag, column in SCALARS.items():
            events = loaded.Scalars(tag)
            assert [event.step for event in events] == list(history["epoch"])
            # simple_value is a float32: the history's numbers as float32, NaN kept.
            np.testing.assert_array_equal(np.array([event.value for event in events], np.float32), history[column].to_numpy(np.float32))
            assert [event.wall_time for event in events] == pytest.approx(list(history["seconds"].cumsum()))


def test_each_run_is_an_hparams_session_and_the_root_the_experiment(exported: Path) -> None:
    board = exported / "tensorboard"
    run = accumulator(board / "runs" / "adam" / "constant" / "seed0" / "lr1e-3")
    session = plugin_data(run, "_hparams_/session_start_info").session_start_info
    assert session.group_name == "runs/adam/constant/seed0/lr1e-3"
    assert session.hparams["optimizer"].string_value == "adam" and session.hparams["schedule"].string_value == "constant"
    assert session.hparams["lr"].number_value == 0.001 and session.hparams["seed"].number_value == 0
    assert session.hparams["batch_size"].number_value == 128 and session.hparams["part"].string_value == "grid"
    assert session.hparams["status"].string_value == "ok" and session.hparams["fit"].string_value == "undiagnosed"
    best = run.Scalars(BEST_METRIC)
    assert [(event.step, event.value) for event in best] == [(3, 0.75)]  # lowest val_loss, at epoch 3

    diverged = accumulator(board / "runs" / "sgd" / "constant" / "seed1" / "lr1e-1")
    assert plugin_data(diverged, "_hparams_/session_start_info").session_start_info.hparams["status"].string_value == "diverged"
    confirm = accumulator(board / "confirm" / "runs" / "adam" / "constant" / "seed7" / "lr1e-3")
    assert plugin_data(confirm, "_hparams_/session_start_info").session_start_info.hparams["part"].string_value == "confirm"

    experiment = plugin_data(accumulator(board), "_hparams_/experiment").experiment
    names = [item.name for item in experiment.hparam_infos]
    assert names == [*NUMERIC_HPARAMS, *CATEGORY_HPARAMS]
    values = {item.name: item.domain_discrete for item in experiment.hparam_infos}
    assert sorted(value.string_value for value in values["optimizer"].values) == ["adam", "sgd"]
    assert sorted(value.number_value for value in values["seed"].values) == [0, 1, 7]
    assert [metric.name.tag for metric in experiment.metric_infos] == [BEST_METRIC, "val_loss", "val_accuracy"]


def test_the_export_replaces_its_folder_whole(exported: Path) -> None:
    stale = exported / "tensorboard" / "runs" / "old" / "events.out.tfevents.1"
    stale.parent.mkdir(parents=True)
    stale.write_text("")
    export([exported / "runs.csv"], exported, exported / "tensorboard")
    assert not stale.exists() and not (exported / "tensorboard" / "confirm").exists()
    assert sorted(os.listdir(exported / "tensorboard" / "runs")) == ["adam", "sgd"]
