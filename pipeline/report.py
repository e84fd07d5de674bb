"""The study report: one self-contained HTML page from ``runs.csv``, ``best.csv`` and figures.

The page opens with the answer (the recommended rate per optimizer × schedule with its fit
label, and which schedule won per optimizer), then the warnings of :mod:`pipeline.advice`, the
figures with a reading aid each, the LR range test against the grid (only when its table,
``finder_vs_grid.csv`` of :mod:`pipeline.finder_compare`, is given), the hyperparameter
searches against the grid and the range test (only when the method comparison,
``methods.csv`` of :mod:`pipeline.methods`, is given), the diverged runs per schedule, and
what it takes to reproduce the study (settings, package versions, git commit, command).

The page embeds its images as base64 data URIs and its CSS inline, and needs no JavaScript,
so it can be mailed, attached to a ticket or opened offline on a phone and still be whole.
Every piece of text from the study (names, settings, command) goes through
:func:`html.escape`, since option names come from user-editable YAML.

No TensorFlow import here: the report is built by a light job from the CSV files alone.

Command line::

    python -m pipeline.report --runs runs.csv --best best.csv --config config.yaml \\
        --figure lr_sensitivity=figures/lr_sensitivity.png \\
        [--figure finder_curves=figures/finder_curves.png --finder-table finder_vs_grid.csv] \\
        [--figure hpo_history=figures/hpo_history.png --figure hpo_trials=figures/hpo_trials.png \\
         --methods methods.csv] \\
        --out report.html
"""

from __future__ import annotations

import argparse
import base64
import html
import math
import shlex
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import pandas as pd
import yaml

from pipeline.advice import StudyWarning, diverged_by_schedule, study_warnings
from pipeline.config import lr_to_str
from pipeline.diagnosis import FIT_COLORS, FIT_TEXT_COLORS
from pipeline.finder_compare import closest_suggestions, short_rate
from pipeline.io import write_text_atomic
from pipeline.methods import METHOD_COLUMNS
from pipeline.values import check_columns, is_finite, truthy

#: Columns of ``best.csv`` the report reads.
BEST_COLUMNS: tuple[str, ...] = (
    "optimizer",
    "schedule",
    "lr",
    "best_val_loss_mean",
    "best_val_loss_std",
    "best_val_accuracy_mean",
    "best_val_accuracy_std",
    "seeds",
    "diverged_fraction",
    "at_edge",
    "edge",
)

#: Columns of ``runs.csv`` the report reads (``best_epoch`` too, where ``best.csv`` lacks
#: ``best_epoch_mean``).
RUNS_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "lr", "seed", "status", "best_val_loss")

#: Title and one-line reading aid of each known figure; figures are shown in this order, and
#: figures of other names after them, titled by their name.
FIGURE_CAPTIONS: Dict[str, tuple[str, str]] = {
    "lr_sensitivity": (
        "Learning-rate sensitivity",
        "Each line is one schedule's mean best validation loss over seeds at each grid rate "
        "(band: ± 1 std); lower is better, and a flat valley means a forgiving rate. An × at the "
        "top of a panel marks diverged runs at that rate (a number counts them).",
    ),
    "fitting_map": (
        "Fitting map",
        "Each cell is one optimizer × schedule at one rate, coloured by its runs' diagnosis "
        "(diverged dark red, unstable orange, underfit blue-grey, overfit purple, good green): "
        "pick a rate from the green band, away from its edges.",
    ),
    "learning_curves": (
        "Learning curves",
        "Training and validation loss per epoch at each recommended rate: validation loss turning "
        "up while training loss keeps falling is overfitting, and curves still falling at the last "
        "epoch want more epochs.",
    ),
    "generalisation_gap": (
        "Generalisation gap",
        "Validation minus training loss at the end of training, per rate: near 0 the model "
        "generalises, a large positive gap means it memorises the training set (overfit).",
    ),
    "schedule_shapes": (
        "Schedule shapes",
        "The learning rate each schedule applies over training, as a share of its peak (the grid "
        "rate): what differs between the schedules before any result.",
    ),
    "schedule_comparison": (
        "Schedule comparison",
        "Each schedule's best validation loss at its recommended rate, per optimizer (± 1 std over "
        "seeds): lower is better, and overlapping spreads mean the schedules are not distinguishable.",
    ),
    "cost_to_target": (
        "Cost to target",
        "What each optimizer × schedule spent to first reach the target validation accuracy (a "
        "share of the study's best): lower is cheaper; a missing mark never reached it.",
    ),
    "finder_curves": (
        "LR range test curves",
        "Training loss per batch while the rate rises over one short run per seed (faint: raw, solid: "
        "smoothed); the vertical lines are the test's suggestions, shaded over their range across seeds, "
        "and an × at the top marks a loss that was no longer finite, where the test stopped.",
    ),
    "hpo_history": (
        "Hyperparameter search history",
        "Each line is one search's best validation loss so far (complete trials only) against the trial "
        "number (left) and the training seconds spent (right); the dashed line is the grid's best, and a "
        "line that reaches it early found the grid's answer for less compute.",
    ),
    "hpo_trials": (
        "Hyperparameter search trials",
        "Every trial of a search at its rate, over the grid's mean best validation loss per rate (in "
        "colour the optimizer × schedule the trials trained, grey the other grid cells): filled dots "
        "completed, open dots were pruned, an × at the top diverged and a triangle at the top failed.",
    ),
}

