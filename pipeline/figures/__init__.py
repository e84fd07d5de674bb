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

Modules: :mod:`~pipeline.figures.registry` (every figure: inputs, functions, title, caption,
report category; read by the command line, the HTML report and the Snakemake rules),
:mod:`~pipeline.figures.common` (colours, panels, markers, atomic saving),
:mod:`~pipeline.figures.sensitivity` (``lr_sensitivity``), :mod:`~pipeline.figures.fitting`
(``fitting_map``), :mod:`~pipeline.figures.curves` (``learning_curves``),
:mod:`~pipeline.figures.gap` (``generalisation_gap``), :mod:`~pipeline.figures.shapes`
(``schedule_shapes``), :mod:`~pipeline.figures.comparison` (``schedule_comparison``),
:mod:`~pipeline.figures.cost` (``cost_to_target``), :mod:`~pipeline.figures.finder`
(``finder_curves``, the LR range test), :mod:`~pipeline.figures.hpo` (``hpo_history`` and
``hpo_trials``, the hyperparameter searches), :mod:`~pipeline.figures.cli`.

This package module imports nothing, so that the report and the Snakefile can read the
registry without importing matplotlib: import from the modules themselves.

Command line (one subcommand per figure, only the inputs it needs)::

    python -m pipeline.figures lr_sensitivity --runs results/X/runs.csv \\
        --out results/X/figures/lr_sensitivity.png
"""
