"""Tests of pipeline.analysis.diagnosis on synthetic curves built to trip each rule, or to stay just
below it.

Unless a test says otherwise, a run starts from an untrained loss of 2.0, the study's best
training loss is 0.25 (so the full possible reduction is 1.75), the validation loss is the
training loss + 0.125 (a small, constant gap: no overfitting) and the default thresholds
apply (spike_rise 0.25, end_worse_margin 0.2, underfit_progress 0.5, tail_fraction 0.2,
converged_drop 0.02, overfit_val_rise 0.1, gap_threshold 0.5). With 10 epochs the
convergence tail is the last 2 epochs, i.e. the last epoch-to-epoch change.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Optional, Sequence

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from pipeline.config.schema import DiagnosisConfig
from pipeline.analysis.diagnosis import (
    DIAGNOSIS_COLUMNS,
    FIT_LABELS,
    diagnose_history,
    diagnose_runs,
    fit_of_cell,
    tail_length,
)

NAN = math.nan
INF = math.inf
INITIAL = 2.0
STUDY_BEST = 0.25
DEFAULTS = DiagnosisConfig()
#: Falls, then flat at the study's best: every number at its healthy value.
GOOD = [1.0, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25]


def history(
    losses: Sequence[float],
    val_losses: Optional[Sequence[float]] = None,
    val_accuracies: Optional[Sequence[float]] = None,
    seconds: Optional[Sequence[float]] = None,
) -> pd.DataFrame:
    """A history table in the curves.csv layout (epochs from 1)."""
    count = len(losses)
    return pd.DataFrame(
        {
            "epoch": list(range(1, count + 1)),
            "current_lr": [0.01] * count,
            "loss": list(losses),
            "accuracy": [0.5] * count,
            "val_loss": list(val_losses) if val_losses is not None else [loss + 0.125 for loss in losses],
            "val_accuracy": list(val_accuracies) if val_accuracies is not None else [0.5] * count,
            "seconds": list(seconds) if seconds is not None else [0.5] * count,
        }
    )


def diagnose(
    losses: Sequence[float],
    *,
    status: str = "ok",
    initial_loss: float = INITIAL,
    study_best_loss: float = STUDY_BEST,
    target_accuracy: float = NAN,
    thresholds: DiagnosisConfig = DEFAULTS,
    **columns: Any,
) -> Dict[str, Any]:
    return diagnose_history(
        history(losses, **columns),
        status=status,
        initial_loss=initial_loss,
        study_best_loss=study_best_loss,
        target_accuracy=target_accuracy,
        thresholds=thresholds,
    )


def with_spike(rise: float) -> list[float]:
    """GOOD with one mid-run rise of the given relative size, recovered at once."""
    losses = list(GOOD)
    losses[3] = 0.25 * (1 + rise)
    return losses


def ending_worse(over_best: float) -> list[float]:
    """A gentle climb (no epoch rises by 25 %) to ``over_best`` above the run's best (0.25)."""
    return [1.0, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.27, 0.25 * (1 + over_best)]


def plateau(level: float) -> list[float]:
    """Drops to ``level`` and stays there (converged, no spikes)."""
    return [1.5] + [level] * 9


def still_falling(drop: float) -> list[float]:
    """Flat, then a last epoch that falls by ``drop`` (relative): the 10-epoch tail's mean."""
    return [1.0, 0.5, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3 * (1 - drop)]


#: Training loss falling to the end (converged: the last change is 0.2 %), and a validation
#: loss whose minimum is 0.45 at epoch 4; ``val_rising(final)`` ends it at ``final``.
FALLING = [1.0, 0.5, 0.3, 0.25, 0.24, 0.235, 0.232, 0.231, 0.2305, 0.23]


def val_rising(rise: float) -> list[float]:
    return [1.1, 0.7, 0.5, 0.45, 0.46, 0.46, 0.47, 0.47, 0.48, 0.45 * (1 + rise)]


def with_gap(gap: float) -> Dict[str, Any]:
    return {"val_losses": [loss + gap for loss in GOOD]}


# --------------------------------------------------------------------------------------
# One rule at a time: tripped, and just below
# --------------------------------------------------------------------------------------


def test_good_run_has_healthy_numbers() -> None:
    result = diagnose(GOOD)
    assert list(result) == DIAGNOSIS_COLUMNS
    assert result["fit"] == "good" and result["fit_reasons"] == ""
    assert result["spikes"] == 0 and isinstance(result["spikes"], int)
    assert result["max_loss_rise"] == 0.0
    assert result["end_over_best"] == 0.0
    assert result["progress"] == 1.0
    assert result["end_drop"] == 0.0
    assert result["val_rise"] == 0.0
    assert result["gap"] == 0.125


