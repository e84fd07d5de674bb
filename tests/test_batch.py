"""The batch-size question (pipeline.analysis.batch): the rate the fit uses at each batch size,
the fitted exponent on synthetic runs with a known exponent, its interval, the rule, the notes,
the tables, the command line and the report's section."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from batch_synthetic import RATES, synthetic_runs

from pipeline.analysis.aggregate import best_rates
from pipeline.analysis.batch import batch_scaling_table, batch_sizes_table, fit_rate, main, scaling_rule, slope
from pipeline.tables import BATCH_SCALING, BATCH_SIZES, ScalingRule

X = np.array([-3.0, -2.0, -1.0, 0.0])


def test_fit_rate_is_the_parabolas_minimum_through_the_best_rate_and_its_neighbours() -> None:
    # Through (-3, 1), (-2, 0.4), (-1, 0.6): d1 = -0.6, a = (0.2 + 0.6) / 2 = 0.4, vertex -2.5 + 0.6 / 0.8.
    assert fit_rate(X, np.array([1.0, 0.4, 0.6, 2.0]), np.zeros(4, bool)) == pytest.approx(-1.75)
    # A symmetric bracket: the best rate itself.
    assert fit_rate(X, np.array([1.0, 0.5, 1.0, 2.0]), np.zeros(4, bool)) == pytest.approx(-2.0)


def test_fit_rate_falls_back_to_the_best_grid_rate() -> None:
    stable = np.zeros(4, bool)
    # At the grid's edge: the edge rate.
    assert fit_rate(X, np.array([0.1, 0.5, 1.0, 2.0]), stable) == -3.0
    # A diverged neighbour: no parabola through it.
    assert fit_rate(X, np.array([1.0, 0.4, 0.6, 2.0]), np.array([False, False, True, False])) == -2.0
    # The best rate itself had a diverged seed: the best stable rate wins (best.csv's rule).
    assert fit_rate(X, np.array([1.0, 0.4, 0.6, 2.0]), np.array([False, True, False, False])) == -1.0
    # No finite loss anywhere: no rate.
    assert math.isnan(fit_rate(X, np.full(4, np.nan), np.ones(4, bool)))
    # Ties go to the lower rate.
    assert fit_rate(X, np.array([0.5, 0.5, 1.0, 1.0]), stable) == -3.0


def test_slope_is_least_squares_over_the_finite_points() -> None:
    x = np.log10([32.0, 64.0, 128.0, 256.0])
    assert slope(x, 0.5 * x + 3) == pytest.approx(0.5)
    assert slope(x, np.array([1.0, np.nan, 2.0, np.nan])) == pytest.approx(1 / (x[2] - x[0]))
    assert math.isnan(slope(x, np.array([1.0, np.nan, np.nan, np.nan])))


@pytest.mark.parametrize(
    ("exponent", "low", "high", "rule"),
    [
        (0.98, 0.9, 1.1, ScalingRule.LINEAR),
        (0.5, 0.4, 0.6, ScalingRule.SQRT),
        (0.0, -0.1, 0.1, ScalingRule.CONSTANT),
        (0.7, 0.4, 1.1, ScalingRule.UNDECIDED),
        (0.75, 0.7, 0.8, ScalingRule.OTHER),
        (0.8, math.nan, math.nan, ScalingRule.LINEAR),  # no interval: the nearest rule
        (0.2, math.nan, math.nan, ScalingRule.CONSTANT),
        (math.nan, math.nan, math.nan, ScalingRule.NONE),
    ],
)
def test_scaling_rule(exponent: float, low: float, high: float, rule: ScalingRule) -> None:
    assert scaling_rule(exponent, low, high) == rule


@pytest.mark.parametrize(("exponent", "rule"), [(1.0, "linear"), (0.5, "sqrt"), (0.0, "constant")])
def test_the_fit_recovers_a_known_exponent(exponent: float, rule: str) -> None:
    table = batch_scaling_table(synthetic_runs(exponent))
    (row,) = table.itertuples(index=False)
    assert row.exponent == pytest.approx(exponent, abs=0.05)
    assert row.exponent_low <= exponent <= row.exponent_high
    assert row.exponent_high - row.exponent_low < 0.3  # tight enough to tell the rules apart
    assert row.rule == rule
    assert row.rate_per_doubling == pytest.approx(2**row.exponent)
    assert (row.batch_sizes, row.seeds, row.note) == ("32 64 128 256 512", 4, "")


def _width(row: pd.Series) -> float:
    return float(row["exponent_high"] - row["exponent_low"])


def test_the_interval_widens_with_the_runs_noise_and_is_reproducible() -> None:
    calm = batch_scaling_table(synthetic_runs(0.5, noise=0.002)).iloc[0]
    noisy = batch_scaling_table(synthetic_runs(0.5, noise=0.05)).iloc[0]
    assert _width(noisy) > 2 * _width(calm)
    assert noisy["exponent_low"] <= 0.5 <= noisy["exponent_high"]
    pd.testing.assert_frame_equal(batch_scaling_table(synthetic_runs(0.5)), batch_scaling_table(synthetic_runs(0.5)))


def test_a_seeds_shift_shared_by_every_batch_size_cancels() -> None:
    # The bootstrap resamples seeds jointly across batch sizes: a seed whose optimum sits higher
    # at every batch size moves the level, not the slope.
    shifted = batch_scaling_table(synthetic_runs(0.5, seed_shift=0.4)).iloc[0]
    assert shifted["exponent"] == pytest.approx(0.5, abs=0.05) and _width(shifted) < 0.1


def test_one_seed_gives_the_nearest_rule_and_says_there_is_no_interval() -> None:
    row = batch_scaling_table(synthetic_runs(0.9, seeds=(0,))).iloc[0]
    assert math.isnan(row["exponent_low"]) and math.isnan(row["exponent_high"])
    assert row["rule"] == "linear" and row["note"] == "one seed: no interval, the nearest rule"


def test_two_seeds_give_a_coarse_interval_and_say_so() -> None:
    row = batch_scaling_table(synthetic_runs(0.5, seeds=(0, 1))).iloc[0]
    assert row["exponent_low"] <= row["exponent"] <= row["exponent_high"]
    assert "two seeds" in row["note"]


def test_an_optimum_beyond_the_grid_is_named_in_the_note() -> None:
    # The optimum at batch 512 is 10**-2.5 * 4**1.5 ... off the grid's top with centre -0.5.
    row = batch_scaling_table(synthetic_runs(1.0, centre=-0.5)).iloc[0]
    assert "best rate at the grid's edge at batch size 256 (high), 512 (high): widen the grid" in row["note"]
    assert "a grid rate, not a parabola's minimum, at batch size 256, 512" in row["note"]
    # The edge caps the rate: the exponent is biased low, and the note is what says so.
    assert row["exponent"] < 1.0


def test_diverged_runs_are_not_the_best_rate() -> None:
    runs = synthetic_runs(0.0)
    for size, table in runs.items():
        # A run at the best rate diverges at one batch size: that rate is unstable there.
        hit = (table["lr"] == RATES[5]) & (table["seed"] == 0) if size == 512 else pd.Series(False, index=table.index)
        table.loc[hit, "status"] = "diverged"
    sizes = batch_sizes_table(runs)
    at_512 = sizes[sizes["batch_size"] == 512].iloc[0]
    assert at_512["lr"] != RATES[5] and at_512["lr_fit"] == at_512["lr"]  # a grid rate: its neighbour diverged
    assert at_512["diverged_fraction"] == pytest.approx(1 / (4 * len(RATES)))


def test_batch_sizes_table_is_best_csv_per_batch_size_with_the_fit_rate() -> None:
    runs = synthetic_runs(0.5, cells=[("adam", "constant"), ("sgd", "cosine")], sizes=(64, 128))
    sizes = batch_sizes_table(runs)
    assert list(sizes.columns) == BATCH_SIZES.columns
    assert list(zip(sizes["optimizer"], sizes["batch_size"])) == [("adam", 64), ("adam", 128), ("sgd", 64), ("sgd", 128)]
    for size, table in runs.items():
        best = best_rates(table)
        mine = sizes[sizes["batch_size"] == size].reset_index(drop=True)
        assert list(mine["lr"]) == list(best["lr"]) and list(mine["best_val_loss_mean"]) == list(best["best_val_loss_mean"])
    # The fit's rate lies within a grid step of the recommended rate.
    ratio = np.log10(sizes["lr_fit"] / sizes["lr"]).abs()
    assert (ratio <= 0.5 + 1e-9).all()


def test_every_cell_gets_its_own_exponent() -> None:
    runs = synthetic_runs(1.0, cells=[("adam", "constant")])
    flat = synthetic_runs(0.0, cells=[("sgd", "constant")])
    both = {size: pd.concat([runs[size], flat[size]], ignore_index=True) for size in runs}
    table = batch_scaling_table(both).set_index("optimizer")
    assert table.loc["adam", "rule"] == "linear" and table.loc["sgd", "rule"] == "constant"


def test_one_batch_size_is_refused() -> None:
    with pytest.raises(ValueError, match=r"at least 2 batch sizes, got \[128\]"):
        batch_scaling_table({128: synthetic_runs(0.5, sizes=(128,))[128]})


def test_command_line_writes_both_tables(tmp_path: Path) -> None:
    paths = []
    for size, runs in synthetic_runs(0.5, sizes=(64, 128, 256)).items():
        runs.to_csv(tmp_path / f"runs{size}.csv", index=False)
        paths.append(f"{size}={tmp_path / f'runs{size}.csv'}")
    main(["--runs", *paths, "--sizes-out", str(tmp_path / "sizes.csv"), "--scaling-out", str(tmp_path / "scaling.csv")])
    scaling = BATCH_SCALING.read(tmp_path / "scaling.csv")
    assert list(scaling.columns) == BATCH_SCALING.columns and scaling.loc[0, "rule"] == "sqrt"
    assert len(BATCH_SIZES.read(tmp_path / "sizes.csv")) == 3
    with pytest.raises(SystemExit):
        main(["--runs", "sixty=runs.csv", "--sizes-out", "a.csv", "--scaling-out", "b.csv"])


def test_report_section_says_what_the_tables_say(tmp_path: Path) -> None:
    from pipeline.report.batch import batch_html, scaling_sentence

    runs = synthetic_runs(0.5, sizes=(64, 128, 256))
    sizes, scaling = batch_sizes_table(runs), batch_scaling_table(runs)
    row = scaling.iloc[0]
    sentence = scaling_sentence(row)
    assert sentence.startswith(
        f"adam with constant: best rate ∝ batch_size^{row['exponent']:.2f} (95% interval "
        f"{row['exponent_low']:.2f} to {row['exponent_high']:.2f}), the square-root rule (Malladi et al. 2022)"
    )
    assert sentence.endswith(f"doubling the batch, multiply the rate by {2 ** row['exponent']:.2f}.")
    html = batch_html(sizes, scaling)
    assert '<section id="batch-size">' in html and "rate at batch 64" in html and "rate at batch 256" in html
    assert 'id="figure-batch_scaling"' not in html  # no figure given
    with pytest.raises(ValueError, match="batch scaling table lacks column"):
        batch_html(sizes, scaling.drop(columns=["rule"]))
