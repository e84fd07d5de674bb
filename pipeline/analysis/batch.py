"""The batch-size question: "I doubled the batch; what happens to the best learning rate?"

With ``study.batch_sizes`` the grid (every optimizer, schedule, seed and rate) is trained at
each batch size; the grid's own runs are those of ``study.batch_size``. Two tables answer:

``batch_sizes.csv`` (:func:`batch_sizes_table`), one row per optimizer × schedule × batch size
    The recommended grid rate at that batch size (``best.csv``'s rule,
    :func:`pipeline.analysis.aggregate.best_rates`), its loss and grid edge, and ``lr_fit``: the
    rate the scaling fit uses, the minimum of the parabola through the mean best ``val_loss`` of
    the recommended rate and its two neighbours against ``log10(rate)`` (the estimated optimum
    of :mod:`pipeline.analysis.optimum`, clipped to the neighbours), or the recommended rate
    itself at the grid's edge, next to a diverged neighbour, or when the parabola has no
    minimum. Unlike ``best.csv``'s ``lr_estimate`` it never refuses (flat, noisy): the fit needs
    a number per batch size, and the exponent's interval carries the noise.

``batch_scaling.csv`` (:func:`batch_scaling_table`), one row per optimizer × schedule
    ``exponent``: the least-squares slope ``k`` of ``log(lr_fit)`` against ``log(batch_size)``,
    i.e. ``best rate ∝ batch_size**k``; ``rate_per_doubling = 2**k``, what to multiply the
    rate by when the batch doubles. ``exponent_low``..``exponent_high``: the 2.5-97.5
    percentile interval of a bootstrap over seeds (the seeds resampled with replacement, the
    same resampled seeds at every batch size and rate since a seed's runs share its
    initialisation, 2000 samples, a fixed generator seed: the same study gives the same
    interval); none with one seed, and a coarse one with two (three distinct resamples: the
    note says so). ``rule``: the scaling rule whose exponent the interval holds,
    among ``linear`` (k = 1: Goyal et al. 2017, "Accurate, Large Minibatch SGD"), ``sqrt``
    (k = 0.5: Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive Gradient
    Algorithms", for Adam-like optimizers) and ``constant`` (k = 0: keep the rate);
    ``undecided`` when it holds more than one (more seeds or batch sizes settle it), ``other``
    when it holds none (the exponent says what the data follow). With one seed, the rule
    nearest to the exponent, and the note says so. ``note`` also names a batch size whose
    recommended rate lies at the grid's edge (the fit there is a bound, not an estimate:
    widen the grid), one without any finite loss (left out of the fit), and the batch sizes
    where ``lr_fit`` is a grid rate (no parabola: the edge, a diverged neighbour, or a minimum
    exactly on a neighbour): the interval measures the seeds' noise, not the grid's
    resolution, so an exponent built on grid rates alone moves in steps of the grid's spacing.

Command line::

    python -m pipeline.analysis.batch --runs 64=batch/b64/runs.csv 128=runs.csv 256=batch/b256/runs.csv \\
        --sizes-out batch_sizes.csv --scaling-out batch_scaling.csv

Pure pandas and NumPy: no TensorFlow import.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from pipeline.analysis.aggregate import best_rates, write_table
from pipeline.analysis.optimum import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, INTERVAL_PERCENTILES, parabola_vertex
from pipeline.tables import BATCH_SCALING, BATCH_SIZES, RUNS, RunStatus, ScalingRule

#: Each scaling rule's exponent ``k`` in ``best rate ∝ batch_size**k``.
RULE_EXPONENTS: Dict[ScalingRule, float] = {ScalingRule.LINEAR: 1.0, ScalingRule.SQRT: 0.5, ScalingRule.CONSTANT: 0.0}

#: Columns of ``runs.csv`` read here (``best_rates`` reads the rest where present).
RUNS_READ: List[str] = ["optimizer", "schedule", "lr", "seed", "status", "best_val_loss"]


# --------------------------------------------------------------------------------------
# One batch size: the rate the fit uses
# --------------------------------------------------------------------------------------


def fit_rate(log_rates: np.ndarray, means: np.ndarray, unstable: np.ndarray) -> float:
    """``log10`` of the rate the scaling fit uses at one batch size (see the module doc), from
    the mean best ``val_loss`` at each grid rate (``log_rates`` ascending) and whether a rate is
    unstable (a diverged seed or no finite mean); NaN when no rate has a finite mean.

    The recommended rate is ``best.csv``'s: the lowest mean among the stable rates, else among
    the finite ones; ties go to the lower rate.
    """
    finite = np.isfinite(means)
    if not finite.any():
        return math.nan
    tier = np.where(finite & ~unstable, 0, np.where(finite, 1, 2))
    chosen = int(np.lexsort((np.where(finite, means, np.inf), tier))[0])
    if 0 < chosen < len(log_rates) - 1 and not tier[chosen - 1 : chosen + 2].any():
        bracket = slice(chosen - 1, chosen + 2)
        vertex = parabola_vertex(log_rates[bracket], means[bracket])
        if vertex is not None:
            return float(min(max(vertex, log_rates[chosen - 1]), log_rates[chosen + 1]))
    return float(log_rates[chosen])


def _cell_matrices(group: pd.DataFrame, seeds: Sequence[int]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One cell at one batch size as arrays: ``log10`` of its rates (R,), the best ``val_loss``
    (seeds × R, NaN where a run is missing or non-finite) and whether a run diverged (seeds × R)."""
    rates = np.array(sorted(group["lr"].unique()), dtype=float)
    losses = group.pivot_table(index="seed", columns="lr", values="best_val_loss", aggfunc="mean", dropna=False)
    losses = losses.reindex(index=list(seeds), columns=rates).to_numpy(dtype=float)
    diverged = (
        (group.assign(_diverged=group["status"] == RunStatus.DIVERGED))
        .pivot_table(index="seed", columns="lr", values="_diverged", aggfunc="any")
        .reindex(index=list(seeds), columns=rates)
        .fillna(False)
        .to_numpy(dtype=bool)
    )
    return np.log10(rates), losses, diverged


