"""``schedule_shapes``: the rate each schedule gave per optimizer step at the recommended rate.

Evaluating a schedule needs Keras (:mod:`pipeline.training.schedules`); it is imported inside
:func:`schedule_shapes_table` only, so that importing the figures stays TensorFlow-free and
only this figure's job pays for the import.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pipeline.figures.common import (
    check_columns,
    hide_unused,
    numeric,
    panel_grid,
    rate_label,
    schedule_colors,
    sorted_names,
)

#: Columns of the inputs the table reads.
BEST_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "lr")
RUNS_COLUMNS: tuple[str, ...] = ("status", "steps", "epochs_run")
CURVES_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "lr", "seed", "epoch", "current_lr")

#: Columns of the schedule-shapes table, in order. ``source`` is ``schedule`` for the rate
#: the schedule gives at ``step``, ``optimizer`` for the rate the optimizer reported at the
#: end of an epoch (``current_lr`` of ``curves.csv``, the rate of step epoch × steps per epoch).
SHAPES_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "lr", "source", "step", "rate")

#: Most evaluated steps per curve in the table (first and last always included).
MAX_POINTS = 500


def steps_per_epoch(runs: pd.DataFrame) -> int:
    """Optimizer steps per epoch of the study: ``steps / epochs_run`` of its ``ok`` runs.

    Every run of a study sees the same data in the same batches, so they all agree; runs
    that diverged are used only when no run finished ``ok``.

    Raises:
        ValueError: if no run ran an epoch, or the runs disagree.
    """
    check_columns(runs, RUNS_COLUMNS, "runs")
    steps, epochs = numeric(runs["steps"]), numeric(runs["epochs_run"])
    usable = np.isfinite(steps) & np.isfinite(epochs) & (epochs > 0)
    ok = usable & (runs["status"].astype(str) == "ok")
    chosen = ok if ok.any() else usable
    if not chosen.any():
        raise ValueError("no run in runs.csv ran a whole epoch: steps per epoch unknown")
    ratios = sorted(set((steps[chosen] / epochs[chosen]).round(6)))
    if len(ratios) != 1 or ratios[0] != int(ratios[0]) or ratios[0] < 1:
        raise ValueError(f"runs disagree on the steps per epoch (steps / epochs_run): {ratios}")
    return int(ratios[0])


def sample_steps(total_steps: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """At most ``max_points`` evenly spread steps of ``0 .. total_steps - 1``, both ends included."""
    if total_steps <= max_points:
        return np.arange(total_steps, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, total_steps - 1, max_points)).astype(np.int64))


def schedule_shapes_table(
    config: Mapping[str, Any],
    best: pd.DataFrame,
    runs: pd.DataFrame,
    curves: Optional[pd.DataFrame] = None,
    max_points: int = MAX_POINTS,
) -> pd.DataFrame:
    """Per optimizer × schedule of ``best``, the schedule's rate per step at the best rate.

    The ``schedule`` rows evaluate ``pipeline.training.schedules.build_schedule`` exactly as training
    does (``config["schedule"][<schedule>]``, ``study.epochs`` of ``config``, the steps per
    epoch of :func:`steps_per_epoch`) at up to ``max_points`` steps. The ``optimizer`` rows
    are what the optimizer reported at each epoch's end (``curves.csv`` ``current_lr`` of the
    best rate's lowest seed that ran the epoch) at step epoch × steps per epoch: the two
    sources agreeing is the check that the schedule trained as configured.

    Args:
        config: The study's ``config.yaml`` as a mapping.
        best: ``best.csv``.
        runs: ``runs.csv`` (for the steps per epoch).
        curves: ``curves.csv``; without it the table has no ``optimizer`` rows.
        max_points: Most evaluated steps per schedule curve.

    Returns:
        The table, sorted by optimizer, schedule, source (schedule first) and step.

    Raises:
        ValueError: if an input lacks a column or a schedule of ``best`` is not in ``config``.
    """
    from pipeline.training.schedules import build_schedule, schedule_curve  # imports Keras

    check_columns(best, BEST_COLUMNS, "best")
    per_epoch = steps_per_epoch(runs)
    epochs = int(config["study"]["epochs"])
    options = config.get("schedule") or {}
    if curves is not None:
        check_columns(curves, CURVES_COLUMNS, "curves")
    pieces: List[pd.DataFrame] = []
    for row in best.sort_values(["optimizer", "schedule"], kind="stable").itertuples(index=False):
        name, lr = str(row.schedule), float(row.lr)
        if name not in options:
            raise ValueError(f"schedule {name!r} of best.csv is not in config.yaml (it has {sorted(options)})")
        schedule = build_schedule({**options[name], "name": name}, lr, per_epoch, epochs)
        steps = sample_steps(per_epoch * epochs, max_points)
        rates = schedule_curve(schedule, steps)
        pieces.append(_piece(row.optimizer, name, lr, "schedule", steps, rates))
        if curves is not None:
            cell = curves[(curves["optimizer"] == row.optimizer) & (curves["schedule"] == name)]
            cell = cell[cell["lr"].astype(float) == lr].sort_values(["epoch", "seed"], kind="stable")
            reported = cell.drop_duplicates("epoch", keep="first")
            if not reported.empty:
                epochs_done = reported["epoch"].to_numpy(dtype=np.int64)
                pieces.append(
                    _piece(
                        row.optimizer,
                        name,
                        lr,
                        "optimizer",
                        epochs_done * per_epoch,
                        numeric(reported["current_lr"]).to_numpy(),
                    )
                )
    if not pieces:
        return pd.DataFrame(columns=list(SHAPES_COLUMNS))
    table = pd.concat(pieces, ignore_index=True)
    table["step"] = table["step"].astype(np.int64)
    return table.loc[:, list(SHAPES_COLUMNS)]


def _piece(optimizer: str, schedule: str, lr: float, source: str, steps: np.ndarray, rates: np.ndarray) -> pd.DataFrame:
    columns: Dict[str, Any] = {
        "optimizer": optimizer,
        "schedule": schedule,
        "lr": lr,
        "source": source,
        "step": np.asarray(steps, dtype=np.int64),
        "rate": np.asarray(rates, dtype=float),
    }
    return pd.DataFrame(columns)


def draw_schedule_shapes(table: pd.DataFrame) -> Figure:
    """Draw a :func:`schedule_shapes_table`: a panel per optimizer, a line per schedule.

    The schedule's rate per step is the line (log y: the rate 0 of a warm-up's first step is
    off the axis); the rates the optimizer reported at epoch ends are open circles on it.

    Args:
        table: A table as returned by :func:`schedule_shapes_table`.

    Returns:
        The figure (not attached to pyplot).
    """
    check_columns(table, SHAPES_COLUMNS, "schedule-shapes table")
    optimizers = sorted_names(table["optimizer"])
    colors = schedule_colors(sorted_names(table["schedule"]))
    figure, axes = panel_grid(1, len(optimizers), sharex=True, sharey=True, extra_width=2.0)
    row = axes[0]
    for ax, optimizer in zip(row, optimizers):
        panel = table[table["optimizer"].astype(str) == optimizer]
        for schedule, color in colors.items():
            cell = panel[panel["schedule"].astype(str) == schedule]
            if cell.empty:
                continue
            lr = float(cell["lr"].iloc[0])
            curve = cell[cell["source"] == "schedule"].sort_values("step")
            rates = numeric(curve["rate"]).to_numpy()
            ax.plot(
                curve["step"].to_numpy(dtype=float),
                np.where(rates > 0, rates, np.nan),
                color=color,
                linewidth=1.6,
                label=f"{schedule} {rate_label(lr)}",
            )
            reported = cell[cell["source"] == "optimizer"].sort_values("step")
            if not reported.empty:
                values = numeric(reported["rate"]).to_numpy()
                ax.plot(
                    reported["step"].to_numpy(dtype=float),
                    np.where(values > 0, values, np.nan),
                    linestyle="none",
                    marker="o",
                    markersize=5,
                    markerfacecolor="none",
                    markeredgewidth=1.2,
                    color=color,
                    gid="reported",
                )
        ax.set_yscale("log")
        ax.set_title(optimizer)
        ax.set_xlabel("optimizer step")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, frameon=False, loc="lower left", title="schedule, peak rate", title_fontsize=7)
    hide_unused(row, len(optimizers))
    row[0].set_ylabel("learning rate")
    handles = [
        Line2D([], [], color="0.3", linewidth=1.6, label="schedule, per step"),
        Line2D(
            [],
            [],
            color="0.3",
            marker="o",
            markerfacecolor="none",
            linestyle="none",
            label="reported by the\noptimizer",
        ),
    ]
    figure.legend(handles=handles, loc="outside right center", frameon=False)
    figure.suptitle("Schedules at the recommended rate: the rate of every optimizer step")
    return figure
