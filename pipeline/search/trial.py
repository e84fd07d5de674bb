"""Trials: sampling their points, training them with the pruner asked after every epoch, and
the state and value each is told.

Every trial is one training run into ``hpo/<search>/trial<NNN>/`` (history.csv, config.yaml,
summary.json with the trial's number, state, params and value), on the study's first seed: a
batch of asked trials of one optimizer trains as one population
(:func:`pipeline.training.population.train_population`) with the population engine, or each
by :func:`pipeline.training.run.train_run` with a pruning callback
(:class:`pipeline.training.callbacks.PruningCallback`) with the per-run engine.

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
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

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


def _trial_fields(
    trial: Any, spec: Mapping[str, Any], worker: int, params: Mapping[str, Any],
    pruned_epoch: Callable[[], Optional[int]], divergence_factor: float, outcome: Dict[str, Any],
) -> Callable[[Dict[str, Any]], Dict[str, Any]]:
    """The ``extra_summary`` of a trial's run: its number, state, value and params (``outcome``
    receives the state and value), called by the engine before it writes summary.json, so that
    the folder records the state. ``pruned_epoch()`` is the epoch it was pruned after, or None."""

    def fields(summary: Dict[str, Any]) -> Dict[str, Any]:
        epoch = pruned_epoch()
        state, value = trial_outcome(summary, epoch is not None, divergence_factor)
        outcome.update(state=state, value=value)
        return {
            "trial": trial.number,
            "state": state,
            "value": value,
            "search": spec["search"],
            "worker": int(worker),
            "params": dict(params),
            "pruned_epoch": epoch,
        }

    return fields


def _train_one(
    trial: Any, params: Dict[str, Any], run_config: Dict[str, Any], spec: Mapping[str, Any],
    arrays: Mapping[str, Any], device: str, worker: int, extra: Optional[Mapping[str, Any]] = None,
) -> Tuple[Dict[str, Any], Dict[str, Any], str, Optional[float]]:
    """Train one sampled trial with the per-run engine (``train_run`` and a pruning callback);
    ``extra`` adds keys to its summary."""
    from pipeline.training.callbacks import PruningCallback  # imports Keras
    from pipeline.training.run import train_run

    run_config = copy.deepcopy(run_config)
    run_config["training"].pop("engine", None)  # trained run by run: the per-run engine's config
    pruning = PruningCallback(trial)
    outcome: Dict[str, Any] = {}
    fields = _trial_fields(
        trial, spec, worker, params, lambda: pruning.pruned_epoch, float(run_config["training"]["divergence_factor"]), outcome
    )
    summary = train_run(
        run_config, arrays, trial_dir(spec, trial.number), device, callbacks=[pruning],
        extra_summary=lambda summary: {**fields(summary), **(extra or {})}, progress=True,
    )
    return params, summary, outcome["state"], outcome["value"]


TrialResult = Union[Tuple[Dict[str, Any], Dict[str, Any], str, Optional[float]], BaseException]


def train_trials(
    trials: Sequence[Any], spec: Mapping[str, Any], arrays: Mapping[str, Any], digest: str, device: str, worker: int
) -> List[TrialResult]:
    """Sample and train a batch of asked trials; one result per trial, in order: (params,
    summary, state, value), the state and value to tell (see :func:`trial_outcome`), or the
    exception that failed that trial.

    With the per-run engine (the spec's base run config has no ``training.engine`` mark) each
    trial is one ``train_run``. With the population engine the trials that sampled the same
    optimizer train as one population (:func:`pipeline.training.population.train_population`,
    no saved states: a killed worker's trials are reaped and asked again), the pruner asked
    after each epoch of each trial exactly as the per-run engine's callback asks it
    (:func:`pipeline.training.callbacks.report_epoch`). A model the engine cannot trace as a
    population trains run by run, its summaries saying why (``population_fallback``).
    """
    results: Dict[int, TrialResult] = {}
    sampled: Dict[int, Tuple[Dict[str, Any], Dict[str, Any]]] = {}
    for index, trial in enumerate(trials):
        try:
            sampled[index] = sample_trial(trial, spec, digest)
        except Exception as error:  # noqa: BLE001 - a failed trial is recorded; the others go on
            results[index] = error
    population = spec["base"]["training"].get("engine") == "population"
    groups: Dict[str, List[int]] = {}
    for index, (params, _) in sampled.items():
        groups.setdefault(params["optimizer"] if population else f"trial{index}", []).append(index)
    for indices in groups.values():
        trained = _train_group(
            [trials[index] for index in indices], [sampled[index] for index in indices], spec, arrays, device, worker, population
        )
        results.update(zip(indices, trained))
    # Every trial has its result: its sampling error, or its group's outcome.
    return [results[index] for index in range(len(trials))]


def _train_group(
    trials: Sequence[Any], sampled: Sequence[Tuple[Dict[str, Any], Dict[str, Any]]], spec: Mapping[str, Any],
    arrays: Mapping[str, Any], device: str, worker: int, population: bool,
) -> List[TrialResult]:
    """Train trials of one optimizer: as one population, or (per-run engine, or a model the
    population engine cannot take) one by one."""

    def one_by_one(extra: Optional[Mapping[str, Any]] = None) -> List[TrialResult]:
        results: List[TrialResult] = []
        for trial, (params, run_config) in zip(trials, sampled):
            try:
                results.append(_train_one(trial, params, run_config, spec, arrays, device, worker, extra))
            except Exception as error:  # noqa: BLE001 - a failed trial is recorded; the others go on
                results.append(error)
        return results

    if not population:
        return one_by_one()
    from pipeline.training.callbacks import report_epoch  # imports Keras
    from pipeline.training.population import PopulationUnsupported, train_population

    epochs = int(sampled[0][1]["training"]["epochs"])
    pruned: Dict[int, Optional[int]] = {index: None for index in range(len(trials))}
    outcomes: List[Dict[str, Any]] = [{} for _ in trials]

    def stop(index: int, row: Mapping[str, float]) -> bool:
        if report_epoch(trials[index], int(row["epoch"]) - 1, float(row["val_loss"]), epochs):
            pruned[index] = int(row["epoch"])
            return True
        return False

    fields = [
        _trial_fields(
            trial, spec, worker, params, (lambda index=index: pruned[index]),
            float(run_config["training"]["divergence_factor"]), outcomes[index],
        )
        for index, (trial, (params, run_config)) in enumerate(zip(trials, sampled))
    ]
    try:
        summaries = train_population(
            [run_config for _, run_config in sampled],
            arrays,
            [trial_dir(spec, trial.number) for trial in trials],
            device,
            resumable=False,
            stop_member=stop,
            extra_summaries=fields,
            on_epoch=lambda progress: print(f"{spec['search']} trials {trials[0].number}-{trials[-1].number}: {progress.line()}", flush=True),
        )
    except PopulationUnsupported as error:
        print(f"population engine: {error}; training these {len(trials)} trials one by one (per_run)", flush=True)
        return one_by_one({"population_fallback": str(error)})
    except Exception as error:  # noqa: BLE001 - the population failed: each of its trials failed
        return [error] * len(trials)
    return [
        (params, summary, outcome["state"], outcome["value"])
        for (params, _), summary, outcome in zip(sampled, summaries, outcomes)
    ]
