"""The tables the stages hand each other: their columns, dtypes, reader and writer, in one place.

Each CSV file of a study has one :class:`TableSchema` here: its columns in file order with
their dtypes, one reader that gives a typed frame (text as ``str``, with ``""`` for an empty
cell; booleans as ``bool``; integers as ``int64``, or ``Int64`` where a cell may be empty;
everything else ``float64``) and one writer that writes the bytes the pipeline has always
written. The run status and the trial state, the two words of the tables that code compares
against, are the enums :class:`RunStatus` and :class:`TrialState`.

- :data:`HISTORY`: ``runs/<...>/history.csv``, one row per epoch (``pipeline.training.run``);
- :data:`RUNS`, :data:`CURVES`, :data:`BEST`: ``runs.csv`` (one row per run), ``curves.csv``
  (one row per run and epoch) and ``best.csv`` (one row per optimizer × schedule), by
  ``pipeline.analysis``;
- :data:`TRIALS`: ``hpo/<search>/trials.csv``, one row per trial (``pipeline.search``);
- :data:`FINDER`: ``finder/<optimizer>/finder.csv``, the range test's curves (``pipeline.finder``);
- :data:`FINDER_VS_GRID`: ``finder_vs_grid.csv`` (``pipeline.analysis.finder_vs_grid``);
- :data:`METHODS`: ``methods.csv`` (``pipeline.analysis.methods``);
- :data:`CONFIRM`: ``confirm.csv``, the confirmation on fresh seeds (``pipeline.analysis.confirm``).

The bottom layer of the package: pandas, NumPy and the standard library only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import pandas as pd
from pandas._libs.parsers import STR_NA_VALUES

#: Column dtypes of a schema: text, float, integer, integer with empty cells, boolean.
STR, FLOAT, INT, NULLABLE_INT, BOOL = "str", "float64", "int64", "Int64", "bool"

#: The text :func:`pandas.read_csv` reads as missing in a number column (its own defaults).
_NA_TEXT: Tuple[str, ...] = tuple(sorted(STR_NA_VALUES))

#: How booleans are spelled in the files (``DataFrame.to_csv`` of a bool column).
_BOOL_TEXT: Dict[str, bool] = {"True": True, "False": False}


try:
    from enum import StrEnum
except ImportError:  # Python 3.10

    class StrEnum(str, enum.Enum):  # type: ignore[no-redef]
        """``enum.StrEnum`` of Python 3.11: members are their text, in ``str()`` and formatting."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return format(str(self.value), spec)


class RunStatus(StrEnum):
    """How a training run ended (``status`` in ``summary.json``, ``runs.csv`` and ``trials.csv``)."""

    OK = "ok"
    DIVERGED = "diverged"


class Verdict(StrEnum):
    """Whether a recommendation held on fresh seeds (``verdict`` in ``confirm.csv``,
    :mod:`pipeline.analysis.confirm`)."""

    CONFIRMED = "confirmed"
    TIE = "tie"
    OVERTURNED = "overturned"
    #: No rate of the cell came second (one rate, or every other one without a finite loss).
    NO_RUNNER_UP = "no runner-up"


class ScalingRule(StrEnum):
    """Which rule the best rate follows across batch sizes (``rule`` in ``batch_scaling.csv``,
    :mod:`pipeline.analysis.batch`)."""

    #: best rate ∝ batch size (Goyal et al. 2017).
    LINEAR = "linear"
    #: best rate ∝ sqrt(batch size) (Malladi et al. 2022).
    SQRT = "sqrt"
    #: the best rate does not move with the batch size.
    CONSTANT = "constant"
    #: the exponent's interval holds more than one of the rules above.
    UNDECIDED = "undecided"
    #: the exponent's interval holds none of them.
    OTHER = "other"
    #: no exponent: fewer than two batch sizes reached a finite loss.
    NONE = "none"


class TrialState(StrEnum):
    """A search trial's state (``state`` in ``trials.csv``): Optuna's state names, lower case."""

    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAIL = "fail"
    WAITING = "waiting"


