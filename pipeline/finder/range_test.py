"""The LR range test itself (TensorFlow): a fresh model per seed, the rate ramped step by step,
every batch's own loss recorded (never Keras' running mean), and the suggestions of
:mod:`pipeline.finder.suggest` applied to the smoothed curve.

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
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from pipeline.config.schema import FinderConfig
from pipeline.finder.suggest import SUGGESTIONS, batch_indices, ramp_rate, suggest, summarise_suggestions
from pipeline.io import write_atomic, write_json_atomic
from pipeline.tables import FINDER
from pipeline.training.device import add_device_arguments

if TYPE_CHECKING:  # pandas is imported where used, to keep this module cheap to import
    import pandas as pd


def range_test(
    model_options: Mapping[str, Any],
    optimizer_options: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    settings: FinderConfig,
    batch_size: int,
    seed: int,
) -> "pd.DataFrame":
    """Run one range test on a fresh model; one row per optimizer step taken.

    Step ``i`` sets the optimizer's rate to :func:`ramp_rate` ``(settings, i)``, computes the
    loss of batch ``i`` (:func:`batch_indices`) with the current weights, applies its
    gradients at that rate, and records ``step`` (0-based), ``lr`` (that rate, as float64;
    the optimizer holds its float32 rounding), ``loss`` (that batch's loss, before the
    update) and ``smooth_loss`` (:func:`smooth_losses` with ``settings.beta``).

    The test stops after recording a step whose loss is non-finite, or whose smoothed loss
    exceeds ``settings.stop_factor`` × the lowest smoothed loss of the earlier steps. The
    result's ``attrs["stopped"]`` says why (``"non_finite"``, ``"stop_factor"``) or is
    ``None`` when the ramp reached ``end_lr``.

    Call :func:`pipeline.training.device.configure_tensorflow` first (threads, op determinism).
    """
    import keras
    import pandas as pd
    import tensorflow as tf

    from pipeline.training.data import num_classes
    from pipeline.training.models import build_model
    from pipeline.training.optimizers import build_optimizer

    keras.backend.clear_session()
    keras.utils.set_random_seed(int(seed))
    # The policy is process-global: a mixed-precision training run earlier in this process
    # must not change the finder's numbers.
    keras.mixed_precision.set_global_policy("float32")
    x_train, y_train = np.asarray(arrays["x_train"]), np.asarray(arrays["y_train"])
    model = build_model(dict(model_options), x_train.shape[1:], num_classes(arrays))
    optimizer = build_optimizer(optimizer_options, learning_rate=float(settings.start_lr))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(x: Any, y: Any) -> Tuple[Any, Any]:
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits)
            if model.losses:  # regularisation terms, as Keras' own train step adds them
                loss = loss + tf.add_n(model.losses)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        # The rate apply_gradients read, returned so that the caller can check it is the one
        # it set (a setter that rebinds instead of assigning would leave a stale rate here).
        return loss, tf.convert_to_tensor(optimizer.learning_rate)

    rows: List[Dict[str, float]] = []
    average, best = 0.0, math.inf
    stopped: Optional[str] = None
    for step, rows_of_batch in enumerate(batch_indices(len(x_train), int(batch_size), settings.steps, int(seed))):
        rate = ramp_rate(settings, step)
        # Keras 3's setter assigns the existing rate variable, which the traced step reads.
        optimizer.learning_rate = rate
        loss_tensor, used = train_step(tf.constant(x_train[rows_of_batch]), tf.constant(y_train[rows_of_batch]))
        if float(used) != float(np.asarray(rate, dtype=used.dtype.as_numpy_dtype)):
            raise RuntimeError(f"the optimizer applied rate {float(used)!r} at step {step}, not the ramp's {rate!r}")
        loss = float(loss_tensor)
        average = settings.beta * average + (1.0 - settings.beta) * loss
        smooth = average / (1.0 - settings.beta ** (step + 1))
        rows.append({"step": step, "lr": rate, "loss": loss, "smooth_loss": smooth})
        if not (math.isfinite(loss) and math.isfinite(smooth)):
            stopped = "non_finite"
            break
        if smooth > settings.stop_factor * best:
            stopped = "stop_factor"
            break
        best = min(best, smooth)
    frame = pd.DataFrame(rows, columns=["step", "lr", "loss", "smooth_loss"])
    frame["step"] = frame["step"].astype(np.int64)
    frame.attrs["stopped"] = stopped
    return frame



def run_finder(spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Tuple["pd.DataFrame", Dict[str, Any]]:
    """The range test for every seed of a spec: the curves (:data:`pipeline.tables.FINDER`, all seeds)
    and the suggestions document. TensorFlow must be configured already."""
    import pandas as pd

    settings = FinderConfig(**spec["finder"])
    curves = []
    per_seed: Dict[int, Dict[str, Any]] = {}
    for seed in spec["seeds"]:
        curve = range_test(spec["model"], spec["optimizer_options"], arrays, settings, int(spec["batch_size"]), int(seed))
        entry = suggest(curve["lr"].to_numpy(), curve["smooth_loss"].to_numpy(), settings)
        entry.update({"steps_run": len(curve), "stopped": curve.attrs.get("stopped")})
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
