"""Train one run: a model, an optimizer, a schedule at one peak rate, one seed.

Outputs of a run folder (each written atomically, ``summary.json`` last, so a folder with a
``summary.json`` is complete):

- ``history.csv``: one row per epoch: epoch, lr (the rate in force at the epoch's end, read
  from the optimizer, since Keras logs no schedule), loss, accuracy, val_loss, val_accuracy,
  seconds.
- ``config.yaml``: the resolved run configuration.
- ``summary.json``: status (``ok`` or ``diverged``), diverged_epoch, best and final metrics,
  best_epoch, steps, seconds, seed, device, package versions and ``config_hash``.

As a Hydra app, one run from the command line writes the same folder the workflow writes::

    python -m pipeline.training.run optimizer=adam schedule=cosine lr=3e-3 seed=1

TensorFlow is imported inside :func:`pipeline.training.device.configure_tensorflow`, after the
thread-count environment variables are set.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from pipeline.config.schema import RESULTS_DIR
from pipeline.io import write_atomic, write_json_atomic, write_yaml_atomic
from pipeline.training.optimizers import build_optimizer, evaluation_callback, is_schedule_free
from pipeline.tables import HISTORY, RunStatus



def initial_loss(model: Any, loss: Any, x: Any, y: Any, batch_size: int, max_batches: int = 8) -> float:
    """The untrained model's mean training loss, over at most ``max_batches`` batches.

    This is the loss the first epoch starts from: the reference for divergence. The first
    epoch's *mean* loss would be a poor reference, since a rate that blows up in the first
    few steps inflates it (Adam at 1.0 averages ~500 over its first MNIST-1D epoch).
    """
    import numpy as np

    from pipeline.training.pipelines import is_pipeline

    count = min(len(x), batch_size * max_batches)
    if is_pipeline(x):  # a user's pipeline: its first examples
        x, y = x.head(count)
    values = [
        float(loss(y[start : start + batch_size], model(x[start : start + batch_size], training=False)))
        * len(y[start : start + batch_size])
        for start in range(0, count, batch_size)
    ]
    return float(np.sum(values) / count)


def summarise(rows: List[Dict[str, float]], diverged_epoch: Optional[int]) -> Dict[str, Any]:
    """Best and final metrics of a history. Best = the epoch with the lowest finite val_loss."""
    finite = [row for row in rows if math.isfinite(row["val_loss"])]
    best = min(finite, key=lambda row: row["val_loss"]) if finite else None
    accuracies = [row["val_accuracy"] for row in rows if math.isfinite(row["val_accuracy"])]
    last = rows[-1] if rows else {}
    return {
        "status": RunStatus.DIVERGED if diverged_epoch is not None else RunStatus.OK,
        "diverged_epoch": diverged_epoch,
        "epochs_run": len(rows),
        "best_epoch": best["epoch"] if best else None,
        "best_val_loss": best["val_loss"] if best else math.nan,
        "val_accuracy_at_best": best["val_accuracy"] if best else math.nan,
        "best_val_accuracy": max(accuracies) if accuracies else math.nan,
        "final_loss": last.get("loss", math.nan),
        "final_accuracy": last.get("accuracy", math.nan),
        "final_val_loss": last.get("val_loss", math.nan),
        "final_val_accuracy": last.get("val_accuracy", math.nan),
    }


def write_history(rows: List[Dict[str, float]], path: Path) -> None:
    """Write a run's history rows (:data:`pipeline.tables.HISTORY`) atomically."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=HISTORY.columns)
    write_atomic(path, lambda temporary: HISTORY.write(frame, temporary))


@dataclass
class BuiltRun:
    """A run's compiled model, ready to train (see :func:`build_run`)."""

    model: Any
    schedule: Any
    reference_loss: float
    steps_per_epoch: int
    #: A ``plateau`` schedule's callback (its counters restored from the state), else None.
    plateau: Any = None


