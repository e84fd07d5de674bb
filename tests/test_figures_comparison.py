"""Tests of pipeline.figures.comparison: ranking of best.csv exactly, the drawing structurally."""

from __future__ import annotations

import math

from figures_synthetic import L1, L2, L3, make_best

from pipeline.figures.comparison import COMPARISON_COLUMNS, draw_schedule_comparison, schedule_comparison_table


def test_schedule_comparison_table_exact() -> None:
    table = schedule_comparison_table(make_best())
    assert list(table.columns) == list(COMPARISON_COLUMNS)
    assert list(table.index) == [0, 1, 2, 3]
    rows = [(r.optimizer, r.rank, r.schedule, r.lr, r.at_edge) for r in table.itertuples(index=False)]
    assert rows == [
        ("adam", 1, "cosine", L1, True),  # 0.25 beats constant's 0.5
        ("adam", 2, "constant", L2, False),
        ("sgd", 1, "constant", L3, True),
        ("sgd", 2, "cosine", L2, False),  # NaN mean: last
    ]
    assert table["best_val_loss_mean"].tolist()[:3] == [0.25, 0.5, 0.75]
    assert math.isnan(table["best_val_loss_mean"].iloc[3])
    assert table["best_val_loss_std"].tolist()[:3] == [0.0, 0.125, 0.25]


def test_schedule_comparison_table_reads_csv_booleans() -> None:
    best = make_best()
    best["at_edge"] = best["at_edge"].map({True: "True", False: "False"})
    assert schedule_comparison_table(best)["at_edge"].tolist() == [True, False, True, False]


def test_draw_schedule_comparison_structure() -> None:
    figure = draw_schedule_comparison(schedule_comparison_table(make_best()))
    axes = figure.get_axes()
    assert [ax.get_title() for ax in axes] == ["adam", "sgd"]
    assert axes[0].get_shared_x_axes().joined(axes[0], axes[1])
    # Best first: the top tick (position 0, drawn at the top) is the winner.
    assert [label.get_text() for label in axes[0].get_yticklabels()] == ["cosine", "constant"]
    low, high = axes[0].get_ylim()
    assert low > high  # inverted: position 0 on top
    assert [text.get_text() for text in axes[0].texts] == ["lr 1e-3 (edge)", "lr 1e-2"]
    assert [text.get_text() for text in axes[1].texts] == ["lr 1e-1 (edge)", "lr 1e-2: all diverged"]
    assert [line.get_gid() for line in axes[1].get_lines() if line.get_gid() == "diverged"] == ["diverged"]
    figure.canvas.draw()
