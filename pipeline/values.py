"""Numbers read back from the study's tables and JSON files, and the spread over seeds.

The tables come back typed from their schemas (:mod:`pipeline.tables`); what is left to
share is how a single cell or a ``suggestions.json`` value (``null``, ``NaN``, ``Infinity``)
counts as a number, and the two ways the study takes a standard deviation over seeds. The
readers (:mod:`pipeline.analysis`, :mod:`pipeline.report` and the figures) share these helpers
so that they agree.

Pure pandas: no matplotlib or TensorFlow import, so the light report job can use it.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd


def finite_number(value: Any) -> float:
    """``value`` as a float; ``None``, missing, text and non-finite values become NaN."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def is_finite(value: Any) -> bool:
    """Whether ``value`` reads as a finite number (``None``, ``pd.NA``, text and ±inf do not)."""
    return not math.isnan(finite_number(value))


def std_over_seeds(values: pd.Series) -> float:
    """The seeds' spread in ``best.csv``: the sample standard deviation (ddof=1), 0 for one seed.

    Counts every seed that ran: one run has no observed spread (0); among several, pandas skips
    the NaN ones, so one finite value among them gives NaN (no spread can be estimated).
    """
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def std_over_present_seeds(values: pd.Series) -> float:
    """The seeds' spread in the figures: the sample standard deviation (ddof=1) of the values
    present (non-NaN), 0 for one value, NaN for none.

    Unlike :func:`std_over_seeds`, a seed without a value (a diverged run left out of a
    mean) does not count, so one present value shows as 0 spread, as in ``best.csv``.
    """
    present = values.dropna()
    if len(present) == 0:
        return float("nan")
    return float(present.std(ddof=1)) if len(present) > 1 else 0.0


def numeric(values: pd.Series) -> pd.Series:
    """``values`` as float64, with anything unparsable or missing (``pd.NA``) as NaN."""
    return pd.to_numeric(values, errors="coerce").astype(float)


def check_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise ValueError naming the missing columns, if ``frame`` lacks any of ``columns``."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")
