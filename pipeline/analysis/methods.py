"""Which way of finding the rate paid off: the grid, the LR range test and each search, side by side.

The study can find a learning rate three ways: the grid (every rate × seed trained to the
end), the LR range test (one short ramp, confirmed by training at the grid rate nearest its
suggestion) and hyperparameter searches (Optuna samplers, with or without pruning, each a
``trials.csv``). :func:`method_comparison` asks of each the same questions over the whole
study: what is the lowest validation loss it found, which rate it chose, what it cost in
trainings, epochs and seconds, and how much of that it had spent when it *first* came within
1% of the grid's best validation loss.

The grid's best is the lowest ``best_val_loss`` of the grid's ``ok`` runs: the target every
method is measured against. When the study ran with ``study.grid.mode=finder`` the grid is the
finder-centred one; the comparison does not need to know.

No TensorFlow, Keras or Optuna import here: this is a light job on the CSV files alone.

Command line::

    python -m pipeline.analysis.methods --runs runs.csv --best best.csv \\
        --trials hpo/random/trials.csv hpo/tpe/trials.csv \\
        [--finder finder_vs_grid.csv] [--fresh-runs confirm/runs.csv] --out methods.csv
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from pipeline.analysis.confirm import losses_by_seed
from pipeline.analysis.finder_vs_grid import SUGGESTION_KINDS
from pipeline.io import write_atomic
from pipeline.tables import BEST, FINDER_VS_GRID, METHODS, RUNS, TRIALS, RunStatus, TrialState
from pipeline.values import numeric

#: "Within 1%": a validation loss at most ``(1 + TOLERANCE)`` × the grid's best.
TOLERANCE = 0.01

#: Columns of ``runs.csv``, ``best.csv``, ``trials.csv`` and ``finder_vs_grid.csv`` read here.
RUNS_READ: List[str] = ["optimizer", "schedule", "lr", "seed", "status", "best_val_loss", "epochs_run", "seconds"]
BEST_READ: List[str] = ["optimizer", "schedule", "lr", "best_val_loss_mean"]
TRIALS_READ: List[str] = [
    "search", "trial", "state", "lr", "optimizer", "schedule", "best_val_loss", "epochs_run", "seconds", "status",
]  # fmt: skip
FINDER_READ: List[str] = ["optimizer", "schedule", "suggestion", "nearest_grid_lr", "nearest_val_loss"]

#: The grid's natural order: rates ascending, then seeds, then the cells (what a sweep runs
#: first); also the order in which a suggestion's confirming runs are counted.
GRID_ORDER: List[str] = ["lr", "seed", "optimizer", "schedule"]


def grid_best_val_loss(runs: pd.DataFrame) -> float:
    """The grid's best: the lowest finite ``best_val_loss`` of its ``ok`` runs (NaN with none).

    A diverged run's best value is only its best epoch before the blow-up, so it is no result
    a user could keep.
    """
    return _lowest(_candidate_losses(runs))


def within_threshold(best: float) -> float:
    """The highest validation loss that counts as within 1% of ``best`` (NaN stays NaN).

    ``best + 1% of |best|``, so the rule holds for a (hypothetical) negative loss too.
    """
    return best + TOLERANCE * abs(best)


def _lowest(losses: pd.Series) -> float:
    finite = losses[np.isfinite(losses)]
    return float(finite.min()) if len(finite) else math.nan


def _candidate_losses(runs: pd.DataFrame) -> pd.Series:
    """``best_val_loss`` of the runs whose loss is a result (status ``ok``), NaN elsewhere."""
    losses = numeric(runs["best_val_loss"])
    return losses.where((runs["status"] == RunStatus.OK).to_numpy() & np.isfinite(losses.to_numpy()))


def _cost_to_reach(ordered: pd.DataFrame, losses: pd.Series, threshold: float) -> tuple[float, float]:
    """Cumulative epochs and seconds up to and including the first run with a loss ≤ ``threshold``.

    Args:
        ordered: The method's runs in the order they count, with ``epochs_run`` and
            ``seconds`` (missing counts as 0: a failed run recorded nothing).
        losses: The candidate loss of each run (NaN where the run cannot count), same index.
        threshold: From :func:`within_threshold`.

    Returns:
        ``(epochs, seconds)``; ``(NaN, NaN)`` when no run reaches the threshold.
    """
    hit = np.flatnonzero((losses <= threshold).to_numpy())
    if hit.size == 0:
        return math.nan, math.nan
    upto = ordered.iloc[: hit[0] + 1]
    return float(numeric(upto["epochs_run"]).fillna(0).sum()), float(numeric(upto["seconds"]).fillna(0).sum())


def _method_row(
    method: str,
    ordered: pd.DataFrame,
    losses: pd.Series,
    choice: Optional[Dict[str, Any]],
    threshold: float,
) -> Dict[str, Any]:
    """One row of the comparison from a method's runs (in counting order) and its choice."""
    epochs_to, seconds_to = _cost_to_reach(ordered, losses, threshold)
    choice = choice or {}
    return {
        "method": method,
        "best_val_loss": _lowest(losses),
        "lr": float(choice.get("lr", math.nan)),
        "optimizer": choice.get("optimizer", ""),
        "schedule": choice.get("schedule", ""),
        "runs": len(ordered),
        "epochs": int(round(float(numeric(ordered["epochs_run"]).fillna(0).sum()))),
        "seconds": float(numeric(ordered["seconds"]).fillna(0).sum()),
        "epochs_to_within_1pct": epochs_to,
        "seconds_to_within_1pct": seconds_to,
        "reached": not math.isnan(epochs_to),
    }


