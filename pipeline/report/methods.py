"""The report's hyperparameter search section: every way the study found a rate, compared.

Built from ``methods.csv`` (:mod:`pipeline.analysis.methods`): the searches' figures, a table of the
grid, the range test's suggestions and each search on the same footing, and a sentence on
which came within 1% of the grid's best with the least compute.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, List, Mapping

import pandas as pd

from pipeline.config.rates import rate_label, short_rate
from pipeline.report.figures import HPO_FIGURES, _section_figure
from pipeline.report.html import _e, _mean_std, _table
from pipeline.tables import METHODS
from pipeline.values import is_finite


def _is_grid_rate(method: str) -> bool:
    """Whether a method's rate is a grid rate (the grid, a range-test suggestion confirmed on it)."""
    return method == "grid" or method.startswith("finder_")


def _cost_text(epochs: Any, seconds: Any, template: str = "{epochs}, {seconds}") -> str:
    """``11 epochs, 6.5 s``: compute spent, in ``template``; seconds only where recorded."""
    count = int(float(epochs))
    text = f"{count} epoch{'s' if count != 1 else ''}"
    if not is_finite(seconds):
        return text
    return template.format(epochs=text, seconds=f"{float(seconds):.1f} s")


def methods_sentence(methods: pd.DataFrame) -> str:
    """One sentence: which method came within 1% of the grid's best with the least compute.

    Compute is counted in epochs first (they do not depend on the machine or on how many
    jobs shared it), seconds break ties; methods that tie on both are named together. A
    range-test suggestion's cost is that of the grid runs that confirm it (the range test
    itself is not in the table), and the sentence says so when one wins.
    """
    grid = methods[methods["method"] == "grid"]
    grid_best = float(grid["best_val_loss"].iloc[0]) if len(grid) else math.nan
    target = "the grid's best validation loss" + (f" ({grid_best:.4f})" if is_finite(grid_best) else "")
    pairs = zip(methods["reached"], methods["epochs_to_within_1pct"])
    reached = methods[[bool(value) and is_finite(epochs) for value, epochs in pairs]]
    if reached.empty:
        return f"No method came within 1% of {target}."
    epochs = reached["epochs_to_within_1pct"]
    seconds = reached["seconds_to_within_1pct"].fillna(math.inf)
    fewest = reached[epochs == epochs.min()]
    winners = fewest[seconds[fewest.index] == seconds[fewest.index].min()]
    names = [str(name) for name in winners["method"]]
    first = winners.iloc[0]
    sentence = "{epochs} of training ({seconds})"
    if names == ["grid"]:
        return (
            f"The grid itself came within 1% of {target} with the least compute: "
            + _cost_text(first["epochs_to_within_1pct"], first["seconds_to_within_1pct"], sentence)
            + "."
        )
    if len(names) == 1:
        head = f"{names[0]} came"
    else:
        head = f"{', '.join(names[:-1])} and {names[-1]} came equally"
    text = (
        f"{head} within 1% of {target} with the least compute: "
        + _cost_text(first["epochs_to_within_1pct"], first["seconds_to_within_1pct"], sentence)
    )
    if any(name.startswith("finder_") for name in names):
        text += ", counting the grid runs that confirm the suggestion but not the range test itself"
    if "grid" not in names and len(grid) and grid["reached"].iloc[0]:
        row = grid.iloc[0]
        grid_cost = _cost_text(row["epochs_to_within_1pct"], row["seconds_to_within_1pct"], "{epochs} ({seconds})")
        text += f"; the grid took {grid_cost}"
    return text + "."


def _methods_table(methods: pd.DataFrame) -> str:
    fresh = "fresh_val_loss" in methods.columns
    rows: List[List[tuple[str, str]]] = []
    for _, row in methods.iterrows():
        method = str(row["method"])
        loss = f"{float(row['best_val_loss']):.4f}" if is_finite(row["best_val_loss"]) else "n/a"
        if not is_finite(row["lr"]):
            rate = "n/a"
        else:
            # Grid rates read back exactly (and match run paths); a search's rate is any float.
            rate = rate_label(row["lr"]) if _is_grid_rate(method) else short_rate(row["lr"])
        cell = f"{row['optimizer']} × {row['schedule']}" if row["optimizer"] else "n/a"
        reach = (
            _cost_text(row["epochs_to_within_1pct"], row["seconds_to_within_1pct"])
            if row["reached"] and is_finite(row["epochs_to_within_1pct"])
            else "never"
        )
        rows.append(
            [
                (_e(method), ""),
                (_e(loss), "num"),
                (_e(rate), "num"),
                (_e(cell), ""),
                (_e(int(float(row["runs"]))), "num"),
                (_e(int(float(row["epochs"]))), "num"),
                (_e(f"{float(row['seconds']):.1f}"), "num"),
                (_e(reach), "num"),
            ]
        )
        if fresh:
            rows[-1] += [
                (_e(_mean_std(row["fresh_val_loss"], row["fresh_val_loss_std"], ".4f")), "num"),
                (_e(int(row["fresh_rank"]) if not pd.isna(row["fresh_rank"]) else "n/a"), "num"),
            ]
    header = [
        "method",
        "best val_loss",
        "rate",
        "optimizer × schedule",
        "trainings",
        "epochs",
        "seconds",
        "compute to within 1% of the grid's best",
    ]
    if fresh:
        header += ["val_loss on fresh seeds", "rank on fresh seeds"]
    return _table(header, rows, table_id="method-comparison")


def fresh_sentence(methods: pd.DataFrame) -> str:
    """One sentence: which method's choice did best when retrained on the fresh seeds, or ""
    without them. Ties (the same choice, or the same loss) share the first rank."""
    if "fresh_rank" not in methods.columns:
        return ""
    ranked = methods[methods["fresh_rank"].notna()]
    if ranked.empty:
        return "No method's choice was retrained on fresh seeds."
    first = ranked[ranked["fresh_rank"] == ranked["fresh_rank"].min()]
    names = [str(name) for name in first["method"]]
    row = first.iloc[0]
    who = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return (
        f"Retrained on {int(row['fresh_seeds'])} fresh seeds (the fair test: each method's best single result above "
        f"is the lowest of its own noisy runs), {who} chose best: mean best val_loss {float(row['fresh_val_loss']):.4f}."
    )


def _methods_html(methods: pd.DataFrame, figures: Mapping[str, Path]) -> str:
    """The hyperparameter search section: its figures, the method comparison, one sentence."""
    METHODS.check(methods, what="methods table")
    parts = [
        '<section id="hyperparameter-search"><h2>Hyperparameter search</h2>',
        "<p>Every way this study found a rate, on the same footing: the grid (every rate × seed), each "
        "LR range test suggestion (confirmed by the grid runs at the grid rate nearest it) and each "
        "search. For each: the lowest validation loss it found, the rate it chose, what it trained in "
        "all, and the compute it had spent when it first came within 1% of the grid's best validation "
        "loss (searches in trial order, the grid by rate then seed).</p>",
    ]
    parts += [_section_figure(name, Path(figures[name])) for name in HPO_FIGURES if name in figures]
    if methods.empty:
        parts.append("<p>No method to compare.</p>")
    else:
        parts.append(_methods_table(methods))
        sentences = [text for text in (methods_sentence(methods), fresh_sentence(methods)) if text]
        parts.append('<ul class="findings">' + "".join(f"<li>{_e(text)}</li>" for text in sentences) + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)
