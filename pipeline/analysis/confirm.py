"""The confirmation on fresh seeds: does the grid's recommendation hold on seeds it never saw?

The grid picks, per optimizer × schedule, the rate with the lowest mean best ``val_loss`` over
its seeds. That minimum is biased low (the winner's curse: among noisy means the lowest is
partly luck), and with two seeds the winner is often within the seeds' spread of the
runner-up. ``study.confirm`` settles it the way the tuning playbooks advise, by training again:

1. :func:`confirm_plan` (after the grid is aggregated) chooses what to retrain, per confirmed
   cell (every optimizer × schedule, or the best schedule of each optimizer with
   ``study.confirm.cells=best``): the recommended rate, the runner-up rate (second in
   ``best.csv``'s ranking, :func:`pipeline.analysis.aggregate.rate_table`) and the estimated
   optimum (``lr_estimate`` to 3 significant digits, where there is one). With hyperparameter
   searches, each method's chosen rate as well (:func:`pipeline.analysis.methods.method_comparison`:
   the grid's, each range-test suggestion's, each search's). Each is trained on every seed of
   ``study.confirm.seeds`` by the training jobs, in run folders under ``confirm/runs/``.
2. :func:`confirm_table` compares, per cell and fresh seed, the runner-up's loss with the
   recommended rate's (the same seed: a paired comparison) and writes ``confirm.csv``:

   - ``margin``: the mean over fresh seeds of (runner-up − recommended); positive means the
     recommendation held. ``margin_low``..``margin_high``: its 95% paired t-interval (Student's
     t with seeds − 1 degrees of freedom; :func:`paired_interval`).
   - ``verdict``: ``confirmed`` when the whole interval is above 0, ``overturned`` when it is
     below 0 (the runner-up is better), ``tie`` when it holds 0 (the two rates cannot be told
     apart on these seeds: either is a sound choice), ``no runner-up`` when the cell had none.
   - ``estimate_gain`` (with its interval): the mean of (recommended − estimated optimum), how
     much the estimate between grid points improved on the grid point.
   - ``grid_loss`` (the grid's mean at the recommended rate) beside ``lr_loss`` (the fresh
     seeds' mean at the same rate): the difference is the winner's curse, measured.

A run's loss here is its best ``val_loss``; a diverged run counts at its untrained loss
(``initial_loss``), as in the LR sensitivity: a rate that blows up on a fresh seed has given
its user nothing, and a paired comparison must not drop that seed.

Command lines::

    python -m pipeline.analysis.confirm plan --runs runs.csv --best best.csv --seeds 1000 1001 1002 \\
        [--cells all|best] [--trials hpo/*/trials.csv --finder finder_vs_grid.csv] --out confirm/plan.json
    python -m pipeline.analysis.confirm table --plan confirm/plan.json --manifests confirm/populations/*/*.json \\
        --best best.csv --runs-out confirm/runs.csv --out confirm.csv

Pure pandas, NumPy and SciPy (the t quantile): no TensorFlow import.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from pipeline.analysis.aggregate import rate_table, read_runs, run_dirs_from_manifests, write_table
from pipeline.config.rates import round_significant
from pipeline.io import write_json_atomic
from pipeline.tables import BEST, CONFIRM, FINDER_VS_GRID, RUNS, TRIALS, RunStatus, Verdict
from pipeline.values import is_finite

#: Significant digits of the estimated optimum when it is trained (the report shows three).
ESTIMATE_DIGITS = 3
#: The confidence of the paired interval.
CONFIDENCE = 0.95

#: Columns of ``runs.csv`` and ``best.csv`` read here.
RUNS_READ: List[str] = ["optimizer", "schedule", "lr", "seed", "status", "best_val_loss"]
BEST_READ: List[str] = ["optimizer", "schedule", "lr", "best_val_loss_mean", "lr_estimate"]


# --------------------------------------------------------------------------------------
# The plan: what to retrain
# --------------------------------------------------------------------------------------


def ranked_cells(best: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``best.csv`` with a finite mean (a cell where every rate diverged
    recommends nothing), lowest mean best ``val_loss`` first (ties by optimizer, schedule)."""
    finite = best[[is_finite(value) for value in best["best_val_loss_mean"]]]
    return finite.sort_values(["best_val_loss_mean", "optimizer", "schedule"], kind="stable")


