"""Tests of pipeline.training.schedules: every type against a NumPy formula written from the math.

The references below never call Keras: they are the formulas of the module docstring in
float64. Keras evaluates in float32, hence ``rtol=1e-6`` plus a tiny ``atol`` for the cosine
tail, where ``1 + cos(x)`` cancels to a small number and float32 keeps ~1e-7 absolute.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Dict, List

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.config.schema import StudyConfigError
from pipeline.training.schedules import Constant, OneCycle, WarmupStableDecay, build_schedule, schedule_curve

pytestmark = pytest.mark.tf

PEAK = 0.3
#: (steps_per_epoch, epochs)
SETTINGS = [(3, 5), (7, 10)]
TOL = {"rtol": 1e-6, "atol": 1e-7 * PEAK}

#: Warm-up steps max(1, round(fraction * total_steps)), worked out by hand per (fraction, total).
WARMUP_STEPS = {(0.1, 15): 2, (0.2, 15): 3, (0.1, 70): 7, (0.2, 70): 14, (0.05, 15): 1, (0.05, 70): 4}
#: WSD cooldown steps max(1, round(decay_fraction * total_steps)), by hand (round half to even).
COOLDOWN_STEPS = {(0.2, 15): 3, (0.2, 70): 14, (0.5, 15): 8, (0.5, 70): 35}


# --------------------------------------------------------------------------------------
# Independent NumPy references
# --------------------------------------------------------------------------------------


def _cosine(progress: np.ndarray, alpha: float) -> np.ndarray:
    return PEAK * ((1.0 - alpha) * 0.5 * (1.0 + np.cos(np.pi * progress)) + alpha)


def reference(option: Dict[str, Any], spe: int, epochs: int, steps: np.ndarray) -> np.ndarray:
    """The rate at 0-based optimizer steps ``steps``, from the math alone."""
    s = np.asarray(steps, dtype=np.float64)
    total = spe * epochs
    kind = option["type"]
    if kind == "constant":
        return np.full_like(s, PEAK)
    if kind == "step":
        epoch = np.floor(s / spe)  # 0-based epoch of each step
        return PEAK * option["factor"] ** np.floor(epoch / option["every_epochs"])
    if kind == "exponential":
        return PEAK * option["decay_rate"] ** (s / spe)
    if kind == "cosine":
        return _cosine(s / total, option["alpha"])
    if kind == "onecycle":
        # fastai: combined_cos(pct_start, peak/div, peak, peak/div_final) at position s/total.
        position, start = s / total, option["pct_start"]

        def anneal(a: float, b: float, x: np.ndarray) -> np.ndarray:
            return a + (1 + np.cos(np.pi * (1 - x))) * (b - a) / 2

        rising = anneal(PEAK / option["div"], PEAK, position / start)
        falling = anneal(PEAK, PEAK / option["div_final"], (position - start) / (1 - start))
        return np.where(position < start, rising, falling)
    if kind == "wsd":
        warmup = WARMUP_STEPS[(option["warmup_fraction"], total)]
        cooldown = COOLDOWN_STEPS[(option["decay_fraction"], total)]
        decay_start = total - cooldown
        sqrt_decay = PEAK * (1 - np.sqrt(np.clip(s - decay_start, 0, None) / cooldown))
        return np.where(s < warmup, PEAK * s / warmup, np.where(s < decay_start, PEAK, sqrt_decay))
    if kind == "cosine_restarts":
        # SGDR: cycle i starts at T0 (t^i - 1)/(t - 1) and lasts T0 t^i; Keras scales the cosine
        # part (not alpha) by m_mul^i.
        first, t, m = option["first_decay_epochs"] * spe, option["t_mul"], option["m_mul"]
        if t == 1:
            cycle = np.floor(s / first)
            start = cycle * first
        else:
            cycle = np.floor(np.log(1 - s / first * (1 - t)) / np.log(t))
            start = first * (1 - t**cycle) / (1 - t)
        fraction = (s - start) / (first * t**cycle)
        return PEAK * ((1 - option["alpha"]) * m**cycle * 0.5 * (1 + np.cos(np.pi * fraction)) + option["alpha"])
    if kind == "linear":
        return PEAK - (PEAK - option["alpha"] * PEAK) * s / total
    warmup = WARMUP_STEPS[(option["warmup_fraction"], total)]
    ramp = PEAK * s / warmup
    if kind == "warmup_constant":
        return np.where(s < warmup, ramp, PEAK)
    assert kind == "warmup_cosine"
    return np.where(s < warmup, ramp, _cosine((s - warmup) / (total - warmup), option["alpha"]))


def key_steps(option: Dict[str, Any], spe: int, epochs: int) -> List[int]:
    """0, 1, mid, the last two steps, and both sides of every change of regime."""
    total = spe * epochs
    steps = {0, 1, total // 2, total - 2, total - 1}
    if option["type"] == "step":
        for start in range(option["every_epochs"] * spe, total, option["every_epochs"] * spe):
            steps |= {start - 1, start, start + 1}
    if option["type"].startswith("warmup") or option["type"] == "wsd":
        warmup = WARMUP_STEPS[(option["warmup_fraction"], total)]
        steps |= {warmup - 1, warmup, warmup + 1}
    if option["type"] == "wsd":
        start = total - COOLDOWN_STEPS[(option["decay_fraction"], total)]
        steps |= {start - 1, start, start + 1}
    if option["type"] == "onecycle":
        peak_step = int(option["pct_start"] * total)
        steps |= {peak_step - 1, peak_step, peak_step + 1}
    if option["type"] == "cosine_restarts":
        length, start = option["first_decay_epochs"] * spe, 0
        while start < total:
            steps |= {start - 1, start, start + 1}
            start, length = start + length, length * option["t_mul"]
    return sorted(step for step in steps if 0 <= step < total)


OPTIONS: List[Dict[str, Any]] = [
    {"type": "constant"},
    {"type": "step", "every_epochs": 2, "factor": 0.5},
    {"type": "step", "every_epochs": 3, "factor": 0.1},
    {"type": "exponential", "decay_rate": 0.9},
    {"type": "exponential", "decay_rate": 0.5},
    {"type": "cosine", "alpha": 0.0},
    {"type": "cosine", "alpha": 0.01},
    {"type": "warmup_cosine", "warmup_fraction": 0.1, "alpha": 0.0},
    {"type": "warmup_cosine", "warmup_fraction": 0.2, "alpha": 0.05},
    {"type": "warmup_constant", "warmup_fraction": 0.1},
    {"type": "warmup_constant", "warmup_fraction": 0.2},
    {"type": "onecycle", "pct_start": 0.25, "div": 25.0, "div_final": 1e5},
    {"type": "onecycle", "pct_start": 0.3, "div": 10.0, "div_final": 100.0},
    {"type": "wsd", "warmup_fraction": 0.05, "decay_fraction": 0.2},
    {"type": "wsd", "warmup_fraction": 0.1, "decay_fraction": 0.5},
    {"type": "cosine_restarts", "first_decay_epochs": 1, "t_mul": 2.0, "m_mul": 1.0, "alpha": 0.0},
    {"type": "cosine_restarts", "first_decay_epochs": 2, "t_mul": 1.0, "m_mul": 0.5, "alpha": 0.1},
    {"type": "linear", "alpha": 0.0},
    {"type": "linear", "alpha": 0.1},
]


def _option_id(option: Dict[str, Any]) -> str:
    return "-".join(str(value) for value in option.values())


def rate_at(schedule: keras.optimizers.schedules.LearningRateSchedule, step: int) -> float:
    """One per-step call, with an int64 step like ``optimizer.iterations``."""
    return float(keras.ops.convert_to_numpy(schedule(keras.ops.convert_to_tensor(np.int64(step)))))


# --------------------------------------------------------------------------------------
# Formulas
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spe,epochs", SETTINGS)
@pytest.mark.parametrize("option", OPTIONS, ids=_option_id)
def test_rate_at_key_steps_matches_formula(option: Dict[str, Any], spe: int, epochs: int) -> None:
    schedule = build_schedule({"name": "s", **option}, PEAK, spe, epochs)
    steps = key_steps(option, spe, epochs)
    got = np.array([rate_at(schedule, step) for step in steps])
    np.testing.assert_allclose(got, reference(option, spe, epochs, np.array(steps)), **TOL)


@pytest.mark.parametrize("spe,epochs", SETTINGS)
@pytest.mark.parametrize("option", OPTIONS, ids=_option_id)
def test_curve_over_all_steps_matches_formula(option: Dict[str, Any], spe: int, epochs: int) -> None:
    curve = schedule_curve(build_schedule(option, PEAK, spe, epochs), spe * epochs)
    assert curve.dtype == np.float64 and curve.shape == (spe * epochs,)
    np.testing.assert_allclose(curve, reference(option, spe, epochs, np.arange(spe * epochs)), **TOL)


@pytest.mark.parametrize(
    "option,kind",
    [
        ({"type": "constant"}, Constant),
        ({"type": "step", "every_epochs": 2}, keras.optimizers.schedules.PiecewiseConstantDecay),
        ({"type": "exponential"}, keras.optimizers.schedules.ExponentialDecay),
        ({"type": "cosine"}, keras.optimizers.schedules.CosineDecay),
        ({"type": "warmup_cosine"}, keras.optimizers.schedules.CosineDecay),
        ({"type": "warmup_constant"}, keras.optimizers.schedules.CosineDecay),
        ({"type": "onecycle"}, OneCycle),
        ({"type": "wsd"}, WarmupStableDecay),
        ({"type": "cosine_restarts"}, keras.optimizers.schedules.CosineDecayRestarts),
        ({"type": "linear"}, keras.optimizers.schedules.PolynomialDecay),
    ],
)
def test_keras_class_per_type(option: Dict[str, Any], kind: type) -> None:
    assert type(build_schedule(option, PEAK, 3, 5)) is kind


def test_step_decay_drops_at_first_step_of_epoch() -> None:
    # 3 steps/epoch, 5 epochs, halve every 2 epochs: epochs 0-1 are steps 0-5, epochs 2-3
    # steps 6-11, epoch 4 steps 12-14.
    schedule = build_schedule({"type": "step", "every_epochs": 2, "factor": 0.5}, 0.4, 3, 5)
    # Keras gives values[0] while step <= boundaries[0]: the boundary is the last old step.
    assert schedule.boundaries == [5, 11]
    np.testing.assert_allclose(schedule.values, [0.4, 0.2, 0.1])
    expected = [0.4] * 6 + [0.2] * 6 + [0.1] * 3
    np.testing.assert_allclose([rate_at(schedule, step) for step in range(15)], expected, rtol=1e-7)
    np.testing.assert_allclose(schedule_curve(schedule, 15), expected, rtol=1e-7)


def test_step_decay_with_one_drop() -> None:
    schedule = build_schedule({"type": "step", "every_epochs": 4, "factor": 0.1}, 1.0, 7, 5)
    assert schedule.boundaries == [27]
    np.testing.assert_allclose([rate_at(schedule, s) for s in (0, 27, 28, 34)], [1.0, 1.0, 0.1, 0.1], rtol=1e-6)


def test_warmups_are_identical_and_reach_peak() -> None:
    spe, epochs = 7, 10
    constant = build_schedule({"type": "warmup_constant", "warmup_fraction": 0.1}, PEAK, spe, epochs)
    cosine = build_schedule({"type": "warmup_cosine", "warmup_fraction": 0.1, "alpha": 0.0}, PEAK, spe, epochs)
    warmup = WARMUP_STEPS[(0.1, 70)]
    assert constant.warmup_steps == cosine.warmup_steps == warmup
    assert cosine.decay_steps == 70 - warmup
    # Same formula, same float32 operations: equal bit for bit.
    np.testing.assert_array_equal(schedule_curve(constant, warmup), schedule_curve(cosine, warmup))
    assert rate_at(constant, 0) == rate_at(cosine, 0) == 0.0
    np.testing.assert_allclose([rate_at(constant, warmup), rate_at(cosine, warmup)], [PEAK, PEAK], rtol=1e-6)


#: (peak, warm-up steps, total steps) of the exact warm-up checks: rates that are not
#: powers of two, warm-ups of one step, of an odd count and of most of the run.
EXACT_WARMUPS = [(0.3, 2, 15), (1e-3, 7, 70), (3.7, 1, 5), (0.0123, 13, 97), (5e-5, 90, 100)]


def warmup_constant_float32(peak: float, warmup: int, steps: np.ndarray) -> np.ndarray:
    """``peak * (step / warmup)`` during the warm-up, then ``peak``: the float32 operations of
    Keras' ``CosineDecay`` warm-up, each correctly rounded, computed with NumPy."""
    step, warmup_steps, rate = steps.astype(np.float32), np.float32(warmup), np.float32(peak)
    return np.where(step < warmup_steps, rate * (step / warmup_steps), rate).astype(np.float64)


