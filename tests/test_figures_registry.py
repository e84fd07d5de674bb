"""The figure registry drives everything that lists figures: the command line, both reports
and the Snakemake rules. Each registered figure resolves to a table and a draw function, has a
caption file that renders cleanly, and has a rule wired from its entry."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from docutils.core import publish_doctree
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

from pipeline.figures.registry import (
    FIGURES,
    BATCH_FIGURE,
    FINDER_FIGURE,
    HPO_FIGURES,
    INPUTS,
    category_label,
    study_figures,
)
from pipeline.report.figures import caption_html

REPO = Path(__file__).resolve().parent.parent

READING_ORDER = [
    "lr_sensitivity", "fitting_map", "learning_curves", "generalisation_gap", "schedule_shapes",
    "schedule_comparison", "cost_to_target", "finder_curves", "hpo_history", "hpo_trials", "batch_scaling",
]  # fmt: skip


def test_reading_order_and_sections() -> None:
    assert list(FIGURES) == READING_ORDER
    assert all(name == spec.name for name, spec in FIGURES.items())
    assert FINDER_FIGURE == "finder_curves"
    assert HPO_FIGURES == ("hpo_history", "hpo_trials")
    assert BATCH_FIGURE == "batch_scaling"
    assert study_figures(with_searches=True, with_batch_sizes=True) == READING_ORDER
    assert study_figures(with_searches=True) == READING_ORDER[:-1]
    assert study_figures(with_searches=False) == READING_ORDER[:-3]
    assert study_figures(with_searches=False, with_batch_sizes=True) == [*READING_ORDER[:-3], "batch_scaling"]


def test_categories_are_numbered_in_reading_order() -> None:
    assert {name: category_label(name) for name in FIGURES} == {
        "lr_sensitivity": "1. Learning-rate sensitivity",
        "fitting_map": "2. Fitting behaviour",
        "learning_curves": "2. Fitting behaviour",
        "generalisation_gap": "2. Fitting behaviour",
        "schedule_shapes": "3. Schedules",
        "schedule_comparison": "3. Schedules",
        "cost_to_target": "4. Cost",
        "finder_curves": "5. LR range test",
        "hpo_history": "6. Hyperparameter search",
        "hpo_trials": "6. Hyperparameter search",
        "batch_scaling": "7. Batch size",
    }


@pytest.mark.parametrize("name", list(FIGURES))
def test_table_and_draw_functions_resolve_and_take_the_inputs(name: str) -> None:
    spec = FIGURES[name]
    table, draw = spec.table_function(), spec.draw_function()
    assert callable(table) and callable(draw)
    assert (table.__name__, draw.__name__) == (f"{name}_table", f"draw_{name}")
    assert set(spec.inputs) <= set(INPUTS) and len(set(spec.inputs)) == len(spec.inputs)
    # The table function takes exactly the inputs as keywords (the rest have defaults).
    parameters = inspect.signature(table).parameters
    required = {key for key, parameter in parameters.items() if parameter.default is inspect.Parameter.empty}
    assert required <= set(spec.inputs) <= set(parameters)
    assert list(inspect.signature(draw).parameters) == ["table"]


@pytest.mark.parametrize("name", list(FIGURES))
def test_caption_file_is_clean_restructured_text(name: str) -> None:
    spec = FIGURES[name]
    assert spec.caption_path.is_file()
    text = spec.caption
    assert text.strip() and spec.title
    # Snakemake renders a caption as a Jinja template first: none here, so both reports agree.
    assert "{{" not in text and "{%" not in text
    # Strict parsing: a docutils warning (malformed markup) raises here.
    publish_doctree(text, settings_overrides={"halt_level": 2, "_disable_config": True})
    assert caption_html(name).startswith("<p>")


def test_captions_are_package_data_and_nothing_else_is() -> None:
    captions = sorted(path.stem for path in FIGURES["lr_sensitivity"].caption_path.parent.glob("*.rst"))
    assert captions == sorted(FIGURES)


def test_reading_the_registry_or_building_the_report_imports_no_matplotlib() -> None:
    # import-linter does not see package __init__ imports; the interpreter does.
    code = (
        "import sys; import pipeline.figures.registry, pipeline.report.build;"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib' or m.startswith('pipeline.figures.')); "
        "assert loaded == ['pipeline.figures.registry'], loaded"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------
# The Snakemake rules, read through Snakemake's API (parsing only: nothing runs, nothing is written)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["study=smoke", "study=smoke hpo=compare optimizer=[adam] schedule=[constant]"])
def workflow(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The parsed workflow of a study (``Workflow``; its rules are not public API elsewhere)."""
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(config={"overrides": request.param}),
            snakefile=REPO / "Snakefile",
            workdir=REPO,
        )
        yield workflow_api._workflow


def _study_dir(workflow: Any) -> str:
    return str(workflow.globals["STUDY_DIR"])


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_has_its_rule(workflow: Any, name: str) -> None:
    spec = FIGURES[name]
    study_dir = _study_dir(workflow)
    rule = workflow.get_rule(f"figure_{name}")
    assert list(rule.input.keys()) == list(spec.inputs)
    assert list(rule.output.keys()) == ["figure", "table"]
    assert str(rule.output.figure) == f"{study_dir}/figures/{name}.png"
    assert str(rule.output.table) == f"{study_dir}/figures/{name}.csv"
    assert [str(path) for path in rule.log] == [f"{study_dir}/logs/figures/{name}.log"]
    report = rule.output.figure.flags["report"]
    assert Path(report.caption.get_path_or_uri(secret_free=True)) == spec.caption_path
    assert report.category == category_label(name)
    assert workflow.is_local(rule)
    # The figure and its inputs reach the command as params, fixed when the rule is defined: the
    # shell command is formatted when the job runs, long after the loop that made the rules.
    assert rule.shellcmd == "python -m pipeline.figures {params.figure} {params.inputs} --out {output.figure} > {log} 2>&1"
    assert rule.params.figure == name
    expected = []
    for kind in spec.inputs:
        files = rule.input[kind]
        expected.append(" ".join([f"--{kind}", *([files] if isinstance(files, str) else files)]))
    assert rule.params.inputs == " ".join(expected)


def test_figure_rules_are_exactly_the_registry(workflow: Any) -> None:
    rules = [rule.name for rule in workflow.rules if rule.name.startswith("figure_")]
    assert sorted(rules) == sorted(f"figure_{name}" for name in FIGURES)


def test_report_rule_takes_the_studys_figures_in_reading_order(workflow: Any) -> None:
    study_dir = _study_dir(workflow)
    searches = bool(workflow.globals["SEARCHES"])
    rule = workflow.get_rule("report_html")
    figures = [str(path) for path in rule.input.figures]
    names = study_figures(with_searches=searches)
    assert figures == [f"{study_dir}/figures/{name}.png" for name in names]
    params: Dict[str, Any] = dict(rule.params.items())
    assert params["figures"] == " ".join(f"--figure {name}={study_dir}/figures/{name}.png" for name in names)
