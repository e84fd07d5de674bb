"""Learning-rate schedules: a validated schedule option -> a Keras ``LearningRateSchedule``.

A schedule is evaluated at the optimizer's step counter (``optimizer.iterations``, 0-based):
the rate at step ``s`` is the rate used by the ``(s + 1)``-th update, and ``float(
optimizer.learning_rate)`` is the rate the *next* update will use. With ``steps_per_epoch``
updates per epoch, epoch ``e`` (0-based) runs steps ``e * steps_per_epoch`` to
``(e + 1) * steps_per_epoch - 1``, and a run has ``total_steps = steps_per_epoch * epochs``
steps, ``0`` to ``total_steps - 1``. Epoch-based knobs are converted to steps here.

Schedule types (``peak`` is the grid rate, ``S`` = steps per epoch, ``T`` = total steps):

``constant``
    ``peak`` at every step (:class:`Constant`).
``step``
    ``peak * factor**k`` from the first step of epoch ``k * every_epochs`` on, i.e. from step
    ``k * every_epochs * S`` (Keras ``PiecewiseConstantDecay``).
``exponential``
    ``peak * decay_rate**(s / S)``: ``decay_rate`` per epoch, applied smoothly per step
    (Keras ``ExponentialDecay``).
``cosine``
    ``peak * ((1 - alpha) * 0.5 * (1 + cos(pi * s / T)) + alpha)`` (Keras ``CosineDecay``);
    the last step ``T - 1`` is one step short of ``alpha * peak``.
``warmup_cosine``
    ``W = max(1, round(warmup_fraction * T))`` warm-up steps at ``peak * s / W`` (so step 0
    has rate 0), then cosine annealing over the remaining ``T - W`` steps:
    ``peak * ((1 - alpha) * 0.5 * (1 + cos(pi * (s - W) / (T - W))) + alpha)`` (Keras
    ``CosineDecay`` with ``warmup_target``).
``warmup_constant``
    the same warm-up, then ``peak``: Keras ``CosineDecay`` with the same warm-up and
    ``alpha=1``, whose decay factor ``(1 - alpha) * cos(...) + alpha`` is exactly 1.
``onecycle``
    fastai's ``fit_one_cycle`` (:class:`OneCycle`): with ``p = s / T``, ``P = pct_start``,
    ``cos_anneal(a, b, x) = a + (1 + cos(pi * (1 - x))) * (b - a) / 2``: ``cos_anneal(peak / div,
    peak, p / P)`` while ``p < P``, then ``cos_anneal(peak, peak / div_final, (p - P) / (1 - P))``.
``wsd``
    warm-up, stable, decay (:class:`WarmupStableDecay`; Hägele et al. 2024): ``W = max(1,
    round(warmup_fraction * T))`` warm-up steps at ``peak * s / W``, ``peak`` until the
    cooldown's ``C = max(1, round(decay_fraction * T))`` last steps, which run at
    ``peak * (1 - sqrt((s - (T - C)) / C))``.
``cosine_restarts``
    SGDR, Keras ``CosineDecayRestarts(peak, first_decay_epochs * S, t_mul, m_mul, alpha)``.
``linear``
    ``peak - (peak - alpha * peak) * s / T``: Keras ``PolynomialDecay(peak, T, alpha * peak,
    power=1)``.
``plateau``
    adaptive: ``peak`` to start with (:class:`Constant`); Keras' ``ReduceLROnPlateau`` on the
    validation loss lowers it during training (:class:`pipeline.training.callbacks.Plateau`,
    :func:`plateau_options`), so the rate a run used is known from its history only.

Keras is imported at module level: only training code imports this module (the study
configuration in :mod:`pipeline.config` stays TensorFlow-free).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from pipeline.config.validation import check_schedule

__all__ = ["Constant", "OneCycle", "WarmupStableDecay", "build_schedule", "schedule_curve", "schedule_table"]

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule


# --------------------------------------------------------------------------------------
# Argument checks (shared by the custom classes and build_schedule)
# --------------------------------------------------------------------------------------


def _check_rate(argument: str, value: Any) -> float:
    """Return ``value`` as a float, or raise ValueError unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{argument} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_count(argument: str, value: Any) -> int:
    """Return ``value`` as an int, or raise ValueError unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{argument} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"name must be a non-empty string, got {value!r}")
    return value


# --------------------------------------------------------------------------------------
# Custom schedules (the types Keras has no class for)
# --------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="pipeline")
class Constant(LearningRateSchedule):
    """The same rate at every step.

    A plain float ``learning_rate`` would do the same in an optimizer; a schedule object
    keeps every run on one code path (the optimizer and its saved config always hold a
    schedule) and lets :func:`schedule_curve` treat all types alike.

    Args:
        learning_rate: The rate, a finite number > 0.
        name: Name scope of the ops.

    Raises:
        ValueError: naming the argument and the value received, if one is invalid.
    """

    def __init__(self, learning_rate: float, name: str = "Constant") -> None:
        super().__init__()
        self.learning_rate = _check_rate("learning_rate", learning_rate)
        self.name = _check_name(name)

    def __call__(self, step: Any) -> Any:
        with keras.name_scope(self.name):
            # Same dtype rule as Keras' own schedules: the dtype of the converted Python float.
            rate = ops.convert_to_tensor(self.learning_rate)
            # full_like keeps the shape of ``step``, so a vector of steps gives a vector.
            return ops.full_like(ops.cast(step, rate.dtype), rate)

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "name": self.name}


def _check_fraction(argument: str, value: Any) -> float:
    """Return ``value`` as a float, or raise ValueError unless it is in (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise ValueError(f"{argument} must be a number in (0, 1), got {value!r}")
    return float(value)


def _check_factor(argument: str, value: Any) -> float:
    """Return ``value`` as a float, or raise ValueError unless it is a finite number >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 1:
        raise ValueError(f"{argument} must be a finite number >= 1, got {value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="pipeline")
class OneCycle(LearningRateSchedule):
    """fastai's 1cycle policy (``fit_one_cycle``; Smith & Topin 2017): cosine annealing up from
    ``peak / div`` to ``peak`` over the first ``pct_start`` of the steps, then down to
    ``peak / div_final`` (formula in the module doc; fastai's defaults).

    Args:
        peak: The highest rate (the grid rate), a finite number > 0.
        total_steps: Steps of the run, an integer >= 1; step ``s`` is at position ``s / total_steps``.
        pct_start: The share of the steps that rise, in (0, 1).
        div: ``peak / div`` is the first rate; >= 1.
        div_final: ``peak / div_final`` is where the run ends; >= 1.
        name: Name scope of the ops.

    Raises:
        ValueError: naming the argument and the value received, if one is invalid.
    """

    def __init__(
        self, peak: float, total_steps: int, pct_start: float = 0.25, div: float = 25.0, div_final: float = 1e5, name: str = "OneCycle"
    ) -> None:
        super().__init__()
        self.peak = _check_rate("peak", peak)
        self.total_steps = _check_count("total_steps", total_steps)
        self.pct_start = _check_fraction("pct_start", pct_start)
        self.div = _check_factor("div", div)
        self.div_final = _check_factor("div_final", div_final)
        self.name = _check_name(name)

    def __call__(self, step: Any) -> Any:
        with keras.name_scope(self.name):
            position = ops.cast(step, "float32") / float(self.total_steps)

            def anneal(start: float, end: float, fraction: Any) -> Any:
                return start + (1.0 + ops.cos(math.pi * (1.0 - fraction))) * (end - start) / 2.0

            rising = anneal(self.peak / self.div, self.peak, position / self.pct_start)
            falling = anneal(self.peak, self.peak / self.div_final, (position - self.pct_start) / (1.0 - self.pct_start))
            return ops.where(position < self.pct_start, rising, falling)

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak, "total_steps": self.total_steps, "pct_start": self.pct_start, "div": self.div,
            "div_final": self.div_final, "name": self.name,
        }  # fmt: skip


@keras.saving.register_keras_serializable(package="pipeline")
class WarmupStableDecay(LearningRateSchedule):
    """Warm-up, stable, decay (Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training
    Beyond Fixed Training Durations"): a linear warm-up from 0 over ``warmup_steps``, ``peak``
    until the last ``decay_steps``, which follow the (1 − sqrt) cooldown to 0 (formula in the
    module doc).

    Args:
        peak: The stable rate (the grid rate), a finite number > 0.
        total_steps: Steps of the run, an integer >= 2.
        warmup_steps: Warm-up steps, an integer >= 1.
        decay_steps: Cooldown steps, an integer >= 1; ``warmup_steps + decay_steps <= total_steps``.
        name: Name scope of the ops.

    Raises:
        ValueError: naming the argument and the value received, if one is invalid.
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int, decay_steps: int, name: str = "WarmupStableDecay") -> None:
        super().__init__()
        self.peak = _check_rate("peak", peak)
        self.total_steps = _check_count("total_steps", total_steps)
        self.warmup_steps = _check_count("warmup_steps", warmup_steps)
        self.decay_steps = _check_count("decay_steps", decay_steps)
        if self.warmup_steps + self.decay_steps > self.total_steps:
            raise ValueError(
                f"warmup_steps + decay_steps must be at most total_steps, got {self.warmup_steps} + "
                f"{self.decay_steps} > {self.total_steps}"
            )
        self.name = _check_name(name)

    def __call__(self, step: Any) -> Any:
        with keras.name_scope(self.name):
            step = ops.cast(step, "float32")
            decay_start = float(self.total_steps - self.decay_steps)
            warmup = self.peak * step / float(self.warmup_steps)
            # Clamped at 0 before the cooldown (the where() evaluates both sides).
            into_decay = ops.maximum(step - decay_start, 0.0) / float(self.decay_steps)
            cooldown = self.peak * (1.0 - ops.sqrt(ops.minimum(into_decay, 1.0)))
            return ops.where(step < float(self.warmup_steps), warmup, ops.where(step < decay_start, self.peak, cooldown))

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps, "name": self.name,
        }  # fmt: skip


# --------------------------------------------------------------------------------------
# Building and evaluating schedules
# --------------------------------------------------------------------------------------


def build_schedule(
    schedule: Mapping[str, Any], peak_lr: float, steps_per_epoch: int, epochs: int
) -> LearningRateSchedule:
    """The Keras schedule of one schedule option at one peak rate.

    Args:
        schedule: A schedule option, e.g. ``{"name": "cosine", "type": "cosine",
            "alpha": 0.01}``; ``name`` is optional and only used in error messages. Unset
            knobs take the defaults of :data:`pipeline.config.schema.SCHEDULE_TYPES`.
        peak_lr: The grid rate: the schedule's highest rate.
        steps_per_epoch: Optimizer updates per epoch (batches per epoch).
        epochs: Epochs of the run.

    Returns:
        A schedule to pass as an optimizer's ``learning_rate`` (see the module docstring for
        the formula of each type).

    Raises:
        ValueError: naming the argument if ``peak_lr`` is not a finite number > 0, or
            ``steps_per_epoch`` or ``epochs`` is not an integer >= 1; naming
            ``warmup_fraction`` if the warm-up would last the whole run.
        pipeline.config.schema.StudyConfigError: (a ValueError) naming ``schedule.<name>.<key>``
            if the option is invalid.
    """
    peak = _check_rate("peak_lr", peak_lr)
    steps_per_epoch = _check_count("steps_per_epoch", steps_per_epoch)
    # Checked before check_schedule, which compares every_epochs with epochs.
    epochs = _check_count("epochs", epochs)
    name = schedule.get("name", schedule.get("type"))
    options = check_schedule(str(name), {key: value for key, value in schedule.items() if key != "name"}, epochs)
    kind = options["type"]
    total_steps = steps_per_epoch * epochs

    if kind in ("constant", "plateau"):
        return Constant(peak)

    if kind == "step":
        every_steps = options["every_epochs"] * steps_per_epoch
        starts = list(range(every_steps, total_steps, every_steps))  # first step of each drop
        # PiecewiseConstantDecay gives values[k] for boundaries[k-1] < step <= boundaries[k]
        # (values[0] for step <= boundaries[0]), so boundary ``start - 1`` makes ``start``
        # the first step at the decayed rate.
        boundaries = [start - 1 for start in starts]
        values = [peak * float(options["factor"]) ** k for k in range(len(starts) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)

    if kind == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            peak, decay_steps=steps_per_epoch, decay_rate=float(options["decay_rate"])
        )

    if kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps=total_steps, alpha=float(options["alpha"]))

    if kind == "onecycle":
        return OneCycle(
            peak, total_steps, pct_start=float(options["pct_start"]), div=float(options["div"]), div_final=float(options["div_final"])
        )

    if kind == "wsd":
        warmup_steps = max(1, round(float(options["warmup_fraction"]) * total_steps))
        decay_steps = max(1, round(float(options["decay_fraction"]) * total_steps))
        if warmup_steps + decay_steps > total_steps:
            raise ValueError(
                f"schedule.{name}: warmup_fraction={options['warmup_fraction']!r} and decay_fraction="
                f"{options['decay_fraction']!r} give {warmup_steps} + {decay_steps} steps of {total_steps} in all "
                f"(steps_per_epoch={steps_per_epoch} x epochs={epochs})"
            )
        return WarmupStableDecay(peak, total_steps, warmup_steps, decay_steps)

    if kind == "cosine_restarts":
        return keras.optimizers.schedules.CosineDecayRestarts(
            peak,
            first_decay_steps=int(options["first_decay_epochs"]) * steps_per_epoch,
            t_mul=float(options["t_mul"]),
            m_mul=float(options["m_mul"]),
            alpha=float(options["alpha"]),
        )

    if kind == "linear":
        return keras.optimizers.schedules.PolynomialDecay(
            peak, decay_steps=total_steps, end_learning_rate=float(options["alpha"]) * peak, power=1.0
        )

    # warmup_constant and warmup_cosine. Python's round() rounds halves to even.
    fraction = float(options["warmup_fraction"])
    warmup_steps = max(1, round(fraction * total_steps))
    if warmup_steps >= total_steps:
        raise ValueError(
            f"schedule.{name}.warmup_fraction={options['warmup_fraction']!r} gives {warmup_steps} warm-up "
            f"steps of {total_steps} in all (steps_per_epoch={steps_per_epoch} x epochs={epochs}); "
            "the warm-up must end before the last step"
        )
    # Keras' warm-up: initial + (target - initial) * step / warmup_steps for
    # step < warmup_steps, i.e. peak * step / warmup_steps here; then cosine decay of
    # step - warmup_steps over decay_steps (the step is clamped at decay_steps + warmup_steps).
    # warmup_constant is the same with alpha=1: the decay factor (1 - 1) * cos(...) + 1 is
    # exactly 1, so both warm-ups are one computation and agree bit for bit.
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=total_steps - warmup_steps,
        alpha=1.0 if kind == "warmup_constant" else float(options["alpha"]),
        warmup_target=peak,
        warmup_steps=warmup_steps,
    )