@pytest.mark.parametrize("peak,warmup,total", EXACT_WARMUPS)
def test_warmup_constant_equals_its_float32_formula_bit_for_bit(peak: float, warmup: int, total: int) -> None:
    fraction = warmup / total  # round(fraction * total) gives back ``warmup``
    schedule = build_schedule({"type": "warmup_constant", "warmup_fraction": fraction}, peak, total, 1)
    steps = np.arange(total + 3)  # and past the end: the rate stays at the peak
    expected = warmup_constant_float32(peak, warmup, steps)
    np.testing.assert_array_equal([rate_at(schedule, step) for step in steps], expected)
    np.testing.assert_array_equal(schedule_curve(schedule, steps), expected)
    # Traced, as inside a train step: Keras' branch (ops.cond) keeps the same bits too.
    traced = tf.function(lambda step: schedule(step), autograph=False)
    np.testing.assert_array_equal([float(traced(tf.constant(step, tf.int64))) for step in steps], expected)


def test_warmup_is_at_least_one_step() -> None:
    # round(0.01 * 15) = 0 -> 1 step: rate 0 at step 0, the peak from step 1.
    schedule = build_schedule({"type": "warmup_constant", "warmup_fraction": 0.01}, PEAK, 3, 5)
    assert schedule.warmup_steps == 1
    np.testing.assert_allclose(schedule_curve(schedule, 3), [0.0, PEAK, PEAK], rtol=1e-6)


