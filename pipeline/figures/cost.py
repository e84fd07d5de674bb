"""``cost_to_target``: epochs and seconds to reach the target accuracy, against the rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipeline.figures.common import (
    KEYS,
    check_columns,
    draw_rate_figure,
    finite,
    select_columns,
)

#: Columns of ``runs.csv`` the table reads.
RUNS_COLUMNS: tuple[str, ...] = (
    "optimizer",
    "schedule",
    "lr",
    "epochs_to_target",
    "seconds_to_target",
    "target_accuracy",
)

#: Columns of the cost-to-target table, in order. ``never`` = ``runs`` − ``reached``, the
#: count drawn at the top; ``target_accuracy`` is the study's target (in the title).
COST_COLUMNS: tuple[str, ...] = (
    "optimizer",
    "schedule",
    "lr",
    "epochs_mean",
    "seconds_mean",
    "reached",
    "runs",
    "never",
    "target_accuracy",
)

#: Marker of runs that never reached the target: an open triangle, distinct from the 'x' of
#: diverged runs in the other figures.
NEVER_MARKER = "^"


def cost_to_target_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per optimizer × schedule × lr: the mean cost of reaching the target accuracy.

    A run reached the target when its ``epochs_to_target`` is set. ``epochs_mean`` and
    ``seconds_mean`` average the runs that reached it (NaN when none did); ``reached`` counts
    them, ``runs`` counts all runs of the cell (diverged ones included: a run that diverged
    before reaching the target never reached it) and ``never`` the difference.
    ``target_accuracy`` is the cell's target (the study's, the same in every row; NaN if
    unset).

    Args:
        runs: One row per run, with the diagnosis columns ``epochs_to_target``,
            ``seconds_to_target`` and ``target_accuracy``.

    Returns:
        The table, sorted by optimizer, schedule and lr, with a fresh RangeIndex.
    """
    frame = select_columns(runs, RUNS_COLUMNS, "runs")
    epochs = finite(frame["epochs_to_target"])
    frame["_epochs"] = epochs
    frame["_seconds"] = finite(frame["seconds_to_target"]).where(epochs.notna())
    frame["_reached"] = epochs.notna().astype(int)
    frame["_target"] = finite(frame["target_accuracy"])
    table = (
        frame.groupby(KEYS, sort=True)
        .agg(
            epochs_mean=("_epochs", "mean"),
            seconds_mean=("_seconds", "mean"),
            reached=("_reached", "sum"),
            runs=("_reached", "size"),
            target_accuracy=("_target", "max"),
        )
        .reset_index()
    )
    table["reached"] = table["reached"].astype(int)
    table["runs"] = table["runs"].astype(int)
    table["never"] = table["runs"] - table["reached"]
    return table.loc[:, list(COST_COLUMNS)]


def draw_cost_to_target(table: pd.DataFrame) -> Figure:
    """Draw a :func:`cost_to_target_table`: a panel per optimizer, epochs on top, seconds below.

    A line per schedule joins the mean cost of the runs that reached the target, against the
    learning rate (log axis). Runs that never reached it get an open triangle at the top of
    the panel at their rate, with their count when more than one; a rate where no run
    reached the target has no point on the line, only the triangle.

    Args:
        table: A table as returned by :func:`cost_to_target_table`.

    Returns:
        The figure (not attached to pyplot).
    """
    check_columns(table, COST_COLUMNS, "cost-to-target table")
    marks = [("never", NEVER_MARKER, "never", "never reached\n(count)")]
    rows = (
        ("epochs_mean", "", "epochs to target\n(mean over seeds that reached it)"),
        ("seconds_mean", "", "seconds to target\n(mean over seeds that reached it)"),
    )
    figure = draw_rate_figure(table, rows, marks, panel_size=(4.2, 3.2))
    targets = table["target_accuracy"].to_numpy(dtype=float)
    targets = targets[np.isfinite(targets)]
    target = f"val_accuracy ≥ {targets.max():.4g}" if targets.size else "the target accuracy"
    figure.suptitle(f"Cost to reach {target}, by rate")
    return figure