def best_schedule_per_optimizer(best: pd.DataFrame) -> pd.DataFrame:
    """Each optimizer's best row of ``best.csv`` (:func:`ranked_cells`), the study's winner first."""
    return ranked_cells(best).groupby("optimizer", sort=False).head(1)


def confirmed_cells(best: pd.DataFrame, cells: str) -> pd.DataFrame:
    """The rows of ``best.csv`` to confirm: those with a finite mean, all of them
    (``cells="all"``) or the lowest of each optimizer (``"best"``), sorted by optimizer and
    schedule."""
    if cells == "best":
        finite = best_schedule_per_optimizer(best)
    elif cells == "all":
        finite = ranked_cells(best)
    else:
        raise ValueError(f"cells={cells!r}; valid: all, best")
    return finite.sort_values(["optimizer", "schedule"], kind="stable").reset_index(drop=True)


def runner_up_rate(group: pd.DataFrame, chosen_lr: float) -> Optional[float]:
    """The runner-up of one cell's runs: the best-ranked rate other than ``chosen_lr`` among
    those with a finite mean (``best.csv``'s ranking), or None."""
    ranked = rate_table(group)
    ranked = ranked[ranked["tier"] < 2]
    others = [float(rate) for rate in ranked.index if float(rate) != float(chosen_lr)]
    return others[0] if others else None


def trained_estimate(row: pd.Series) -> Optional[float]:
    """The rate at which a cell's estimated optimum is trained: ``lr_estimate`` to
    :data:`ESTIMATE_DIGITS` significant digits (as the report shows it), or None without one."""
    estimate = row.get("lr_estimate")
    return round_significant(float(estimate), ESTIMATE_DIGITS) if is_finite(estimate) else None


def confirm_plan(
    runs: pd.DataFrame,
    best: pd.DataFrame,
    seeds: Sequence[int],
    cells: str = "all",
    methods: Optional[pd.DataFrame] = None,
) -> Dict[str, Any]:
    """What the confirmation retrains (see the module doc), as JSON-able data.

    Args:
        runs: The grid's ``runs.csv``.
        best: Its ``best.csv``.
        seeds: ``study.confirm.seeds``.
        cells: ``study.confirm.cells``.
        methods: The method comparison (columns ``method``, ``optimizer``, ``schedule``,
            ``lr``), whose chosen rates are retrained too; None without searches.

    Returns:
        ``{"seeds": [...], "cells": [{optimizer, schedule, lr, runner_up_lr, estimate_lr}],
        "methods": [{method, optimizer, schedule, lr}], "members": [{optimizer, schedule,
        lr}]}``: the members are every distinct (optimizer, schedule, rate) of the cells and
        methods, sorted; each is trained on every seed. ``runner_up_lr`` and ``estimate_lr`` are
        null where a cell has no runner-up or no estimate.
    """
    RUNS.check(runs, RUNS_READ)
    BEST.check(best, BEST_READ)
    plan_cells: List[Dict[str, Any]] = []
    for _, row in confirmed_cells(best, cells).iterrows():
        optimizer, schedule = str(row["optimizer"]), str(row["schedule"])
        group = runs[(runs["optimizer"] == optimizer) & (runs["schedule"] == schedule)]
        plan_cells.append(
            {
                "optimizer": optimizer,
                "schedule": schedule,
                "lr": float(row["lr"]),
                "runner_up_lr": runner_up_rate(group, float(row["lr"])),
                "estimate_lr": trained_estimate(row),
            }
        )
    plan_methods: List[Dict[str, Any]] = []
    if methods is not None:
        for _, row in methods.iterrows():
            if is_finite(row["lr"]) and row["optimizer"] and row["schedule"]:
                plan_methods.append(
                    {"method": str(row["method"]), "optimizer": str(row["optimizer"]), "schedule": str(row["schedule"]), "lr": float(row["lr"])}
                )
    members = {
        (cell["optimizer"], cell["schedule"], float(rate))
        for cell in plan_cells
        for rate in (cell["lr"], cell["runner_up_lr"], cell["estimate_lr"])
        if rate is not None
    } | {(method["optimizer"], method["schedule"], method["lr"]) for method in plan_methods}
    return {
        "seeds": [int(seed) for seed in seeds],
        "cells": plan_cells,
        "methods": plan_methods,
        "members": [{"optimizer": optimizer, "schedule": schedule, "lr": lr} for optimizer, schedule, lr in sorted(members)],
    }


