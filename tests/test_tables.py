"""The study tables' schemas: typed round trips, the bytes the pipeline has always written, the
run status and trial state enums, and the value helpers beside them."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from pipeline.config.rates import override_rate, rate_label, short_rate
from pipeline.tables import (
    BEST,
    BOOL,
    CURVES,
    FINDER,
    FINDER_VS_GRID,
    FLOAT,
    HISTORY,
    INT,
    METHODS,
    NULLABLE_INT,
    RUNS,
    SCHEMAS,
    STR,
    RunStatus,
    TableSchema,
    TrialState,
)
from pipeline.values import std_over_present_seeds, std_over_seeds

NAN, INF = math.nan, math.inf

#: Awkward floats: exact binary fractions, long reprs, tiny and huge numbers, non-finite ones.
FLOATS = [0.1 + 0.2, 1e-300, 1.5e16, -0.0, NAN, INF, -INF, 3.162e-4]


def _values(dtype: str, rows: int, column: int) -> List[Any]:
    """``rows`` values of a dtype, different per column, with every awkward case present."""
    if dtype == STR:
        texts = ["adam", "", "a, b", 'quoted "x"', "nan", "NA", "ok", "résumé"]
        return [texts[(row + column) % len(texts)] for row in range(rows)]
    if dtype == FLOAT:
        return [FLOATS[(row + column) % len(FLOATS)] for row in range(rows)]
    if dtype == INT:
        return [row * 7 - 3 + column for row in range(rows)]
    if dtype == NULLABLE_INT:
        return [None if row % 3 == 1 else row + column for row in range(rows)]
    return [row % 2 == 0 for row in range(rows)]


def typed_frame(schema: TableSchema, rows: int = 8) -> pd.DataFrame:
    """A synthetic table of every column of ``schema``, in the dtypes its reader gives."""
    data = {name: _values(dtype, rows, index) for index, (name, dtype) in enumerate(schema.dtypes.items())}
    return schema.typed(pd.DataFrame(data))


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_write_then_read_gives_the_same_typed_frame(name: str, tmp_path: Path) -> None:
    schema = SCHEMAS[name]
    frame = typed_frame(schema)
    schema.write(frame, tmp_path / "table.csv")
    back = schema.read(tmp_path / "table.csv")
    assert_frame_equal(back, frame)
    assert list(back.columns) == schema.columns


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_reader_dtypes(name: str, tmp_path: Path) -> None:
    schema = SCHEMAS[name]
    schema.write(typed_frame(schema), tmp_path / "table.csv")
    back = schema.read(tmp_path / "table.csv")
    for column, dtype in schema.dtypes.items():
        values = back[column]
        if dtype == STR:
            assert all(isinstance(value, str) for value in values), column  # "" for an empty cell
        else:
            assert values.dtype == dtype, column


def _legacy_history(rows: List[Dict[str, Any]], path: Path) -> None:
    """history.csv as the training run wrote it before the schema existed (csv module, repr)."""
    columns = HISTORY.columns
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: repr(row[key]) if isinstance(row[key], float) else row[key] for key in columns})


def test_history_bytes_equal_the_csv_module_writer(tmp_path: Path) -> None:
    from pipeline.training.run import write_history

    rows = [
        {"epoch": epoch + 1, "lr": 1e-3 * 0.5**epoch, "loss": FLOATS[epoch % len(FLOATS)], "accuracy": 0.1 + 0.2,
         "val_loss": FLOATS[(epoch + 3) % len(FLOATS)], "val_accuracy": 0.875, "seconds": 1 / 3}
        for epoch in range(10)
    ]  # fmt: skip
    for count in (0, 1, len(rows)):
        _legacy_history(rows[:count], tmp_path / "legacy.csv")
        write_history(rows[:count], tmp_path / "history.csv")
        assert (tmp_path / "history.csv").read_bytes() == (tmp_path / "legacy.csv").read_bytes(), count
    assert b"\r\n" in (tmp_path / "history.csv").read_bytes() and b"nan" in (tmp_path / "history.csv").read_bytes()


@pytest.mark.parametrize("name", [name for name in SCHEMAS if name != "history"])
def test_table_bytes_equal_the_pandas_writer_they_replaced(name: str, tmp_path: Path) -> None:
    # Before the schemas every table but history.csv was DataFrame.to_csv(index=False), the
    # range test's curves with na_rep="nan".
    schema = SCHEMAS[name]
    frame = typed_frame(schema)
    legacy = {"na_rep": "nan"} if schema is FINDER else {}
    frame.to_csv(tmp_path / "legacy.csv", index=False, **legacy)
    schema.write(frame, tmp_path / "table.csv")
    assert (tmp_path / "table.csv").read_bytes() == (tmp_path / "legacy.csv").read_bytes()


def test_runs_without_the_diagnosis_is_a_complete_table(tmp_path: Path) -> None:
    frame = typed_frame(RUNS).loc[:, RUNS.required]
    RUNS.write(frame, tmp_path / "runs.csv")
    assert list(RUNS.read(tmp_path / "runs.csv").columns) == RUNS.required
    assert RUNS.columns[: len(RUNS.required)] == RUNS.required and "fit" in RUNS.optional


def test_check_names_the_missing_columns_and_what_the_frame_has() -> None:
    frame = pd.DataFrame(columns=["optimizer", "schedule"])
    with pytest.raises(ValueError, match=r"^runs lacks column\(s\) \['lr', 'status'\]; it has \['optimizer', 'schedule'\]$"):
        RUNS.check(frame, ["optimizer", "lr", "status"])
    with pytest.raises(ValueError, match=r"^finder table lacks column\(s\) \['suggestion'\]"):
        FINDER_VS_GRID.check(frame, ["optimizer", "suggestion"], "finder table")
    with pytest.raises(ValueError, match=r"best lacks column\(s\) \['lr'"):
        BEST.write(frame, "unused.csv")  # the writer checks before it writes
    with pytest.raises(ValueError, match=r"table runs has no column\(s\) \['colour'\]"):
        RUNS.check(frame, ["optimizer", "colour"])
    RUNS.check(frame, ["optimizer", "schedule"])


def test_a_boolean_column_rejects_other_text(tmp_path: Path) -> None:
    frame = typed_frame(METHODS).astype({"reached": object})
    frame.loc[2, "reached"] = "yes"
    frame.to_csv(tmp_path / "methods.csv", index=False)
    with pytest.raises(ValueError, match=r"methods: column 'reached' holds 'yes'; valid: \['True', 'False'\]"):
        METHODS.read(tmp_path / "methods.csv")


def test_text_cells_read_as_written(tmp_path: Path) -> None:
    # An empty text cell is "", not NaN; an optimizer named "nan" or "NA" stays a name.
    (tmp_path / "best.csv").write_text(
        ",".join(BEST.columns) + "\n" + "NA,nan,0.001,0.5,,0.75,,1,0.0,True,low,,\n", encoding="utf-8"
    )
    best = BEST.read(tmp_path / "best.csv")
    row = best.iloc[0]
    assert (row["optimizer"], row["schedule"], row["edge"], row["fit"]) == ("NA", "nan", "low", "")
    assert row["at_edge"] is np.True_ and math.isnan(row["best_val_loss_std"]) and math.isnan(row["best_epoch_mean"])


def test_empty_tables(tmp_path: Path) -> None:
    for schema in SCHEMAS.values():
        empty = schema.empty()
        assert list(empty.columns) == schema.required and empty.empty
        schema.write(empty, tmp_path / f"{schema.name}.csv")
        assert list(schema.read(tmp_path / f"{schema.name}.csv").columns) == schema.required


def test_every_dtype_is_known_and_columns_are_unique() -> None:
    for schema in SCHEMAS.values():
        assert set(schema.dtypes.values()) <= {STR, FLOAT, INT, NULLABLE_INT, BOOL}
        assert len(set(schema.columns)) == len(schema.columns)
    assert CURVES.columns[:4] == RUNS.columns[:4] == ["optimizer", "schedule", "lr", "seed"]
    assert CURVES.columns[5:] == ["current_lr", *HISTORY.columns[2:]]
    with pytest.raises(ValueError, match="unknown dtype"):
        TableSchema("bad", {"x": "float32"})


def test_run_status_is_the_text_of_summary_json_and_runs_csv(tmp_path: Path) -> None:
    assert [status.value for status in RunStatus] == ["ok", "diverged"]
    assert RunStatus.DIVERGED == "diverged" and f"{RunStatus.OK}" == "ok" and str(RunStatus.DIVERGED) == "diverged"
    assert json.dumps({"status": RunStatus.DIVERGED}) == '{"status": "diverged"}'
    pd.DataFrame({"status": [RunStatus.OK, RunStatus.DIVERGED]}).to_csv(tmp_path / "s.csv", index=False)
    assert (tmp_path / "s.csv").read_text() == "status\nok\ndiverged\n"


def test_trial_state_is_optunas_state_name_in_lower_case() -> None:
    optuna = pytest.importorskip("optuna")
    assert {state.value for state in TrialState} == {state.name.lower() for state in optuna.trial.TrialState}
    assert TrialState("complete") is TrialState.COMPLETE and TrialState.PRUNED == "pruned"


def test_seed_spreads() -> None:
    # best.csv: every seed that ran counts; a NaN among two leaves one value, so no spread.
    assert std_over_seeds(pd.Series([0.25, 0.75])) == pytest.approx(math.sqrt(0.125), rel=1e-15)
    assert std_over_seeds(pd.Series([0.5])) == 0.0 and std_over_seeds(pd.Series([NAN])) == 0.0
    assert math.isnan(std_over_seeds(pd.Series([0.5, NAN])))
    # The figures: only the values present count.
    assert std_over_present_seeds(pd.Series([0.25, 0.75])) == std_over_seeds(pd.Series([0.25, 0.75]))
    assert std_over_present_seeds(pd.Series([0.5, NAN])) == 0.0
    assert math.isnan(std_over_present_seeds(pd.Series([NAN, NAN])))


def test_rate_spellings() -> None:
    # Grid rates exactly as in run paths; anything else as its text.
    assert [rate_label(value) for value in (1e-4, 3.162e-4, 1.0, 0.1)] == ["1e-4", "3.162e-4", "1e0", "1e-1"]
    assert rate_label(NAN) == "nan" and rate_label(0.0) == "0.0" and rate_label(None) == "None"
    # Overrides: four significant digits, read back by Hydra as a float.
    assert [override_rate(value) for value in (1e-4 / 10, 3.16227766e-2 * 10, 0.1)] == ["1e-5", "3.162e-1", "1e-1"]
    # Suggestions and sampled rates: three significant digits.
    assert [short_rate(value) for value in (1e-3, 3.16227766e-2, 0.5, 10.0)] == ["1e-3", "3.16e-2", "5e-1", "1e1"]
    assert short_rate(None) == short_rate(NAN) == short_rate(-INF) == short_rate("x") == "n/a"