def build_run(
    run_config: Mapping[str, Any],
    arrays: Mapping[str, Any],
    state: Optional[Mapping[str, Any]] = None,
    state_path: Optional[Path] = None,
    *,
    rate_from_schedule: bool = True,
    reference_loss: Optional[float] = None,
) -> BuiltRun:
    """Seed, build and compile a run's model, as both engines do, and restore a saved state.

    The seed (``training.seed``) is set before the model is built, so a run's initial weights
    depend on its seed alone. The untrained loss (the divergence reference) is measured before
    compiling, or taken from ``state``. ``rate_from_schedule``: the optimizer evaluates the
    run's schedule itself (the per-run engine); with False it is built with a rate *variable*
    instead, which the population engine sets at every step to what the run's own schedule
    gives at that step (:class:`BuiltRun` keeps the schedule). ``reference_loss``: the untrained
    loss when the caller knows it already (runs of one seed, model and data start from the same
    weights). The mixed-precision policy is the caller's to set.
    """
    import keras

    from pipeline.training.data import num_classes
    from pipeline.training.models import build_model
    from pipeline.training.callbacks import Plateau
    from pipeline.training.resume import restore_state
    from pipeline.training.schedules import build_schedule, plateau_options

    training = run_config["training"]
    keras.utils.set_random_seed(int(training["seed"]))
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    steps_per_epoch = math.ceil(len(x_train) / training["batch_size"])
    schedule = build_schedule(run_config["schedule"], training["lr"], steps_per_epoch, training["epochs"])
    adaptive = plateau_options(run_config["schedule"], training["epochs"])
    # A plateau schedule's rate is set by its callback, so the optimizer holds a rate variable.
    rate_from_schedule = rate_from_schedule and adaptive is None
    model = build_model(run_config["model"], x_train.shape[1:], num_classes(arrays))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if state:
        reference_loss = float(state["reference_loss"])
    elif reference_loss is None:
        reference_loss = initial_loss(model, loss, x_train, y_train, training["batch_size"])
    model.compile(
        optimizer=build_optimizer(run_config["optimizer"], schedule if rate_from_schedule else float(training["lr"])),
        loss=loss,
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=bool(training["xla"]),
        steps_per_execution=training["steps_per_execution"],
    )
    if is_schedule_free(model.optimizer):
        # Built now, eagerly: Keras 3.15's ScheduleFreeAdamW copies the weights into its
        # momentum slots in build(); built inside fit's first traced step, that copy becomes
        # part of the step and resets the slots at every step (the loss then never moves).
        model.optimizer.build(model.trainable_variables)
    if state:
        try:
            restore_state(model, state)
        except ValueError as error:
            raise ValueError(f"{state_path}: {error}; delete it to train this run from the start") from error
    plateau = Plateau(adaptive, state.get("plateau") if state else None) if adaptive is not None else None
    if plateau is not None:
        plateau.set_model(model)
    return BuiltRun(model=model, schedule=schedule, reference_loss=reference_loss, steps_per_epoch=steps_per_epoch, plateau=plateau)


