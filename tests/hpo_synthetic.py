"""Synthetic grid and search files for the method comparison and the search figures.

Small and hand-checkable, values dyadic so sums and means are exact:

* the grid (``runs.csv``): adam × {constant, cosine} × rates L1 < L2 < L3 × seeds 0, 1, plus
  sgd/constant at L2 (a cell no search trained). Its best ``ok`` run is 0.5 (adam/cosine at L2
  seed 0, and at L3 seed 0), so "within 1%" means ≤ 0.505. adam/constant at L3 seed 0 diverged
  with a finite best of 0.25, which must never count;
* ``best.csv``: per cell the rate with the lowest mean, adam/cosine at L2 (0.515625) overall;
* ``finder_vs_grid.csv`` for adam: steep → L1 (never within 1%), valley → L2, minimum → L3
  for cosine only (constant has no minimum suggestion);
* two searches: ``random`` (a diverged first trial with a tempting 0.25, a failed trial, and
  never within 1%: its best is 0.5078125) and ``tpe_median`` (two pruned trials, one of them
  with a partial best of 0.5 that must not count, within 1% at trial 3, better than the grid
  at trial 4, and a trial still running).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List

import pandas as pd

from pipeline.tables import FINDER_VS_GRID

NAN = math.nan
L1, L2, L3 = 1e-3, 1e-2, 1e-1

#: runs.csv rows: (optimizer, schedule, lr, seed, status, best_val_loss, epochs_run, seconds).
GRID_RUNS: List[tuple[str, str, float, int, str, float, int, float]] = [
    ("adam", "constant", L1, 0, "ok", 1.0, 4, 2.5),
    ("adam", "constant", L1, 1, "ok", 1.25, 4, 2.5),
    ("adam", "constant", L2, 0, "ok", 0.625, 4, 2.0),
    ("adam", "constant", L2, 1, "ok", 0.75, 4, 2.0),
    ("adam", "constant", L3, 0, "diverged", 0.25, 2, 1.0),
    ("adam", "constant", L3, 1, "ok", 0.875, 4, 1.75),
    ("adam", "cosine", L1, 0, "ok", 0.75, 4, 2.5),
    ("adam", "cosine", L1, 1, "ok", 1.0, 4, 2.5),
    ("adam", "cosine", L2, 0, "ok", 0.5, 4, 2.0),
    ("adam", "cosine", L2, 1, "ok", 0.53125, 4, 2.0),
    ("adam", "cosine", L3, 0, "ok", 0.5, 4, 1.75),
    ("adam", "cosine", L3, 1, "diverged", NAN, 2, 1.5),
    ("sgd", "constant", L2, 0, "ok", 0.75, 4, 2.0),
    ("sgd", "constant", L2, 1, "ok", 0.875, 4, 2.0),
]


def make_grid_runs() -> pd.DataFrame:
    """runs.csv of :data:`GRID_RUNS`, rows reversed (the comparison must sort them itself)."""
    columns = ["optimizer", "schedule", "lr", "seed", "status", "best_val_loss", "epochs_run", "seconds"]
    runs = pd.DataFrame(list(reversed(GRID_RUNS)), columns=columns)
    runs["best_val_accuracy"] = 0.75
    runs["run_dir"] = [f"runs/{row.optimizer}/{row.schedule}/seed{row.seed}/lr{row.lr}" for row in runs.itertuples()]
    return runs


def make_grid_best() -> pd.DataFrame:
    """best.csv (the columns the comparison reads, and a few more)."""
    rows = [
        ("adam", "constant", L2, 0.6875),
        ("adam", "cosine", L2, 0.515625),
        ("sgd", "constant", L2, 0.8125),
    ]
    best = pd.DataFrame(rows, columns=["optimizer", "schedule", "lr", "best_val_loss_mean"])
    best["seeds"] = 2
    return best


def make_finder_vs_grid() -> pd.DataFrame:
    """finder_vs_grid.csv for adam (sgd had no range test, so it has no rows)."""
    rows = [
        # schedule, kind, suggested, grid best lr, nearest, its mean loss, diverged there, best mean
        ("constant", "steep", 2e-3, L2, L1, 1.125, 0, 0.6875),
        ("constant", "valley", 1.5e-2, L2, L2, 0.6875, 0, 0.6875),
        ("constant", "minimum", NAN, L2, NAN, NAN, NAN, 0.6875),
        ("cosine", "steep", 2e-3, L2, L1, 0.875, 0, 0.515625),
        ("cosine", "valley", 1.5e-2, L2, L2, 0.515625, 0, 0.515625),
        ("cosine", "minimum", 8e-2, L2, L3, 0.5, 1, 0.515625),
    ]
    table = pd.DataFrame(
        [
            {
                "optimizer": "adam",
                "schedule": schedule,
                "suggestion": kind,
                "suggested_lr": suggested,
                "suggested_min": suggested,
                "suggested_max": suggested,
                "seeds": 0 if math.isnan(suggested) else 1,
                "grid_best_lr": best_lr,
                "ratio": suggested / best_lr,
                "nearest_grid_lr": nearest,
                "nearest_val_loss": loss,
                "nearest_diverged": diverged,
                "grid_best_val_loss": best_loss,
                "relative_val_loss": loss / best_loss,
            }
            for schedule, kind, suggested, best_lr, nearest, loss, diverged, best_loss in rows
        ]
    )
    return table.loc[:, FINDER_VS_GRID.columns]


#: trials.csv rows: (trial, state, status, schedule, lr, value, best_val_loss, epochs_run, seconds);
#: every trial trains adam.
TRIALS: Dict[str, List[tuple[int, str, Any, str, float, float, float, float, float]]] = {
    "random": [
        (0, "complete", "diverged", "constant", 0.5, 1000.0, 0.25, 1, 0.75),
        (1, "complete", "ok", "constant", 3e-3, 0.875, 0.875, 4, 2.5),
        (2, "complete", "ok", "cosine", 2e-2, 0.5078125, 0.5078125, 4, 2.5),
        (3, "fail", NAN, "cosine", 1e-4, NAN, NAN, NAN, NAN),
        (4, "complete", "ok", "cosine", 1e-2, 0.625, 0.625, 4, 2.5),
    ],
    "tpe_median": [
        (0, "complete", "ok", "constant", 1e-3, 1.0, 1.0, 4, 2.0),
        (1, "pruned", "ok", "constant", 1e-4, 1.5, 1.5, 2, 1.0),
        (2, "pruned", "ok", "cosine", 3e-2, 0.5, 0.5, 1, 0.5),
        (3, "complete", "ok", "cosine", 1e-2, 0.50390625, 0.50390625, 4, 3.0),
        (4, "complete", "ok", "cosine", 1.5e-2, 0.4921875, 0.4921875, 4, 2.0),
        (5, "running", NAN, "cosine", 2e-2, NAN, NAN, 2, 1.25),
    ],
}

#: The sampler and pruner of each search.
SEARCHES: Dict[str, tuple[str, str]] = {"random": ("random", "none"), "tpe_median": ("tpe", "median")}


def make_trials(search: str) -> pd.DataFrame:
    """The trials.csv of one search of :data:`TRIALS`, rows in reverse trial order."""
    sampler, pruner = SEARCHES[search]
    rows = []
    for trial, state, status, schedule, lr, value, loss, epochs, seconds in reversed(TRIALS[search]):
        rows.append(
            {
                "search": search,
                "sampler": sampler,
                "pruner": pruner,
                "trial": trial,
                "state": state,
                "lr": lr,
                "optimizer": "adam",
                "schedule": schedule,
                "warmup_fraction": NAN,
                "value": value,
                "best_val_loss": loss,
                "best_val_accuracy": NAN if math.isnan(loss) else 0.75,
                "epochs_run": epochs,
                "seconds": seconds,
                "status": status,
                "run_dir": f"hpo/{search}/trial{trial}",
                "datetime_start": "2025-01-01 00:00:00",
                "datetime_complete": "" if state == "running" else "2025-01-01 00:01:00",
            }
        )
    return pd.DataFrame(rows)


def all_trials() -> List[pd.DataFrame]:
    """The trials.csv of both searches, ``tpe_median`` first (the comparison sorts by name)."""
    return [make_trials("tpe_median"), make_trials("random")]