def _choice(row: pd.Series, lr_column: str) -> Dict[str, Any]:
    return {"lr": float(row[lr_column]), "optimizer": row["optimizer"], "schedule": row["schedule"]}


def _lowest_row(frame: pd.DataFrame, column: str) -> Optional[pd.Series]:
    """The first row with the lowest finite ``column``; None when no value is finite."""
    values = numeric(frame[column])
    finite = values[np.isfinite(values)]
    if finite.empty:
        return None
    return frame.loc[finite.idxmin()]


def _grid_row(runs: pd.DataFrame, best: pd.DataFrame, threshold: float) -> Dict[str, Any]:
    ordered = runs.sort_values(GRID_ORDER, kind="stable").reset_index(drop=True)
    cells = best.sort_values(["optimizer", "schedule"], kind="stable").reset_index(drop=True)
    chosen = _lowest_row(cells, "best_val_loss_mean")
    choice = _choice(chosen, "lr") if chosen is not None else None
    return _method_row("grid", ordered, _candidate_losses(ordered), choice, threshold)


def _finder_row(kind: str, rows: pd.DataFrame, runs: pd.DataFrame, threshold: float) -> Dict[str, Any]:
    """The row of suggestion ``kind``: the grid runs at the grid rate nearest it, per cell."""
    cells = rows[np.isfinite(numeric(rows["nearest_grid_lr"]))]
    keys = {(row["optimizer"], row["schedule"], float(row["nearest_grid_lr"])) for _, row in cells.iterrows()}
    at_nearest = [(optimizer, schedule, lr) in keys for optimizer, schedule, lr in zip(runs["optimizer"], runs["schedule"], runs["lr"])]
    ordered = runs[at_nearest].sort_values(GRID_ORDER, kind="stable").reset_index(drop=True)
    chosen = _lowest_row(cells.reset_index(drop=True), "nearest_val_loss")
    choice = _choice(chosen, "nearest_grid_lr") if chosen is not None else None
    return _method_row(f"finder_{kind}", ordered, _candidate_losses(ordered), choice, threshold)


