"""The report's figures: their titles and reading aids, their order, and their embedding.

Each figure is embedded in the page as a base64 data URI, so the report needs no file beside
it. The LR range test and the hyperparameter search sections show their own figures
(:data:`FINDER_FIGURE`, :data:`HPO_FIGURES`) inside them with :func:`_section_figure`; the
others are shown in :data:`FIGURE_CAPTIONS` order with :func:`_figure_html`.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Dict, List, Mapping

from pipeline.report.html import _e

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


_MIME_TYPES: Dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}


def _image_data_uri(path: Path) -> str:
    mime = _MIME_TYPES.get(path.suffix.lower())
    if mime is None:
        raise ValueError(f"cannot embed figure {path}: unknown image type {path.suffix!r} (know {sorted(_MIME_TYPES)})")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


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
