"""The report's batch-size section: "I doubled the batch; what now?"

Built from ``batch_sizes.csv`` and ``batch_scaling.csv`` (:mod:`pipeline.analysis.batch`): a
table with each optimizer × schedule's best rate at every batch size, the fitted exponent with
its interval, the rule it follows and what doubling the batch asks of the rate; one sentence
per cell; and the ``batch_scaling`` figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import pandas as pd

from pipeline.config.rates import rate_label, short_rate
from pipeline.report.figures import BATCH_FIGURE, _section_figure
from pipeline.report.html import _e, _table
from pipeline.tables import BATCH_SCALING, BATCH_SIZES, ScalingRule
from pipeline.values import is_finite

#: What each rule means for a user, with its source.
RULE_TEXT = {
    ScalingRule.LINEAR: "the linear rule (Goyal et al. 2017): scale the rate with the batch size",
    ScalingRule.SQRT: "the square-root rule (Malladi et al. 2022): scale the rate with the square root of the batch size",
    ScalingRule.CONSTANT: "no scaling: keep the rate whatever the batch size",
    ScalingRule.UNDECIDED: "more than one rule within the interval: more seeds or batch sizes would decide",
    ScalingRule.OTHER: "none of the linear, square-root or constant rules",
    ScalingRule.NONE: "no fit: fewer than two batch sizes reached a finite loss",
}


def _exponent(row: pd.Series) -> str:
    if not is_finite(row["exponent"]):
        return "n/a"
    text = f"{float(row['exponent']):.2f}"
    if is_finite(row["exponent_low"]):
        text += f" ({float(row['exponent_low']):.2f} to {float(row['exponent_high']):.2f})"
    return text


def scaling_sentence(row: pd.Series) -> str:
    """One cell's answer in a sentence; every number from its ``batch_scaling.csv`` row."""
    cell = f"{row['optimizer']} with {row['schedule']}"
    rule = ScalingRule(str(row["rule"]))
    if rule == ScalingRule.NONE:
        return f"{cell}: {RULE_TEXT[rule]}."
    interval = (
        f" (95% interval {float(row['exponent_low']):.2f} to {float(row['exponent_high']):.2f})"
        if is_finite(row["exponent_low"])
        else " (one seed: no interval)"
    )
    text = (
        f"{cell}: best rate ∝ batch_size^{float(row['exponent']):.2f}{interval}, {RULE_TEXT[rule]}; "
        f"doubling the batch, multiply the rate by {float(row['rate_per_doubling']):.2f}."
    )
    return text + (f" Note: {row['note']}." if str(row["note"]) else "")


def _scaling_table(sizes: pd.DataFrame, scaling: pd.DataFrame) -> str:
    batch_sizes = sorted(int(size) for size in sizes["batch_size"].unique())
    rows: List[List[tuple[str, str]]] = []
    for _, cell in scaling.iterrows():
        at = sizes[(sizes["optimizer"] == cell["optimizer"]) & (sizes["schedule"] == cell["schedule"])].set_index("batch_size")
        rates = []
        for size in batch_sizes:
            if size not in at.index:
                rates.append(("n/a", "num"))
                continue
            entry = at.loc[size]
            text = f"{short_rate(entry['lr_fit'])} (grid {rate_label(entry['lr'])}{', edge' if str(entry['edge']) else ''})"
            rates.append((_e(text), "num"))
        rows.append(
            [
                (_e(cell["optimizer"]), ""),
                (_e(cell["schedule"]), ""),
                *rates,
                (_e(_exponent(cell)), "num"),
                (_e(cell["rule"]), ""),
                (_e(f"×{float(cell['rate_per_doubling']):.2f}" if is_finite(cell["rate_per_doubling"]) else "n/a"), "num"),
            ]
        )
    header = [
        "optimizer", "schedule", *(f"rate at batch {size}" for size in batch_sizes),
        "exponent k (95% interval)", "rule", "rate when the batch doubles",
    ]  # fmt: skip
    return _table(header, rows, table_id="batch-scaling")


def batch_html(sizes: pd.DataFrame, scaling: pd.DataFrame, figure: Optional[Path] = None) -> str:
    """The section "Batch size": the table, one sentence per cell, and the figure when given."""
    BATCH_SIZES.check(sizes, what="batch sizes table")
    BATCH_SCALING.check(scaling, what="batch scaling table")
    parts = [
        '<section id="batch-size"><h2>Batch size</h2>',
        "<p>The grid trained again at each batch size (every optimizer, schedule, seed and rate). Per cell, "
        "the best rate at each batch size (the minimum of the parabola through the best grid rate and its "
        "neighbours, with the best grid rate in brackets) and the exponent k of best rate ∝ batch_size^k, "
        "fitted by least squares on log-log axes, with its 95% bootstrap interval over seeds. The rule is "
        "the one of linear (k = 1), square root (k = 0.5) or constant (k = 0) that the interval holds.</p>",
    ]
    if scaling.empty:
        parts.append("<p>No optimizer × schedule was trained at every batch size.</p>")
    else:
        parts.append(_scaling_table(sizes, scaling))
        sentences = [scaling_sentence(row) for _, row in scaling.iterrows()]
        parts.append('<ul class="findings">' + "".join(f"<li>{_e(text)}</li>" for text in sentences) + "</ul>")
    if figure is not None:
        parts.append(_section_figure(BATCH_FIGURE, Path(figure)))
    parts.append("</section>")
    return "\n".join(parts)
