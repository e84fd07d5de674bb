"""``generalisation_gap``: final validation minus training loss against the learning rate."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from pipeline.tables import RunStatus
from pipeline.values import std_over_present_seeds
from pipeline.figures.common import (
    DIVERGED_MARK,
    KEYS,
    check_columns,
    draw_rate_figure,
    finite,
    select_columns,
)

#: Columns of ``runs.csv`` the gap table reads.
RUNS_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "lr", "status", "gap")

#: Columns of the gap table, in order.
GAP_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "lr", "gap_mean", "gap_std", "runs", "diverged")


def generalisation_gap_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per optimizer × schedule × lr: the final generalisation gap over seeds.

    ``gap`` (final ``val_loss`` − final ``loss`` of a run) is summarised over the runs that
    finished ``ok`` with a finite gap: a diverged run's last epoch says nothing about how well
    a trained model generalises. ``gap_std`` is the sample standard deviation (ddof=1), 0 for
    one such run, NaN for none. ``runs`` counts all runs of the cell, ``diverged`` those with
    status ``diverged``; cells where every run diverged stay, with NaN gap.

    Args:
        runs: One row per run, with the diagnosis column ``gap``.

    Returns:
        The table, sorted by optimizer, schedule and lr, with a fresh RangeIndex.
    """
    frame = select_columns(runs, RUNS_COLUMNS, "runs")
    status = frame["status"].astype(str)
    frame["_gap"] = finite(frame["gap"]).where(status == RunStatus.OK)
    frame["_diverged"] = (status == RunStatus.DIVERGED).astype(int)
    table = (
        frame.groupby(KEYS, sort=True)
        .agg(
            gap_mean=("_gap", "mean"),
            gap_std=("_gap", std_over_present_seeds),
            runs=("status", "size"),
            diverged=("_diverged", "sum"),
        )
        .reset_index()
    )
    table["runs"] = table["runs"].astype(int)
    table["diverged"] = table["diverged"].astype(int)
    return table.loc[:, list(GAP_COLUMNS)]


def draw_generalisation_gap(table: pd.DataFrame) -> Figure:
    """Draw a :func:`generalisation_gap_table`: a panel per optimizer, a line per schedule.

    Mean final gap against the learning rate (log axis) with a ±1 std band, a dotted line at
    zero gap; panels share the y axis. Diverged runs are marked with an 'x' at the top of the
    panel at their rate, with their count when more than one.

    Args:
        table: A table as returned by :func:`generalisation_gap_table`.

    Returns:
        The figure (not attached to pyplot).
    """
    check_columns(table, GAP_COLUMNS, "gap table")
    marks = [DIVERGED_MARK]
    rows = (("gap_mean", "gap_std", "final val_loss − loss\n(mean ± std over seeds)"),)
    figure = draw_rate_figure(table, rows, marks, sharey=True, zero_line=True)
    figure.suptitle("Generalisation gap at the end of training, by rate")
    return figure
