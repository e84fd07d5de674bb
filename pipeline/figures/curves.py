"""``learning_curves``: loss per epoch at the recommended rate and its two grid neighbours."""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from pipeline.figures.common import (
    DIVERGED_MARKER,
    MARK_TOP,
    check_columns,
    mark_handle,
    numeric,
    panel_grid,
    plain_log_labels,
    rate_label,
    sorted_names,
)

#: Columns of ``curves.csv`` and ``best.csv`` the table reads.
CURVES_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "lr", "seed", "epoch", "loss", "val_loss")
BEST_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "lr")

#: Columns of the learning-curves table, in order.
LEARNING_CURVES_COLUMNS: tuple[str, ...] = (
    "optimizer",
    "schedule",
    "lr",
    "role",
    "epoch",
    "loss",
    "val_loss",
    "seeds",
)

#: The rates of a panel, in drawing order, and their colours.
ROLES: tuple[str, ...] = ("lower", "best", "higher")
ROLE_COLORS: Dict[str, str] = {"lower": "#1f77b4", "best": "#222222", "higher": "#d62728"}

#: Values above this multiple of the largest finite first-epoch loss of a figure are drawn
#: clipped at the top, like non-finite ones: a blown-up run would otherwise squash every
#: healthy curve into the bottom of the panels.
CLIP_FACTOR = 10.0


def _neighbours(rates: List[float], best: float) -> Dict[str, float]:
    """The best rate and the grid rates just below and above it (absent at an edge)."""
    roles = {"best": best}
    lower = [rate for rate in rates if rate < best]
    higher = [rate for rate in rates if rate > best]
    if lower:
        roles["lower"] = max(lower)
    if higher:
        roles["higher"] = min(higher)
    return roles


