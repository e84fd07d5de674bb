"""Learning rates as numbers and as path strings, the grid's rates, and where a run lives."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, List, Sequence, Union

import numpy as np

from pipeline.config.schema import GridConfig


def lr_to_str(lr: float) -> str:
    """The path string of a learning rate: the shortest scientific form that reads back
    exactly (``1e-4``, ``3.162e-4``, ``1e0``)."""
    value = float(lr)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"learning rate must be a finite number > 0, got {lr!r}")
    return np.format_float_scientific(value, unique=True, trim="-", exp_digits=1).replace("e+", "e")


_LR_PATTERN = re.compile(r"^[1-9](\.[0-9]*[1-9])?e(0|-?[1-9][0-9]*)$")


def str_to_lr(text: str) -> float:
    """Inverse of :func:`lr_to_str`; only the canonical spelling is accepted."""
    if not _LR_PATTERN.match(text):
        raise ValueError(f"not a learning-rate path string: {text!r} (expected e.g. '3.162e-4')")
    value = float(text)
    if lr_to_str(value) != text:
        raise ValueError(f"not a canonical learning-rate path string: {text!r}")
    return value


def round_significant(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits - 1}e}")


# The spellings of a rate for people. Each has its own job; all of them live here, beside the
# path spelling they are built on, so that a rate reads the same wherever the study shows it.


def rate_label(lr: Any) -> str:
    """A grid rate as shown in the report and the figures: its path spelling (``3.162e-4``).

    The exact spelling of :func:`lr_to_str`, so a rate on the page can be searched for under
    ``results/``; a value that is no valid rate (NaN, <= 0, not a number) is shown as its text
    rather than failing the page.
    """
    try:
        return lr_to_str(lr)
    except (TypeError, ValueError):
        return str(lr)


def override_rate(value: float) -> str:
    """A rate as typed in an override (``study.grid.min=1e-4``): four significant digits, in the
    path spelling, which Hydra reads back as a float."""
    return lr_to_str(round_significant(float(value)))


def short_rate(lr: Any) -> str:
    """A rate that is no grid rate (a suggestion, a search's pick) to three significant digits
    (``3.16e-4``); ``n/a`` when it is not a finite number.

    Such rates are geometric means or samples, so their exact spelling would be a 17-digit
    string nobody can read.
    """
    try:
        value = float(lr)
    except (TypeError, ValueError):
        return "n/a"
    if not math.isfinite(value):
        return "n/a"
    return np.format_float_scientific(value, precision=2, trim="-", exp_digits=1).replace("e+", "e")


def grid_rates(grid: GridConfig) -> List[float]:
    """The sorted learning rates of a grid."""
    if grid.values is not None:
        return sorted({float(value) for value in grid.values})
    exponents = np.linspace(math.log10(grid.min), math.log10(grid.max), grid.points)
    return sorted({round_significant(10.0**exponent) for exponent in exponents})


def run_dir(study_dir: Union[str, Path], optimizer: str, schedule: str, seed: int, lr: float) -> Path:
    """Where one run's outputs live."""
    return Path(study_dir) / "runs" / optimizer / schedule / f"seed{seed}" / f"lr{lr_to_str(lr)}"


def cohort_parts(rates: Sequence[float], cohort_size: int) -> List[List[float]]:
    """Split a cohort's rates into the chunks trained by one job each (0 = one chunk)."""
    rates = list(rates)
    size = cohort_size if cohort_size > 0 else len(rates)
    return [rates[start : start + size] for start in range(0, len(rates), size)]
