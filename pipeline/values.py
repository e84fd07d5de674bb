"""Reading loosely typed values from the study's CSV and JSON files.

``runs.csv``, ``best.csv`` and ``finder_vs_grid.csv`` come back from :func:`pandas.read_csv`
with NaN for empty cells and, in older files, booleans spelled as text; ``suggestions.json``
holds ``null``, ``NaN`` and ``Infinity``. The readers (:mod:`pipeline.analysis.advice`,
:mod:`pipeline.report`, :mod:`pipeline.analysis.finder_vs_grid` and the figures) share these helpers so
that they agree on what counts as a number, a "true" and a usable table.

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


def truthy(value: Any) -> bool:
    """A CSV boolean: True/False, 1/0, or their spellings as text; NaN/empty is False."""
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return bool(value)


def numeric(values: pd.Series) -> pd.Series:
    """``values`` as float64, with anything unparsable or missing (``pd.NA``) as NaN."""
    return pd.to_numeric(values, errors="coerce").astype(float)


def check_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise ValueError naming the missing columns, if ``frame`` lacks any of ``columns``."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")
