"""The LR range test: exact suggestion rules on synthetic curves (with noise and NaN/inf
tails), the seed summary and centred grid, and the real Keras test on digits: reproducible,
stops on blow-up, follows its ramp, records per-batch losses, leaves no trace, and the CLI."""

from __future__ import annotations

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
    longest_descent,
    ramp_rate,
    read_suggestion,
    smooth_losses,
    suggest,
    suggest_minimum,
    suggest_steepest,
    suggest_valley,
    summarise_suggestions,
)

SETTINGS = FinderConfig(skip_start=10, skip_end=5, min_drop=0.05)
# 200 rates over 1e-7 .. 10, 25 per decade: the default ramp.
LOG_LR = np.linspace(-7.0, 1.0, 200)
LR = 10.0**LOG_LR
TAIL_LR = LR[-1] * 10.0 ** (np.arange(1, 5) * 0.04)
TAIL_LOSS = np.array([np.nan, np.inf, -np.inf, np.nan])
MLP = {"name": "mlp", "_target_": "pipeline.training.models.mlp", "hidden_units": [64]}


def s_curve(centre: float, width: float = 0.5) -> np.ndarray:
    """A loss falling from 3 to 1 around log10(lr) = centre: steepest exactly at the centre."""
    return 2.0 - np.tanh((LOG_LR - centre) / width)


def fastai_valley_index(losses: List[float]) -> int:
    """fastai's ``valley`` (fastai.callback.schedule), line by line, returning its index."""
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
    return max_start + int(sections) + int(sections / 2)


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
# The suggestion rules
# --------------------------------------------------------------------------------------


def test_steepest_finds_the_steepest_descent_and_ignores_the_ends():
    centre = LOG_LR[100]
    curve = s_curve(centre)
    assert suggest_steepest(LR, curve, 10, 5) == LR[100]
    # Noise on the curve moves the slope estimate, not where the descent is steepest.
    noisy = curve + np.random.default_rng(0).normal(0.0, 1e-3, curve.size)
    assert abs(math.log10(suggest_steepest(LR, noisy, 10, 5)) - centre) <= 0.12
    # A crash inside the skipped start (debiasing noise) or end (blow-up collapse) is ignored.
    edges = curve.copy()
    edges[:10] = np.linspace(30.0, 3.0, 10)
    edges[-5:] = np.linspace(1.0, -50.0, 5)
    assert suggest_steepest(LR, edges, 10, 5) == LR[100]
    # A curve that only rises inside the window: no descent, no suggestion.
    assert suggest_steepest(LR, LOG_LR + 10.0, 10, 5) is None
    # Too few points left between the skips.
    assert suggest_steepest(LR[:17], curve[:17], 10, 5) is None
    assert suggest_steepest(LR[:18], curve[:18], 10, 5) is not None


def valley_curve() -> np.ndarray:
    """Rising 2.0→2.1 (0..9), strictly falling 3.0→1.0 (10..40, 31 points), rising to 5."""
    return np.concatenate([np.linspace(2.0, 2.1, 10), np.linspace(3.0, 1.0, 31), np.linspace(1.2, 5.0, 159)])


def test_valley_is_fastais_point_of_the_longest_descent():
    curve = valley_curve()
    lds = longest_descent(curve)
    assert lds.max() == 31 and int(np.argmax(lds)) == 40
    # max_start = 40 − 31 = 9; idx = 9 + ⌊31/3⌋ + ⌊31/6⌋ = 9 + 10 + 5 = 24.
    assert fastai_valley_index(list(curve)) == 24
    assert suggest_valley(LR, curve) == LR[24]
    # Noise on the descent breaks its strict monotony; the longest decreasing *subsequence*
    # skips the bumps, so the suggestion stays within a point or two.
    noisy = curve.copy()
    noisy[10:41] += np.random.default_rng(1).normal(0.0, 0.01, 31)
    index = int(np.flatnonzero(LR == suggest_valley(LR, noisy))[0])
    assert abs(index - 24) <= 2


def test_valley_matches_fastai_line_by_line_on_random_curves():
    rng = np.random.default_rng(7)
    for trial in range(60):
        n = int(rng.integers(5, 60))
        losses = np.cumsum(rng.normal(-0.05 * (trial % 3), 1.0, n)) if trial % 2 else rng.normal(0, 1, n)
        rates = np.arange(1.0, n + 1.0)  # rate k at index k − 1
        expected = fastai_valley_index(list(losses))
        got = suggest_valley(rates, losses)
        if longest_descent(losses).max() < 2:
            assert got is None
        else:
            # fastai's −1 (a 2-point valley at the very start) wraps to the last rate; clamped to 0.
            assert got == rates[max(expected, 0)]


def test_minimum_is_a_decade_below_the_lowest_loss():
    centre = LOG_LR[125]  # log10(lr) ≈ −1.97
    curve = 1.0 + (LOG_LR - centre) ** 2
    assert suggest_minimum(LR, curve) == LR[125] / 10
    noisy = curve + np.random.default_rng(2).normal(0.0, 1e-3, curve.size)
    assert abs(math.log10(suggest_minimum(LR, noisy) * 10) - centre) <= 0.1


@pytest.mark.parametrize("name", ["steepest", "valley", "minimum", "suggest"])
def test_non_finite_tails_never_change_a_suggestion(name):
    curve = s_curve(LOG_LR[90]) + 0.3 * np.maximum(LOG_LR - LOG_LR[150], 0.0) ** 2  # falls, then blows up
    rules = {
        "steepest": lambda lr, loss: suggest_steepest(lr, loss, 10, 5),
        "valley": suggest_valley,
        "minimum": suggest_minimum,
        "suggest": lambda lr, loss: suggest(lr, loss, SETTINGS),
    }
    rule = rules[name]
    clean = rule(LR, curve)
    assert clean is not None
    lr_tail, loss_tail = np.concatenate([LR, TAIL_LR]), np.concatenate([curve, TAIL_LOSS])
    assert rule(lr_tail, loss_tail) == clean
    # A NaN point inside the curve (a bad batch) and an infinite rate are dropped too.
    holes = curve.copy()
    holes[3] = np.nan
    assert rule(np.append(LR, np.inf), np.append(holes, 0.5)) is not None


