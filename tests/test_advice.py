"""Tests of pipeline.analysis.advice on synthetic run folders: each warning fires when it should and
stays silent when it should not, boundaries included.

Run folders are written by :func:`factories.write_run` in the format of
:func:`pipeline.training.run.train_run`, then read back with
:func:`pipeline.analysis.aggregate.read_runs` and :func:`pipeline.analysis.aggregate.best_rates`, as the
workflow does. Losses are dyadic fractions where a boundary is tested, so that means and
standard deviations are exact.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import factories
import pandas as pd
import pytest

from pipeline.analysis.advice import KINDS, StudyWarning, diverged_by_schedule, study_warnings
from pipeline.analysis.aggregate import rate_table
from pipeline.analysis.aggregate import best_rates, read_runs
from pipeline.config.schema import DiagnosisConfig, GridConfig
from pipeline.config.rates import grid_rates

NAN = math.nan
L1, L2, L3 = 1e-3, 1e-2, 1e-1


# --------------------------------------------------------------------------------------
# Synthetic studies
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Run:
    """One synthetic run: its best val_loss, the epoch it falls on, and whether it diverged."""

    best_val_loss: float
    best_epoch: int = 5
    diverged: bool = False


#: ``{(optimizer, schedule): {lr: [Run per seed]}}``
Spec = Mapping[Tuple[str, str], Mapping[float, Sequence[Run]]]


def history(run: Run, epochs: int) -> Tuple[List[Dict[str, float]], Optional[int]]:
    """Epoch rows whose lowest val_loss is ``run.best_val_loss`` at ``run.best_epoch``.

    Val loss falls towards the best epoch and rises after it; a diverged run stops one epoch
    after its best with a non-finite loss (as the recorder stops it).
    """
    last = run.best_epoch + 1 if run.diverged else epochs
    rows = []
    for epoch in range(1, last + 1):
        val_loss = run.best_val_loss + 0.0625 * abs(epoch - run.best_epoch)
        loss = val_loss - 0.125
        if run.diverged and epoch == last:
            loss, val_loss = NAN, NAN
        rows.append(
            {"epoch": epoch, "lr": 0.01, "loss": loss, "accuracy": 0.5, "val_loss": val_loss, "val_accuracy": 0.5, "seconds": 0.5}
        )
    return rows, (last if run.diverged else None)


def write_runs(study_dir: Path, spec: Spec, epochs: int) -> List[Path]:
    directories = []
    for (optimizer, schedule), by_rate in spec.items():
        for lr, seeds in by_rate.items():
            for seed, run in enumerate(seeds):
                rows, diverged_epoch = history(run, epochs)
                directory = factories.write_run(
                    study_dir, optimizer, schedule, seed, lr, rows, diverged_epoch, steps=10 * len(rows), seconds=1.0
                )
                directories.append(directory)
    return directories


def tables(tmp_path: Path, spec: Spec, epochs: int = 10) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """runs.csv and best.csv of a synthetic study, as the workflow computes them."""
    runs, _ = read_runs(write_runs(tmp_path / "study", spec, epochs))
    return runs, best_rates(runs)


def make_study(
    epochs: int = 10,
    seeds: Sequence[int] = (0, 1),
    grid: Optional[Dict[str, Any]] = None,
    **diagnosis: float,
) -> Dict[str, Any]:
    """A config.yaml mapping; the grid defaults to 1e-3..1e-1, 3 points (L1, L2, L3)."""
    grid = grid or {"min": L1, "max": L3, "points": 3, "values": None}
    config = GridConfig(**grid)
    return {
        "study": {"name": "t", "seeds": list(seeds), "epochs": epochs, "grid": grid},
        "diagnosis": {**dataclasses.asdict(DiagnosisConfig()), **diagnosis},
        "rates": grid_rates(config),
    }


def clean(losses: Sequence[float], epoch: int = 5) -> List[Run]:
    return [Run(loss, epoch) for loss in losses]


def middle_best(**overrides: Sequence[Run]) -> Dict[float, Sequence[Run]]:
    """Three rates, two seeds, the middle one clearly best, best epoch half-way: no warning."""
    by_rate: Dict[float, Sequence[Run]] = {L1: clean([0.5, 0.5]), L2: clean([0.25, 0.25]), L3: clean([0.75, 0.75])}
    by_rate.update({float(key): value for key, value in overrides.items()})
    return by_rate


def kinds(warnings: Sequence[StudyWarning]) -> List[str]:
    return [warning.kind for warning in warnings]


# --------------------------------------------------------------------------------------
# No warnings, and the warning object
# --------------------------------------------------------------------------------------


def test_clean_study_has_no_warnings(tmp_path: Path) -> None:
    runs, best = tables(tmp_path, {("adam", "cosine"): middle_best(), ("sgd", "constant"): middle_best()})
    assert study_warnings(runs, best, make_study()) == []


def test_warning_is_a_frozen_record() -> None:
    warning = StudyWarning("edge", "adam", "cosine", "text")
    with pytest.raises(dataclasses.FrozenInstanceError):
        warning.kind = "other"  # type: ignore[misc]
    assert [field.name for field in dataclasses.fields(StudyWarning)] == ["kind", "optimizer", "schedule", "message"]


# --------------------------------------------------------------------------------------
# edge
# --------------------------------------------------------------------------------------


def test_edge_low_on_the_default_grid_keeps_its_spacing(tmp_path: Path) -> None:
    grid = {"min": 1e-4, "max": 1.0, "points": 9, "values": None}
    rates = grid_rates(GridConfig(**grid))
    spec = {("adam", "cosine"): {lr: clean([0.25 + index / 8] * 2) for index, lr in enumerate(rates)}}
    runs, best = tables(tmp_path, spec)
    warnings = study_warnings(runs, best, make_study(grid=grid))
    assert warnings == [
        StudyWarning(
            "edge",
            "adam",
            "cosine",
            "adam × cosine: best rate 1e-4 is the grid's smallest; widen it downwards by a decade: "
            "study.grid.min=1e-5 study.grid.points=11",
        )
    ]
    # The widened grid still holds every rate already run, so those runs are reused.
    widened = grid_rates(GridConfig(min=1e-5, max=1.0, points=11))
    assert set(rates) <= set(widened) and min(widened) == 1e-5


def test_edge_high(tmp_path: Path) -> None:
    spec = {("sgd", "step"): middle_best(**{str(L3): clean([0.125, 0.125])})}
    runs, best = tables(tmp_path, spec)
    assert [warning.message for warning in study_warnings(runs, best, make_study())] == [
        "sgd × step: best rate 1e-1 is the grid's largest; widen it upwards by a decade: study.grid.max=1e0 study.grid.points=4"
    ]


def test_edge_with_explicit_values(tmp_path: Path) -> None:
    spec = {("adam", "cosine"): middle_best(**{str(L1): clean([0.125, 0.125])})}
    runs, best = tables(tmp_path, spec)
    study = make_study(grid={"min": 1e-4, "max": 1.0, "points": 9, "values": [0.01, 0.001, 0.1]})
    assert [warning.message for warning in study_warnings(runs, best, study)] == [
        "adam × cosine: best rate 1e-3 is the grid's smallest; widen it downwards by a decade: "
        "add 1e-4 to study.grid.values: study.grid.values=[1e-4,1e-3,1e-2,1e-1]"
    ]


@pytest.mark.parametrize(
    ("grid", "override"),
    [
        ({"min": L2, "max": 1.0, "points": 1, "values": None}, "study.grid.min=1e-3 study.grid.max=1e-1 study.grid.points=3"),
        ({"min": 1e-4, "max": 1.0, "points": 9, "values": [L2]}, "add 1e-3 and 1e-1 to study.grid.values: study.grid.values=[1e-3,1e-2,1e-1]"),
    ],
)
def test_edge_with_one_rate_widens_both_ways(tmp_path: Path, grid: Dict[str, Any], override: str) -> None:
    runs, best = tables(tmp_path, {("adam", "constant"): {L2: clean([0.25, 0.375])}})
    warnings = study_warnings(runs, best, make_study(grid=grid))
    # One rate: no runner-up, so no seed disagreement either, whatever the spread.
    assert [warning.message for warning in warnings] == [
        f"adam × constant: best rate 1e-2 is the grid's only rate; widen it both ways by a decade: {override}"
    ]


def test_no_edge_warning_inside_the_grid(tmp_path: Path) -> None:
    runs, best = tables(tmp_path, {("adam", "cosine"): middle_best()})
    assert not bool(best["at_edge"].iloc[0])
    assert "edge" not in kinds(study_warnings(runs, best, make_study()))


# --------------------------------------------------------------------------------------
# diverged
# --------------------------------------------------------------------------------------


def test_diverged_share_above_threshold(tmp_path: Path) -> None:
    spec = {("adam", "constant"): middle_best(**{str(L3): [Run(0.75, 2, diverged=True)] * 2})}
    runs, best = tables(tmp_path, spec)
    assert study_warnings(runs, best, make_study()) == [
        StudyWarning(
            "diverged",
            "adam",
            "constant",
            "adam × constant: 33% of runs diverged (2 of 6), at every rate from 1e-1 upwards "
            "(more than the 30% warning threshold, diagnosis.diverged_warning)",
        )
    ]


def test_diverged_share_equal_to_threshold_is_silent(tmp_path: Path) -> None:
    spec = {("adam", "constant"): middle_best(**{str(L3): [Run(0.75, 2, diverged=True)] * 2})}
    runs, best = tables(tmp_path, spec)
    assert study_warnings(runs, best, make_study(diverged_warning=2 / 6)) == []
    assert kinds(study_warnings(runs, best, make_study(diverged_warning=0.33))) == ["diverged"]


def test_diverged_share_below_threshold_is_silent(tmp_path: Path) -> None:
    spec = {("adam", "constant"): middle_best(**{str(L3): [Run(0.75, 2, diverged=True), Run(0.75)]})}
    runs, best = tables(tmp_path, spec)
    assert study_warnings(runs, best, make_study()) == []


def test_diverged_at_scattered_rates_names_them(tmp_path: Path) -> None:
    spec = {
        ("sgd", "cosine"): middle_best(
            **{str(L1): [Run(0.5, 2, diverged=True), Run(0.5)], str(L3): [Run(0.75, 2, diverged=True)] * 2}
        )
    }
    runs, best = tables(tmp_path, spec)
    (warning,) = study_warnings(runs, best, make_study())
    assert warning.kind == "diverged"
    assert "50% of runs diverged (3 of 6), at rates 1e-3, 1e-1 (from 1e-3 up, not at every rate)" in warning.message


def test_diverged_by_schedule(tmp_path: Path) -> None:
    spec = {
        ("adam", "constant"): middle_best(**{str(L3): [Run(0.75, 2, diverged=True), Run(0.75)]}),
        ("adam", "cosine"): middle_best(),
    }
    runs, _ = tables(tmp_path, spec)
    table = diverged_by_schedule(runs)
    assert list(table.columns) == ["optimizer", "schedule", "runs", "diverged", "diverged_fraction", "lowest_diverging_lr"]
    assert table[["optimizer", "schedule", "runs", "diverged"]].values.tolist() == [["adam", "constant", 6, 1], ["adam", "cosine", 6, 0]]
    assert table["diverged_fraction"].tolist() == pytest.approx([1 / 6, 0.0])
    assert table["lowest_diverging_lr"].iloc[0] == L3 and math.isnan(table["lowest_diverging_lr"].iloc[1])


# --------------------------------------------------------------------------------------
# early_best / late_best
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epochs", "best_epochs", "expected"),
    [
        (30, [2, 2], "early_best"),  # 2/30 < 0.1
        (30, [3, 3], None),  # 3/30 = 0.1: not below
        (30, [2, 4], None),  # mean 3: not below
        (20, [15, 15], None),  # 15/20 = 0.75: not above
        (20, [16, 16], "late_best"),  # 16/20 > 0.75
        (20, [15, 16], "late_best"),  # mean 15.5
    ],
)
def test_best_epoch_boundaries(tmp_path: Path, epochs: int, best_epochs: List[int], expected: Optional[str]) -> None:
    at_best = [Run(0.25, epoch) for epoch in best_epochs]
    runs, best = tables(tmp_path, {("adam", "cosine"): middle_best(**{str(L2): at_best})}, epochs=epochs)
    found = kinds(study_warnings(runs, best, make_study(epochs=epochs)))
    assert found == ([expected] if expected else [])


def test_best_epoch_messages(tmp_path: Path) -> None:
    runs, best = tables(tmp_path, {("adam", "cosine"): middle_best(**{str(L2): clean([0.25, 0.25], epoch=2)})}, epochs=30)
    (early,) = study_warnings(runs, best, make_study(epochs=30))
    assert early.message == (
        "adam × cosine: the best epoch (mean 2 of 30) comes within the first 10% of training: "
        "more epochs than needed; about three times the best epoch is enough: study.epochs=6"
    )
    runs, best = tables(tmp_path / "late", {("adam", "cosine"): middle_best(**{str(L2): clean([0.25, 0.25], epoch=19)})}, epochs=20)
    (late,) = study_warnings(runs, best, make_study(epochs=20))
    assert late.message == (
        "adam × cosine: the best epoch (mean 19 of 20) comes after 75% of training: still improving; "
        "train longer: study.epochs=40"
    )


def test_best_epoch_thresholds_come_from_the_study(tmp_path: Path) -> None:
    runs, best = tables(tmp_path, {("adam", "cosine"): middle_best(**{str(L2): clean([0.25, 0.25], epoch=4)})}, epochs=20)
    assert study_warnings(runs, best, make_study(epochs=20)) == []
    assert kinds(study_warnings(runs, best, make_study(epochs=20, early_best=0.25))) == ["early_best"]


def test_best_epoch_from_runs_when_best_csv_lacks_it(tmp_path: Path) -> None:
    runs, best = tables(tmp_path, {("adam", "cosine"): middle_best(**{str(L2): clean([0.25, 0.25], epoch=19)})}, epochs=20)
    assert kinds(study_warnings(runs, best.drop(columns="best_epoch_mean"), make_study(epochs=20))) == ["late_best"]


def test_no_epoch_advice_when_the_recommended_rate_diverged(tmp_path: Path) -> None:
    # Every rate has a diverged seed, so the recommended rate has one too: its best epoch marks
    # the blow-up, not the end of learning.
    every = {lr: [Run(0.25 + index / 8, 1), Run(0.5, 1, diverged=True)] for index, lr in enumerate((L1, L2, L3))}
    runs, best = tables(tmp_path, {("adam", "cosine"): every}, epochs=30)
    found = kinds(study_warnings(runs, best, make_study(epochs=30)))
    assert "early_best" not in found and "diverged" in found


# --------------------------------------------------------------------------------------
# seeds_disagree
# --------------------------------------------------------------------------------------


def three_seeds(mean: float, spread: float) -> List[Run]:
    """Three seeds at mean ± spread: their sample std is exactly ``spread``."""
    return clean([mean - spread, mean, mean + spread])


@pytest.mark.parametrize(("runner_up", "fires"), [(0.625, False), (0.75, False), (0.5625, True)])
def test_seeds_disagree_boundary(tmp_path: Path, runner_up: float, fires: bool) -> None:
    # Winner 0.5 ± 0.125 at 1e-2; runner-up at 1e-3: gap 0.125 (= std, silent), 0.25, 0.0625.
    spec = {("adam", "cosine"): {L1: clean([runner_up] * 3), L2: three_seeds(0.5, 0.125), L3: clean([0.875] * 3)}}
    runs, best = tables(tmp_path, spec)
    assert best["best_val_loss_std"].iloc[0] == 0.125
    found = study_warnings(runs, best, make_study(seeds=(0, 1, 2)))
    assert kinds(found) == (["seeds_disagree"] if fires else [])


def test_seeds_disagree_message(tmp_path: Path) -> None:
    spec = {("adam", "cosine"): {L1: clean([0.5625] * 3), L2: three_seeds(0.5, 0.125), L3: clean([0.875] * 3)}}
    runs, best = tables(tmp_path, spec)
    (warning,) = study_warnings(runs, best, make_study(seeds=(0, 1, 2)))
    assert warning.message == (
        "adam × cosine: the seeds disagree more than the top two rates differ: best val_loss std 0.125 over "
        "3 seeds at 1e-2 vs a gap of 0.0625 to the runner-up 1e-3; the winner is not distinguishable from it on the grid's seeds; "
        "add seeds: study.seeds=[0,1,2,3,4,5]"
    )


def test_one_seed_never_disagrees(tmp_path: Path) -> None:
    spec = {("adam", "cosine"): {L1: clean([0.3]), L2: clean([0.25]), L3: clean([0.2500001])}}
    runs, best = tables(tmp_path, spec)
    assert float(best["lr"].iloc[0]) == L2
    assert study_warnings(runs, best, make_study(seeds=(0,))) == []


def test_runner_up_with_a_diverged_seed_ranks_last(tmp_path: Path) -> None:
    # 1e-1 has a lower mean (0.4375) but a diverged seed: the runner-up is 1e-3, 0.25 behind the
    # winner, more than the spread (std 0.125): silent. Counting 1e-1 would make it fire.
    spec = {
        ("adam", "cosine"): {
            L1: clean([0.75] * 3),
            L2: three_seeds(0.5, 0.125),
            L3: [Run(0.4375, 2, diverged=True), Run(0.4375), Run(0.4375)],
        }
    }
    runs, best = tables(tmp_path, spec)
    assert rate_table(runs).index.tolist() == [L2, L1, L3]
    assert study_warnings(runs, best, make_study(seeds=(0, 1, 2))) == []


def test_order_of_warnings(tmp_path: Path) -> None:
    spec = {
        ("sgd", "constant"): middle_best(**{str(L1): clean([0.125, 0.125], epoch=10)}),
        # 1e-2 wins (0.375 ± 0.18) by 0.0625 over 1e-3: seeds disagree; 1e-1 diverged: 2 of 6.
        ("adam", "step"): {L1: clean([0.375, 0.5]), L2: clean([0.25, 0.5]), L3: [Run(0.75, 1, diverged=True)] * 2},
    }
    runs, best = tables(tmp_path, spec, epochs=10)
    found = study_warnings(runs, best, make_study(epochs=10))
    assert [(warning.optimizer, warning.schedule, warning.kind) for warning in found] == [
        ("adam", "step", "diverged"),
        ("adam", "step", "seeds_disagree"),
        ("sgd", "constant", "edge"),
        ("sgd", "constant", "late_best"),
    ]
    assert all(warning.kind in KINDS for warning in found)


def test_edge_advice_for_a_finder_centred_grid_widens_the_decades() -> None:
    from pipeline.analysis.advice import _widen_grid

    grid = {"mode": "finder", "finder_decades": 1.0, "points": 3, "min": 1e-4, "max": 1.0}
    # 3 points over 2 decades: one point per decade; a decade more each side keeps the spacing.
    assert _widen_grid(grid, [1e-3, 1e-2, 1e-1], 1e-1, "high") == "study.grid.finder_decades=2 study.grid.points=5"
