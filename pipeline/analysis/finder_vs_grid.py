"""How far to trust the LR range test on this problem: its suggestions against the grid's best.

The range test (``pipeline.finder``) suggests rates from one short ramp per seed; the grid
trained every rate to the end. :func:`finder_vs_grid` puts each summary suggestion (valley,
slide, minimum, steep: fastai's rules; the geometric mean over seeds) next to each optimizer × schedule's grid best
(``best.csv``) and asks what the finder's pick would have cost: the validation loss at the
grid rate nearest the suggestion, relative to the grid's best. ``relative_val_loss`` 1.0
means the finder would have found the grid's best rate; 1.07 means picking by the finder
would have given a 7% higher best validation loss.

The grid rates' losses use the ranking rule of ``best.csv`` (:func:`pipeline.analysis.aggregate.rate_table`:
the mean ``best_val_loss`` over seeds), so the grid's best row reads exactly 1.0.

No TensorFlow import here: this is a light job on the CSV and JSON files alone.

Command line::

    python -m pipeline.analysis.finder_vs_grid --suggestions finder/adam/suggestions.json \\
        finder/sgd/suggestions.json --runs runs.csv --best best.csv --out finder_vs_grid.csv
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from pipeline.analysis.aggregate import rate_table
from pipeline.config.schema import SUGGESTIONS
from pipeline.io import write_atomic
from pipeline.tables import BEST, FINDER_VS_GRID, RUNS
from pipeline.values import finite_number

#: The summary suggestions of a range test, in the order the tables list them (the range
#: test's own list).
SUGGESTION_KINDS: tuple[str, ...] = tuple(SUGGESTIONS)

#: Columns of ``runs.csv`` and ``best.csv`` the comparison reads.
RUNS_READ: List[str] = ["optimizer", "schedule", "lr", "seed", "status", "best_val_loss"]
BEST_READ: List[str] = ["optimizer", "schedule", "lr"]

#: Log-distance tolerance under which two grid rates count as equally near a suggestion:
#: a geometric midpoint computed in floating point is off by an ulp or so either way, and
#: the tie rule (lower rate) should not depend on that rounding.
_TIE_TOLERANCE = 1e-9


def nearest_rate(rates: Sequence[float], lr: float) -> float:
    """The rate of ``rates`` nearest ``lr`` in log space; ties go to the lower rate.

    The lower rate wins a tie because a rate that is too low costs accuracy while one that is
    too high can diverge.

    Args:
        rates: Grid rates (> 0).
        lr: The suggested rate.

    Returns:
        The nearest rate; NaN when ``lr`` is not a finite positive number or ``rates`` is empty.
    """
    grid = np.asarray(sorted(float(rate) for rate in rates), dtype=float)
    if grid.size == 0 or not (math.isfinite(lr) and lr > 0):
        return math.nan
    distance = np.abs(np.log(grid) - math.log(lr))
    # Sorted ascending, so the first rate within the tolerance of the minimum is the lowest.
    return float(grid[np.flatnonzero(distance <= distance.min() + _TIE_TOLERANCE)[0]])


def suggestion_summary(suggestion: Mapping[str, Any], kind: str) -> Dict[str, Any]:
    """One kind's summary over seeds from a parsed ``suggestions.json``.

    Returns:
        ``geomean``, ``min`` and ``max`` as floats (NaN where null, missing or not finite:
        no seed gave this suggestion) and ``seeds`` as an int (0 where missing).
    """
    entry = (suggestion.get("summary") or {}).get(kind) or {}
    seeds = finite_number(entry.get("seeds"))
    return {
        "geomean": finite_number(entry.get("geomean")),
        "min": finite_number(entry.get("min")),
        "max": finite_number(entry.get("max")),
        "seeds": int(seeds) if math.isfinite(seeds) else 0,
    }


def _suggestions_by_optimizer(suggestions: Sequence[Mapping[str, Any]]) -> Dict[str, Mapping[str, Any]]:
    by_optimizer: Dict[str, Mapping[str, Any]] = {}
    for suggestion in suggestions:
        optimizer = str(suggestion["optimizer"])
        if optimizer in by_optimizer:
            raise ValueError(f"two range tests for optimizer {optimizer!r}; give one suggestions.json per optimizer")
        by_optimizer[optimizer] = suggestion
    return by_optimizer


def finder_vs_grid(suggestions: Sequence[Mapping[str, Any]], runs: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """The range test's summary suggestions against the grid's best, per optimizer × schedule.

    One row per optimizer × schedule × suggestion kind (``valley``, ``slide``,
    ``minimum``, ``steep``), for the optimizers that have both a range test and grid runs; the others
    are skipped (nothing to compare).

    Columns:

    * ``suggested_lr``, ``suggested_min``, ``suggested_max``, ``seeds``: the summary of the
      suggestions over seeds (geometric mean, range, seeds that gave one); NaN and 0 seeds
      when no seed gave this suggestion (a flat curve, say);
    * ``grid_best_lr``: the rate of ``best.csv`` (its ranking rule);
    * ``ratio``: ``suggested_lr / grid_best_lr`` (> 1: the finder suggests a higher rate);
    * ``nearest_grid_lr``: the grid rate of this optimizer × schedule nearest the suggestion
      in log space, ties to the lower rate (:func:`nearest_rate`);
    * ``nearest_val_loss``, ``nearest_diverged``: the mean ``best_val_loss`` over seeds at
      that rate and how many of its seeds diverged (a suggestion on a diverging rate is a bad
      one even when the surviving seeds' loss looks fine);
    * ``grid_best_val_loss``: the same mean at ``grid_best_lr``;
    * ``relative_val_loss``: ``nearest_val_loss / grid_best_val_loss``; 1.0 = the finder
      would have found the grid's best.

    Args:
        suggestions: Parsed ``suggestions.json`` files, one per optimizer.
        runs: One row per grid run (``runs.csv``).
        best: One row per optimizer × schedule with its recommended rate (``best.csv``).

    Returns:
        The table, sorted by optimizer and schedule, suggestions in :data:`SUGGESTION_KINDS`
        order, with a fresh RangeIndex.
    """
    RUNS.check(runs, RUNS_READ)
    BEST.check(best, BEST_READ)
    by_optimizer = _suggestions_by_optimizer(suggestions)
    rows: List[Dict[str, Any]] = []
    for _, cell in best.sort_values(["optimizer", "schedule"], kind="stable").iterrows():
        optimizer, schedule = cell["optimizer"], cell["schedule"]
        if optimizer not in by_optimizer:
            continue
        group = runs[(runs["optimizer"] == optimizer) & (runs["schedule"] == schedule)]
        per_rate = rate_table(group) if not group.empty else pd.DataFrame(columns=["best_val_loss_mean", "diverged"])
        grid_best_lr = finite_number(cell["lr"])
        grid_best_loss = finite_number(per_rate["best_val_loss_mean"].get(grid_best_lr, math.nan))
        for kind in SUGGESTION_KINDS:
            summary = suggestion_summary(by_optimizer[optimizer], kind)
            suggested = summary["geomean"]
            nearest = nearest_rate(list(per_rate.index), suggested)
            nearest_loss = finite_number(per_rate["best_val_loss_mean"].get(nearest, math.nan))
            diverged = per_rate["diverged"].get(nearest, math.nan)
            rows.append(
                {
                    "optimizer": optimizer,
                    "schedule": schedule,
                    "suggestion": kind,
                    "suggested_lr": suggested,
                    "suggested_min": summary["min"],
                    "suggested_max": summary["max"],
                    "seeds": summary["seeds"],
                    "grid_best_lr": grid_best_lr,
                    "ratio": suggested / grid_best_lr if grid_best_lr > 0 else math.nan,
                    "nearest_grid_lr": nearest,
                    "nearest_val_loss": nearest_loss,
                    "nearest_diverged": diverged,
                    "grid_best_val_loss": grid_best_loss,
                    # NaN / x and x / NaN stay NaN; a zero best loss makes the ratio meaningless.
                    "relative_val_loss": nearest_loss / grid_best_loss if grid_best_loss != 0 else math.nan,
                }
            )
    # Typed by the schema; ``nearest_diverged`` is Int64 since no suggestion means no nearest
    # rate, hence no diverged count (<NA>, not 0).
    return FINDER_VS_GRID.typed(pd.DataFrame(rows, columns=FINDER_VS_GRID.columns)).reset_index(drop=True)


def closest_suggestions(table: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer, each suggestion kind's mean ``relative_val_loss`` over schedules, best first.

    The mean skips schedules where it is NaN (no suggestion, or every seed diverged at the
    nearest rate); a kind with no finite value at all comes last with NaN. Ties keep
    :data:`SUGGESTION_KINDS` order.

    Args:
        table: A table as returned by :func:`finder_vs_grid` (or read back from its CSV).

    Returns:
        Columns optimizer, suggestion, mean_relative_val_loss, schedules (how many schedules
        the mean is over), rank (1 = closest to the grid's best); sorted by optimizer and rank.
    """
    FINDER_VS_GRID.check(table, ["optimizer", "suggestion", "relative_val_loss"], "finder table")
    columns = ["optimizer", "suggestion", "mean_relative_val_loss", "schedules", "rank"]
    frames: List[pd.DataFrame] = []
    for optimizer in sorted(table["optimizer"].unique()):
        panel = table[table["optimizer"] == optimizer]
        present = set(panel["suggestion"])
        kinds = [kind for kind in SUGGESTION_KINDS if kind in present] + sorted(present - set(SUGGESTION_KINDS))
        rows: List[Dict[str, Any]] = []
        for order, kind in enumerate(kinds):
            values = panel.loc[panel["suggestion"] == kind, "relative_val_loss"]
            values = values[np.isfinite(values)]
            rows.append(
                {
                    "optimizer": optimizer,
                    "suggestion": kind,
                    "mean_relative_val_loss": float(values.mean()) if len(values) else math.nan,
                    "schedules": len(values),
                    "_order": order,
                }
            )
        ranked = pd.DataFrame(rows).sort_values(
            ["mean_relative_val_loss", "_order"], kind="stable", na_position="last"
        )
        ranked["rank"] = range(1, len(ranked) + 1)
        frames.append(ranked)
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True).loc[:, columns]


def read_suggestions(paths: Sequence[Path]) -> List[Dict[str, Any]]:
    """Parsed ``suggestions.json`` files (``NaN``/``Infinity`` tokens allowed, as Python writes them)."""
    return [json.loads(Path(path).read_text(encoding="utf-8")) for path in paths]


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point: ``python -m pipeline.analysis.finder_vs_grid ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.analysis.finder_vs_grid",
        description="Compare the LR range test's suggestions with the grid's best rates.",
    )
    parser.add_argument(
        "--suggestions", type=Path, nargs="+", required=True, help="suggestions.json of each optimizer's range test"
    )
    parser.add_argument("--runs", type=Path, required=True, help="runs.csv of the grid")
    parser.add_argument("--best", type=Path, required=True, help="best.csv of the grid")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write (finder_vs_grid.csv)")
    args = parser.parse_args(argv)
    table = finder_vs_grid(read_suggestions(args.suggestions), RUNS.read(args.runs), BEST.read(args.best))
    write_atomic(args.out, lambda temporary: FINDER_VS_GRID.write(table, temporary))
    print(f"{len(table)} rows: {table['optimizer'].nunique()} optimizer(s) compared with the grid")


if __name__ == "__main__":
    main()