def learning_curves_table(curves: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer × schedule of ``best``, the mean curves of the best rate and its neighbours.

    The neighbours are the rates just below (``lower``) and above (``higher``) the best rate
    among the rates of that optimizer × schedule in ``curves`` (one or none at an edge of the
    grid). ``loss`` and ``val_loss`` are means over the seeds that ran the epoch (runs may stop
    early; ``seeds`` counts them). A non-finite value of any seed makes the epoch's mean
    non-finite (NaN, or inf when every non-finite value is +inf): a seed that blew up must not
    vanish from the average, and the drawing marks those epochs.

    Args:
        curves: ``curves.csv``: one row per run and epoch.
        best: ``best.csv``: one row per optimizer × schedule with its recommended ``lr``.

    Returns:
        The table, sorted by optimizer, schedule, role (lower, best, higher) and epoch.
    """
    check_columns(curves, CURVES_COLUMNS, "curves")
    check_columns(best, BEST_COLUMNS, "best")
    frame = curves.loc[:, list(CURVES_COLUMNS)].copy()
    frame["lr"] = frame["lr"].astype(float)
    frame["loss"] = numeric(frame["loss"])
    frame["val_loss"] = numeric(frame["val_loss"])
    pieces: List[pd.DataFrame] = []
    for row in best.sort_values(["optimizer", "schedule"], kind="stable").itertuples(index=False):
        cell = frame[(frame["optimizer"] == row.optimizer) & (frame["schedule"] == row.schedule)]
        rates = sorted(cell["lr"].unique())
        for role, lr in _neighbours(rates, float(row.lr)).items():
            runs = cell[cell["lr"] == lr]
            if runs.empty:
                continue
            # skipna=False: one seed's NaN or inf makes the epoch's mean non-finite.
            means = runs.groupby("epoch", sort=True).agg(
                loss=("loss", lambda values: values.mean(skipna=False)),
                val_loss=("val_loss", lambda values: values.mean(skipna=False)),
                seeds=("seed", "nunique"),
            )
            piece = means.reset_index()
            piece.insert(0, "role", role)
            piece.insert(0, "lr", lr)
            piece.insert(0, "schedule", row.schedule)
            piece.insert(0, "optimizer", row.optimizer)
            pieces.append(piece)
    if not pieces:
        return pd.DataFrame(columns=list(LEARNING_CURVES_COLUMNS))
    table = pd.concat(pieces, ignore_index=True)
    table["_role"] = table["role"].map(ROLES.index)
    table = table.sort_values(["optimizer", "schedule", "_role", "epoch"], kind="stable").reset_index(drop=True)
    table["epoch"] = table["epoch"].astype(int)
    table["seeds"] = table["seeds"].astype(int)
    return table.loc[:, list(LEARNING_CURVES_COLUMNS)]


def _clip_top(table: pd.DataFrame) -> float:
    """The highest value drawn as is: the largest finite value, at most :data:`CLIP_FACTOR`
    times the largest finite first-epoch value of the best rates.

    The reference is the best rates' first epoch (the others' where no best rate has one): a
    rate that blew up in its first epoch would otherwise set its own clipping level.
    """
    values = pd.concat([numeric(table["loss"]), numeric(table["val_loss"])]).to_numpy()
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return 1.0
    first = table[table["epoch"] == table["epoch"].min()]
    if (first["role"] == "best").any():
        first = first[first["role"] == "best"]
    starts = pd.concat([numeric(first["loss"]), numeric(first["val_loss"])]).to_numpy()
    starts = starts[np.isfinite(starts) & (starts > 0)]
    top = float(values.max())
    return min(top, CLIP_FACTOR * float(starts.max())) if starts.size else top


def draw_learning_curves(table: pd.DataFrame) -> Figure:
    """Draw a :func:`learning_curves_table`: rows of optimizers, columns of schedules.

    In each panel, the training loss (solid) and validation loss (dashed) per epoch of the
    best rate (black) and its lower (blue) and higher (red) neighbours, on a log y axis
    shared by all panels. Epochs whose mean is non-finite or above the clipping level
    (:data:`CLIP_FACTOR`) are marked with an 'x' at the top of the panel; the line breaks
    there.

    Args:
        table: A table as returned by :func:`learning_curves_table`.

    Returns:
        The figure (not attached to pyplot).
    """
    check_columns(table, LEARNING_CURVES_COLUMNS, "learning-curves table")
    optimizers = sorted_names(table["optimizer"])
    schedules = sorted_names(table["schedule"])
    figure, axes = panel_grid(
        len(optimizers), len(schedules), sharex=True, sharey=True, panel_size=(3.4, 2.8), extra_width=1.8
    )
    top = _clip_top(table)
    clipped_any = False
    for row_index, optimizer in enumerate(optimizers):
        for column_index, schedule in enumerate(schedules):
            ax = axes[row_index, column_index]
            panel = table[(table["optimizer"].astype(str) == optimizer) & (table["schedule"].astype(str) == schedule)]
            if panel.empty:
                ax.set_axis_off()
                continue
            transform = blended_transform_factory(ax.transData, ax.transAxes)
            for role in ROLES:
                rows = panel[panel["role"] == role].sort_values("epoch")
                if rows.empty:
                    continue
                color = ROLE_COLORS[role]
                epochs = rows["epoch"].to_numpy(dtype=float)
                lr = float(rows["lr"].iloc[0])
                for column, style in (("loss", "-"), ("val_loss", "--")):
                    values = numeric(rows[column]).to_numpy()
                    shown = np.isfinite(values) & (values <= top)
                    label = f"{role} {rate_label(lr)}" if column == "loss" else None
                    ax.plot(epochs, np.where(shown, values, np.nan), linestyle=style, color=color, label=label)
                    # A point with no drawn neighbour (a one-epoch run) would be invisible as a line.
                    before = np.concatenate([[False], shown[:-1]])
                    after = np.concatenate([shown[1:], [False]])
                    alone = shown & ~before & ~after
                    if alone.any():
                        ax.plot(epochs[alone], values[alone], linestyle="none", marker="o", markersize=4, color=color)
                    if (~shown).any():
                        clipped_any = True
                        ax.plot(
                            epochs[~shown],
                            np.full(int((~shown).sum()), MARK_TOP),
                            linestyle="none",
                            marker=DIVERGED_MARKER,
                            markersize=7,
                            markeredgewidth=2,
                            color=color,
                            transform=transform,
                            clip_on=False,
                            gid="clipped",
                        )
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize=7, loc="best", frameon=False, title="rate", title_fontsize=7)
            if row_index == 0:
                ax.set_title(schedule)
            if row_index == len(optimizers) - 1:
                ax.set_xlabel("epoch")
            if column_index == 0:
                ax.set_ylabel(f"{optimizer}\nloss (mean over seeds)")

    used = [ax for ax in axes.ravel() if ax.axison]
    if used:
        finite = pd.concat([numeric(table["loss"]), numeric(table["val_loss"])]).to_numpy()
        finite = finite[np.isfinite(finite) & (finite > 0) & (finite <= top)]
        if finite.size:
            low, high = float(finite.min()), float(finite.max())
            # Room above the data for the markers: the data ends at ~85% of the log height.
            span = max(np.log10(high) - np.log10(low), 0.3)
            used[0].set_ylim(10 ** (np.log10(low) - 0.05 * span), 10 ** (np.log10(high) + 0.2 * span))
            plain_log_labels(used[0])
    handles = [
        Line2D([], [], color="0.2", linestyle="-", label="train loss"),
        Line2D([], [], color="0.2", linestyle="--", label="val loss"),
        *[Line2D([], [], color=ROLE_COLORS[role], label=role) for role in ROLES],
    ]
    if clipped_any:
        handles.append(mark_handle(DIVERGED_MARKER, "non-finite or\noff the scale"))
    figure.legend(handles=handles, loc="outside right center", frameon=False)
    figure.suptitle("Learning curves at the recommended rate and its grid neighbours")
    return figure