def test_spike_trips_unstable() -> None:
    result = diagnose(with_spike(0.26))
    assert (result["fit"], result["fit_reasons"]) == ("unstable", "spike")
    assert result["spikes"] == 1
    assert result["max_loss_rise"] == pytest.approx(0.26)


def test_rise_just_below_spike_threshold_is_not_a_spike() -> None:
    result = diagnose(with_spike(0.24))
    assert (result["fit"], result["fit_reasons"]) == ("good", "")
    assert result["spikes"] == 0
    assert result["max_loss_rise"] == pytest.approx(0.24)


def test_every_spike_epoch_is_counted() -> None:
    losses = list(GOOD)
    losses[3] = losses[5] = 0.5  # two separate doublings
    assert diagnose(losses)["spikes"] == 2


def test_end_worse_than_best_trips_unstable() -> None:
    result = diagnose(ending_worse(0.21))
    assert (result["fit"], result["fit_reasons"]) == ("unstable", "end_worse")
    assert result["spikes"] == 0
    assert result["end_over_best"] == pytest.approx(0.21)


def test_end_just_within_margin_is_not_unstable() -> None:
    result = diagnose(ending_worse(0.19))
    assert (result["fit"], result["fit_reasons"]) == ("good", "")
    assert result["end_over_best"] == pytest.approx(0.19)


def test_low_progress_trips_underfit() -> None:
    result = diagnose(plateau(1.15))
    assert (result["fit"], result["fit_reasons"]) == ("underfit", "low_progress")
    assert result["progress"] == pytest.approx((2.0 - 1.15) / 1.75)


def test_progress_just_above_threshold_is_not_underfit() -> None:
    result = diagnose(plateau(1.1))
    assert (result["fit"], result["fit_reasons"]) == ("good", "")
    assert result["progress"] == pytest.approx((2.0 - 1.1) / 1.75)


def test_still_falling_at_the_end_is_not_converged() -> None:
    result = diagnose(still_falling(0.03))
    assert (result["fit"], result["fit_reasons"]) == ("underfit", "not_converged")
    assert result["end_drop"] == pytest.approx(0.03)


def test_tail_drop_just_below_threshold_is_converged() -> None:
    result = diagnose(still_falling(0.01))
    assert (result["fit"], result["fit_reasons"]) == ("good", "")
    assert result["end_drop"] == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("epochs", "fraction", "expected"),
    [(10, 0.2, 2), (1, 0.2, 2), (7, 0.2, 2), (11, 0.2, 3), (30, 0.2, 6), (30, 0.1, 3), (20, 0.05, 2)],
)
def test_tail_length(epochs: int, fraction: float, expected: int) -> None:
    assert tail_length(epochs, fraction) == expected


def test_tail_is_the_last_k_epochs_and_their_k_minus_1_changes() -> None:
    # 30 epochs: a big fall into epoch 28, flat after it.
    losses = [1.0] * 26 + [0.5, 0.25, 0.25, 0.25]
    # tail_fraction 0.1 -> 3 epochs (not 4, although 0.1 * 30 > 3 in floating point): flat.
    narrow = diagnose(losses, thresholds=dataclasses.replace(DEFAULTS, tail_fraction=0.1))
    assert narrow["end_drop"] == 0.0 and narrow["fit"] == "good"
    # tail_fraction 0.2 -> 6 epochs [1, 1, .5, .25, .25, .25]: changes 0, .5, .5, 0, 0.
    wide = diagnose(losses, thresholds=dataclasses.replace(DEFAULTS, tail_fraction=0.2))
    assert wide["end_drop"] == pytest.approx(0.2)
    assert (wide["fit"], wide["fit_reasons"]) == ("underfit", "not_converged")


def test_val_rise_while_train_loss_falls_trips_overfit() -> None:
    result = diagnose(FALLING, val_losses=val_rising(0.11))
    assert (result["fit"], result["fit_reasons"]) == ("overfit", "val_rise")
    assert result["val_rise"] == pytest.approx(0.11)
    assert result["gap"] == pytest.approx(0.45 * 1.11 - 0.23)


def test_val_rise_just_below_threshold_is_not_overfit() -> None:
    result = diagnose(FALLING, val_losses=val_rising(0.09))
    assert (result["fit"], result["fit_reasons"]) == ("good", "")
    assert result["val_rise"] == pytest.approx(0.09)


