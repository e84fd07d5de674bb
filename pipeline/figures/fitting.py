"""``fitting_map``: the fitting diagnosis of every grid cell, one heat map per optimizer."""

from __future__ import annotations

from collections import Counter
from typing import Dict, List

import numpy as np
import pandas as pd
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from pipeline.analysis.diagnosis import FIT_COLORS, FIT_LABELS, FIT_TEXT_COLORS, fit_of_cell
from pipeline.figures.common import KEYS, check_columns, hide_unused, panel_grid, rate_label, select_columns, sorted_names

#: The text written in a cell. Initial letters, except that "unstable" and "underfit" share
#: theirs, so both get a second letter.
FIT_CODES: Dict[str, str] = {"diverged": "D", "unstable": "Us", "underfit": "Uf", "overfit": "O", "good": "G"}

#: Columns of ``runs.csv`` the fitting map reads.
RUNS_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "lr", "fit")

#: Columns of the fitting-map table, in order.
FITTING_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "lr", "fit", "runs", *FIT_LABELS)


def fitting_map_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per optimizer × schedule × lr: the cell's fit label and the count of each label.

    ``fit`` is the majority label over the cell's seeds (:func:`fit_of_cell`), ``runs``
    counts the cell's runs, and one column per label (``diverged`` ... ``good``) counts the
    runs with that label.

    Args:
        runs: One row per run, with the diagnosis column ``fit``.

    Returns:
        The table, sorted by optimizer, schedule and lr, with a fresh RangeIndex.

    Raises:
        ValueError: naming a missing column or an unknown fit label.
    """
    frame = select_columns(runs, RUNS_COLUMNS, "runs")
    rows: List[Dict[str, object]] = []
    for (optimizer, schedule, lr), cell in frame.groupby(KEYS, sort=True):
        labels = cell["fit"].tolist()
        counts = Counter(labels)
        rows.append(
            {
                "optimizer": optimizer,
                "schedule": schedule,
                "lr": float(lr),
                "fit": fit_of_cell(labels),
                "runs": len(labels),
                **{label: int(counts[label]) for label in FIT_LABELS},
            }
        )
    table = pd.DataFrame(rows, columns=list(FITTING_COLUMNS))
    for column in ("runs", *FIT_LABELS):
        table[column] = table[column].astype(int)
    return table.sort_values(KEYS, kind="stable").reset_index(drop=True)


def draw_fitting_map(table: pd.DataFrame) -> Figure:
    """Draw a :func:`fitting_map_table`: per optimizer a grid of schedules × rates.

    Each cell is coloured by its fit label and carries the label's code (``D``, ``Us``,
    ``Uf``, ``O``, ``G``) so that the map reads in grey too; a cell whose seeds disagree
    also shows the share of the majority (``2/3``). Cells that were not run stay white.

    Args:
        table: A table as returned by :func:`fitting_map_table`.

    Returns:
        The figure (not attached to pyplot).
    """
    check_columns(table, FITTING_COLUMNS, "fitting-map table")
    optimizers = sorted_names(table["optimizer"])
    schedules = sorted_names(table["schedule"])
    n_rates = max((table[table["optimizer"].astype(str) == name]["lr"].nunique() for name in optimizers), default=1)
    figure, axes = panel_grid(
        1,
        len(optimizers),
        panel_size=(max(2.4, 0.62 * n_rates + 1.6), max(2.0, 0.5 * len(schedules) + 1.3)),
        extra_width=1.8,
    )
    axes = axes[0]
    cmap = ListedColormap([FIT_COLORS[label] for label in FIT_LABELS]).with_extremes(bad="white")
    norm = BoundaryNorm(np.arange(len(FIT_LABELS) + 1) - 0.5, cmap.N)
    index = {label: number for number, label in enumerate(FIT_LABELS)}

    for ax, optimizer in zip(axes, optimizers):
        panel = table[table["optimizer"].astype(str) == optimizer]
        rates = sorted(panel["lr"].astype(float).unique())
        grid = np.full((len(schedules), len(rates)), np.nan)
        for row in panel.itertuples(index=False):
            y, x = schedules.index(str(row.schedule)), rates.index(float(row.lr))
            grid[y, x] = index[str(row.fit)]
            majority = int(getattr(row, str(row.fit)))
            text = FIT_CODES[str(row.fit)] + ("" if majority == row.runs else f"\n{majority}/{row.runs}")
            ax.text(
                x,
                y,
                text,
                ha="center",
                va="center",
                fontsize=9 if majority == row.runs else 7,
                fontweight="bold",
                color=FIT_TEXT_COLORS[str(row.fit)],
            )
        ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(rates)), [rate_label(rate) for rate in rates], rotation=45, ha="right")
        ax.set_yticks(range(len(schedules)), schedules)
        # Thin white lines between cells.
        ax.set_xticks(np.arange(len(rates) + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(len(schedules) + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="minor", length=0)
        ax.set_title(optimizer)
        ax.set_xlabel("learning rate")
    hide_unused(axes, len(optimizers))
    if optimizers:
        axes[0].set_ylabel("schedule")

    handles = [
        Patch(facecolor=FIT_COLORS[label], edgecolor="none", label=f"{FIT_CODES[label]}  {label}")
        for label in FIT_LABELS
    ]
    figure.legend(handles=handles, loc="outside right center", title="fit (majority of seeds)", frameon=False)
    figure.suptitle("Fitting diagnosis per optimizer, schedule and rate")
    return figure