@pytest.mark.parametrize("kind", ["warmup_constant", "warmup_cosine"])
def test_warmup_covering_the_whole_run_is_refused(kind: str) -> None:
    # round(0.9 * 2) = 2 warm-up steps of 2: no step would run at the peak.
    with pytest.raises(ValueError, match=r"schedule\.w\.warmup_fraction=0\.9"):
        build_schedule({"name": "w", "type": kind, "warmup_fraction": 0.9}, PEAK, 1, 2)


def test_cosine_holds_alpha_after_the_last_step() -> None:
    schedule = build_schedule({"type": "cosine", "alpha": 0.01}, PEAK, 3, 5)
    np.testing.assert_allclose([rate_at(schedule, 15), rate_at(schedule, 100)], [0.01 * PEAK] * 2, rtol=1e-5)


# --------------------------------------------------------------------------------------
# schedule_curve
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", OPTIONS[::2] + OPTIONS[-1:], ids=_option_id)
def test_schedule_curve_equals_per_step_calls(option: Dict[str, Any]) -> None:
    schedule = build_schedule(option, PEAK, 7, 10)
    np.testing.assert_array_equal(schedule_curve(schedule, 70), [rate_at(schedule, step) for step in range(70)])
    picked = [69, 0, 21, 21, 6, 7]  # any order, repeats allowed
    np.testing.assert_array_equal(schedule_curve(schedule, picked), [rate_at(schedule, step) for step in picked])
    np.testing.assert_array_equal(schedule_curve(schedule, np.array(picked)), schedule_curve(schedule, picked))


