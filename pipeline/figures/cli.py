"""Command line: ``python -m pipeline.figures <figure> --out <dir>/<figure>.png [inputs]``.

Each figure is a subcommand that takes only the inputs it needs (``--runs runs.csv``,
``--curves curves.csv``, ``--best best.csv``, ``--config config.yaml``; the range test's
``--finder a.csv [b.csv ...]`` and ``--suggestions a.json [b.json ...]``, one file per
optimizer; the searches' ``--trials a.csv [b.csv ...]``, one file per search), writes the
image to ``--out`` and the table it draws next to it as ``<stem>.csv``, both atomically.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Union

import pandas as pd
import yaml
from matplotlib.figure import Figure

from pipeline.figures.common import save_figure, save_table
from pipeline.figures.comparison import draw_schedule_comparison, schedule_comparison_table
from pipeline.figures.cost import cost_to_target_table, draw_cost_to_target
from pipeline.figures.curves import draw_learning_curves, learning_curves_table
from pipeline.figures.finder import draw_finder_curves, finder_curves_table
from pipeline.figures.fitting import draw_fitting_map, fitting_map_table
from pipeline.figures.gap import draw_generalisation_gap, generalisation_gap_table
from pipeline.figures.hpo import draw_hpo_history, draw_hpo_trials, hpo_history_table, hpo_trials_table
from pipeline.figures.sensitivity import draw_sensitivity, sensitivity_table
from pipeline.figures.shapes import draw_schedule_shapes, schedule_shapes_table

#: What each input flag holds, for ``--help``.
INPUT_HELP: Dict[str, str] = {
    "runs": "runs.csv of the study",
    "curves": "curves.csv of the study",
    "best": "best.csv of the study",
    "config": "config.yaml of the study (the resolved study)",
    "finder": "finder.csv of each optimizer's LR range test (one or more)",
    "suggestions": "suggestions.json of each optimizer's LR range test (one or more)",
    "trials": "trials.csv of each hyperparameter search (one or more)",
}

#: Inputs given as one file per optimizer or per search (``nargs="+"``): loaded and combined
#: into one.
MULTI_INPUTS: frozenset[str] = frozenset({"finder", "suggestions", "trials"})


@dataclass(frozen=True)
class FigureSpec:
    """One figure: its inputs, the function that builds its table and the one that draws it.

    ``table`` is called with the loaded inputs as keyword arguments named like the flags.
    """

    help: str
    inputs: tuple[str, ...]
    table: Callable[..., pd.DataFrame]
    draw: Callable[[pd.DataFrame], Figure]


#: Every figure, by subcommand name (also the file stem the workflow gives it).
FIGURES: Dict[str, FigureSpec] = {
    "lr_sensitivity": FigureSpec(
        "best val_loss and val_accuracy against learning rate, a panel per optimizer, a line per schedule",
        ("runs",),
        sensitivity_table,
        draw_sensitivity,
    ),
    "fitting_map": FigureSpec(
        "fit label (majority over seeds) of every schedule x rate, a map per optimizer",
        ("runs",),
        fitting_map_table,
        draw_fitting_map,
    ),
    "learning_curves": FigureSpec(
        "train and val loss per epoch at the best rate and its grid neighbours, per optimizer x schedule",
        ("curves", "best"),
        learning_curves_table,
        draw_learning_curves,
    ),
    "generalisation_gap": FigureSpec(
        "final val_loss - loss against learning rate, a panel per optimizer",
        ("runs",),
        generalisation_gap_table,
        draw_generalisation_gap,
    ),
    "schedule_shapes": FigureSpec(
        "the rate per optimizer step of each schedule at its best rate (imports Keras)",
        ("config", "best", "runs", "curves"),
        schedule_shapes_table,
        draw_schedule_shapes,
    ),
    "schedule_comparison": FigureSpec(
        "each schedule at its own best rate, best first, a panel per optimizer",
        ("best",),
        schedule_comparison_table,
        draw_schedule_comparison,
    ),
    "cost_to_target": FigureSpec(
        "epochs and seconds to reach the target accuracy against learning rate",
        ("runs",),
        cost_to_target_table,
        draw_cost_to_target,
    ),
    "finder_curves": FigureSpec(
        "LR range test: smoothed loss against the rising rate per seed, with its suggestions, a panel per optimizer",
        ("finder", "suggestions"),
        finder_curves_table,
        draw_finder_curves,
    ),
    "hpo_history": FigureSpec(
        "hyperparameter search: best val_loss so far against trial number and training seconds, the grid's best as reference",
        ("trials", "runs"),
        hpo_history_table,
        draw_hpo_history,
    ),
    "hpo_trials": FigureSpec(
        "hyperparameter search: every trial's (lr, best val_loss) over the grid's sensitivity curves, a panel per search",
        ("trials", "runs"),
        hpo_trials_table,
        draw_hpo_trials,
    ),
}


#: One input file, or the files of an input in :data:`MULTI_INPUTS`.
InputPaths = Union[Path, Sequence[Path]]


def load_input(kind: str, path: InputPaths) -> Any:
    """An input: a DataFrame for the CSV tables, a mapping for ``config.yaml``.

    Inputs of :data:`MULTI_INPUTS` take a list of files: the ``finder.csv`` and
    ``trials.csv`` files are concatenated into one DataFrame, the ``suggestions.json`` files
    become a list of mappings.
    """
    if kind in MULTI_INPUTS:
        paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(item) for item in path]
        if kind == "suggestions":
            return [json.loads(item.read_text(encoding="utf-8")) for item in paths]
        return pd.concat([pd.read_csv(item) for item in paths], ignore_index=True)
    if kind == "config":
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return pd.read_csv(path)


def render(name: str, out: Path, inputs: Dict[str, InputPaths]) -> pd.DataFrame:
    """Build figure ``name`` from its input files, write it to ``out`` and its table beside it.

    Args:
        name: A key of :data:`FIGURES`.
        out: The image to write; the format follows the suffix.
        inputs: Path of each input the figure needs (a list for :data:`MULTI_INPUTS`).

    Returns:
        The table written as ``<out stem>.csv``.
    """
    spec = FIGURES[name]
    table = spec.table(**{kind: load_input(kind, inputs[kind]) for kind in spec.inputs})
    figure = spec.draw(table)
    out = Path(out)
    save_figure(figure, out)
    save_table(table, out.with_suffix(".csv"))
    return table


def build_parser() -> argparse.ArgumentParser:
    """The parser: one subcommand per figure, with only the input flags it needs."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.figures",
        description="Draw a figure of a learning-rate study and write the table it shows next to it.",
    )
    figures = parser.add_subparsers(dest="figure", required=True, metavar="figure")
    for name, spec in FIGURES.items():
        sub = figures.add_parser(name, help=spec.help, description=spec.help)
        for kind in spec.inputs:
            nargs = "+" if kind in MULTI_INPUTS else None
            sub.add_argument(f"--{kind}", type=Path, nargs=nargs, required=True, help=INPUT_HELP[kind])
        sub.add_argument(
            "--out", type=Path, required=True, help="image to write; its table goes next to it as <stem>.csv"
        )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point: ``python -m pipeline.figures <figure> --out ... [inputs]``."""
    args = build_parser().parse_args(argv)
    spec = FIGURES[args.figure]
    render(args.figure, args.out, {kind: getattr(args, kind) for kind in spec.inputs})