def plan_members(plan: Dict[str, Any], optimizer: str) -> List[List[Any]]:
    """The population members (``[schedule, seed, lr]``) of one optimizer's confirmation runs."""
    return [
        [member["schedule"], int(seed), float(member["lr"])]
        for member in plan["members"]
        if member["optimizer"] == optimizer
        for seed in plan["seeds"]
    ]


def confirm_row(confirm: Optional[pd.DataFrame], optimizer: str, schedule: str) -> Optional[pd.Series]:
    """The ``confirm.csv`` row of one cell, or None (no table, or the cell was not confirmed)."""
    if confirm is None:
        return None
    rows = confirm[(confirm["optimizer"] == optimizer) & (confirm["schedule"] == schedule)]
    return rows.iloc[0] if len(rows) else None


def plan_optimizers(plan: Dict[str, Any]) -> List[str]:
    """The optimizers with confirmation runs, sorted."""
    return sorted({member["optimizer"] for member in plan["members"]})


# --------------------------------------------------------------------------------------
# The verdicts
# --------------------------------------------------------------------------------------


def comparison_loss(runs: pd.DataFrame) -> pd.Series:
    """Each run's loss for the comparison: its best ``val_loss``; a diverged run, or one without
    a finite best, at its untrained loss (``initial_loss``), or NaN where that is unknown too."""
    best = pd.to_numeric(runs["best_val_loss"], errors="coerce").astype(float)
    usable = (runs["status"] == RunStatus.OK) & np.isfinite(best)
    untrained = pd.to_numeric(runs["initial_loss"], errors="coerce").astype(float) if "initial_loss" in runs else np.nan
    return best.where(usable, untrained)


def paired_interval(differences: Sequence[float], confidence: float = CONFIDENCE) -> Tuple[float, float, float]:
    """The mean of paired differences and its two-sided t-interval: ``(mean, low, high)``.

    Student's t with ``n - 1`` degrees of freedom (the paired t-test's interval); NaN bounds
    with fewer than two finite differences. Identical differences give a zero-width interval.
    """
    from scipy import stats

    values = np.asarray([value for value in differences if math.isfinite(value)], dtype=float)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)) * float(values.std(ddof=1)) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def verdict(low: float, high: float) -> Verdict:
    """``confirmed`` when the interval of (runner-up − recommended) lies above 0, ``overturned``
    below 0, ``tie`` when it holds 0 (or is unknown)."""
    if is_finite(low) and low > 0:
        return Verdict.CONFIRMED
    if is_finite(high) and high < 0:
        return Verdict.OVERTURNED
    return Verdict.TIE


def losses_by_seed(runs: pd.DataFrame, optimizer: str, schedule: str, lr: Optional[float]) -> pd.Series:
    """The comparison loss (:func:`comparison_loss`) per seed of the runs of one optimizer,
    schedule and rate (matched to 12 significant digits); empty for None."""
    if lr is None or not is_finite(lr):
        return pd.Series(dtype=float)
    chosen = runs[(runs["optimizer"] == optimizer) & (runs["schedule"] == schedule) & np.isclose(runs["lr"], lr, rtol=1e-12, atol=0)]
    return pd.Series(comparison_loss(chosen).to_numpy(), index=chosen["seed"].astype(int).to_numpy())


def _paired(first: pd.Series, second: pd.Series) -> Tuple[float, float, float]:
    """``paired_interval`` of (first − second) over the seeds both have."""
    seeds = first.index.intersection(second.index)
    return paired_interval((first[seeds] - second[seeds]).tolist())


def _mean(losses: pd.Series) -> float:
    return float(losses.mean()) if len(losses) else math.nan


