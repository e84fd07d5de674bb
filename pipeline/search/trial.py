"""One trial: sampling its point, training it with a pruning callback
(:class:`pipeline.training.callbacks.PruningCallback`), and the state and value it is told.

Every trial is one training run, trained by :func:`pipeline.training.run.train_run` into
``hpo/<search>/trial<NNN>/`` (history.csv, config.yaml, summary.json with the trial's
number, state, params and value), on the study's first seed.

Values
    A trial's value is its best validation loss (minimised). A diverged run is a result, not
    an error: COMPLETE with the *worst value*, ``divergence_factor × initial_loss`` (the loss
    at which the run was declared diverged; see :func:`worst_value`). A pruned run is told
    PRUNED without a value (Optuna then records the last reported loss).

Neither TensorFlow nor Optuna is imported at import time.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Dict, Mapping, Optional, Tuple

from pipeline.search.spec import trial_dir
from pipeline.tables import RunStatus, TrialState

#: The worst value when a diverged run has no finite untrained loss to scale.
WORST_FALLBACK = 1e6


def sample_trial(
    trial: Any, spec: Mapping[str, Any], digest: Optional[str] = None
) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Sample a trial's point and build its run config; returns (params, run_config).

    ``params`` holds the effective values (also the fixed ones), warmup_fraction only for a
    schedule that has the knob.
    """
    from pipeline.config.validation import check_schedule

    lr = trial.suggest_float("lr", spec["lr_min"], spec["lr_max"], log=True)
    optimizers, schedules = list(spec["optimizers"]), list(spec["schedules"])
    # A one-option dimension is no dimension: suggesting it would only add a constant param.
    optimizer = trial.suggest_categorical("optimizer", optimizers) if len(optimizers) > 1 else optimizers[0]
    schedule = trial.suggest_categorical("schedule", schedules) if len(schedules) > 1 else schedules[0]
    epochs = spec["base"]["training"]["epochs"]
    options = {key: value for key, value in spec["schedules"][schedule].items() if key != "name"}
    params: Dict[str, Any] = {"lr": lr, "optimizer": optimizer, "schedule": schedule}
    if "warmup_fraction" in options:
        if spec.get("warmup_fraction"):
            low, high = spec["warmup_fraction"]
            options["warmup_fraction"] = trial.suggest_float("warmup_fraction", low, high)
        params["warmup_fraction"] = options["warmup_fraction"]
    # Re-validate: a sampled knob goes through the same checks as a configured one.
    options = check_schedule(schedule, options, epochs)
    run_config = copy.deepcopy(dict(spec["base"]))
    run_config["optimizer"] = {"name": optimizer, **spec["optimizers"][optimizer]}
    run_config["schedule"] = {"name": schedule, **options}
    run_config["training"]["lr"] = float(lr)
    if digest is not None:
        run_config["dataset"]["digest"] = digest
    return params, run_config


def worst_value(summary: Mapping[str, Any], divergence_factor: float) -> float:
    """The value of a diverged trial: ``divergence_factor × initial_loss``.

    That is the loss at which training declared the run diverged, so it is worse than any
    loss a healthy run reports, yet on the same scale as real values (for plots of value
    against rate); TPE only ranks values, so any finite worst value works for it.
    """
    value = float(summary.get("initial_loss", math.nan)) * float(divergence_factor)
    return value if math.isfinite(value) else WORST_FALLBACK


def trial_outcome(
    summary: Mapping[str, Any], pruned: bool, divergence_factor: float
) -> Tuple[str, Optional[float]]:
    """(state, value) of a trained trial: diverged -> complete/worst, pruned -> pruned/None,
    else complete/best val_loss (worst when no epoch had a finite one)."""
    if summary["status"] == RunStatus.DIVERGED:
        return TrialState.COMPLETE, worst_value(summary, divergence_factor)
    if pruned:
        return TrialState.PRUNED, None
    best = float(summary["best_val_loss"])
    return TrialState.COMPLETE, best if math.isfinite(best) else worst_value(summary, divergence_factor)


def train_trial(
    trial: Any, spec: Mapping[str, Any], arrays: Mapping[str, Any], digest: str, device: str, worker: int
) -> Tuple[Dict[str, Any], Dict[str, Any], str, Optional[float]]:
    """Sample and train one asked trial into its run folder; returns (params, summary, state,
    value), the state and value to tell (see :func:`trial_outcome`)."""
    from pipeline.training.callbacks import PruningCallback  # imports Keras
    from pipeline.training.run import train_run

    params, run_config = sample_trial(trial, spec, digest)
    pruning = PruningCallback(trial)
    divergence_factor = float(run_config["training"]["divergence_factor"])
    outcome: Dict[str, Any] = {}

    def trial_fields(summary: Dict[str, Any]) -> Dict[str, Any]:
        # Called by train_run before it writes summary.json, so the folder records the state.
        state, value = trial_outcome(summary, pruning.pruned_epoch is not None, divergence_factor)
        outcome.update(state=state, value=value)
        return {
            "trial": trial.number,
            "state": state,
            "value": value,
            "search": spec["search"],
            "worker": int(worker),
            "params": params,
            "pruned_epoch": pruning.pruned_epoch,
        }

    summary = train_run(
        run_config, arrays, trial_dir(spec, trial.number), device, callbacks=[pruning], extra_summary=trial_fields
    )
    return params, summary, outcome["state"], outcome["value"]
