"""Figures of a learning-rate study, each split into the table it shows and its drawing.

Every figure comes in two halves, as in Optuna's visualization module:

* a *table* function (``sensitivity_table``) that turns ``runs.csv`` into exactly the numbers
  the figure shows. It is pure pandas, so tests can assert its values exactly, and the CLI
  writes it next to the image so a reader can check any point of the plot;
* a *draw* function (``draw_sensitivity``) that only draws such a table and computes nothing
  it would have to be trusted for.

A diverged run is a result, not noise: tables keep every (optimizer, schedule, lr) cell even
when all its runs diverged, and the drawings mark diverged runs instead of dropping them.

No TensorFlow import here: figures are drawn by a light job from the CSV files alone.

Command line::

    python -m pipeline.figures lr_sensitivity --runs results/X/runs.csv \\
        --out results/X/figures/lr_sensitivity.png
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

# Figures are drawn in batch jobs without a display; Agg renders PNG anywhere.
matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from pipeline.io import write_atomic  # noqa: E402

#: Columns of ``runs.csv`` the sensitivity table reads.
RUNS_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "lr", "status", "best_val_loss")

#: Columns of the sensitivity table, in order.
SENSITIVITY_COLUMNS: tuple[str, ...] = (
    "optimizer",
    "schedule",
    "lr",
    "val_loss_mean",
    "val_loss_std",
    "runs",
    "diverged",
)

_KEYS: List[str] = ["optimizer", "schedule", "lr"]

#: Axes-fraction height of the diverged markers of the first schedule with divergences; the
#: next such schedules sit a step lower, so that two schedules diverging at the same rate stay
#: distinguishable. The y range is stretched so that curves stay below this strip.
_DIVERGED_TOP = 0.95
_DIVERGED_STEP = 0.04
_DIVERGED_MARGIN = 0.04


def _check_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")


# --------------------------------------------------------------------------------------
# LR sensitivity
# --------------------------------------------------------------------------------------


def sensitivity_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The numbers behind the LR-sensitivity figure: one row per optimizer × schedule × lr.

    ``val_loss_mean`` and ``val_loss_std`` summarise ``best_val_loss`` over the seeds whose run
    finished ``ok`` with a finite loss: a diverged run's best loss is only the best epoch
    before it blew up, so averaging it in would flatter an unstable rate. ``val_loss_std`` is
    the sample standard deviation (ddof=1), 0 for a single such seed and NaN with none.
    ``runs`` counts all runs of the cell, ``diverged`` those with status ``diverged``. Cells
    where every run diverged stay in the table (with NaN loss) because the divergence is
    itself the result the figure has to show.

    Args:
        runs: One row per training run, as in ``runs.csv``.

    Returns:
        The table, sorted by optimizer, schedule and lr, with a fresh RangeIndex.
    """
    _check_columns(runs, RUNS_COLUMNS, "runs")
    frame = runs.loc[:, list(RUNS_COLUMNS)].copy()
    frame["lr"] = frame["lr"].astype(float)
    loss = pd.to_numeric(frame["best_val_loss"], errors="coerce").astype(float)
    status = frame["status"].astype(str)
    # Only ok runs with a finite loss count towards the curve; others become NaN, which
    # mean/std skip, while the cell itself survives the groupby.
    frame["_loss"] = loss.where((status == "ok") & np.isfinite(loss))
    frame["_diverged"] = (status == "diverged").astype(int)

    groups = frame.groupby(_KEYS, sort=True, dropna=False)
    table = groups.agg(
        val_loss_mean=("_loss", "mean"),
        val_loss_std=("_loss", "std"),
        _finite=("_loss", "count"),
        runs=("status", "size"),
        diverged=("_diverged", "sum"),
    ).reset_index()
    # pandas gives NaN for the std of one value; one seed has no spread, so 0 is the truth.
    table.loc[table["_finite"] == 1, "val_loss_std"] = 0.0
    table["runs"] = table["runs"].astype(int)
    table["diverged"] = table["diverged"].astype(int)
    table = table.sort_values(_KEYS, kind="stable").reset_index(drop=True)
    return table.loc[:, list(SENSITIVITY_COLUMNS)]


def _schedule_colors(schedules: Sequence[str]) -> Dict[str, tuple[float, float, float, float]]:
    """One colour per schedule, the same in every panel so the legend holds for all."""
    cmap = matplotlib.colormaps["tab10" if len(schedules) <= 10 else "tab20"]
    return {name: cmap(index % cmap.N) for index, name in enumerate(schedules)}


def _draw_diverged(ax: Axes, lrs: np.ndarray, counts: np.ndarray, height: float, color: object) -> None:
    """Mark diverged runs with an 'x' at the top of the panel, at their lr.

    The marker's y is in axes coordinates (x stays in data coordinates), so it sits at the
    top whatever the loss range, and does not stretch the y autoscaling.
    """
    transform = blended_transform_factory(ax.transData, ax.transAxes)
    ax.plot(
        lrs,
        np.full(len(lrs), height),
        linestyle="none",
        marker="x",
        markersize=8,
        markeredgewidth=2,
        color=color,
        transform=transform,
        clip_on=False,
        gid="diverged",
    )
    for lr, count in zip(lrs, counts):
        if count > 1:
            ax.annotate(
                str(int(count)),
                xy=(lr, height),
                xycoords=transform,
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                ha="left",
                fontsize=8,
                color=color,
            )


def _reserve_top_strip(ax: Axes, fraction: float) -> None:
    """Raise the top of the (shared) y range so the data ends at ``fraction`` of the height.

    The diverged markers live above that line, so they never hide a curve.
    """
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, bottom + (top - bottom) / fraction)


