"""``finder_curves``: the LR range test's loss against the rising rate, with its suggestions.

One tidy table holds both what is drawn as lines and what is drawn as vertical marks, told
apart by ``kind``:

* ``kind == "curve"``: one row per optimizer × seed × step of ``finder.csv`` (``lr``, the raw
  batch ``loss`` and the debiased EMA ``smooth_loss``), non-finite losses kept as they are;
* ``kind`` in ``valley`` / ``slide`` / ``minimum`` / ``steep``: one row per optimizer and kind, the
  summary over seeds of ``suggestions.json``: ``lr`` the geometric mean, ``lr_min`` /
  ``lr_max`` the range, ``seeds`` how many seeds gave one, ``reason`` why seeds gave none
  (e.g. ``flat``). Every kind has its row even when no seed gave it (``lr`` NaN), so the CSV
  says so.

One table (rather than a pair) because the figure command writes exactly one table per figure.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pipeline.figures.common import (
    DIVERGED_MARKER,
    MARK_MARGIN,
    Color,
    check_columns,
    draw_top_marks,
    hide_unused,
    mark_handle,
    mark_heights,
    numeric,
    pad_log_x,
    panel_grid,
    reserve_top_strip,
    sorted_names,
)
from pipeline.analysis.finder_vs_grid import SUGGESTION_KINDS, suggestion_summary
from pipeline.config.rates import short_rate

#: Columns of ``finder.csv`` the table reads.
FINDER_CSV_COLUMNS: tuple[str, ...] = ("optimizer", "seed", "step", "lr", "loss", "smooth_loss")

#: Columns of the finder-curves table, in order.
FINDER_CURVES_COLUMNS: tuple[str, ...] = (
    "kind",
    "optimizer",
    "seed",
    "step",
    "lr",
    "loss",
    "smooth_loss",
    "lr_min",
    "lr_max",
    "seeds",
    "reason",
    "measured",
)

#: The y label of each curve kind (``measured``: the range test's ``finder.loss``).
MEASURED_LABELS: Dict[str, str] = {"train": "training loss per batch", "val": "validation loss"}

#: Row kinds in table order: the curve first, then the suggestions.
KINDS: tuple[str, ...] = ("curve", *SUGGESTION_KINDS)

#: Colour and line style of each suggestion kind. The colours are tab10's green, pink, purple
#: and red, which :data:`SEED_COLORS` leaves out, so a suggestion never reads as a seed.
KIND_STYLES: Dict[str, Tuple[str, Any]] = {
    "valley": ("#2ca02c", "-."),
    "slide": ("#e377c2", (0, (5, 1, 1, 1, 1, 1))),
    "minimum": ("#9467bd", ":"),
    "steep": ("#d62728", "--"),
}

#: Colours of the seeds' curves, in seed order (tab10 without the suggestions' colours).
SEED_COLORS: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#17becf", "#8c564b", "#7f7f7f", "#bcbd22")

#: Share of each seed's curve (its first steps) whose smoothed loss sets the top of the y
#: range, and the factor above its maximum: the blow-up at the end of a range test climbs by
#: orders of magnitude and would otherwise flatten the part of the curve that matters.
EARLY_SHARE = 0.1
EARLY_FACTOR = 1.5

#: Panels per row before the grid wraps.
PANELS_PER_ROW = 3


def _reason(per_seed: Mapping[str, Any]) -> Optional[str]:
    """The distinct reasons seeds gave no suggestion, sorted and joined; None when none did."""
    entries = [entry for entry in per_seed.values() if isinstance(entry, Mapping)]
    reasons = {str(entry["reason"]) for entry in entries if entry.get("reason")}
    return ", ".join(sorted(reasons)) if reasons else None


def finder_curves_table(finder: pd.DataFrame, suggestions: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The numbers behind the range-test figure: curve rows and summary-suggestion rows.

    Layout in the module doc. Curve rows keep every step, the non-finite last loss of a
    stopped curve included: the blow-up is the range test's result, and the drawing marks it.
    ``seed`` and ``step`` are empty on suggestion rows (a summary over seeds), ``lr_min``,
    ``lr_max``, ``seeds`` and ``reason`` on curve rows.

    Args:
        finder: The ``finder.csv`` rows of one or more optimizers, concatenated.
        suggestions: Parsed ``suggestions.json`` files, one per optimizer.

    Returns:
        The table, by optimizer, then kind (:data:`KINDS` order), seed and step, with a fresh
        RangeIndex.
    """
    check_columns(finder, FINDER_CSV_COLUMNS, "finder curves")
    curves = finder.loc[:, list(FINDER_CSV_COLUMNS)].copy()
    curves.insert(0, "kind", "curve")
    curves["optimizer"] = curves["optimizer"].astype(str)
    for column in ("lr", "loss", "smooth_loss"):
        # numeric() keeps ±inf (only unparsable text becomes NaN): a blow-up to inf stays one.
        curves[column] = numeric(curves[column])

    rows: List[Dict[str, Any]] = []
    for suggestion in suggestions:
        reason = _reason(suggestion.get("per_seed") or {})
        for kind in SUGGESTION_KINDS:
            entry = suggestion_summary(suggestion, kind)
            rows.append(
                {
                    "kind": kind,
                    "optimizer": str(suggestion["optimizer"]),
                    "lr": entry["geomean"],
                    "lr_min": entry["min"],
                    "lr_max": entry["max"],
                    "seeds": entry["seeds"],
                    "reason": reason,
                }
            )
    marks = pd.DataFrame(rows, columns=["kind", "optimizer", "lr", "lr_min", "lr_max", "seeds", "reason"])
    table = pd.concat([curves, marks], ignore_index=True) if len(marks) else curves
    table = table.reindex(columns=list(FINDER_CURVES_COLUMNS))
    for column in ("seed", "step", "seeds"):
        table[column] = pd.array(
            [None if pd.isna(value) else int(value) for value in table[column]], dtype="Int64"
        )
    for column in ("lr", "loss", "smooth_loss", "lr_min", "lr_max"):
        table[column] = table[column].astype(float)
    # Missing reasons as NaN (not None), as the CSV reads them back, under pandas 2 and 3 alike.
    table["reason"] = pd.Series(
        [value if isinstance(value, str) else np.nan for value in table["reason"]], index=table.index, dtype=object
    )
    # What the curve measures (finder.loss of each optimizer's test; older files: the training loss).
    measured = {str(suggestion["optimizer"]): (suggestion.get("settings") or {}).get("loss", "train") for suggestion in suggestions}
    table["measured"] = [measured.get(str(optimizer), "train") for optimizer in table["optimizer"]]
    table["_kind"] = table["kind"].map({kind: index for index, kind in enumerate(KINDS)})
    table = table.sort_values(["optimizer", "_kind", "seed", "step"], kind="stable", na_position="first")
    return table.drop(columns="_kind").reset_index(drop=True)


