"""Tidy tables from run folders: ``runs.csv``, ``curves.csv`` and ``best.csv``.

- ``runs.csv``: one row per run (diverged runs included, never dropped).
- ``curves.csv``: one row per run and epoch: the history rows plus optimizer, schedule,
  ``lr`` (the grid rate) and seed; the rate in force at each epoch's end is ``current_lr``.
- ``best.csv``: per optimizer × schedule, the recommended grid rate: the lowest mean
  ``best_val_loss`` over seeds. A rate at which any seed diverged is not recommended unless
  every rate had a diverged seed. Standard deviations are the sample standard deviation
  over seeds (ddof=1), 0 for a single seed (as in the sensitivity figure). ``at_edge`` is true where the rate is the smallest (``edge`` = low) or largest
  (``edge`` = high) rate tried: the grid should be widened that way.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Iterable, List, Tuple

import numpy as np
import pandas as pd

from pipeline.io import write_atomic
from pipeline.train import HISTORY_COLUMNS

RUN_COLUMNS = [
    "optimizer", "schedule", "lr", "seed", "status", "best_val_loss", "best_val_accuracy", "best_epoch",
    "final_loss", "final_val_loss", "final_val_accuracy", "diverged_epoch", "epochs_run", "steps",
    "val_accuracy_at_best", "seconds", "run_dir",
]  # fmt: skip
CURVE_KEYS = ["optimizer", "schedule", "lr", "seed"]
BEST_COLUMNS = [
    "optimizer", "schedule", "lr", "best_val_loss_mean", "best_val_loss_std", "best_val_accuracy_mean",
    "best_val_accuracy_std", "seeds", "diverged_fraction", "at_edge", "edge",
]  # fmt: skip


def read_runs(run_dirs: Iterable[Path]) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """The runs and curves tables of the given run folders."""
    run_rows, curves = [], []
    for directory in run_dirs:
        directory = Path(directory)
        summary = json.loads((directory / "summary.json").read_text())
        run_rows.append({**{key: summary.get(key) for key in RUN_COLUMNS}, "run_dir": str(directory)})
        history = pd.read_csv(directory / "history.csv").rename(columns={"lr": "current_lr"})
        for key in CURVE_KEYS:
            history.insert(CURVE_KEYS.index(key), key, summary[key])
        curves.append(history)
    runs = pd.DataFrame(run_rows, columns=RUN_COLUMNS)
    for column in ("best_epoch", "diverged_epoch"):
        runs[column] = runs[column].astype("Int64")
    runs = runs.sort_values(["optimizer", "schedule", "lr", "seed"], kind="stable").reset_index(drop=True)
    empty_curves = pd.DataFrame(columns=[*CURVE_KEYS, "epoch", "current_lr", *HISTORY_COLUMNS[2:]])
    curves_table = pd.concat(curves, ignore_index=True) if curves else empty_curves
    curves_table = curves_table.sort_values([*CURVE_KEYS, "epoch"], kind="stable").reset_index(drop=True)
    return runs, curves_table


def seed_std(values: pd.Series) -> float:
    """Sample standard deviation over seeds; 0 for one seed (no spread was observed)."""
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def best_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per optimizer × schedule: the recommended grid rate (rule in the module doc)."""
    rows = []
    for (optimizer, schedule), group in runs.groupby(["optimizer", "schedule"], sort=True):
        per_rate = group.groupby("lr", sort=True).agg(
            best_val_loss_mean=("best_val_loss", "mean"),
            best_val_loss_std=("best_val_loss", seed_std),
            best_val_accuracy_mean=("best_val_accuracy", "mean"),
            best_val_accuracy_std=("best_val_accuracy", seed_std),
            seeds=("seed", "nunique"),
            diverged=("status", lambda statuses: int((statuses == "diverged").sum())),
        )
        candidates = per_rate[(per_rate["diverged"] == 0) & np.isfinite(per_rate["best_val_loss_mean"])]
        if candidates.empty:
            candidates = per_rate[np.isfinite(per_rate["best_val_loss_mean"])]
        rates = per_rate.index.to_list()
        if candidates.empty:  # every run of this optimizer × schedule diverged in its first epoch
            chosen_lr, chosen = rates[0], per_rate.iloc[0]
        else:
            chosen_lr = float(candidates["best_val_loss_mean"].idxmin())
            chosen = per_rate.loc[chosen_lr]
        edge = "low" if chosen_lr == rates[0] else "high" if chosen_lr == rates[-1] else ""
        if len(rates) == 1:
            edge = "low"  # a single rate is both edges: widen in both directions
        rows.append(
            {
                "optimizer": optimizer,
                "schedule": schedule,
                "lr": chosen_lr,
                "best_val_loss_mean": chosen["best_val_loss_mean"],
                "best_val_loss_std": chosen["best_val_loss_std"],
                "best_val_accuracy_mean": chosen["best_val_accuracy_mean"],
                "best_val_accuracy_std": chosen["best_val_accuracy_std"],
                "seeds": int(chosen["seeds"]),
                "diverged_fraction": float((group["status"] == "diverged").mean()),
                "at_edge": bool(edge),
                "edge": edge,
            }
        )
    return pd.DataFrame(rows, columns=BEST_COLUMNS)


def write_csv(table: pd.DataFrame, path: Path) -> None:
    write_atomic(path, lambda temporary: table.to_csv(temporary, index=False))


def run_dirs_from_manifests(manifests: Iterable[Path]) -> List[Path]:
    return [Path(entry["run_dir"]) for manifest in manifests for entry in json.loads(Path(manifest).read_text())["runs"]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Aggregate run folders into tidy tables.")
    parser.add_argument("--manifests", nargs="+", required=True, type=Path, help="cohort manifests (training outputs)")
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--curves", required=True, type=Path)
    parser.add_argument("--best", required=True, type=Path)
    args = parser.parse_args(argv)
    runs, curves = read_runs(run_dirs_from_manifests(args.manifests))
    write_csv(runs, args.runs)
    write_csv(curves, args.curves)
    write_csv(best_rates(runs), args.best)
    print(f"{len(runs)} runs ({int((runs['status'] == 'diverged').sum())} diverged), {len(curves)} epoch rows")


if __name__ == "__main__":
    main()