def _pad_log_x(ax: Axes, lrs: np.ndarray) -> None:
    """Set the (shared) log x range to the rates plus a margin.

    Set explicitly because the diverged markers, drawn in axes coordinates, get no autoscale
    margin: a panel with only diverged runs would otherwise put them on its very border.
    """
    lrs = lrs[np.isfinite(lrs) & (lrs > 0)]
    if lrs.size == 0:
        return
    low, high = float(lrs.min()), float(lrs.max())
    factor = max((high / low) ** 0.06, 1.4)
    ax.set_xlim(low / factor, high * factor)


def draw_sensitivity(table: pd.DataFrame) -> Figure:
    """Draw a :func:`sensitivity_table`: a panel per optimizer, a line per schedule.

    Each panel plots the mean best validation loss against the learning rate (log axis) with
    a ±1 std band; the panels share the y axis so optimizers compare directly. Diverged runs
    are marked with an 'x' at the top of the panel at their rate, with their count when more
    than one. A panel whose runs all diverged still shows its markers.

    Args:
        table: A table as returned by :func:`sensitivity_table`.

    Returns:
        The figure; it is not attached to pyplot, so the caller owns (and may drop) it.
    """
    _check_columns(table, SENSITIVITY_COLUMNS, "sensitivity table")
    optimizers = sorted(table["optimizer"].astype(str).unique())
    schedules = sorted(table["schedule"].astype(str).unique())
    colors = _schedule_colors(schedules)
    # A marker row only for schedules that diverged somewhere, the same row in every panel.
    diverging = sorted(table.loc[table["diverged"] > 0, "schedule"].astype(str).unique())
    marker_row = {name: _DIVERGED_TOP - _DIVERGED_STEP * index for index, name in enumerate(diverging)}
    n_panels = max(len(optimizers), 1)

    figure = Figure(figsize=(4.2 * n_panels + 1.0, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    # The optimizers share one grid, so a shared x axis lines their panels up rate by rate.
    axes = figure.subplots(1, n_panels, sharex=True, sharey=True, squeeze=False)[0]

    for ax, optimizer in zip(axes, optimizers):
        panel = table[table["optimizer"].astype(str) == optimizer]
        for schedule in schedules:
            rows = panel[panel["schedule"].astype(str) == schedule].sort_values("lr")
            if rows.empty:
                continue
            lr = rows["lr"].to_numpy(dtype=float)
            mean = rows["val_loss_mean"].to_numpy(dtype=float)
            std = rows["val_loss_std"].to_numpy(dtype=float)
            color = colors[schedule]
            # NaN means (all seeds diverged) break the line there instead of bridging the gap.
            ax.plot(lr, mean, marker="o", markersize=4, color=color, label=schedule)
            ax.fill_between(lr, mean - std, mean + std, color=color, alpha=0.18, linewidth=0)
            diverged = rows["diverged"].to_numpy(dtype=int)
            hit = diverged > 0
            if hit.any():
                _draw_diverged(ax, lr[hit], diverged[hit], marker_row[schedule], color)
        ax.set_xscale("log")
        ax.set_title(optimizer)
        ax.set_xlabel("learning rate")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[len(optimizers) :]:
        ax.set_axis_off()
    axes[0].set_ylabel("best val_loss (mean ± std over seeds)")
    _pad_log_x(axes[0], table["lr"].to_numpy(dtype=float))
    if diverging:
        _reserve_top_strip(axes[0], min(marker_row.values()) - _DIVERGED_MARGIN)

    handles = [Line2D([], [], color=colors[name], marker="o", markersize=4, label=name) for name in schedules]
    if diverging:
        handles.append(
            Line2D([], [], color="0.3", marker="x", markeredgewidth=2, linestyle="none", label="diverged (count)")
        )
    if handles:
        figure.legend(handles=handles, loc="outside right center", title="schedule", frameon=False)
    figure.suptitle("Learning-rate sensitivity: best validation loss by rate")
    return figure


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def save_figure(figure: Figure, path: Path, dpi: int = 150) -> None:
    """Save a figure atomically; the format follows the file suffix."""
    fmt = path.suffix.lstrip(".") or "png"
    write_atomic(path, lambda temporary: figure.savefig(temporary, format=fmt, dpi=dpi))


def save_table(table: pd.DataFrame, path: Path) -> None:
    """Save a figure's table atomically as CSV, floats at full precision."""
    write_atomic(path, lambda temporary: table.to_csv(temporary, index=False))


def lr_sensitivity(runs_path: Path, out: Path) -> None:
    """Write the LR-sensitivity figure to ``out`` and its table to ``<out stem>.csv``."""
    runs = pd.read_csv(runs_path)
    table = sensitivity_table(runs)
    figure = draw_sensitivity(table)
    save_figure(figure, out)
    save_table(table, out.with_suffix(".csv"))


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point: ``python -m pipeline.figures <figure> ...``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.figures", description=__doc__.split("\n\n")[0])
    figures = parser.add_subparsers(dest="figure", required=True)
    sensitivity = figures.add_parser(
        "lr_sensitivity",
        help="best val_loss against learning rate, a panel per optimizer, a line per schedule",
    )
    sensitivity.add_argument("--runs", type=Path, required=True, help="runs.csv of the study")
    sensitivity.add_argument(
        "--out", type=Path, required=True, help="image to write; its table goes next to it as <stem>.csv"
    )
    args = parser.parse_args(argv)
    if args.figure == "lr_sensitivity":
        lr_sensitivity(args.runs, args.out)


if __name__ == "__main__":
    main()