def finder_y_range(curves: pd.DataFrame) -> Tuple[float, float]:
    """The y range of one panel: the curves' finite losses, topped off before the blow-up.

    Bottom: the lowest finite loss (raw or smoothed). Top: the highest finite loss, but at
    most :data:`EARLY_FACTOR` × the highest smoothed loss over the first :data:`EARLY_SHARE`
    of each seed's steps (at least one step), so the final climb leaves the plot instead of
    squashing it. Both ends get 5% of the range as margin (±0.5 when the range is a point).

    Args:
        curves: Curve rows of one optimizer (columns seed, step, loss, smooth_loss).

    Returns:
        ``(bottom, top)``; ``(0, 1)`` when there is no finite loss at all.
    """
    values = pd.concat([numeric(curves["loss"]), numeric(curves["smooth_loss"])]).to_numpy()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = float(values.min()), float(values.max())
    early: List[float] = []
    for _, seed in curves.sort_values(["seed", "step"], kind="stable").groupby("seed", sort=True):
        head = numeric(seed["smooth_loss"]).to_numpy()[: max(1, math.ceil(EARLY_SHARE * len(seed)))]
        early.extend(head[np.isfinite(head)])
    if early:
        peak = max(early)
        # peak + 0.5 |peak| is 1.5 × peak for a positive loss and still above it for a negative one.
        high = min(high, peak + (EARLY_FACTOR - 1.0) * abs(peak))
    pad = 0.05 * (high - low) if high > low else 0.5
    return low - pad, high + pad


