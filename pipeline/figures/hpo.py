"""The hyperparameter searches: ``hpo_history`` (best so far against effort) and ``hpo_trials``.

Both read the ``trials.csv`` of one or more searches (one row per Optuna trial, written by
the search jobs) and the grid's ``runs.csv``, which gives the reference: the grid's best
validation loss (``hpo_history``) and its LR-sensitivity curves (``hpo_trials``).

A trial's ``value`` is Optuna's objective: its best validation loss, or a large penalty when
the run diverged. The penalty is not a loss, so it never enters a best-so-far line or a
y axis; diverged trials are marked instead, never dropped.
"""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from pipeline.figures.common import (
    DIVERGED_MARKER,
    MARK_MARGIN,
    MARK_STEP,
    MARK_TOP,
    Color,
    check_columns,
    draw_top_marks,
    finite,
    hide_unused,
    mark_handle,
    numeric,
    pad_log_x,
    panel_grid,
    reserve_top_strip,
    sorted_names,
)
from pipeline.analysis.methods import grid_best_val_loss
from pipeline.tables import RunStatus, TrialState

#: Columns of ``trials.csv`` each table reads.
HISTORY_TRIALS_COLUMNS: tuple[str, ...] = ("search", "trial", "state", "status", "value", "best_val_loss", "seconds")
TRIALS_TRIALS_COLUMNS: tuple[str, ...] = (
    "search",
    "trial",
    "state",
    "status",
    "optimizer",
    "schedule",
    "lr",
    "best_val_loss",
)

#: Columns of ``runs.csv`` each table reads (``hpo_history`` also ``seconds``, where present).
HISTORY_RUNS_COLUMNS: tuple[str, ...] = ("status", "best_val_loss")
TRIALS_RUNS_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "lr", "status", "best_val_loss")

#: Columns of the ``hpo_history`` table, in order.
HPO_HISTORY_COLUMNS: tuple[str, ...] = (
    "kind",
    "search",
    "trial",
    "state",
    "status",
    "value",
    "best_so_far",
    "cumulative_seconds",
)

#: Columns of the ``hpo_trials`` table, in order.
HPO_TRIALS_COLUMNS: tuple[str, ...] = (
    "kind",
    "search",
    "trial",
    "state",
    "status",
    "point",
    "optimizer",
    "schedule",
    "lr",
    "best_val_loss",
    "runs",
    "diverged",
    "used",
)

#: How a trial is drawn in ``hpo_trials`` (its ``point``), and the legend's words for it:
#: a complete trial at its loss (filled), a pruned one at its partial best (open), a diverged
#: one at the top of the panel, any other (failed, still running, no loss) a step below it.
POINT_LABELS: Dict[str, str] = {
    "complete": "complete trial",
    "pruned": "pruned trial (best before it was stopped)",
    "diverged": "diverged trial (at the top)",
    "other": "failed / no val_loss (at the top)",
}

#: Top-marker height of the trials drawn at the top of a panel.
TOP_HEIGHTS: Dict[str, float] = {"diverged": MARK_TOP, "other": MARK_TOP - MARK_STEP}

#: Marker of the ``other`` trials at the top of a panel (diverged ones get the usual 'x').
OTHER_MARKER = "^"

#: Most panels per row of ``hpo_trials``.
PANELS_PER_ROW = 3


def _int_column(values: pd.Series) -> pd.Series:
    """Integers with missing values as ``<NA>`` (Int64), as the CSV reads back as numbers."""
    return pd.Series(
        pd.array([None if pd.isna(value) else int(value) for value in values], dtype="Int64"), index=values.index
    )


