"""Tests of pipeline.analysis.aggregate on synthetic run folders with hand-known numbers.

Run folders are written by hand in the format of :func:`pipeline.training.run.train_run`
(``summary.json`` with the keys of :func:`pipeline.training.run.summarise` plus the run's identity,
``history.csv`` with the columns ``HISTORY_COLUMNS``), at the paths of
:func:`pipeline.config.rates.run_dir`. Losses are dyadic fractions so that hand-computed means are
exact.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import factories
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from pipeline.analysis.aggregate import best_rates, main, read_runs, run_dirs_from_manifests
from pipeline.config.rates import run_dir
from pipeline.analysis.optimum import lr_sensitivity
from pipeline.tables import BEST, CURVES, RUN_SUMMARY_COLUMNS

NAN = math.nan
L1, L2, L3 = 1e-3, 1e-2, 1e-1
RUN_COLUMNS = RUN_SUMMARY_COLUMNS
BEST_COLUMNS = BEST.columns
#: best.csv's grid recommendation; the estimate and the sensitivity follow (test_optimum.py).
RECOMMENDATION_COLUMNS = BEST_COLUMNS[: BEST_COLUMNS.index("best_epoch_mean") + 1]
ESTIMATE_COLUMNS = ["lr_estimate", "lr_low", "lr_high", "estimate_note", "lr_sensitivity"]
CURVE_COLUMNS = CURVES.columns


# --------------------------------------------------------------------------------------
# Synthetic run folders
# --------------------------------------------------------------------------------------


def history_rows(lr: float, losses: Sequence[float], val_losses: Sequence[float], val_accuracies: Sequence[float]) -> List[Dict[str, Any]]:
    """History rows: the rate halves every epoch, accuracy = 1 - loss / 4, 0.5 s per epoch."""
    return [
        {
            "epoch": epoch,
            "lr": lr / 2 ** (epoch - 1),
            "loss": loss,
            "accuracy": 1 - loss / 4,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "seconds": 0.5 * epoch,
        }
        for epoch, (loss, val_loss, val_accuracy) in enumerate(zip(losses, val_losses, val_accuracies), start=1)
    ]


def write_run(
    study_dir: Path,
    optimizer: str,
    schedule: str,
    seed: int,
    lr: float,
    rows: List[Dict[str, Any]],
    diverged_epoch: Optional[int] = None,
) -> Path:
    """One run folder as train_run leaves it, with every summary key the runs table reads."""
    return factories.write_run(
        study_dir, optimizer, schedule, seed, lr, rows, diverged_epoch,
        steps=10 * len(rows), steps_per_epoch=10, initial_loss=2.25, seconds=0.5 * len(rows) + 0.25,
        device="CPU", versions={"python": "3"},
    )  # fmt: skip


#: (optimizer, schedule, seed, lr) -> (loss per epoch, val_loss per epoch, val_accuracy per epoch, diverged_epoch)
RUNS: Dict[tuple, tuple] = {
    ("sgd", "constant", 1, L1): ([2.0, 1.0, 0.5], [1.5, 0.75, 1.0], [0.25, 0.5, 0.375], None),
    ("adam", "cosine", 0, L2): ([1.0, 0.5], [1.0, 0.5], [0.5, 0.75], None),
    # Seed 1 at L2 sorts before seed 0 at L3 (lr before seed).
    ("adam", "cosine", 1, L2): ([1.5, 0.5], [1.0, 0.75], [0.5, 0.625], None),
    # Diverged in its first epoch: no finite val_loss, no best epoch.
    ("adam", "cosine", 0, L3): ([NAN], [NAN], [NAN], 1),
    ("adam", "constant", 0, L1): ([2.0, 1.0], [1.25, 0.625], [0.5, 0.625], None),
    # Diverged in epoch 2 after a finite first epoch.
    ("adam", "cosine", 1, L3): ([1.0, 64.0], [0.875, 32.0], [0.5, 0.125], 2),
    ("sgd", "constant", 0, L1): ([2.0, 1.5], [1.75, 1.25], [0.25, 0.375], None),
}


@pytest.fixture()
def study_dir(tmp_path: Path) -> Path:
    """The RUNS written in a deliberately unsorted order; returns the study folder."""
    study = tmp_path / "results" / "demo"
    for (optimizer, schedule, seed, lr), (losses, val_losses, val_accs, diverged) in RUNS.items():
        write_run(study, optimizer, schedule, seed, lr, history_rows(lr, losses, val_losses, val_accs), diverged)
    return study


def expected_runs(study: Path) -> pd.DataFrame:
    """runs.csv of RUNS, by hand, sorted by optimizer, schedule, lr, seed."""
    d = lambda optimizer, schedule, seed, lr: str(run_dir(study, optimizer, schedule, seed, lr))  # noqa: E731
    rows = [
        # optimizer, schedule, lr, seed, status, best_val_loss, best_val_accuracy, best_epoch, final_loss,
        # final_val_loss, final_val_accuracy, diverged_epoch, epochs_run, steps, val_accuracy_at_best, seconds,
        # initial_loss, device, resumed_from_epoch, run_dir
        ("adam", "constant", L1, 0, "ok", 0.625, 0.625, 2, 1.0, 0.625, 0.625, None, 2, 20, 0.625, 1.25, 2.25, "CPU", None, d("adam", "constant", 0, L1)),
        ("adam", "cosine", L2, 0, "ok", 0.5, 0.75, 2, 0.5, 0.5, 0.75, None, 2, 20, 0.75, 1.25, 2.25, "CPU", None, d("adam", "cosine", 0, L2)),
        ("adam", "cosine", L2, 1, "ok", 0.75, 0.625, 2, 0.5, 0.75, 0.625, None, 2, 20, 0.625, 1.25, 2.25, "CPU", None, d("adam", "cosine", 1, L2)),
        ("adam", "cosine", L3, 0, "diverged", NAN, NAN, None, NAN, NAN, NAN, 1, 1, 10, NAN, 0.75, 2.25, "CPU", None, d("adam", "cosine", 0, L3)),
        ("adam", "cosine", L3, 1, "diverged", 0.875, 0.5, 1, 64.0, 32.0, 0.125, 2, 2, 20, 0.5, 1.25, 2.25, "CPU", None, d("adam", "cosine", 1, L3)),
        ("sgd", "constant", L1, 0, "ok", 1.25, 0.375, 2, 1.5, 1.25, 0.375, None, 2, 20, 0.375, 1.25, 2.25, "CPU", None, d("sgd", "constant", 0, L1)),
        ("sgd", "constant", L1, 1, "ok", 0.75, 0.5, 2, 0.5, 1.0, 0.375, None, 3, 30, 0.5, 1.75, 2.25, "CPU", None, d("sgd", "constant", 1, L1)),
    ]
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    frame["best_epoch"] = pd.array([row[7] for row in rows], dtype="Int64")
    frame["diverged_epoch"] = pd.array([row[11] for row in rows], dtype="Int64")
    frame["resumed_from_epoch"] = pd.array([row[18] for row in rows], dtype="Int64")
    return frame


def expected_curves() -> pd.DataFrame:
    """curves.csv of RUNS, by hand: one row per run × epoch, sorted by the keys then epoch."""
    rows = []
    for key in sorted(RUNS):
        optimizer, schedule, seed, lr = key
        losses, val_losses, val_accs, _ = RUNS[key]
        for row in history_rows(lr, losses, val_losses, val_accs):
            rows.append((optimizer, schedule, lr, seed, row["epoch"], row["lr"], row["loss"], row["accuracy"], row["val_loss"], row["val_accuracy"], row["seconds"]))
    # sorted(RUNS) orders by (optimizer, schedule, seed, lr); the table orders by lr before seed.
    rows.sort(key=lambda row: (row[0], row[1], row[2], row[3], row[4]))
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


# --------------------------------------------------------------------------------------
# read_runs
# --------------------------------------------------------------------------------------


def test_read_runs_table_is_exact_sorted_and_keeps_diverged_runs(study_dir: Path) -> None:
    folders = [run_dir(study_dir, *key[:3], key[3]) for key in RUNS]
    runs, _ = read_runs(folders)
    assert list(runs.columns) == RUN_COLUMNS
    assert_frame_equal(runs, expected_runs(study_dir), check_exact=True)
    assert (runs["status"] == "diverged").sum() == 2
    assert str(runs["best_epoch"].dtype) == "Int64"
    assert str(runs["diverged_epoch"].dtype) == "Int64"
    assert runs["best_epoch"].isna().tolist() == [False, False, False, True, False, False, False]


def test_read_runs_curves_table_is_exact(study_dir: Path) -> None:
    folders = [run_dir(study_dir, *key[:3], key[3]) for key in RUNS]
    _, curves = read_runs(folders)
    assert list(curves.columns) == CURVE_COLUMNS
    assert "lr" in curves.columns and "current_lr" in curves.columns
    assert len(curves) == sum(len(value[0]) for value in RUNS.values())
    assert_frame_equal(curves, expected_curves(), check_exact=True)
    # lr is the grid rate of the run on every row; current_lr is the history's rate.
    cosine_l3 = curves[(curves["schedule"] == "cosine") & (curves["seed"] == 1) & (curves["epoch"] <= 2) & (curves["lr"] == L3)]
    assert cosine_l3["lr"].tolist() == [L3, L3]
    assert cosine_l3["current_lr"].tolist() == [L3, L3 / 2]


def test_read_runs_order_of_folders_does_not_matter(study_dir: Path) -> None:
    folders = [run_dir(study_dir, *key[:3], key[3]) for key in RUNS]
    runs_a, curves_a = read_runs(folders)
    runs_b, curves_b = read_runs(list(reversed(folders)))
    assert_frame_equal(runs_a, runs_b, check_exact=True)
    assert_frame_equal(curves_a, curves_b, check_exact=True)


def test_read_runs_of_no_folders_gives_empty_tables() -> None:
    runs, curves = read_runs([])
    assert list(runs.columns) == RUN_COLUMNS and runs.empty
    assert curves.empty and list(curves.columns)[:4] == ["optimizer", "schedule", "lr", "seed"]


# --------------------------------------------------------------------------------------
# best_rates
# --------------------------------------------------------------------------------------

#: (optimizer, schedule, lr) -> [(status, best_val_loss, best_val_accuracy) for seed 0, seed 1]
CELLS: Dict[tuple, List[tuple]] = {
    # Interior winner (L2), all ok.
    ("adam", "constant", L1): [("ok", 0.5, 0.5), ("ok", 0.75, 0.25)],
    ("adam", "constant", L2): [("ok", 0.25, 0.75), ("ok", 0.5, 0.5)],
    ("adam", "constant", L3): [("ok", 1.0, 0.25), ("ok", 1.5, 0.125)],
    # The lowest mean (L2) has a diverged seed: not chosen; L1 wins (low edge).
    ("adam", "cosine", L1): [("ok", 0.5, 0.625), ("ok", 0.5, 0.625)],
    ("adam", "cosine", L2): [("ok", 0.125, 0.875), ("diverged", 0.0625, 0.5)],
    ("adam", "cosine", L3): [("ok", 0.75, 0.5), ("ok", 1.0, 0.5)],
    # Winner at the high edge.
    ("sgd", "constant", L1): [("ok", 1.0, 0.25), ("ok", 1.0, 0.25)],
    ("sgd", "constant", L2): [("ok", 0.5, 0.5), ("ok", 0.5, 0.5)],
    ("sgd", "constant", L3): [("ok", 0.25, 0.75), ("ok", 0.5, 0.625)],
    # Every rate has a diverged seed: fallback to the lowest finite mean (L2, interior).
    ("sgd", "cosine", L1): [("ok", 1.0, 0.5), ("diverged", 2.0, 0.25)],
    ("sgd", "cosine", L2): [("diverged", 0.5, 0.5), ("ok", 0.25, 0.75)],
    ("sgd", "cosine", L3): [("diverged", NAN, NAN), ("diverged", NAN, NAN)],
}


def make_runs(cells: Dict[tuple, List[tuple]] = CELLS) -> pd.DataFrame:
    """A runs table (the columns best_rates reads), rows deliberately not sorted."""

    def row(optimizer: str, schedule: str, lr: float, seed: int, values: tuple) -> Dict[str, Any]:
        status, loss, accuracy = values
        return {
            "optimizer": optimizer, "schedule": schedule, "lr": lr, "seed": seed, "status": status,
            "best_val_loss": loss, "best_val_accuracy": accuracy,
            # Every finite run had its best epoch at 2; the fit label follows the status.
            "best_epoch": 2 if math.isfinite(loss) else None,
            "fit": "diverged" if status == "diverged" else "good",
        }  # fmt: skip

    return factories.cells_table(cells, row, reverse=True)


def std2(a: float, b: float) -> float:
    """Sample standard deviation (ddof=1) of two values: sqrt(sum of squared deviations / (n - 1))."""
    mean = (a + b) / 2
    return math.sqrt(((a - mean) ** 2 + (b - mean) ** 2) / (2 - 1))


def test_best_rates_exact_table() -> None:
    best = best_rates(make_runs())
    expected = pd.DataFrame(
        [
            ("adam", "constant", L2, 0.375, std2(0.25, 0.5), 0.625, std2(0.75, 0.5), 2, 0.0, False, "", "good", 2.0),
            ("adam", "cosine", L1, 0.5, 0.0, 0.625, 0.0, 2, 1 / 6, True, "low", "good", 2.0),
            ("sgd", "constant", L3, 0.375, std2(0.25, 0.5), 0.6875, std2(0.75, 0.625), 2, 0.0, True, "high", "good", 2.0),
            ("sgd", "cosine", L2, 0.375, std2(0.5, 0.25), 0.625, std2(0.5, 0.75), 2, 4 / 6, False, "", "diverged", 2.0),  # tie: the worse label
        ],
        columns=RECOMMENDATION_COLUMNS,
    )
    assert list(best.columns) == BEST_COLUMNS == RECOMMENDATION_COLUMNS + ESTIMATE_COLUMNS
    assert_frame_equal(best[RECOMMENDATION_COLUMNS], expected, check_exact=True)
    # adam/constant: means 0.625, 0.375, 1.25 at log10 rates -3, -2, -1: the parabola's vertex
    # is at -2.5 + 0.25 / 1.125 = -41/18; seed 0 alone (0.5, 0.25, 1.0) gives -2.25, seed 1
    # alone (0.75, 0.5, 1.5) -2.3: the bootstrap's extremes, and so the interval.
    adam = best.iloc[0]
    assert math.log10(adam["lr_estimate"]) == pytest.approx(-41 / 18, abs=1e-12)
    assert math.log10(adam["lr_low"]) == pytest.approx(-2.3, abs=1e-12)
    assert math.log10(adam["lr_high"]) == pytest.approx(-2.25, abs=1e-12)
    # At an edge, or next to (or at) a rate with a diverged seed: no estimate, the reason instead.
    assert best["estimate_note"].tolist() == ["", "edge", "edge", "unstable neighbour"]
    assert best["lr_estimate"].iloc[1:].isna().all()
    # make_runs has no final or untrained losses: no sensitivity.
    assert best["lr_sensitivity"].isna().all()


def test_best_rates_a_rate_with_a_diverged_seed_loses_to_a_worse_clean_rate() -> None:
    best = best_rates(make_runs()).set_index(["optimizer", "schedule"])
    # adam/cosine L2 has mean 0.09375, the lowest, but one seed diverged there.
    assert best.loc[("adam", "cosine"), "lr"] == L1
    assert best.loc[("adam", "cosine"), "best_val_loss_mean"] == 0.5


def test_best_rates_fallback_when_every_rate_had_a_diverged_seed() -> None:
    best = best_rates(make_runs()).set_index(["optimizer", "schedule"])
    row = best.loc[("sgd", "cosine")]
    assert row["lr"] == L2  # lowest finite mean of (1.5, 0.375, NaN)
    assert row["best_val_loss_mean"] == 0.375
    assert row["diverged_fraction"] == 4 / 6


def test_best_rates_every_run_diverged_in_epoch_one_gives_the_smallest_rate() -> None:
    cells = {("sgd", "constant", lr): [("diverged", NAN, NAN), ("diverged", NAN, NAN)] for lr in (L1, L2, L3)}
    best = best_rates(make_runs(cells))
    assert len(best) == 1
    row = best.iloc[0]
    assert row["lr"] == L1
    assert math.isnan(row["best_val_loss_mean"]) and math.isnan(row["best_val_accuracy_mean"])
    assert row["diverged_fraction"] == 1.0
    assert row["seeds"] == 2
    assert bool(row["at_edge"]) is True and row["edge"] == "low"


def test_best_rates_one_seed_has_zero_std() -> None:
    cells = {
        ("adam", "constant", L1): [("ok", 0.75, 0.5)],
        ("adam", "constant", L2): [("ok", 0.25, 0.875)],
        ("adam", "constant", L3): [("ok", 0.5, 0.75)],
    }
    best = best_rates(make_runs(cells))
    expected = pd.DataFrame([("adam", "constant", L2, 0.25, 0.0, 0.875, 0.0, 1, 0.0, False, "", "good", 2.0)], columns=RECOMMENDATION_COLUMNS)
    assert_frame_equal(best[RECOMMENDATION_COLUMNS], expected, check_exact=True)
    assert best["estimate_note"].tolist() == ["one seed: no interval"] and math.isnan(best["lr_low"].iloc[0])


def test_best_rates_seeds_counts_the_seeds_of_the_chosen_rate() -> None:
    cells = {
        ("adam", "constant", L1): [("ok", 1.0, 0.5), ("ok", 1.0, 0.5), ("ok", 1.0, 0.5)],
        ("adam", "constant", L2): [("ok", 0.25, 0.75), ("ok", 0.75, 0.25)],
        ("adam", "constant", L3): [("ok", 2.0, 0.25), ("ok", 2.0, 0.25), ("ok", 2.0, 0.25)],
    }
    row = best_rates(make_runs(cells)).iloc[0]
    assert row["lr"] == L2
    assert row["seeds"] == 2
    assert row["best_val_loss_mean"] == 0.5
    assert row["best_val_loss_std"] == std2(0.25, 0.75)


def test_best_rates_single_rate_grid_is_at_the_low_edge() -> None:
    best = best_rates(make_runs({("sgd", "cosine", L2): [("ok", 0.5, 0.5), ("ok", 0.25, 0.75)]}))
    expected = pd.DataFrame(
        [("sgd", "cosine", L2, 0.375, std2(0.5, 0.25), 0.625, std2(0.5, 0.75), 2, 0.0, True, "low", "good", 2.0)],
        columns=RECOMMENDATION_COLUMNS,
    )
    assert_frame_equal(best[RECOMMENDATION_COLUMNS], expected, check_exact=True)
    assert best["estimate_note"].tolist() == ["edge"]


@pytest.mark.parametrize("winner, edge", [(L1, "low"), (L2, ""), (L3, "high")])
def test_best_rates_edge(winner: float, edge: str) -> None:
    cells = {("adam", "constant", lr): [("ok", 0.25 if lr == winner else 1.0, 0.5)] for lr in (L1, L2, L3)}
    row = best_rates(make_runs(cells)).iloc[0]
    assert row["lr"] == winner
    assert row["edge"] == edge
    assert bool(row["at_edge"]) is (edge != "")


# --------------------------------------------------------------------------------------
# main (the CLI)
# --------------------------------------------------------------------------------------


def write_manifests(study: Path) -> List[Path]:
    """One cohort manifest per optimizer × schedule × seed of RUNS, as pipeline.training.cohort writes them."""
    cohorts: Dict[tuple, List[Dict[str, Any]]] = {}
    for (optimizer, schedule, seed, lr), (*_, diverged) in RUNS.items():
        cohorts.setdefault((optimizer, schedule, seed), []).append(
            {"lr": lr, "run_dir": str(run_dir(study, optimizer, schedule, seed, lr)), "status": "diverged" if diverged else "ok"}
        )
    paths = []
    for (optimizer, schedule, seed), entries in sorted(cohorts.items()):
        path = study / "manifests" / f"{optimizer}_{schedule}_seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"optimizer": optimizer, "schedule": schedule, "seed": seed, "runs": sorted(entries, key=lambda e: e["lr"])}))
        paths.append(path)
    return paths


def test_run_dirs_from_manifests_lists_every_run(study_dir: Path) -> None:
    manifests = write_manifests(study_dir)
    folders = run_dirs_from_manifests(manifests)
    assert len(folders) == len(RUNS)
    assert sorted(map(str, folders)) == sorted(str(run_dir(study_dir, *key[:3], key[3])) for key in RUNS)


def test_main_writes_the_three_tables(study_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifests = write_manifests(study_dir)
    out = tmp_path / "tables"
    main(["--manifests", *map(str, manifests), "--runs", str(out / "runs.csv"), "--curves", str(out / "curves.csv"), "--best", str(out / "best.csv")])

    assert sorted(path.name for path in out.iterdir()) == ["best.csv", "curves.csv", "runs.csv"]  # no temporaries
    runs, curves = read_runs(run_dirs_from_manifests(manifests))
    best = best_rates(runs)
    assert_frame_equal(runs, expected_runs(study_dir), check_exact=True)
    assert_frame_equal(curves, expected_curves(), check_exact=True)

    runs_back = pd.read_csv(out / "runs.csv", dtype={"best_epoch": "Int64", "diverged_epoch": "Int64", "resumed_from_epoch": "Int64"})
    assert_frame_equal(runs_back, runs, check_exact=True)
    assert_frame_equal(pd.read_csv(out / "curves.csv"), curves, check_exact=True)
    best_back = pd.read_csv(out / "best.csv")
    best_back["edge"] = best_back["edge"].fillna("")  # "" is written as an empty field
    # Without --diagnosis there are no fit labels: an empty field, read back as missing.
    assert best["fit"].eq("").all() and best_back["fit"].isna().all()
    assert_frame_equal(best_back.drop(columns="fit"), best.drop(columns="fit"), check_exact=True)

    # Hand-checked best rows of the RUNS: adam/constant (one rate, one seed), adam/cosine
    # (L2 clean wins over L3 where both seeds diverged), sgd/constant (one rate, two seeds).
    expected_best = pd.DataFrame(
        [
            ("adam", "constant", L1, 0.625, 0.0, 0.625, 0.0, 1, 0.0, True, "low", "", 2.0),
            ("adam", "cosine", L2, 0.625, std2(0.5, 0.75), 0.6875, std2(0.75, 0.625), 2, 0.5, True, "low", "", 2.0),
            ("sgd", "constant", L1, 1.0, std2(1.25, 0.75), 0.4375, std2(0.375, 0.5), 2, 0.0, True, "low", "", 2.0),
        ],
        columns=RECOMMENDATION_COLUMNS,
    )
    assert_frame_equal(best[RECOMMENDATION_COLUMNS], expected_best, check_exact=True)
    assert best["estimate_note"].tolist() == ["edge"] * 3
    # The sensitivity from each cell's final and untrained losses (formula: test_optimum.py).
    for (optimizer, schedule), cell in runs.groupby(["optimizer", "schedule"]):
        row = best[(best["optimizer"] == optimizer) & (best["schedule"] == schedule)].iloc[0]
        assert row["lr_sensitivity"] == lr_sensitivity(cell) and math.isfinite(row["lr_sensitivity"])
    assert capsys.readouterr().out.strip() == "7 runs (2 diverged), 14 epoch rows"


def test_main_with_diagnosis_labels_every_run_and_each_recommendation(study_dir: Path, tmp_path: Path) -> None:
    from pipeline.analysis.diagnosis import DIAGNOSIS_COLUMNS, FIT_LABELS

    manifests = write_manifests(study_dir)
    out = tmp_path / "tables"
    main(["--manifests", *map(str, manifests), "--runs", str(out / "runs.csv"), "--curves", str(out / "curves.csv"),
          "--best", str(out / "best.csv"), "--diagnosis", json.dumps({"gap_threshold": 0.25})])  # fmt: skip
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.columns) == [*RUN_COLUMNS, *DIAGNOSIS_COLUMNS, "target_accuracy"]
    assert set(runs["fit"]) <= set(FIT_LABELS)
    assert (runs.loc[runs["status"] == "diverged", "fit"] == "diverged").all()
    best = pd.read_csv(out / "best.csv")
    assert set(best["fit"]) <= set(FIT_LABELS) and best["fit"].notna().all()
