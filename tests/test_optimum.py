"""The estimated optimum between grid points and the LR sensitivity (pipeline.analysis.optimum),
on synthetic studies whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.optimum import estimate_optimum, lr_sensitivity, parabola_vertex

#: A log-spaced grid of half-decade steps, 1e-4 .. 1.
GRID = [10 ** (-4 + k / 2) for k in range(9)]


def runs(loss_of_log_rate, seeds=3, noise=0.0, rng_seed=0, diverged=()) -> pd.DataFrame:
    """One optimizer × schedule's runs.csv rows: best_val_loss = f(log10 lr) + seed noise."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for seed in range(seeds):
        for lr in GRID:
            loss = loss_of_log_rate(math.log10(lr)) * (1 + noise * rng.standard_normal())
            status = "diverged" if lr in diverged else "ok"
            rows.append({"lr": lr, "seed": seed, "status": status, "best_val_loss": loss,
                         "final_val_loss": loss * 1.1, "initial_loss": 2.3})  # fmt: skip
    return pd.DataFrame(rows)


def best_grid_rate(frame: pd.DataFrame) -> float:
    clean = frame[frame["status"] == "ok"]
    return float(clean.groupby("lr")["best_val_loss"].mean().idxmin())


def test_parabola_vertex_is_exact_and_refuses_a_maximum_or_a_line():
    assert parabola_vertex([0, 1, 3], [(0 - 1.3) ** 2, (1 - 1.3) ** 2, (3 - 1.3) ** 2]) == pytest.approx(1.3, abs=1e-12)
    assert parabola_vertex([0, 1, 2], [0, 1, 0]) is None
    assert parabola_vertex([0, 1, 2], [3, 2, 1]) is None


@pytest.mark.parametrize("true_optimum", [-2.4, -2.2, -1.9, -1.65])
def test_a_quadratic_curve_s_minimum_is_found_between_grid_points(true_optimum):
    frame = runs(lambda x: 1.0 + 0.3 * (x - true_optimum) ** 2)
    result = estimate_optimum(frame, best_grid_rate(frame))
    assert result["estimate_note"] == ""
    assert math.log10(result["lr_estimate"]) == pytest.approx(true_optimum, abs=1e-9)
    # Without noise every bootstrap sample has the same vertex: a zero-width interval.
    assert math.log10(result["lr_low"]) == pytest.approx(true_optimum, abs=1e-9)
    assert math.log10(result["lr_high"]) == pytest.approx(true_optimum, abs=1e-9)


def test_with_seed_noise_the_estimate_is_close_and_the_interval_holds_the_truth():
    # Not quadratic (a skewed valley), 1% noise per run, 5 seeds: the stated tolerance is
    # 0.05 decades on this half-decade grid.
    truth = -2.3
    frame = runs(lambda x: 1.0 + 0.25 * (x - truth) ** 2 + 0.03 * (x - truth) ** 3, seeds=5, noise=0.01, rng_seed=3)
    result = estimate_optimum(frame, best_grid_rate(frame))
    assert result["estimate_note"] == ""
    assert math.log10(result["lr_estimate"]) == pytest.approx(truth, abs=0.05)
    assert result["lr_low"] <= result["lr_estimate"] <= result["lr_high"]
    assert result["lr_low"] <= 10**truth <= result["lr_high"]
    # The interval stays inside the bracket of the best grid rate's neighbours.
    chosen = GRID.index(best_grid_rate(frame))
    assert GRID[chosen - 1] <= result["lr_low"] and result["lr_high"] <= GRID[chosen + 1]
    # The same study gives the same interval (a fixed bootstrap generator).
    assert estimate_optimum(frame, best_grid_rate(frame)) == result


def test_no_estimate_on_the_grid_edge_on_a_flat_curve_next_to_a_diverged_rate_or_with_noisy_seeds():
    edge = runs(lambda x: 1.0 + 0.3 * (x + 5) ** 2)  # the minimum below the grid
    assert best_grid_rate(edge) == GRID[0]
    result = estimate_optimum(edge, GRID[0])
    assert result["estimate_note"] == "edge" and math.isnan(result["lr_estimate"])

    flat = runs(lambda x: 1.0 + 0.001 * (x + 2) ** 2)  # neighbours within 0.5%
    result = estimate_optimum(flat, best_grid_rate(flat))
    assert result["estimate_note"] == "flat" and math.isnan(result["lr_estimate"])

    unstable = runs(lambda x: 1.0 + 0.3 * (x + 2.2) ** 2, diverged=(GRID[5],))  # 10**-1.5 diverged
    result = estimate_optimum(unstable, GRID[4])
    assert result["estimate_note"] == "unstable neighbour" and math.isnan(result["lr_low"])

    # Two seeds that disagree on the side: one's minimum a decade below the mean's, one's a
    # decade above. Each seed's own vertex lies beyond a neighbour, so the interval spans the
    # whole bracket.
    low_seed, high_seed = runs(lambda x: 1.0 + 0.3 * (x + 3) ** 2, seeds=1), runs(lambda x: 1.0 + 0.3 * (x + 1) ** 2, seeds=1)
    noisy = pd.concat([low_seed, high_seed.assign(seed=1)], ignore_index=True)
    assert best_grid_rate(noisy) == pytest.approx(1e-2)
    result = estimate_optimum(noisy, best_grid_rate(noisy))
    assert result["estimate_note"] == "noisy" and math.isnan(result["lr_estimate"])


def test_one_seed_gives_an_estimate_without_an_interval():
    frame = runs(lambda x: 1.0 + 0.3 * (x + 2.2) ** 2, seeds=1)
    result = estimate_optimum(frame, best_grid_rate(frame))
    assert result["estimate_note"] == "one seed: no interval"
    assert math.log10(result["lr_estimate"]) == pytest.approx(-2.2, abs=1e-9)
    assert math.isnan(result["lr_low"]) and math.isnan(result["lr_high"])


def test_lr_sensitivity_is_wortsmans_expected_excess_with_diverged_runs_clipped():
    rows = []
    # Final val losses per rate (two seeds), the untrained loss 2.0: 1.5/1.7, 1.0/1.2, 3.0 (clipped
    # to 2.0)/1.4, and a diverged rate (counts 2.0 for both seeds).
    for lr, finals, statuses in ((1e-3, (1.5, 1.7), ("ok", "ok")), (1e-2, (1.0, 1.2), ("ok", "ok")),
                                 (1e-1, (3.0, 1.4), ("ok", "ok")), (1.0, (math.nan, 0.5), ("diverged", "diverged"))):  # fmt: skip
        for seed, (final, status) in enumerate(zip(finals, statuses)):
            rows.append({"lr": lr, "seed": seed, "status": status, "final_val_loss": final, "initial_loss": 2.0})
    # Per rate: 1.6, 1.1, 1.7, 2.0; best 1.1; excess 0.5, 0, 0.6, 0.9 -> mean 0.5.
    assert lr_sensitivity(pd.DataFrame(rows)) == pytest.approx(0.5, abs=1e-12)
    assert math.isnan(lr_sensitivity(pd.DataFrame(columns=["lr", "status", "final_val_loss", "initial_loss"])))