def train_run(
    run_config: Mapping[str, Any],
    arrays: Mapping[str, Any],
    out_dir: Path,
    device: str = "",
    callbacks: Sequence[Any] = (),
    extra_summary: Optional[Callable[[Dict[str, Any]], Mapping[str, Any]]] = None,
    resumable: bool = False,
    progress: bool = False,
) -> Dict[str, Any]:
    """Train one run and write its folder; returns the summary. A diverged run is a result.

    ``callbacks`` run after the recorder (e.g. a pruning callback that stops training through
    ``model.stop_training``, which sees each epoch's validation loss); ``extra_summary`` is
    called with the summary once training ended and its keys are added to ``summary.json``
    before it is written (e.g. a trial's number and final state). With ``resumable``, the
    run's state is saved at every epoch end and a run killed earlier carries on from its last
    completed epoch (:mod:`pipeline.training.resume`). With ``progress``, one line per epoch
    is printed (:class:`pipeline.training.progress.EpochProgress`, as population jobs log).

    Each epoch's batches are a permutation of the training set drawn from ``(seed, epoch)``,
    so an epoch sees the same batches however the run got there.
    """
    import keras

    from pipeline.config.schema import config_hash
    from pipeline.training.callbacks import EpochStateSaver, ProgressLine, RunRecorder
    from pipeline.training.resume import STATE_FILE, epoch_batches, load_state, validation_data

    training = run_config["training"]
    started = time.perf_counter()
    out_dir = Path(out_dir)
    run_hash = config_hash(dict(run_config))
    state_path = out_dir / STATE_FILE
    state = load_state(state_path, run_hash) if resumable else None
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("mixed_float16" if training["mixed_precision"] else "float32")
    built = build_run(run_config, arrays, state, state_path)
    model, reference_loss, steps_per_epoch = built.model, built.reference_loss, built.steps_per_epoch
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    # A resumed run's recorder goes on from the saved rows (and divergence).
    recorder = RunRecorder(
        training["divergence_factor"],
        reference_loss,
        rows=state["rows"] if state else (),
        diverged_epoch=state["diverged_epoch"] if state else None,
    )
    seconds_before = float(state["seconds"]) if state else 0.0
    if state:
        print(f"{out_dir}: resuming after epoch {len(recorder.rows)} of {training['epochs']}", flush=True)
    start_epoch = len(recorder.rows)
    if recorder.diverged_epoch is None and start_epoch < training["epochs"]:
        batches, epoch_shuffle = epoch_batches(x_train, y_train, training["batch_size"], training["seed"])
        state_savers = []
        if resumable:
            meta = {"config_hash": run_hash, "reference_loss": reference_loss}
            state_savers = [EpochStateSaver(state_path, recorder, meta, seconds_before, started, built.plateau)]
        model.fit(
            batches,
            epochs=training["epochs"],
            initial_epoch=start_epoch,
            **validation_data(arrays["x_val"], arrays["y_val"], training["batch_size"]),
            shuffle=False,  # the batches are already shuffled, by (seed, epoch)
            verbose=0,
            # Schedule-free AdamW: validation on the averaged weights, restored before the epoch ends.
            # A plateau schedule lowers the rate before the recorder reads it.
            callbacks=[
                evaluation_callback(), epoch_shuffle, *([built.plateau] if built.plateau else []), recorder,
                *([ProgressLine(recorder, training["epochs"])] if progress else []), *callbacks, *state_savers,
            ],  # fmt: skip
        )
    return finish_run(
        run_config,
        out_dir,
        recorder.rows,
        recorder.diverged_epoch,
        reference_loss=reference_loss,
        steps=int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        steps_per_epoch=steps_per_epoch,
        seconds=seconds_before + time.perf_counter() - started,
        resumed_from_epoch=start_epoch if state else None,
        device=device,
        extra_summary=extra_summary,
    )


def finish_run(
    run_config: Mapping[str, Any],
    out_dir: Path,
    rows: List[Dict[str, float]],
    diverged_epoch: Optional[int],
    *,
    reference_loss: float,
    steps: int,
    steps_per_epoch: int,
    seconds: float,
    resumed_from_epoch: Optional[int],
    device: str,
    extra_summary: Optional[Callable[[Dict[str, Any]], Mapping[str, Any]]] = None,
) -> Dict[str, Any]:
    """Write a trained run's folder (``history.csv``, ``config.yaml``, then ``summary.json``) and
    remove its saved state; returns the summary. Both engines end a run here."""
    from pipeline.config.schema import config_hash
    from pipeline.config.studyfile import TRAINING_PACKAGES, package_versions
    from pipeline.training.device import thread_settings
    from pipeline.training.resume import STATE_FILE

    training = run_config["training"]
    out_dir = Path(out_dir)
    summary = summarise(rows, diverged_epoch)
    summary.update(
        {
            "optimizer": run_config["optimizer"].get("name", run_config["optimizer"]["type"]),
            "schedule": run_config["schedule"].get("name", run_config["schedule"]["type"]),
            "lr": training["lr"],
            "seed": training["seed"],
            "steps": steps,
            "steps_per_epoch": steps_per_epoch,
            "initial_loss": reference_loss,
            "seconds": seconds,
            "resumed_from_epoch": resumed_from_epoch,
            "device": device,
            "threads": thread_settings(),
            "versions": package_versions(TRAINING_PACKAGES),
            "config_hash": config_hash(dict(run_config)),
            # How batches were drawn: (seed, epoch), or "user" (a user's pipeline's own order).
            "batch_order": training.get("batch_order"),
        }
    )
    if extra_summary is not None:
        summary.update(extra_summary(summary))
    write_history(rows, out_dir / "history.csv")
    write_yaml_atomic(out_dir / "config.yaml", dict(run_config))
    write_json_atomic(out_dir / "summary.json", summary)
    (out_dir / STATE_FILE).unlink(missing_ok=True)
    return summary