def _search_row(search: str, trials: pd.DataFrame, threshold: float) -> Dict[str, Any]:
    """The row of one search: its trials in trial order; only complete ``ok`` trials are results."""
    ordered = trials.sort_values("trial", kind="stable").reset_index(drop=True)
    complete = (ordered["state"] == TrialState.COMPLETE).to_numpy()
    losses = _candidate_losses(ordered).where(complete)
    chosen = _lowest_row(ordered.assign(_loss=losses), "_loss")
    choice = _choice(chosen, "lr") if chosen is not None else None
    return _method_row(search, ordered, losses, choice, threshold)


def method_comparison(
    runs: pd.DataFrame,
    best: pd.DataFrame,
    trials: Sequence[pd.DataFrame],
    finder: Optional[pd.DataFrame] = None,
) -> pd.DataFrame:
    """The grid, each LR range test suggestion and each search, compared on the whole study.

    One row per method, in this order: ``grid``; ``finder_<suggestion>`` for each suggestion
    kind of the finder table (``valley``, ``slide``, ``minimum``, ``steep``); one row per search (the
    ``search`` column of the trials, e.g. ``random``, ``tpe``, ``tpe_median``), by name.

    What each method found and chose:

    * ``best_val_loss``: the lowest ``best_val_loss`` among the method's results: ``ok`` runs
      for the grid and the finder, complete ``ok`` trials for a search. A diverged run's best
      is only the epoch before its blow-up, and a pruned trial was cut short and is never the
      search's answer (Optuna's best trial is a complete one), so neither counts;
    * ``lr``, ``optimizer``, ``schedule``: the choice the method hands its user. The grid's is
      the ``best.csv`` row with the lowest mean over seeds (the study's recommendation rule);
      a suggestion's is the grid rate nearest it (``nearest_grid_lr``) in the optimizer ×
      schedule whose ``nearest_val_loss`` (mean over seeds) is lowest; a search's is its trial
      with the lowest ``best_val_loss`` (one seed per trial, as the search saw it). The search
      picks optimizer and schedule itself where it searched them.

    What it cost:

    * ``runs``, ``epochs``, ``seconds``: trainings, epochs and training seconds in all. For
      the grid, all its runs (diverged ones included). For a suggestion, the range test's own
      cost is not in these files, so the cost is that of *confirming* it: the grid runs (every
      seed) at the nearest grid rate of each optimizer × schedule it was compared in. For a
      search, every trial: pruned trials count the epochs they ran before they were stopped,
      failed trials what they recorded (nothing, when missing);
    * ``epochs_to_within_1pct``, ``seconds_to_within_1pct``: epochs and seconds spent up to and
      including the first result within 1% of the grid's best (:func:`within_threshold`);
      NaN, with ``reached`` False, if none is. A search's trials count in trial-number order
      (the order the sampler proposed them; with parallel workers that is close to, not
      exactly, the order they finished). The grid and a suggestion's confirming runs count in
      the grid's natural order, :data:`GRID_ORDER`: rates ascending, then seeds, then
      optimizer × schedule.

    Args:
        runs: One row per grid run (``runs.csv``).
        best: The grid's recommended rate per optimizer × schedule (``best.csv``).
        trials: The ``trials.csv`` of each search (one or more searches per frame).
        finder: The LR range test against the grid (``finder_vs_grid.csv``); None for no
            finder rows.

    Returns:
        The table, columns of :data:`pipeline.tables.METHODS`, with a fresh RangeIndex.
    """
    RUNS.check(runs, RUNS_READ)
    BEST.check(best, BEST_READ)
    threshold = within_threshold(grid_best_val_loss(runs))
    rows: List[Dict[str, Any]] = [_grid_row(runs, best, threshold)]

    if finder is not None:
        FINDER_VS_GRID.check(finder, FINDER_READ, "finder table")
        kinds = finder["suggestion"]
        present = set(kinds)
        for kind in [*(kind for kind in SUGGESTION_KINDS if kind in present), *sorted(present - set(SUGGESTION_KINDS))]:
            rows.append(_finder_row(kind, finder[kinds == kind], runs, threshold))

    for frame in trials:
        TRIALS.check(frame, TRIALS_READ)
    searches = [frame for frame in trials if len(frame)]
    if searches:
        combined = pd.concat(searches, ignore_index=True)
        names = combined["search"]
        for search in sorted(set(names)):
            rows.append(_search_row(search, combined[names == search], threshold))

    return METHODS.typed(pd.DataFrame(rows, columns=METHODS.required)).reset_index(drop=True)


