"""The report's LR range test section: each suggestion of the range test against the grid.

Built from ``finder_vs_grid.csv`` (:mod:`pipeline.analysis.finder_vs_grid`): the range test's curves
figure, a table of each suggestion against the grid's best rate, and a sentence per optimizer
on which suggestion came closest to the grid's best.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Mapping, Optional

import pandas as pd

from pipeline.analysis.finder_vs_grid import closest_suggestions
from pipeline.config.rates import rate_label, short_rate
from pipeline.report.figures import FINDER_FIGURE, _section_figure
from pipeline.report.html import _e, _table
from pipeline.tables import FINDER_VS_GRID
from pipeline.values import is_finite

#: Columns of ``finder_vs_grid.csv`` the report reads (``nearest_diverged`` too, where present).
FINDER_READ: List[str] = [
    "optimizer", "schedule", "suggestion", "suggested_lr", "suggested_min", "suggested_max", "seeds",
    "grid_best_lr", "ratio", "nearest_grid_lr", "relative_val_loss",
]  # fmt: skip


def _suggested_text(row: Mapping[str, Any]) -> str:
    """``2e-4 (1e-4–4e-4, 2 seeds)``: a summary suggestion and its range over seeds."""
    if not is_finite(row["suggested_lr"]):
        return "none"
    seeds = int(row["seeds"]) if is_finite(row["seeds"]) else 0
    if seeds > 1:
        return f"{short_rate(row['suggested_lr'])} ({short_rate(row['suggested_min'])}–{short_rate(row['suggested_max'])}, {seeds} seeds)"
    return f"{short_rate(row['suggested_lr'])} (1 seed)"


def relative_text(row: Mapping[str, Any]) -> str:
    """The validation loss at the grid rate nearest a suggestion, relative to the grid's best.

    ``1.00× (the grid's best)`` when that rate is the grid's best rate, else e.g. ``1.07×``;
    diverged seeds at that rate are named, since a suggestion on a diverging rate is a bad one
    whatever the surviving seeds reached.
    """
    if not is_finite(row["suggested_lr"]):
        return "no suggestion"
    if not is_finite(row["relative_val_loss"]):
        text = "n/a"
    elif is_finite(row["nearest_grid_lr"]) and float(row["nearest_grid_lr"]) == float(row["grid_best_lr"]):
        text = f"{float(row['relative_val_loss']):.2f}× (the grid's best)"
    else:
        text = f"{float(row['relative_val_loss']):.2f}×"
    diverged = row.get("nearest_diverged")
    if is_finite(diverged) and int(float(diverged)) > 0:
        count = int(float(diverged))
        text += f" ({count} seed{'s' if count != 1 else ''} diverged there)"
    return text


def finder_sentence(finder: pd.DataFrame, optimizer: str) -> str:
    """One sentence: which suggestion came closest to the grid's best for ``optimizer``, on average.

    Closest is the lowest mean ``relative_val_loss`` over the optimizer's schedules
    (:func:`pipeline.analysis.finder_vs_grid.closest_suggestions`); suggestions that tie are named
    together, and the others follow with their means.
    """
    ranked = closest_suggestions(finder[finder["optimizer"] == optimizer])
    finite = ranked[[is_finite(value) for value in ranked["mean_relative_val_loss"]]]
    if finite.empty:
        return f"{optimizer}: no suggestion of the range test could be compared with the grid."
    best = float(finite["mean_relative_val_loss"].iloc[0])
    winners = finite[finite["mean_relative_val_loss"] == best]
    schedules = int(winners["schedules"].max())
    over = f"over {schedules} schedule{'s' if schedules != 1 else ''}"
    if len(winners) == 1:
        head = f"the {winners['suggestion'].iloc[0]} suggestion came closest to the grid's best on average"
    else:
        names = list(winners["suggestion"])
        head = f"the {', '.join(names[:-1])} and {names[-1]} suggestions came equally close to the grid's best on average"
    others = [
        f"{row['suggestion']} {float(row['mean_relative_val_loss']):.2f}×"
        if is_finite(row["mean_relative_val_loss"])
        else f"{row['suggestion']}: none"
        for _, row in ranked.iterrows()
        if row["suggestion"] not in set(winners["suggestion"])
    ]
    tail = f" ({', '.join(others)})" if others else ""
    return f"{optimizer}: {head}: {best:.2f}× its best validation loss {over}{tail}."


def _finder_table(finder: pd.DataFrame) -> str:
    rows: List[List[tuple[str, str]]] = []
    for _, row in finder.iterrows():
        ratio = f"{float(row['ratio']):.2g}×" if is_finite(row["ratio"]) else "n/a"
        nearest = rate_label(row["nearest_grid_lr"]) if is_finite(row["nearest_grid_lr"]) else "n/a"
        rows.append(
            [
                (_e(row["optimizer"]), ""),
                (_e(row["schedule"]), ""),
                (_e(row["suggestion"]), ""),
                (_e(_suggested_text(row)), "num"),
                (_e(rate_label(row["grid_best_lr"])), "num"),
                (_e(ratio), "num"),
                (_e(nearest), "num"),
                (_e(relative_text(row)), "num"),
            ]
        )
    header = [
        "optimizer",
        "schedule",
        "suggestion",
        "suggested rate (range over seeds)",
        "grid's best rate",
        "suggested ÷ best",
        "nearest grid rate",
        "its val_loss ÷ best",
    ]
    return _table(header, rows, table_id="finder-vs-grid")


def _finder_html(finder: pd.DataFrame, figure: Optional[Path]) -> str:
    """The LR range test section: the curves figure, the comparison table, a sentence per optimizer."""
    FINDER_VS_GRID.check(finder, FINDER_READ, "finder table")
    parts = [
        '<section id="lr-range-test"><h2>LR range test</h2>',
        "<p>How far to trust the finder on your problem: each suggestion of the range test (geometric "
        "mean over seeds) against the grid's best rate, and the best validation loss the grid reached at "
        "the grid rate nearest the suggestion, relative to the grid's best (1.00× = the finder would "
        "have found it).</p>",
    ]
    if figure is not None:
        parts.append(_section_figure(FINDER_FIGURE, Path(figure)))
    if finder.empty:
        parts.append("<p>No optimizer of the range test is in the grid: there is nothing to compare.</p>")
    else:
        parts.append(_finder_table(finder))
    sentences = [finder_sentence(finder, optimizer) for optimizer in sorted(finder["optimizer"].unique())]
    if sentences:
        parts.append('<ul class="findings">' + "".join(f"<li>{_e(text)}</li>" for text in sentences) + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)