def _search_order(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials sorted by search name, then trial number, with ``trial`` as Int64."""
    frame = trials.copy()
    frame["search"] = frame["search"].astype(str)
    frame["trial"] = _int_column(numeric(frame["trial"]))
    return frame.sort_values(["search", "trial"], kind="stable").reset_index(drop=True)


def _is_result(frame: pd.DataFrame) -> pd.Series:
    """Whether each trial's value is a validation loss a search could keep.

    A complete trial whose run finished ``ok`` with a finite ``best_val_loss``: a pruned
    trial was cut short, and the value of a diverged trial (or of one without any finite
    val_loss) is the objective's penalty.
    """
    return (
        (frame["state"].astype(str) == TrialState.COMPLETE)
        & (frame["status"].astype(str) == RunStatus.OK)
        & np.isfinite(numeric(frame["best_val_loss"]))
    )


# --------------------------------------------------------------------------------------
# hpo_history
# --------------------------------------------------------------------------------------


def hpo_history_table(trials: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The numbers behind the search-history figure: best so far per trial, and the grid's best.

    ``kind == "trial"`` rows: one per trial, by search name and trial number, with its
    ``state``, run ``status`` and objective ``value`` as recorded; ``best_so_far`` is the
    lowest value of the search's complete ``ok`` trials with a finite ``best_val_loss`` up to
    and including this one (NaN before the first: pruned trials were cut short and the values
    of diverged trials are penalties, so neither is a result); ``cumulative_seconds`` the training seconds of all the search's
    trials so far, pruned and failed ones included (missing seconds count as 0).

    One ``kind == "grid"`` row (``search`` "grid") carries the reference line: ``value`` and
    ``best_so_far`` are the grid's best (:func:`pipeline.analysis.methods.grid_best_val_loss`),
    ``cumulative_seconds`` the grid's training seconds in all (NaN when ``runs`` has no
    ``seconds``), ``trial`` the number of grid runs.

    Args:
        trials: The ``trials.csv`` rows of one or more searches, concatenated.
        runs: The grid's runs (``runs.csv``).

    Returns:
        The table, columns :data:`HPO_HISTORY_COLUMNS`, with a fresh RangeIndex.
    """
    check_columns(trials, HISTORY_TRIALS_COLUMNS, "trials")
    check_columns(runs, HISTORY_RUNS_COLUMNS, "runs")
    frame = _search_order(trials)
    frame["value"] = numeric(frame["value"])
    result = frame["value"].where(_is_result(frame))
    groups = frame["search"]
    frame["best_so_far"] = result.groupby(groups, sort=False).transform(lambda values: values.cummin().ffill())
    seconds = numeric(frame["seconds"]).fillna(0.0)
    frame["cumulative_seconds"] = seconds.groupby(groups, sort=False).cumsum()
    frame["kind"] = "trial"

    grid_best = grid_best_val_loss(runs)
    grid_seconds = float(numeric(runs["seconds"]).fillna(0.0).sum()) if "seconds" in runs.columns else math.nan
    grid = pd.DataFrame(
        [
            {
                "kind": "grid",
                "search": "grid",
                "trial": len(runs),
                "value": grid_best,
                "best_so_far": grid_best,
                "cumulative_seconds": grid_seconds,
            }
        ]
    )
    table = pd.concat([frame, grid], ignore_index=True).reindex(columns=list(HPO_HISTORY_COLUMNS))
    table["trial"] = _int_column(table["trial"])
    for column in ("value", "best_so_far", "cumulative_seconds"):
        table[column] = table[column].astype(float)
    return table


def search_colors(searches: List[str]) -> Dict[str, Color]:
    """One colour per search in sorted order (tab10, tab20 beyond ten)."""
    names = sorted(set(searches))
    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(index % cmap.N) for index, name in enumerate(names)}


