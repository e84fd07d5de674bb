"""The report's sections on the grid's results: the answer, its warnings, the diverged runs.

The recommended rate per optimizer × schedule with its fit badge and grid-edge note, the
sentence per optimizer on which schedule won, the warnings of :mod:`pipeline.analysis.advice`, and the
diverged runs per schedule: everything the page says from ``best.csv`` and ``runs.csv``.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import pandas as pd

from pipeline.analysis.advice import StudyWarning, diverged_by_schedule
from pipeline.config.rates import rate_label, short_rate
from pipeline.analysis.confirm import best_schedule_per_optimizer
from pipeline.report.confirm import confirm_row, confirmation_clause, seeds_text
from pipeline.report.html import _e, _mean_std, _table, fit_badge
from pipeline.values import is_finite

#: Columns of ``best.csv`` the report reads (``fit`` too, where present).
BEST_READ: List[str] = [
    "optimizer", "schedule", "lr", "best_val_loss_mean", "best_val_loss_std", "best_val_accuracy_mean",
    "best_val_accuracy_std", "seeds", "diverged_fraction", "at_edge", "edge",
]  # fmt: skip

#: Columns of ``runs.csv`` the report reads (``best_epoch`` too, where ``best.csv`` lacks
#: ``best_epoch_mean``).
RUNS_READ: List[str] = ["optimizer", "schedule", "lr", "seed", "status", "best_val_loss"]


#: Headings of the warning kinds of :mod:`pipeline.analysis.advice`.
WARNING_LABELS: Dict[str, str] = {
    "edge": "grid edge",
    "diverged": "diverged",
    "early_best": "best epoch early",
    "late_best": "best epoch late",
    "seeds_disagree": "seeds disagree",
}


def edge_warning(at_edge: bool, edge: str) -> str:
    """The warning for a best rate on the grid's edge, or "" when it is inside the grid.

    A best rate on the edge means the true optimum may lie outside the grid, so the advice
    names the direction in which to widen it (``edge``: ``low``, ``high``).
    """
    if not at_edge:
        return ""
    side = edge
    if side == "low":
        return "at the low edge of the grid: widen it downwards"
    if side == "high":
        return "at the high edge of the grid: widen it upwards"
    return "at an edge of the grid: widen it"


def schedule_comparison(best: pd.DataFrame, optimizer: str) -> str:
    """One sentence: which schedule got the lowest best val_loss for ``optimizer``, and by how much.

    The margin is given absolute and relative to the runner-up's loss ("x% lower"). Schedules
    without a finite mean (every seed diverged) cannot win and are left out of the ranking.
    """
    rows = best[best["optimizer"] == optimizer]
    ranked = rows[[is_finite(value) for value in rows["best_val_loss_mean"]]]
    ranked = ranked.sort_values(["best_val_loss_mean", "schedule"], kind="stable")
    if ranked.empty:
        return f"{optimizer}: no schedule reached a finite best val_loss."
    winner = ranked.iloc[0]
    win_loss = float(winner["best_val_loss_mean"])
    win_text = (
        f"{winner['schedule']} (at lr {rate_label(winner['lr'])}) got the lowest best val_loss, {win_loss:.4g}"
    )
    if len(ranked) == 1:
        if len(rows) == 1:
            return f"{optimizer}: {win_text}; it is the only schedule studied."
        return f"{optimizer}: {win_text}; no other schedule reached a finite loss."
    runner = ranked.iloc[1]
    run_loss = float(runner["best_val_loss_mean"])
    margin = run_loss - win_loss
    if margin == 0:
        return (
            f"{optimizer}: {winner['schedule']} and {runner['schedule']} tie for the lowest "
            f"best val_loss, {win_loss:.4g}."
        )
    relative = margin / abs(run_loss) if run_loss != 0 else math.inf
    return (
        f"{optimizer}: {win_text}, beating the runner-up {runner['schedule']} ({run_loss:.4g}) "
        f"by {margin:.3g} ({relative:.1%} lower)."
    )


def estimate_text(row: pd.Series) -> str:
    """The estimated optimum of a ``best.csv`` row as the report writes it: "≈ 5.2e-3
    (4.1e-3–6.6e-3)", or why there is none ("none: edge"), or "n/a" for an older table."""
    estimate = row.get("lr_estimate")
    if is_finite(estimate):
        low, high = row.get("lr_low"), row.get("lr_high")
        interval = f" ({short_rate(low)}–{short_rate(high)})" if is_finite(low) and is_finite(high) else ""
        return f"≈ {short_rate(estimate)}{interval}"
    note = row.get("estimate_note")
    return f"none: {note}" if isinstance(note, str) and note else "n/a"


def _answer_rate(row: pd.Series) -> float:
    """The rate a row recommends: its estimated optimum where it has one, else its grid rate."""
    estimate = row.get("lr_estimate")
    return float(estimate) if is_finite(estimate) else float(row["lr"])


def _rate_phrase(row: pd.Series) -> str:
    if is_finite(row.get("lr_estimate")):
        return f"lr {estimate_text(row)}"
    note = row.get("estimate_note")
    reason = f" (no estimate between grid points: {note})" if isinstance(note, str) and note else ""
    return f"the grid rate {rate_label(row['lr'])}{reason}"