def _fit_rates_of(log_rates: np.ndarray, losses: np.ndarray, diverged: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """:func:`fit_rate` for each row of seed indices in ``picks`` (samples × seeds)."""
    with np.errstate(invalid="ignore"):
        means = losses[picks].mean(axis=1)  # (samples, R); NaN where any picked seed lacks a finite loss
    unstable = diverged[picks].any(axis=1) | ~np.isfinite(means)
    return np.array([fit_rate(log_rates, row, flags) for row, flags in zip(means, unstable)])


# --------------------------------------------------------------------------------------
# The fit across batch sizes
# --------------------------------------------------------------------------------------


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """The least-squares slope of ``y`` on ``x`` over the finite ``y``; NaN with fewer than two
    distinct ``x`` left."""
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(np.unique(x)) < 2:
        return math.nan
    centred = x - x.mean()
    return float((centred * (y - y.mean())).sum() / (centred**2).sum())


def scaling_rule(exponent: float, low: float, high: float) -> ScalingRule:
    """The rule the exponent's interval holds (see the module doc); without an interval, the
    rule nearest to the exponent."""
    if not math.isfinite(exponent):
        return ScalingRule.NONE
    if not (math.isfinite(low) and math.isfinite(high)):
        return min(RULE_EXPONENTS, key=lambda rule: abs(RULE_EXPONENTS[rule] - exponent))
    inside = [rule for rule, k in RULE_EXPONENTS.items() if low <= k <= high]
    if len(inside) == 1:
        return inside[0]
    return ScalingRule.UNDECIDED if inside else ScalingRule.OTHER


def fit_exponent(cells: Mapping[int, pd.DataFrame], seeds: Sequence[int]) -> Dict[str, object]:
    """The exponent of one optimizer × schedule: ``cells`` maps each batch size to that cell's
    rows of its ``runs.csv``; ``seeds`` are the seeds every batch size trained. Returns the
    ``batch_scaling.csv`` columns after the cell's keys."""
    sizes = sorted(cells)
    x = np.log10(np.asarray(sizes, dtype=float))
    matrices = {size: _cell_matrices(cells[size], seeds) for size in sizes}
    everyone = np.arange(len(seeds))[None, :]
    point = np.array([_fit_rates_of(*matrices[size], everyone)[0] for size in sizes])
    exponent = slope(x, point)
    notes = [f"no finite loss at batch size {size}" for size, value in zip(sizes, point) if not math.isfinite(value)]
    on_grid = [
        str(size)
        for size, value in zip(sizes, point)
        if math.isfinite(value) and np.isclose(value, matrices[size][0], rtol=0, atol=1e-9).any()
    ]
    if on_grid:
        notes.append(
            f"a grid rate, not a parabola's minimum, at batch size {', '.join(on_grid)}: "
            "the exponent has the grid's resolution there"
        )
    low = high = math.nan
    if len(seeds) == 1:
        notes.append("one seed: no interval, the nearest rule")
    elif len(seeds) == 2:
        notes.append("two seeds: the bootstrap has three distinct resamples, a coarse interval (3 or more seeds refine it)")
    if len(seeds) >= 2 and math.isfinite(exponent):
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        picks = rng.integers(0, len(seeds), size=(BOOTSTRAP_SAMPLES, len(seeds)))
        samples = np.stack([_fit_rates_of(*matrices[size], picks) for size in sizes], axis=1)  # (samples, sizes)
        slopes = np.array([slope(x, sample) for sample in samples])
        slopes = slopes[np.isfinite(slopes)]
        if len(slopes):
            low, high = (float(value) for value in np.percentile(slopes, INTERVAL_PERCENTILES))
    return {
        "batch_sizes": " ".join(str(size) for size in sizes),
        "seeds": len(seeds),
        "exponent": exponent,
        "exponent_low": low,
        "exponent_high": high,
        "rate_per_doubling": 2.0**exponent if math.isfinite(exponent) else math.nan,
        "rule": str(scaling_rule(exponent, low, high)),
        "note": "; ".join(notes),
    }


# --------------------------------------------------------------------------------------
# The two tables
# --------------------------------------------------------------------------------------


def _common_seeds(runs_by_size: Mapping[int, pd.DataFrame]) -> List[int]:
    seeds = [set(int(seed) for seed in runs["seed"].unique()) for runs in runs_by_size.values()]
    return sorted(set.intersection(*seeds)) if seeds else []


def _check(runs_by_size: Mapping[int, pd.DataFrame]) -> None:
    if len(runs_by_size) < 2:
        raise ValueError(f"the batch-size question needs at least 2 batch sizes, got {sorted(runs_by_size)}")
    for size, runs in runs_by_size.items():
        RUNS.check(runs, RUNS_READ, what=f"runs table of batch size {size}")


def batch_sizes_table(runs_by_size: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """``batch_sizes.csv``: per optimizer × schedule × batch size, the recommended rate and the
    rate the fit uses (see the module doc). ``runs_by_size`` maps each batch size to its runs."""
    _check(runs_by_size)
    seeds = _common_seeds(runs_by_size)
    everyone = np.arange(len(seeds))[None, :]
    frames = []
    for size in sorted(runs_by_size):
        runs = runs_by_size[size]
        best = best_rates(runs)
        fit = [
            10 ** _fit_rates_of(*_cell_matrices(group, seeds), everyone)[0] if seeds else math.nan
            for _, group in runs.groupby(["optimizer", "schedule"], sort=True)
        ]
        frames.append(best.assign(batch_size=int(size), lr_fit=fit))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=BATCH_SIZES.columns)
    table = table.sort_values(["optimizer", "schedule", "batch_size"], kind="stable").reset_index(drop=True)
    return table[BATCH_SIZES.columns]


def batch_scaling_table(runs_by_size: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """``batch_scaling.csv``: per optimizer × schedule, the fitted exponent, its interval and the
    rule it follows (see the module doc), with the notes on the edge of the grid."""
    _check(runs_by_size)
    seeds = _common_seeds(runs_by_size)
    sizes = sorted(runs_by_size)
    cells = sorted(
        set.intersection(*(set(runs[["optimizer", "schedule"]].itertuples(index=False, name=None)) for runs in runs_by_size.values()))
    )
    edges = batch_sizes_table(runs_by_size).set_index(["optimizer", "schedule", "batch_size"])["edge"]
    rows = []
    for optimizer, schedule in cells:
        groups = {
            size: runs_by_size[size][(runs_by_size[size]["optimizer"] == optimizer) & (runs_by_size[size]["schedule"] == schedule)]
            for size in sizes
        }
        row: Dict[str, object] = {"optimizer": optimizer, "schedule": schedule, **fit_exponent(groups, seeds)}
        at_edge = [f"{size} ({edges[(optimizer, schedule, size)]})" for size in sizes if edges[(optimizer, schedule, size)]]
        if at_edge:
            edge_note = f"best rate at the grid's edge at batch size {', '.join(at_edge)}: widen the grid"
            row["note"] = "; ".join(filter(None, [str(row["note"]), edge_note]))
        rows.append(row)
    return pd.DataFrame(rows, columns=BATCH_SCALING.columns)


def _size_and_path(text: str) -> Tuple[int, Path]:
    size, sep, path = text.partition("=")
    if not sep or not size.isdigit() or not path:
        raise argparse.ArgumentTypeError(f"expected BATCH_SIZE=PATH, got {text!r}")
    return int(size), Path(path)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point: ``python -m pipeline.analysis.batch ...``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.analysis.batch", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=_size_and_path, nargs="+", required=True, metavar="SIZE=PATH", help="each batch size's runs.csv"
    )
    parser.add_argument("--sizes-out", type=Path, required=True, help="batch_sizes.csv")
    parser.add_argument("--scaling-out", type=Path, required=True, help="batch_scaling.csv")
    args = parser.parse_args(argv)
    runs_by_size = {size: RUNS.read(path) for size, path in args.runs}
    write_table(BATCH_SIZES, batch_sizes_table(runs_by_size), args.sizes_out)
    scaling = batch_scaling_table(runs_by_size)
    write_table(BATCH_SCALING, scaling, args.scaling_out)
    for row in scaling.itertuples(index=False):
        print(f"{row.optimizer} {row.schedule}: exponent {row.exponent:.3g} [{row.exponent_low:.3g}, {row.exponent_high:.3g}], {row.rule}")


if __name__ == "__main__":
    main()