@pytest.mark.parametrize("final_train", [0.26, 0.25], ids=["train-rose", "train-flat"])
def test_val_rise_is_not_overfit_unless_the_train_loss_kept_falling(final_train: float) -> None:
    # The train loss at the epoch of minimal val loss (epoch 4) is 0.25.
    losses = [1.0, 0.5, 0.3, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, final_train]
    result = diagnose(losses, val_losses=val_rising(0.11))
    assert result["val_rise"] == pytest.approx(0.11)
    assert (result["fit"], result["fit_reasons"]) == ("good", "")


def test_large_final_gap_trips_overfit() -> None:
    result = diagnose(GOOD, **with_gap(0.55))
    assert (result["fit"], result["fit_reasons"]) == ("overfit", "gap")
    assert result["gap"] == pytest.approx(0.55)
    assert result["val_rise"] == 0.0


def test_gap_just_below_threshold_is_not_overfit() -> None:
    result = diagnose(GOOD, **with_gap(0.45))
    assert (result["fit"], result["fit_reasons"]) == ("good", "")
    assert result["gap"] == pytest.approx(0.45)


# --------------------------------------------------------------------------------------
# Priority, non-finite values, short runs
# --------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("error")
def test_diverged_comes_first_and_the_finite_prefix_still_gives_reasons() -> None:
    result = diagnose(
        [1.0, 0.5, 3.0, INF], status="diverged", val_losses=[1.2, 0.7, 3.5, NAN], val_accuracies=[0.3, 0.4, 0.1, NAN]
    )
    assert result["fit"] == "diverged"
    # On the finite prefix [1, .5, 3]: a x6 spike, ending 5x above its best, negative progress.
    assert result["fit_reasons"] == "diverged;spike;end_worse;low_progress"
    assert result["spikes"] == 1
    assert result["max_loss_rise"] == pytest.approx(5.0)
    assert result["end_over_best"] == pytest.approx(5.0)
    assert result["progress"] == pytest.approx((2.0 - 3.0) / 1.75)
    assert result["end_drop"] == pytest.approx(-5.0)
    assert result["val_rise"] == pytest.approx(4.0)  # but the train loss rose too: no val_rise
    assert result["gap"] == pytest.approx(0.5)  # not above 0.5


@pytest.mark.filterwarnings("error")
def test_diverged_in_the_first_epoch_gives_nan_numbers() -> None:
    result = diagnose([NAN], status="diverged", val_losses=[NAN], val_accuracies=[NAN])
    assert (result["fit"], result["fit_reasons"]) == ("diverged", "diverged")
    assert result["spikes"] == 0
    for column in ("max_loss_rise", "end_over_best", "progress", "end_drop", "val_rise", "gap"):
        assert math.isnan(result[column]), column


def test_diverged_status_wins_over_a_clean_curve() -> None:
    result = diagnose(GOOD, status="diverged")
    assert (result["fit"], result["fit_reasons"]) == ("diverged", "diverged")


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("tail", [[NAN], [INF], [-INF], [NAN, NAN], [INF, NAN]])
def test_non_finite_tails_do_not_raise(tail: list[float]) -> None:
    losses = GOOD + tail
    result = diagnose(losses, val_losses=[loss + 0.125 for loss in losses], val_accuracies=[0.5] * 10 + [NAN] * len(tail))
    # Numbers of the finite prefix: the clean run before the tail.
    assert result["spikes"] == 0 and result["end_over_best"] == 0.0 and result["gap"] == 0.125


@pytest.mark.filterwarnings("error")
def test_non_finite_val_loss_only_shortens_the_validation_numbers() -> None:
    result = diagnose(GOOD, val_losses=[loss + 0.125 for loss in GOOD[:-1]] + [NAN])
    assert result["gap"] == 0.125 and result["val_rise"] == 0.0 and result["end_drop"] == 0.0


@pytest.mark.filterwarnings("error")
def test_single_epoch_run_skips_spike_and_convergence_checks() -> None:
    result = diagnose([1.0])
    assert (result["fit"], result["fit_reasons"]) == ("good", "")
    assert result["spikes"] == 0
    assert math.isnan(result["max_loss_rise"]) and math.isnan(result["end_drop"])
    assert result["end_over_best"] == 0.0
    assert result["progress"] == pytest.approx(1.0 / 1.75)
    assert result["val_rise"] == 0.0 and result["gap"] == 0.125