def draw_hpo_history(table: pd.DataFrame) -> Figure:
    """Draw an :func:`hpo_history_table`: best so far against trials (left) and seconds (right).

    One step line per search of its best-so-far validation loss, with a marker per trial
    (filled: complete, open: pruned, ×: diverged) on the line; the grid's best is a dashed
    horizontal line in both panels (its legend entry gives the grid's runs and seconds). The
    panels share the y axis.

    Args:
        table: A table as returned by :func:`hpo_history_table`.

    Returns:
        The figure (not attached to pyplot).
    """
    check_columns(table, HPO_HISTORY_COLUMNS, "hpo history table")
    kind = table["kind"].astype(str)
    trials, grid = table[kind == "trial"], table[kind == "grid"]
    colors = search_colors(sorted_names(trials["search"]))
    figure, axes = panel_grid(1, 2, sharey=True, panel_size=(4.8, 3.8), extra_width=2.4)
    by_trial, by_seconds = axes[0]
    for search, color in colors.items():
        rows = trials[trials["search"].astype(str) == search]
        best = numeric(rows["best_so_far"]).to_numpy()
        state = rows["state"].astype(str).to_numpy()
        diverged = (rows["status"].astype(str) == RunStatus.DIVERGED).to_numpy()
        complete = (state == TrialState.COMPLETE) & ~diverged
        pruned = state == TrialState.PRUNED
        for ax, column in ((by_trial, "trial"), (by_seconds, "cumulative_seconds")):
            x = numeric(rows[column]).to_numpy()
            ax.plot(x, best, drawstyle="steps-post", color=color, linewidth=1.8, label=search, gid=f"best-{search}")
            ax.plot(x[complete], best[complete], "o", color=color, markersize=4, gid="complete")
            ax.plot(x[pruned], best[pruned], "o", color=color, markerfacecolor="none", markersize=5, gid="pruned")
            ax.plot(x[diverged], best[diverged], DIVERGED_MARKER, color=color, markersize=6, gid="diverged")
    handles: List[Line2D] = [Line2D([], [], color=color, linewidth=1.8, label=name) for name, color in colors.items()]
    for _, row in grid.iterrows():
        if not math.isfinite(float(row["best_so_far"])):
            continue
        for ax in (by_trial, by_seconds):
            ax.axhline(float(row["best_so_far"]), color="0.2", linestyle="--", linewidth=1.2, gid="grid-best")
        handles.append(Line2D([], [], color="0.2", linestyle="--", linewidth=1.2, label=_grid_label(row)))
    handles += [
        Line2D([], [], color="0.3", marker="o", markersize=4, linestyle="none", label="complete trial"),
        Line2D([], [], color="0.3", marker="o", mfc="none", markersize=5, linestyle="none", label="pruned trial"),
        mark_handle(DIVERGED_MARKER, "diverged trial"),
    ]
    by_trial.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_trial.set_xlabel("trial number")
    by_seconds.set_xlabel("training seconds, all trials so far")
    by_trial.set_ylabel("best val_loss so far\n(complete trials)")
    by_trial.set_title("against trials")
    by_seconds.set_title("against training time")
    for ax in (by_trial, by_seconds):
        ax.grid(True, alpha=0.3)
    figure.legend(handles=handles, loc="outside right center", frameon=False)
    figure.suptitle("Hyperparameter search: best validation loss so far, against the grid's best")
    return figure


def _grid_label(row: pd.Series) -> str:
    """``grid's best (24 runs, 120 s)``: the reference line and what the grid spent on it."""
    runs = row["trial"]
    spent = [f"{int(runs)} runs"] if not pd.isna(runs) else []
    if math.isfinite(float(row["cumulative_seconds"])):
        spent.append(f"{float(row['cumulative_seconds']):.0f} s")
    return "grid's best" + (f" ({', '.join(spent)})" if spent else "")


# --------------------------------------------------------------------------------------
# hpo_trials
# --------------------------------------------------------------------------------------


def _point(state: str, status: str, loss: float) -> str:
    """How a trial is drawn: a key of :data:`POINT_LABELS`."""
    if status == "diverged":
        return "diverged"
    if math.isfinite(loss) and state in ("complete", "pruned"):
        return state
    return "other"


