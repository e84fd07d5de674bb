"""Every figure draws from degenerate studies: one seed, one rate, all runs diverged, NaNs.

Also the pieces shared by all figures (:mod:`pipeline.figures.common`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pandas as pd
import pytest
from figures_synthetic import L2, NAN, make_best, make_curves, make_runs
from PIL import Image

from pipeline.figures.cli import load_input, render
from pipeline.figures.common import KNOWN_SCHEDULES, schedule_colors
from pipeline.values import std_over_present_seeds as seed_std
from pipeline.figures.cost import cost_to_target_table
from pipeline.figures.curves import draw_learning_curves, learning_curves_table
from pipeline.figures.fitting import fitting_map_table
from pipeline.figures.registry import FIGURES
from pipeline.figures.sensitivity import draw_lr_sensitivity, lr_sensitivity_table


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


#: The figures drawn from the study's CSV tables alone (no config, range test or search).
CSV_FIGURES = [name for name, spec in FIGURES.items() if set(spec.inputs) <= {"runs", "curves", "best"}]


def test_csv_figures_are_the_six_grid_figures() -> None:
    assert CSV_FIGURES == [
        "lr_sensitivity", "fitting_map", "learning_curves", "generalisation_gap", "schedule_comparison", "cost_to_target",
    ]  # fmt: skip


@pytest.mark.parametrize("name", CSV_FIGURES)
@pytest.mark.parametrize("study", list(STUDIES))
def test_every_csv_figure_draws(study: str, name: str, tmp_path: Path) -> None:
    # Rendered as the figure job renders it: from the study's files to the PNG and its table.
    spec = FIGURES[name]
    paths = {}
    for kind, frame in STUDIES[study]().items():
        paths[kind] = tmp_path / f"{kind}.csv"
        frame.to_csv(paths[kind], index=False)
    out = tmp_path / "figures" / f"{name}.png"
    returned = render(name, out, {kind: paths[kind] for kind in spec.inputs})
    expected = spec.table_function()(**{kind: load_input(kind, paths[kind]) for kind in spec.inputs})
    pd.testing.assert_frame_equal(returned, expected)
    pd.testing.assert_frame_equal(pd.read_csv(out.with_suffix(".csv")), expected, check_dtype=False)
    # The PNG is the drawing of that table, whole: its pixel size is the figure's at 150 dpi.
    figure = spec.draw_function()(expected)
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == tuple(round(inches * 150) for inches in figure.get_size_inches())


def test_all_diverged_study_marks_every_cell() -> None:
    runs = _all_diverged()["runs"]
    table = lr_sensitivity_table(runs)
    assert (table["diverged"] == table["runs"]).all() and len(table) == 12
    figure = draw_lr_sensitivity(table)
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
