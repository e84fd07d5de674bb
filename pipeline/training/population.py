"""The population engine: a training job's runs advance together, as one compiled program.

A *population* is a set of runs (its *members*) that share the dataset, the model, the batch
size, the number of epochs and the training switches, and differ in learning rate, seed
(initial weights and batch order), schedule and optimizer settings. Each member is its own
Keras model, compiled with its own Keras optimizer and learning-rate schedule, exactly as
:func:`pipeline.training.run.train_run` builds a run. What changes is how they train: one
``tf.function`` runs a whole epoch of every member, calling each member's own
``Model.train_step`` (Keras' loss, gradient, optimizer update and metrics) on that member's own
``(seed, epoch)`` batch, and a second one runs each member's ``Model.test_step`` over the
validation set. Model building, tracing and the per-step dispatch are paid once per job
instead of once per run, which is what small models spend most of their time on.

Why separate graphs per member and not a vectorised (``vmap``) population: on a CPU, batched
kernels are no faster per member than one member's kernels (vmapped convolutions are slower),
and they round differently, so a member's numbers would depend on who shares its population.
Here each member is computed by its own ops, exactly as it would be alone: a member's history
is bit-identical whichever other members train beside it, and (as Keras' own ``fit`` runs the
same ``train_step``/``test_step``) equal to the per-run engine's history up to the order in
which TensorFlow's graph optimiser happens to fuse the ops (in practice identical, or within a
few float32 ulps).

What every member keeps from the per-run engine: its run folder (``history.csv`` with the rate
in force, ``summary.json``, ``config.yaml``), divergence as a result (a member whose epoch loss
is non-finite or above ``divergence_factor`` × its untrained loss stops at that epoch; the
others go on), its state saved at every epoch end (``resume.npz``: a killed job resumes every
member from its last completed epoch), skipping when complete, device and thread counts.
``seconds`` is a member's *share* of the population's time: each epoch's wall time divided
among the members that trained in it, plus an equal share of building and tracing.

The engine's run configs say ``training.engine: population`` (and so have config hashes of
their own): a folder trained or half-trained by one engine is never resumed or skipped by the
other.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

#: The keys of a run config's ``training`` section that may differ between members.
MEMBER_KEYS = ("lr", "seed")

#: Rebuild (retrace) the epoch function for the members still training once this share of
#: the members it was built for have stopped (diverged): their steps would be wasted work.
RETRACE_WHEN_STOPPED = 1 / 3


class PopulationError(ValueError):
    """Runs that cannot train as one population (they differ in more than rate, seed,
    schedule and optimizer settings)."""


def population_key(run_config: Mapping[str, Any]) -> str:
    """What members of one population share: the run config without what may differ."""
    shared = {key: value for key, value in run_config.items() if key not in ("study", "optimizer", "schedule")}
    # One optimizer type per population: the memory budget is measured on one member.
    shared["optimizer"] = {"type": run_config["optimizer"].get("type")}
    shared["training"] = {key: value for key, value in run_config["training"].items() if key not in MEMBER_KEYS}
    return json.dumps(shared, sort_keys=True, default=str)


def check_population(run_configs: Sequence[Mapping[str, Any]]) -> None:
    """Raise :class:`PopulationError` naming the first key on which two members disagree."""
    if not run_configs:
        return
    first = json.loads(population_key(run_configs[0]))
    for config in run_configs[1:]:
        other = json.loads(population_key(config))
        if other != first:
            keys = sorted(
                f"{section}.{key}"
                for section in set(first) | set(other)
                for key in set(first.get(section) or {}) | set(other.get(section) or {})
                if (first.get(section) or {}).get(key) != (other.get(section) or {}).get(key)
            )
            raise PopulationError(f"runs differ in {', '.join(keys) or 'their shared settings'}: not one population")


class PopulationUnsupported(RuntimeError):
    """A model the population engine cannot trace as a population (the message says what)."""


@dataclass(eq=False)
class Member:
    """One run of a population, with its Keras model (compiled with its own optimizer)."""

    run_config: Dict[str, Any]
    out_dir: Path
    run_hash: str
    model: Any = None
    reference_loss: float = math.nan
    rows: List[Dict[str, float]] = field(default_factory=list)
    diverged_epoch: Optional[int] = None
    seconds: float = 0.0
    resumed_from_epoch: Optional[int] = None
    steps_per_epoch: int = 0

    @property
    def training(self) -> Dict[str, Any]:
        return self.run_config["training"]

    @property
    def done(self) -> bool:
        return self.diverged_epoch is not None or len(self.rows) >= int(self.training["epochs"])


def _build_member(member: Member, arrays: Mapping[str, Any]) -> None:
    """Build and compile a member's model the way the per-run engine does, from its seed,
    and restore its saved state if it has one."""
    import keras

    from pipeline.training.data import num_classes
    from pipeline.training.models import build_model
    from pipeline.training.optimizers import build_optimizer
    from pipeline.training.resume import STATE_FILE, load_state, restore_state
    from pipeline.training.run import initial_loss
    from pipeline.training.schedules import build_schedule

    training = member.training
    state_path = member.out_dir / STATE_FILE
    state = load_state(state_path, member.run_hash)
    keras.utils.set_random_seed(int(training["seed"]))
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    member.steps_per_epoch = math.ceil(len(x_train) / training["batch_size"])
    schedule = build_schedule(member.run_config["schedule"], training["lr"], member.steps_per_epoch, training["epochs"])
    model = build_model(member.run_config["model"], x_train.shape[1:], num_classes(arrays))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    member.reference_loss = (
        float(state["reference_loss"]) if state else initial_loss(model, loss, x_train, y_train, training["batch_size"])
    )
    model.compile(
        optimizer=build_optimizer(member.run_config["optimizer"], schedule),
        loss=loss,
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    # The optimizer makes its variables lazily; the population's traced step needs them now.
    model.optimizer.build(model.trainable_variables)
    if state:
        try:
            restore_state(model, state)
        except ValueError as error:
            raise ValueError(f"{state_path}: {error}; delete it to train this run from the start") from error
        member.rows = list(state["rows"])
        member.diverged_epoch = state["diverged_epoch"]
        member.seconds = float(state["seconds"])
        member.resumed_from_epoch = len(member.rows)
        print(f"{member.out_dir}: resuming after epoch {len(member.rows)} of {training['epochs']}", flush=True)
    member.model = model


class _Programs:
    """The compiled programs of the members still training: one epoch of training, and one
    pass over the validation set, each as one ``tf.function``."""

    def __init__(self, members: Sequence[Member], arrays: Mapping[str, Any], batch_size: int) -> None:
        import tensorflow as tf

        self.members = list(members)
        self.size = len(self.members)
        seeds = sorted({int(member.training["seed"]) for member in self.members})
        x_train, y_train = tf.constant(arrays["x_train"]), tf.constant(arrays["y_train"])
        x_val, y_val = tf.constant(arrays["x_val"]), tf.constant(arrays["y_val"])
        count, val_count = len(arrays["x_train"]), len(arrays["x_val"])
        steps, val_steps = -(-count // batch_size), -(-val_count // batch_size)

        @tf.function
        def orders(epoch: Any) -> Dict[int, Any]:
            # Each seed's permutation of the training set in this epoch: the same stateless
            # shuffle as the per-run engine's (pipeline.training.resume.epoch_batches).
            return {
                seed: tf.random.experimental.stateless_shuffle(
                    tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
                )
                for seed in seeds
            }

        @tf.function
        def train_epoch(order: Dict[int, Any]) -> None:
            for step in tf.range(steps):
                start = tf.cast(step, tf.int64) * batch_size
                batches = {}
                for seed in seeds:
                    rows = order[seed][start : start + batch_size]
                    batches[seed] = (tf.gather(x_train, rows), tf.gather(y_train, rows))
                for member in self.members:
                    member.model.train_step(batches[int(member.training["seed"])])

        @tf.function
        def evaluate() -> None:
            for step in tf.range(val_steps):
                start = step * batch_size
                batch = (x_val[start : start + batch_size], y_val[start : start + batch_size])
                for member in self.members:
                    member.model.test_step(batch)

        self._orders, self._train_epoch, self._evaluate = orders, train_epoch, evaluate

    def trace(self) -> None:
        """Trace both programs now, so that a model the engine cannot train as a population
        fails here, before any epoch, as :class:`PopulationUnsupported` naming the error."""
        import tensorflow as tf

        try:
            self._train_epoch.get_concrete_function(self._orders(tf.constant(0, tf.int64)))
            self._evaluate.get_concrete_function()
        except Exception as error:  # noqa: BLE001 - any tracing error means "not as a population"
            model = self.members[0].model
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise PopulationUnsupported(
                f"cannot trace model {getattr(model, 'name', type(model).__name__)!r} as a population "
                f"({type(error).__name__}: {message})"
            ) from error

    def run_epoch(self, epoch: int) -> List[Dict[str, Dict[str, float]]]:
        """Train every member for epoch ``epoch`` (0-based) and evaluate it; each member's
        training and validation metrics, as ``fit`` reports them."""
        import tensorflow as tf

        for member in self.members:
            member.model.reset_metrics()
        self._train_epoch(self._orders(tf.constant(epoch, tf.int64)))
        train_logs = [_metrics(member.model) for member in self.members]
        for member in self.members:
            member.model.reset_metrics()
        self._evaluate()
        val_logs = [_metrics(member.model) for member in self.members]
        return [{"train": train, "val": val} for train, val in zip(train_logs, val_logs)]


def _metrics(model: Any) -> Dict[str, float]:
    import keras

    return {name: float(keras.ops.convert_to_numpy(value)) for name, value in model.get_metrics_result().items()}


def train_population(
    run_configs: Sequence[Mapping[str, Any]],
    arrays: Mapping[str, Any],
    out_dirs: Sequence[Path],
    device: str = "",
    resumable: bool = True,
    on_epoch: Optional[Callable[[int, int], None]] = None,
) -> List[Dict[str, Any]]:
    """Train the runs ``run_configs`` as one population and write each run's folder.

    Returns one summary per run, in order (the same keys as the per-run engine's
    ``summary.json``). ``resumable``: save each member's state at every epoch end and resume
    members that have one. ``on_epoch(epoch, members_training)`` is called after each epoch
    (progress). TensorFlow must be configured already (:func:`pipeline.training.device.configure_tensorflow`).
    """
    import keras

    from pipeline.config.schema import config_hash
    from pipeline.training.resume import STATE_FILE, save_state
    from pipeline.training.run import finish_run

    run_configs = [json.loads(json.dumps(config)) for config in run_configs]
    if len(run_configs) != len(out_dirs):
        raise ValueError(f"{len(run_configs)} run configs but {len(out_dirs)} run folders")
    check_population(run_configs)
    if run_configs and run_configs[0]["training"]["xla"]:
        # XLA would compile a whole epoch of every member into one cluster: minutes of
        # compilation on a CPU for a few members. Such runs train one by one (the job says so).
        raise PopulationUnsupported("study.xla=true: populations are not compiled with XLA")
    if not run_configs:
        return []
    training = run_configs[0]["training"]
    started = time.perf_counter()
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("mixed_float16" if training["mixed_precision"] else "float32")
    members = [
        Member(run_config=config, out_dir=Path(out_dir), run_hash=config_hash(config))
        for config, out_dir in zip(run_configs, out_dirs)
    ]
    for member in members:
        _build_member(member, arrays)
    setup_share = (time.perf_counter() - started) / len(members)
    for member in members:
        member.seconds += setup_share

    summaries: Dict[int, Dict[str, Any]] = {}

    def finish(member: Member) -> Dict[str, Any]:
        return finish_run(
            member.run_config,
            member.out_dir,
            member.rows,
            member.diverged_epoch,
            reference_loss=member.reference_loss,
            # A member stops at its last epoch; its model may run on inside the program.
            steps=len(member.rows) * member.steps_per_epoch,
            steps_per_epoch=member.steps_per_epoch,
            seconds=member.seconds,
            resumed_from_epoch=member.resumed_from_epoch,
            device=device,
        )

    epochs = int(training["epochs"])
    programs: Optional[_Programs] = None
    first_epoch = min((len(member.rows) for member in members if not member.done), default=epochs)
    for epoch in range(first_epoch, epochs):
        # A member joins once the population reaches the epoch its saved state ended at.
        training_now = [member for member in members if not member.done and len(member.rows) == epoch]
        if not training_now:
            continue
        if programs is None or set(map(id, training_now)) != set(map(id, programs.members)):
            stopped = programs.size - sum(1 for member in programs.members if member in training_now) if programs else 0
            joined = any(member not in programs.members for member in training_now) if programs else True
            if programs is None or joined or stopped >= RETRACE_WHEN_STOPPED * programs.size:
                built = time.perf_counter()
                programs = _Programs(training_now, arrays, int(training["batch_size"]))
                programs.trace()
                for member in training_now:
                    member.seconds += (time.perf_counter() - built) / len(training_now)
        epoch_started = time.perf_counter()
        logs = programs.run_epoch(epoch)
        seconds = (time.perf_counter() - epoch_started) / len(training_now)
        for member, log in zip(programs.members, logs):
            if member not in training_now:
                continue  # stopped earlier: its steps in this program are not results
            rate = float(keras.ops.convert_to_numpy(member.model.optimizer.learning_rate))
            row = {
                "epoch": epoch + 1,
                "lr": rate,
                "loss": log["train"].get("loss", math.nan),
                "accuracy": log["train"].get("accuracy", math.nan),
                "val_loss": log["val"].get("loss", math.nan),
                "val_accuracy": log["val"].get("accuracy", math.nan),
                "seconds": seconds,
            }
            member.rows.append(row)
            member.seconds += seconds
            loss = row["loss"]
            if not math.isfinite(loss) or loss > float(member.training["divergence_factor"]) * member.reference_loss:
                member.diverged_epoch = epoch + 1
            if member.done:
                # Written now, not when the population ends: a job killed later keeps it.
                summaries[id(member)] = finish(member)
            elif resumable:
                save_state(
                    member.out_dir / STATE_FILE,
                    member.model,
                    {
                        "config_hash": member.run_hash,
                        "reference_loss": member.reference_loss,
                        "rows": member.rows,
                        "diverged_epoch": member.diverged_epoch,
                        "seconds": member.seconds,
                    },
                )
        if on_epoch is not None:
            on_epoch(epoch + 1, len(training_now))

    for member in members:
        if id(member) not in summaries:
            summaries[id(member)] = finish(member)
    return [summaries[id(member)] for member in members]