def hpo_trials_table(trials: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The numbers behind the trials figure: every trial, and the grid's sensitivity curves.

    ``kind == "trial"`` rows: one per trial, by search name and trial number, with its
    optimizer, schedule, ``lr``, ``best_val_loss`` as recorded and ``point``, how it is drawn
    (:data:`POINT_LABELS`: ``complete``, ``pruned``, ``diverged`` or ``other``); ``runs`` and
    ``diverged`` are empty and ``used`` True.

    ``kind == "grid"`` rows: one per optimizer × schedule × rate of the grid, by optimizer,
    schedule and lr: ``best_val_loss`` the mean over its ``ok`` seeds with a finite value
    (NaN when there is none, as in ``lr_sensitivity``), ``runs`` and ``diverged`` its runs
    and diverged runs, ``used`` whether any trial trained that optimizer × schedule (those
    cells are drawn in colour, the others faint).

    Args:
        trials: The ``trials.csv`` rows of one or more searches, concatenated.
        runs: The grid's runs (``runs.csv``).

    Returns:
        The table, columns :data:`HPO_TRIALS_COLUMNS`, with a fresh RangeIndex.
    """
    check_columns(trials, TRIALS_TRIALS_COLUMNS, "trials")
    check_columns(runs, TRIALS_RUNS_COLUMNS, "runs")
    frame = _search_order(trials)
    frame["lr"] = numeric(frame["lr"])
    frame["best_val_loss"] = numeric(frame["best_val_loss"])
    for column in ("optimizer", "schedule"):
        frame[column] = frame[column].astype(str)
    frame["point"] = [
        _point(str(state), str(status), float(loss))
        for state, status, loss in zip(frame["state"], frame["status"], frame["best_val_loss"])
    ]
    frame["kind"] = "trial"
    frame["used"] = True
    used = set(zip(frame["optimizer"], frame["schedule"]))

    grid = runs.loc[:, list(TRIALS_RUNS_COLUMNS)].copy()
    grid["optimizer"] = grid["optimizer"].astype(str)
    grid["schedule"] = grid["schedule"].astype(str)
    grid["lr"] = grid["lr"].astype(float)
    status = grid["status"].astype(str)
    grid["_loss"] = finite(grid["best_val_loss"]).where(status == "ok")
    grid["_diverged"] = (status == "diverged").astype(int)
    cells = (
        grid.groupby(["optimizer", "schedule", "lr"], sort=True, dropna=False)
        .agg(best_val_loss=("_loss", "mean"), runs=("status", "size"), diverged=("_diverged", "sum"))
        .reset_index()
    )
    cells["kind"] = "grid"
    cells["used"] = [cell in used for cell in zip(cells["optimizer"], cells["schedule"])]

    table = pd.concat([frame, cells], ignore_index=True).reindex(columns=list(HPO_TRIALS_COLUMNS))
    for column in ("trial", "runs", "diverged"):
        table[column] = _int_column(table[column])
    for column in ("lr", "best_val_loss"):
        table[column] = table[column].astype(float)
    table["used"] = table["used"].astype(bool)
    return table


def cell_colors(cells: List[Tuple[str, str]]) -> Dict[Tuple[str, str], Color]:
    """One colour per optimizer × schedule, in sorted order (tab10, tab20 beyond ten)."""
    names = sorted(set(cells))
    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(index % cmap.N) for index, name in enumerate(names)}


def _draw_grid_curves(ax: Axes, grid: pd.DataFrame, colors: Dict[Tuple[str, str], Color]) -> None:
    """The grid's sensitivity curves: used cells in their colour, the others faint grey."""
    for (optimizer, schedule), rows in grid.groupby(["optimizer", "schedule"], sort=True):
        rows = rows.sort_values("lr")
        loss = numeric(rows["best_val_loss"]).to_numpy()
        lr = rows["lr"].to_numpy(dtype=float)
        key = (str(optimizer), str(schedule))
        if key in colors:
            ax.plot(lr, loss, color=colors[key], linewidth=1.6, marker="s", markersize=3, alpha=0.8, gid="grid-used")
        else:
            ax.plot(lr, loss, color="0.7", linewidth=1.0, marker=".", markersize=3, alpha=0.6, gid="grid-other")


def _draw_trial_points(ax: Axes, rows: pd.DataFrame, colors: Dict[Tuple[str, str], Color]) -> List[str]:
    """One search's trials: complete filled, pruned open, the rest at the top of the panel.

    Returns:
        The point kinds drawn at the top of the panel.
    """
    top: List[str] = []
    for key, color in colors.items():
        cell = rows[(rows["optimizer"].astype(str) == key[0]) & (rows["schedule"].astype(str) == key[1])]
        point = cell["point"].astype(str)
        lr = cell["lr"].to_numpy(dtype=float)
        loss = numeric(cell["best_val_loss"]).to_numpy()
        complete, pruned = (point == "complete").to_numpy(), (point == "pruned").to_numpy()
        ax.plot(lr[complete], loss[complete], "o", color=color, markersize=6, markeredgecolor="white", gid="complete")
        ax.plot(
            lr[pruned],
            loss[pruned],
            "o",
            color=color,
            markerfacecolor="none",
            markersize=6,
            markeredgewidth=1.5,
            gid="pruned",
        )
        for kind, marker in (("diverged", DIVERGED_MARKER), ("other", OTHER_MARKER)):
            hit = (point == kind).to_numpy()
            if hit.any():
                draw_top_marks(ax, lr[hit], np.ones(int(hit.sum())), TOP_HEIGHTS[kind], color, marker=marker, gid=kind)
                top.append(kind)
    return top


def draw_hpo_trials(table: pd.DataFrame) -> Figure:
    """Draw an :func:`hpo_trials_table`: a panel per search, its trials over the grid's curves.

    Each panel plots the grid's mean best validation loss against the rate (log x axis) for
    every optimizer × schedule, in colour for the cells the searches trained and faint grey
    for the others, and over it the search's trials in their cell's colour: complete trials
    filled, pruned ones open (at the best loss before they were stopped), diverged ones as an
    × and the rest (failed, no loss) as an open triangle at the top of the panel. Panels
    share both axes.

    Args:
        table: A table as returned by :func:`hpo_trials_table`.

    Returns:
        The figure (not attached to pyplot).
    """
    check_columns(table, HPO_TRIALS_COLUMNS, "hpo trials table")
    kind = table["kind"].astype(str)
    trials, grid = table[kind == "trial"], table[kind == "grid"]
    searches = sorted_names(trials["search"])
    used = grid[grid["used"].astype(bool)]
    keys = list(zip(trials["optimizer"].astype(str), trials["schedule"].astype(str)))
    keys += list(zip(used["optimizer"].astype(str), used["schedule"].astype(str)))
    colors = cell_colors(keys)
    rows = max(math.ceil(len(searches) / PANELS_PER_ROW), 1)
    # As square a grid as the panels allow: 4 searches in 2 × 2, not 3 + 1.
    columns = max(math.ceil(len(searches) / rows), 1)
    figure, axes = panel_grid(rows, columns, sharex=True, sharey=True, panel_size=(4.4, 3.8), extra_width=2.8)
    panels = list(axes.ravel())
    top_kinds: set[str] = set()
    for ax, search in zip(panels, searches or [""]):
        _draw_grid_curves(ax, grid, colors)
        top_kinds.update(_draw_trial_points(ax, trials[trials["search"].astype(str) == search], colors))
        ax.set_xscale("log")
        ax.grid(True, which="major", alpha=0.3)
        ax.set_title(search or "no trials")
        ax.set_xlabel("learning rate")
    for row in axes:
        row[0].set_ylabel("best val_loss")
    hide_unused(panels, len(searches))
    pad_log_x(panels[0], table["lr"].to_numpy(dtype=float))
    if top_kinds:
        reserve_top_strip(panels[0], min(TOP_HEIGHTS[kind] for kind in top_kinds) - MARK_MARGIN)

    handles: List[Line2D] = [
        Line2D([], [], color=color, marker="o", linewidth=1.6, label=f"{optimizer} × {schedule}")
        for (optimizer, schedule), color in colors.items()
    ]
    if (~grid["used"].astype(bool)).any():
        handles.append(Line2D([], [], color="0.7", linewidth=1.0, marker=".", markersize=3, label="other grid cells"))
    points = set(trials["point"].astype(str))
    handles.append(Line2D([], [], color="0.3", linewidth=1.6, marker="s", markersize=3, label="grid: mean over seeds"))
    if "complete" in points:
        handles.append(Line2D([], [], color="0.3", marker="o", linestyle="none", label=POINT_LABELS["complete"]))
    if "pruned" in points:
        handles.append(
            Line2D(
                [], [], color="0.3", marker="o", markerfacecolor="none", linestyle="none", label=POINT_LABELS["pruned"]
            )
        )
    for point, marker in (("diverged", DIVERGED_MARKER), ("other", OTHER_MARKER)):
        if point in points:
            handles.append(mark_handle(marker, POINT_LABELS[point]))
    figure.legend(handles=handles, loc="outside right center", frameon=False)
    figure.suptitle("Hyperparameter search: every trial over the grid's learning-rate sensitivity")
    return figure