def is_complete(out_dir: Path, run_config: Mapping[str, Any]) -> bool:
    """A run folder is complete when its summary exists and was made from this exact config."""
    import json

    from pipeline.config.schema import config_hash

    summary = Path(out_dir) / "summary.json"
    if not (summary.is_file() and (Path(out_dir) / "history.csv").is_file()):
        return False
    try:
        return json.loads(summary.read_text()).get("config_hash") == config_hash(dict(run_config))
    except (OSError, ValueError):
        return False


def main() -> None:
    """The single-run Hydra app (``conf/run.yaml``)."""
    import hydra
    from omegaconf import DictConfig, OmegaConf

    from pipeline.config.compose import register_schema
    from pipeline.config.schema import RunConfig, conf_dir

    register_schema(RunConfig)  # conf/run.yaml's lr and seed

    @hydra.main(config_path=str(conf_dir()), config_name="run", version_base="1.3")
    def app(cfg: DictConfig) -> None:
        from pipeline.config.compose import validate
        from pipeline.config.schema import StudyConfigError

        lr, seed = cfg.lr, cfg.seed
        with_flag = OmegaConf.to_container(cfg, resolve=True)
        study_cfg = OmegaConf.create({key: value for key, value in with_flag.items() if key not in ("lr", "seed")})
        study = validate(study_cfg, [])
        for group, chosen in (("optimizer", study.optimizers), ("schedule", study.schedules)):
            if len(chosen) != 1:
                raise StudyConfigError(
                    f"a single run takes exactly one {group}; selected: {', '.join(chosen)} (e.g. {group}={next(iter(chosen))})"
                )
        if not isinstance(seed, int) or seed < 0:
            raise StudyConfigError(f"seed={seed!r} must be an integer >= 0")
        try:
            rate = float(lr)
        except (TypeError, ValueError):
            rate = math.nan
        if not (math.isfinite(rate) and rate > 0):
            raise StudyConfigError(f"lr={lr!r} must be a learning rate > 0")
        run_single(study, next(iter(study.optimizers)), next(iter(study.schedules)), seed, rate)

    app()


def run_single(
    study: Any, optimizer: str, schedule: str, seed: int, lr: float, results: Path = Path(RESULTS_DIR)
) -> Path:
    """Train one run of a study into the same folder the workflow uses; returns the folder."""
    from pipeline.config.rates import run_dir
    from pipeline.training.data import arrays_digest, build_dataset, loaded
    from pipeline.training.device import configure_tensorflow

    # Built in memory (MNIST-1D takes ~2 s): a cached file could be stale for this config.
    arrays = loaded(build_dataset(study.dataset))
    study_dir = results / study.name
    device = configure_tensorflow(deterministic=study.settings.deterministic, gpus=study.settings.gpus)
    out_dir = run_dir(study_dir, optimizer, schedule, seed, lr)
    run_config = study.run_config(optimizer, schedule, seed, lr)
    run_config["dataset"]["digest"] = arrays_digest(arrays)
    if run_config["training"].get("engine") == "population":
        from pipeline.training.population import train_population

        # A population of one: the same numbers as this run inside the workflow's population.
        summary = train_population([run_config], arrays, [out_dir], device)[0]
    else:
        summary = train_run(run_config, arrays, out_dir, device, resumable=True)
    print(
        f"{out_dir}: {summary['status']}, best val_loss {summary['best_val_loss']:.4f} at epoch {summary['best_epoch']}, "
        f"{summary['seconds']:.1f} s"
    )
    return out_dir


if __name__ == "__main__":
    main()
