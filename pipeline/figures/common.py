"""Shared pieces of the figures: column checks, seed statistics, colours, panels, markers, writing.

Every figure draws on an Agg canvas attached to a bare :class:`~matplotlib.figure.Figure`;
pyplot (and its global state) is never used, so figures can be built in tests and batch jobs
side by side and are freed as soon as the caller drops them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import matplotlib

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter
from matplotlib.transforms import blended_transform_factory

from pipeline.config.rates import rate_label  # noqa: F401 - the figures' rate spelling, shared with the report
from pipeline.io import write_atomic
# The figure modules take their column check and number parsing from here: the same ones as
# the report's and the finder comparison's (pipeline.values, free of matplotlib).
from pipeline.values import check_columns, numeric

#: The key of a grid cell: one optimizer, one schedule, one rate.
KEYS: List[str] = ["optimizer", "schedule", "lr"]

#: RGBA colour.
Color = Tuple[float, float, float, float]

#: The schedules of ``conf/schedule/`` in a fixed order: each keeps the same colour in every
#: figure and every study, whichever subset a study selects.
KNOWN_SCHEDULES: tuple[str, ...] = ("constant", "step", "exponential", "cosine", "warmup_constant", "warmup_cosine")

#: Axes-fraction height of the top markers (diverged, never reached, clipped) of the first
#: schedule that has any; the next such schedules sit a step lower, so that two schedules
#: marked at the same rate stay distinguishable. The y range is stretched so that curves stay
#: below this strip.
MARK_TOP = 0.95
MARK_STEP = 0.04
MARK_MARGIN = 0.04

#: Marker of diverged runs, in every figure.
DIVERGED_MARKER = "x"

#: The top marker of diverged runs for :func:`draw_rate_figure`: ``(count column, marker,
#: gid, legend label)``, counted in a table's ``diverged`` column.
DIVERGED_MARK: Tuple[str, str, str, str] = ("diverged", DIVERGED_MARKER, "diverged", "diverged (count)")


def select_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> pd.DataFrame:
    """A figure table's input: a copy of the ``columns`` of ``frame``, with ``lr`` as float.

    Raises:
        ValueError: naming the missing columns (:func:`check_columns`); ``what`` names the frame.
    """
    check_columns(frame, columns, what)
    selected = frame.loc[:, list(columns)].copy()
    selected["lr"] = selected["lr"].astype(float)
    return selected


def finite(values: pd.Series) -> pd.Series:
    """``values`` as float64 with every non-finite entry (NaN, ±inf, missing) as NaN."""
    numbers = numeric(values)
    return numbers.where(np.isfinite(numbers))


def sorted_names(values: Iterable[object]) -> List[str]:
    """The distinct values as sorted strings."""
    return sorted({str(value) for value in values})


# --------------------------------------------------------------------------------------
# Colours
# --------------------------------------------------------------------------------------


def schedule_colors(schedules: Iterable[str]) -> Dict[str, Color]:
    """One colour per schedule, the same in every figure so one legend reads for all.

    Schedules of ``conf/schedule/`` take fixed tab10 colours by their place in
    :data:`KNOWN_SCHEDULES`; other names follow in sorted order (tab20 beyond ten in all).
    """
    names = sorted(set(schedules))
    known = list(KNOWN_SCHEDULES)
    others = [name for name in names if name not in KNOWN_SCHEDULES]
    cmap = matplotlib.colormaps["tab10" if len(known) + len(others) <= 10 else "tab20"]
    order = {name: index for index, name in enumerate([*known, *others])}
    return {name: cmap(order[name] % cmap.N) for name in names}


# --------------------------------------------------------------------------------------
# Panels
# --------------------------------------------------------------------------------------


def panel_grid(
    rows: int,
    columns: int,
    *,
    sharex: bool | str = False,
    sharey: bool | str = False,
    panel_size: Tuple[float, float] = (4.2, 3.6),
    extra_width: float = 1.6,
) -> Tuple[Figure, np.ndarray]:
    """A figure on an Agg canvas with a ``rows`` × ``columns`` grid of panels (at least 1 × 1).

    Args:
        rows: Panel rows.
        columns: Panel columns.
        sharex: As for :meth:`Figure.subplots`.
        sharey: As for :meth:`Figure.subplots`.
        panel_size: Width and height of one panel in inches.
        extra_width: Inches added for a legend outside the panels.

    Returns:
        The figure (not attached to pyplot: the caller owns it) and a 2-D array of axes.
    """
    rows, columns = max(rows, 1), max(columns, 1)
    width, height = panel_size
    figure = Figure(figsize=(width * columns + extra_width, height * rows + 0.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, sharex=sharex, sharey=sharey, squeeze=False)
    return figure, axes


def hide_unused(axes: Sequence[Axes], used: int) -> None:
    """Switch off the panels after the first ``used`` (a figure with no data keeps one, empty)."""
    for ax in list(axes)[max(used, 1) :]:
        ax.set_axis_off()


def mark_heights(names: Iterable[str]) -> Dict[str, float]:
    """The axes-fraction height of the top markers of each (marked) schedule, first highest."""
    return {name: MARK_TOP - MARK_STEP * index for index, name in enumerate(names)}


def reserve_top_strip(ax: Axes, fraction: float) -> None:
    """Raise the top of the (shared) y range so the data ends at ``fraction`` of the height.

    The top markers live above that line, so they never hide a curve. On a log axis the
    fraction is of the log range.
    """
    bottom, top = ax.get_ylim()
    if ax.get_yscale() == "log" and bottom > 0 and top > 0:
        low, high = np.log10(bottom), np.log10(top)
        ax.set_ylim(bottom, 10 ** (low + (high - low) / fraction))
    else:
        ax.set_ylim(bottom, bottom + (top - bottom) / fraction)


def pad_log_x(ax: Axes, lrs: np.ndarray) -> None:
    """Set the (shared) log x range to the rates plus a margin.

    Set explicitly because the top markers, drawn in axes coordinates, get no autoscale
    margin: a panel with only diverged runs would otherwise put them on its very border.
    """
    lrs = np.asarray(lrs, dtype=float)
    lrs = lrs[np.isfinite(lrs) & (lrs > 0)]
    if lrs.size == 0:
        return
    low, high = float(lrs.min()), float(lrs.max())
    factor = max((high / low) ** 0.06, 1.4)
    ax.set_xlim(low / factor, high * factor)


def plain_log_labels(ax: Axes) -> None:
    """Label a log y axis with plain numbers (``0.5``, ``2``, ``100``) instead of powers of ten.

    Minor ticks are labelled too when the range spans less than about a decade (else there
    would be no label at all); call it after the y range is final.
    """
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    bottom, top = ax.get_ylim()
    narrow = bottom > 0 and top / bottom < 30
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}") if narrow else NullFormatter())


def draw_top_marks(
    ax: Axes,
    lrs: np.ndarray,
    counts: np.ndarray,
    height: float,
    color: object,
    *,
    marker: str = DIVERGED_MARKER,
    gid: str = "diverged",
) -> None:
    """Mark runs at their rate at the top of the panel, with their count when more than one.

    The marker's y is in axes coordinates (x stays in data coordinates), so it sits at the
    top whatever the data range, and does not stretch the y autoscaling.

    Args:
        ax: The panel.
        lrs: Rates to mark.
        counts: Runs marked at each rate.
        height: Axes-fraction height of the markers.
        color: Colour of the markers and counts.
        marker: Matplotlib marker; open markers (``^``, ``o``, ...) are drawn unfilled.
        gid: Group id of the markers, so tests and readers of an SVG can find them.
    """
    transform = blended_transform_factory(ax.transData, ax.transAxes)
    filled = marker in ("x", "+", "X", "P")
    ax.plot(
        lrs,
        np.full(len(lrs), height),
        linestyle="none",
        marker=marker,
        markersize=8 if filled else 7,
        markeredgewidth=2 if filled else 1.6,
        markerfacecolor=color if filled else "none",
        color=color,
        transform=transform,
        clip_on=False,
        gid=gid,
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


def mark_handle(marker: str, label: str) -> Line2D:
    """A legend entry for top markers drawn by :func:`draw_top_marks`."""
    filled = marker in ("x", "+", "X", "P")
    return Line2D(
        [],
        [],
        color="0.3",
        marker=marker,
        markeredgewidth=2 if filled else 1.6,
        markerfacecolor="0.3" if filled else "none",
        linestyle="none",
        label=label,
    )


def schedule_handles(colors: Mapping[str, Color], marker: str = "o") -> List[Line2D]:
    """Legend entries of the schedules, in the colours' order."""
    return [Line2D([], [], color=color, marker=marker, markersize=4, label=name) for name, color in colors.items()]


