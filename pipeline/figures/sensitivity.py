"""``lr_sensitivity``: best validation loss and accuracy against the learning rate."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from pipeline.figures.common import (
    DIVERGED_MARK,
    KEYS,
    check_columns,
    draw_rate_figure,
    finite,
    select_columns,
)

#: Columns of ``runs.csv`` the sensitivity table reads.
RUNS_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "lr", "status", "best_val_loss", "best_val_accuracy")

#: Columns of the sensitivity table, in order.
SENSITIVITY_COLUMNS: tuple[str, ...] = (
    "optimizer",
    "schedule",
    "lr",
    "val_loss_mean",
    "val_loss_std",
    "val_accuracy_mean",
    "val_accuracy_std",
    "runs",
    "diverged",
)


def lr_sensitivity_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The numbers behind the LR-sensitivity figure: one row per optimizer × schedule × lr.

    ``val_loss_*`` and ``val_accuracy_*`` summarise ``best_val_loss`` and
    ``best_val_accuracy`` over the seeds whose run finished ``ok`` with a finite value: a
    diverged run's best value is only the best epoch before it blew up, so averaging it in
    would flatter an unstable rate. Standard deviations are the sample standard deviation
    (ddof=1), 0 for a single such seed and NaN with none. ``runs`` counts all runs of the
    cell, ``diverged`` those with status ``diverged``. Cells where every run diverged stay in
    the table (with NaN means) because the divergence is itself the result the figure has to
    show.

    Args:
        runs: One row per training run, as in ``runs.csv``.

    Returns:
        The table, sorted by optimizer, schedule and lr, with a fresh RangeIndex.
    """
    frame = select_columns(runs, RUNS_COLUMNS, "runs")
    status = frame["status"].astype(str)
    for column, value in (("best_val_loss", "_loss"), ("best_val_accuracy", "_accuracy")):
        # Only ok runs with a finite value count; others become NaN, which mean/std skip,
        # while the cell itself survives the groupby.
        frame[value] = finite(frame[column]).where(status == "ok")
    frame["_diverged"] = (status == "diverged").astype(int)

    groups = frame.groupby(KEYS, sort=True, dropna=False)
    table = groups.agg(
        val_loss_mean=("_loss", "mean"),
        val_loss_std=("_loss", "std"),
        _loss_count=("_loss", "count"),
        val_accuracy_mean=("_accuracy", "mean"),
        val_accuracy_std=("_accuracy", "std"),
        _accuracy_count=("_accuracy", "count"),
        runs=("status", "size"),
        diverged=("_diverged", "sum"),
    ).reset_index()
    # pandas gives NaN for the std of one value; one seed has no spread, so 0 is the truth.
    table.loc[table["_loss_count"] == 1, "val_loss_std"] = 0.0
    table.loc[table["_accuracy_count"] == 1, "val_accuracy_std"] = 0.0
    table["runs"] = table["runs"].astype(int)
    table["diverged"] = table["diverged"].astype(int)
    table = table.sort_values(KEYS, kind="stable").reset_index(drop=True)
    return table.loc[:, list(SENSITIVITY_COLUMNS)]


def draw_lr_sensitivity(table: pd.DataFrame) -> Figure:
    """Draw a :func:`lr_sensitivity_table`: a panel per optimizer, a line per schedule, two rows.

    The top row plots the mean best validation loss against the learning rate (log axis),
    the bottom row the mean best validation accuracy, each with a ±1 std band; panels of a
    row share the y axis so optimizers compare directly. Diverged runs are marked with an 'x'
    at the top of every panel at their rate, with their count when more than one. A panel
    whose runs all diverged still shows its markers.

    Args:
        table: A table as returned by :func:`lr_sensitivity_table`.

    Returns:
        The figure; it is not attached to pyplot, so the caller owns (and may drop) it.
    """
    check_columns(table, SENSITIVITY_COLUMNS, "sensitivity table")
    marks = [DIVERGED_MARK]
    rows = (
        ("val_loss_mean", "val_loss_std", "best val_loss\n(mean ± std over seeds)"),
        ("val_accuracy_mean", "val_accuracy_std", "best val_accuracy\n(mean ± std over seeds)"),
    )
    figure = draw_rate_figure(table, rows, marks, panel_size=(4.2, 3.4))
    figure.suptitle("Learning-rate sensitivity: best validation loss and accuracy by rate")
    return figure