def headline(best: pd.DataFrame, confirm: Optional[pd.DataFrame] = None) -> str:
    """The report's first sentence: the study's answer, every number of it from ``best.csv``
    and ``confirm.csv``.

    The optimizer × schedule with the lowest mean best val_loss, at its estimated optimum
    (with its interval) or, without one, at its grid rate and why, and what the confirmation
    on fresh seeds found for it (:func:`pipeline.report.confirm.confirmation_clause`); then
    each other optimizer's best schedule, its rate as a multiple of the winner's, its loss and
    its verdict.
    """
    per_optimizer = best_schedule_per_optimizer(best)
    if per_optimizer.empty:
        return "No optimizer and schedule reached a finite best val_loss: there is no rate to recommend (see the diverged runs)."
    winner = per_optimizer.iloc[0]
    text = (
        f"{winner['optimizer']} with the {winner['schedule']} schedule at {_rate_phrase(winner)} reached the lowest "
        f"best val_loss, {float(winner['best_val_loss_mean']):.4g}"
    )
    confirmed = confirm_row(confirm, str(winner["optimizer"]), str(winner["schedule"]))
    if confirmed is not None:
        text += f", {confirmation_clause(confirmed)}"
    others = []
    for _, row in per_optimizer.iloc[1:].iterrows():
        other = (
            f"{row['optimizer']} did best with {row['schedule']} at {_rate_phrase(row)}, "
            f"{_answer_rate(row) / _answer_rate(winner):.2g}× the winner's rate, best val_loss {float(row['best_val_loss_mean']):.4g}"
        )
        verdict = confirm_row(confirm, str(row["optimizer"]), str(row["schedule"]))
        if verdict is not None:
            other += f" ({verdict['verdict']} on {seeds_text(verdict)})"
        others.append(other)
    return text + "".join(f"; {other}" for other in others) + "."


def sensitivity_sentence(best: pd.DataFrame, optimizer: str) -> str:
    """Which schedule forgives a badly chosen rate most (lowest LR sensitivity), or "" when
    the table has no sensitivity."""
    if "lr_sensitivity" not in best.columns:
        return ""
    finite = best["lr_sensitivity"].map(is_finite).astype(bool)
    rows = best[(best["optimizer"] == optimizer) & finite]
    if rows.empty:
        return ""
    ranked = rows.sort_values(["lr_sensitivity", "schedule"], kind="stable")
    first = ranked.iloc[0]
    text = f"{optimizer}: the most forgiving schedule is {first['schedule']} (LR sensitivity {float(first['lr_sensitivity']):.3g}"
    if len(ranked) > 1:
        last = ranked.iloc[-1]
        text += f"; the least, {last['schedule']}, {float(last['lr_sensitivity']):.3g}"
    return text + ")."


def _recommended_table(best: pd.DataFrame) -> str:
    rows: List[List[tuple[str, str]]] = []
    for _, row in best.iterrows():
        warning = edge_warning(row["at_edge"], row["edge"])
        seeds = int(row["seeds"]) if is_finite(row["seeds"]) else row["seeds"]
        fraction = f"{float(row['diverged_fraction']):.1%}" if is_finite(row["diverged_fraction"]) else "n/a"
        rows.append(
            [
                (_e(row["optimizer"]), ""),
                (_e(row["schedule"]), ""),
                (_e(rate_label(row["lr"])), "num"),
                (fit_badge(row.get("fit")), ""),
                (_e(_mean_std(row["best_val_loss_mean"], row["best_val_loss_std"], ".4f")), "num"),
                (_e(_mean_std(row["best_val_accuracy_mean"], row["best_val_accuracy_std"], ".4f")), "num"),
                (_e(seeds), "num"),
                (_e(fraction), "num"),
                (_e(warning), "warn" if warning else ""),
                (_e(estimate_text(row)), "num"),
                (_e(f"{float(row['lr_sensitivity']):.3g}" if is_finite(row.get("lr_sensitivity")) else "n/a"), "num"),
            ]
        )
    header = [
        "optimizer", "schedule", "rate", "fit", "best val_loss", "val accuracy", "seeds", "diverged", "grid edge",
        "estimated optimum", "LR sensitivity",
    ]  # fmt: skip
    return _table(header, rows, table_id="recommended")


def _warnings_html(warnings: Sequence[StudyWarning]) -> str:
    if not warnings:
        return '<p class="no-warnings">No warnings.</p>'
    items = "".join(
        f'<li class="warning-{_e(item.kind)}"><span class="kind">{_e(WARNING_LABELS.get(item.kind, item.kind))}:</span> '
        f"{_e(item.message)}</li>"
        for item in warnings
    )
    return f'<ul class="warnings">{items}</ul>'


def _diverged_table(runs: pd.DataFrame) -> str:
    rows: List[List[tuple[str, str]]] = []
    for _, row in diverged_by_schedule(runs).iterrows():
        lowest = rate_label(row["lowest_diverging_lr"]) if is_finite(row["lowest_diverging_lr"]) else "none"
        rows.append(
            [
                (_e(row["optimizer"]), ""),
                (_e(row["schedule"]), ""),
                (_e(int(row["runs"])), "num"),
                (_e(int(row["diverged"])), "num"),
                (_e(f"{float(row['diverged_fraction']):.1%}"), "num"),
                (_e(lowest), "num"),
            ]
        )
    header = ["optimizer", "schedule", "runs", "diverged", "diverged share", "lowest diverging rate"]
    return _table(header, rows, table_id="diverged")