def seed_colors(seeds: Sequence[int]) -> Dict[int, str]:
    """One colour per seed, in sorted order (cycling when there are more than colours)."""
    return {seed: SEED_COLORS[index % len(SEED_COLORS)] for index, seed in enumerate(sorted(set(seeds)))}


def _suggestion_label(row: pd.Series) -> str:
    """``valley 3.16e-4 (1e-4–1e-3, 3 seeds)``: the rate and its spread over seeds."""
    seeds = int(row["seeds"])
    spread = f"{short_rate(row['lr_min'])}–{short_rate(row['lr_max'])}, " if seeds > 1 else ""
    return f"{row['kind']} {short_rate(row['lr'])} ({spread}{seeds} seed{'s' if seeds != 1 else ''})"


def _draw_suggestions(ax: Axes, marks: pd.DataFrame) -> bool:
    """Draw one panel's summary suggestions: a vertical line each, its seeds' range shaded.

    Returns:
        Whether any suggestion was drawn.
    """
    drawn = False
    for _, row in marks.iterrows():
        if not math.isfinite(row["lr"]):
            continue
        color, style = KIND_STYLES[row["kind"]]
        low, high = row["lr_min"], row["lr_max"]
        if math.isfinite(low) and math.isfinite(high) and high > low:
            ax.axvspan(low, high, color=color, alpha=0.12, linewidth=0, gid=f"span-{row['kind']}")
        label, gid = _suggestion_label(row), f"suggestion-{row['kind']}"
        ax.axvline(row["lr"], color=color, linestyle=style, linewidth=1.5, label=label, gid=gid)
        drawn = True
    return drawn


