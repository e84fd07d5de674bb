"""Tests of pipeline.figures.cost: the cost-to-target table exactly, the drawing structurally."""

from __future__ import annotations

import math

import pytest
from figures_synthetic import L1, L2, L3, NAN, TARGET, make_runs

from pipeline.figures.cost import COST_COLUMNS, NEVER_MARKER, cost_to_target_table, draw_cost_to_target

#: (optimizer, schedule, lr, epochs_mean, seconds_mean, reached, runs, never), by hand.
EXPECTED = [
    ("adam", "constant", L1, 4.0, 2.0, 2, 2, 0),
    ("adam", "constant", L2, 2.0, 1.25, 2, 2, 0),
    ("adam", "constant", L3, NAN, NAN, 0, 2, 2),
    ("adam", "cosine", L1, 4.0, 2.0, 1, 2, 1),
    ("adam", "cosine", L2, 1.5, 0.375, 2, 2, 0),  # a seed that reached the target, then diverged
    ("adam", "cosine", L3, NAN, NAN, 0, 2, 2),
    ("sgd", "constant", L1, NAN, NAN, 0, 2, 2),
    ("sgd", "constant", L2, 5.0, 2.5, 2, 2, 0),
    ("sgd", "constant", L3, 3.0, 1.375, 2, 2, 0),
    ("sgd", "cosine", L1, 5.0, 2.5, 1, 2, 1),
    ("sgd", "cosine", L2, 2.5, 1.0, 2, 2, 0),
    ("sgd", "cosine", L3, NAN, NAN, 0, 2, 2),
]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_cost_to_target_table_exact() -> None:
    table = cost_to_target_table(make_runs())
    assert list(table.columns) == list(COST_COLUMNS)
    assert list(table.index) == list(range(len(EXPECTED)))
    for row, expected in zip(table.itertuples(index=False), EXPECTED):
        optimizer, schedule, lr, epochs, seconds, reached, runs, never = expected
        assert (row.optimizer, row.schedule, row.lr, row.reached, row.runs, row.never) == (
            optimizer, schedule, lr, reached, runs, never,
        )  # fmt: skip
        assert _same(row.epochs_mean, epochs) and _same(row.seconds_mean, seconds)
        assert row.target_accuracy == TARGET


def test_cost_to_target_table_from_csv_floats() -> None:
    # Read back from a CSV, epochs_to_target is float with NaN for "never": same table.
    runs = make_runs()
    runs["epochs_to_target"] = runs["epochs_to_target"].astype(float)
    assert cost_to_target_table(runs).equals(cost_to_target_table(make_runs()))


def test_draw_cost_to_target_structure() -> None:
    figure = draw_cost_to_target(cost_to_target_table(make_runs()))
    axes = figure.get_axes()
    assert len(axes) == 4
    assert [ax.get_title() for ax in axes[:2]] == ["adam", "sgd"]
    assert all(ax.get_xscale() == "log" for ax in axes)
    assert "epochs" in axes[0].get_ylabel() and "seconds" in axes[2].get_ylabel()
    for ax in axes:
        never = [line for line in ax.get_lines() if line.get_gid() == "never"]
        assert all(line.get_marker() == NEVER_MARKER for line in never)
    never_x = sorted(float(x) for line in axes[0].get_lines() if line.get_gid() == "never" for x in line.get_xdata())
    assert never_x == [L1, L3, L3]  # cosine at L1 and L3, constant at L3
    assert "0.875" in figure.get_suptitle()
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == ["constant", "cosine", "never reached\n(count)"]
    figure.canvas.draw()


def test_cost_to_target_table_needs_target_columns() -> None:
    with pytest.raises(ValueError, match="seconds_to_target"):
        cost_to_target_table(make_runs().drop(columns=["seconds_to_target"]))
