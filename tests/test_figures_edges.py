"""Every figure draws from degenerate studies: one seed, one rate, all runs diverged, NaNs.

Also the pieces shared by all figures (:mod:`pipeline.figures.common`).
"""

from __future__ import annotations

import math
from typing import Callable, Dict

import numpy as np
import pandas as pd
import pytest
from figures_synthetic import L2, NAN, make_best, make_curves, make_runs

from pipeline.figures import (
    cost_to_target_table,
    draw_cost_to_target,
    draw_fitting_map,
    draw_generalisation_gap,
    draw_learning_curves,
    draw_schedule_comparison,
    draw_sensitivity,
    fitting_map_table,
    generalisation_gap_table,
    learning_curves_table,
    schedule_colors,
    schedule_comparison_table,
    sensitivity_table,
)
from pipeline.figures.common import KNOWN_SCHEDULES, seed_std


def _single_seed_single_rate() -> Dict[str, pd.DataFrame]:
    runs = make_runs()
    keep = (runs["seed"] == 0) & (runs["lr"] == L2)
    curves = make_curves()
    curves = curves[(curves["seed"] == 0) & (curves["lr"] == L2)]
    best = make_best().assign(lr=L2, seeds=1)
    return {"runs": runs[keep], "curves": curves, "best": best}


def _all_diverged() -> Dict[str, pd.DataFrame]:
    runs = make_runs().assign(
        status="diverged", fit="diverged", best_val_loss=NAN, best_val_accuracy=NAN, gap=NAN,
        epochs_to_target=pd.NA, seconds_to_target=NAN,
    )  # fmt: skip
    runs["epochs_to_target"] = runs["epochs_to_target"].astype("Int64")
    curves = make_curves().assign(loss=np.inf, val_loss=NAN)
    best = make_best().assign(best_val_loss_mean=NAN, best_val_loss_std=NAN)
    return {"runs": runs, "curves": curves, "best": best}


def _one_cell_with_nans() -> Dict[str, pd.DataFrame]:
    runs = make_runs()
    runs = runs[(runs["optimizer"] == "sgd") & (runs["schedule"] == "cosine")].copy()
    runs.loc[:, "best_val_loss"] = [NAN, 0.5, math.inf, 0.25, NAN, 1.0]
    runs.loc[:, "target_accuracy"] = NAN
    curves = make_curves()
    curves = curves[(curves["optimizer"] == "sgd") & (curves["schedule"] == "cosine")].copy()
    curves.loc[curves.index[::2], "val_loss"] = NAN
    best = make_best()
    return {"runs": runs, "curves": curves, "best": best[best["optimizer"] == "sgd"].iloc[1:]}


STUDIES: Dict[str, Callable[[], Dict[str, pd.DataFrame]]] = {
    "single seed, single rate": _single_seed_single_rate,
    "all diverged": _all_diverged,
    "one cell with NaNs": _one_cell_with_nans,
}


@pytest.mark.parametrize("study", list(STUDIES))
def test_every_csv_figure_draws(study: str) -> None:
    inputs = STUDIES[study]()
    runs, curves, best = inputs["runs"], inputs["curves"], inputs["best"]
    figures = [
        draw_sensitivity(sensitivity_table(runs)),
        draw_fitting_map(fitting_map_table(runs)),
        draw_learning_curves(learning_curves_table(curves, best)),
        draw_generalisation_gap(generalisation_gap_table(runs)),
        draw_schedule_comparison(schedule_comparison_table(best)),
        draw_cost_to_target(cost_to_target_table(runs)),
    ]
    for figure in figures:
        figure.canvas.draw()  # renders: no exception from NaN-only or single-point data


def test_all_diverged_study_marks_every_cell() -> None:
    runs = _all_diverged()["runs"]
    table = sensitivity_table(runs)
    assert (table["diverged"] == table["runs"]).all() and len(table) == 12
    figure = draw_sensitivity(table)
    marked = [line for ax in figure.get_axes()[:2] for line in ax.get_lines() if line.get_gid() == "diverged"]
    assert sum(len(line.get_xdata()) for line in marked) == 12
    assert (fitting_map_table(runs)["fit"] == "diverged").all()
    assert (cost_to_target_table(runs)["never"] == 2).all()


def test_empty_learning_curves_table_draws() -> None:
    table = learning_curves_table(make_curves().iloc[:0], make_best())
    assert table.empty
    draw_learning_curves(table).canvas.draw()


def test_schedule_colors_are_the_same_in_every_figure() -> None:
    everything = schedule_colors([*KNOWN_SCHEDULES, "mine"])
    assert schedule_colors(["cosine"])["cosine"] == everything["cosine"]
    assert schedule_colors(["warmup_cosine", "step"]) == {name: everything[name] for name in ("step", "warmup_cosine")}
    assert len(set(everything.values())) == len(everything)
    assert list(schedule_colors(["step", "constant"])) == ["constant", "step"]


def test_seed_std() -> None:
    assert seed_std(pd.Series([0.25, 0.75])) == pytest.approx(math.sqrt(0.125), rel=1e-15)
    assert seed_std(pd.Series([0.5, NAN])) == 0.0
    assert math.isnan(seed_std(pd.Series([NAN, NAN])))