def draw_rate_lines(
    axes: Sequence[Axes],
    table: pd.DataFrame,
    mean_column: str,
    std_column: str,
    marks: Sequence[Tuple[str, str, str, str]],
    colors: Mapping[str, Color],
    optimizers: Sequence[str],
) -> Dict[str, float]:
    """Draw one row of rate panels: per optimizer, a line per schedule with a ± std band.

    Shared by the figures that plot a per-rate summary against a log rate axis.

    Args:
        axes: One panel per optimizer, in the order of ``optimizers``.
        table: Rows of optimizer, schedule, lr and the columns named below.
        mean_column: Column of the line.
        std_column: Column of the ± band around it; ``""`` draws no band.
        marks: Per kind of top marker: ``(count column, marker, gid, legend label)``; rates
            where the count is positive get the marker at the top of the panel.
        colors: Colour of each schedule (also the schedules drawn, in this order).
        optimizers: The optimizer of each panel.

    Returns:
        The marker height of each marked (schedule, marker kind), keyed ``"<gid>:<schedule>"``;
        empty when nothing is marked.
    """
    marked: List[str] = []
    for count_column, _, gid, _ in marks:
        for schedule in colors:
            rows = table[(table["schedule"].astype(str) == schedule) & (numeric(table[count_column]) > 0)]
            if not rows.empty:
                marked.append(f"{gid}:{schedule}")
    heights = mark_heights(marked)
    for ax, optimizer in zip(axes, optimizers):
        panel = table[table["optimizer"].astype(str) == optimizer]
        for schedule, color in colors.items():
            rows = panel[panel["schedule"].astype(str) == schedule].sort_values("lr")
            if rows.empty:
                continue
            lr = rows["lr"].to_numpy(dtype=float)
            mean = numeric(rows[mean_column]).to_numpy()
            # Non-finite means (all seeds diverged) break the line instead of bridging the gap.
            mean = np.where(np.isfinite(mean), mean, np.nan)
            ax.plot(lr, mean, marker="o", markersize=4, color=color, label=schedule)
            if std_column:
                std = numeric(rows[std_column]).to_numpy()
                ax.fill_between(lr, mean - std, mean + std, color=color, alpha=0.18, linewidth=0)
            for count_column, marker, gid, _ in marks:
                counts = numeric(rows[count_column]).fillna(0).to_numpy()
                hit = counts > 0
                if hit.any():
                    draw_top_marks(
                        ax, lr[hit], counts[hit], heights[f"{gid}:{schedule}"], color, marker=marker, gid=gid
                    )
        ax.set_xscale("log")
        ax.grid(True, which="major", alpha=0.3)
    return heights


