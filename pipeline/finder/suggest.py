"""The LR range test's pure parts: the ramp, the smoothing, the suggestion rules and the
summaries over seeds (NumPy only; the TensorFlow test is :mod:`pipeline.finder.range_test`).

- **Suggestions are exact rules** in pure NumPy (:func:`suggest_steepest`,
  :func:`suggest_valley`, :func:`suggest_minimum`) that drop non-finite points first, so a
  NaN/inf tail from the blow-up never breaks them, and that return ``None`` rather than
  a made-up rate for a flat curve or too few points (:func:`suggest` says why).
- **Robustness over seeds**: the test is repeated per seed and summarised by the geometric
  mean, min and max of each suggestion (:func:`summarise_suggestions`), so users see the
  spread instead of trusting one noisy curve.

The Snakefile imports this module for :func:`centred_grid`, :func:`read_suggestion` and
:func:`finder_job_spec`, so it never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from pipeline.config.rates import round_significant
from pipeline.config.schema import SUGGESTIONS, FinderConfig

#: Fewest finite points any rule works from: below this a "curve" is a couple of numbers.
MIN_POINTS = 3

ArrayLike = Union[Sequence[float], np.ndarray]


# --------------------------------------------------------------------------------------
# The ramp and the smoothing (pure)
# --------------------------------------------------------------------------------------


def ramp_rate(settings: FinderConfig, step: int) -> float:
    """The rate of optimizer step ``step`` (0-based) of the ramp.

    ``exponential``: ``start · (end/start)^(step/(steps−1))``; ``linear``:
    ``start + (end−start) · step/(steps−1)``. One step only (``steps == 1``) runs at ``start``.
    """
    start, end = float(settings.start_lr), float(settings.end_lr)
    fraction = step / (settings.steps - 1) if settings.steps > 1 else 0.0
    if settings.mode == "exponential":
        return start * (end / start) ** fraction
    if settings.mode == "linear":
        return start + (end - start) * fraction
    raise ValueError(f"finder.mode={settings.mode!r} is not a ramp; valid: exponential, linear")


def smooth_losses(losses: ArrayLike, beta: float) -> np.ndarray:
    """Debiased exponential moving average, as the range test computes it step by step:
    ``avg_i = beta·avg_{i−1} + (1−beta)·loss_i`` (``avg_{−1} = 0``) and
    ``smooth_i = avg_i / (1 − beta^(i+1))``.

    The debiasing divides out the weight the zero start still holds, so the first points are
    the mean of the losses so far rather than a ramp up from 0. A non-finite loss makes this
    and every later point non-finite (the range test stops there anyway).
    """
    values = np.asarray(losses, dtype=np.float64)
    out = np.empty_like(values)
    average = 0.0
    for index, loss in enumerate(values):
        average = beta * average + (1.0 - beta) * loss
        out[index] = average / (1.0 - beta ** (index + 1))
    return out


def batch_indices(num_examples: int, batch_size: int, steps: int, seed: int) -> List[np.ndarray]:
    """The training-set rows of each of ``steps`` batches.

    One seeded permutation of the training set, read as an endless cycle: batch ``i`` holds
    positions ``i·batch_size … (i+1)·batch_size − 1`` modulo ``num_examples``. Every batch is
    full (one traced graph, equal-weight losses) and the order is a function of the seed.
    """
    if num_examples < 1 or batch_size < 1:
        raise ValueError(f"need examples and a batch size >= 1, got {num_examples} and {batch_size}")
    order = np.random.default_rng(seed).permutation(num_examples)
    positions = np.arange(batch_size)
    return [order[(step * batch_size + positions) % num_examples] for step in range(steps)]


# --------------------------------------------------------------------------------------
# Suggestions (pure NumPy)
# --------------------------------------------------------------------------------------


def _finite_points(lr: ArrayLike, smooth: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """The points with a finite rate > 0 and a finite smoothed loss, in their order."""
    rates = np.asarray(lr, dtype=np.float64).ravel()
    losses = np.asarray(smooth, dtype=np.float64).ravel()
    if rates.shape != losses.shape:
        raise ValueError(f"lr and smooth_loss differ in length: {rates.size} and {losses.size}")
    keep = np.isfinite(rates) & (rates > 0) & np.isfinite(losses)
    return rates[keep], losses[keep]


def suggest_steepest(lr: ArrayLike, smooth: ArrayLike, skip_start: int, skip_end: int) -> Optional[float]:
    """The rate where the smoothed loss falls fastest against log10(rate).

    Rule: keep the finite points; slopes = ``np.gradient(smooth, log10(lr))`` over all of
    them (central differences inside, one-sided at the ends; uneven spacing is handled, so a
    linear ramp works too); among positions ``skip_start … n − skip_end − 1`` take the most
    negative finite slope (the first on ties) and return its rate. ``None`` when fewer than
    :data:`MIN_POINTS` positions remain or no slope there is negative (the loss never falls).
    """
    rates, losses = _finite_points(lr, smooth)
    stop = rates.size - int(skip_end)
    if rates.size < 2 or stop - int(skip_start) < MIN_POINTS:
        return None
    # Repeated rates (a ramp with start == end) give 0/0 slopes: not candidates, no warning.
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = np.gradient(losses, np.log10(rates))
    window = slopes[int(skip_start) : stop]
    candidates = np.where(np.isfinite(window), window, np.inf)
    position = int(np.argmin(candidates))
    if not candidates[position] < 0:
        return None
    return float(rates[int(skip_start) + position])


def longest_descent(smooth: ArrayLike) -> np.ndarray:
    """fastai's DP: element ``i`` is the length of the longest strictly decreasing
    subsequence (not necessarily contiguous) of ``smooth`` that ends at ``i``:
    ``lds[i] = 1 + max(lds[j] for j < i if smooth[j] > smooth[i])`` (1 when there is none).
    O(n²), vectorised over ``j``."""
    values = np.asarray(smooth, dtype=np.float64)
    lds = np.ones(values.size, dtype=np.int64)
    for i in range(1, values.size):
        earlier_higher = values[:i] > values[i]
        if earlier_higher.any():
            lds[i] = lds[:i][earlier_higher].max() + 1
    return lds


def suggest_valley(lr: ArrayLike, smooth: ArrayLike) -> Optional[float]:
    """fastai's ``valley`` suggestion (fastai.callback.schedule.valley), on the finite points.

    Rule, exactly as fastai computes it: ``lds`` = :func:`longest_descent`;
    ``max_end`` = the first index with the largest ``lds`` (length ``L``);
    ``max_start = max_end − L`` (fastai's arithmetic: one before the first point of a
    contiguous run of length ``L``); ``sections = (max_end − max_start)/3 = L/3``; the
    suggestion is the rate at ``idx = max_start + int(sections) + int(sections/2)``, i.e.
    ``max_end − L + ⌊L/3⌋ + ⌊L/6⌋``: about the middle of the valley's second third, a rate
    where the loss is still falling well but far from the blow-up.

    One deviation: when the valley starts at the first point and ``L < 3``, fastai's index is
    −1 and Python's indexing silently returns the *last* rate; here the index is clamped to 0.
    ``None`` when there are fewer than :data:`MIN_POINTS` finite points or no point is lower
    than an earlier one (``L == 1``: nothing descends).
    """
    rates, losses = _finite_points(lr, smooth)
    if rates.size < MIN_POINTS:
        return None
    lds = longest_descent(losses)
    max_end = int(np.argmax(lds))  # argmax returns the first maximum, as fastai's strict "<"
    length = int(lds[max_end])
    if length < 2:
        return None
    max_start = max_end - length
    sections = (max_end - max_start) / 3
    index = max(max_start + int(sections) + int(sections / 2), 0)
    return float(rates[index])


def suggest_minimum(lr: ArrayLike, smooth: ArrayLike) -> Optional[float]:
    """The rate at the lowest smoothed loss (the first on ties), divided by 10: the minimum
    itself sits at the edge of the blow-up, a decade lower is fastai's ``minimum`` rule.
    ``None`` when there are fewer than :data:`MIN_POINTS` finite points."""
    rates, losses = _finite_points(lr, smooth)
    if rates.size < MIN_POINTS:
        return None
    return float(rates[int(np.argmin(losses))] / 10.0)


def suggest(lr: ArrayLike, smooth: ArrayLike, settings: FinderConfig) -> Dict[str, Any]:
    """All three suggestions of one curve and the reason when there are none.

    Returns ``{"steepest", "valley", "minimum", "reason"}``. ``reason`` is
    ``"too_few_points"`` when fewer than ``skip_start + skip_end + MIN_POINTS`` finite points
    remain (the bound composition puts on ``finder.steps``: a test that stopped that early
    blew up from its first rates), ``"flat"`` when the smoothed loss never falls below its
    first finite value by ``min_drop`` × that value (the rates never got high enough to
    train, or the model cannot learn), and ``None`` otherwise. In both cases all three
    suggestions are ``None``. A rule can still give ``None`` on its own (e.g. ``steepest``
    when the loss only fell inside the skipped start).
    """
    rates, losses = _finite_points(lr, smooth)
    none: Dict[str, Any] = {name: None for name in SUGGESTIONS}
    if rates.size < settings.skip_start + settings.skip_end + MIN_POINTS:
        return {**none, "reason": "too_few_points"}
    first = losses[0]
    if first - losses.min() < settings.min_drop * abs(first):
        return {**none, "reason": "flat"}
    return {
        "steepest": suggest_steepest(rates, losses, settings.skip_start, settings.skip_end),
        "valley": suggest_valley(rates, losses),
        "minimum": suggest_minimum(rates, losses),
        "reason": None,
    }


def summarise_suggestions(per_seed: Mapping[int, Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Per suggestion, over the seeds that gave one: ``geomean`` (``exp(mean(ln rate))``, the
    centre of rates that spread over decades), ``min``, ``max`` and ``seeds`` (how many gave
    one). All three numbers are ``None`` when no seed did."""
    summary: Dict[str, Dict[str, Any]] = {}
    for name in SUGGESTIONS:
        values = [float(entry[name]) for entry in per_seed.values() if entry.get(name) is not None]
        values = [value for value in values if math.isfinite(value) and value > 0]
        if values:
            # Clipped: exp(mean(log)) of equal rates can land an ulp outside them.
            geomean = min(max(float(np.exp(np.mean(np.log(values)))), min(values)), max(values))
            summary[name] = {
                "geomean": geomean,
                "min": min(values),
                "max": max(values),
                "seeds": len(values),
            }
        else:
            summary[name] = {"geomean": None, "min": None, "max": None, "seeds": 0}
    return summary


