"""The LR range test ("LR finder"): ramp the learning rate over a few hundred batches on a
fresh model, record every batch's loss, and suggest a rate from the smoothed curve.

Done the way the usual implementations (fastai ``lr_find``, torch-lr-finder, Lightning and
their Keras ports) are not:

- **The loss of each batch**, computed in our own ``tf.GradientTape`` train step, never
  Keras' per-epoch running mean (``logs["loss"]`` at batch end). A running mean lags the
  true curve more and more as the epoch goes on, so the blow-up shows late and every
  suggestion moves to too-high rates.
- **Reproducible**: a fresh model per call (``clear_session`` + ``set_random_seed``), batches
  from a seeded permutation, TensorFlow op determinism (``configure_tensorflow``): the same
  seed gives the identical curve.
- **Suggestions are exact rules** in pure NumPy (:func:`suggest_steepest`,
  :func:`suggest_valley`, :func:`suggest_minimum`) that drop non-finite points first, so a
  NaN/inf tail from the blow-up never breaks them, and that return ``None`` rather than
  a made-up rate for a flat curve or too few points (:func:`suggest` says why).
- **Robustness over seeds**: the test is repeated per seed and summarised by the geometric
  mean, min and max of each suggestion (:func:`summarise_suggestions`), so users see the
  spread instead of trusting one noisy curve.

The test uses its own model and writes only the files it is asked for, so it leaves no
trace on the study's training runs.

Command line (one Snakemake job per optimizer)::

    python -m pipeline.finder --spec '<json>' --data data.npz --threads N \\
        --curve finder.csv --suggestions suggestions.json

TensorFlow and Keras are imported inside functions: the Snakefile imports this module for
:func:`centred_grid` and :func:`read_suggestion`, and the CLI must set the thread counts
(:func:`pipeline.device.configure_tensorflow`) before TensorFlow is first imported.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from pipeline.config import FinderConfig, round_significant
from pipeline.device import add_device_arguments
from pipeline.io import write_atomic, write_json_atomic

if TYPE_CHECKING:  # pandas is imported where used, to keep this module cheap to import
    import pandas as pd

SUGGESTIONS = ("steepest", "valley", "minimum")
CURVE_COLUMNS = ["optimizer", "seed", "step", "lr", "loss", "smooth_loss"]
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
# The range test (TensorFlow)
# --------------------------------------------------------------------------------------


def range_test(
    model_options: Mapping[str, Any],
    optimizer_options: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    settings: FinderConfig,
    batch_size: int,
    seed: int,
) -> "pd.DataFrame":
    """Run one range test on a fresh model; one row per optimizer step taken.

    Step ``i`` sets the optimizer's rate to :func:`ramp_rate` ``(settings, i)``, computes the
    loss of batch ``i`` (:func:`batch_indices`) with the current weights, applies its
    gradients at that rate, and records ``step`` (0-based), ``lr`` (that rate, as float64;
    the optimizer holds its float32 rounding), ``loss`` (that batch's loss, before the
    update) and ``smooth_loss`` (:func:`smooth_losses` with ``settings.beta``).

    The test stops after recording a step whose loss is non-finite, or whose smoothed loss
    exceeds ``settings.stop_factor`` × the lowest smoothed loss of the earlier steps. The
    result's ``attrs["stopped"]`` says why (``"non_finite"``, ``"stop_factor"``) or is
    ``None`` when the ramp reached ``end_lr``.

    Call :func:`pipeline.device.configure_tensorflow` first (threads, op determinism).
    """
    import keras
    import pandas as pd
    import tensorflow as tf

    from pipeline.data import num_classes
    from pipeline.models import build_model
    from pipeline.train import build_optimizer

    keras.backend.clear_session()
    keras.utils.set_random_seed(int(seed))
    # The policy is process-global: a mixed-precision training run earlier in this process
    # must not change the finder's numbers.
    keras.mixed_precision.set_global_policy("float32")
    x_train, y_train = np.asarray(arrays["x_train"]), np.asarray(arrays["y_train"])
    model = build_model(dict(model_options), x_train.shape[1:], num_classes(arrays))
    optimizer = build_optimizer(optimizer_options, learning_rate=float(settings.start_lr))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(x: Any, y: Any) -> Tuple[Any, Any]:
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits)
            if model.losses:  # regularisation terms, as Keras' own train step adds them
                loss = loss + tf.add_n(model.losses)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        # The rate apply_gradients read, returned so that the caller can check it is the one
        # it set (a setter that rebinds instead of assigning would leave a stale rate here).
        return loss, tf.convert_to_tensor(optimizer.learning_rate)

    rows: List[Dict[str, float]] = []
    average, best = 0.0, math.inf
    stopped: Optional[str] = None
    for step, rows_of_batch in enumerate(batch_indices(len(x_train), int(batch_size), settings.steps, int(seed))):
        rate = ramp_rate(settings, step)
        # Keras 3's setter assigns the existing rate variable, which the traced step reads.
        optimizer.learning_rate = rate
        loss_tensor, used = train_step(tf.constant(x_train[rows_of_batch]), tf.constant(y_train[rows_of_batch]))
        if float(used) != float(np.asarray(rate, dtype=used.dtype.as_numpy_dtype)):
            raise RuntimeError(f"the optimizer applied rate {float(used)!r} at step {step}, not the ramp's {rate!r}")
        loss = float(loss_tensor)
        average = settings.beta * average + (1.0 - settings.beta) * loss
        smooth = average / (1.0 - settings.beta ** (step + 1))
        rows.append({"step": step, "lr": rate, "loss": loss, "smooth_loss": smooth})
        if not (math.isfinite(loss) and math.isfinite(smooth)):
            stopped = "non_finite"
            break
        if smooth > settings.stop_factor * best:
            stopped = "stop_factor"
            break
        best = min(best, smooth)
    frame = pd.DataFrame(rows, columns=["step", "lr", "loss", "smooth_loss"])
    frame["step"] = frame["step"].astype(np.int64)
    frame.attrs["stopped"] = stopped
    return frame


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
    each rounded to 4 significant digits (:func:`pipeline.config.round_significant`), sorted
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
# The job
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


def run_finder(spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Tuple["pd.DataFrame", Dict[str, Any]]:
    """The range test for every seed of a spec: the curves (:data:`CURVE_COLUMNS`, all seeds)
    and the suggestions document. TensorFlow must be configured already."""
    import pandas as pd

    settings = FinderConfig(**spec["finder"])
    curves = []
    per_seed: Dict[int, Dict[str, Any]] = {}
    for seed in spec["seeds"]:
        curve = range_test(spec["model"], spec["optimizer_options"], arrays, settings, int(spec["batch_size"]), int(seed))
        entry = suggest(curve["lr"].to_numpy(), curve["smooth_loss"].to_numpy(), settings)
        entry.update({"steps_run": len(curve), "stopped": curve.attrs.get("stopped")})
        per_seed[int(seed)] = entry
        curves.append(curve.assign(optimizer=spec["optimizer"], seed=int(seed))[CURVE_COLUMNS])
    table = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    document = {
        "optimizer": spec["optimizer"],
        "settings": dataclasses.asdict(settings),
        "per_seed": {str(seed): entry for seed, entry in per_seed.items()},
        "summary": summarise_suggestions(per_seed),
    }
    return table, document


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="LR range test of one optimizer, over the study's seeds.")
    parser.add_argument("--spec", required=True, help="finder spec as JSON (see finder_job_spec)")
    parser.add_argument("--data", required=True, type=Path, help="the study's dataset .npz")
    add_device_arguments(parser)
    parser.add_argument("--curve", required=True, type=Path, help="output: finder.csv (all seeds)")
    parser.add_argument("--suggestions", required=True, type=Path, help="output: suggestions.json")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)

    from pipeline.device import configure_tensorflow

    # Before anything imports TensorFlow: thread counts only apply to pools not yet created.
    configure_tensorflow(
        threads=args.threads, deterministic=bool(spec.get("deterministic", True)), gpus=args.gpus
    )
    from pipeline.data import load_npz

    table, document = run_finder(spec, load_npz(args.data))
    write_atomic(args.curve, lambda temporary: table.to_csv(temporary, index=False, na_rep="nan"))
    write_json_atomic(args.suggestions, document)
    for seed, entry in document["per_seed"].items():
        rates = ", ".join(f"{name} {entry[name]:.3g}" if entry[name] is not None else f"{name} -" for name in SUGGESTIONS)
        print(f"{spec['optimizer']} seed {seed}: {entry['steps_run']} steps ({entry['stopped'] or 'full ramp'}); {rates}"
              + (f" [{entry['reason']}]" if entry["reason"] else ""), flush=True)


if __name__ == "__main__":
    main()
