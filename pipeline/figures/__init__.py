"""Figures of a learning-rate study, each split into the table it shows and its drawing.

Every figure comes in two halves, as in Optuna's visualization module:

* a *table* function (``<name>_table``) that turns the study's tables (``runs.csv``,
  ``curves.csv``, ``best.csv``, ``config.yaml``) into exactly the numbers the figure shows.
  It is pure pandas, so tests can assert its values exactly, and the command line writes it
  next to the image so a reader can check any point of the plot;
* a *draw* function (``draw_<name>``) that only draws such a table and computes nothing it
  would have to be trusted for.

A diverged run is a result, not noise: tables keep every (optimizer, schedule, lr) cell even
when all its runs diverged, and the drawings mark diverged runs instead of dropping them.

No TensorFlow import here: figures are drawn by light jobs from the CSV files alone, except
``schedule_shapes``, which evaluates the Keras schedules and imports them when it runs.

Modules: :mod:`~pipeline.figures.common` (colours, panels, markers, atomic saving),
:mod:`~pipeline.figures.sensitivity` (``lr_sensitivity``), :mod:`~pipeline.figures.fitting`
(``fitting_map``), :mod:`~pipeline.figures.curves` (``learning_curves``),
:mod:`~pipeline.figures.gap` (``generalisation_gap``), :mod:`~pipeline.figures.shapes`
(``schedule_shapes``), :mod:`~pipeline.figures.comparison` (``schedule_comparison``),
:mod:`~pipeline.figures.cost` (``cost_to_target``), :mod:`~pipeline.figures.finder`
(``finder_curves``, the LR range test), :mod:`~pipeline.figures.hpo` (``hpo_history`` and
``hpo_trials``, the hyperparameter searches), :mod:`~pipeline.figures.cli`.

Command line (one subcommand per figure, only the inputs it needs)::

    python -m pipeline.figures lr_sensitivity --runs results/X/runs.csv \\
        --out results/X/figures/lr_sensitivity.png
"""

from pipeline.figures.cli import FIGURES, main, render
from pipeline.figures.common import save_figure, save_table, schedule_colors
from pipeline.figures.comparison import COMPARISON_COLUMNS, draw_schedule_comparison, schedule_comparison_table
from pipeline.figures.cost import COST_COLUMNS, cost_to_target_table, draw_cost_to_target
from pipeline.figures.curves import LEARNING_CURVES_COLUMNS, draw_learning_curves, learning_curves_table
from pipeline.figures.finder import FINDER_CURVES_COLUMNS, draw_finder_curves, finder_curves_table, finder_y_range
from pipeline.figures.fitting import FIT_COLORS, FIT_LABELS, FITTING_COLUMNS, draw_fitting_map, fitting_map_table
from pipeline.figures.gap import GAP_COLUMNS, draw_generalisation_gap, generalisation_gap_table
from pipeline.figures.hpo import (
    HPO_HISTORY_COLUMNS,
    HPO_TRIALS_COLUMNS,
    draw_hpo_history,
    draw_hpo_trials,
    hpo_history_table,
    hpo_trials_table,
)
from pipeline.figures.sensitivity import (
    SENSITIVITY_COLUMNS,
    draw_lr_sensitivity,
    draw_sensitivity,
    lr_sensitivity_table,
    sensitivity_table,
)
from pipeline.figures.shapes import SHAPES_COLUMNS, draw_schedule_shapes, schedule_shapes_table

__all__ = [
    "COMPARISON_COLUMNS",
    "COST_COLUMNS",
    "FIGURES",
    "FINDER_CURVES_COLUMNS",
    "FITTING_COLUMNS",
    "FIT_COLORS",
    "FIT_LABELS",
    "GAP_COLUMNS",
    "HPO_HISTORY_COLUMNS",
    "HPO_TRIALS_COLUMNS",
    "LEARNING_CURVES_COLUMNS",
    "SENSITIVITY_COLUMNS",
    "SHAPES_COLUMNS",
    "cost_to_target_table",
    "draw_cost_to_target",
    "draw_finder_curves",
    "draw_fitting_map",
    "draw_generalisation_gap",
    "draw_hpo_history",
    "draw_hpo_trials",
    "draw_learning_curves",
    "draw_lr_sensitivity",
    "draw_schedule_comparison",
    "draw_schedule_shapes",
    "draw_sensitivity",
    "finder_curves_table",
    "finder_y_range",
    "fitting_map_table",
    "generalisation_gap_table",
    "hpo_history_table",
    "hpo_trials_table",
    "learning_curves_table",
    "lr_sensitivity_table",
    "main",
    "render",
    "save_figure",
    "save_table",
    "schedule_colors",
    "schedule_comparison_table",
    "schedule_shapes_table",
    "sensitivity_table",
]
