"""lrstudy: find the right learning rate for a neural network, and show why it is right.

The subpackages follow the data flow of a study; lower stages never import higher ones (an
import-linter contract in ``pyproject.toml``, run by the tests, checks it)::

    config/    the study: schemas, composition from conf/ with Hydra, validation, rates
    training/  Keras training: one run, a training job's runs, schedules, models, data,
               resumable state, the device (the only stage besides finder/ and search/ that
               imports TensorFlow)
    finder/    the LR range test: pure suggestion rules (suggest) and the TensorFlow test
    search/    Optuna searches: specs, the journal storage, trials and workers
    analysis/  the tables: aggregation, diagnosis, advice, the finder-vs-grid and method comparisons
    figures/   one data table and one drawing per figure
    report/    the self-contained HTML report

``io`` (atomic writes) and ``values`` (reading numbers back from tables) serve every stage,
``invocation`` the Snakefile (dry runs, the lock a killed workflow leaves);
``cli`` is the ``lrstudy`` launcher.
"""