#: The figure shown inside the LR range test section (instead of among the figures) when the
#: comparison table is given.
FINDER_FIGURE = "finder_curves"

#: The figures shown inside the hyperparameter search section (instead of among the figures)
#: when the method comparison is given.
HPO_FIGURES: tuple[str, ...] = ("hpo_history", "hpo_trials")

#: Columns of ``finder_vs_grid.csv`` the report reads (``nearest_diverged`` too, where present).
FINDER_COLUMNS: tuple[str, ...] = (
    "optimizer",
    "schedule",
    "suggestion",
    "suggested_lr",
    "suggested_min",
    "suggested_max",
    "seeds",
    "grid_best_lr",
    "ratio",
    "nearest_grid_lr",
    "relative_val_loss",
)

#: Badge colours of the fit labels: the fitting map's (:data:`pipeline.diagnosis.FIT_COLORS`,
#: shared there so that the report job needs no matplotlib).
FIT_COLOURS: Dict[str, str] = FIT_COLORS

#: Badge text colour on each label's colour, as in the fitting map
#: (:data:`pipeline.diagnosis.FIT_TEXT_COLORS`: white on the dark ones, black on the light
#: ones), in the short CSS spelling the page has always used.
FIT_TEXT_COLOURS: Dict[str, str] = {
    label: {"white": "#fff", "black": "#000"}[colour] for label, colour in FIT_TEXT_COLORS.items()
}

#: Headings of the warning kinds of :mod:`pipeline.advice`.
WARNING_LABELS: Dict[str, str] = {
    "edge": "grid edge",
    "diverged": "diverged",
    "early_best": "best epoch early",
    "late_best": "best epoch late",
    "seeds_disagree": "seeds disagree",
}

_MIME_TYPES: Dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}

