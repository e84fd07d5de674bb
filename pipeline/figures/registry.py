"""The figure registry: every figure of a study, described once, in the report's reading order.

Each :class:`FigureSpec` says what a figure is called, which study files it reads (its
*inputs*, also its command-line options and its Snakemake rule's named inputs), which
functions build its table and draw it, its title, its caption and its report category, and
whether it belongs to the LR range test or to the hyperparameter searches. Everything that
lists figures reads :data:`FIGURES`: the command line (``python -m pipeline.figures``), the
HTML report (titles, captions, order, the range-test and search sections) and the Snakemake
rules (one ``figure_<name>`` rule per entry, the report rule's inputs).

Captions: one text per figure, ``captions/<name>.rst`` beside this module (package data). The
rst file is the single source, because Snakemake's ``report(..., caption=...)`` takes a file:
the workflow's ``--report`` reads it from :attr:`FigureSpec.caption_path`, and the HTML report
renders the same text (:attr:`FigureSpec.caption`) with docutils, as Snakemake does. Nothing
generates or copies caption text. Snakemake renders a caption as a Jinja template first, so a
caption holds no Jinja markup (``{{``, ``{%``) and reads the same in both reports.

No matplotlib (nor pandas) at import: the report job and the Snakefile import this module, so
each table and draw function is named by its import path (``module:function``) and imported
only by :meth:`FigureSpec.table_function` and :meth:`FigureSpec.draw_function`, in the figure
job that draws it.
"""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal

#: Where the caption files live.
CAPTIONS_DIR = Path(__file__).resolve().parent / "captions"

#: Where a figure is shown in the HTML report: among the study's figures, inside the LR range
#: test section, inside the hyperparameter search section, or inside the batch-size section
#: (drawn only for a study with ``study.batch_sizes``).
Section = Literal["study", "finder", "search", "batch"]


@dataclass(frozen=True)
class InputSpec:
    """One kind of study file a figure reads (a command-line option ``--<name>``).

    Attributes:
        help: What the option takes, for ``--help``.
        multiple: One file per optimizer or per search (``nargs="+"``), combined into one input.
    """

    help: str
    multiple: bool = False


#: Every kind of input, by option name (also the keyword its table function takes).
INPUTS: Dict[str, InputSpec] = {
    "runs": InputSpec("runs.csv of the study"),
    "curves": InputSpec("curves.csv of the study"),
    "best": InputSpec("best.csv of the study"),
    "config": InputSpec("config.yaml of the study (the resolved study)"),
    "finder": InputSpec("finder.csv of each optimizer's LR range test (one or more)", multiple=True),
    "suggestions": InputSpec("suggestions.json of each optimizer's LR range test (one or more)", multiple=True),
    "trials": InputSpec("trials.csv of each hyperparameter search (one or more)", multiple=True),
    "batch_sizes": InputSpec("batch_sizes.csv of the batch-size question"),
    "batch_scaling": InputSpec("batch_scaling.csv of the batch-size question"),
}


@dataclass(frozen=True)
class FigureSpec:
    """One figure of a study.

    Attributes:
        name: Subcommand, file stem (``figures/<name>.png`` and ``.csv``), rule ``figure_<name>``.
        title: Heading in the HTML report and ``--help`` line.
        category: Category in Snakemake's report, numbered there by :func:`category_label`.
        inputs: Keys of :data:`INPUTS`, in command-line order; the table function takes
            them as keyword arguments.
        table: ``module:function`` that builds the table the figure shows.
        draw: ``module:function`` that draws that table into a matplotlib Figure.
        section: Where the HTML report shows it (see :data:`Section`).
    """

    name: str
    title: str
    category: str
    inputs: tuple[str, ...]
    table: str
    draw: str
    section: Section = "study"

    @property
    def caption_path(self) -> Path:
        """The caption file (reStructuredText), for Snakemake's report and the HTML report."""
        return CAPTIONS_DIR / f"{self.name}.rst"

    @property
    def caption(self) -> str:
        """The caption's reStructuredText."""
        return self.caption_path.read_text(encoding="utf-8")

    def table_function(self) -> Callable[..., Any]:
        """The table function (imports its module, and matplotlib with it)."""
        return pkgutil.resolve_name(self.table)

    def draw_function(self) -> Callable[..., Any]:
        """The draw function (imports its module, and matplotlib with it)."""
        return pkgutil.resolve_name(self.draw)


def _figures(*specs: FigureSpec) -> Dict[str, FigureSpec]:
    return {spec.name: spec for spec in specs}


