"""Benchmark: what preemption-safe training costs, on the default MLP and MNIST-1D.

Three ways to train the same run, in one process, alternating, median of ``--repeats``:

- ``keras-shuffle`` (the baseline): ``model.fit`` on the arrays with Keras' own
  ``shuffle=True``, which a restarted process cannot continue;
- ``epoch-batches``: :func:`pipeline.training.run.train_run` without saved state: batches drawn
  from ``(seed, epoch)`` (:func:`pipeline.training.resume.epoch_batches`);
- ``resumable``: the same plus the state saved at every epoch end (what training jobs do).

Prints each one's seconds and its ratio to the baseline.

    python benchmarks/resume_overhead.py [--epochs 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping

from pipeline.config.compose import compose_study
from pipeline.training.data import build_dataset
from pipeline.training.device import configure_tensorflow
from pipeline.training.run import train_run


def keras_shuffle_run(run_config: Mapping[str, Any], arrays: Mapping[str, Any]) -> None:
    """The baseline: the same model, optimizer, schedule and compile options, Keras' shuffle."""
    import keras

    from pipeline.training.data import num_classes
    from pipeline.training.models import build_model
    from pipeline.training.schedules import build_schedule
    from pipeline.training.optimizers import build_optimizer

    training = run_config["training"]
    keras.backend.clear_session()
    keras.utils.set_random_seed(training["seed"])
    steps_per_epoch = -(-len(arrays["x_train"]) // training["batch_size"])
    schedule = build_schedule(run_config["schedule"], training["lr"], steps_per_epoch, training["epochs"])
    model = build_model(run_config["model"], arrays["x_train"].shape[1:], num_classes(arrays))
    model.compile(
        optimizer=build_optimizer(run_config["optimizer"], schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        steps_per_execution=training["steps_per_execution"],
    )
    model.fit(
        arrays["x_train"],
        arrays["y_train"],
        batch_size=training["batch_size"],
        epochs=training["epochs"],
        validation_data=(arrays["x_val"], arrays["y_val"]),
        shuffle=True,
        verbose=0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configure_tensorflow(threads=1)
    study = compose_study([f"study.epochs={args.epochs}"])
    arrays = build_dataset(study.dataset)
    run_config = study.run_config("adam", "constant", 0, 1e-3)
    seconds: Dict[str, List[float]] = {"keras-shuffle": [], "epoch-batches": [], "resumable": []}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for variant in seconds:
                started = time.perf_counter()
                if variant == "keras-shuffle":
                    keras_shuffle_run(run_config, arrays)
                else:
                    out = Path(scratch) / f"{variant}{repeat}"
                    train_run(run_config, arrays, out, resumable=variant == "resumable")
                seconds[variant].append(time.perf_counter() - started)
    baseline = statistics.median(seconds["keras-shuffle"])
    for variant, values in seconds.items():
        median = statistics.median(values)
        print(f"{variant:14s} {median:6.2f} s per {args.epochs}-epoch run (median of {args.repeats}), {median / baseline:.2f}x the baseline")


if __name__ == "__main__":
    main()
