"""Benchmark: batches per compiled call (``study.steps_per_execution``) on the default MLP.

Trains the same MNIST-1D run with ``steps_per_execution=1`` (the baseline) and with the
default 32, in one process, alternating, and reports the time ratio; it also checks that the
histories are identical but for the seconds column (the setting changes speed, not results).

    python benchmarks/steps_per_execution.py [--epochs 20] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from pipeline.config.compose import compose_study
from pipeline.training.data import build_dataset
from pipeline.training.device import configure_tensorflow
from pipeline.training.run import train_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    configure_tensorflow(threads=1)
    arrays = None
    seconds: dict[int, list[float]] = {1: [], 32: []}
    histories: dict[int, pd.DataFrame] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for steps in (1, 32):
                study = compose_study([f"study.steps_per_execution={steps}", f"study.epochs={args.epochs}"])
                arrays = arrays if arrays is not None else build_dataset(study.dataset)
                out = Path(scratch) / f"spe{steps}_{repeat}"
                started = time.perf_counter()
                train_run(study.run_config("adam", "constant", 0, 1e-3), arrays, out)
                seconds[steps].append(time.perf_counter() - started)
                histories[steps] = pd.read_csv(out / "history.csv").drop(columns="seconds")
    identical = histories[1].equals(histories[32])
    baseline, candidate = statistics.median(seconds[1]), statistics.median(seconds[32])
    print(f"steps_per_execution=1:  {baseline:.2f} s per {args.epochs}-epoch run (median of {args.repeats})")
    print(f"steps_per_execution=32: {candidate:.2f} s per {args.epochs}-epoch run")
    print(f"speed-up: {baseline / candidate:.2f}x; histories identical but for seconds: {identical}")


if __name__ == "__main__":
    main()
