"""The adaptive schedule: Keras' ReduceLROnPlateau on val_loss (schedule=plateau), in both engines.

The rate a plateau run used is known only from its history: the recorded ``lr`` must follow
Keras' rule applied to the recorded ``val_loss`` (re-implemented here from its documentation),
the population engine must give the per-run engine's history, and an interrupted run must
resume with the callback's counters and go on exactly as if it had not stopped.
"""

from __future__ import annotations

from typing import List

import numpy as np
import pandas as pd
import pytest

from pipeline.config.compose import compose_study
from pipeline.config.schema import config_hash
from pipeline.training.data import build_dataset
from pipeline.training.device import configure_tensorflow
from pipeline.training.resume import STATE_FILE

pytestmark = pytest.mark.tf

#: Patience 1 and a large min_delta: the rate halves whenever val_loss falls by less than 0.05.
OVERRIDES = (
    "study=smoke study.epochs=6 optimizer=[adam] schedule=[plateau] schedule.plateau.patience=1 "
    "schedule.plateau.factor=0.5 schedule.plateau.min_delta=0.05 study.engine={engine}"
)
RATE = 3e-3


def keras_rule(val_losses: List[float], peak: float, factor: float, patience: int, min_delta: float) -> List[float]:
    """ReduceLROnPlateau (mode min, cooldown 0, min_lr 0) by its documentation: a reduction
    after ``patience`` epochs without ``val_loss`` improving on the best by ``min_delta``; the
    rate after each epoch, as the float32 variable holds it."""
    rate, best, wait, rates = np.float32(peak), None, 0, []
    for loss in val_losses:
        if best is None or loss < best - min_delta:  # an improvement by more than min_delta
            best, wait = loss, 0
        else:
            wait += 1
            if wait >= patience:
                rate, wait = np.float32(float(rate) * factor), 0
        rates.append(float(rate))
    return rates


def history(folder) -> pd.DataFrame:
    return pd.read_csv(folder / "history.csv").drop(columns="seconds")


@pytest.fixture(scope="module")
def arrays():
    configure_tensorflow(threads=1)
    return build_dataset(compose_study("study=smoke").dataset)


@pytest.fixture(scope="module")
def per_run(arrays, tmp_path_factory):
    from pipeline.training.run import train_run

    study = compose_study(OVERRIDES.format(engine="per_run"))
    folder = tmp_path_factory.mktemp("plateau") / "per_run"
    train_run(study.run_config("adam", "plateau", 0, RATE), arrays, folder)
    return history(folder)


def test_the_recorded_rate_follows_keras_rule_on_the_recorded_val_loss(per_run):
    expected = keras_rule(per_run["val_loss"].tolist(), RATE, 0.5, 1, 0.05)
    assert per_run["lr"].tolist() == expected
    assert expected[-1] < expected[0] == pytest.approx(RATE, rel=1e-6)  # lowered at least once


def test_the_population_engine_gives_the_per_run_history(arrays, per_run, tmp_path):
    from pipeline.training.population import train_population

    study = compose_study(OVERRIDES.format(engine="population"))
    # With a member of another schedule beside it (its rates come from its formula).
    configs = [study.run_config("adam", "plateau", 0, RATE), study.run_config("adam", "plateau", 1, 1e-3)]
    folders = [tmp_path / "plateau", tmp_path / "other"]
    train_population(configs, arrays, folders)
    ours = history(folders[0])
    assert ours["lr"].tolist() == per_run["lr"].tolist()
    pd.testing.assert_frame_equal(ours, per_run, check_exact=False, rtol=1e-4)
    other = history(folders[1])
    assert other["lr"].tolist() == keras_rule(other["val_loss"].tolist(), 1e-3, 0.5, 1, 0.05)


class Interrupt(Exception):
    pass


def test_an_interrupted_plateau_run_resumes_with_its_counters(arrays, per_run, tmp_path):
    import keras

    from pipeline.training.resume import load_state
    from pipeline.training.run import train_run

    study = compose_study(OVERRIDES.format(engine="per_run"))
    run_config = study.run_config("adam", "plateau", 0, RATE)

    class StopAfterFourthEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 4:  # the fifth epoch ends before its state is saved: the state says 4
                raise Interrupt

    with pytest.raises(Interrupt):
        train_run(run_config, arrays, tmp_path / "run", callbacks=[StopAfterFourthEpoch()], resumable=True)
    state = load_state(tmp_path / "run" / STATE_FILE, config_hash(run_config))
    assert state is not None and set(state["plateau"]) == {"best", "wait", "cooldown_counter"}
    assert state["plateau"]["best"] == pytest.approx(per_run["val_loss"][:4].min(), rel=1e-6)
    resumed = train_run(run_config, arrays, tmp_path / "run", resumable=True)
    assert resumed["resumed_from_epoch"] == 4
    pd.testing.assert_frame_equal(history(tmp_path / "run"), per_run, check_exact=True)
