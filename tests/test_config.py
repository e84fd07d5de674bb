"""Rates, grids, paths and cohort splits of pipeline.config.schema."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.config.schema import GridConfig
from pipeline.config.rates import cohort_parts, grid_rates, lr_to_str, run_dir, str_to_lr


def test_grid_is_log_spaced_and_rounded():
    rates = grid_rates(GridConfig(min=1e-4, max=1.0, points=9))
    assert rates == [1e-4, 3.162e-4, 1e-3, 3.162e-3, 1e-2, 3.162e-2, 0.1, 0.3162, 1.0]
    ratios = np.diff(np.log10(rates))
    np.testing.assert_allclose(ratios, 0.5, atol=1e-3)


@pytest.mark.parametrize("lr", [1e-7, 1e-4, 3.162e-4, 0.001, 0.1, 0.3162, 1.0, 10.0, 0.1 + 0.2, 1 / 3, 2.5e-12])
def test_lr_path_string_round_trip(lr):
    text = lr_to_str(lr)
    assert str_to_lr(text) == lr
    assert lr_to_str(str_to_lr(text)) == text
    assert "/" not in text and " " not in text


def test_lr_path_strings_are_short_and_readable():
    assert lr_to_str(1e-4) == "1e-4"
    assert lr_to_str(3.162e-4) == "3.162e-4"
    assert lr_to_str(1.0) == "1e0"
    assert lr_to_str(10.0) == "1e1"


@pytest.mark.parametrize("bad", ["0.001", "1e-04", "1.0e-4", "abc", "", "-1e-3", "3.1620e-4"])
def test_non_canonical_lr_strings_are_rejected(bad):
    with pytest.raises(ValueError):
        str_to_lr(bad)


@pytest.mark.parametrize("bad", [0.0, -1e-3, math.inf, math.nan])
def test_invalid_rates_have_no_path(bad):
    with pytest.raises(ValueError, match="learning rate"):
        lr_to_str(bad)


def test_run_dir_layout():
    assert run_dir("results/s", "adam", "cosine", 1, 3e-3) == Path("results/s/runs/adam/cosine/seed1/lr3e-3")


def test_cohort_parts():
    assert cohort_parts([1, 2, 3, 4, 5], 0) == [[1, 2, 3, 4, 5]]
    assert cohort_parts([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert cohort_parts([1, 2, 3], 1) == [[1], [2], [3]]
