"""The study report: one self-contained HTML page from ``runs.csv``, ``best.csv`` and figures.

The page opens with the answer (the recommended rate per optimizer × schedule with its fit
label, and which schedule won per optimizer), then the warnings of :mod:`pipeline.analysis.advice`, the
figures with a caption each, the LR range test against the grid (only when its table,
``finder_vs_grid.csv`` of :mod:`pipeline.analysis.finder_vs_grid`, is given), the hyperparameter
searches against the grid and the range test (only when the method comparison,
``methods.csv`` of :mod:`pipeline.analysis.methods`, is given), the diverged runs per schedule, and
what it takes to reproduce the study (settings, package versions, git commit, command).

The page embeds its images as base64 data URIs and its CSS inline, and needs no JavaScript,
so it can be mailed, attached to a ticket or opened offline on a phone and still be whole.
Every piece of text from the study (names, settings, command) goes through
:func:`html.escape`, since option names come from user-editable YAML.

No TensorFlow import here: the report is built by a light job from the CSV files alone.

This module assembles the page and holds the command line; the sections live by meaning in
:mod:`pipeline.report.results` (the recommended rates, the schedule sentences, the warnings,
the diverged runs), :mod:`pipeline.report.figures` (captions, order and embedding of the
figures), :mod:`pipeline.report.finder` (the LR range test section),
:mod:`pipeline.report.methods` (the hyperparameter search section) and
:mod:`pipeline.report.batch` (the batch-size section), all built from the blocks
of :mod:`pipeline.report.html` (CSS, escaping, tables, badges, rates).

Command line::

    python -m pipeline.report --runs runs.csv --best best.csv --config config.yaml \\
        --figure lr_sensitivity=figures/lr_sensitivity.png [--confirm confirm.csv] \\
        [--figure finder_curves=figures/finder_curves.png --finder-table finder_vs_grid.csv] \\
        [--figure hpo_history=figures/hpo_history.png --figure hpo_trials=figures/hpo_trials.png \\
         --methods methods.csv] \\
        [--figure batch_scaling=figures/batch_scaling.png --batch batch_sizes.csv batch_scaling.csv] \\
        --out report.html
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence

import pandas as pd
import yaml

from pipeline.analysis.advice import study_warnings
from pipeline.io import write_text_atomic
from pipeline.report.batch import batch_html
from pipeline.report.confirm import confirm_html
from pipeline.report.figures import BATCH_FIGURE, FINDER_FIGURE, HPO_FIGURES, _figure_html, _ordered_figures
from pipeline.report.finder import _finder_html
from pipeline.report.html import _CSS, _FIT_CSS, _e, _table
from pipeline.report.methods import _methods_html
from pipeline.report.results import (
    BEST_READ,
    RUNS_READ,
    _diverged_table,
    _recommended_table,
    _warnings_html,
    headline,
    schedule_comparison,
    sensitivity_sentence,
)
from pipeline.tables import BATCH_SCALING, BATCH_SIZES, BEST, CONFIRM, FINDER_VS_GRID, METHODS, RUNS, RunStatus


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
    confirm: Optional[pd.DataFrame] = None,
    batch: Optional[tuple[pd.DataFrame, pd.DataFrame]] = None,
) -> str:
    """Build the study report as one self-contained HTML page.

    Args:
        runs: One row per training run (``runs.csv``).
        best: One row per optimizer × schedule with its recommended rate (``best.csv``); its
            ``fit`` column, where present, becomes a badge.
        study: The resolved study (``config.yaml``): ``study`` (name, epochs, seeds, grid) and
            ``diagnosis`` feed the warnings; ``command``, ``versions`` and ``git_commit`` the
            reproduce section.
        figures: Figure name to image file, embedded in the figure registry's order; registered
            names get their title and caption, others are titled by their name.
        config_text: ``config.yaml`` as written, shown verbatim; when omitted the mapping
            ``study`` is dumped as YAML instead.
        finder: The LR range test against the grid (``finder_vs_grid.csv``); when given, an
            "LR range test" section follows the figures and holds the ``finder_curves``
            figure. Without it the page has no such section (``finder_curves``, if given, is
            shown among the figures).
        methods: The method comparison (``methods.csv`` of :mod:`pipeline.analysis.methods`); when
            given, a "Hyperparameter search" section follows (after the LR range test, if
            any) with the ``hpo_history`` and ``hpo_trials`` figures, the comparison table and
            the method that came within 1% of the grid's best with the least compute. Without
            it the page has no such section (the two figures, if given, are shown among the
            figures).
        confirm: The confirmation on fresh seeds (``confirm.csv`` of
            :mod:`pipeline.analysis.confirm`); when given, the headline says what it found,
            a "Confirmation on fresh seeds" section follows the recommended rates, and the
            "seeds disagree" warnings give its verdicts.
        batch: The batch-size question (``batch_sizes.csv`` and ``batch_scaling.csv`` of
            :mod:`pipeline.analysis.batch`); when given, a "Batch size" section follows the
            others, with the ``batch_scaling`` figure. Without it that figure, if given, is
            shown among the figures.

    Returns:
        The HTML page.
    """
    BEST.check(best, BEST_READ)
    RUNS.check(runs, RUNS_READ)
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
        f'<p class="headline" id="headline">{_e(headline(best, confirm))}</p>',
        "<h2>Recommended learning rates</h2>",
        "<p>The grid rate with the lowest mean best val_loss over seeds (± 1 std), per optimizer and "
        "schedule, with the fit diagnosis of its runs; the estimated optimum between grid points (the "
        "minimum of the parabola through the best rate and its neighbours, with a bootstrap interval "
        "over seeds, or why there is none); and the LR sensitivity (the mean excess of the final "
        "val_loss over the best across the grid, diverged runs counted at the untrained loss: lower "
        "forgives a badly chosen rate).</p>",
        _recommended_table(best),
    ]

    sentences = [
        sentence
        for optimizer in sorted(best["optimizer"].unique())
        for sentence in (schedule_comparison(best, optimizer), sensitivity_sentence(best, optimizer))
        if sentence
    ]
    if sentences:
        parts.append('<ul class="findings">' + "".join(f"<li>{_e(text)}</li>" for text in sentences) + "</ul>")

    if confirm is not None:
        parts.append(confirm_html(confirm))
    parts += ['<h2 id="warnings">Warnings</h2>', _warnings_html(study_warnings(runs, best, study, confirm))]

    moved = (
        ({FINDER_FIGURE} if finder is not None else set())
        | (set(HPO_FIGURES) if methods is not None else set())
        | ({BATCH_FIGURE} if batch is not None else set())
    )
    shown = {key: value for key, value in figures.items() if key not in moved}
    parts += [_figure_html(figure_name, Path(path)) for figure_name, path in _ordered_figures(shown)]
    if finder is not None:
        finder_figure = figures.get(FINDER_FIGURE)
        parts.append(_finder_html(finder, Path(finder_figure) if finder_figure is not None else None))
    if methods is not None:
        parts.append(_methods_html(methods, figures))
    if batch is not None:
        batch_figure = figures.get(BATCH_FIGURE)
        parts.append(batch_html(*batch, Path(batch_figure) if batch_figure is not None else None))

    status = runs["status"]
    total, ok, diverged = len(runs), int((status == RunStatus.OK).sum()), int((status == RunStatus.DIVERGED).sum())
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
        help="finder_vs_grid.csv (python -m pipeline.analysis.finder_vs_grid): adds the LR range test section",
    )
    parser.add_argument(
        "--methods",
        type=Path,
        default=None,
        help="methods.csv (python -m pipeline.analysis.methods): adds the hyperparameter search section",
    )
    parser.add_argument(
        "--confirm",
        type=Path,
        default=None,
        help="confirm.csv (python -m pipeline.analysis.confirm): adds the confirmation on fresh seeds",
    )
    parser.add_argument(
        "--batch",
        type=Path,
        nargs=2,
        default=None,
        metavar=("BATCH_SIZES", "BATCH_SCALING"),
        help="batch_sizes.csv and batch_scaling.csv (python -m pipeline.analysis.batch): adds the batch-size section",
    )
    parser.add_argument("--out", type=Path, required=True, help="HTML file to write")
    args = parser.parse_args(argv)

    config_text = args.config.read_text(encoding="utf-8")
    study = yaml.safe_load(config_text) or {}
    if not isinstance(study, dict):
        parser.error(f"{args.config} is not a YAML mapping")
    page = build_report(
        runs=RUNS.read(args.runs),
        best=BEST.read(args.best),
        study=study,
        figures=dict(args.figure),
        config_text=config_text,
        finder=FINDER_VS_GRID.read(args.finder_table) if args.finder_table is not None else None,
        methods=METHODS.read(args.methods) if args.methods is not None else None,
        confirm=CONFIRM.read(args.confirm) if args.confirm is not None else None,
        batch=(BATCH_SIZES.read(args.batch[0]), BATCH_SCALING.read(args.batch[1])) if args.batch is not None else None,
    )
    write_text_atomic(args.out, page)


if __name__ == "__main__":
    main()
