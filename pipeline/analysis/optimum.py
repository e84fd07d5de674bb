"""Between the grid points: an estimated optimum with its interval, and how forgiving a schedule is.

The grid's recommendation can only be a grid point. Per optimizer × schedule this module adds:

``lr_estimate``, ``lr_low``, ``lr_high`` (and ``estimate_note``)
    The rate at the minimum of the parabola through the mean best ``val_loss`` of the
    recommended rate and its two grid neighbours, against ``log10(rate)``. Three points on a
    log-spaced grid fix a parabola exactly; near a smooth minimum the loss is close to
    quadratic in ``log10(rate)``, which is what makes the vertex a better guess than the best
    grid point (tested on curves with a known minimum: within 0.05 decades on a grid of 0.5
    decades with seed noise of 1%). The interval is the 2.5-97.5 percentile range of the
    vertices of a bootstrap over seeds (seeds resampled with replacement, the same seeds at
    the three rates, 2000 samples, a fixed generator seed: the same study gives the same
    interval), clipped to the two neighbours. No estimate, with the reason in
    ``estimate_note``, when:

    - ``edge``: the recommended rate is the grid's lowest or highest (widen the grid);
    - ``unstable neighbour``: a rate of the bracket (a neighbour, or the recommended rate
      itself when every rate had a diverged seed) has a diverged seed or no finite loss (the
      curve is not smooth there);
    - ``flat``: both neighbours are within 0.5% of the recommended rate's loss (the grid cannot
      place the minimum between them);
    - ``noisy``: the bootstrap interval spans the whole bracket between the neighbours (the
      seeds do not agree on a side; more seeds, or the confirmation runs, settle it).

    With one seed there is an estimate but no interval (``one seed: no interval``).

``lr_sensitivity``
    Wortsman et al. 2023 ("Small-scale proxies for large-scale Transformer training
    instabilities"): the expected excess of the final loss over the best final loss across
    the log-spaced rate sweep, ``mean over rates of (L(rate) - min over rates of L)``, where
    ``L(rate)`` is the mean over seeds of each run's final ``val_loss``, clipped at that run's
    untrained loss (``initial_loss``; a diverged run, or one without a finite final loss,
    counts as the untrained loss). Low: the schedule forgives a badly chosen rate; high: the
    rate must be right.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import numpy as np
import pandas as pd

from pipeline.tables import RunStatus

#: Both neighbours within this relative distance of the best loss: too flat to place a minimum.
FLAT_RELATIVE = 0.005
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0
#: The interval: these percentiles of the bootstrap's vertices.
INTERVAL_PERCENTILES = (2.5, 97.5)


def parabola_vertex(x: Sequence[float], y: Sequence[float]) -> Optional[float]:
    """The ``x`` of the minimum of the parabola through three points (``x`` increasing), or
    None when it has no minimum (it opens downwards, or the points lie on a line)."""
    x0, x1, x2 = (float(value) for value in x)
    y0, y1, y2 = (float(value) for value in y)
    # Divided differences: y = y0 + d1 (x - x0) + a (x - x0)(x - x1).
    d1 = (y1 - y0) / (x1 - x0)
    a = ((y2 - y1) / (x2 - x1) - d1) / (x2 - x0)
    if not (math.isfinite(a) and a > 0):
        return None
    # dy/dx = d1 + a (2x - x0 - x1) = 0
    return (x0 + x1) / 2 - d1 / (2 * a)


def _bracket_estimate(x: np.ndarray, y: np.ndarray) -> float:
    """A bootstrap sample's estimate: the vertex, kept inside the bracket, or (no minimum)
    the lowest of the three points."""
    vertex = parabola_vertex(x, y)
    if vertex is None:
        return float(x[int(np.argmin(y))])
    return float(min(max(vertex, x[0]), x[2]))


def estimate_optimum(group: pd.DataFrame, chosen_lr: float) -> Dict[str, object]:
    """The estimated optimum of one optimizer × schedule (see the module doc): ``lr_estimate``,
    ``lr_low``, ``lr_high`` (NaN without) and ``estimate_note`` ("" for a plain estimate).

    ``group``: that cell's rows of ``runs.csv`` (``lr``, ``seed``, ``status``,
    ``best_val_loss``); ``chosen_lr``: its recommended rate.
    """
    none = {"lr_estimate": math.nan, "lr_low": math.nan, "lr_high": math.nan}
    rates = sorted(group["lr"].unique())
    position = rates.index(chosen_lr)
    if position == 0 or position == len(rates) - 1:
        return {**none, "estimate_note": "edge"}
    bracket = rates[position - 1 : position + 2]
    rows = group[group["lr"].isin(bracket)]
    unstable = rows[(rows["status"] == RunStatus.DIVERGED) | ~np.isfinite(rows["best_val_loss"].astype(float))]
    if not unstable.empty:
        return {**none, "estimate_note": "unstable neighbour"}
    table = rows.pivot_table(index="seed", columns="lr", values="best_val_loss", aggfunc="mean")[bracket].dropna()
    if table.empty:
        return {**none, "estimate_note": "unstable neighbour"}
    losses = table.to_numpy(dtype=float)
    x = np.log10(np.asarray(bracket, dtype=float))
    means = losses.mean(axis=0)
    if max(means[0], means[2]) - means[1] < FLAT_RELATIVE * abs(means[1]):
        return {**none, "estimate_note": "flat"}
    estimate = _bracket_estimate(x, means)
    if len(table) == 1:
        return {**none, "lr_estimate": 10**estimate, "estimate_note": "one seed: no interval"}
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    picks = rng.integers(0, len(table), size=(BOOTSTRAP_SAMPLES, len(table)))
    samples = losses[picks].mean(axis=1)  # (samples, 3): each sample's means at the three rates
    vertices = np.array([_bracket_estimate(x, sample) for sample in samples])
    low, high = np.percentile(vertices, INTERVAL_PERCENTILES)
    if low <= x[0] and high >= x[2]:
        return {**none, "estimate_note": "noisy"}
    return {"lr_estimate": 10**estimate, "lr_low": 10 ** float(low), "lr_high": 10 ** float(high), "estimate_note": ""}


def lr_sensitivity(group: pd.DataFrame) -> float:
    """Wortsman et al.'s LR sensitivity of one optimizer × schedule (see the module doc) from
    its rows of ``runs.csv`` (``lr``, ``status``, ``final_val_loss``, ``initial_loss``); NaN
    without runs."""
    if group.empty:
        return math.nan
    untrained = group["initial_loss"].astype(float)
    final = group["final_val_loss"].astype(float)
    usable = (group["status"] != RunStatus.DIVERGED) & np.isfinite(final)
    clipped = np.where(usable, np.minimum(final, untrained), untrained)
    per_rate = pd.Series(clipped, index=group.index).groupby(group["lr"]).mean()
    return float((per_rate - per_rate.min()).mean())
