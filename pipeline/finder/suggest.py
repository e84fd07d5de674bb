"""The LR range test's pure parts: the ramp, the smoothing, the suggestion rules and the
summaries over seeds (NumPy only; the TensorFlow test is :mod:`pipeline.finder.range_test`).

- **Suggestions are fastai's four rules, exactly** (:func:`suggest_valley`,
  :func:`suggest_slide`, :func:`suggest_minimum`, :func:`suggest_steep`, ported from
  ``fastai.callback.schedule`` line by line, edge cases included) on fastai's crop of the
  curve (:func:`fastai_crop`), so that fastai's own functions given a curve of ours name the
  same rates. Two guards of ours return ``None`` rather than a made-up rate for a flat curve
  or one with too few points (:func:`suggest` says why).
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
from pipeline.config.schema import CROP_END, CROP_START_DIVISOR, SUGGESTIONS, FinderConfig, finder_points

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
# Suggestions: fastai's four rules, exactly (pure NumPy)
# --------------------------------------------------------------------------------------

def fastai_crop(lr: ArrayLike, smooth: ArrayLike, num_it: int) -> Tuple[np.ndarray, np.ndarray]:
    """The curve fastai's suggestion rules see: ``lr_find`` crops the recorded rates and
    smoothed losses to ``[num_it // 10 : -5]`` (``num_it``: the steps the ramp was planned
    for, ``finder.steps``; a test that stopped early is cropped the same way), then cuts both
    at the first NaN loss (an infinite loss stays, as in fastai). Both as float32: fastai
    holds them in float32 tensors, and its rules compute in that precision."""
    rates = np.asarray(lr, dtype=np.float64).ravel()
    losses = np.asarray(smooth, dtype=np.float64).ravel()
    if rates.shape != losses.shape:
        raise ValueError(f"lr and smooth_loss differ in length: {rates.size} and {losses.size}")
    rates = rates.astype(np.float32)[int(num_it) // CROP_START_DIVISOR : -CROP_END]
    losses = losses.astype(np.float32)[int(num_it) // CROP_START_DIVISOR : -CROP_END]
    nan = np.flatnonzero(np.isnan(losses))
    if nan.size:
        rates, losses = rates[: nan[0]], losses[: nan[0]]
    return rates, losses


def suggest_valley(rates: np.ndarray, losses: np.ndarray) -> float:
    """fastai's ``valley`` (``fastai.callback.schedule.valley``), on a cropped curve.

    ``lds[i]``: the length of the longest strictly decreasing subsequence (not necessarily
    contiguous) ending at ``i``; ``max_end``: the first index with the largest ``lds`` (length
    ``L``); ``max_start = max_end − L`` (one before where a contiguous run of length ``L``
    would start); ``sections = (max_end − max_start)/3``; the rate at ``idx = max_start +
    int(sections) + int(sections/2)``: about the middle of the valley's second third, where the
    loss still falls well, far from the blow-up.

    Edge cases as fastai has them: nothing descends (``L = 1``): index 0, the first rate; a
    two-point valley at the very start (``max_start = −1``, ``L = 2``): index −1, which Python
    reads as the *last* rate.
    """
    values = np.asarray(losses)
    lds = np.ones(values.size, dtype=np.int64)
    max_start = max_end = 0
    for i in range(1, values.size):
        earlier_higher = values[:i] > values[i]
        if earlier_higher.any():
            lds[i] = lds[:i][earlier_higher].max() + 1
        # fastai updates the longest valley inside its inner loop with a strict "<": the first
        # index to reach the final maximum, the same as here.
        if lds[max_end] < lds[i]:
            max_end = i
            max_start = max_end - int(lds[max_end])
    sections = (max_end - max_start) / 3
    index = max_start + int(sections) + int(sections / 2)
    return float(rates[index])


def suggest_slide(
    rates: np.ndarray, losses: np.ndarray, lr_diff: int = 15, thresh: float = 0.005, adjust_value: float = 1.0
) -> Optional[float]:
    """fastai's ``slide`` (interval slide rule), on a cropped curve, with fastai's defaults.

    ``grad = np.gradient(losses)`` (per point, not per rate); two indices ``lr_diff`` apart
    slide from the end of the curve towards its start while their gradients differ by more than
    ``thresh``; the rate at the left index where they stop (or at the curve's first point)
    times ``adjust_value``. ``None`` where fastai fails: fewer than ``lr_diff + 1`` points
    (its first left index lies before the curve)."""
    if len(losses) < lr_diff + 1:
        return None
    loss_grad = np.gradient(np.asarray(losses))
    right = -1
    left = right - lr_diff
    local_min_lr = rates[left]
    while left >= -len(losses) and abs(loss_grad[right] - loss_grad[left]) > thresh:
        local_min_lr = rates[left]
        right -= 1
        left -= 1
    return float(local_min_lr) * adjust_value


def suggest_minimum(rates: np.ndarray, losses: np.ndarray) -> float:
    """fastai's ``minimum``: the rate at the lowest loss of a cropped curve (the first on ties),
    divided by 10 (the minimum itself sits at the edge of the blow-up)."""
    return float(rates[int(np.argmin(losses))]) / 10


def suggest_steep(rates: np.ndarray, losses: np.ndarray) -> float:
    """fastai's ``steep``: the forward differences of a cropped curve against ln(rate),
    ``(loss[i+1] − loss[i]) / (ln rate[i+1] − ln rate[i])``, and the rate at the left end of the
    most negative one (the first on ties; a NaN difference, from an infinite loss, is taken
    first, as ``torch.argmin`` takes it)."""
    rates, losses = np.asarray(rates), np.asarray(losses)
    gradients = (losses[1:] - losses[:-1]) / (np.log(rates[1:]) - np.log(rates[:-1]))
    return float(rates[int(np.argmin(gradients))])


#: The rule of each suggestion name (``pipeline.config.schema.SUGGESTIONS``, fastai's order).
RULES = {"valley": suggest_valley, "slide": suggest_slide, "minimum": suggest_minimum, "steep": suggest_steep}


#: The smoothing of each kind of curve when ``finder.beta`` is unset (fastai's for the training
#: loss, torch-lr-finder's for the validation loss).
DEFAULT_BETA = {"train": 0.98, "val": 0.95}


def smoothing(settings: FinderConfig) -> float:
    """The range test's smoothing factor: ``finder.beta``, or :data:`DEFAULT_BETA` of its loss."""
    return float(settings.beta) if settings.beta is not None else DEFAULT_BETA[settings.loss]


def suggest(lr: ArrayLike, smooth: ArrayLike, settings: FinderConfig) -> Dict[str, Any]:
    """Every suggestion of one recorded curve, as fastai's ``lr_find`` computes them (its
    crop, :func:`fastai_crop`, with ``num_it`` = :func:`pipeline.config.schema.finder_points`, then each rule), and the
    reason when there are none.

    Returns ``{"valley", "slide", "minimum", "steep", "reason"}``. Two guards of ours, where
    fastai would still name a rate: ``reason`` is ``"too_few_points"`` when the crop leaves
    fewer than :data:`MIN_POINTS` points with a finite rate > 0 and a finite loss (the test blew
    up within its first rates), and ``"flat"`` when the cropped loss never falls below its first
    value by ``min_drop`` × that value (the rates never got high enough to train, or the model
    cannot learn); all four suggestions are then ``None``. ``slide`` is ``None`` on its own on
    a curve too short for it.
    """
    rates, losses = fastai_crop(lr, smooth, finder_points(settings))
    none: Dict[str, Any] = {name: None for name in SUGGESTIONS}
    usable = np.isfinite(rates) & (rates > 0) & np.isfinite(losses)
    if int(usable.sum()) < MIN_POINTS:
        return {**none, "reason": "too_few_points"}
    first = float(losses[usable][0])
    if first - float(losses[usable].min()) < settings.min_drop * abs(first):
        return {**none, "reason": "flat"}
    return {**{name: RULES[name](rates, losses) for name in SUGGESTIONS}, "reason": None}


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


