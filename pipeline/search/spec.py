"""What a search is: its name, its job spec, the hash that ties a journal to it, and its
sampler and pruner.

A study's ``hpo`` settings define one *search* per sampler × pruner (:func:`searches`); a
worker job gets everything it needs as one JSON-able spec (:func:`hpo_job_spec`). Every trial
of a search trains into ``<study_dir>/hpo/<search>/trial<NNN>/`` (:func:`trial_dir`).

Pure Python at import time (Optuna and NumPy are imported where they are used): the
Snakefile imports :func:`searches` and :func:`hpo_job_spec` from here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Tuple

if TYPE_CHECKING:  # annotations only: optuna is imported where it is used
    import optuna

#: Spec keys that may change between runs of one search without invalidating its trials:
#: the budget may be raised (the search continues), the worker count changed, the results
#: folder moved.
MUTABLE_SPEC_KEYS = ("trials", "workers", "batch", "study_dir", "journal")


def search_name(sampler: str, pruner: str) -> str:
    """``tpe`` for an unpruned search, ``tpe_median`` for a pruned one."""
    return sampler if pruner == "none" else f"{sampler}_{pruner}"


def _search_parts(study: Any) -> Dict[str, Tuple[str, str]]:
    return {search_name(s, p): (s, p) for s in study.hpo.samplers for p in study.hpo.pruners}


def searches(study: Any) -> List[str]:
    """The study's searches: one per sampler × pruner of ``study.hpo`` ([] without samplers)."""
    return list(_search_parts(study))


def hpo_job_spec(study: Any, search: str) -> Dict[str, Any]:
    """Everything a worker job of ``search`` needs, as plain JSON-able data.

    ``optimizers``/``schedules`` are the categorical choices (validated options keyed by
    name): ``hpo.optimizers``/``hpo.schedules``, or the study's first option, fixed. ``base``
    is a complete run configuration on the first choices; a trial replaces its optimizer,
    schedule and rate.
    """
    parts = _search_parts(study)
    if search not in parts:
        raise ValueError(f"no search {search!r} in study {study.name!r}; its searches: {', '.join(parts) or 'none'}")
    sampler, pruner = parts[search]
    hpo = study.hpo
    optimizer_names = list(hpo.optimizers) or [next(iter(study.optimizers))]
    schedule_names = list(hpo.schedules) or [next(iter(study.schedules))]
    optimizers = {name: dict(study.optimizers[name]) for name in optimizer_names}
    schedules = {name: dict(study.schedules[name]) for name in schedule_names}
    training_seed = int(study.settings.seeds[0])
    from pipeline.config.schema import make_run_config, study_dir as results_folder

    base = make_run_config(
        dataset=study.dataset,
        model=study.model,
        optimizer={"name": optimizer_names[0], **optimizers[optimizer_names[0]]},
        schedule={"name": schedule_names[0], **schedules[schedule_names[0]]},
        settings=study.settings,
        seed=training_seed,
        lr=hpo.lr_min,  # a placeholder: every trial sets its own rate
    )
    # With the population engine a worker asks hpo.batch trials at once and trains them as one
    # population; their configs carry the engine's mark (as grid runs do), so the two engines'
    # searches have different spec hashes and never share a journal.
    population = study.settings.engine == "population"
    study_dir = results_folder(study.name)
    return {
        "search": search,
        "sampler": sampler,
        "pruner": pruner,
        "trials": int(hpo.trials),
        "workers": int(hpo.workers),
        "batch": int(hpo.batch) if population else 1,
        "seed": int(hpo.seed),
        "lr_min": float(hpo.lr_min),
        "lr_max": float(hpo.lr_max),
        "optimizers": optimizers,
        "schedules": schedules,
        "warmup_fraction": [float(v) for v in hpo.warmup_fraction] if hpo.warmup_fraction is not None else None,
        "training_seed": training_seed,
        "base": base,
        "study_dir": study_dir,
        "journal": f"{study_dir}/hpo/{search}/journal.log",
        "deterministic": bool(study.settings.deterministic),
    }


def search_dir(spec: Mapping[str, Any]) -> Path:
    return Path(spec["study_dir"]) / "hpo" / spec["search"]


def trial_dir(spec: Mapping[str, Any], number: int) -> Path:
    """A trial's run folder: ``<study_dir>/hpo/<search>/trial<NNN>``."""
    return search_dir(spec) / f"trial{number:03d}"


def spec_hash(spec: Mapping[str, Any]) -> str:
    """A hash of what defines a search's trials (the budget, workers and paths excluded)."""
    payload = {key: value for key, value in spec.items() if key not in MUTABLE_SPEC_KEYS}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def worker_seed(seed: int, worker: int, finished: int = 0) -> int:
    """The sampler seed of one worker process.

    Workers sharing a study must not draw from the same random stream, or parallel random
    search would propose the same rates twice. ``finished`` (finished trials when the worker
    started; 0 for a fresh search) makes a resumed worker's stream differ from its killed
    predecessor's, which would otherwise re-propose the rates already tried.
    """
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(worker), int(finished)]).generate_state(1)[0])


def make_sampler(name: str, seed: int) -> "optuna.samplers.BaseSampler":
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        # constant_liar: running trials count as bad guesses, so parallel workers spread out
        # instead of proposing the same promising rate (explicit: its default differs by version).
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    raise ValueError(f"unknown sampler {name!r}; valid: random, tpe")


def make_pruner(name: str, epochs: int) -> "optuna.pruners.BasePruner":
    """The pruner of a search; steps are Keras' 0-based epoch indices (Optuna's convention).

    MedianPruner's ``n_warmup_steps=1`` so never prunes on the first epoch's loss (step 0).
    """
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=int(epochs))
    raise ValueError(f"unknown pruner {name!r}; valid: none, median, successive_halving, hyperband")
