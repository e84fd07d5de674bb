"""Tests of pipeline.figures.shapes against closed-form schedules (imports Keras once)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from figures_synthetic import CONFIG, EPOCHS, L1, L2, L3, STEPS_PER_EPOCH, make_best, make_curves, make_runs

from pipeline.figures.shapes import (
    SHAPES_COLUMNS,
    draw_schedule_shapes,
    sample_steps,
    schedule_shapes_table,
    steps_per_epoch,
)

TOTAL = STEPS_PER_EPOCH * EPOCHS


def _cosine(lr: float, step: int) -> float:
    """Keras CosineDecay with alpha 0 over TOTAL steps."""
    return lr * 0.5 * (1 + math.cos(math.pi * step / TOTAL))


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return schedule_shapes_table(CONFIG, make_best(), make_runs(), make_curves())


def test_steps_per_epoch() -> None:
    assert steps_per_epoch(make_runs()) == STEPS_PER_EPOCH
    runs = make_runs()
    runs.loc[runs.index[runs["status"] == "ok"][0], "steps"] = 15  # 5 per epoch, the other runs 4
    with pytest.raises(ValueError, match="disagree"):
        steps_per_epoch(runs)
    # With no ok run, the diverged runs tell.
    assert steps_per_epoch(make_runs()[lambda frame: frame["status"] == "diverged"]) == STEPS_PER_EPOCH


def test_sample_steps() -> None:
    assert sample_steps(5).tolist() == [0, 1, 2, 3, 4]
    steps = sample_steps(100_000, 500)
    assert len(steps) <= 500 and steps[0] == 0 and steps[-1] == 99_999
    assert np.all(np.diff(steps) > 0)


@pytest.mark.tf
def test_schedule_shapes_table_closed_form(table: pd.DataFrame) -> None:
    assert list(table.columns) == list(SHAPES_COLUMNS)
    cells = [(o, s, lr) for (o, s, lr), _ in table.groupby(["optimizer", "schedule", "lr"], sort=False)]
    assert cells == [("adam", "constant", L2), ("adam", "cosine", L1), ("sgd", "constant", L3), ("sgd", "cosine", L2)]
    for (_, schedule, lr), cell in table.groupby(["optimizer", "schedule", "lr"], sort=False):
        evaluated = cell[cell["source"] == "schedule"]
        assert evaluated["step"].tolist() == list(range(TOTAL))
        expected = [lr if schedule == "constant" else _cosine(lr, step) for step in range(TOTAL)]
        # float32 schedule arithmetic: within a few float32 ulps of the peak.
        assert evaluated["rate"].to_numpy() == pytest.approx(expected, rel=1e-6, abs=1e-6 * lr)
        reported = cell[cell["source"] == "optimizer"]
        assert reported["step"].tolist() == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH, 3 * STEPS_PER_EPOCH]
        expected_reported = [lr if schedule == "constant" else _cosine(lr, step) for step in reported["step"]]
        assert reported["rate"].tolist() == pytest.approx(expected_reported, rel=1e-12, abs=0)
    # Cosine with alpha 0 starts at the peak and is one step short of 0 at the last step.
    cosine = table[(table["schedule"] == "cosine") & (table["source"] == "schedule") & (table["optimizer"] == "adam")]
    assert cosine["rate"].iloc[0] == pytest.approx(L1, rel=1e-7)
    assert 0 < cosine["rate"].iloc[-1] < 0.02 * L1


@pytest.mark.tf
def test_schedule_shapes_table_without_curves_and_unknown_schedule() -> None:
    table = schedule_shapes_table(CONFIG, make_best(), make_runs(), None, max_points=5)
    assert set(table["source"]) == {"schedule"}
    assert table.groupby(["optimizer", "schedule"]).size().tolist() == [5, 5, 5, 5]
    assert table["step"].iloc[:5].tolist() == [0, 3, 6, 8, 11]  # rounded even spread, both ends
    config = {"schedule": {"constant": {"type": "constant"}}, "study": {"epochs": EPOCHS}}
    with pytest.raises(ValueError, match="cosine"):
        schedule_shapes_table(config, make_best(), make_runs())


@pytest.mark.tf
def test_draw_schedule_shapes_structure(table: pd.DataFrame) -> None:
    figure = draw_schedule_shapes(table)
    axes = figure.get_axes()
    assert [ax.get_title() for ax in axes] == ["adam", "sgd"]
    assert all(ax.get_yscale() == "log" for ax in axes)
    labels = [text.get_text() for text in axes[0].get_legend().get_texts()]
    assert labels == ["constant 1e-2", "cosine 1e-3"]
    reported = [line for line in axes[0].get_lines() if line.get_gid() == "reported"]
    assert [line.get_xdata().tolist() for line in reported] == [[4.0, 8.0, 12.0]] * 2
    figure.canvas.draw()
