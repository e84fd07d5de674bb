"""Tests of pipeline.analysis.finder_vs_grid: the range test's suggestions against the grid's best.

Synthetic grid: adam × {constant, cosine} and sgd × constant at hand-picked rates, rmsprop in
the grid without a range test, lion with a range test but no grid. Losses are dyadic, so the
means are exact.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

import pandas as pd
import pytest

from pipeline.analysis.finder_vs_grid import closest_suggestions, finder_vs_grid, main, nearest_rate
from pipeline.config.rates import short_rate
from pipeline.tables import FINDER_VS_GRID

FINDER_VS_GRID_COLUMNS = FINDER_VS_GRID.columns

NAN = math.nan
SQRT_1E2_1E1 = math.sqrt(1e-2 * 1e-1)  # the geometric midpoint of 1e-2 and 1e-1: a tie

#: (optimizer, schedule, lr) -> (status, best_val_loss) of seeds 0 and 1.
GRID: Dict[tuple[str, str, float], List[tuple[str, float]]] = {
    ("adam", "constant", 1e-3): [("ok", 0.5), ("ok", 0.75)],
    ("adam", "constant", 1e-2): [("ok", 0.25), ("ok", 0.25)],
    # One seed diverged: its mean is the surviving seed's, and the row says 1 diverged.
    ("adam", "constant", 1e-1): [("ok", 0.5), ("diverged", NAN)],
    ("adam", "cosine", 1e-3): [("ok", 0.5), ("ok", 0.5)],
    ("adam", "cosine", 1e-2): [("ok", 0.375), ("ok", 0.375)],
    ("adam", "cosine", 1e-1): [("ok", 0.25), ("ok", 0.25)],
    ("sgd", "constant", 1e-2): [("ok", 1.0), ("ok", 1.0)],
    ("sgd", "constant", 1e-1): [("ok", 0.5), ("ok", 0.5)],
    ("rmsprop", "constant", 1e-3): [("ok", 0.5), ("ok", 0.5)],
}

#: best.csv rows: (optimizer, schedule) -> lr.
BEST: Dict[tuple[str, str], float] = {
    ("adam", "constant"): 1e-2,
    ("adam", "cosine"): 1e-1,
    ("rmsprop", "constant"): 1e-3,
    ("sgd", "constant"): 1e-1,
}


def make_runs() -> pd.DataFrame:
    rows = [
        {"optimizer": o, "schedule": s, "lr": lr, "seed": seed, "status": status, "best_val_loss": loss}
        for (o, s, lr), seeds in GRID.items()
        for seed, (status, loss) in enumerate(seeds)
    ]
    return pd.DataFrame(rows)


def make_best() -> pd.DataFrame:
    return pd.DataFrame(
        [{"optimizer": o, "schedule": s, "lr": lr, "best_val_loss_mean": 0.0} for (o, s), lr in BEST.items()]
    )


def summary(geomean: Optional[float], low: Optional[float] = None, high: Optional[float] = None, seeds: int = 1) -> Dict[str, Any]:
    if geomean is None:
        return {"geomean": None, "min": None, "max": None, "seeds": 0}
    return {"geomean": geomean, "min": low if low is not None else geomean, "max": high if high is not None else geomean, "seeds": seeds}


def make_suggestion(optimizer: str, steep: Dict[str, Any], valley: Dict[str, Any], minimum: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "optimizer": optimizer,
        "settings": {"start_lr": 1e-7, "end_lr": 10.0, "steps": 200},
        "per_seed": {"0": {"steep": steep["geomean"], "valley": valley["geomean"], "minimum": minimum["geomean"],
                           "reason": None, "steps_run": 200, "stopped": True}},  # fmt: skip
        "summary": {"steep": steep, "valley": valley, "minimum": minimum},
    }


def make_suggestions() -> List[Dict[str, Any]]:
    return [
        # adam: steep 2e-3 (nearest 1e-3), valley 8e-2 (nearest 1e-1), no minimum.
        make_suggestion("adam", summary(2e-3, 1e-3, 4e-3, seeds=2), summary(8e-2), summary(None)),
        # lion has no grid runs: skipped.
        make_suggestion("lion", summary(1e-4), summary(1e-4), summary(1e-4)),
        # sgd: steep exactly between its two rates (tie -> lower), valley and minimum above.
        make_suggestion("sgd", summary(SQRT_1E2_1E1), summary(1e-1), summary(0.5)),
    ]


def test_nearest_rate_log_space_and_ties() -> None:
    assert nearest_rate([1e-3, 1e-2, 1e-1], 5e-3) == 1e-2  # 2x away in log space beats 5x
    assert nearest_rate([1e-3, 1e-2, 1e-1], 3e-3) == 1e-3
    assert nearest_rate([1e-2, 1e-1], SQRT_1E2_1E1) == 1e-2  # tie (up to rounding) -> lower
    assert nearest_rate([4.0, 1.0], 2.0) == 1.0  # unsorted input, exact tie -> lower
    # Here rounding puts the midpoint 4e-16 nearer the upper rate; it is still a tie.
    assert nearest_rate([1e-3, 1e-1], math.sqrt(1e-3 * 1e-1)) == 1e-3
    assert nearest_rate([1e-3, 1e-2], 1e-6) == 1e-3 and nearest_rate([1e-3, 1e-2], 10.0) == 1e-2
    assert math.isnan(nearest_rate([1e-3], NAN))
    assert math.isnan(nearest_rate([1e-3], 0.0))
    assert math.isnan(nearest_rate([], 1e-3))


def test_short_rate() -> None:
    assert [short_rate(value) for value in (1e-3, SQRT_1E2_1E1, 0.5, 10.0)] == ["1e-3", "3.16e-2", "5e-1", "1e1"]
    assert short_rate(None) == short_rate(NAN) == short_rate(math.inf) == "n/a"


def test_finder_vs_grid_rows() -> None:
    table = finder_vs_grid(make_suggestions(), make_runs(), make_best())
    assert list(table.columns) == list(FINDER_VS_GRID_COLUMNS)
    # rmsprop (no range test) and lion (no grid) are skipped; kinds in fixed order.
    kinds = ["valley", "slide", "minimum", "steep"]
    cells = [("adam", "constant"), ("adam", "cosine"), ("sgd", "constant")]
    assert list(zip(table["optimizer"], table["schedule"], table["suggestion"])) == [(*cell, kind) for cell in cells for kind in kinds]
    assert table["seeds"].tolist() == [1, 0, 0, 2] * 2 + [1, 0, 1, 1]  # no seed gave a slide here
    assert table["grid_best_lr"].tolist() == [1e-2] * 4 + [1e-1] * 4 + [1e-1] * 4
    assert table["grid_best_val_loss"].tolist() == [0.25] * 4 + [0.25] * 4 + [0.5] * 4
    row = {(o, s, k): r for (o, s, k), (_, r) in zip(zip(table["optimizer"], table["schedule"], table["suggestion"]), table.iterrows())}

    steep = row[("adam", "constant", "steep")]
    assert (steep["suggested_lr"], steep["suggested_min"], steep["suggested_max"]) == (2e-3, 1e-3, 4e-3)
    assert steep["ratio"] == 2e-3 / 1e-2
    assert (steep["nearest_grid_lr"], steep["nearest_val_loss"], steep["nearest_diverged"]) == (1e-3, 0.625, 0)
    assert steep["relative_val_loss"] == 2.5

    # valley on adam/constant lands on the rate where a seed diverged: the surviving seed's loss.
    valley = row[("adam", "constant", "valley")]
    assert (valley["ratio"], valley["nearest_grid_lr"], valley["nearest_val_loss"]) == (8e-2 / 1e-2, 1e-1, 0.5)
    assert valley["nearest_diverged"] == 1 and valley["relative_val_loss"] == 2.0

    # adam/cosine: valley finds the grid's best exactly.
    assert row[("adam", "cosine", "valley")]["nearest_grid_lr"] == 1e-1 and row[("adam", "cosine", "valley")]["relative_val_loss"] == 1.0
    assert row[("adam", "cosine", "steep")]["ratio"] == 2e-3 / 1e-1 and row[("adam", "cosine", "steep")]["relative_val_loss"] == 2.0

    # sgd: the tie goes to the lower rate, 1e-2; minimum 0.5 maps to 1e-1.
    sgd_steep, sgd_minimum = row[("sgd", "constant", "steep")], row[("sgd", "constant", "minimum")]
    assert sgd_steep["nearest_grid_lr"] == 1e-2 and sgd_steep["relative_val_loss"] == 2.0
    assert sgd_steep["ratio"] == SQRT_1E2_1E1 / 1e-1
    assert sgd_minimum["ratio"] == 0.5 / 1e-1 and sgd_minimum["relative_val_loss"] == 1.0


def test_no_suggestion_is_nan_not_dropped() -> None:
    table = finder_vs_grid(make_suggestions(), make_runs(), make_best())
    minimum = table[(table["optimizer"] == "adam") & (table["suggestion"] == "minimum")]
    assert len(minimum) == 2
    for column in ("suggested_lr", "suggested_min", "suggested_max", "ratio", "nearest_grid_lr", "nearest_val_loss", "relative_val_loss"):
        assert minimum[column].isna().all(), column
    assert minimum["nearest_diverged"].isna().all() and minimum["seeds"].tolist() == [0, 0]
    # The grid's side is still there.
    assert minimum["grid_best_lr"].tolist() == [1e-2, 1e-1] and minimum["grid_best_val_loss"].tolist() == [0.25, 0.25]


def test_missing_summary_pieces_read_as_no_suggestion() -> None:
    suggestion = {"optimizer": "sgd", "summary": {"valley": {"geomean": 1e-1, "min": 1e-1, "max": 1e-1, "seeds": 1}}}
    table = finder_vs_grid([suggestion], make_runs(), make_best())
    assert table["suggestion"].tolist() == ["valley", "slide", "minimum", "steep"]
    assert table["relative_val_loss"].isna().tolist() == [False, True, True, True]


def test_grid_best_with_every_seed_diverged() -> None:
    runs = make_runs()
    runs.loc[runs["optimizer"] == "sgd", ["status", "best_val_loss"]] = ["diverged", NAN]
    table = finder_vs_grid(make_suggestions(), runs, make_best())
    sgd = table[table["optimizer"] == "sgd"]
    assert sgd["grid_best_val_loss"].isna().all() and sgd["relative_val_loss"].isna().all()
    assert sgd["nearest_diverged"].tolist() == [2, pd.NA, 2, 2]


def test_nothing_in_common_gives_an_empty_table() -> None:
    table = finder_vs_grid([make_suggestions()[1]], make_runs(), make_best())
    assert table.empty and list(table.columns) == list(FINDER_VS_GRID_COLUMNS)


def test_two_range_tests_of_one_optimizer_are_an_error() -> None:
    with pytest.raises(ValueError, match="two range tests for optimizer 'adam'"):
        finder_vs_grid([make_suggestions()[0]] * 2, make_runs(), make_best())


def test_missing_columns_are_an_error() -> None:
    with pytest.raises(ValueError, match=r"runs lacks column\(s\) \['best_val_loss'\]"):
        finder_vs_grid(make_suggestions(), make_runs().drop(columns="best_val_loss"), make_best())


def test_closest_suggestions() -> None:
    ranked = closest_suggestions(finder_vs_grid(make_suggestions(), make_runs(), make_best()))
    rows = list(ranked.itertuples(index=False, name=None))
    assert rows[:2] == [
        ("adam", "valley", 1.5, 2, 1),  # (2.0 + 1.0) / 2
        ("adam", "steep", 2.25, 2, 2),  # (2.5 + 2.0) / 2
    ]
    assert [row[:2] for row in rows[2:4]] == [("adam", "slide"), ("adam", "minimum")]  # no suggestion: last, kinds' order
    assert all(math.isnan(row[2]) for row in rows[2:4])
    # sgd: valley and minimum tie at 1.0; the kinds' order breaks it.
    assert rows[4:6] == [("sgd", "valley", 1.0, 1, 1), ("sgd", "minimum", 1.0, 1, 2)]
    assert rows[6] == ("sgd", "steep", 2.0, 1, 3) and rows[7][:2] == ("sgd", "slide")


def write_inputs(root: Path) -> List[Path]:
    make_runs().to_csv(root / "runs.csv", index=False)
    make_best().to_csv(root / "best.csv", index=False)
    paths = []
    for suggestion in make_suggestions():
        path = root / "finder" / suggestion["optimizer"] / "suggestions.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(suggestion))
        paths.append(path)
    return paths


def test_cli_writes_the_table(tmp_path: Path) -> None:
    paths = write_inputs(tmp_path)
    out = tmp_path / "out" / "finder_vs_grid.csv"
    argv = ["--suggestions", *map(str, paths), "--runs", str(tmp_path / "runs.csv"), "--best", str(tmp_path / "best.csv"), "--out", str(out)]
    main(argv)
    written = pd.read_csv(out)
    expected = finder_vs_grid(make_suggestions(), make_runs(), make_best())
    pd.testing.assert_frame_equal(written, expected, check_dtype=False)
    assert sorted(path.name for path in out.parent.iterdir()) == ["finder_vs_grid.csv"]  # atomic: no leftovers