def centred_grid(suggestion: float, decades: float, points: int) -> List[float]:
    """``points`` log-spaced rates from ``suggestion/10^decades`` to ``suggestion·10^decades``,
    each rounded to 4 significant digits (:func:`pipeline.config.rates.round_significant`), sorted
    and deduplicated; one point gives ``[suggestion]`` rounded."""
    if not (math.isfinite(suggestion) and suggestion > 0):
        raise ValueError(f"a suggestion must be a rate > 0, got {suggestion!r}")
    if not (math.isfinite(decades) and decades > 0):
        raise ValueError(f"decades must be > 0, got {decades!r}")
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points!r}")
    if points == 1:
        return [round_significant(suggestion)]
    centre = math.log10(suggestion)
    exponents = np.linspace(centre - decades, centre + decades, int(points))
    return sorted({round_significant(10.0**exponent) for exponent in exponents})


def read_suggestion(path: Union[str, Path], which: str) -> Optional[float]:
    """The geometric mean over seeds of suggestion ``which`` in a ``suggestions.json``
    (``None`` when no seed gave one)."""
    if which not in SUGGESTIONS:
        raise ValueError(f"{which!r} is not a suggestion; valid: {', '.join(SUGGESTIONS)}")
    value = json.loads(Path(path).read_text())["summary"][which]["geomean"]
    return None if value is None else float(value)


# --------------------------------------------------------------------------------------
# The job's spec
# --------------------------------------------------------------------------------------


def finder_job_spec(study: Any, optimizer: str) -> Dict[str, Any]:
    """What a finder job needs, as plain JSON-able data (passed to the job as ``--spec``)."""
    return {
        "optimizer": optimizer,
        "optimizer_options": dict(study.optimizers[optimizer]),
        "model": dict(study.model),
        "finder": dataclasses.asdict(study.finder),
        "batch_size": study.settings.batch_size,
        "seeds": list(study.settings.seeds),
        "deterministic": study.settings.deterministic,
    }


