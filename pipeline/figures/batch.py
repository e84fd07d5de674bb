"""``batch_scaling``: how the best learning rate moves with the batch size.

Built from ``batch_sizes.csv`` and ``batch_scaling.csv`` (:mod:`pipeline.analysis.batch`): per
optimizer × schedule, the rate the scaling fit uses at each batch size, the fitted line
``best rate ∝ batch_size**k`` through them, and, per optimizer, the linear (k = 1) and
square-root (k = 0.5) rules through the centre of its points, so that a reader sees which
rule the points follow.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pipeline.figures.common import (
    check_columns,
    hide_unused,
    numeric,
    panel_grid,
    schedule_colors,
    sorted_names,
)

#: Columns of ``batch_sizes.csv`` and ``batch_scaling.csv`` read here.
SIZES_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "batch_size", "lr", "lr_fit", "edge")
SCALING_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "exponent", "rule")

#: Columns of the figure's table: per optimizer × schedule × batch size, the fit's rate, the
#: fitted line there, and the two rules' lines through the optimizer's centre.
BATCH_FIGURE_COLUMNS: tuple[str, ...] = (
    "optimizer", "schedule", "batch_size", "lr", "lr_fit", "at_edge", "exponent", "rule", "fitted_lr", "linear_lr",
    "sqrt_lr",
)  # fmt: skip

#: The reference rules drawn in every panel: exponent and line style.
REFERENCES: dict[str, tuple[float, str]] = {"linear_lr": (1.0, "--"), "sqrt_lr": (0.5, ":")}


def _line_through(log_sizes: pd.Series, centre_x: float, centre_y: float, exponent: float) -> pd.Series:
    return 10 ** (centre_y + exponent * (log_sizes - centre_x))


def batch_scaling_table(batch_sizes: pd.DataFrame, batch_scaling: pd.DataFrame) -> pd.DataFrame:
    """The figure's table (see :data:`BATCH_FIGURE_COLUMNS`).

    ``fitted_lr`` is the least-squares line of the cell, ``10**(ȳ + k (log10 B − x̄))`` with
    ``x̄``, ``ȳ`` the means of ``log10 batch_size`` and ``log10 lr_fit`` over its batch sizes
    with a finite ``lr_fit``; ``linear_lr`` and ``sqrt_lr`` the lines of exponent 1 and 0.5
    through the same centre taken over every cell of the optimizer. NaN without finite rates.
    """
    check_columns(batch_sizes, SIZES_COLUMNS, "batch_sizes table")
    check_columns(batch_scaling, SCALING_COLUMNS, "batch_scaling table")
    frame = batch_sizes.loc[:, list(SIZES_COLUMNS)].copy()
    frame["lr"], frame["lr_fit"] = numeric(frame["lr"]), numeric(frame["lr_fit"])
    # "low"/"high" at the grid's edge; empty (NaN when read by pandas) inside it.
    frame["at_edge"] = frame.pop("edge").map(lambda edge: isinstance(edge, str) and edge != "").astype(bool)
    scaling = batch_scaling.loc[:, list(SCALING_COLUMNS)].copy()
    scaling["exponent"] = numeric(scaling["exponent"])
    frame = frame.merge(scaling, on=["optimizer", "schedule"], how="left")
    log_size = np.log10(frame["batch_size"].astype(float))
    log_rate = np.log10(frame["lr_fit"].where(frame["lr_fit"] > 0))
    usable = np.isfinite(log_rate)
    frame["fitted_lr"] = math.nan
    for _, rows in frame[usable].groupby(["optimizer", "schedule"], sort=False):
        centre_x, centre_y = log_size[rows.index].mean(), log_rate[rows.index].mean()
        exponent = float(rows["exponent"].iloc[0])
        if math.isfinite(exponent):
            frame.loc[rows.index, "fitted_lr"] = _line_through(log_size[rows.index], centre_x, centre_y, exponent)
    for column in REFERENCES:
        frame[column] = math.nan
    for _, rows in frame.groupby("optimizer", sort=False):
        kept = rows.index[usable[rows.index]]
        if len(kept) == 0:
            continue
        centre_x, centre_y = log_size[kept].mean(), log_rate[kept].mean()
        for column, (exponent, _) in REFERENCES.items():
            frame.loc[rows.index, column] = _line_through(log_size[rows.index], centre_x, centre_y, exponent)
    frame = frame.sort_values(["optimizer", "schedule", "batch_size"], kind="stable").reset_index(drop=True)
    return frame.loc[:, list(BATCH_FIGURE_COLUMNS)]


def draw_batch_scaling(table: pd.DataFrame) -> Figure:
    """Draw a :func:`batch_scaling_table`: one panel per optimizer, log-log axes.

    Each schedule's rates are points (hollow where the rate is at the grid's edge: a bound,
    not an estimate) joined by its fitted line, labelled with its exponent; the grey lines are
    the linear (dashed) and square-root (dotted) rules through the optimizer's centre.
    """
    check_columns(table, BATCH_FIGURE_COLUMNS, "batch scaling table")
    optimizers = sorted_names(table["optimizer"])
    colors = schedule_colors(sorted_names(table["schedule"]))
    figure, axes = panel_grid(1, len(optimizers), sharey=True, panel_size=(4.2, 3.6), extra_width=1.9)
    row = axes[0]
    for ax, optimizer in zip(row, optimizers):
        panel = table[table["optimizer"].astype(str) == optimizer]
        reference = panel.drop_duplicates("batch_size").sort_values("batch_size")
        for column, (exponent, style) in REFERENCES.items():
            ax.plot(reference["batch_size"], reference[column], linestyle=style, color="0.55", linewidth=1.2, gid=column)
        for schedule, rows in panel.groupby("schedule", sort=True):
            color = colors[str(schedule)]
            rows = rows.sort_values("batch_size")
            at_edge = rows["at_edge"].astype(bool)
            ax.plot(rows["batch_size"][~at_edge], rows["lr_fit"][~at_edge], "o", color=color)
            ax.plot(rows["batch_size"][at_edge], rows["lr_fit"][at_edge], "o", markerfacecolor="none", color=color, gid="edge")
            exponent = float(rows["exponent"].iloc[0])
            label = f"k={exponent:.2f}" if math.isfinite(exponent) else "no fit"
            ax.plot(rows["batch_size"], rows["fitted_lr"], "-", color=color, linewidth=1.5, label=f"{schedule} ({label})")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        sizes = sorted(int(size) for size in panel["batch_size"].unique())
        ax.set_xticks(sizes, [str(size) for size in sizes])
        ax.minorticks_off()
        ax.set_title(optimizer)
        ax.set_xlabel("batch size")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, frameon=False, loc="best")
    row[0].set_ylabel("best learning rate (fit's estimate)")
    hide_unused(row, len(optimizers))
    references = [
        Line2D([], [], color="0.55", linestyle=style, label=f"{name.removesuffix('_lr')} rule (k={exponent:g})")
        for name, (exponent, style) in REFERENCES.items()
    ]
    edge = Line2D([], [], marker="o", linestyle="none", markerfacecolor="none", color="0.3", label="at the grid's edge")
    figure.legend(handles=[*references, edge], loc="outside right center", frameon=False)
    figure.suptitle("Best learning rate against batch size: best rate ∝ batch_size^k")
    return figure