def test_unknown_initial_loss_leaves_progress_unjudged() -> None:
    # Progress 0.06 were the untrained loss 2.0 known; unknown, the rule does not fire.
    result = diagnose([1.95] + [1.9] * 9, initial_loss=NAN)
    assert math.isnan(result["progress"]) and result["fit"] == "good"


def test_label_is_the_first_reason_by_priority_and_reasons_list_all() -> None:
    # A spike (1.2 -> 1.6), an end at 1.25 (progress 0.43) and a gap of 0.6.
    spiky = [1.5, 1.2, 1.6, 1.25, 1.25, 1.25, 1.25, 1.25, 1.25, 1.25]
    result = diagnose(spiky, val_losses=[loss + 0.6 for loss in spiky])
    assert (result["fit"], result["fit_reasons"]) == ("unstable", "spike;low_progress;gap")
    smooth = [1.5, 1.2, 1.25, 1.25, 1.25, 1.25, 1.25, 1.25, 1.25, 1.25]
    result = diagnose(smooth, val_losses=[loss + 0.6 for loss in smooth])
    assert (result["fit"], result["fit_reasons"]) == ("underfit", "low_progress;gap")
    result = diagnose(smooth, val_losses=[loss + 0.6 for loss in smooth], study_best_loss=1.2)
    assert (result["fit"], result["fit_reasons"]) == ("overfit", "gap")


def test_all_reason_codes_in_priority_order() -> None:
    # A 27 % spike into epoch 4, an end 30 % above the best, no progress, a gap of 0.66.
    losses = [1.9, 1.8, 1.85, 2.35, 2.34]
    val = [2.0, 0.5, 2.0, 2.0, 3.0]
    result = diagnose(losses, status="diverged", val_losses=val, study_best_loss=0.25)
    assert result["fit_reasons"] == "diverged;spike;end_worse;low_progress;gap"
    # A still-falling tail with the validation loss still improving: not converged.
    losses = [1.9, 1.0, 0.5]
    result = diagnose(losses, val_losses=[1.2, 0.9, 0.8], study_best_loss=0.25)
    assert (result["fit"], result["fit_reasons"]) == ("underfit", "not_converged")
    # The same tail after the validation loss turned up: memorisation, so overfit, not underfit.
    result = diagnose(losses, val_losses=[1.2, 0.5, 1.2], study_best_loss=0.25)
    assert (result["fit"], result["fit_reasons"]) == ("overfit", "val_rise;gap")


# --------------------------------------------------------------------------------------
# Thresholds move the decision
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("losses", "columns", "change", "before", "after"),
    [
        (with_spike(0.26), {}, {"spike_rise": 0.3}, "unstable", "good"),
        (ending_worse(0.21), {}, {"end_worse_margin": 0.25}, "unstable", "good"),
        (plateau(1.1), {}, {"underfit_progress": 0.6}, "good", "underfit"),
        (still_falling(0.01), {}, {"converged_drop": 0.005}, "good", "underfit"),
        (FALLING, {"val_losses": val_rising(0.09)}, {"overfit_val_rise": 0.05}, "good", "overfit"),
        (GOOD, with_gap(0.45), {"gap_threshold": 0.4}, "good", "overfit"),
    ],
    ids=["spike_rise", "end_worse_margin", "underfit_progress", "converged_drop", "overfit_val_rise", "gap_threshold"],
)
def test_threshold_changes_move_the_decision(
    losses: list[float], columns: Dict[str, Any], change: Dict[str, float], before: str, after: str
) -> None:
    assert diagnose(losses, **columns)["fit"] == before
    assert diagnose(losses, thresholds=dataclasses.replace(DEFAULTS, **change), **columns)["fit"] == after


# --------------------------------------------------------------------------------------
# Cost to target
# --------------------------------------------------------------------------------------

ACCURACIES = [0.5, 0.8, 0.9, 0.95, 0.9]
SECONDS = [1.0, 2.0, 4.0, 8.0, 16.0]


@pytest.mark.parametrize(("target", "epochs", "seconds"), [(0.9, 3, 7.0), (0.95, 4, 15.0), (0.5, 1, 1.0), (0.1, 1, 1.0)])
def test_epochs_and_seconds_to_target(target: float, epochs: int, seconds: float) -> None:
    result = diagnose(GOOD[:5], target_accuracy=target, val_accuracies=ACCURACIES, seconds=SECONDS)
    assert result["epochs_to_target"] == epochs
    assert result["seconds_to_target"] == seconds