_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1f2328; background: #fff; }
main { max-width: 64rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.6rem; margin: 0.5rem 0 1rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 0.75rem; border-bottom: 1px solid #d0d7de; }
/* Overrides and rate lists are long unbroken tokens: break them rather than widen the page. */
h1, h2, p, li, figcaption { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; font-size: 0.9rem; min-width: 100%; }
th, td { padding: 0.35rem 0.6rem; border-bottom: 1px solid #d0d7de; text-align: left;
         white-space: nowrap; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
/* The edge note wraps (the warnings section has the details), so the table fits a desktop. */
td.warn { color: #9a6700; background: #fff8c5; white-space: normal; min-width: 7rem; }
img { max-width: 100%; height: auto; display: block; }
figure { margin: 1rem 0; }
figcaption { font-size: 0.9rem; color: #57606a; margin-top: 0.4rem; }
pre { background: #f6f8fa; padding: 0.75rem; overflow-x: auto; font-size: 0.85rem;
      white-space: pre; border-radius: 6px; }
/* The command wraps on screen but copies as the one line it is. */
pre.command { white-space: pre-wrap; overflow-wrap: anywhere; }
ul.findings li, ul.warnings li { margin-bottom: 0.4rem; }
ul.warnings { padding-left: 1.2rem; }
.kind { font-weight: 600; color: #9a6700; }
code { font-size: 0.9em; }
.fit { display: inline-block; padding: 0 0.55em; border-radius: 1em; color: #fff; font-weight: 600;
       font-size: 0.8rem; line-height: 1.6; }
.fit-none { background: #8c959f; }
@media (max-width: 40rem) {
  main { padding: 0.75rem; }
  table { font-size: 0.85rem; }
  th, td { padding: 0.3rem 0.4rem; }
}
"""

#: One background colour per fit label (the badge classes ``fit-<label>``).
_FIT_CSS = "".join(
    f".fit-{label} {{ background: {colour}; color: {FIT_TEXT_COLOURS[label]}; }}\n" for label, colour in FIT_COLOURS.items()
)


def _e(value: object) -> str:
    """HTML-escape any value's text, quotes included (it may land in an attribute)."""
    return html.escape(str(value), quote=True)


def format_rate(lr: float) -> str:
    """A learning rate in the shortest scientific notation that reads back exactly (``3e-4``).

    It is the spelling of run paths (:func:`pipeline.config.lr_to_str`), so a rate in the
    report can be searched for under ``results/``.
    """
    try:
        return lr_to_str(lr)
    except (TypeError, ValueError):
        # Not a valid grid rate (NaN, <= 0): show it as it is rather than fail the report.
        return str(lr)


def _mean_std(mean: Any, std: Any, fmt: str) -> str:
    if not is_finite(mean):
        return "n/a"
    text = format(float(mean), fmt)
    if is_finite(std):
        text += " ± " + format(float(std), fmt)
    return text


def edge_warning(at_edge: Any, edge: Any) -> str:
    """The warning for a best rate on the grid's edge, or "" when it is inside the grid.

    A best rate on the edge means the true optimum may lie outside the grid, so the advice
    names the direction in which to widen it.
    """
    if not truthy(at_edge):
        return ""
    side = str(edge).strip().lower() if isinstance(edge, str) else ""
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
    rows = best[best["optimizer"].astype(str) == optimizer]
    ranked = rows[[is_finite(value) for value in rows["best_val_loss_mean"]]]
    ranked = ranked.sort_values(["best_val_loss_mean", "schedule"], kind="stable")
    if ranked.empty:
        return f"{optimizer}: no schedule reached a finite best val_loss."
    winner = ranked.iloc[0]
    win_loss = float(winner["best_val_loss_mean"])
    win_text = (
        f"{winner['schedule']} (at lr {format_rate(winner['lr'])}) got the lowest best val_loss, {win_loss:.4g}"
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


def _image_data_uri(path: Path) -> str:
    mime = _MIME_TYPES.get(path.suffix.lower())
    if mime is None:
        raise ValueError(f"cannot embed figure {path}: unknown image type {path.suffix!r} (know {sorted(_MIME_TYPES)})")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _table(header: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]], table_id: str = "") -> str:
    """An HTML table in a horizontal scroller; cells are ``(escaped HTML, css class)``.

    The scroller lets a wide table scroll on its own on a phone instead of widening the page.
    """
    head = "".join(f"<th>{_e(name)}</th>" for name in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>" for text, cls in row) + "</tr>"
        for row in rows
    )
    attribute = f' id="{_e(table_id)}"' if table_id else ""
    return f'<div class="scroll"><table{attribute}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def fit_badge(label: Any) -> str:
    """The fit label as a coloured badge (HTML); a missing or unknown label is a grey "n/a"/its text."""
    if label is None or (isinstance(label, float) and math.isnan(label)) or str(label).strip() == "":
        return '<span class="fit fit-none">n/a</span>'
    text = str(label).strip()
    css = f"fit-{text}" if text in FIT_COLOURS else "fit-none"
    return f'<span class="fit {css}">{_e(text)}</span>'


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
                (_e(format_rate(row["lr"])), "num"),
                (fit_badge(row.get("fit")), ""),
                (_e(_mean_std(row["best_val_loss_mean"], row["best_val_loss_std"], ".4f")), "num"),
                (_e(_mean_std(row["best_val_accuracy_mean"], row["best_val_accuracy_std"], ".4f")), "num"),
                (_e(seeds), "num"),
                (_e(fraction), "num"),
                (_e(warning), "warn" if warning else ""),
            ]
        )
    header = ["optimizer", "schedule", "rate", "fit", "best val_loss", "val accuracy", "seeds", "diverged", "grid edge"]
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
        lowest = format_rate(row["lowest_diverging_lr"]) if is_finite(row["lowest_diverging_lr"]) else "none"
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


def _ordered_figures(figures: Mapping[str, Path]) -> List[tuple[str, Path]]:
    """Known figures in :data:`FIGURE_CAPTIONS` order (the reading order), then the rest as given."""
    known = [(name, figures[name]) for name in FIGURE_CAPTIONS if name in figures]
    return known + [(name, path) for name, path in figures.items() if name not in FIGURE_CAPTIONS]


def _figure_html(name: str, path: Path) -> str:
    heading, caption = FIGURE_CAPTIONS.get(name, (name, ""))
    return (
        f'<section id="figure-{_e(name)}"><h2>{_e(heading)}</h2>'
        f'<figure><img src="{_image_data_uri(Path(path))}" alt="{_e(heading)}">'
        + (f"<figcaption>{_e(caption)}</figcaption>" if caption else "")
        + "</figure></section>"
    )


def _section_figure(name: str, path: Path) -> str:
    """A known figure inside a section of its own (the range test, the searches), with its aid."""
    heading, caption = FIGURE_CAPTIONS[name]
    return (
        f'<figure id="figure-{_e(name)}"><img src="{_image_data_uri(Path(path))}" alt="{_e(heading)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


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
    (:func:`pipeline.finder_compare.closest_suggestions`); suggestions that tie are named
    together, and the others follow with their means.
    """
    ranked = closest_suggestions(finder[finder["optimizer"].astype(str) == optimizer])
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
        names = list(winners["suggestion"].astype(str))
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
        nearest = format_rate(row["nearest_grid_lr"]) if is_finite(row["nearest_grid_lr"]) else "n/a"
        rows.append(
            [
                (_e(row["optimizer"]), ""),
                (_e(row["schedule"]), ""),
                (_e(row["suggestion"]), ""),
                (_e(_suggested_text(row)), "num"),
                (_e(format_rate(row["grid_best_lr"])), "num"),
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
    check_columns(finder, FINDER_COLUMNS, "finder table")
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
    sentences = [finder_sentence(finder, optimizer) for optimizer in sorted(finder["optimizer"].astype(str).unique())]
    if sentences:
        parts.append('<ul class="findings">' + "".join(f"<li>{_e(text)}</li>" for text in sentences) + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)


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
    grid = methods[methods["method"].astype(str) == "grid"]
    grid_best = float(grid["best_val_loss"].iloc[0]) if len(grid) else math.nan
    target = "the grid's best validation loss" + (f" ({grid_best:.4f})" if is_finite(grid_best) else "")
    pairs = zip(methods["reached"], methods["epochs_to_within_1pct"])
    reached = methods[[truthy(value) and is_finite(epochs) for value, epochs in pairs]]
    if reached.empty:
        return f"No method came within 1% of {target}."
    epochs = reached["epochs_to_within_1pct"].astype(float)
    seconds = reached["seconds_to_within_1pct"].astype(float).fillna(math.inf)
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
    if "grid" not in names and len(grid) and truthy(grid["reached"].iloc[0]):
        row = grid.iloc[0]
        grid_cost = _cost_text(row["epochs_to_within_1pct"], row["seconds_to_within_1pct"], "{epochs} ({seconds})")
        text += f"; the grid took {grid_cost}"
    return text + "."


def _methods_table(methods: pd.DataFrame) -> str:
    rows: List[List[tuple[str, str]]] = []
    for _, row in methods.iterrows():
        method = str(row["method"])
        loss = f"{float(row['best_val_loss']):.4f}" if is_finite(row["best_val_loss"]) else "n/a"
        if not is_finite(row["lr"]):
            rate = "n/a"
        else:
            # Grid rates read back exactly (and match run paths); a search's rate is any float.
            rate = format_rate(row["lr"]) if _is_grid_rate(method) else short_rate(row["lr"])
        cell = "n/a" if pd.isna(row["optimizer"]) else f"{row['optimizer']} × {row['schedule']}"
        reach = (
            _cost_text(row["epochs_to_within_1pct"], row["seconds_to_within_1pct"])
            if truthy(row["reached"]) and is_finite(row["epochs_to_within_1pct"])
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
    return _table(header, rows, table_id="method-comparison")


def _methods_html(methods: pd.DataFrame, figures: Mapping[str, Path]) -> str:
    """The hyperparameter search section: its figures, the method comparison, one sentence."""
    check_columns(methods, METHOD_COLUMNS, "methods table")
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
        parts.append(f'<ul class="findings"><li>{_e(methods_sentence(methods))}</li></ul>')
    parts.append("</section>")
    return "\n".join(parts)


def _study_name(study: Mapping[str, Any]) -> str:
    settings = study.get("study")
    if isinstance(settings, Mapping) and settings.get("name") is not None:
        return str(settings["name"])
    return "unnamed study"


def _command_text(command: Any) -> str:
    """The reproduce command as one shell line; a list is quoted so it pastes back exactly."""
    if command is None:
        return "(not recorded)"
    if isinstance(command, (list, tuple)):
        return shlex.join(str(part) for part in command)
    return str(command)


def _provenance_html(study: Mapping[str, Any]) -> str:
    """Package versions and git commit, where ``config.yaml`` recorded them."""
    parts: List[str] = []
    versions = study.get("versions")
    if isinstance(versions, Mapping) and versions:
        rows = [[(_e(name), ""), (_e(version), "")] for name, version in versions.items()]
        parts += ["<h2>Package versions</h2>", _table(["package", "version"], rows, table_id="versions")]
    commit = study.get("git_commit")
    if commit:
        parts.append(f'<p>Git commit: <code id="git-commit">{_e(commit)}</code></p>')
    else:
        parts.append("<p>Git commit: not recorded (the study was not run from a git checkout).</p>")
    return "\n".join(parts)


def build_report(
    runs: pd.DataFrame,
    best: pd.DataFrame,
    study: Mapping[str, Any],
    figures: Mapping[str, Path],
    config_text: Optional[str] = None,
    finder: Optional[pd.DataFrame] = None,
    methods: Optional[pd.DataFrame] = None,
) -> str:
    """Build the study report as one self-contained HTML page.

    Args:
        runs: One row per training run (``runs.csv``).
        best: One row per optimizer × schedule with its recommended rate (``best.csv``); its
            ``fit`` column, where present, becomes a badge.
        study: The resolved study (``config.yaml``): ``study`` (name, epochs, seeds, grid) and
            ``diagnosis`` feed the warnings; ``command``, ``versions`` and ``git_commit`` the
            reproduce section.
        figures: Figure name to image file, embedded in :data:`FIGURE_CAPTIONS` order; known
            names get their heading and reading aid, others are titled by their name.
        config_text: ``config.yaml`` as written, shown verbatim; when omitted the mapping
            ``study`` is dumped as YAML instead.
        finder: The LR range test against the grid (``finder_vs_grid.csv``); when given, an
            "LR range test" section follows the figures and holds the ``finder_curves``
            figure. Without it the page has no such section (``finder_curves``, if given, is
            shown among the figures).
        methods: The method comparison (``methods.csv`` of :mod:`pipeline.methods`); when
            given, a "Hyperparameter search" section follows (after the LR range test, if
            any) with the ``hpo_history`` and ``hpo_trials`` figures, the comparison table and
            the method that came within 1% of the grid's best with the least compute. Without
            it the page has no such section (the two figures, if given, are shown among the
            figures).

    Returns:
        The HTML page.
    """
    check_columns(best, BEST_COLUMNS, "best")
    check_columns(runs, RUNS_COLUMNS, "runs")
    name = _study_name(study)
    best = best.sort_values(["optimizer", "schedule"], kind="stable").reset_index(drop=True)
    parts: List[str] = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>LR study: {_e(name)}</title>",
        f"<style>{_CSS}{_FIT_CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>Learning-rate study: {_e(name)}</h1>",
        "<h2>Recommended learning rates</h2>",
        "<p>The grid rate with the lowest mean best val_loss over seeds (± 1 std), per optimizer and "
        "schedule, with the fit diagnosis of its runs.</p>",
        _recommended_table(best),
    ]

    sentences = [schedule_comparison(best, optimizer) for optimizer in sorted(best["optimizer"].astype(str).unique())]
    if sentences:
        parts.append('<ul class="findings">' + "".join(f"<li>{_e(text)}</li>" for text in sentences) + "</ul>")

    parts += ['<h2 id="warnings">Warnings</h2>', _warnings_html(study_warnings(runs, best, study))]

    moved = ({FINDER_FIGURE} if finder is not None else set()) | (set(HPO_FIGURES) if methods is not None else set())
    shown = {key: value for key, value in figures.items() if key not in moved}
    parts += [_figure_html(figure_name, Path(path)) for figure_name, path in _ordered_figures(shown)]
    if finder is not None:
        finder_figure = figures.get(FINDER_FIGURE)
        parts.append(_finder_html(finder, Path(finder_figure) if finder_figure is not None else None))
    if methods is not None:
        parts.append(_methods_html(methods, figures))

    status = runs["status"].astype(str)
    total, ok, diverged = len(runs), int((status == "ok").sum()), int((status == "diverged").sum())
    summary = f"{total} runs: {ok} ok, {diverged} diverged"
    other = total - ok - diverged
    if other:
        summary += f", {other} with another status"
    parts += ["<h2>Diverged runs per schedule</h2>", f"<p>{_e(summary)}.</p>", _diverged_table(runs)]

    if config_text is None:
        config_text = yaml.safe_dump(dict(study), sort_keys=False, allow_unicode=True)
    parts += [
        "<h2>Study settings</h2>",
        "<p>The resolved study (<code>config.yaml</code>):</p>",
        f"<pre>{_e(config_text)}</pre>",
        _provenance_html(study),
        "<h2>Reproduce</h2>",
        f'<pre class="command"><code>{_e(_command_text(study.get("command")))}</code></pre>',
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _parse_figure(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point: ``python -m pipeline.report ...``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, required=True, help="runs.csv of the study")
    parser.add_argument("--best", type=Path, required=True, help="best.csv of the study")
    parser.add_argument("--config", type=Path, required=True, help="the resolved study, config.yaml")
    parser.add_argument(
        "--figure",
        type=_parse_figure,
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a figure to embed (repeatable), e.g. lr_sensitivity=figures/lr_sensitivity.png",
    )
    parser.add_argument(
        "--finder-table",
        type=Path,
        default=None,
        help="finder_vs_grid.csv (python -m pipeline.finder_compare): adds the LR range test section",
    )
    parser.add_argument(
        "--methods",
        type=Path,
        default=None,
        help="methods.csv (python -m pipeline.methods): adds the hyperparameter search section",
    )
    parser.add_argument("--out", type=Path, required=True, help="HTML file to write")
    args = parser.parse_args(argv)

    config_text = args.config.read_text(encoding="utf-8")
    study = yaml.safe_load(config_text) or {}
    if not isinstance(study, dict):
        parser.error(f"{args.config} is not a YAML mapping")
    page = build_report(
        runs=pd.read_csv(args.runs),
        best=pd.read_csv(args.best, keep_default_na=True),
        study=study,
        figures=dict(args.figure),
        config_text=config_text,
        finder=pd.read_csv(args.finder_table) if args.finder_table is not None else None,
        methods=pd.read_csv(args.methods) if args.methods is not None else None,
    )
    write_text_atomic(args.out, page)


if __name__ == "__main__":
    main()
