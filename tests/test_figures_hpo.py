"""Tests of the search figures ``hpo_history`` and ``hpo_trials``: tables (exact), drawings, CLI.

Data from :mod:`hpo_synthetic`: ``random`` starts with a diverged trial (value 1000, a
penalty) and has a failed one; ``tpe_median`` has two pruned trials (values 1.5 and 0.5, never
a best) and one still running. The grid's best is 0.5 over 14 runs and 28 s; sgd/constant is
a grid cell no trial trained.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import List

import numpy as np
import pandas as pd
import pytest
from hpo_synthetic import L1, L2, L3, all_trials, make_grid_runs, make_trials
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pipeline.figures.cli import main
from pipeline.figures.common import MARK_STEP, MARK_TOP
from pipeline.figures.hpo import (
    HPO_HISTORY_COLUMNS,
    HPO_TRIALS_COLUMNS,
    draw_hpo_history,
    draw_hpo_trials,
    hpo_history_table,
    hpo_trials_table,
)

NAN = math.nan


def trials() -> pd.DataFrame:
    return pd.concat(all_trials(), ignore_index=True)


def visible_panels(figure: Figure) -> List[Axes]:
    return [ax for ax in figure.axes if ax.axison]


def lines(ax: Axes, gid: str) -> list:
    return [line for line in ax.get_lines() if line.get_gid() == gid]


def points(ax: Axes, gid: str) -> list[tuple[float, float]]:
    """The (x, y) of every point drawn with ``gid`` in ``ax``."""
    return sorted(
        (float(x), float(y)) for line in lines(ax, gid) for x, y in zip(line.get_xdata(), line.get_ydata())
    )


# --------------------------------------------------------------------------------------
# hpo_history
# --------------------------------------------------------------------------------------

#: kind, search, trial, state, status, value, best_so_far, cumulative_seconds.
HISTORY = [
    ("trial", "random", 0, "complete", "diverged", 1000.0, NAN, 0.75),
    ("trial", "random", 1, "complete", "ok", 0.875, 0.875, 3.25),
    ("trial", "random", 2, "complete", "ok", 0.5078125, 0.5078125, 5.75),
    ("trial", "random", 3, "fail", NAN, NAN, 0.5078125, 5.75),
    ("trial", "random", 4, "complete", "ok", 0.625, 0.5078125, 8.25),
    ("trial", "tpe_median", 0, "complete", "ok", 1.0, 1.0, 2.0),
    ("trial", "tpe_median", 1, "pruned", "ok", 1.5, 1.0, 3.0),
    ("trial", "tpe_median", 2, "pruned", "ok", 0.5, 1.0, 3.5),
    ("trial", "tpe_median", 3, "complete", "ok", 0.50390625, 0.50390625, 6.5),
    ("trial", "tpe_median", 4, "complete", "ok", 0.4921875, 0.4921875, 8.5),
    ("trial", "tpe_median", 5, "running", NAN, NAN, 0.4921875, 9.75),
    ("grid", "grid", 14, NAN, NAN, 0.5, 0.5, 28.0),
]


def test_history_table_exact() -> None:
    table = hpo_history_table(trials(), make_grid_runs())
    assert list(table.columns) == list(HPO_HISTORY_COLUMNS)
    expected = pd.DataFrame(HISTORY, columns=list(HPO_HISTORY_COLUMNS))
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    assert str(table["trial"].dtype) == "Int64"


def test_history_table_edge_cases() -> None:
    # A complete "ok" trial without any finite val_loss carries the penalty as its value: not a best.
    odd = make_trials("random")
    odd.loc[odd["trial"] == 1, "best_val_loss"] = NAN
    odd.loc[odd["trial"] == 1, "value"] = 9.0
    table = hpo_history_table(odd, make_grid_runs())
    assert table["best_so_far"].tolist()[:3] == pytest.approx([NAN, NAN, 0.5078125], nan_ok=True)
    # runs.csv without seconds: the grid row has no cost; no ok grid run: no reference.
    grid = hpo_history_table(odd, make_grid_runs().drop(columns="seconds").assign(status="diverged")).iloc[-1]
    assert math.isnan(grid["cumulative_seconds"]) and math.isnan(grid["best_so_far"]) and grid["trial"] == 14
    with pytest.raises(ValueError, match="value"):
        hpo_history_table(make_trials("random").drop(columns="value"), make_grid_runs())


def test_draw_history_panels_lines_and_reference() -> None:
    figure = draw_hpo_history(hpo_history_table(trials(), make_grid_runs()))
    by_trial, by_seconds = visible_panels(figure)
    assert (by_trial.get_xlabel(), by_seconds.get_xlabel()) == ("trial number", "training seconds, all trials so far")
    assert by_trial.get_shared_y_axes().joined(by_trial, by_seconds)
    tpe_trial, tpe_seconds = lines(by_trial, "best-tpe_median")[0], lines(by_seconds, "best-tpe_median")[0]
    assert tpe_trial.get_drawstyle() == "steps-post"
    assert list(tpe_trial.get_xdata()) == [0, 1, 2, 3, 4, 5]
    assert list(tpe_seconds.get_xdata()) == [2.0, 3.0, 3.5, 6.5, 8.5, 9.75]
    assert list(tpe_trial.get_ydata()) == [1.0, 1.0, 1.0, 0.50390625, 0.4921875, 0.4921875]
    random = lines(by_trial, "best-random")[0].get_ydata()
    assert np.isnan(random[0]) and list(random[1:]) == [0.875, 0.5078125, 0.5078125, 0.5078125]
    # The grid's best, dashed, in both panels.
    for ax in (by_trial, by_seconds):
        (reference,) = lines(ax, "grid-best")
        assert list(reference.get_ydata()) == [0.5, 0.5] and reference.get_linestyle() == "--"
    # Trial markers on the line: pruned open, the diverged one (no best yet) at NaN.
    assert points(by_trial, "pruned") == [(1.0, 1.0), (2.0, 1.0)]
    assert lines(by_trial, "pruned")[1].get_markerfacecolor() == "none"
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == ["random", "tpe_median", "grid's best (14 runs, 28 s)", "complete trial", "pruned trial", "diverged trial"]


def test_draw_history_without_grid_reference() -> None:
    table = hpo_history_table(trials(), make_grid_runs().assign(status="diverged"))
    figure = draw_hpo_history(table)
    assert all(lines(ax, "grid-best") == [] for ax in visible_panels(figure))
    assert "grid's best" not in " ".join(text.get_text() for text in figure.legends[0].get_texts())


# --------------------------------------------------------------------------------------
# hpo_trials
# --------------------------------------------------------------------------------------

#: The trial rows: search, trial, state, status, point, schedule, lr, best_val_loss (all adam).
TRIAL_POINTS = [
    ("random", 0, "complete", "diverged", "diverged", "constant", 0.5, 0.25),
    ("random", 1, "complete", "ok", "complete", "constant", 3e-3, 0.875),
    ("random", 2, "complete", "ok", "complete", "cosine", 2e-2, 0.5078125),
    ("random", 3, "fail", NAN, "other", "cosine", 1e-4, NAN),
    ("random", 4, "complete", "ok", "complete", "cosine", 1e-2, 0.625),
    ("tpe_median", 0, "complete", "ok", "complete", "constant", 1e-3, 1.0),
    ("tpe_median", 1, "pruned", "ok", "pruned", "constant", 1e-4, 1.5),
    ("tpe_median", 2, "pruned", "ok", "pruned", "cosine", 3e-2, 0.5),
    ("tpe_median", 3, "complete", "ok", "complete", "cosine", 1e-2, 0.50390625),
    ("tpe_median", 4, "complete", "ok", "complete", "cosine", 1.5e-2, 0.4921875),
    ("tpe_median", 5, "running", NAN, "other", "cosine", 2e-2, NAN),
]

#: The grid rows: optimizer, schedule, lr, mean over ok seeds, runs, diverged, used.
GRID_CURVE = [
    ("adam", "constant", L1, 1.125, 2, 0, True),
    ("adam", "constant", L2, 0.6875, 2, 0, True),
    ("adam", "constant", L3, 0.875, 2, 1, True),  # the diverged seed's 0.25 is left out
    ("adam", "cosine", L1, 0.875, 2, 0, True),
    ("adam", "cosine", L2, 0.515625, 2, 0, True),
    ("adam", "cosine", L3, 0.5, 2, 1, True),
    ("sgd", "constant", L2, 0.8125, 2, 0, False),
]


def expected_trials_table() -> pd.DataFrame:
    rows = [
        {"kind": "trial", "search": search, "trial": trial, "state": state, "status": status, "point": point,
         "optimizer": "adam", "schedule": schedule, "lr": lr, "best_val_loss": loss, "runs": NAN, "diverged": NAN,
         "used": True}
        for search, trial, state, status, point, schedule, lr, loss in TRIAL_POINTS
    ] + [
        {"kind": "grid", "search": NAN, "trial": NAN, "state": NAN, "status": NAN, "point": NAN,
         "optimizer": optimizer, "schedule": schedule, "lr": lr, "best_val_loss": loss, "runs": runs,
         "diverged": diverged, "used": used}
        for optimizer, schedule, lr, loss, runs, diverged, used in GRID_CURVE
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=list(HPO_TRIALS_COLUMNS))
    for column in ("trial", "runs", "diverged"):
        table[column] = table[column].astype("Int64")
    return table


def test_trials_table_exact() -> None:
    table = hpo_trials_table(trials(), make_grid_runs())
    assert list(table.columns) == list(HPO_TRIALS_COLUMNS)
    pd.testing.assert_frame_equal(table, expected_trials_table(), check_dtype=False)
    assert table["used"].dtype == bool


def test_trials_table_needs_its_columns() -> None:
    with pytest.raises(ValueError, match="best_val_loss"):
        hpo_trials_table(trials().drop(columns="best_val_loss"), make_grid_runs())
    with pytest.raises(ValueError, match="schedule"):
        hpo_trials_table(trials(), make_grid_runs().drop(columns="schedule"))


def test_draw_trials_panels_log_x_and_grid_curves() -> None:
    figure = draw_hpo_trials(hpo_trials_table(trials(), make_grid_runs()))
    random, tpe = visible_panels(figure)
    assert [random.get_title(), tpe.get_title()] == ["random", "tpe_median"]
    assert random.get_xscale() == tpe.get_xscale() == "log"
    assert random.get_xlabel() == "learning rate" and random.get_ylabel() == "best val_loss"
    for ax in (random, tpe):
        used, other = lines(ax, "grid-used"), lines(ax, "grid-other")
        assert [list(line.get_ydata()) for line in used] == [[1.125, 0.6875, 0.875], [0.875, 0.515625, 0.5]]
        assert len(other) == 1 and list(other[0].get_ydata()) == [0.8125] and other[0].get_color() == "0.7"
    # Every rate is inside the x range, the diverged trial at 0.5 and the failed one at 1e-4 included.
    low, high = random.get_xlim()
    assert low < 1e-4 and high > 0.5


def test_draw_trials_marks_every_trial() -> None:
    figure = draw_hpo_trials(hpo_trials_table(trials(), make_grid_runs()))
    random, tpe = visible_panels(figure)
    assert points(random, "complete") == [(3e-3, 0.875), (1e-2, 0.625), (2e-2, 0.5078125)]
    assert points(tpe, "complete") == [(1e-3, 1.0), (1e-2, 0.50390625), (1.5e-2, 0.4921875)]
    assert points(tpe, "pruned") == [(1e-4, 1.5), (3e-2, 0.5)]
    assert all(line.get_markerfacecolor() == "none" for line in lines(tpe, "pruned") if len(line.get_xdata()))
    # Diverged and other trials sit at the top, in axes coordinates, never dropped.
    assert points(random, "diverged") == [(0.5, MARK_TOP)]
    assert points(random, "other") == [(1e-4, MARK_TOP - MARK_STEP)]
    assert points(tpe, "other") == [(2e-2, MARK_TOP - MARK_STEP)] and points(tpe, "diverged") == []
    # The y range leaves the top strip to the markers: the highest value (1.5) stays below it.
    bottom, top = tpe.get_ylim()
    assert (1.5 - bottom) / (top - bottom) < MARK_TOP - MARK_STEP
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == [
        "adam × constant",
        "adam × cosine",
        "other grid cells",
        "grid: mean over seeds",
        "complete trial",
        "pruned trial (best before it was stopped)",
        "diverged trial (at the top)",
        "failed / no val_loss (at the top)",
    ]


def test_draw_trials_wraps_four_searches_in_two_rows() -> None:
    frames = [make_trials("random").assign(search=name) for name in ("a", "b", "c", "d")]
    figure = draw_hpo_trials(hpo_trials_table(pd.concat(frames, ignore_index=True), make_grid_runs()))
    assert [ax.get_title() for ax in visible_panels(figure)] == ["a", "b", "c", "d"]
    assert len(figure.axes) == 4  # 2 × 2, not 3 + 1


def test_draw_with_no_trials() -> None:
    empty = make_trials("random").iloc[0:0]
    history = hpo_history_table(empty, make_grid_runs())
    assert history["kind"].tolist() == ["grid"]
    assert len(visible_panels(draw_hpo_history(history))) == 2
    table = hpo_trials_table(empty, make_grid_runs())
    assert (table["kind"] == "grid").all() and not table["used"].any()
    figure = draw_hpo_trials(table)
    assert [ax.get_title() for ax in figure.axes] == ["no trials"]


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hpo_history", "hpo_trials"])
def test_cli_writes_png_and_table(tmp_path: Path, name: str) -> None:
    runs = tmp_path / "runs.csv"
    make_grid_runs().to_csv(runs, index=False)
    files = []
    for search in ("tpe_median", "random"):
        path = tmp_path / "hpo" / search / "trials.csv"
        path.parent.mkdir(parents=True)
        make_trials(search).to_csv(path, index=False)
        files.append(str(path))
    out = tmp_path / "figures" / f"{name}.png"
    main([name, "--trials", *files, "--runs", str(runs), "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    expected = {"hpo_history": hpo_history_table, "hpo_trials": hpo_trials_table}[name](trials(), make_grid_runs())
    pd.testing.assert_frame_equal(pd.read_csv(out.with_suffix(".csv")), expected, check_dtype=False)
    assert sorted(path.name for path in out.parent.iterdir()) == [f"{name}.csv", f"{name}.png"]