def plateau_options(schedule: Mapping[str, Any], epochs: int) -> dict[str, Any] | None:
    """The ``ReduceLROnPlateau`` knobs of a ``plateau`` schedule option (validated, defaults
    filled in), or None for a schedule that is a formula of the step."""
    if schedule.get("type") != "plateau":
        return None
    name = schedule.get("name", "plateau")
    options = check_schedule(str(name), {key: value for key, value in schedule.items() if key != "name"}, epochs)
    return {key: value for key, value in options.items() if key != "type"}


def _as_steps(steps: int | Sequence[int]) -> np.ndarray:
    """``steps`` as a 1-D int64 array: ``0..steps-1`` for an int, else the given steps."""
    if isinstance(steps, numbers.Integral) and not isinstance(steps, bool):
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps!r}")
        return np.arange(int(steps), dtype=np.int64)
    if isinstance(steps, (bool, str, bytes)):
        raise ValueError(f"steps must be an int or a sequence of ints, got {steps!r}")
    array = np.asarray(steps)
    if array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"steps must be an int or a 1-D sequence of ints, got {steps!r}")
    if array.size and array.min() < 0:
        raise ValueError(f"steps must be >= 0, got {steps!r}")
    return array.astype(np.int64)


#: Schedules built only from correctly rounded operations (compare, multiply, divide, add),
#: whose vector kernels therefore give the same bits as per-step calls.
_EXACT_WHEN_VECTORISED: tuple[type, ...] = (Constant, keras.optimizers.schedules.PiecewiseConstantDecay)