def with_fresh_seeds(table: pd.DataFrame, fresh_runs: pd.DataFrame) -> pd.DataFrame:
    """The comparison with each method's choice re-evaluated on the fresh seeds of the
    confirmation (:mod:`pipeline.analysis.confirm`), the fair ranking.

    ``best_val_loss`` is each method's best *single* result: the minimum of many noisy runs,
    biased low (the winner's curse), and more so the more runs a method made. Retrained on
    seeds no method saw, every choice is measured alike. Adds ``fresh_val_loss`` (mean over the
    fresh seeds of the runs at the method's optimizer, schedule and rate; a diverged run at its
    untrained loss), ``fresh_val_loss_std`` (ddof=1), ``fresh_seeds`` and ``fresh_rank`` (1 =
    lowest ``fresh_val_loss``; tied losses share the lower rank; empty where the method chose
    nothing).

    Args:
        table: From :func:`method_comparison`.
        fresh_runs: The confirmation runs (``confirm/runs.csv``).
    """
    means, stds, counts = [], [], []
    for _, row in table.iterrows():
        chosen = bool(row["optimizer"]) and bool(row["schedule"]) and np.isfinite(row["lr"])
        losses = losses_by_seed(fresh_runs, row["optimizer"], row["schedule"], float(row["lr"])) if chosen else pd.Series(dtype=float)
        finite = losses[np.isfinite(losses)]
        means.append(float(finite.mean()) if len(finite) else math.nan)
        stds.append(float(finite.std(ddof=1)) if len(finite) > 1 else math.nan)
        counts.append(int(len(losses)))
    result = table.copy()
    result["fresh_val_loss"] = means
    result["fresh_val_loss_std"] = stds
    result["fresh_seeds"] = counts
    result["fresh_rank"] = result["fresh_val_loss"].rank(method="min").astype("Int64")
    return METHODS.typed(result[METHODS.columns]).reset_index(drop=True)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point: ``python -m pipeline.analysis.methods ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.analysis.methods",
        description="Compare the grid, the LR range test and the hyperparameter searches on one study.",
    )
    parser.add_argument("--runs", type=Path, required=True, help="runs.csv of the grid")
    parser.add_argument("--best", type=Path, required=True, help="best.csv of the grid")
    parser.add_argument("--trials", type=Path, nargs="+", required=True, help="trials.csv of each search (one or more)")
    parser.add_argument(
        "--finder", type=Path, default=None, help="finder_vs_grid.csv (python -m pipeline.analysis.finder_vs_grid), optional"
    )
    parser.add_argument(
        "--fresh-runs",
        type=Path,
        default=None,
        help="the confirmation runs (confirm/runs.csv): adds each choice's loss on the fresh seeds and its rank",
    )
    parser.add_argument("--out", type=Path, required=True, help="CSV to write (methods.csv)")
    args = parser.parse_args(argv)
    table = method_comparison(
        RUNS.read(args.runs),
        BEST.read(args.best),
        [TRIALS.read(path) for path in args.trials],
        FINDER_VS_GRID.read(args.finder) if args.finder is not None else None,
    )
    if args.fresh_runs is not None:
        table = with_fresh_seeds(table, RUNS.read(args.fresh_runs))
    write_atomic(args.out, lambda temporary: METHODS.write(table, temporary))
    reached = table.loc[table["reached"], "method"].tolist()
    print(f"{len(table)} methods compared; within 1% of the grid's best: {', '.join(reached) or 'none'}")


if __name__ == "__main__":
    main()