def confirm_table(plan: Dict[str, Any], fresh_runs: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """``confirm.csv``: one row per cell of the plan (columns of :data:`pipeline.tables.CONFIRM`).

    Args:
        plan: From :func:`confirm_plan`.
        fresh_runs: The confirmation runs (``confirm/runs.csv``): optimizer, schedule, lr,
            seed, status, best_val_loss, initial_loss.
        best: The grid's ``best.csv`` (for ``grid_loss``).
    """
    rows = []
    for cell in plan["cells"]:
        optimizer, schedule = cell["optimizer"], cell["schedule"]
        chosen = losses_by_seed(fresh_runs, optimizer, schedule, cell["lr"])
        runner = losses_by_seed(fresh_runs, optimizer, schedule, cell["runner_up_lr"])
        estimate = losses_by_seed(fresh_runs, optimizer, schedule, cell["estimate_lr"])
        margin, low, high = _paired(runner, chosen) if cell["runner_up_lr"] is not None else (math.nan,) * 3
        gain, gain_low, gain_high = _paired(chosen, estimate) if cell["estimate_lr"] is not None else (math.nan,) * 3
        grid = best[(best["optimizer"] == optimizer) & (best["schedule"] == schedule)]["best_val_loss_mean"]
        rows.append(
            {
                "optimizer": optimizer,
                "schedule": schedule,
                "lr": cell["lr"],
                "runner_up_lr": cell["runner_up_lr"] if cell["runner_up_lr"] is not None else math.nan,
                "estimate_lr": cell["estimate_lr"] if cell["estimate_lr"] is not None else math.nan,
                "seeds": int(len(chosen)),
                "grid_loss": float(grid.iloc[0]) if len(grid) else math.nan,
                "lr_loss": _mean(chosen),
                "runner_up_loss": _mean(runner),
                "estimate_loss": _mean(estimate),
                "margin": margin,
                "margin_low": low,
                "margin_high": high,
                "verdict": str(verdict(low, high) if cell["runner_up_lr"] is not None else Verdict.NO_RUNNER_UP),
                "estimate_gain": gain,
                "estimate_gain_low": gain_low,
                "estimate_gain_high": gain_high,
            }
        )
    return CONFIRM.typed(pd.DataFrame(rows, columns=CONFIRM.columns))


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def _plan_command(args: argparse.Namespace) -> None:
    from pipeline.analysis.methods import method_comparison

    runs, best = RUNS.read(args.runs), BEST.read(args.best)
    methods = None
    if args.trials:
        finder = FINDER_VS_GRID.read(args.finder) if args.finder is not None else None
        methods = method_comparison(runs, best, [TRIALS.read(path) for path in args.trials], finder)
    plan = confirm_plan(runs, best, args.seeds, args.cells, methods)
    write_json_atomic(args.out, plan)
    print(f"{len(plan['members'])} rates of {len(plan['cells'])} cells and {len(plan['methods'])} methods on seeds {plan['seeds']}")


def _table_command(args: argparse.Namespace) -> None:
    plan = json.loads(Path(args.plan).read_text())
    runs, _ = read_runs(run_dirs_from_manifests(args.manifests))
    write_table(RUNS, runs, args.runs_out)
    table = confirm_table(plan, runs, BEST.read(args.best))
    write_table(CONFIRM, table, args.out)
    counts = table["verdict"].value_counts().to_dict()
    print(f"{len(runs)} confirmation runs; verdicts: {counts or 'none'}")


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point: ``python -m pipeline.analysis.confirm plan|table ...``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.analysis.confirm", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="choose the rates to retrain on fresh seeds")
    plan.add_argument("--runs", type=Path, required=True, help="runs.csv of the grid")
    plan.add_argument("--best", type=Path, required=True, help="best.csv of the grid")
    plan.add_argument("--seeds", type=int, nargs="+", required=True, help="the fresh seeds (study.confirm.seeds)")
    plan.add_argument("--cells", choices=("all", "best"), default="all", help="study.confirm.cells")
    plan.add_argument("--trials", type=Path, nargs="*", default=[], help="trials.csv of each search")
    plan.add_argument("--finder", type=Path, default=None, help="finder_vs_grid.csv (with --trials)")
    plan.add_argument("--out", type=Path, required=True, help="the plan (JSON)")
    plan.set_defaults(run=_plan_command)
    table = commands.add_parser("table", help="the verdicts from the confirmation runs")
    table.add_argument("--plan", type=Path, required=True)
    table.add_argument("--manifests", type=Path, nargs="*", default=[], help="the confirmation jobs' manifests")
    table.add_argument("--best", type=Path, required=True, help="best.csv of the grid")
    table.add_argument("--runs-out", type=Path, required=True, help="the confirmation runs' table (runs.csv format)")
    table.add_argument("--out", type=Path, required=True, help="confirm.csv")
    table.set_defaults(run=_table_command)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
