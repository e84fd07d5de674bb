"""Tests of pipeline.figures.fitting: the majority rule, the table exactly, the map's structure."""

from __future__ import annotations


import numpy as np
import pytest
from figures_synthetic import L1, L2, L3, make_runs
from matplotlib.colors import to_rgba

from pipeline.figures.fitting import (
    FIT_COLORS,
    FIT_LABELS,
    FITTING_COLUMNS,
    draw_fitting_map,
    fitting_map_table,
)

#: (optimizer, schedule, lr, fit, runs, diverged, unstable, underfit, overfit, good), by hand.
EXPECTED = [
    ("adam", "constant", L1, "underfit", 2, 0, 0, 1, 0, 1),  # tie: the worse label
    ("adam", "constant", L2, "good", 2, 0, 0, 0, 0, 2),
    ("adam", "constant", L3, "diverged", 2, 2, 0, 0, 0, 0),
    ("adam", "cosine", L1, "underfit", 2, 0, 0, 2, 0, 0),
    ("adam", "cosine", L2, "diverged", 2, 1, 0, 0, 1, 0),
    ("adam", "cosine", L3, "unstable", 2, 0, 2, 0, 0, 0),
    ("sgd", "constant", L1, "underfit", 2, 0, 0, 2, 0, 0),
    ("sgd", "constant", L2, "good", 2, 0, 0, 0, 0, 2),
    ("sgd", "constant", L3, "overfit", 2, 0, 0, 0, 1, 1),
    ("sgd", "cosine", L1, "underfit", 2, 0, 0, 1, 0, 1),
    ("sgd", "cosine", L2, "good", 2, 0, 0, 0, 0, 2),
    ("sgd", "cosine", L3, "diverged", 2, 1, 1, 0, 0, 0),
]


def test_fitting_map_table_exact() -> None:
    table = fitting_map_table(make_runs())
    assert list(table.columns) == list(FITTING_COLUMNS)
    assert list(table.columns[-5:]) == list(FIT_LABELS)
    assert list(table.index) == list(range(len(EXPECTED)))
    assert [tuple(row) for row in table.itertuples(index=False)] == EXPECTED
    assert all(str(table[column].dtype).startswith("int") for column in ("runs", *FIT_LABELS))


def test_fitting_map_table_unknown_label_and_missing_column() -> None:
    runs = make_runs()
    runs.loc[0, "fit"] = float("nan")
    with pytest.raises(ValueError, match="unknown fit label"):
        fitting_map_table(runs)
    with pytest.raises(ValueError, match="fit"):
        fitting_map_table(make_runs().drop(columns=["fit"]))


def test_draw_fitting_map_structure() -> None:
    figure = draw_fitting_map(fitting_map_table(make_runs()))
    axes = figure.get_axes()
    assert [ax.get_title() for ax in axes] == ["adam", "sgd"]
    ax = axes[0]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["constant", "cosine"]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["1e-3", "1e-2", "1e-1"]
    # Each cell carries its code (a disagreement also its majority share), row by row.
    texts = [text.get_text() for text in ax.texts]
    assert texts == ["Uf\n1/2", "G", "D", "Uf", "D\n1/2", "Us"]
    # Cell colours: the image's RGBA at each cell is the label's fixed colour.
    image = ax.get_images()[0]
    rgba = image.to_rgba(image.get_array())
    assert np.allclose(rgba[0, 2], to_rgba(FIT_COLORS["diverged"]))
    assert np.allclose(rgba[1, 2], to_rgba(FIT_COLORS["unstable"]))
    assert np.allclose(rgba[0, 1], to_rgba(FIT_COLORS["good"]))
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == ["D  diverged", "Us  unstable", "Uf  underfit", "O  overfit", "G  good"]


def test_draw_fitting_map_single_seed_single_rate_and_missing_cells() -> None:
    runs = make_runs()
    runs = runs[(runs["seed"] == 0) & ~((runs["optimizer"] == "sgd") & (runs["lr"] != L2))]
    runs = runs[~((runs["optimizer"] == "sgd") & (runs["schedule"] == "cosine"))]
    figure = draw_fitting_map(fitting_map_table(runs))
    axes = figure.get_axes()
    assert len(axes) == 2
    assert [label.get_text() for label in axes[1].get_xticklabels()] == ["1e-2"]
    assert [text.get_text() for text in axes[1].texts] == ["G"]
    # The sgd/cosine cell was not run: masked (drawn white), not coloured.
    assert np.ma.getmaskarray(axes[1].get_images()[0].get_array())[1, 0]
    figure.canvas.draw()
