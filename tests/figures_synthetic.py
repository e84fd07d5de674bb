"""Synthetic study tables for the figure tests: small, hand-checkable, with every awkward case.

2 optimizers × 2 schedules × 3 rates × 2 seeds. ``adam/constant`` at the highest rate
diverged in both seeds (an all-diverged cell), several cells have one diverged seed, an ``ok``
run has an infinite gap, some runs never reach the target, and ``best.csv`` has a NaN loss.
Values are dyadic fractions so that means computed by hand are exact.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import pandas as pd

NAN = math.nan
INF = math.inf
L1, L2, L3 = 1e-3, 1e-2, 1e-1
RATES = (L1, L2, L3)
STEPS_PER_EPOCH = 4
EPOCHS = 3
TARGET = 0.875

#: One seed of a cell: (status, fit, gap, epochs_to_target, seconds_to_target).
Seed = tuple[str, str, float, Optional[int], float]

#: (optimizer, schedule, lr) -> its seeds 0, 1.
DIAGNOSIS: Dict[tuple[str, str, float], List[Seed]] = {
    ("adam", "constant", L1): [("ok", "good", 0.25, 3, 1.5), ("ok", "underfit", 0.5, 5, 2.5)],
    ("adam", "constant", L2): [("ok", "good", 0.125, 2, 1.0), ("ok", "good", 0.375, 2, 1.5)],
    ("adam", "constant", L3): [("diverged", "diverged", NAN, None, NAN), ("diverged", "diverged", NAN, None, NAN)],
    ("adam", "cosine", L1): [("ok", "underfit", 0.0, None, NAN), ("ok", "underfit", 0.5, 4, 2.0)],
    # A seed that diverged after reaching the target: its gap is left out, its cost counts.
    ("adam", "cosine", L2): [("ok", "overfit", 1.0, 2, 0.5), ("diverged", "diverged", 2.0, 1, 0.25)],
    # An ok run with an infinite gap: left out of the mean.
    ("adam", "cosine", L3): [("ok", "unstable", INF, None, NAN), ("ok", "unstable", 0.75, None, NAN)],
    ("sgd", "constant", L1): [("ok", "underfit", 0.0, None, NAN), ("ok", "underfit", 0.0, None, NAN)],
    ("sgd", "constant", L2): [("ok", "good", 0.125, 4, 2.0), ("ok", "good", 0.125, 6, 3.0)],
    ("sgd", "constant", L3): [("ok", "overfit", 0.5, 3, 1.5), ("ok", "good", 0.25, 3, 1.25)],
    ("sgd", "cosine", L1): [("ok", "underfit", 0.0, None, NAN), ("ok", "good", 0.25, 5, 2.5)],
    ("sgd", "cosine", L2): [("ok", "good", 0.25, 2, 1.0), ("ok", "good", 0.75, 3, 1.0)],
    ("sgd", "cosine", L3): [("ok", "unstable", 0.5, None, NAN), ("diverged", "diverged", NAN, None, NAN)],
}


def make_runs(cells: Dict[tuple[str, str, float], List[Seed]] = DIAGNOSIS) -> pd.DataFrame:
    """A runs.csv-like frame with the diagnosis columns, rows deliberately not sorted."""
    rows: List[Dict[str, Any]] = []
    for (optimizer, schedule, lr), seeds in reversed(list(cells.items())):
        for seed, (status, fit, gap, epochs_to_target, seconds_to_target) in enumerate(seeds):
            epochs_run = EPOCHS if status == "ok" else 2
            rows.append(
                {
                    "optimizer": optimizer,
                    "schedule": schedule,
                    "lr": lr,
                    "seed": seed,
                    "status": status,
                    "best_val_loss": 0.5 if status == "ok" else NAN,
                    "best_val_accuracy": 0.75 if status == "ok" else NAN,
                    "final_loss": 0.5,
                    "final_val_loss": 0.5 + gap,
                    "diverged_epoch": 2 if status == "diverged" else None,
                    "epochs_run": epochs_run,
                    "steps": epochs_run * STEPS_PER_EPOCH,
                    "fit": fit,
                    "fit_reasons": "",
                    "gap": gap,
                    "epochs_to_target": epochs_to_target,
                    "seconds_to_target": seconds_to_target,
                    "target_accuracy": TARGET,
                    "initial_loss": 2.25,
                    "run_dir": f"runs/{optimizer}/{schedule}/seed{seed}/lr{lr}",
                }
            )
    runs = pd.DataFrame(rows)
    runs["epochs_to_target"] = runs["epochs_to_target"].astype("Int64")
    runs["diverged_epoch"] = runs["diverged_epoch"].astype("Int64")
    return runs


def curve_loss(lr: float, seed: int, epoch: int) -> float:
    """The training loss of a healthy synthetic run: dyadic, falling by 0.5 per epoch."""
    return 2.0 - 0.5 * (epoch - 1) + 0.25 * seed + {L1: 0.5, L2: 0.0, L3: 0.25}[lr]


def make_curves() -> pd.DataFrame:
    """A curves.csv-like frame: every run of :data:`DIAGNOSIS` for :data:`EPOCHS` epochs, except

    * ``adam/constant`` at L3: seed 0 runs 2 epochs, its second loss is +inf; seed 1 runs
      1 epoch with a NaN loss;
    * ``sgd/cosine`` at L3: seed 1 stops after epoch 2 (seed 0 runs all 3).

    ``val_loss`` is ``loss + 0.5``; ``current_lr`` is the constant rate, or a cosine over
    :data:`EPOCHS` × :data:`STEPS_PER_EPOCH` steps at the epoch's last step.
    """
    rows: List[Dict[str, Any]] = []
    for optimizer, schedule, lr in DIAGNOSIS:
        for seed in (0, 1):
            epochs = EPOCHS
            if (optimizer, schedule, lr) == ("adam", "constant", L3):
                epochs = 2 - seed
            elif (optimizer, schedule, lr, seed) == ("sgd", "cosine", L3, 1):
                epochs = 2
            for epoch in range(1, epochs + 1):
                loss = curve_loss(lr, seed, epoch)
                if (optimizer, schedule, lr) == ("adam", "constant", L3):
                    loss = INF if seed == 0 and epoch == 2 else NAN if seed == 1 else loss
                step = epoch * STEPS_PER_EPOCH
                total = EPOCHS * STEPS_PER_EPOCH
                current = (
                    lr if schedule == "constant" else lr * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
                )
                rows.append(
                    {
                        "optimizer": optimizer,
                        "schedule": schedule,
                        "lr": lr,
                        "seed": seed,
                        "epoch": epoch,
                        "current_lr": current,
                        "loss": loss,
                        "accuracy": 0.5,
                        "val_loss": loss + 0.5,
                        "val_accuracy": 0.5,
                        "seconds": 0.5,
                    }
                )
    return pd.DataFrame(rows)


#: best.csv: (optimizer, schedule) -> (lr, mean, std, at_edge, edge). ``sgd/cosine``'s mean is
#: NaN (as when every run of it diverged in the first epoch).
BEST: Dict[tuple[str, str], tuple[float, float, float, bool, str]] = {
    ("adam", "constant"): (L2, 0.5, 0.125, False, ""),
    ("adam", "cosine"): (L1, 0.25, 0.0, True, "low"),
    ("sgd", "constant"): (L3, 0.75, 0.25, True, "high"),
    ("sgd", "cosine"): (L2, NAN, NAN, False, ""),
}


def make_best() -> pd.DataFrame:
    """A best.csv-like frame of :data:`BEST`."""
    rows = [
        {
            "optimizer": optimizer,
            "schedule": schedule,
            "lr": lr,
            "best_val_loss_mean": mean,
            "best_val_loss_std": std,
            "best_val_accuracy_mean": 0.75,
            "best_val_accuracy_std": 0.0,
            "seeds": 2,
            "diverged_fraction": 0.0,
            "at_edge": at_edge,
            "edge": edge,
        }
        for (optimizer, schedule), (lr, mean, std, at_edge, edge) in BEST.items()
    ]
    return pd.DataFrame(rows)


#: config.yaml: the two schedules and the epochs.
CONFIG: Dict[str, Any] = {
    "schedule": {"constant": {"type": "constant"}, "cosine": {"type": "cosine", "alpha": 0.0}},
    "study": {"epochs": EPOCHS},
}


# --------------------------------------------------------------------------------------
# LR range test (finder.csv, suggestions.json)
# --------------------------------------------------------------------------------------

#: Rates of the synthetic range test: half a decade per step from 1e-6.
FINDER_LRS = tuple(10.0 ** (-6 + 0.5 * step) for step in range(10))

#: (optimizer, seed) -> (loss, smooth_loss) per step. adam seed 0 runs all 10 steps and ends
#: at +inf; adam seed 1 stops after 8 steps, its last loss NaN; sgd is flat (no suggestion).
FINDER_CURVES: Dict[tuple[str, int], tuple[List[float], List[float]]] = {
    ("adam", 0): (
        [2.0, 2.25, 1.75, 1.5, 1.0, 0.5, 0.25, 0.5, 4.0, INF],
        [2.0, 2.125, 2.0, 1.75, 1.5, 1.0, 0.5, 0.5, 2.0, INF],
    ),
    ("adam", 1): (
        [2.5, 2.0, 1.5, 1.0, 0.75, 0.5, 8.0, NAN],
        [2.5, 2.25, 2.0, 1.5, 1.0, 0.75, 2.0, NAN],
    ),
    ("sgd", 0): ([2.0] * 10, [2.0] * 10),
}


def make_finder(optimizer: str) -> pd.DataFrame:
    """A finder.csv-like frame of one optimizer's seeds in :data:`FINDER_CURVES`."""
    rows: List[Dict[str, Any]] = []
    for (name, seed), (loss, smooth) in FINDER_CURVES.items():
        if name != optimizer:
            continue
        for step, (raw, smoothed) in enumerate(zip(loss, smooth)):
            rows.append(
                {"optimizer": name, "seed": seed, "step": step, "lr": FINDER_LRS[step], "loss": raw, "smooth_loss": smoothed}
            )
    return pd.DataFrame(rows)