def draw_finder_curves(table: pd.DataFrame) -> Figure:
    """Draw a :func:`finder_curves_table`: a panel per optimizer, a line per seed.

    Each panel plots the smoothed loss against the learning rate (log x axis), one colour per
    seed, with the raw batch loss faint behind it. Steps whose loss is not finite (where the
    test stopped) are marked with an 'x' at the top of the panel at their rate, one height per
    seed, never dropped. The summary suggestions are vertical lines (one colour and style per
    kind) with their seeds' range shaded, labelled in the panel's legend; a panel without any
    says why (``reason``). The y range stops before the blow-up (:func:`finder_y_range`).

    Args:
        table: A table as returned by :func:`finder_curves_table`.

    Returns:
        The figure (not attached to pyplot).
    """
    check_columns(table, FINDER_CURVES_COLUMNS, "finder curves table")
    optimizers = sorted_names(table["optimizer"])
    kind = table["kind"].astype(str)
    curves, marks = table[kind == "curve"], table[kind != "curve"]
    seeds = sorted({int(seed) for seed in curves["seed"].dropna()})
    colors = seed_colors(seeds)
    heights = mark_heights([str(seed) for seed in seeds])
    columns = min(max(len(optimizers), 1), PANELS_PER_ROW)
    rows = max(math.ceil(len(optimizers) / PANELS_PER_ROW), 1)
    figure, axes = panel_grid(rows, columns, sharex=True, panel_size=(4.6, 3.8), extra_width=2.2)
    panels = list(axes.ravel())
    any_nonfinite = False
    for ax, optimizer in zip(panels, optimizers):
        panel = curves[curves["optimizer"].astype(str) == optimizer]
        nonfinite_here = False
        for seed, color in colors.items():
            rows_of_seed = panel[panel["seed"] == seed].sort_values("step", kind="stable")
            if rows_of_seed.empty:
                continue
            lr = rows_of_seed["lr"].to_numpy(dtype=float)
            loss = numeric(rows_of_seed["loss"]).to_numpy()
            smooth = numeric(rows_of_seed["smooth_loss"]).to_numpy()
            ax.plot(lr, np.where(np.isfinite(loss), loss, np.nan), color=color, alpha=0.25, linewidth=0.8, gid="raw")
            ax.plot(lr, np.where(np.isfinite(smooth), smooth, np.nan), color=color, linewidth=1.6, gid="smooth")
            bad = ~np.isfinite(loss) | ~np.isfinite(smooth)
            if bad.any():
                nonfinite_here = True
                draw_top_marks(ax, lr[bad], np.ones(int(bad.sum())), heights[str(seed)], color, gid="nonfinite")
        ax.set_xscale("log")
        ax.grid(True, which="major", alpha=0.3)
        ax.set_ylim(*finder_y_range(panel))
        if nonfinite_here:
            any_nonfinite = True
            reserve_top_strip(ax, min(heights.values()) - MARK_MARGIN)
        panel_marks = marks[marks["optimizer"].astype(str) == optimizer]
        panel_marks = panel_marks.assign(_order=panel_marks["kind"].map({k: i for i, k in enumerate(KINDS)}))
        if _draw_suggestions(ax, panel_marks.sort_values("_order", kind="stable")):
            ax.legend(loc="upper left", fontsize=7, frameon=True, framealpha=0.8)
        else:
            reasons = panel_marks["reason"].dropna().astype(str)
            why = f": {reasons.iloc[0]}" if len(reasons) else ""
            ax.text(
                0.03, 0.05, f"no suggestion{why}", transform=ax.transAxes, fontsize=8, color="0.3", gid="no-suggestion"
            )
        ax.set_title(optimizer)
        ax.set_xlabel("learning rate")
    kinds = sorted(set(table["measured"].dropna().astype(str))) if "measured" in table else ["train"]
    label = MEASURED_LABELS.get(kinds[0], kinds[0]) if len(kinds) == 1 else "loss (" + ", ".join(kinds) + ")"
    for row in axes:
        row[0].set_ylabel(label)
    hide_unused(panels, len(optimizers))
    pad_log_x(panels[0], numeric(table["lr"]).to_numpy())

    drawn_kinds = set(marks.loc[np.isfinite(numeric(marks["lr"])), "kind"].astype(str))
    handles = _legend_handles(colors, [kind for kind in SUGGESTION_KINDS if kind in drawn_kinds], any_nonfinite, kinds == ["val"])
    if handles:
        figure.legend(handles=handles, loc="outside right center", frameon=False)
    what = "validation loss" if kinds == ["val"] else "training loss" if kinds == ["train"] else "loss"
    figure.suptitle(f"LR range test: {what} while the rate rises, with its suggestions")
    return figure


def _legend_handles(colors: Mapping[int, Color | str], kinds: Sequence[str], nonfinite: bool, validation: bool = False) -> List[Line2D]:
    """The figure legend: seeds, raw vs smoothed, the suggestion kinds, the non-finite marker."""
    handles = [Line2D([], [], color=color, linewidth=1.6, label=f"seed {seed}") for seed, color in colors.items()]
    if colors:
        handles += [
            Line2D([], [], color="0.3", linewidth=1.6, label="smoothed loss"),
            Line2D([], [], color="0.3", alpha=0.25, linewidth=0.8, label="raw validation loss" if validation else "raw batch loss"),
        ]
    for kind in kinds:
        color, style = KIND_STYLES[kind]
        handles.append(Line2D([], [], color=color, linestyle=style, linewidth=1.5, label=f"{kind} (mean over seeds)"))
    if nonfinite:
        handles.append(mark_handle(DIVERGED_MARKER, "non-finite loss (test stopped)"))
    return handles
