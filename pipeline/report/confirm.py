"""The report's confirmation section and sentences: did the recommendation hold on fresh seeds?

Built from ``confirm.csv`` (:mod:`pipeline.analysis.confirm`): one clause per cell for the
headline and the warnings (:func:`confirmation_clause`), and a table of every confirmed cell
with its verdict, the winner's curse (the grid's mean against the fresh seeds' at the same
rate) and what the estimated optimum gave.
"""

from __future__ import annotations

from typing import List

import pandas as pd

from pipeline.analysis.confirm import confirm_row as confirm_row
from pipeline.config.rates import rate_label, short_rate
from pipeline.report.html import _e, _table
from pipeline.tables import CONFIRM, Verdict
from pipeline.values import is_finite


def _number(value: object, digits: int = 3) -> str:
    return f"{float(value):.{digits}g}" if is_finite(value) else "n/a"


def _interval(low: object, high: object) -> str:
    return f"95% interval {_number(low)} to {_number(high)}"


def seeds_text(row: pd.Series) -> str:
    """"3 fresh seeds" (singular for one)."""
    count = int(row["seeds"])
    return f"{count} fresh seed{'s' if count != 1 else ''}"


def confirmation_clause(row: pd.Series) -> str:
    """What the confirmation found for one cell, as a clause of a sentence; every number from
    its ``confirm.csv`` row (``margin`` is the runner-up's loss minus the grid rate's)."""
    verdict = str(row["verdict"])
    seeds = seeds_text(row)
    rate, runner = rate_label(row["lr"]), rate_label(row["runner_up_lr"])
    if verdict == Verdict.CONFIRMED:
        return (
            f"confirmed on {seeds}: the grid rate {rate} beat the runner-up {runner} by {_number(row['margin'])} "
            f"({_interval(row['margin_low'], row['margin_high'])})"
        )
    if verdict == Verdict.OVERTURNED:
        return (
            f"overturned on {seeds}: the runner-up {runner} beat the grid rate {rate} by {_number(-float(row['margin']))} "
            f"({_interval(-float(row['margin_high']), -float(row['margin_low']))}): prefer the runner-up"
        )
    if verdict == Verdict.TIE:
        return (
            f"a tie on {seeds}: the grid rate {rate} and the runner-up {runner} cannot be told apart "
            f"(margin {_number(row['margin'])}, {_interval(row['margin_low'], row['margin_high'])}): either serves"
        )
    return f"retrained on {seeds} with no runner-up to compare (mean best val_loss {_number(row['lr_loss'], 4)})"


def _verdict_badge(verdict: str) -> str:
    css = {"confirmed": "fit-good", "tie": "fit-underfit", "overturned": "fit-diverged"}.get(verdict, "fit-none")
    return f'<span class="fit {css}">{_e(verdict)}</span>'


def _with_interval(value: object, low: object, high: object) -> str:
    if not is_finite(value):
        return "n/a"
    return f"{float(value):+.4f} ({_number(low)} to {_number(high)})" if is_finite(low) else f"{float(value):+.4f}"


def _confirm_table(confirm: pd.DataFrame) -> str:
    rows: List[List[tuple[str, str]]] = []
    for _, row in confirm.iterrows():
        runner = rate_label(row["runner_up_lr"]) if is_finite(row["runner_up_lr"]) else "none"
        estimate = short_rate(row["estimate_lr"]) if is_finite(row["estimate_lr"]) else "none"
        rows.append(
            [
                (_e(row["optimizer"]), ""),
                (_e(row["schedule"]), ""),
                (_e(rate_label(row["lr"])), "num"),
                (_e(runner), "num"),
                (_e(int(row["seeds"])), "num"),
                (_e(_number(row["grid_loss"], 4)), "num"),
                (_e(_number(row["lr_loss"], 4)), "num"),
                (_e(_number(row["runner_up_loss"], 4)), "num"),
                (_e(_with_interval(row["margin"], row["margin_low"], row["margin_high"])), "num"),
                (_verdict_badge(str(row["verdict"])), ""),
                (_e(estimate), "num"),
                (_e(_number(row["estimate_loss"], 4)), "num"),
                (_e(_with_interval(row["estimate_gain"], row["estimate_gain_low"], row["estimate_gain_high"])), "num"),
            ]
        )
    header = [
        "optimizer", "schedule", "rate", "runner-up", "fresh seeds", "grid's mean", "fresh mean", "runner-up fresh mean",
        "margin (95% interval)", "verdict", "estimated optimum", "its fresh mean", "gain over the grid rate (95% interval)",
    ]  # fmt: skip
    return _table(header, rows, table_id="confirmation")


def confirm_html(confirm: pd.DataFrame) -> str:
    """The section "Confirmation on fresh seeds"."""
    CONFIRM.check(confirm, what="confirmation table")
    parts = [
        '<section id="confirmation-section"><h2>Confirmation on fresh seeds</h2>',
        "<p>The recommended rate, the runner-up rate and the estimated optimum of each cell, retrained on "
        "seeds the grid did not use. Losses are means of the best val_loss over the fresh seeds (a diverged "
        "run counts at its untrained loss). The margin is the runner-up's loss minus the recommended "
        "rate's, seed by seed, with its 95% paired t-interval: <b>confirmed</b> when the interval lies above "
        "0, <b>overturned</b> below 0, a <b>tie</b> when it holds 0 (both rates are equally good choices on "
        "this evidence). The grid's mean beside the fresh mean at the same rate shows how much the grid's "
        "minimum owed to luck; the last column, how much the estimated optimum gained over the grid rate.</p>",
    ]
    if confirm.empty:
        parts.append("<p>No cell to confirm: no rate reached a finite loss.</p>")
    else:
        parts.append(_confirm_table(confirm))
    parts.append("</section>")
    return "\n".join(parts)
