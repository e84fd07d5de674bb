"""Benchmark: the population engine against the per-run engine and a plain ``model.fit`` loop.

Trains the same runs (one optimizer; the chosen schedules, seeds and the study's grid rates) three
ways in one process, one after the other, on the study's dataset and model:

- ``population``: :func:`pipeline.training.population.train_population`, all runs as one program
  (building and tracing included);
- ``per_run``: :func:`pipeline.training.run.train_run` for each run (today's cohort jobs; state
  saved every epoch, as in the workflow);
- ``fit loop``: what a user would write by hand: per run, seed, build, compile, ``model.fit`` with
  validation and Keras' shuffle, no bookkeeping (``resume_overhead.keras_shuffle_run``).

It prints the wall time of each and the ratios against ``population``, then how the two
engines agree: the recommended rate (lowest mean best val_loss over seeds) per schedule, the
largest relative difference of the first-epoch losses at rates that did not diverge, the share
of runs whose fit label (the study's diagnosis) is equal, and every disagreement.

    python benchmarks/population.py                       # MNIST-1D MLP, adam, 2 schedules
    python benchmarks/population.py --model cnn --epochs 10
    python benchmarks/population.py --schedules constant step exponential cosine warmup_constant warmup_cosine
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import pandas as pd


def tables(folders: List[Path], study: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs table with fit labels, as the aggregate rule makes it, and the curves table."""
    from pipeline.analysis.aggregate import read_runs
    from pipeline.analysis.diagnosis import diagnose_runs

    runs, curves = read_runs(folders)
    return diagnose_runs(runs, curves, study.diagnosis), curves


def recommended(runs: pd.DataFrame) -> Dict[str, float]:
    means = runs[runs["status"] == "ok"].groupby(["schedule", "lr"])["best_val_loss"].mean().reset_index()
    return {schedule: float(group.loc[group["best_val_loss"].idxmin(), "lr"]) for schedule, group in means.groupby("schedule")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mlp", help="model option (conf/model/)")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--schedules", nargs="+", default=["constant", "cosine"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads (a training job's)")
    parser.add_argument("--skip-fit-loop", action="store_true", help="time only the two engines")
    args = parser.parse_args()

    from pipeline.config.compose import compose_study
    from pipeline.training.data import build_dataset
    from pipeline.training.device import configure_tensorflow

    device = configure_tensorflow(threads=args.threads)
    from pipeline.training.population import train_population
    from pipeline.training.run import train_run

    overrides = [
        f"model={args.model}",
        f"optimizer=[{args.optimizer}]",
        f"schedule=[{','.join(args.schedules)}]",
        f"study.seeds=[{','.join(map(str, args.seeds))}]",
        f"study.epochs={args.epochs}",
    ]
    studies = {engine: compose_study([*overrides, f"study.engine={engine}"]) for engine in ("population", "per_run")}
    arrays = build_dataset(studies["population"].dataset)
    members = [
        (schedule, seed, lr) for schedule in args.schedules for seed in args.seeds for lr in studies["population"].rates
    ]
    print(f"{len(members)} runs: {args.model}, {args.optimizer}, schedules {args.schedules}, seeds {args.seeds}, "
          f"{len(studies['population'].rates)} rates, {args.epochs} epochs, {args.threads} thread(s), {device}", flush=True)  # fmt: skip
    seconds: Dict[str, float] = {}
    folders: Dict[str, List[Path]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for engine in ("population", "per_run"):
            configs = [studies[engine].run_config(args.optimizer, *member) for member in members]
            folders[engine] = [Path(scratch) / engine / f"{schedule}-{seed}-{lr}" for schedule, seed, lr in members]
            started = time.perf_counter()
            if engine == "population":
                train_population(configs, arrays, folders[engine], device)
            else:
                for config, folder in zip(configs, folders[engine]):
                    train_run(config, arrays, folder, device, resumable=True)
            seconds[engine] = time.perf_counter() - started
            print(f"{engine}: {seconds[engine]:.1f} s", flush=True)
        if not args.skip_fit_loop:
            from resume_overhead import keras_shuffle_run  # benchmarks/, beside this script

            started = time.perf_counter()
            for member in members:
                keras_shuffle_run(studies["per_run"].run_config(args.optimizer, *member), arrays)
            seconds["fit loop"] = time.perf_counter() - started
            print(f"fit loop: {seconds['fit loop']:.1f} s", flush=True)
        read = {engine: tables(folders[engine], studies[engine]) for engine in folders}
    runs = {engine: table for engine, (table, _) in read.items()}
    curves = {engine: table[table["epoch"] == 1] for engine, (_, table) in read.items()}

    member_epochs = len(members) * args.epochs
    print("\nwall time (ratio to population; ms per member-epoch):")
    for engine, value in seconds.items():
        print(f"  {engine:10s} {value:8.1f} s  {value / seconds['population']:5.2f}x  {1000 * value / member_epochs:6.1f} ms")

    keys = ["schedule", "seed", "lr"]
    merged = runs["population"].merge(runs["per_run"], on=keys, suffixes=("_population", "_per_run"))
    assert len(merged) == len(members)
    picks = {engine: recommended(table) for engine, table in runs.items()}
    print("\nrecommended rate per schedule (population / per_run):")
    for schedule in args.schedules:
        mark = "" if picks["population"].get(schedule) == picks["per_run"].get(schedule) else "   DIFFERENT"
        print(f"  {schedule:16s} {picks['population'].get(schedule)} / {picks['per_run'].get(schedule)}{mark}")
    first = curves["population"].merge(curves["per_run"], on=keys, suffixes=("_population", "_per_run"))
    ok = merged[(merged["status_population"] == "ok") & (merged["status_per_run"] == "ok")][keys]
    first = first.merge(ok, on=keys)
    relative = (first["loss_population"] - first["loss_per_run"]).abs() / first["loss_per_run"].abs()
    print(f"\nfirst-epoch loss, largest relative difference over {len(first)} runs that did not diverge: {relative.max():.2e}")
    equal = merged["fit_population"] == merged["fit_per_run"]
    print(f"fit labels equal: {equal.mean():.1%} of {len(merged)} runs")
    same_status = merged["status_population"] == merged["status_per_run"]
    differ = merged[~equal | ~same_status]
    for row in differ.itertuples(index=False):
        print(f"  differs: {row.schedule} seed {row.seed} lr {row.lr}: fit {row.fit_population} / {row.fit_per_run}, "
              f"status {row.status_population} / {row.status_per_run}")  # fmt: skip
    if differ.empty:
        print("  no disagreement")


if __name__ == "__main__":
    main()