def test_schedule_curve_empty_and_bad_steps() -> None:
    schedule = Constant(0.1)
    assert schedule_curve(schedule, 0).shape == (0,)
    assert schedule_curve(schedule, []).shape == (0,)
    for bad in (-1, [0, -2], [0.5, 1.0], [[0, 1]], "12", True):
        with pytest.raises(ValueError, match="steps"):
            schedule_curve(schedule, bad)


# --------------------------------------------------------------------------------------
# Bad arguments
# --------------------------------------------------------------------------------------


def _assert_names(error: pytest.ExceptionInfo[ValueError], argument: str, value: Any) -> None:
    message = str(error.value)
    assert argument in message and repr(value) in message, message


@pytest.mark.parametrize(
    "make,argument,value",
    [
        (lambda v: Constant(v), "learning_rate", 0),
        (lambda v: Constant(v), "learning_rate", -0.1),
        (lambda v: Constant(v), "learning_rate", math.nan),
        (lambda v: Constant(v), "learning_rate", math.inf),
        (lambda v: Constant(v), "learning_rate", "0.1"),
        (lambda v: Constant(v), "learning_rate", True),
        (lambda v: Constant(0.1, name=v), "name", ""),
        (lambda v: Constant(0.1, name=v), "name", None),
        (lambda v: OneCycle(v, 10), "peak", 0.0),
        (lambda v: OneCycle(0.1, v), "total_steps", 0),
        (lambda v: OneCycle(0.1, 10, pct_start=v), "pct_start", 1.0),
        (lambda v: OneCycle(0.1, 10, div=v), "div", 0.5),
        (lambda v: OneCycle(0.1, 10, div_final=v), "div_final", math.inf),
        (lambda v: WarmupStableDecay(v, 10, 1, 2), "peak", -1.0),
        (lambda v: WarmupStableDecay(0.1, 10, v, 2), "warmup_steps", 0),
        (lambda v: WarmupStableDecay(0.1, 10, 1, v), "decay_steps", 2.5),
        (lambda v: WarmupStableDecay(0.1, 10, 4, v), "decay_steps", 7),  # 4 + 7 > 10
    ],
)
def test_custom_class_rejects_bad_argument(make: Callable[[Any], Any], argument: str, value: Any) -> None:
    with pytest.raises(ValueError) as error:
        make(value)
    _assert_names(error, argument, value)


