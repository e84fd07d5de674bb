"""The LR range test itself (TensorFlow): a fresh model per seed, the rate ramped step by step,
every batch's own loss recorded (never Keras' running mean), and the suggestions of
:mod:`pipeline.finder.suggest` applied to the smoothed curve. The study's seeds ramp together,
as one population (one traced step, bound to each seed's model).

Command line (one Snakemake job per optimizer)::

    python -m pipeline.finder --spec '<json>' --data data.npz --threads N \\
        --curve finder.csv --suggestions suggestions.json

TensorFlow and Keras are imported inside functions: the CLI must set the thread counts
(:func:`pipeline.training.device.configure_tensorflow`) before TensorFlow is first imported.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from pipeline.config.schema import FinderConfig
from pipeline.finder.suggest import SUGGESTIONS, batch_indices, ramp_rate, smoothing, suggest, summarise_suggestions
from pipeline.io import write_atomic, write_json_atomic
from pipeline.tables import FINDER
from pipeline.training.device import add_device_arguments

if TYPE_CHECKING:  # pandas is imported where used, to keep this module cheap to import
    import pandas as pd

#: Validation rows per evaluation call of the ``loss: val`` range test.
VALIDATION_CHUNK = 4096


def range_test(
    model_options: Mapping[str, Any],
    optimizer_options: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    settings: FinderConfig,
    batch_size: int,
    seed: int,
) -> "pd.DataFrame":
    """Run one range test on a fresh model of seed ``seed`` (:func:`range_tests` with one seed)."""
    return range_tests(model_options, optimizer_options, arrays, settings, batch_size, [seed])[int(seed)]


def range_tests(
    model_options: Mapping[str, Any],
    optimizer_options: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    settings: FinderConfig,
    batch_size: int,
    seeds: Sequence[int],
) -> Dict[int, "pd.DataFrame"]:
    """Run the range test of every seed, all seeds as one population; one curve per seed, one
    row per optimizer step taken.

    Each seed has its own fresh model (built from the seed) and optimizer, and its own batches
    (:func:`batch_indices`). Step ``i`` sets every optimizer's rate to :func:`ramp_rate`
    ``(settings, i)``, computes the loss of each seed's batch ``i`` with the current weights,
    applies its gradients at that rate, and records ``step`` (0-based), ``lr`` (that rate, as
    float64; the optimizer holds its float32 rounding), ``loss`` (that batch's loss, before the
    update) and ``smooth_loss`` (the bias-corrected running mean, :func:`smoothing`). One
    step is traced once, on the first seed's model, and every seed runs it bound to its own
    variables (:class:`pipeline.training.population.SharedStep`; a model whose step holds
    values that differ by seed, or a TensorFlow that cannot share a step, gets one traced step
    per seed, the same computation); one program runs the step of every seed still ramping.

    With ``settings.loss == "val"`` (Smith's test on the validation loss), a row is recorded
    after every ``settings.val_every``-th step instead: ``step`` and ``lr`` of that step, and
    ``loss``, the mean cross-entropy over the whole validation set (no regularisation terms) of
    the weights the step left; ``smooth_loss`` smooths these points the same way.

    A seed's test stops after recording a point whose loss is non-finite, or whose smoothed loss
    exceeds ``settings.stop_factor`` × the lowest smoothed loss of its earlier points; the other
    seeds go on. A curve's ``attrs["stopped"]`` says why (``"non_finite"``, ``"stop_factor"``)
    or is ``None`` when the ramp reached ``end_lr``.

    Call :func:`pipeline.training.device.configure_tensorflow` first (threads, op determinism).
    """
    import keras
    import pandas as pd
    import tensorflow as tf

    from pipeline.training.data import num_classes
    from pipeline.training.models import build_model
    from pipeline.training.optimizers import build_optimizer
    from pipeline.training.population import PopulationUnsupported, SharedStep

    seeds = [int(seed) for seed in dict.fromkeys(int(seed) for seed in seeds)]
    if not seeds:
        return {}
    keras.backend.clear_session()
    # The policy is process-global: a mixed-precision training run earlier in this process
    # must not change the finder's numbers.
    keras.mixed_precision.set_global_policy("float32")
    # Image files stay on disk: indexing decodes only the batch (pipeline.training.images).
    x_train, y_train = _rows_of(arrays["x_train"]), np.asarray(arrays["y_train"])
    members = []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        model = build_model(dict(model_options), x_train.shape[1:], num_classes(arrays))
        optimizer = build_optimizer(optimizer_options, learning_rate=float(settings.start_lr))
        optimizer.build(model.trainable_variables)
        members.append((model, optimizer))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    specs = [
        tf.TensorSpec([None, *x_train.shape[1:]], tf.as_dtype(x_train.dtype)),
        # A user's pipeline has no label array: its batches' labels are int64 (PipelineData.batches).
        tf.TensorSpec([None], tf.int64) if arrays["y_train"] is None else tf.TensorSpec([None, *y_train.shape[1:]], tf.as_dtype(y_train.dtype)),
        tf.TensorSpec([], tf.float32),
    ]

    def step_function(model: Any, optimizer: Any) -> Any:
        def train_step(x: Any, y: Any, rate: Any) -> Tuple[Any, Any]:
            optimizer.learning_rate.assign(rate)
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = loss_fn(y, logits)
                if model.losses:  # regularisation terms, as Keras' own train step adds them
                    loss = loss + tf.add_n(model.losses)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            # The rate apply_gradients read, returned so that the caller can check it is the
            # one it set (an assignment that did not reach the optimizer would leave a stale rate).
            return loss, tf.convert_to_tensor(optimizer.learning_rate)

        return train_step

    def shared_step(model: Any, optimizer: Any) -> SharedStep:
        return SharedStep(step_function(model, optimizer), specs, [*model.variables, *optimizer.variables])

    try:
        # One step for every seed, unless the model's step holds values that differ by seed (a
        # constant drawn from it): then each seed runs its own traced step.
        first = shared_step(*members[0])
        steps: Dict[int, Any] = {seeds[0]: first}
        if len(seeds) > 1:
            second = shared_step(*members[1])
            if first.serves(second):
                steps.update({seed: first for seed in seeds[1:]})
            else:
                steps[seeds[1]] = second
                steps.update({seed: shared_step(*member) for seed, member in zip(seeds[2:], members[2:])})
        captures = {
            seed: steps[seed].bind([*model.variables, *optimizer.variables], f"seed {seed}")
            for seed, (model, optimizer) in zip(seeds, members)
        }
    except PopulationUnsupported as error:
        # A step that cannot be shared (this TensorFlow cannot bind it to another model's
        # variables): each seed traces its own, the same computation.
        print(f"range test: {error}; each seed traces its own step", flush=True)
        steps = {seed: _OwnStep(step_function(*member)) for seed, member in zip(seeds, members)}
        captures = {seed: [] for seed in seeds}
    programs: Dict[Tuple[int, ...], Any] = {}

    def program(active: Tuple[int, ...]) -> Any:
        # One program per set of seeds still ramping (a seed that stopped leaves it).
        if active not in programs:
            bound = [(steps[seed], captures[seed]) for seed in active]
            programs[active] = tf.function(
                lambda batches, rate: [step([x, y, rate], own) for (x, y), (step, own) in zip(batches, bound)]
            )
        return programs[active]

    validation = _validation_losses(members, seeds, arrays, loss_fn) if settings.loss == "val" else None
    beta = smoothing(settings)
    next_batches = _batch_source(x_train, y_train, int(batch_size), settings.steps, seeds)
    rows: Dict[int, List[Dict[str, float]]] = {seed: [] for seed in seeds}
    averages = {seed: 0.0 for seed in seeds}
    best = {seed: math.inf for seed in seeds}
    stopped: Dict[int, Optional[str]] = {seed: None for seed in seeds}
    active = tuple(seeds)
    for step in range(settings.steps):
        if not active:
            break
        rate = ramp_rate(settings, step)
        results = program(active)(next_batches(active), tf.constant(rate, tf.float32))
        for seed, (_, used) in zip(active, results):
            if float(used) != float(np.asarray(rate, dtype=used.dtype.as_numpy_dtype)):
                raise RuntimeError(f"the optimizer applied rate {float(used)!r} at step {step}, not the ramp's {rate!r}")
        if validation is not None:
            if (step + 1) % settings.val_every:
                continue  # no point of the curve at this step
            losses = validation(active)
        else:
            losses = [float(loss_tensor) for loss_tensor, _ in results]
        still = []
        for seed, loss in zip(active, losses):
            averages[seed] = beta * averages[seed] + (1.0 - beta) * loss
            smooth = averages[seed] / (1.0 - beta ** (len(rows[seed]) + 1))
            rows[seed].append({"step": step, "lr": rate, "loss": loss, "smooth_loss": smooth})
            if not (math.isfinite(loss) and math.isfinite(smooth)):
                stopped[seed] = "non_finite"
            elif smooth > settings.stop_factor * best[seed]:
                stopped[seed] = "stop_factor"
            else:
                best[seed] = min(best[seed], smooth)
                still.append(seed)
        active = tuple(still)
    curves = {}
    for seed in seeds:
        frame = pd.DataFrame(rows[seed], columns=["step", "lr", "loss", "smooth_loss"])
        frame["step"] = frame["step"].astype(np.int64)
        frame.attrs["stopped"] = stopped[seed]
        curves[seed] = frame
    return curves


def _rows_of(x: Any) -> Any:
    """The features as something indexable by rows: an array as an array, image files and a
    user's pipeline as they are."""
    from pipeline.training.images import is_streamed
    from pipeline.training.pipelines import is_pipeline

    return x if is_streamed(x) or is_pipeline(x) else np.asarray(x)


def _batch_source(x_train: Any, y_train: Any, batch_size: int, steps: int, seeds: Sequence[int]) -> Callable[[Sequence[int]], List[Any]]:
    """A function of the seeds still ramping that gives each one's next batch: each seed's own
    batch order (:func:`~pipeline.finder.suggest.batch_indices`), or, for a user's pipeline, the
    pipeline's next batch for every seed (its own order, repeated as needed)."""
    import tensorflow as tf

    from pipeline.training.pipelines import is_pipeline

    if is_pipeline(x_train):
        stream = iter(x_train.batches(batch_size).repeat())

        def shared(active: Sequence[int]) -> List[Any]:
            batch = next(stream)
            return [batch for _ in active]

        return shared
    orders = {seed: iter(batch_indices(len(x_train), batch_size, steps, seed)) for seed in seeds}

    def own(active: Sequence[int]) -> List[Any]:
        batches = []
        for seed in active:
            indices = next(orders[seed])
            batches.append((tf.constant(x_train[indices]), tf.constant(y_train[indices])))
        return batches

    return own


def _validation_losses(members: Sequence[Tuple[Any, Any]], seeds: Sequence[int], arrays: Mapping[str, np.ndarray], loss_fn: Any) -> Any:
    """A function of the seeds still ramping that returns each one's mean loss over the whole
    validation set (inference mode, in chunks of :data:`VALIDATION_CHUNK` rows; one traced
    program per seed's model)."""
    import tensorflow as tf

    from pipeline.training.images import is_streamed
    from pipeline.training.pipelines import is_pipeline

    x_val = _rows_of(arrays["x_val"])
    starts = range(0, len(x_val), VALIDATION_CHUNK)
    weights = [min(VALIDATION_CHUNK, len(x_val) - start) / len(x_val) for start in starts]
    if is_pipeline(x_val):

        def chunks_now() -> List[Tuple[Any, Any]]:
            return list(x_val.batches(VALIDATION_CHUNK))

    else:
        y_val = np.asarray(arrays["y_val"])

        def chunk(start: int) -> Tuple[Any, Any]:
            return tf.constant(x_val[start : start + VALIDATION_CHUNK]), tf.constant(y_val[start : start + VALIDATION_CHUNK])

        # Arrays: the chunks once, as tensors; image files: decoded again at each evaluation.
        kept = None if is_streamed(x_val) else [chunk(start) for start in starts]

        def chunks_now() -> List[Tuple[Any, Any]]:
            return kept if kept is not None else [chunk(start) for start in starts]

    def evaluate(model: Any) -> Any:
        return tf.function(lambda x, y: loss_fn(y, model(x, training=False)))

    programs = {seed: evaluate(model) for seed, (model, _) in zip(seeds, members)}

    def losses(active: Sequence[int]) -> List[float]:
        chunks = chunks_now()
        return [float(sum(weight * float(programs[seed](x, y)) for (x, y), weight in zip(chunks, weights))) for seed in active]

    return losses


class _OwnStep:
    """A seed's own traced step, called like a :class:`~pipeline.training.population.SharedStep`
    (its captures are its own)."""

    def __init__(self, function: Any) -> None:
        import tensorflow as tf

        self.function = tf.function(function)

    def __call__(self, inputs: Sequence[Any], captures: Sequence[Any]) -> Any:
        return self.function(*inputs)


def run_finder(spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Tuple["pd.DataFrame", Dict[str, Any]]:
    """The range test for every seed of a spec: the curves (:data:`pipeline.tables.FINDER`, all seeds)
    and the suggestions document. TensorFlow must be configured already."""
    import pandas as pd

    settings = FinderConfig(**spec["finder"])
    curves = []
    per_seed: Dict[int, Dict[str, Any]] = {}
    tests = range_tests(spec["model"], spec["optimizer_options"], arrays, settings, int(spec["batch_size"]), spec["seeds"])
    for seed, curve in tests.items():
        entry = suggest(curve["lr"].to_numpy(), curve["smooth_loss"].to_numpy(), settings)
        # Steps taken (the validation-loss test records a point every val_every steps).
        entry.update({"steps_run": int(curve["step"].iloc[-1]) + 1 if len(curve) else 0, "stopped": curve.attrs.get("stopped")})
        per_seed[int(seed)] = entry
        curves.append(curve.assign(optimizer=spec["optimizer"], seed=int(seed))[FINDER.columns])
    table = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=FINDER.columns)
    document = {
        "optimizer": spec["optimizer"],
        "settings": dataclasses.asdict(settings),
        "per_seed": {str(seed): entry for seed, entry in per_seed.items()},
        "summary": summarise_suggestions(per_seed),
    }
    return table, document


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="LR range test of one optimizer, over the study's seeds.")
    parser.add_argument("--spec", required=True, help="finder spec as JSON (see finder_job_spec)")
    parser.add_argument("--data", required=True, type=Path, help="the study's dataset .npz")
    add_device_arguments(parser)
    parser.add_argument("--curve", required=True, type=Path, help="output: finder.csv (all seeds)")
    parser.add_argument("--suggestions", required=True, type=Path, help="output: suggestions.json")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)

    from pipeline.training.device import configure_tensorflow

    # Before anything imports TensorFlow: thread counts only apply to pools not yet created.
    configure_tensorflow(
        threads=args.threads, deterministic=bool(spec.get("deterministic", True)), gpus=args.gpus
    )
    from pipeline.training.data import load_npz

    table, document = run_finder(spec, load_npz(args.data))
    write_atomic(args.curve, lambda temporary: FINDER.write(table, temporary))
    write_json_atomic(args.suggestions, document)
    for seed, entry in document["per_seed"].items():
        rates = ", ".join(f"{name} {entry[name]:.3g}" if entry[name] is not None else f"{name} -" for name in SUGGESTIONS)
        print(f"{spec['optimizer']} seed {seed}: {entry['steps_run']} steps ({entry['stopped'] or 'full ramp'}); {rates}"
              + (f" [{entry['reason']}]" if entry["reason"] else ""), flush=True)


if __name__ == "__main__":
    main()
