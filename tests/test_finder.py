"""The LR range test: exact suggestion rules on synthetic curves (with noise and NaN/inf
tails), the seed summary and centred grid, and the real Keras test on digits: reproducible,
stops on blow-up, follows its ramp, records per-batch losses, leaves no trace, and the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pandas as pd
import pytest
from factories import REPO

from pipeline.config.schema import FinderConfig
from pipeline.config.rates import round_significant
from pipeline.tables import FINDER
from pipeline.finder.suggest import (
    SUGGESTIONS,
    batch_indices,
    centred_grid,
    fastai_crop,
    ramp_rate,
    read_suggestion,
    smooth_losses,
    suggest,
    suggest_minimum,
    suggest_slide,
    suggest_steep,
    suggest_valley,
    summarise_suggestions,
)

SETTINGS = FinderConfig(steps=200, min_drop=0.05)
# 200 rates over 1e-7 .. 10, 25 per decade: the default ramp.
LOG_LR = np.linspace(-7.0, 1.0, 200)
LR = 10.0**LOG_LR
MLP = {"name": "mlp", "_target_": "pipeline.training.models.mlp", "hidden_units": [64]}
#: Rates for the hand-derived curves: powers of two, exact in float32 (fastai's precision).
POW2 = 2.0 ** np.arange(-20, 20, dtype=np.float64)


def s_curve(centre: float, width: float = 0.5) -> np.ndarray:
    """A loss falling from 3 to 1 around log10(lr) = centre: steepest exactly at the centre."""
    return 2.0 - np.tanh((LOG_LR - centre) / width)


# fastai's four rules and lr_find's crop (fastai.callback.schedule), transcribed with torch's
# tensors as float32 NumPy arrays: the reference the ports are held to on random curves.


def fastai_lr_find_crop(lrs: np.ndarray, losses: np.ndarray, num_it: int) -> tuple:
    lrs, losses = np.float32(lrs)[num_it // 10 : -5], np.float32(losses)[num_it // 10 : -5]
    nan_idxs = np.nonzero(np.isnan(losses.reshape(-1)))[0]
    if len(nan_idxs) > 0:
        drop_idx = min(nan_idxs)
        lrs, losses = lrs[:drop_idx], losses[:drop_idx]
    return lrs, losses


def fastai_valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return float(lrs[idx])


def fastai_slide(lrs: np.ndarray, losses: np.ndarray, lr_diff: int = 15, thresh: float = 0.005, adjust_value: float = 1.0) -> float:
    loss_grad = np.gradient(losses)
    r_idx = -1
    l_idx = r_idx - lr_diff
    local_min_lr = lrs[l_idx]
    while (l_idx >= -len(losses)) and (abs(loss_grad[r_idx] - loss_grad[l_idx]) > thresh):
        local_min_lr = lrs[l_idx]
        r_idx -= 1
        l_idx -= 1
    return float(local_min_lr) * adjust_value


def fastai_minimum(lrs: np.ndarray, losses: np.ndarray) -> float:
    return lrs[losses.argmin()].item() / 10


def fastai_steep(lrs: np.ndarray, losses: np.ndarray) -> float:
    grads = (losses[1:] - losses[:-1]) / (np.log(lrs[1:]) - np.log(lrs[:-1]))
    return lrs[grads.argmin()].item()


FASTAI = {"valley": fastai_valley, "slide": fastai_slide, "minimum": fastai_minimum, "steep": fastai_steep}
PORTS = {"valley": suggest_valley, "slide": suggest_slide, "minimum": suggest_minimum, "steep": suggest_steep}


# --------------------------------------------------------------------------------------
# Ramp and smoothing
# --------------------------------------------------------------------------------------


def test_ramp_and_debiased_smoothing():
    settings = FinderConfig(start_lr=1e-6, end_lr=1.0, steps=7)
    assert [ramp_rate(settings, i) for i in range(7)] == pytest.approx([10.0**-k for k in range(6, -1, -1)], rel=1e-12)
    linear = FinderConfig(start_lr=0.1, end_lr=0.4, steps=4, mode="linear")
    assert [ramp_rate(linear, i) for i in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.4], rel=1e-12)
    # Debiased: a constant loss smooths to itself from the first point on (no ramp up from 0).
    np.testing.assert_allclose(smooth_losses([2.0] * 5, 0.98), [2.0] * 5, rtol=1e-12)
    # Two steps by hand: avg = 0.02, 0.98·0.02 + 0.02·3 = 0.0796; debiased by 0.02 and 0.0396.
    np.testing.assert_allclose(smooth_losses([1.0, 3.0], 0.98), [1.0, 0.0796 / 0.0396], rtol=1e-12)
    # The batches cycle through one seeded permutation, all full.
    batches = batch_indices(10, 4, 5, seed=3)
    flat = np.concatenate(batches)
    assert all(len(batch) == 4 for batch in batches)
    assert sorted(flat[:10]) == list(range(10)) and list(flat[10:]) == list(flat[:10])
    assert all(np.array_equal(a, b) for a, b in zip(batches, batch_indices(10, 4, 5, seed=3)))


# --------------------------------------------------------------------------------------
# fastai's rules, on curves whose answers are derived by hand
# --------------------------------------------------------------------------------------


def test_the_crop_is_fastais():
    lr, loss = np.arange(1.0, 201.0), np.linspace(3.0, 1.0, 200)
    rates, losses = fastai_crop(lr, loss, 200)
    assert rates.dtype == losses.dtype == np.float32
    assert rates.tolist() == list(range(21, 196))  # [200 // 10 : -5]: points 20..194
    loss[100] = np.nan  # cut at the first NaN; an infinite loss stays
    loss[60] = np.inf
    rates, losses = fastai_crop(lr, loss, 200)
    assert rates.tolist() == list(range(21, 101)) and np.isinf(losses[40])
    # A test stopped early (120 of 200 steps) is cropped with the planned num_it: [20 : -5].
    assert fastai_crop(lr[:120], loss[:120], 200)[0].tolist() == list(range(21, 101))


def test_valley_by_hand():
    # The longest decreasing subsequence is 3, 2.5, 2, 1.5, 1, 0.5 (indices 1..6; 0.6 at 7 only
    # ties its length): max_end = 6, L = 6, max_start = 0, sections = 2, idx = 0 + 2 + 1 = 3.
    losses = np.float32([2, 3, 2.5, 2, 1.5, 1, 0.5, 0.6, 4])
    assert suggest_valley(POW2[:9], losses) == POW2[3]
    # Nothing descends: fastai's index is 0, the first rate.
    assert suggest_valley(POW2[:5], np.float32([1, 2, 3, 4, 5])) == POW2[0]
    # A two-point valley at the very start: max_start = -1, idx = -1 + 0 + 0: the *last* rate.
    assert suggest_valley(POW2[:5], np.float32([2, 1, 3, 4, 5])) == POW2[4]
    # Three points from the start: max_start = -1, sections = 1, idx = -1 + 1 + 0 = 0.
    assert suggest_valley(POW2[:5], np.float32([3, 2, 1, 4, 5])) == POW2[0]


def test_steep_by_hand_is_per_log_rate_not_per_point():
    losses = np.float32([3, 2.9, 2.5, 1.5, 1.4, 1.45])
    # Evenly spaced in ln(rate): the largest drop, 2.5 -> 1.5, starts at index 2.
    assert suggest_steep(POW2[:6], losses) == POW2[2]
    # The big drop spread over three doublings (ln 8): -1/(3 ln 2) = -0.48 against the
    # -0.4/ln 2 = -0.58 of the step before it: index 1.
    rates = np.array([1.0, 2.0, 4.0, 32.0, 64.0, 128.0])
    assert suggest_steep(rates, losses) == 2.0


def test_minimum_by_hand():
    losses = np.float32([3, 2, 1, 0.5, 0.5, 2])
    assert suggest_minimum(POW2[:6], losses) == POW2[3] / 10  # the first of two equal minima


def test_slide_by_hand():
    # A gentle fall (slope -0.01 per point) to index 34, then a rise of +0.05 per point.
    # np.gradient: -0.01 up to 33, 0.02 at the kink (34), 0.05 after. The two indices 15 apart
    # slide from (39, 24) while their gradients differ by more than 0.005: (34, 19) still does
    # (0.02 vs -0.01), (33, 18) does not: the rate at 19.
    index = np.arange(40)
    losses = np.where(index <= 34, 2 - 0.01 * index, 2 - 0.34 + 0.05 * (index - 34)).astype(np.float32)
    assert suggest_slide(POW2[:40], losses) == POW2[19]
    # A straight line: the gradients agree at once; the rate 15 before the end.
    assert suggest_slide(POW2[:30], np.float32(3 - 0.05 * np.arange(30))) == POW2[30 - 16]
    # Fewer than lr_diff + 1 = 16 points: fastai fails (IndexError); no suggestion here.
    assert suggest_slide(POW2[:15], np.float32(np.linspace(3, 1, 15))) is None
    assert suggest_slide(POW2[:16], np.float32(np.linspace(3, 1, 16))) == POW2[0]


@pytest.mark.parametrize("name", SUGGESTIONS)
def test_each_port_gives_fastais_answer_on_random_curves(name):
    rng = np.random.default_rng(7)
    for trial in range(80):
        n = int(rng.integers(16, 90))
        losses = np.cumsum(rng.normal(-0.05 * (trial % 3), 1.0, n)) if trial % 2 else rng.normal(0, 1, n)
        if trial % 5 == 0:
            losses[int(rng.integers(n))] = np.inf  # a blow-up inside the crop
        rates = 10.0 ** np.sort(rng.uniform(-7, 1, n))
        lrs, cropped = fastai_lr_find_crop(rates, losses, n)
        if len(cropped) < 2 or (name == "slide" and len(cropped) < 16):
            continue
        with np.errstate(invalid="ignore"):
            expected = FASTAI[name](lrs, cropped)
            got = PORTS[name](*fastai_crop(rates, losses, n))
        assert got == expected, (trial, name)


def test_suggest_is_the_four_rules_on_the_crop_of_a_range_test_curve():
    curve = s_curve(LOG_LR[90]) + 0.3 * np.maximum(LOG_LR - LOG_LR[150], 0.0) ** 2  # falls, then blows up
    curve[190:] = np.nan  # the blow-up's non-finite tail
    result = suggest(LR, curve, SETTINGS)
    lrs, cropped = fastai_lr_find_crop(LR, curve, 200)
    assert result == {"valley": fastai_valley(lrs, cropped), "slide": fastai_slide(lrs, cropped),
                      "minimum": fastai_minimum(lrs, cropped), "steep": fastai_steep(lrs, cropped), "reason": None}  # fmt: skip
    # The steepest fall is at the s-curve's centre, to one point of the float32 rates.
    assert abs(math.log10(result["steep"]) - LOG_LR[90]) <= 0.05
    assert result["minimum"] * 10 == pytest.approx(LR[150], rel=0.25)


def test_a_flat_curve_and_too_few_points_give_no_suggestion():
    none = {name: None for name in SUGGESTIONS}
    flat = 2.3 + np.random.default_rng(3).normal(0.0, 0.01, LR.size)  # drops ~2 %, < min_drop 5 %
    assert suggest(LR, flat, SETTINGS) == {**none, "reason": "flat"}
    assert suggest(LR, np.linspace(2.0, 3.0, LR.size), SETTINGS)["reason"] == "flat"  # only rises
    assert suggest(LR, s_curve(-3.0), SETTINGS)["reason"] is None
    too_few = {**none, "reason": "too_few_points"}
    # 27 steps recorded of 200: the crop [20 : -5] leaves 2 points.
    assert suggest(LR[:27], s_curve(-6.8)[:27], SETTINGS) == too_few
    assert suggest(LR[:28], s_curve(-6.8)[:28], SETTINGS)["reason"] != "too_few_points"
    assert suggest(LR, np.full(LR.size, np.nan), SETTINGS) == too_few
    assert suggest([], [], SETTINGS) == too_few
    with pytest.raises(ValueError, match="differ in length"):
        suggest(LR, LR[:-1], SETTINGS)


# --------------------------------------------------------------------------------------
# Seed summary, centred grid, reading back
# --------------------------------------------------------------------------------------


def test_summary_over_seeds_is_exact():
    per_seed: Dict[int, Dict[str, Any]] = {
        0: {"steep": 1e-3, "valley": 4e-3, "minimum": None, "reason": None},
        1: {"steep": 1e-1, "valley": None, "minimum": None, "reason": None},
        2: {"steep": 1e-2, "valley": 1e-3, "minimum": None, "reason": "flat"},
    }
    summary = summarise_suggestions(per_seed)
    assert set(summary) == set(SUGGESTIONS)
    assert summary["steep"]["geomean"] == pytest.approx(1e-2, rel=1e-12)
    assert (summary["steep"]["min"], summary["steep"]["max"], summary["steep"]["seeds"]) == (1e-3, 1e-1, 3)
    assert summary["valley"]["geomean"] == pytest.approx(2e-3, rel=1e-12)  # sqrt(4e-3 · 1e-3)
    assert (summary["valley"]["min"], summary["valley"]["max"], summary["valley"]["seeds"]) == (1e-3, 4e-3, 2)
    assert summary["minimum"] == {"geomean": None, "min": None, "max": None, "seeds": 0}
    # Equal rates summarise to exactly that rate (exp(mean(log)) alone is an ulp off).
    same = summarise_suggestions({0: {"steep": 0.2049074689815846}, 1: {"steep": 0.2049074689815846}})
    assert same["steep"]["geomean"] == 0.2049074689815846


def test_centred_grid_is_exact():
    assert centred_grid(1e-3, 1.0, 3) == [1e-4, 1e-3, 1e-2]
    assert centred_grid(3e-3, 1.0, 5) == [3e-4, 9.487e-4, 3e-3, 9.487e-3, 3e-2]
    assert centred_grid(2e-2, 0.5, 2) == [6.325e-3, 6.325e-2]
    assert centred_grid(0.0123456, 1.0, 1) == [0.01235] == [round_significant(0.0123456)]
    assert centred_grid(1e-3, 1e-7, 5) == [1e-3]  # all round to one rate: deduplicated
    for bad in ((0.0, 1.0, 3), (math.nan, 1.0, 3), (1e-3, 0.0, 3), (1e-3, 1.0, 0)):
        with pytest.raises(ValueError):
            centred_grid(*bad)


def test_read_suggestion(tmp_path):
    summary = summarise_suggestions({0: {"steep": 2e-3, "valley": None, "minimum": 8e-3}})
    (tmp_path / "s.json").write_text(json.dumps({"summary": summary}))
    assert read_suggestion(tmp_path / "s.json", "steep") == pytest.approx(2e-3, rel=1e-12)
    assert read_suggestion(tmp_path / "s.json", "valley") is None
    with pytest.raises(ValueError):
        read_suggestion(tmp_path / "s.json", "best")



# --------------------------------------------------------------------------------------
# The range test with Keras, on digits
# --------------------------------------------------------------------------------------

# Adam ramped to 100 over 60 steps blows up on digits (step ~49): a short, complete curve.
BLOWUP = FinderConfig(start_lr=1e-5, end_lr=100.0, steps=60)


@pytest.fixture(scope="module")
def curve(arrays):
    from pipeline.finder.range_test import range_test

    return range_test(MLP, {"type": "adam"}, arrays, BLOWUP, 32, seed=0)


@pytest.mark.tf
def test_same_seed_same_curve_and_stop_on_blow_up(arrays, curve):
    from pipeline.finder.range_test import range_test

    again = range_test(MLP, {"type": "adam"}, arrays, BLOWUP, 32, seed=0)
    pd.testing.assert_frame_equal(curve, again, check_exact=True)
    other = range_test(MLP, {"type": "adam"}, arrays, BLOWUP, 32, seed=1)
    assert not np.array_equal(other["loss"].to_numpy()[:10], curve["loss"].to_numpy()[:10])

    assert list(curve.columns) == ["step", "lr", "loss", "smooth_loss"]
    assert curve["step"].tolist() == list(range(len(curve)))
    assert 10 < len(curve) < BLOWUP.steps
    last, earlier = curve["smooth_loss"].iloc[-1], curve["smooth_loss"].iloc[:-1]
    assert not math.isfinite(last) or last > BLOWUP.stop_factor * earlier.min()
    assert (earlier.to_numpy() <= BLOWUP.stop_factor * earlier.cummin().to_numpy()).all()  # no earlier stop
    assert curve.attrs["stopped"] in ("stop_factor", "non_finite")
    # The ramp: start·(end/start)^(i/(steps−1)), exactly the formula.
    steps = curve["step"].to_numpy()
    np.testing.assert_allclose(curve["lr"], 1e-5 * (100.0 / 1e-5) ** (steps / 59), rtol=1e-13)
    assert curve["lr"].iloc[0] == 1e-5
    np.testing.assert_allclose(curve["smooth_loss"], smooth_losses(curve["loss"], 0.98), rtol=1e-12)  # fastai's, unset beta
    result = suggest(curve["lr"], curve["smooth_loss"], BLOWUP)
    assert result["reason"] is None and all(1e-4 < result[name] < 10 for name in SUGGESTIONS)


@pytest.mark.tf
def test_seeds_ramp_together_each_as_it_would_alone(arrays, curve):
    from pipeline.finder.range_test import range_test, range_tests

    # Seeds 0 and 2 ramp as one population; a seed that stops (blows up) leaves the others
    # going, and each curve is bit-identical to that seed's test alone.
    together = range_tests(MLP, {"type": "adam"}, arrays, BLOWUP, 32, [2, 0])
    assert list(together) == [2, 0]
    pd.testing.assert_frame_equal(together[0], curve, check_exact=True)
    assert together[0].attrs["stopped"] == curve.attrs["stopped"]
    alone = range_test(MLP, {"type": "adam"}, arrays, BLOWUP, 32, seed=2)
    pd.testing.assert_frame_equal(together[2], alone, check_exact=True)
    assert together[2].attrs["stopped"] == alone.attrs["stopped"]
    # The same with another optimizer and ramp:
    steep = FinderConfig(start_lr=1e-4, end_lr=1e3, steps=40)
    both = range_tests(MLP, {"type": "sgd"}, arrays, steep, 32, [0, 1])
    for seed in (0, 1):
        pd.testing.assert_frame_equal(both[seed], range_test(MLP, {"type": "sgd"}, arrays, steep, 32, seed=seed), check_exact=True)


@pytest.mark.tf
def test_validation_loss_range_test_is_the_validation_loss_after_the_ramps_steps(arrays):
    """finder.loss=val (Smith's test): a point every val_every steps, the whole validation set's
    loss after that step, checked against the same steps taken by hand with Keras."""
    import keras
    import tensorflow as tf

    from pipeline.finder.range_test import range_test
    from pipeline.training.data import num_classes
    from pipeline.training.models import build_model
    from pipeline.training.optimizers import build_optimizer

    settings = FinderConfig(start_lr=1e-3, end_lr=1e-1, steps=12, mode="linear", loss="val", val_every=4, beta=0.0)
    curve = range_test(MLP, {"type": "sgd", "momentum": 0.9}, arrays, settings, 32, seed=3)
    assert curve["step"].tolist() == [3, 7, 11] and curve.attrs["stopped"] is None
    assert curve["lr"].tolist() == [ramp_rate(settings, step) for step in (3, 7, 11)]
    assert curve["smooth_loss"].tolist() == curve["loss"].tolist()  # beta 0: no smoothing
    # By hand: the same model, optimizer, batches and rates, one GradientTape step at a time.
    keras.utils.set_random_seed(3)
    model = build_model(MLP, arrays["x_train"].shape[1:], num_classes(arrays))
    optimizer = build_optimizer({"type": "sgd", "momentum": 0.9}, learning_rate=1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    expected = []
    for step, indices in enumerate(batch_indices(len(arrays["x_train"]), 32, 12, seed=3)):
        optimizer.learning_rate.assign(ramp_rate(settings, step))
        with tf.GradientTape() as tape:
            loss = loss_fn(arrays["y_train"][indices], model(arrays["x_train"][indices], training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        if step in (3, 7, 11):
            expected.append(float(loss_fn(arrays["y_val"], model(arrays["x_val"], training=False))))
    np.testing.assert_allclose(curve["loss"], expected, rtol=1e-5)
    assert curve["loss"].iloc[-1] < curve["loss"].iloc[0]  # it learns over the ramp
    # Smoothed as the training-loss test smooths, over the points recorded.
    smoothed = range_test(MLP, {"type": "sgd", "momentum": 0.9}, arrays, dataclasses.replace(settings, beta=0.9), 32, seed=3)
    np.testing.assert_allclose(smoothed["smooth_loss"], smooth_losses(smoothed["loss"], 0.9), rtol=1e-12)
    # Unset, the validation curve's smoothing is torch-lr-finder's 0.95 (fastai's 0.98 for the training loss).
    default = range_test(MLP, {"type": "sgd", "momentum": 0.9}, arrays, dataclasses.replace(settings, beta=None), 32, seed=3)
    np.testing.assert_allclose(default["smooth_loss"], smooth_losses(default["loss"], 0.95), rtol=1e-12)
    # A ramp to a rate that blows up stops on the validation loss too.
    blowup = range_test(MLP, {"type": "adam"}, arrays, dataclasses.replace(BLOWUP, loss="val", val_every=2), 32, seed=0)
    assert blowup.attrs["stopped"] in ("stop_factor", "non_finite") and len(blowup) < BLOWUP.steps // 2


@pytest.mark.tf
def test_linear_ramp_runs_to_its_end(arrays):
    from pipeline.finder.range_test import range_test

    settings = FinderConfig(start_lr=1e-4, end_lr=1e-3, steps=6, mode="linear")
    linear = range_test(MLP, {"type": "sgd", "momentum": 0.9}, arrays, settings, 32, seed=0)
    np.testing.assert_allclose(linear["lr"], [1e-4, 2.8e-4, 4.6e-4, 6.4e-4, 8.2e-4, 1e-3], rtol=1e-13)
    assert len(linear) == 6 and linear.attrs["stopped"] is None


@pytest.mark.tf
def test_losses_are_per_batch_not_a_running_mean(arrays):
    """Labels the fixed initial model gets right on even batches and badly wrong on odd ones;
    at a rate of 1e-12 the weights don't move, so each recorded loss must be that batch's
    loss. A running mean (Keras' ``logs["loss"]``) damps the swing as 1/step."""
    import keras

    from pipeline.finder.range_test import range_test
    from pipeline.training.models import build_model

    steps, batch_size, seed = 12, 32, 4
    settings = FinderConfig(start_lr=1e-12, end_lr=1e-12, steps=steps, mode="linear", stop_factor=1e6)
    x = arrays["x_train"] * 10.0  # larger inputs, larger logits: a wide high/low gap
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build_model(MLP, x.shape[1:], 10)
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    y = arrays["y_train"].copy()
    batches = batch_indices(len(x), batch_size, steps, seed)
    for step, rows in enumerate(batches):
        y[rows] = (np.argmax if step % 2 == 0 else np.argmin)(logits[rows], axis=1)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    expected = np.array([float(loss_fn(y[rows], logits[rows])) for rows in batches])

    data = {**arrays, "x_train": x, "y_train": y}
    recorded = range_test(MLP, {"type": "sgd"}, data, settings, batch_size, seed)["loss"].to_numpy()
    np.testing.assert_allclose(recorded, expected, rtol=1e-5)
    gap = expected[1::2].mean() - expected[0::2].mean()
    assert gap > 1.0
    assert (np.abs(np.diff(recorded)) > 0.5 * gap).all()
    assert (recorded[1::2] > recorded[0::2]).all()
    running = np.cumsum(recorded) / np.arange(1, steps + 1)
    assert (np.abs(np.diff(running))[4:] < 0.5 * gap).all()  # what this test would catch


@pytest.mark.tf
def test_the_finder_leaves_no_trace_on_training_runs(arrays, tmp_path, monkeypatch):
    from pipeline.config.compose import compose_study
    from pipeline.finder.suggest import finder_job_spec
    from pipeline.finder.range_test import range_test
    from pipeline.training.run import train_run

    def snapshot(folder: Path) -> Dict[str, str]:
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}

    study = compose_study("study=smoke study.epochs=2 optimizer=adam schedule=constant")
    spec = json.loads(json.dumps(finder_job_spec(study, "adam")))  # what the Snakefile passes
    assert set(spec) == {"optimizer", "optimizer_options", "model", "finder", "batch_size", "seeds", "deterministic"}
    assert spec["optimizer_options"] == {"type": "adam"} and FinderConfig(**spec["finder"]) == study.finder
    run_config = study.run_config("adam", "constant", 0, 0.01)
    train_run(run_config, arrays, tmp_path / "runs" / "before")
    before = snapshot(tmp_path / "runs")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    range_test(study.model, study.optimizers["adam"], arrays, BLOWUP, 32, seed=0)
    assert snapshot(tmp_path / "runs") == before
    assert list(work.iterdir()) == []
    # Training after the finder in the same process is bit-identical (no global state left).
    train_run(run_config, arrays, tmp_path / "runs" / "after")
    columns = ["lr", "loss", "accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "runs" / "before" / "history.csv")[columns],
        pd.read_csv(tmp_path / "runs" / "after" / "history.csv")[columns],
        check_exact=True,
    )


@pytest.mark.tf
def test_cli_end_to_end_on_digits(arrays, tmp_path):
    from pipeline.training.data import save_npz

    save_npz(arrays, tmp_path / "data.npz")
    settings = dict(start_lr=1e-5, end_lr=100.0, steps=40, mode="exponential", loss="train", val_every=1, stop_factor=4.0, beta=0.9, min_drop=0.05)
    spec = {
        "optimizer": "adam",
        "optimizer_options": {"type": "adam"},
        "model": MLP,
        "finder": settings,
        "batch_size": 32,
        "seeds": [0, 1],
        "deterministic": True,
    }
    command = [
        sys.executable, "-m", "pipeline.finder", "--spec", json.dumps(spec), "--data", str(tmp_path / "data.npz"),
        "--threads", "2", "--curve", str(tmp_path / "out" / "finder.csv"), "--suggestions", str(tmp_path / "out" / "suggestions.json"),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["finder.csv", "suggestions.json"]

    table = pd.read_csv(tmp_path / "out" / "finder.csv")
    assert list(table.columns) == FINDER.columns
    assert set(table["optimizer"]) == {"adam"} and sorted(set(table["seed"])) == [0, 1]
    document = json.loads((tmp_path / "out" / "suggestions.json").read_text())
    assert document["optimizer"] == "adam" and document["settings"] == settings
    assert sorted(document["per_seed"]) == ["0", "1"]
    config = FinderConfig(**settings)
    for seed, entry in document["per_seed"].items():
        assert set(entry) == {*SUGGESTIONS, "reason", "steps_run", "stopped"}
        seed_curve = table[table["seed"] == int(seed)]
        assert entry["steps_run"] == len(seed_curve) <= 40
        assert seed_curve["step"].tolist() == list(range(len(seed_curve)))
        recomputed = suggest(seed_curve["lr"], seed_curve["smooth_loss"], config)
        assert entry["reason"] == recomputed["reason"]
        for name in SUGGESTIONS:  # the CSV round trip may move a rate by an ulp
            assert (entry[name] is None) == (recomputed[name] is None)
            assert entry[name] is None or entry[name] == pytest.approx(recomputed[name], rel=1e-12)
        # fastai's own rules, run on this output the way lr_find runs them, name the same rates.
        lrs, cropped = fastai_lr_find_crop(seed_curve["lr"].to_numpy(), seed_curve["smooth_loss"].to_numpy(), 40)
        if entry["reason"] is None:
            for name in SUGGESTIONS:
                if entry[name] is not None:
                    assert entry[name] == FASTAI[name](lrs, cropped), name
    assert set(document["summary"]) == set(SUGGESTIONS)
    for name in SUGGESTIONS:
        assert set(document["summary"][name]) == {"geomean", "min", "max", "seeds"}
        assert read_suggestion(tmp_path / "out" / "suggestions.json", name) == document["summary"][name]["geomean"]
    assert document["summary"]["valley"]["seeds"] == 2


@pytest.mark.tf
def test_a_model_holding_a_seed_dependent_constant_ramps_each_seed_on_its_own_step(arrays):
    from pipeline.finder.range_test import range_test, range_tests

    model = {"_target_": "factories.seeded_scale_mlp"}
    together = range_tests(model, {"type": "adam"}, arrays, BLOWUP, 32, [0, 1])
    for seed in (0, 1):
        pd.testing.assert_frame_equal(together[seed], range_test(model, {"type": "adam"}, arrays, BLOWUP, 32, seed=seed), check_exact=True)


@pytest.mark.tf
def test_a_step_that_cannot_be_shared_is_traced_per_seed_with_the_same_curves(arrays, curve, monkeypatch, capsys):
    import pipeline.training.population as population
    from pipeline.finder.range_test import range_tests

    def refuse(self, *args, **kwargs):
        raise population.PopulationUnsupported("this TensorFlow cannot call a traced step on another model's variables")

    monkeypatch.setattr(population.SharedStep, "__init__", refuse)
    together = range_tests(MLP, {"type": "adam"}, arrays, BLOWUP, 32, [0, 2])
    assert "each seed traces its own step" in capsys.readouterr().out
    pd.testing.assert_frame_equal(together[0], curve, check_exact=True)
    assert together[0].attrs["stopped"] == curve.attrs["stopped"]