def test_learning_rate_message() -> None:
    with pytest.raises(ValueError, match=re.escape("learning_rate must be a finite number > 0, got 0")):
        Constant(0)


@pytest.mark.parametrize(
    "argument,value",
    [
        ("peak_lr", 0.0),
        ("peak_lr", -1.0),
        ("peak_lr", math.nan),
        ("peak_lr", math.inf),
        ("peak_lr", None),
        ("steps_per_epoch", 0),
        ("steps_per_epoch", 2.5),
        ("epochs", 0),
        ("epochs", True),
    ],
)
def test_build_schedule_rejects_bad_argument(argument: str, value: Any) -> None:
    arguments = {"peak_lr": PEAK, "steps_per_epoch": 3, "epochs": 5, argument: value}
    with pytest.raises(ValueError) as error:
        build_schedule({"type": "cosine"}, **arguments)
    _assert_names(error, argument, value)


@pytest.mark.parametrize(
    "option,key",
    [
        ({"type": "cosine", "alpha": 2}, "alpha"),
        ({"type": "warmup_cosine", "alpha": -0.5}, "alpha"),
        ({"type": "step", "factor": 0, "every_epochs": 2}, "factor"),
        ({"type": "step", "factor": 1.5, "every_epochs": 2}, "factor"),
        ({"type": "step", "every_epochs": 5}, "every_epochs"),
        ({"type": "step", "every_epochs": 0}, "every_epochs"),
        ({"type": "exponential", "decay_rate": 0}, "decay_rate"),
        ({"type": "warmup_constant", "warmup_fraction": 1.0}, "warmup_fraction"),
        ({"type": "triangular"}, "type"),
        ({"type": "onecycle", "div": 0.5}, "div"),
        ({"type": "onecycle", "pct_start": 0}, "pct_start"),
        ({"type": "wsd", "warmup_fraction": 0.6, "decay_fraction": 0.5}, "warmup_fraction"),
        ({"type": "cosine_restarts", "t_mul": 0.5}, "t_mul"),
        ({"type": "cosine_restarts", "m_mul": 0}, "m_mul"),
        ({"type": "linear", "alpha": 1.5}, "alpha"),
        ({"type": "cosine", "factor": 0.5}, "factor"),
        ({"type": "constant", "alpha": 0.1}, "alpha"),
    ],
)
def test_config_errors_propagate(option: Dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"schedule.bad.{key}")) as error:
        build_schedule({"name": "bad", **option}, PEAK, 3, 5)
    assert isinstance(error.value, StudyConfigError)