def schedule_table(schedules: Sequence[LearningRateSchedule], steps: int) -> np.ndarray:
    """The rates of several schedules at steps ``0..steps-1``, computed in one compiled program;
    a float32 array of shape ``(steps, len(schedules))``.

    Each schedule is called on a scalar step inside a ``tf.map_fn`` loop: the scalar kernels
    and the graph optimizer a compiled training step uses when it evaluates a schedule at the
    optimizer's step counter, so the values are the rates such a step trains with. They may
    differ from eager calls (:func:`schedule_curve`) in the last float32 bit (``pow``,
    ``cos``), as a training step's do. This is how the population engine gets every member's
    rate at every step in well under a second, where eager calls take ~0.4 ms each.
    """
    import tensorflow as tf

    schedules = list(schedules)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps!r}")
    if not schedules or steps == 0:
        return np.zeros((int(steps), len(schedules)), dtype=np.float32)

    @tf.function
    def table() -> Any:
        return tf.map_fn(
            lambda step: tf.stack([tf.cast(schedule(step), tf.float32) for schedule in schedules]),
            tf.range(int(steps), dtype=tf.int64),
            fn_output_signature=tf.float32,
        )

    return np.asarray(table(), dtype=np.float32).reshape(int(steps), len(schedules))


def schedule_curve(schedule: LearningRateSchedule, steps: int | Sequence[int]) -> np.ndarray:
    """The rates of ``schedule`` at steps ``0..steps-1`` (an int) or at the given steps.

    The values equal per-step calls ``float(schedule(step))`` bit for bit, which is also
    what ``float(optimizer.learning_rate)`` reports. Schedules made of correctly rounded
    operations only (:class:`Constant`, ``PiecewiseConstantDecay``)
    are evaluated on the whole vector of steps at once. The others are called step by step
    (about 0.3-0.5 ms a step on a CPU): ``pow`` and ``cos`` have vector kernels that differ
    from the scalar ones in the last float32 bit, and ``CosineDecay`` with warm-up branches
    with ``ops.cond``, which takes a scalar step only. (Inside a compiled train step,
    TensorFlow's graph optimizer may change the last bit too, see :func:`schedule_table`;
    that is below float32 precision and not something a schedule can control.)

    Args:
        schedule: Any Keras learning-rate schedule.
        steps: A number of steps, or a sequence of step indices (ints >= 0).

    Returns:
        A float64 array with one rate per step.

    Raises:
        ValueError: if ``steps`` is negative or not integers.
    """
    array = _as_steps(steps)
    if array.size == 0:
        return np.empty(0, dtype=np.float64)
    if type(schedule) in _EXACT_WHEN_VECTORISED:  # exact type: a subclass may override __call__
        rates = ops.convert_to_numpy(schedule(ops.convert_to_tensor(array)))
        return np.asarray(rates, dtype=np.float64).reshape(array.shape)
    return np.array(
        [float(ops.convert_to_numpy(schedule(ops.convert_to_tensor(step)))) for step in array], dtype=np.float64
    )