@pytest.mark.parametrize("target", [0.99, NAN])
def test_target_never_reached(target: float) -> None:
    result = diagnose(GOOD[:5], target_accuracy=target, val_accuracies=ACCURACIES, seconds=SECONDS)
    assert result["epochs_to_target"] is pd.NA
    assert math.isnan(result["seconds_to_target"])


def test_non_finite_accuracy_never_reaches_the_target() -> None:
    result = diagnose(GOOD[:3], target_accuracy=0.9, val_accuracies=[NAN, 0.95, 0.95], seconds=[1.0, 2.0, 4.0])
    assert (result["epochs_to_target"], result["seconds_to_target"]) == (2, 3.0)


# --------------------------------------------------------------------------------------
# Whole study
# --------------------------------------------------------------------------------------


def study_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three runs, given out of order: a good one (the study's best loss 0.25 and best
    accuracy 0.8), an underfit one (judged against the other run's best) and a diverged one."""
    runs = pd.DataFrame(
        {
            "optimizer": ["sgd", "adam", "adam"],
            "schedule": ["constant", "constant", "constant"],
            "lr": [0.1, 0.01, 0.01],
            "seed": [0, 0, 1],
            "status": ["diverged", "ok", "ok"],
            "best_val_loss": [1.125, 0.375, 1.525],
            "initial_loss": [2.0, 2.0, 2.5],
            "run_dir": ["c", "a", "b"],
        },
        index=[10, 11, 12],  # not a range: the index must survive
    )
    parts = {
        ("adam", 0.01, 1): history([1.5, 1.4, 1.4], val_accuracies=[0.4, 0.5, 0.78], seconds=[2.0, 2.0, 2.0]),
        ("sgd", 0.1, 0): history([1.0, NAN], val_losses=[1.125, NAN], val_accuracies=[0.3, NAN], seconds=[1.0, 1.0]),
        ("adam", 0.01, 0): history([1.0, 0.25, 0.25], val_accuracies=[0.5, 0.77, 0.8], seconds=[1.0, 2.0, 4.0]),
    }
    curves = pd.concat(
        [part.assign(optimizer=optimizer, schedule="constant", lr=lr, seed=seed) for (optimizer, lr, seed), part in parts.items()],
        ignore_index=True,
    )
    return runs, curves


def test_diagnose_runs_appends_the_diagnosis_in_row_order() -> None:
    runs, curves = study_tables()
    result = diagnose_runs(runs, curves, DEFAULTS)
    assert list(result.columns) == [*runs.columns, *DIAGNOSIS_COLUMNS, "target_accuracy"]
    target = 0.95 * 0.8
    expected = pd.concat(
        [
            runs,
            pd.DataFrame(
                {
                    "fit": ["diverged", "good", "underfit"],
                    "fit_reasons": ["diverged", "", "low_progress"],
                    "spikes": [0, 0, 0],
                    "max_loss_rise": [NAN, 0.0, 0.0],
                    "end_over_best": [0.0, 0.0, 0.0],
                    "progress": [1.0 / 1.75, 1.0, 1.1 / 2.25],  # study best 0.25 is run a's
                    "end_drop": [NAN, 0.0, 0.0],
                    "val_rise": [0.0, 0.0, 0.0],
                    "gap": [0.125, 0.125, 0.125],
                    "epochs_to_target": pd.array([pd.NA, 2, 3], dtype="Int64"),
                    "seconds_to_target": [NAN, 3.0, 6.0],
                    "target_accuracy": [target] * 3,
                },
                index=runs.index,
            ),
        ],
        axis=1,
    )
    assert_frame_equal(result, expected)


def test_diagnose_runs_replaces_an_earlier_diagnosis() -> None:
    runs, curves = study_tables()
    first = diagnose_runs(runs, curves, DEFAULTS)
    again = diagnose_runs(first, curves, dataclasses.replace(DEFAULTS, underfit_progress=0.4, target_fraction=0.5))
    assert list(again.columns) == list(first.columns)
    assert again["fit"].tolist() == ["diverged", "good", "good"]
    assert again["target_accuracy"].tolist() == [0.4] * 3
    assert again["epochs_to_target"].tolist() == [pd.NA, 1, 1]


def test_diagnose_runs_of_no_runs() -> None:
    runs, curves = study_tables()
    result = diagnose_runs(runs.iloc[:0], curves.iloc[:0], DEFAULTS)
    assert result.empty and list(result.columns) == [*runs.columns, *DIAGNOSIS_COLUMNS, "target_accuracy"]


def test_diagnose_runs_needs_curves_for_every_run() -> None:
    runs, curves = study_tables()
    with pytest.raises(ValueError, match="no curve rows"):
        diagnose_runs(runs, curves[curves["optimizer"] == "adam"], DEFAULTS)


def test_diagnose_runs_names_missing_columns() -> None:
    runs, curves = study_tables()
    with pytest.raises(ValueError, match="initial_loss"):
        diagnose_runs(runs.drop(columns="initial_loss"), curves, DEFAULTS)


def test_diagnose_runs_after_a_csv_round_trip(tmp_path: Any) -> None:
    runs, curves = study_tables()
    runs.to_csv(tmp_path / "runs.csv", index=False)
    curves.to_csv(tmp_path / "curves.csv", index=False)
    result = diagnose_runs(pd.read_csv(tmp_path / "runs.csv"), pd.read_csv(tmp_path / "curves.csv"), DEFAULTS)
    assert result["fit"].tolist() == ["diverged", "good", "underfit"]


# --------------------------------------------------------------------------------------
# One label per cell
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["good"], "good"),
        (["good", "good", "overfit"], "good"),
        (["good", "overfit"], "overfit"),
        (["underfit", "diverged"], "diverged"),
        (["good", "unstable", "unstable", "good", "diverged"], "unstable"),
        (["overfit", "underfit", "overfit", "underfit"], "underfit"),
        (pd.Series(["good", "good", "diverged"]), "good"),
    ],
)
def test_fit_of_cell_majority_then_worse_label(labels: Sequence[str], expected: str) -> None:
    assert fit_of_cell(labels) == expected