def test_name_defaults_to_type_in_messages() -> None:
    with pytest.raises(StudyConfigError, match=re.escape("schedule.cosine.alpha=2")):
        build_schedule({"type": "cosine", "alpha": 2}, PEAK, 3, 5)


# --------------------------------------------------------------------------------------
# Serialisation, graph mode, optimizer
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    [Constant(0.25, name="flat"), Constant(0.25), OneCycle(0.1, 40, 0.3, 10.0, 100.0), WarmupStableDecay(0.1, 40, 3, 8)],
    ids=["named", "default name", "OneCycle", "WarmupStableDecay"],
)
def test_config_round_trip(schedule: keras.optimizers.schedules.LearningRateSchedule) -> None:
    config = schedule.get_config()
    clone = type(schedule).from_config(config)
    assert clone.get_config() == config
    # Registered: the generic Keras (de)serialisation finds the class by name.
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert type(restored) is type(schedule) and restored.get_config() == config
    optimizer = keras.optimizers.SGD.from_config(keras.optimizers.SGD(learning_rate=schedule).get_config())
    assert optimizer._learning_rate.get_config() == config
    np.testing.assert_array_equal(schedule_curve(clone, 8), schedule_curve(schedule, 8))


@pytest.mark.parametrize(
    "schedule", [Constant(0.25), OneCycle(0.1, 7), WarmupStableDecay(0.1, 7, 2, 3)], ids=["Constant", "OneCycle", "WarmupStableDecay"]
)
def test_custom_schedule_in_graph_mode(schedule: keras.optimizers.schedules.LearningRateSchedule) -> None:
    traced = tf.function(lambda step: schedule(step), autograph=False)
    got = [float(traced(tf.constant(step, tf.int64))) for step in range(7)]
    np.testing.assert_allclose(got, schedule_curve(schedule, 7), rtol=1e-6)
    # A vector of steps gives a vector of rates.
    assert tuple(schedule(tf.range(7, dtype=tf.int64)).shape) == (7,)