def test_a_flat_curve_and_too_few_points_give_no_suggestion():
    flat = 2.3 + np.random.default_rng(3).normal(0.0, 0.01, LR.size)  # drops ~2 %, < min_drop 5 %
    assert suggest(LR, flat, SETTINGS) == {"steepest": None, "valley": None, "minimum": None, "reason": "flat"}
    assert suggest(LR, np.linspace(2.0, 3.0, LR.size), SETTINGS)["reason"] == "flat"  # only rises
    assert suggest(LR, s_curve(-3.0), SETTINGS)["reason"] is None
    too_few = {"steepest": None, "valley": None, "minimum": None, "reason": "too_few_points"}
    assert suggest(LR[:17], s_curve(-6.8)[:17], SETTINGS) == too_few
    assert suggest(LR, np.full(LR.size, np.nan), SETTINGS) == too_few
    assert suggest([], [], SETTINGS) == too_few
    for rule in (suggest_valley, suggest_minimum):
        assert rule(LR[:2], [3.0, 1.0]) is None
        assert rule([1e-3, 1e-2, np.nan], [3.0, 1.0, 0.5]) is None


# --------------------------------------------------------------------------------------
# Seed summary, centred grid, reading back
# --------------------------------------------------------------------------------------


def test_summary_over_seeds_is_exact():
    per_seed: Dict[int, Dict[str, Any]] = {
        0: {"steepest": 1e-3, "valley": 4e-3, "minimum": None, "reason": None},
        1: {"steepest": 1e-1, "valley": None, "minimum": None, "reason": None},
        2: {"steepest": 1e-2, "valley": 1e-3, "minimum": None, "reason": "flat"},
    }
    summary = summarise_suggestions(per_seed)
    assert set(summary) == set(SUGGESTIONS)
    assert summary["steepest"]["geomean"] == pytest.approx(1e-2, rel=1e-12)
    assert (summary["steepest"]["min"], summary["steepest"]["max"], summary["steepest"]["seeds"]) == (1e-3, 1e-1, 3)
    assert summary["valley"]["geomean"] == pytest.approx(2e-3, rel=1e-12)  # sqrt(4e-3 · 1e-3)
    assert (summary["valley"]["min"], summary["valley"]["max"], summary["valley"]["seeds"]) == (1e-3, 4e-3, 2)
    assert summary["minimum"] == {"geomean": None, "min": None, "max": None, "seeds": 0}
    # Equal rates summarise to exactly that rate (exp(mean(log)) alone is an ulp off).
    same = summarise_suggestions({0: {"steepest": 0.2049074689815846}, 1: {"steepest": 0.2049074689815846}})
    assert same["steepest"]["geomean"] == 0.2049074689815846


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
    summary = summarise_suggestions({0: {"steepest": 2e-3, "valley": None, "minimum": 8e-3}})
    (tmp_path / "s.json").write_text(json.dumps({"summary": summary}))
    assert read_suggestion(tmp_path / "s.json", "steepest") == pytest.approx(2e-3, rel=1e-12)
    assert read_suggestion(tmp_path / "s.json", "valley") is None
    with pytest.raises(ValueError):
        read_suggestion(tmp_path / "s.json", "best")



# --------------------------------------------------------------------------------------
# The range test with Keras, on digits
# --------------------------------------------------------------------------------------

# Adam ramped to 100 over 60 steps blows up on digits (step ~49): a short, complete curve.
BLOWUP = FinderConfig(start_lr=1e-5, end_lr=100.0, steps=60, skip_start=5, skip_end=3)


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
    np.testing.assert_allclose(curve["smooth_loss"], smooth_losses(curve["loss"], BLOWUP.beta), rtol=1e-12)
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
    steep = FinderConfig(start_lr=1e-4, end_lr=1e3, steps=40, skip_start=2, skip_end=2)
    both = range_tests(MLP, {"type": "sgd"}, arrays, steep, 32, [0, 1])
    for seed in (0, 1):
        pd.testing.assert_frame_equal(both[seed], range_test(MLP, {"type": "sgd"}, arrays, steep, 32, seed=seed), check_exact=True)


@pytest.mark.tf
def test_linear_ramp_runs_to_its_end(arrays):
    from pipeline.finder.range_test import range_test

    settings = FinderConfig(start_lr=1e-4, end_lr=1e-3, steps=6, mode="linear", skip_start=0, skip_end=0)
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
    settings = dict(start_lr=1e-5, end_lr=100.0, steps=40, mode="exponential", stop_factor=4.0, beta=0.9, skip_start=3, skip_end=2, min_drop=0.05)
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
        assert set(entry) == {"steepest", "valley", "minimum", "reason", "steps_run", "stopped"}
        seed_curve = table[table["seed"] == int(seed)]
        assert entry["steps_run"] == len(seed_curve) <= 40
        assert seed_curve["step"].tolist() == list(range(len(seed_curve)))
        recomputed = suggest(seed_curve["lr"], seed_curve["smooth_loss"], config)
        assert entry["reason"] == recomputed["reason"]
        for name in SUGGESTIONS:  # the CSV round trip may move a rate by an ulp
            assert (entry[name] is None) == (recomputed[name] is None)
            assert entry[name] is None or entry[name] == pytest.approx(recomputed[name], rel=1e-12)
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
