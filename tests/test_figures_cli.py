"""The figures' command line: every figure writes its PNG and its table, from the study's files."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pandas as pd
import pytest
import yaml
from figures_synthetic import CONFIG, make_best, make_curves, make_finder, make_runs, make_suggestions
from batch_synthetic import synthetic_runs
from hpo_synthetic import make_trials

from pipeline.analysis.batch import batch_scaling_table, batch_sizes_table
from pipeline.figures.cli import build_parser, main
from pipeline.figures.registry import FIGURES

#: The input flags of each figure, exactly.
INPUTS: Dict[str, List[str]] = {
    "lr_sensitivity": ["runs"],
    "fitting_map": ["runs"],
    "learning_curves": ["curves", "best"],
    "generalisation_gap": ["runs"],
    "schedule_shapes": ["runs", "curves", "best", "config"],
    "schedule_comparison": ["best"],
    "cost_to_target": ["runs"],
    "finder_curves": ["finder", "suggestions"],
    "hpo_history": ["trials", "runs"],
    "hpo_trials": ["trials", "runs"],
    "batch_scaling": ["batch_sizes", "batch_scaling"],
}

#: The study's file(s) of each input flag; the range test's inputs take one file per optimizer,
#: the searches' one file per search.
FILES: Dict[str, List[str]] = {
    "runs": ["runs.csv"],
    "curves": ["curves.csv"],
    "best": ["best.csv"],
    "config": ["config.yaml"],
    "finder": ["finder/adam/finder.csv", "finder/sgd/finder.csv"],
    "suggestions": ["finder/adam/suggestions.json", "finder/sgd/suggestions.json"],
    "trials": ["hpo/random/trials.csv", "hpo/tpe_median/trials.csv"],
    "batch_sizes": ["batch_sizes.csv"],
    "batch_scaling": ["batch_scaling.csv"],
}


def load(kind: str, paths: List[Path]) -> Any:
    """An input as the figure's table function takes it, loaded here independently of the CLI."""
    if kind == "config":
        return yaml.safe_load(paths[0].read_text())
    if kind == "suggestions":
        return [json.loads(path.read_text()) for path in paths]
    if kind in ("finder", "trials"):
        return pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)
    return pd.read_csv(paths[0])


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study folder with runs.csv, curves.csv, best.csv, config.yaml, range tests and searches."""
    root = tmp_path_factory.mktemp("study")
    make_runs().to_csv(root / "runs.csv", index=False)
    make_curves().to_csv(root / "curves.csv", index=False)
    make_best().to_csv(root / "best.csv", index=False)
    (root / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    for optimizer in ("adam", "sgd"):
        (root / "finder" / optimizer).mkdir(parents=True)
        make_finder(optimizer).to_csv(root / "finder" / optimizer / "finder.csv", index=False)
        (root / "finder" / optimizer / "suggestions.json").write_text(json.dumps(make_suggestions(optimizer)))
    for search in ("random", "tpe_median"):
        (root / "hpo" / search).mkdir(parents=True)
        make_trials(search).to_csv(root / "hpo" / search / "trials.csv", index=False)
    runs_by_size = synthetic_runs(0.5, cells=[("adam", "constant"), ("adam", "cosine"), ("sgd", "constant")])
    batch_sizes_table(runs_by_size).to_csv(root / "batch_sizes.csv", index=False)
    batch_scaling_table(runs_by_size).to_csv(root / "batch_scaling.csv", index=False)
    return root


def test_every_figure_has_a_subcommand() -> None:
    assert {name: list(spec.inputs) for name, spec in FIGURES.items()} == INPUTS


def test_the_subcommands_are_exactly_the_registry_with_its_inputs() -> None:
    parser = build_parser()
    (subcommands,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    assert list(subcommands.choices) == list(FIGURES)
    for name, sub in subcommands.choices.items():
        options = [action.dest for action in sub._actions if action.dest not in ("help", "out")]
        assert options == list(FIGURES[name].inputs), name


# schedule_shapes evaluates the Keras schedules.
@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.tf) if name == "schedule_shapes" else name for name in INPUTS])
def test_cli_writes_png_and_table(study: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / "figures" / f"{name}.png"
    argv = [name, "--out", str(out)]
    for kind in INPUTS[name]:
        argv += [f"--{kind}", *(str(study / file) for file in FILES[kind])]
    main(argv)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    spec = FIGURES[name]
    loaded = {kind: load(kind, [study / file for file in FILES[kind]]) for kind in spec.inputs}
    written = pd.read_csv(out.with_suffix(".csv"))
    expected = spec.table_function()(**loaded)
    pd.testing.assert_frame_equal(written, expected.reset_index(drop=True), check_dtype=False)
    # The atomic writes leave nothing but the two outputs behind.
    assert sorted(path.name for path in out.parent.iterdir()) == [f"{name}.csv", f"{name}.png"]


@pytest.mark.parametrize("name", list(INPUTS))
def test_cli_requires_its_inputs(name: str) -> None:
    with pytest.raises(SystemExit):
        main([name, "--out", "x.png"])


def test_cli_rejects_inputs_a_figure_does_not_take(study: Path) -> None:
    with pytest.raises(SystemExit):
        main(["schedule_comparison", "--best", str(study / "best.csv"), "--runs", "runs.csv", "--out", "x.png"])


def test_python_dash_m_runs_without_keras(study: Path, tmp_path: Path) -> None:
    # python -m pipeline.figures works, and a CSV-only figure never imports TensorFlow/Keras.
    out = tmp_path / "fitting_map.png"
    code = (
        "import runpy, sys;"
        "sys.argv = ['pipeline.figures', 'fitting_map', '--runs', sys.argv[1], '--out', sys.argv[2]];"
        "runpy.run_module('pipeline.figures', run_name='__main__');"
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, 'imported keras';"
        "assert 'pipeline.figures.shapes' not in sys.modules, 'imported another figure'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(study / "runs.csv"), str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert out.exists() and out.with_suffix(".csv").exists()