@pytest.mark.parametrize("option", OPTIONS[::2] + OPTIONS[-1:], ids=_option_id)
def test_schedule_in_sgd_optimizer(option: Dict[str, Any]) -> None:
    spe, epochs = 3, 5
    optimizer = keras.optimizers.SGD(learning_rate=build_schedule(option, PEAK, spe, epochs))
    weight = keras.Variable(np.zeros(2, dtype=np.float32))
    gradient = keras.ops.convert_to_tensor(np.array([1.0, -2.0], dtype=np.float32))
    for _ in range(8):  # crosses the first step drop (step 6) and every warm-up here
        step = int(optimizer.iterations)
        expected = reference(option, spe, epochs, np.array([step]))[0]
        # What training logs: the rate the optimizer will use for its next update.
        np.testing.assert_allclose(float(optimizer.learning_rate), expected, **TOL)
        before = keras.ops.convert_to_numpy(weight).copy()
        optimizer.apply_gradients([(gradient, weight)])
        assert int(optimizer.iterations) == step + 1
        # ... and the update indeed used it: w <- w - lr * g.
        moved = before - keras.ops.convert_to_numpy(weight)
        np.testing.assert_allclose(moved, expected * np.array([1.0, -2.0]), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("option", OPTIONS, ids=_option_id)
def test_schedule_table_gives_every_schedule_at_every_step(option: Dict[str, Any]) -> None:
    from pipeline.training.schedules import schedule_table

    schedule = build_schedule(option, PEAK, 7, 10)
    other = build_schedule(option, PEAK / 10, 7, 10)
    table = schedule_table([schedule, other], 71)
    assert table.shape == (71, 2) and table.dtype == np.float32
    # The compiled loop's values are a training step's: within a few float32 ulps of eager calls.
    np.testing.assert_allclose(table[:, 0], schedule_curve(schedule, 71), rtol=1e-5, atol=0)
    np.testing.assert_allclose(table[:, 1], schedule_curve(other, 71), rtol=1e-5, atol=0)
    assert schedule_table([], 5).shape == (5, 0)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        schedule_table([schedule], -1)


def test_sgdr_default_first_cycle_gives_two_cycles_that_end_with_training() -> None:
    """cosine_restarts with first_decay_epochs unset: round(epochs / (1 + t_mul)) epochs, so the
    second cycle (t_mul times longer) ends with the run: 10 + 20 = 30 epochs."""
    from pipeline.config.validation import check_schedule

    assert check_schedule("r", {"type": "cosine_restarts"}, 30)["first_decay_epochs"] == 10
    assert check_schedule("r", {"type": "cosine_restarts", "t_mul": 1.0}, 30)["first_decay_epochs"] == 15
    curve = schedule_curve(build_schedule({"type": "cosine_restarts"}, PEAK, 4, 30), 120)
    assert curve[0] == pytest.approx(PEAK) and curve[40] == pytest.approx(PEAK)  # the restart at epoch 10
    assert curve[39] < 0.01 * PEAK and curve[119] < 0.01 * PEAK


def test_onecycle_is_fastais_fit_one_cycle() -> None:
    """fastai's defaults: from peak/25 up to the peak at 25% of the steps, down to peak/1e5."""
    curve = schedule_curve(build_schedule({"type": "onecycle"}, PEAK, 10, 4), 40)
    assert curve[0] == pytest.approx(PEAK / 25, rel=1e-6) and curve[10] == pytest.approx(PEAK, rel=1e-6)
    # As in fastai, the last step (position 39/40) is one step short of the end, peak/1e5.
    assert int(np.argmax(curve)) == 10 and curve[-1] < PEAK / 100
    assert schedule_curve(build_schedule({"type": "onecycle"}, PEAK, 10, 4), [40])[0] == pytest.approx(PEAK / 1e5, abs=1e-7)  # float32
    assert (np.diff(curve[:11]) > 0).all() and (np.diff(curve[10:]) < 0).all()


def test_wsd_holds_the_peak_between_warmup_and_cooldown() -> None:
    curve = schedule_curve(build_schedule({"type": "wsd", "warmup_fraction": 0.1, "decay_fraction": 0.2}, PEAK, 10, 10), 100)
    assert curve[0] == 0.0 and (curve[10:80] == np.float32(PEAK)).all()
    # The (1 - sqrt) cooldown: at a quarter of it, half the peak is gone.
    assert curve[85] == pytest.approx(PEAK * (1 - math.sqrt(5 / 20)), rel=1e-6)
