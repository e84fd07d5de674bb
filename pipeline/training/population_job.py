"""A population training job: which runs a job trains, how many fit in memory at once, and
the job itself (``python -m pipeline.training`` with a population spec).

The Snakefile builds the specs (:func:`population_members`, :func:`population_parts`,
:func:`population_spec`); the job skips complete runs, trains the rest with
:func:`pipeline.training.population.train_population` in programs that fit
``study.population_memory_mb``, and trains a model the engine cannot take run by run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from pipeline.training.population import PopulationUnsupported, train_population


def _fallback_complete(out_dir: Path, run_config: Mapping[str, Any]) -> bool:
    """Whether a run was trained run by run because its model cannot train as a population
    (its summary says so) and is complete: a folder of the per-run engine proper is not."""
    from pipeline.training.run import is_complete

    per_run = json.loads(json.dumps(run_config))
    per_run["training"].pop("engine", None)
    if not is_complete(out_dir, per_run):
        return False
    return bool(json.loads((Path(out_dir) / "summary.json").read_text()).get("population_fallback"))



# --------------------------------------------------------------------------------------
# Memory: how many members one program holds
# --------------------------------------------------------------------------------------


def member_bytes(model: Any, batch_size: int) -> int:
    """An estimate of one member's memory while it trains: its model and optimizer variables
    (with as much again for their gradients and the update's temporaries) and its layers'
    activations for one batch, kept for the backward pass."""
    import numpy as np

    def size(variables: Any) -> int:
        return sum(int(np.prod(variable.shape)) * np.dtype(variable.dtype).itemsize for variable in variables)

    variables = size(model.variables) + size(getattr(model.optimizer, "variables", []))
    activations = 0
    for layer in getattr(model, "layers", []):
        try:
            shapes = layer.output.shape if not isinstance(layer.output, (list, tuple)) else [o.shape for o in layer.output]
        except (AttributeError, ValueError):
            continue
        for shape in shapes if isinstance(shapes, list) else [shapes]:
            activations += int(np.prod([dimension or 1 for dimension in shape[1:]])) * batch_size * 4
    return 2 * variables + 2 * activations


def program_size(run_config: Mapping[str, Any], arrays: Mapping[str, Any], budget_mb: float) -> int:
    """How many members of ``run_config``'s population fit in ``budget_mb`` MB at once (at least
    one): one member is built to measure it."""
    import keras

    from pipeline.training.data import num_classes
    from pipeline.training.models import build_model
    from pipeline.training.optimizers import build_optimizer

    keras.backend.clear_session()
    model = build_model(run_config["model"], arrays["x_train"].shape[1:], num_classes(arrays))
    model.compile(optimizer=build_optimizer(run_config["optimizer"], float(run_config["training"]["lr"])), loss="mse")
    model.optimizer.build(model.trainable_variables)
    estimate = member_bytes(model, int(run_config["training"]["batch_size"]))
    keras.backend.clear_session()
    return max(1, int(budget_mb * 2**20 // max(estimate, 1)))


# --------------------------------------------------------------------------------------
# The training job
# --------------------------------------------------------------------------------------


def population_members(study: Any, optimizer: str, rates: Sequence[float]) -> List[List[Any]]:
    """The members of an optimizer's population, in job order: ``[schedule, seed, lr]`` for every
    schedule, seed and rate of the study."""
    return [
        [schedule, int(seed), float(lr)] for schedule in study.schedules for seed in study.settings.seeds for lr in rates
    ]


def population_parts(members: Sequence[Any], size: int) -> List[List[Any]]:
    """The members of each training job: ``size`` members per job (the last one takes the rest)."""
    members = list(members)
    return [members[start : start + size] for start in range(0, len(members), size)] if members else []


def population_spec(
    study: Any,
    optimizer: str,
    members: Sequence[Sequence[Any]],
    root: Optional[str] = None,
    batch_size: Optional[int] = None,
) -> Dict[str, Any]:
    """What a population training job needs, as plain JSON-able data (the job's ``--spec``): one
    base run config per schedule, and the members as ``[schedule, seed, lr]``. The run folders
    live under ``<root>/runs/`` (default: the study's folder; the confirmation on fresh seeds
    uses ``<study>/confirm``, the batch-size question ``<study>/batch/b<size>``). ``batch_size``:
    the members' batch size, default ``study.batch_size`` (one per job: it sets the steps per
    epoch of the whole program). With ``study.engine=per_run`` the bases carry no population
    mark and the job trains its members run by run."""
    from pipeline.config.schema import study_dir

    schedules = sorted({member[0] for member in members})
    first = members[0]
    return {
        "engine": "population",
        "study_dir": root or study_dir(study.name),
        "optimizer": optimizer,
        "deterministic": study.settings.deterministic,
        "memory_mb": study.settings.population_memory_mb,
        "bases": {
            schedule: study.run_config(optimizer, schedule, int(first[1]), float(first[2]), batch_size=batch_size)
            for schedule in schedules
        },
        "members": [list(member) for member in members],
    }


def _member_config(spec: Mapping[str, Any], schedule: str, seed: int, lr: float, digest: str) -> Dict[str, Any]:
    run_config = json.loads(json.dumps(spec["bases"][schedule]))
    run_config["dataset"]["digest"] = digest
    run_config["training"]["seed"] = int(seed)
    run_config["training"]["lr"] = float(lr)
    return run_config


def _train_one_by_one(
    pending: Sequence[tuple], arrays: Mapping[str, Any], device: Any, fallback: Optional[str] = None
) -> List[Dict[str, Any]]:
    """Train ``(entry, run_config, out_dir)`` items run by run with the per-run engine; with
    ``fallback`` (why the population engine could not take them), each summary records it."""
    from pipeline.training.run import train_run

    summaries = []
    for _, config, out_dir in pending:
        config = json.loads(json.dumps(config))
        config["training"].pop("engine", None)
        extra = (lambda _: {"population_fallback": fallback}) if fallback is not None else None
        summaries.append(train_run(config, arrays, out_dir, device, extra_summary=extra, resumable=True, progress=True))
    return summaries


def train_population_job(
    spec: Mapping[str, Any], data_file: Path, threads: Optional[int] = None, gpus: int = 0
) -> List[Dict[str, Any]]:
    """Train (or skip, when complete) every member of a population spec; one manifest entry
    per run. Members are trained in programs of as many members as fit ``spec["memory_mb"]``;
    a model the engine cannot trace as a population is trained run by run instead (one log
    line says why)."""
    from pipeline.config.rates import run_dir
    from pipeline.training.data import arrays_digest, load_npz
    from pipeline.training.device import configure_tensorflow
    from pipeline.training.resume import STATE_FILE
    from pipeline.training.run import is_complete

    device = configure_tensorflow(threads=threads, deterministic=spec["deterministic"], gpus=gpus)
    arrays = load_npz(data_file)
    digest = arrays_digest(arrays)
    entries: List[Dict[str, Any]] = []
    pending: List[tuple] = []
    for schedule, seed, lr in spec["members"]:
        run_config = _member_config(spec, schedule, seed, lr, digest)
        out_dir = run_dir(spec["study_dir"], spec["optimizer"], schedule, seed, lr)
        entry = {"schedule": schedule, "seed": int(seed), "lr": float(lr), "run_dir": str(out_dir)}
        entries.append(entry)
        if is_complete(out_dir, run_config) or _fallback_complete(out_dir, run_config):
            # A job killed between summary.json and the state's removal leaves a state behind.
            (out_dir / STATE_FILE).unlink(missing_ok=True)
            entry["status"] = json.loads((out_dir / "summary.json").read_text())["status"]
            print(f"{out_dir}: up to date ({entry['status']}), skipped", flush=True)
        else:
            pending.append((entry, run_config, out_dir))
    if not pending:
        return entries
    if "engine" not in pending[0][1]["training"]:
        # study.engine=per_run (the confirmation's jobs): one model.fit after another.
        for (entry, _, _), summary in zip(pending, _train_one_by_one(pending, arrays, device)):
            entry["status"] = str(summary["status"])
            print(f"{entry['run_dir']}: {entry['status']}", flush=True)
        return entries
    budget = spec.get("memory_mb")
    size = program_size(pending[0][1], arrays, float(budget)) if budget else len(pending)
    for start in range(0, len(pending), size):
        chunk = pending[start : start + size]
        started = time.perf_counter()
        print(f"training {len(chunk)} runs as one population ({start + len(chunk)} of {len(pending)})", flush=True)
        try:
            summaries = train_population(
                [config for _, config, _ in chunk],
                arrays,
                [out_dir for _, _, out_dir in chunk],
                device,
                on_epoch=lambda progress: print(progress.line(), flush=True),
            )
        except PopulationUnsupported as error:
            print(f"population engine: {error}; training these {len(chunk)} runs one by one (per_run)", flush=True)
            summaries = _train_one_by_one(chunk, arrays, device, fallback=str(error))
        for (entry, _, out_dir), summary in zip(chunk, summaries):
            entry["status"] = str(summary["status"])
            print(f"{out_dir}: {entry['status']}", flush=True)
        print(f"{len(chunk)} runs in {time.perf_counter() - started:.1f} s", flush=True)
    return entries
