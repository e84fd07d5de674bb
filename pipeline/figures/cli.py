"""Command line: ``python -m pipeline.figures <figure> --out <dir>/<figure>.png [inputs]``.

Each figure of the registry (:mod:`pipeline.figures.registry`) is a subcommand that takes only
the inputs it needs (``--runs runs.csv``, ``--curves curves.csv``, ``--best best.csv``,
``--config config.yaml``; the range test's ``--finder a.csv [b.csv ...]`` and
``--suggestions a.json [b.json ...]``, one file per optimizer; the searches'
``--trials a.csv [b.csv ...]``, one file per search), writes the image to ``--out`` and the
table it draws next to it as ``<stem>.csv``, both atomically. Only the drawn figure's module
is imported, so a CSV-only figure never imports Keras.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import pandas as pd
import yaml

from pipeline.figures.common import save_figure, save_table
from pipeline.figures.registry import FIGURES, INPUTS


#: One input file, or the files of a ``multiple`` input (:data:`~pipeline.figures.registry.INPUTS`).
InputPaths = Union[Path, Sequence[Path]]


def load_input(kind: str, path: InputPaths) -> Any:
    """An input: a DataFrame for the CSV tables, a mapping for ``config.yaml``.

    ``multiple`` inputs take a list of files: the ``finder.csv`` and ``trials.csv`` files are
    concatenated into one DataFrame, the ``suggestions.json`` files become a list of mappings.
    """
    if INPUTS[kind].multiple:
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
        name: A key of :data:`~pipeline.figures.registry.FIGURES`.
        out: The image to write; the format follows the suffix.
        inputs: Path of each input the figure needs (a list for a ``multiple`` input).

    Returns:
        The table written as ``<out stem>.csv``.
    """
    spec = FIGURES[name]
    table = spec.table_function()(**{kind: load_input(kind, inputs[kind]) for kind in spec.inputs})
    figure = spec.draw_function()(table)
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
        sub = figures.add_parser(
            name, help=spec.title, description=spec.caption, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        for kind in spec.inputs:
            nargs = "+" if INPUTS[kind].multiple else None
            sub.add_argument(f"--{kind}", type=Path, nargs=nargs, required=True, help=INPUTS[kind].help)
        sub.add_argument(
            "--out", type=Path, required=True, help="image to write; its table goes next to it as <stem>.csv"
        )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point: ``python -m pipeline.figures <figure> --out ... [inputs]``."""
    args = build_parser().parse_args(argv)
    spec = FIGURES[args.figure]
    render(args.figure, args.out, {kind: getattr(args, kind) for kind in spec.inputs})