@pytest.mark.parametrize("labels", [[], ["good", "fine"], ["good", NAN]])
def test_fit_of_cell_rejects_no_or_unknown_labels(labels: list[Any]) -> None:
    with pytest.raises(ValueError):
        fit_of_cell(labels)


def test_fit_labels_are_ordered_worst_first() -> None:
    assert FIT_LABELS == ("diverged", "unstable", "underfit", "overfit", "good")


def collapse_tables(flat: Sequence[float], diverged: Sequence[float] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One cohort (sgd, constant, seed 0) at rates 0.001, 0.01, 0.1, 1; the ``flat`` rates stay
    at the untrained loss 2.3, the others train well; the ``diverged`` ones have that status."""
    rates = [0.001, 0.01, 0.1, 1.0]
    runs = pd.DataFrame(
        {
            "optimizer": "sgd",
            "schedule": "constant",
            "lr": rates,
            "seed": 0,
            "status": ["diverged" if rate in diverged else "ok" for rate in rates],
            "initial_loss": 2.3,
        }
    )
    parts = [
        history([2.3, 2.3, 2.3] if rate in flat else [1.0, 0.5, 0.5]).assign(optimizer="sgd", schedule="constant", lr=rate, seed=0)
        for rate in rates
    ]
    return runs, pd.concat(parts, ignore_index=True)


def test_low_progress_above_a_rate_that_trained_is_a_collapse_not_underfitting() -> None:
    runs, curves = collapse_tables(flat=[1.0])
    result = diagnose_runs(runs, curves, DEFAULTS)
    assert result["fit"].tolist() == ["good", "good", "good", "unstable"]
    assert result["fit_reasons"].iloc[-1] == "collapse;low_progress"


def test_low_progress_below_every_rate_that_trained_stays_underfit() -> None:
    runs, curves = collapse_tables(flat=[0.001, 1.0])
    result = diagnose_runs(runs, curves, DEFAULTS)
    assert result["fit"].tolist() == ["underfit", "good", "good", "unstable"]
    assert result["fit_reasons"].tolist()[0] == "low_progress"


def test_a_collapse_needs_a_lower_rate_of_the_same_cohort_that_trained_without_diverging() -> None:
    runs, curves = collapse_tables(flat=[0.001, 0.01, 1.0], diverged=[0.1])
    result = diagnose_runs(runs, curves, DEFAULTS)
    assert result["fit"].tolist() == ["underfit", "underfit", "diverged", "underfit"]
    # A lower rate that trained well in another seed's cohort doesn't count either.
    runs, curves = collapse_tables(flat=[1.0])
    runs.loc[runs["lr"] == 1.0, "seed"] = 1
    curves.loc[curves["lr"] == 1.0, "seed"] = 1
    assert diagnose_runs(runs, curves, DEFAULTS)["fit"].iloc[-1] == "underfit"