def make_suggestions(optimizer: str) -> Dict[str, Any]:
    """A suggestions.json-like mapping: adam has steep (2 seeds) and valley (1 seed) but no
    slide or minimum; sgd's curve is flat, so it has no suggestion at all."""
    settings = {"start_lr": 1e-6, "end_lr": 1e-1, "steps": 10, "mode": "exponential", "stop_factor": 4.0,
                "beta": 0.98, "min_drop": 0.05}  # fmt: skip
    none = {"geomean": None, "min": None, "max": None, "seeds": 0}
    if optimizer == "sgd":
        per_seed = {
            "0": {"steep": None, "valley": None, "slide": None, "minimum": None, "reason": "flat", "steps_run": 10, "stopped": False}
        }
        summary = {"steep": none, "valley": none, "slide": none, "minimum": none}
    else:
        per_seed = {
            "0": {"steep": 1e-4, "valley": 3e-4, "slide": None, "minimum": None, "reason": None, "steps_run": 10, "stopped": True},
            "1": {"steep": 4e-4, "valley": None, "slide": None, "minimum": None, "reason": "too short", "steps_run": 8, "stopped": True},
        }
        summary = {
            "steep": {"geomean": 2e-4, "min": 1e-4, "max": 4e-4, "seeds": 2},
            "valley": {"geomean": 3e-4, "min": 3e-4, "max": 3e-4, "seeds": 1},
            "slide": none,
            "minimum": none,
        }
    return {"optimizer": optimizer, "settings": settings, "per_seed": per_seed, "summary": summary}
