"""Tests of pipeline.figures.gap: the generalisation-gap table exactly, the drawing structurally."""

from __future__ import annotations

import math

import pytest
from figures_synthetic import L1, L2, L3, NAN, make_runs

from pipeline.figures.gap import GAP_COLUMNS, draw_generalisation_gap, generalisation_gap_table

S = math.sqrt(0.03125)  # the sample std of two values 0.25 apart
T = math.sqrt(0.125)  # ... 0.5 apart

#: (optimizer, schedule, lr, gap_mean, gap_std, runs, diverged), by hand: ok runs with a finite gap.
EXPECTED = [
    ("adam", "constant", L1, 0.375, S, 2, 0),
    ("adam", "constant", L2, 0.25, S, 2, 0),
    ("adam", "constant", L3, NAN, NAN, 2, 2),  # all diverged: kept, NaN
    ("adam", "cosine", L1, 0.25, T, 2, 0),
    ("adam", "cosine", L2, 1.0, 0.0, 2, 1),  # the diverged seed's gap of 2 is left out
    ("adam", "cosine", L3, 0.75, 0.0, 2, 0),  # an ok run's infinite gap is left out
    ("sgd", "constant", L1, 0.0, 0.0, 2, 0),
    ("sgd", "constant", L2, 0.125, 0.0, 2, 0),
    ("sgd", "constant", L3, 0.375, S, 2, 0),
    ("sgd", "cosine", L1, 0.125, S, 2, 0),
    ("sgd", "cosine", L2, 0.5, T, 2, 0),
    ("sgd", "cosine", L3, 0.5, 0.0, 2, 1),
]


def test_generalisation_gap_table_exact() -> None:
    table = generalisation_gap_table(make_runs())
    assert list(table.columns) == list(GAP_COLUMNS)
    assert list(table.index) == list(range(len(EXPECTED)))
    for row, (optimizer, schedule, lr, mean, std, runs, diverged) in zip(table.itertuples(index=False), EXPECTED):
        assert (row.optimizer, row.schedule, row.lr, row.runs, row.diverged) == (
            optimizer,
            schedule,
            lr,
            runs,
            diverged,
        )
        if math.isnan(mean):
            assert math.isnan(row.gap_mean) and math.isnan(row.gap_std)
        else:
            assert row.gap_mean == mean
            assert row.gap_std == pytest.approx(std, rel=1e-15, abs=0)
    assert str(table["runs"].dtype).startswith("int") and str(table["diverged"].dtype).startswith("int")


def test_generalisation_gap_table_names_missing_columns() -> None:
    with pytest.raises(ValueError, match="gap"):
        generalisation_gap_table(make_runs().drop(columns=["gap"]))


def test_draw_generalisation_gap_structure() -> None:
    figure = draw_generalisation_gap(generalisation_gap_table(make_runs()))
    axes = figure.get_axes()
    assert [ax.get_title() for ax in axes] == ["adam", "sgd"]
    assert all(ax.get_xscale() == "log" for ax in axes)
    for ax in axes:
        assert sorted(line.get_label() for line in ax.get_lines() if line.get_marker() == "o") == ["constant", "cosine"]
    marked = [sorted(float(x) for line in ax.get_lines() if line.get_gid() == "diverged" for x in line.get_xdata())
              for ax in axes]  # fmt: skip
    assert marked == [[L2, L3], [L3]]
    assert [text.get_text() for text in axes[0].texts] == ["2"]
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["constant", "cosine", "diverged (count)"]
    figure.canvas.draw()
