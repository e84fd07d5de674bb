"""``schedule_comparison``: each schedule at its own best rate, the fair comparison.

Comparing schedules at one shared rate favours whichever schedule that rate happens to suit;
each schedule is shown here at the rate the study recommends for it (``best.csv``), which
isolates the effect of the schedule from the choice of rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from pipeline.figures.common import (
    DIVERGED_MARKER,
    check_columns,
    hide_unused,
    mark_handle,
    numeric,
    panel_grid,
    rate_label,
    schedule_colors,
    select_columns,
    sorted_names,
)

#: Columns of ``best.csv`` the comparison reads.
BEST_COLUMNS: tuple[str, ...] = (
    "optimizer",
    "schedule",
    "lr",
    "best_val_loss_mean",
    "best_val_loss_std",
    "seeds",
    "diverged_fraction",
    "at_edge",
)

#: Columns of the comparison table, in order: ``rank`` 1 is the best schedule of its optimizer.
COMPARISON_COLUMNS: tuple[str, ...] = ("optimizer", "rank", *BEST_COLUMNS[1:])


def schedule_comparison_table(best: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``best.csv``, ranked per optimizer by ``best_val_loss_mean``, best first.

    A schedule whose every run diverged (NaN mean) ranks last; ties keep the schedule order.

    Args:
        best: ``best.csv``: one row per optimizer × schedule.

    Returns:
        The table, sorted by optimizer and rank, with a fresh RangeIndex.
    """
    frame = select_columns(best, BEST_COLUMNS, "best")
    frame["best_val_loss_mean"] = numeric(frame["best_val_loss_mean"])
    frame["best_val_loss_std"] = numeric(frame["best_val_loss_std"])
    frame["_loss"] = frame["best_val_loss_mean"].where(np.isfinite(frame["best_val_loss_mean"]))
    frame = frame.sort_values(["optimizer", "_loss", "schedule"], kind="stable", na_position="last")
    frame.insert(1, "rank", frame.groupby("optimizer").cumcount() + 1)
    frame["at_edge"] = frame["at_edge"].astype(str).str.lower().isin(["true", "1"])
    return frame.loc[:, list(COMPARISON_COLUMNS)].reset_index(drop=True)


def draw_schedule_comparison(table: pd.DataFrame) -> Figure:
    """Draw a :func:`schedule_comparison_table`: per optimizer, schedules from best (top) down.

    Each schedule is a point at its mean best validation loss with ±1 std error bars, labelled
    with its recommended rate (``edge`` when the rate is at the edge of the grid: the true
    best may lie outside it). A schedule with no finite mean (every run diverged) gets an 'x'
    at the right border. Panels share the x axis.

    Args:
        table: A table as returned by :func:`schedule_comparison_table`.

    Returns:
        The figure (not attached to pyplot).
    """
    check_columns(table, COMPARISON_COLUMNS, "comparison table")
    optimizers = sorted_names(table["optimizer"])
    colors = schedule_colors(sorted_names(table["schedule"]))
    n_rows = max((int((table["optimizer"].astype(str) == name).sum()) for name in optimizers), default=1)
    figure, axes = panel_grid(
        1, len(optimizers), sharex=True, panel_size=(4.2, max(2.2, 0.45 * n_rows + 1.2)), extra_width=0.4
    )
    row = axes[0]
    any_diverged = False
    for ax, optimizer in zip(row, optimizers):
        panel = table[table["optimizer"].astype(str) == optimizer].sort_values("rank")
        positions = np.arange(len(panel))
        transform = blended_transform_factory(ax.transAxes, ax.transData)
        for y, entry in zip(positions, panel.itertuples(index=False)):
            color = colors[str(entry.schedule)]
            mean, std = float(entry.best_val_loss_mean), float(entry.best_val_loss_std)
            label = f"lr {rate_label(entry.lr)}" + (" (edge)" if entry.at_edge else "")
            if np.isfinite(mean):
                ax.errorbar(
                    [mean],
                    [y],
                    xerr=[[std if np.isfinite(std) else 0.0]],
                    fmt="o",
                    color=color,
                    capsize=3,
                    markersize=6,
                )
                ax.annotate(
                    label,
                    xy=(mean, y),
                    xytext=(0, 7),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color="0.25",
                )
            else:
                any_diverged = True
                ax.plot([0.97], [y], marker=DIVERGED_MARKER, markersize=8, markeredgewidth=2, color=color,
                        transform=transform, clip_on=False, gid="diverged")  # fmt: skip
                ax.annotate(label + ": all diverged", xy=(0.95, y), xycoords=transform, ha="right", va="center",
                            fontsize=7, color="0.25")  # fmt: skip
        ax.margins(x=0.15)  # room for the rate labels of the outermost points
        ax.set_yticks(positions, panel["schedule"].astype(str).tolist())
        ax.set_ylim(len(panel) - 0.4, -0.7)  # best at the top, room for the rate labels
        ax.set_title(optimizer)
        ax.set_xlabel("best val_loss at the schedule's best rate\n(mean ± std over seeds)")
        ax.grid(True, axis="x", alpha=0.3)
    hide_unused(row, len(optimizers))
    if any_diverged:
        figure.legend(handles=[mark_handle(DIVERGED_MARKER, "all runs diverged")], loc="outside lower center",
                      frameon=False)  # fmt: skip
    figure.suptitle("Schedules compared at their own best rate (best first)")
    return figure
