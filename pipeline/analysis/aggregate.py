"""Tidy tables from run folders: ``runs.csv``, ``curves.csv`` and ``best.csv``.

- ``runs.csv``: one row per run (diverged runs included, never dropped).
- ``curves.csv``: one row per run and epoch: the history rows plus optimizer, schedule,
  ``lr`` (the grid rate) and seed; the rate in force at each epoch's end is ``current_lr``.
- ``best.csv``: per optimizer × schedule, the recommended grid rate: the lowest mean
  ``best_val_loss`` over seeds. A rate at which any seed diverged is not recommended unless
  every rate had a diverged seed. Standard deviations are the sample standard deviation
  over seeds (ddof=1), 0 for a single seed (as in the sensitivity figure). ``at_edge`` is
  true where the rate is the smallest (``edge`` = low) or largest (``edge`` = high) rate
  tried: the grid should be widened that way. ``fit`` is the majority fit label of the
  seeds at that rate (:func:`pipeline.analysis.diagnosis.fit_of_cell`). ``lr_estimate``
  (``lr_low``..``lr_high``, or the reason for none in ``estimate_note``) is the estimated
  optimum between grid points, and ``lr_sensitivity`` how much a badly chosen rate costs
  (:mod:`pipeline.analysis.optimum`).

With ``--diagnosis`` (the study's thresholds as JSON), runs.csv also carries each run's fit
label and the numbers behind it (:mod:`pipeline.analysis.diagnosis`).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Iterable, List, Tuple

import numpy as np
import pandas as pd

from pipeline.io import write_atomic
from pipeline.tables import BEST, CURVES, FLOAT, HISTORY, NULLABLE_INT, RUN_KEYS, RUN_SUMMARY_COLUMNS, RUNS, RunStatus, TableSchema
from pipeline.values import std_over_seeds

CURVE_KEYS = RUN_KEYS


def read_runs(run_dirs: Iterable[Path]) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """The runs and curves tables of the given run folders."""
    run_rows, curves = [], []
    for directory in run_dirs:
        directory = Path(directory)
        summary = json.loads((directory / "summary.json").read_text())
        run_rows.append({**{key: summary.get(key) for key in RUN_SUMMARY_COLUMNS}, "run_dir": str(directory)})
        history = HISTORY.read(directory / "history.csv").rename(columns={"lr": "current_lr"})
        for key in CURVE_KEYS:
            history.insert(CURVE_KEYS.index(key), key, summary[key])
        curves.append(history)
    runs = pd.DataFrame(run_rows, columns=RUN_SUMMARY_COLUMNS)
    # Integers that a run may lack (no best epoch, never diverged, never resumed): Int64, not float.
    runs = runs.astype({column: NULLABLE_INT for column in RUN_SUMMARY_COLUMNS if RUNS.dtypes[column] == NULLABLE_INT})
    runs = runs.sort_values(["optimizer", "schedule", "lr", "seed"], kind="stable").reset_index(drop=True)
    curves_table = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVES.columns)
    curves_table = curves_table.sort_values([*CURVE_KEYS, "epoch"], kind="stable").reset_index(drop=True)
    return runs, curves_table


def rate_table(group: pd.DataFrame) -> pd.DataFrame:
    """One optimizer × schedule's runs summarised per grid rate, ranked best first.

    The rank follows the recommendation rule: rates at which no seed diverged come first,
    by mean ``best_val_loss``; rates with a diverged seed (or no finite loss) follow.
    """
    columns = {
        "best_val_loss_mean": ("best_val_loss", "mean"),
        "best_val_loss_std": ("best_val_loss", std_over_seeds),
        "best_val_accuracy_mean": ("best_val_accuracy", "mean"),
        "best_val_accuracy_std": ("best_val_accuracy", std_over_seeds),
        # best_epoch is Int64: as float, a run without a best epoch is NaN and the mean skips it.
        "best_epoch_mean": ("best_epoch", lambda epochs: float(epochs.astype(FLOAT).mean())),
        "seeds": ("seed", "nunique"),
        "diverged": ("status", lambda statuses: int((statuses == RunStatus.DIVERGED).sum())),
    }
    # Ranking needs only lr, seed, status and best_val_loss; the other summaries come when present.
    per_rate = group.groupby("lr", sort=True).agg(
        **{name: spec for name, spec in columns.items() if spec[0] in group.columns}
    )
    clean = (per_rate["diverged"] == 0) & np.isfinite(per_rate["best_val_loss_mean"])
    finite = np.isfinite(per_rate["best_val_loss_mean"])
    per_rate["tier"] = np.where(clean, 0, np.where(finite, 1, 2))
    return per_rate.sort_values(["tier", "best_val_loss_mean"], kind="stable", na_position="last")


def best_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per optimizer × schedule: the recommended grid rate (rule in the module doc)."""
    from pipeline.analysis.diagnosis import fit_of_cell
    from pipeline.analysis.optimum import estimate_optimum, lr_sensitivity

    rows = []
    for (optimizer, schedule), group in runs.groupby(["optimizer", "schedule"], sort=True):
        ranked = rate_table(group)
        rates = sorted(ranked.index)
        chosen_lr = float(ranked.index[0]) if ranked["tier"].iloc[0] < 2 else rates[0]
        chosen = ranked.loc[chosen_lr]
        edge = "low" if chosen_lr == rates[0] else "high" if chosen_lr == rates[-1] else ""
        at_rate = group[group["lr"] == chosen_lr]
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
                "diverged_fraction": float((group["status"] == RunStatus.DIVERGED).mean()),
                # A single rate is both edges; "low" asks to widen it (both ways, in practice).
                "at_edge": bool(edge),
                "edge": edge,
                "fit": fit_of_cell(at_rate["fit"]) if "fit" in at_rate else "",
                "best_epoch_mean": chosen["best_epoch_mean"],
                **estimate_optimum(group, chosen_lr),
                "lr_sensitivity": lr_sensitivity(group) if {"final_val_loss", "initial_loss"} <= set(group.columns) else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=BEST.columns)