def finish_rate_row(axes: Sequence[Axes], lrs: np.ndarray, heights: Mapping[str, float], ylabel: str) -> None:
    """Label a row drawn by :func:`draw_rate_lines`, pad its x range and keep its markers clear.

    The row's panels share x and y, so the first panel's limits hold for all of them.
    """
    axes[0].set_ylabel(ylabel)
    pad_log_x(axes[0], lrs)
    if heights:
        reserve_top_strip(axes[0], min(heights.values()) - MARK_MARGIN)


def draw_rate_figure(
    table: pd.DataFrame,
    rows: Sequence[Tuple[str, str, str]],
    marks: Sequence[Tuple[str, str, str, str]],
    *,
    sharey: bool | str = "row",
    panel_size: Tuple[float, float] = (4.2, 3.6),
    zero_line: bool = False,
) -> Figure:
    """A figure of per-rate summaries: a column per optimizer, a row per summary.

    Shared by the figures that plot a summary per optimizer × schedule × rate against a log
    rate axis (sensitivity, generalisation gap, cost to target). Each row is drawn by
    :func:`draw_rate_lines` and finished by :func:`finish_rate_row`; the top row is titled by
    optimizer, the bottom row labelled "learning rate", and the legend on the right lists the
    schedules, then each kind of top marker the table uses (a positive count somewhere). The
    caller adds the title.

    Args:
        table: Rows of optimizer, schedule, lr and the columns named in ``rows`` and ``marks``.
        rows: Per row of panels: ``(mean column, std column or "", y label)``.
        marks: As for :func:`draw_rate_lines`, the same in every row; the label is the legend's.
        sharey: As for :meth:`Figure.subplots`.
        panel_size: Width and height of one panel in inches.
        zero_line: Draw a dotted line at y = 0 in every panel, under the data.

    Returns:
        The figure (not attached to pyplot).
    """
    optimizers = sorted_names(table["optimizer"])
    colors = schedule_colors(sorted_names(table["schedule"]))
    figure, axes = panel_grid(len(rows), len(optimizers), sharex=True, sharey=sharey, panel_size=panel_size)
    if zero_line:
        for ax in axes[:, : len(optimizers)].flat:
            ax.axhline(0.0, color="0.5", linewidth=1, linestyle=":")
    lrs = table["lr"].to_numpy(dtype=float)
    for row, (mean_column, std_column, ylabel) in zip(axes, rows):
        heights = draw_rate_lines(row, table, mean_column, std_column, marks, colors, optimizers)
        finish_rate_row(row, lrs, heights, ylabel)
        hide_unused(row, len(optimizers))
    for ax, optimizer in zip(axes[0], optimizers):
        ax.set_title(optimizer)
    for ax in axes[-1][: len(optimizers)]:
        ax.set_xlabel("learning rate")
    handles = schedule_handles(colors)
    for count_column, marker, _, label in marks:
        if (table[count_column] > 0).any():
            handles.append(mark_handle(marker, label))
    if handles:
        figure.legend(handles=handles, loc="outside right center", title="schedule", frameon=False)
    return figure


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def save_figure(figure: Figure, path: Path, dpi: int = 150) -> None:
    """Save a figure atomically; the format follows the file suffix."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    write_atomic(path, lambda temporary: figure.savefig(temporary, format=fmt, dpi=dpi))


def save_table(table: pd.DataFrame, path: Path) -> None:
    """Save a figure's table atomically as CSV, floats at full precision."""
    write_atomic(Path(path), lambda temporary: table.to_csv(temporary, index=False))