#: Every figure, by name, in the report's reading order.
FIGURES: Dict[str, FigureSpec] = _figures(
    FigureSpec(
        name="lr_sensitivity",
        title="Learning-rate sensitivity",
        category="Learning-rate sensitivity",
        inputs=("runs",),
        table="pipeline.figures.sensitivity:lr_sensitivity_table",
        draw="pipeline.figures.sensitivity:draw_lr_sensitivity",
    ),
    FigureSpec(
        name="fitting_map",
        title="Fitting map",
        category="Fitting behaviour",
        inputs=("runs",),
        table="pipeline.figures.fitting:fitting_map_table",
        draw="pipeline.figures.fitting:draw_fitting_map",
    ),
    FigureSpec(
        name="learning_curves",
        title="Learning curves",
        category="Fitting behaviour",
        inputs=("curves", "best"),
        table="pipeline.figures.curves:learning_curves_table",
        draw="pipeline.figures.curves:draw_learning_curves",
    ),
    FigureSpec(
        name="generalisation_gap",
        title="Generalisation gap",
        category="Fitting behaviour",
        inputs=("runs",),
        table="pipeline.figures.gap:generalisation_gap_table",
        draw="pipeline.figures.gap:draw_generalisation_gap",
    ),
    FigureSpec(
        name="schedule_shapes",
        title="Schedule shapes",
        category="Schedules",
        inputs=("runs", "curves", "best", "config"),
        table="pipeline.figures.shapes:schedule_shapes_table",
        draw="pipeline.figures.shapes:draw_schedule_shapes",
    ),
    FigureSpec(
        name="schedule_comparison",
        title="Schedule comparison",
        category="Schedules",
        inputs=("best",),
        table="pipeline.figures.comparison:schedule_comparison_table",
        draw="pipeline.figures.comparison:draw_schedule_comparison",
    ),
    FigureSpec(
        name="cost_to_target",
        title="Cost to target",
        category="Cost",
        inputs=("runs",),
        table="pipeline.figures.cost:cost_to_target_table",
        draw="pipeline.figures.cost:draw_cost_to_target",
    ),
    FigureSpec(
        name="finder_curves",
        title="LR range test curves",
        category="LR range test",
        inputs=("finder", "suggestions"),
        table="pipeline.figures.finder:finder_curves_table",
        draw="pipeline.figures.finder:draw_finder_curves",
        section="finder",
    ),
    FigureSpec(
        name="hpo_history",
        title="Hyperparameter search history",
        category="Hyperparameter search",
        inputs=("trials", "runs"),
        table="pipeline.figures.hpo:hpo_history_table",
        draw="pipeline.figures.hpo:draw_hpo_history",
        section="search",
    ),
    FigureSpec(
        name="hpo_trials",
        title="Hyperparameter search trials",
        category="Hyperparameter search",
        inputs=("trials", "runs"),
        table="pipeline.figures.hpo:hpo_trials_table",
        draw="pipeline.figures.hpo:draw_hpo_trials",
        section="search",
    ),
    FigureSpec(
        name="batch_scaling",
        title="Best rate against batch size",
        category="Batch size",
        inputs=("batch_sizes", "batch_scaling"),
        table="pipeline.figures.batch:batch_scaling_table",
        draw="pipeline.figures.batch:draw_batch_scaling",
        section="batch",
    ),
)

#: The figure shown inside the HTML report's LR range test section.
(FINDER_FIGURE,) = [name for name, spec in FIGURES.items() if spec.section == "finder"]

#: The figures shown inside the HTML report's hyperparameter search section.
HPO_FIGURES: tuple[str, ...] = tuple(name for name, spec in FIGURES.items() if spec.section == "search")


def category_label(name: str) -> str:
    """Figure ``name``'s category in Snakemake's report, numbered in reading order.

    Snakemake sorts categories by their label, so ``"2. Fitting behaviour"`` keeps the
    categories in the order their first figure has in :data:`FIGURES`.
    """
    categories = list(dict.fromkeys(spec.category for spec in FIGURES.values()))
    category = FIGURES[name].category
    return f"{categories.index(category) + 1}. {category}"


#: The figure shown inside the HTML report's batch-size section.
(BATCH_FIGURE,) = [name for name, spec in FIGURES.items() if spec.section == "batch"]


def study_figures(with_searches: bool, with_batch_sizes: bool = False) -> List[str]:
    """The figures a study draws, in reading order: the search figures only with searches, the
    batch-size figure only with ``study.batch_sizes``."""
    wanted = {"search": with_searches, "batch": with_batch_sizes}
    return [name for name, spec in FIGURES.items() if wanted.get(spec.section, True)]