def write_table(schema: TableSchema, table: pd.DataFrame, path: Path) -> None:
    """Write a study table atomically, in its schema's format."""
    write_atomic(path, lambda temporary: schema.write(table, temporary))


def run_dirs_from_manifests(manifests: Iterable[Path]) -> List[Path]:
    """The run folders the training jobs' manifests list, each checked first
    (:func:`pipeline.training.folders.check_run_folders`): a damaged or missing folder stops the
    table with one line per folder, naming it and how to retrain it, never a traceback."""
    from pipeline.training.folders import DamagedRuns, check_run_folders, manifest_entries

    entries = []
    for manifest in manifests:
        listed = manifest_entries(Path(manifest))
        if listed is None:
            raise SystemExit(f"{manifest}: not a readable training manifest; start the workflow again to rewrite it")
        entries.extend(listed)
    try:
        check_run_folders(entries)
    except DamagedRuns as error:
        raise SystemExit(str(error)) from None
    return [Path(entry["run_dir"]) for entry in entries]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Aggregate run folders into tidy tables.")
    parser.add_argument("--manifests", nargs="+", required=True, type=Path, help="cohort manifests (training outputs)")
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--curves", required=True, type=Path)
    parser.add_argument("--best", required=True, type=Path)
    parser.add_argument("--diagnosis", default=None, help="diagnosis thresholds as JSON (DiagnosisConfig fields)")
    args = parser.parse_args(argv)
    runs, curves = read_runs(run_dirs_from_manifests(args.manifests))
    if args.diagnosis is not None:
        from pipeline.config.schema import DiagnosisConfig
        from pipeline.analysis.diagnosis import diagnose_runs

        runs = diagnose_runs(runs, curves, DiagnosisConfig(**json.loads(args.diagnosis)))
    write_table(RUNS, runs, args.runs)
    write_table(CURVES, curves, args.curves)
    write_table(BEST, best_rates(runs), args.best)
    print(f"{len(runs)} runs ({int((runs['status'] == RunStatus.DIVERGED).sum())} diverged), {len(curves)} epoch rows")


if __name__ == "__main__":
    main()