@dataclass(frozen=True)
class TableSchema:
    """One study table: its columns in file order with their dtypes, and how it is written.

    Attributes:
        name: How error messages name the table (``runs``, ``best``...).
        dtypes: Column name to dtype (:data:`STR`, :data:`FLOAT`, :data:`INT`,
            :data:`NULLABLE_INT`, :data:`BOOL`), in file order.
        optional: Columns a complete table may lack (``runs.csv`` without the diagnosis).
        na_rep: How a missing number is written (``to_csv``'s ``na_rep``).
        lineterminator: The line end of the file.
    """

    name: str
    dtypes: Mapping[str, str]
    optional: Tuple[str, ...] = ()
    na_rep: str = ""
    lineterminator: str = "\n"

    def __post_init__(self) -> None:
        unknown = [column for column in self.optional if column not in self.dtypes]
        if unknown:
            raise ValueError(f"table {self.name}: optional column(s) {unknown} are not among its columns")
        bad = {column: dtype for column, dtype in self.dtypes.items() if dtype not in (STR, FLOAT, INT, NULLABLE_INT, BOOL)}
        if bad:
            raise ValueError(f"table {self.name}: unknown dtype(s) {bad}")

    @property
    def columns(self) -> List[str]:
        """Every column, in file order."""
        return list(self.dtypes)

    @property
    def required(self) -> List[str]:
        """The columns every table of this kind has, in file order."""
        return [column for column in self.dtypes if column not in self.optional]

    def check(self, frame: pd.DataFrame, columns: Optional[Iterable[str]] = None, what: Optional[str] = None) -> None:
        """Raise ValueError naming the missing columns, if ``frame`` lacks any of ``columns``.

        Args:
            frame: The table.
            columns: The columns the caller reads (each one of this schema's); default: the
                required columns.
            what: How the message names the frame; default: the schema's name.
        """
        wanted = self.required if columns is None else list(columns)
        foreign = [column for column in wanted if column not in self.dtypes]
        if foreign:
            raise ValueError(f"table {self.name} has no column(s) {foreign}; its columns: {self.columns}")
        missing = [column for column in wanted if column not in frame.columns]
        if missing:
            raise ValueError(f"{what or self.name} lacks column(s) {missing}; it has {list(frame.columns)}")

    def empty(self) -> pd.DataFrame:
        """A table with no rows: every required column, typed."""
        return self.typed(pd.DataFrame(columns=self.required))

    def typed(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``frame`` with each of this schema's columns in its dtype (others as they are).

        Missing text becomes ``""``; booleans may be given as bools or as their file spelling.

        Raises:
            ValueError: A value does not fit its column's dtype (the column, the value and the
                valid spellings are named for booleans).
        """
        result = frame.copy()
        for column in result.columns:
            dtype = self.dtypes.get(column)
            if dtype is None:
                continue
            values = result[column]
            if dtype == STR:
                result[column] = values.astype(object).where(values.notna(), "").astype(str)
            elif dtype == BOOL:
                result[column] = self._booleans(column, values)
            elif dtype == FLOAT:
                result[column] = values.astype(FLOAT)
            else:
                result[column] = values.astype(dtype)
        return result

    def _booleans(self, column: str, values: pd.Series) -> pd.Series:
        def one(value: object) -> bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value in _BOOL_TEXT:
                return _BOOL_TEXT[value]
            if not isinstance(value, str) and value in (0, 1):  # NumPy bools and 0/1
                return bool(value)
            raise ValueError(f"{self.name}: column {column!r} holds {value!r}; valid: {list(_BOOL_TEXT)}")

        return pd.Series([one(value) for value in values], index=values.index, dtype=BOOL)

    def read(self, path: Union[str, Path]) -> pd.DataFrame:
        """The table in file ``path``, typed (see :meth:`typed`); its columns as in the file.

        Text cells are read as written (an empty cell is ``""``, never NaN); in number columns
        pandas' usual spellings of a missing value (empty, ``nan``, ``NA``...) are NaN.
        """
        header = list(pd.read_csv(path, nrows=0).columns)
        text_columns = {column for column in header if self.dtypes.get(column) in (STR, BOOL)}
        frame = pd.read_csv(
            path,
            dtype={column: str for column in text_columns},
            keep_default_na=False,
            na_values={column: list(_NA_TEXT) for column in header if column not in text_columns},
        )
        return self.typed(frame)

    def write(self, frame: pd.DataFrame, path: Union[str, Path]) -> None:
        """Write ``frame`` to ``path`` in this table's format.

        The frame is written as it is (no reordering or conversion: the writers build their
        frames in the schema's order), floats at full precision. Jobs write through
        :func:`pipeline.io.write_atomic` (``write_atomic(out, lambda temporary:
        RUNS.write(frame, temporary))``), so that an interrupted job leaves no table behind.

        Raises:
            ValueError: The frame lacks a required column.
        """
        self.check(frame)
        frame.to_csv(path, index=False, na_rep=self.na_rep, lineterminator=self.lineterminator)


def _schema(name: str, columns: Sequence[Tuple[str, str]], **options: object) -> TableSchema:
    return TableSchema(name, dict(columns), **options)  # type: ignore[arg-type]


#: The columns that identify one run in runs.csv and curves.csv.
RUN_KEYS: List[str] = ["optimizer", "schedule", "lr", "seed"]

_KEY_DTYPES: List[Tuple[str, str]] = [("optimizer", STR), ("schedule", STR), ("lr", FLOAT), ("seed", INT)]

#: One row per epoch of a run (``runs/<...>/history.csv``): ``lr`` is the rate in force at the
#: epoch's end. Written by the csv module before it was a schema, hence CRLF and ``nan``.
HISTORY = _schema(
    "history",
    [("epoch", INT), ("lr", FLOAT), ("loss", FLOAT), ("accuracy", FLOAT), ("val_loss", FLOAT),
     ("val_accuracy", FLOAT), ("seconds", FLOAT)],
    na_rep="nan",
    lineterminator="\r\n",
)  # fmt: skip

#: The columns of ``history.csv``, in file order.
HISTORY_COLUMNS: List[str] = HISTORY.columns

#: The fitting diagnosis of each run (:mod:`pipeline.analysis.diagnosis`), appended to runs.csv.
DIAGNOSIS_DTYPES: List[Tuple[str, str]] = [
    ("fit", STR), ("fit_reasons", STR), ("spikes", INT), ("max_loss_rise", FLOAT), ("end_over_best", FLOAT),
    ("progress", FLOAT), ("end_drop", FLOAT), ("val_rise", FLOAT), ("gap", FLOAT),
    ("epochs_to_target", NULLABLE_INT), ("seconds_to_target", FLOAT),
]  # fmt: skip

#: One row per run (``runs.csv``); the diagnosis columns and ``target_accuracy`` only when the
#: study was diagnosed.
RUNS = _schema(
    "runs",
    [
        *_KEY_DTYPES, ("status", STR), ("best_val_loss", FLOAT), ("best_val_accuracy", FLOAT),
        ("best_epoch", NULLABLE_INT), ("final_loss", FLOAT), ("final_val_loss", FLOAT), ("final_val_accuracy", FLOAT),
        ("diverged_epoch", NULLABLE_INT), ("epochs_run", INT), ("steps", INT), ("val_accuracy_at_best", FLOAT),
        ("seconds", FLOAT), ("initial_loss", FLOAT), ("device", STR), ("resumed_from_epoch", NULLABLE_INT),
        ("run_dir", STR), *DIAGNOSIS_DTYPES, ("target_accuracy", FLOAT),
    ],
    optional=(*(name for name, _ in DIAGNOSIS_DTYPES), "target_accuracy"),
)  # fmt: skip

#: The columns of runs.csv that come from each run's summary.json, in file order.
RUN_SUMMARY_COLUMNS: List[str] = RUNS.required

#: One row per run and epoch (``curves.csv``): the history with the run's keys; the history's
#: ``lr`` is ``current_lr`` here, since ``lr`` is the run's grid rate.
CURVES = _schema(
    "curves",
    [*_KEY_DTYPES, ("epoch", INT), ("current_lr", FLOAT),
     *((column, FLOAT) for column in HISTORY_COLUMNS[2:])],
)  # fmt: skip

#: One row per optimizer × schedule with its recommended grid rate (``best.csv``).
BEST = _schema(
    "best",
    [
        ("optimizer", STR), ("schedule", STR), ("lr", FLOAT), ("best_val_loss_mean", FLOAT),
        ("best_val_loss_std", FLOAT), ("best_val_accuracy_mean", FLOAT), ("best_val_accuracy_std", FLOAT),
        ("seeds", INT), ("diverged_fraction", FLOAT), ("at_edge", BOOL), ("edge", STR), ("fit", STR),
        ("best_epoch_mean", FLOAT), ("lr_estimate", FLOAT), ("lr_low", FLOAT), ("lr_high", FLOAT),
        ("estimate_note", STR), ("lr_sensitivity", FLOAT),
    ],
)  # fmt: skip

#: One row per trial of a search (``hpo/<search>/trials.csv``); ``state`` is a
#: :class:`TrialState`, ``status`` the trial run's :class:`RunStatus` (empty without a run).
TRIALS = _schema(
    "trials",
    [
        ("search", STR), ("sampler", STR), ("pruner", STR), ("trial", INT), ("state", STR), ("lr", FLOAT),
        ("optimizer", STR), ("schedule", STR), ("warmup_fraction", FLOAT), ("value", FLOAT),
        ("best_val_loss", FLOAT), ("best_val_accuracy", FLOAT), ("epochs_run", NULLABLE_INT), ("seconds", FLOAT),
        ("status", STR), ("run_dir", STR), ("datetime_start", STR), ("datetime_complete", STR),
        ("worker", NULLABLE_INT), ("fail_reason", STR),
    ],
)  # fmt: skip

#: The LR range test's curves (``finder/<optimizer>/finder.csv``): one row per seed and step.
FINDER = _schema(
    "finder",
    [("optimizer", STR), ("seed", INT), ("step", INT), ("lr", FLOAT), ("loss", FLOAT), ("smooth_loss", FLOAT)],
    na_rep="nan",
)

#: The range test's suggestions against the grid's best (``finder_vs_grid.csv``).
FINDER_VS_GRID = _schema(
    "finder_vs_grid",
    [
        ("optimizer", STR), ("schedule", STR), ("suggestion", STR), ("suggested_lr", FLOAT), ("suggested_min", FLOAT),
        ("suggested_max", FLOAT), ("seeds", INT), ("grid_best_lr", FLOAT), ("ratio", FLOAT),
        ("nearest_grid_lr", FLOAT), ("nearest_val_loss", FLOAT), ("nearest_diverged", NULLABLE_INT),
        ("grid_best_val_loss", FLOAT), ("relative_val_loss", FLOAT),
    ],
)  # fmt: skip

#: The grid, the range test and each search compared (``methods.csv``); ``optimizer`` and
#: ``schedule`` are empty where a method chose nothing.
METHODS = _schema(
    "methods",
    [
        ("method", STR), ("best_val_loss", FLOAT), ("lr", FLOAT), ("optimizer", STR), ("schedule", STR),
        ("runs", INT), ("epochs", INT), ("seconds", FLOAT), ("epochs_to_within_1pct", FLOAT),
        ("seconds_to_within_1pct", FLOAT), ("reached", BOOL), ("fresh_val_loss", FLOAT),
        ("fresh_val_loss_std", FLOAT), ("fresh_seeds", INT), ("fresh_rank", NULLABLE_INT),
    ],
    optional=("fresh_val_loss", "fresh_val_loss_std", "fresh_seeds", "fresh_rank"),
)  # fmt: skip

#: The confirmation on fresh seeds (``confirm.csv``, :mod:`pipeline.analysis.confirm`): one row
#: per confirmed optimizer × schedule. Losses are means over the fresh seeds; ``margin`` is the
#: runner-up's loss minus the recommended rate's (positive: the recommendation holds), with its
#: paired interval; ``estimate_gain`` the recommended rate's minus the estimated optimum's
#: (positive: the estimate did better).
CONFIRM = _schema(
    "confirm",
    [
        ("optimizer", STR), ("schedule", STR), ("lr", FLOAT), ("runner_up_lr", FLOAT), ("estimate_lr", FLOAT),
        ("seeds", INT), ("grid_loss", FLOAT), ("lr_loss", FLOAT), ("runner_up_loss", FLOAT), ("estimate_loss", FLOAT),
        ("margin", FLOAT), ("margin_low", FLOAT), ("margin_high", FLOAT), ("verdict", STR),
        ("estimate_gain", FLOAT), ("estimate_gain_low", FLOAT), ("estimate_gain_high", FLOAT),
    ],
)  # fmt: skip

#: One row per optimizer × schedule × batch size of the batch-size question
#: (``batch_sizes.csv``, :mod:`pipeline.analysis.batch`): the recommended grid rate at that batch
#: size and ``lr_fit``, the rate the scaling fit uses.
BATCH_SIZES = _schema(
    "batch_sizes",
    [
        ("optimizer", STR), ("schedule", STR), ("batch_size", INT), ("lr", FLOAT), ("lr_fit", FLOAT),
        ("best_val_loss_mean", FLOAT), ("best_val_loss_std", FLOAT), ("best_val_accuracy_mean", FLOAT),
        ("seeds", INT), ("diverged_fraction", FLOAT), ("edge", STR),
    ],
)  # fmt: skip

#: One row per optimizer × schedule of the batch-size question (``batch_scaling.csv``): the
#: exponent ``k`` of ``best rate ∝ batch_size**k``, its bootstrap interval over seeds and the
#: :class:`ScalingRule` it follows; ``batch_sizes`` lists the sizes, space-separated.
BATCH_SCALING = _schema(
    "batch_scaling",
    [
        ("optimizer", STR), ("schedule", STR), ("batch_sizes", STR), ("seeds", INT), ("exponent", FLOAT),
        ("exponent_low", FLOAT), ("exponent_high", FLOAT), ("rate_per_doubling", FLOAT), ("rule", STR), ("note", STR),
    ],
)  # fmt: skip

#: Every table, by name.
SCHEMAS: Dict[str, TableSchema] = {
    schema.name: schema for schema in (
        HISTORY, RUNS, CURVES, BEST, TRIALS, FINDER, FINDER_VS_GRID, METHODS, CONFIRM, BATCH_SIZES, BATCH_SCALING
    )
}
