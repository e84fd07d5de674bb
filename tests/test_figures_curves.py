"""Tests of pipeline.figures.curves: neighbours, seed means with early stops and blow-ups, drawing."""

from __future__ import annotations

import math
from typing import Any, List

import numpy as np
import pandas as pd
import pytest
from figures_synthetic import INF, L1, L2, L3, NAN, make_best, make_curves

from pipeline.figures.curves import (
    LEARNING_CURVES_COLUMNS,
    _neighbours,
    draw_learning_curves,
    learning_curves_table,
)


def _rows(table: pd.DataFrame, optimizer: str, schedule: str) -> List[tuple[Any, ...]]:
    cell = table[(table["optimizer"] == optimizer) & (table["schedule"] == schedule)]
    return [
        tuple(row) for row in cell.loc[:, ["lr", "role", "epoch", "loss", "val_loss", "seeds"]].itertuples(index=False)
    ]


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) == len(b) and all(
        (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)) or x == y
        for x, y in zip(a, b)
    )


def test_neighbours() -> None:
    assert _neighbours([L1, L2, L3], L2) == {"best": L2, "lower": L1, "higher": L3}
    assert _neighbours([L1, L2, L3], L1) == {"best": L1, "higher": L2}
    assert _neighbours([L1, L2, L3], L3) == {"best": L3, "lower": L2}
    assert _neighbours([L2], L2) == {"best": L2}


def test_learning_curves_table_exact() -> None:
    table = learning_curves_table(make_curves(), make_best())
    assert list(table.columns) == list(LEARNING_CURVES_COLUMNS)
    assert list(table.index) == list(range(29))
    # adam/constant: best L2 in the middle of the grid, both neighbours; L3 blew up.
    expected = [
        (L1, "lower", 1, 2.625, 3.125, 2),
        (L1, "lower", 2, 2.125, 2.625, 2),
        (L1, "lower", 3, 1.625, 2.125, 2),
        (L2, "best", 1, 2.125, 2.625, 2),
        (L2, "best", 2, 1.625, 2.125, 2),
        (L2, "best", 3, 1.125, 1.625, 2),
        (L3, "higher", 1, NAN, NAN, 2),  # seed 1's NaN makes the mean NaN, not seed 0's 2.25
        (L3, "higher", 2, INF, INF, 1),  # only seed 0 ran epoch 2, to +inf
    ]
    actual = _rows(table, "adam", "constant")
    assert len(actual) == len(expected) and all(_same(a, b) for a, b in zip(actual, expected)), actual
    # Edges: adam/cosine's best is the lowest rate, sgd/constant's the highest.
    assert [(r[0], r[1]) for r in _rows(table, "adam", "cosine")][::3] == [(L1, "best"), (L2, "higher")]
    assert [(r[0], r[1]) for r in _rows(table, "sgd", "constant")][::3] == [(L2, "lower"), (L3, "best")]
    # sgd/cosine at L3: seed 1 stopped after epoch 2; epoch 3 is seed 0 alone.
    higher = [r for r in _rows(table, "sgd", "cosine") if r[1] == "higher"]
    assert higher == [
        (L3, "higher", 1, 2.375, 2.875, 2),
        (L3, "higher", 2, 1.875, 2.375, 2),
        (L3, "higher", 3, 1.25, 1.75, 1),
    ]
    assert str(table["epoch"].dtype).startswith("int") and str(table["seeds"].dtype).startswith("int")


def test_learning_curves_table_single_seed_single_rate() -> None:
    curves = make_curves()
    curves = curves[(curves["seed"] == 0) & (curves["lr"] == L2)]
    table = learning_curves_table(curves, make_best())
    # One rate left: where it is the best rate, it is alone; where the best rate has no curves
    # (adam/cosine: L1, sgd/constant: L3), only the neighbour L2 remains.
    assert [(r[0], r[1]) for r in _rows(table, "adam", "constant")] == [(L2, "best")] * 3
    assert [(r[0], r[1]) for r in _rows(table, "adam", "cosine")] == [(L2, "higher")] * 3
    assert [(r[0], r[1]) for r in _rows(table, "sgd", "constant")] == [(L2, "lower")] * 3
    assert set(table["seeds"]) == {1}


def test_draw_learning_curves_structure() -> None:
    figure = draw_learning_curves(learning_curves_table(make_curves(), make_best()))
    axes = figure.get_axes()
    assert len(axes) == 4  # 2 optimizers x 2 schedules
    assert [ax.get_title() for ax in axes] == ["constant", "cosine", "", ""]
    assert all(ax.get_yscale() == "log" for ax in axes)
    assert "adam" in axes[0].get_ylabel() and "sgd" in axes[2].get_ylabel()
    # adam/constant: 3 rates x (train, val) lines, and the blown-up epochs marked at the top.
    lines = [line for line in axes[0].get_lines() if line.get_gid() != "clipped"]
    assert len(lines) == 6
    clipped = [line for line in axes[0].get_lines() if line.get_gid() == "clipped"]
    assert sorted(float(x) for line in clipped for x in line.get_xdata()) == [1.0, 1.0, 2.0, 2.0]
    assert [text.get_text() for text in axes[0].get_legend().get_texts()] == ["lower 1e-3", "best 1e-2", "higher 1e-1"]
    # Nothing clipped in a healthy panel.
    assert not [line for line in axes[1].get_lines() if line.get_gid() == "clipped"]
    # Top of the shared y range above every finite value.
    assert axes[0].get_ylim()[1] > 3.125
    figure.canvas.draw()


def test_draw_learning_curves_clips_huge_finite_values() -> None:
    curves = make_curves()
    curves.loc[(curves["optimizer"] == "sgd") & (curves["lr"] == L3) & (curves["epoch"] == 3), "loss"] = 1e9
    table = learning_curves_table(curves, make_best())
    figure = draw_learning_curves(table)
    axes = figure.get_axes()
    assert axes[0].get_ylim()[1] < 1e3
    clipped = [line for ax in axes[2:] for line in ax.get_lines() if line.get_gid() == "clipped"]
    assert clipped and all(np.all(np.asarray(line.get_xdata()) == 3.0) for line in clipped)


def test_draw_learning_curves_one_epoch_run_is_a_point_and_sets_no_clip_level() -> None:
    # adam/cosine's higher rate (L2) blew up in epoch 1: a huge first-epoch loss, then stopped.
    curves = make_curves()
    blown = (curves["optimizer"] == "adam") & (curves["schedule"] == "cosine") & (curves["lr"] == L2)
    curves = curves[~blown | (curves["epoch"] == 1)].copy()
    curves.loc[blown, "loss"] = 800.0
    curves.loc[blown, "val_loss"] = 11.0
    figure = draw_learning_curves(learning_curves_table(curves, make_best()))
    ax = figure.get_axes()[1]
    # The 800 is clipped (the clip level comes from the best rates' first epoch, not from it) ...
    clipped = [line for line in ax.get_lines() if line.get_gid() == "clipped"]
    assert [line.get_xdata().tolist() for line in clipped] == [[1.0]]
    # ... and the finite, in-range 11 of the one-epoch run is drawn as a point.
    points = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert [(line.get_xdata().tolist(), line.get_ydata().tolist()) for line in points] == [([1.0], [11.0])]
    assert ax.get_ylim()[1] < 800


def test_learning_curves_table_names_missing_columns() -> None:
    with pytest.raises(ValueError, match="val_loss"):
        learning_curves_table(make_curves().drop(columns=["val_loss"]), make_best())
