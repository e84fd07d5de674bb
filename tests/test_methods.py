"""Tests of pipeline.analysis.methods: the method comparison, exactly, on the files of :mod:`hpo_synthetic`.

Hand computation (the grid's best is 0.5, so "within 1%" is ≤ 0.505):

* grid, in its natural order (rate, seed, optimizer, schedule): L1 s0 adam/constant 1.0,
  L1 s0 adam/cosine 0.75, L1 s1 adam/constant 1.25, L1 s1 adam/cosine 1.0, L2 s0
  adam/constant 0.625, L2 s0 adam/cosine 0.5 ← within: 6 runs × 4 epochs = 24 epochs,
  4 × 2.5 + 2 × 2.0 = 14 s. In all 14 runs, 12 × 4 + 2 × 2 = 52 epochs, 28 s.
* finder_steep confirms L1 of both schedules: 0.75 at best, never within; 4 runs, 16
  epochs, 10 s. finder_valley confirms L2: L2 s0 constant (4 epochs, 2 s), L2 s0 cosine 0.5
  ← within at 8 epochs, 4 s; 4 runs, 16 epochs, 8 s. finder_minimum confirms L3 of cosine
  only: seed 0 at 0.5 ← within at 4 epochs, 1.75 s; 2 runs, 4 + 2 epochs, 1.75 + 1.5 s.
* random, in trial order: 0 diverged (its 0.25 does not count; 1 epoch, 0.75 s), 1 0.875,
  2 0.5078125 (> 0.505), 3 failed (nothing recorded), 4 0.625: never within; 13 epochs, 8.25 s.
* tpe_median: 0 1.0 (4 epochs, 2 s), 1 pruned (2 epochs, 1 s), 2 pruned at 0.5 (does not
  count; 1 epoch, 0.5 s), 3 0.50390625 ← within at 4 + 2 + 1 + 4 = 11 epochs, 2 + 1 + 0.5 + 3
  = 6.5 s; 4 0.4921875 (its best), 5 running (2 epochs, 1.25 s): 6 runs, 17 epochs, 9.75 s.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from hpo_synthetic import L1, L2, L3, all_trials, make_finder_vs_grid, make_grid_best, make_grid_runs, make_trials

from pipeline.tables import METHODS
from pipeline.analysis.methods import (
    grid_best_val_loss,
    main,
    method_comparison,
    within_threshold,
)

NAN = math.nan

#: The expected comparison, row by row (hand computation in the module doc).
EXPECTED = [
    # method, best, lr, optimizer, schedule, runs, epochs, seconds, epochs to 1%, seconds to 1%, reached
    ("grid", 0.5, L2, "adam", "cosine", 14, 52, 28.0, 24.0, 14.0, True),
    ("finder_valley", 0.5, L2, "adam", "cosine", 4, 16, 8.0, 8.0, 4.0, True),
    ("finder_minimum", 0.5, L3, "adam", "cosine", 2, 6, 3.25, 4.0, 1.75, True),
    ("finder_steep", 0.75, L1, "adam", "cosine", 4, 16, 10.0, NAN, NAN, False),
    ("random", 0.5078125, 2e-2, "adam", "cosine", 5, 13, 8.25, NAN, NAN, False),
    ("tpe_median", 0.4921875, 1.5e-2, "adam", "cosine", 6, 17, 9.75, 11.0, 6.5, True),
]


def expected(methods: list[str] | None = None) -> pd.DataFrame:
    rows = [row for row in EXPECTED if methods is None or row[0] in methods]
    return pd.DataFrame(rows, columns=METHODS.required)


def compare() -> pd.DataFrame:
    return method_comparison(make_grid_runs(), make_grid_best(), all_trials(), make_finder_vs_grid())


def test_comparison_exact() -> None:
    table = compare()
    assert list(table.columns) == METHODS.required
    pd.testing.assert_frame_equal(table, expected(), check_dtype=False)
    assert table["runs"].dtype.kind == "i" and table["epochs"].dtype.kind == "i" and table["reached"].dtype == bool


def test_without_finder_and_with_searches_in_one_frame() -> None:
    # One frame holding both searches, in any row order, gives the same search rows.
    trials = [pd.concat(all_trials(), ignore_index=True).sample(frac=1.0, random_state=3)]
    table = method_comparison(make_grid_runs(), make_grid_best(), trials, None)
    pd.testing.assert_frame_equal(table, expected(["grid", "random", "tpe_median"]), check_dtype=False)


def test_grid_only() -> None:
    table = method_comparison(make_grid_runs(), make_grid_best(), [], None)
    pd.testing.assert_frame_equal(table, expected(["grid"]), check_dtype=False)


def test_pruned_trial_never_counts_as_reaching() -> None:
    # tpe_median trial 2 was pruned at 0.5: complete, it would be the first within 1%,
    # at 4 + 2 + 1 epochs and 2 + 1 + 0.5 s.
    trials = make_trials("tpe_median")
    trials.loc[trials["trial"] == 2, "state"] = "complete"
    row = method_comparison(make_grid_runs(), make_grid_best(), [trials]).iloc[1]
    assert (row["epochs_to_within_1pct"], row["seconds_to_within_1pct"], row["reached"]) == (7.0, 3.5, True)
    assert (row["runs"], row["epochs"], row["seconds"]) == (6, 17, 9.75)  # the cost is the same


def test_diverged_grid_run_and_trial_never_count() -> None:
    runs = make_grid_runs()
    assert grid_best_val_loss(runs) == 0.5  # not the diverged run's 0.25
    assert within_threshold(0.5) == 0.505 and within_threshold(-2.0) == -1.98
    # Everything diverged: no grid best, so no method can come within 1% of it.
    dead = runs.assign(status="diverged")
    table = method_comparison(dead, make_grid_best(), all_trials(), make_finder_vs_grid())
    assert math.isnan(grid_best_val_loss(dead))
    assert not table["reached"].any() and table["epochs_to_within_1pct"].isna().all()
    grid, random = table.iloc[0], table.iloc[4]
    assert math.isnan(grid["best_val_loss"]) and (grid["runs"], grid["epochs"]) == (14, 52)
    assert random["best_val_loss"] == 0.5078125  # the searches' own results still stand


def test_search_without_a_result() -> None:
    trials = make_trials("random")
    trials = trials[trials["trial"].isin([0, 3])]  # the diverged and the failed trial
    row = method_comparison(make_grid_runs(), make_grid_best(), [trials]).iloc[1].to_dict()
    assert row["method"] == "random" and (row["runs"], row["epochs"], row["seconds"]) == (2, 1, 0.75)
    for key in ("best_val_loss", "lr", "epochs_to_within_1pct"):
        assert pd.isna(row[key]), key
    assert row["optimizer"] == row["schedule"] == ""  # no choice: empty text, as in methods.csv
    assert not row["reached"]


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match="seconds"):
        method_comparison(make_grid_runs().drop(columns="seconds"), make_grid_best(), [])
    with pytest.raises(ValueError, match="epochs_run"):
        method_comparison(make_grid_runs(), make_grid_best(), [make_trials("random").drop(columns="epochs_run")])
    with pytest.raises(ValueError, match="nearest_grid_lr"):
        method_comparison(make_grid_runs(), make_grid_best(), [], make_finder_vs_grid().drop(columns="nearest_grid_lr"))


def write_inputs(root: Path) -> dict[str, Path]:
    paths = {
        "runs": root / "runs.csv",
        "best": root / "best.csv",
        "finder": root / "finder_vs_grid.csv",
        "random": root / "hpo" / "random" / "trials.csv",
        "tpe_median": root / "hpo" / "tpe_median" / "trials.csv",
    }
    make_grid_runs().to_csv(paths["runs"], index=False)
    make_grid_best().to_csv(paths["best"], index=False)
    make_finder_vs_grid().to_csv(paths["finder"], index=False)
    for search in ("random", "tpe_median"):
        paths[search].parent.mkdir(parents=True)
        make_trials(search).to_csv(paths[search], index=False)
    return paths


def test_cli_writes_the_table(tmp_path: Path) -> None:
    paths = write_inputs(tmp_path)
    out = tmp_path / "out" / "methods.csv"
    argv = ["--runs", str(paths["runs"]), "--best", str(paths["best"]), "--trials", str(paths["tpe_median"]),
            str(paths["random"]), "--out", str(out)]  # fmt: skip
    main(argv)
    pd.testing.assert_frame_equal(pd.read_csv(out), expected(["grid", "random", "tpe_median"]), check_dtype=False)
    main([*argv, "--finder", str(paths["finder"])])
    pd.testing.assert_frame_equal(pd.read_csv(out), expected(), check_dtype=False)
    assert sorted(path.name for path in out.parent.iterdir()) == ["methods.csv"]  # atomic: nothing else left


def test_cli_requires_trials(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--runs", "runs.csv", "--best", "best.csv", "--out", str(tmp_path / "methods.csv")])
