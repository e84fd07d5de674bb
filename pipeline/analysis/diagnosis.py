"""Fitting diagnosis: one ``fit`` label per run, with the numbers behind it.

Labels, by priority (the first rule that fires names the label; ``fit_reasons`` lists every
rule that fired, so that the report can say why):

- ``diverged``: training decided it (status :attr:`~pipeline.tables.RunStatus.DIVERGED`: a non-finite epoch loss or one
  past ``divergence_factor`` × the untrained loss).
- ``unstable``: the training loss rose by more than ``spike_rise`` from one epoch to the next
  (reason ``spike``), or ended more than ``end_worse_margin`` above its own best
  (``end_worse``), or the run made too little progress (``low_progress``, below) although a
  lower rate of the same optimizer, schedule and seed made enough (``collapse``): the rate is
  past the stable region, typically stuck at chance level from the first epoch without
  passing the divergence factor. A rate too *low* has no lower rate that did better, so it
  stays ``underfit``. (Judged across runs, in :func:`diagnose_runs`.)
- ``underfit``: the run achieved less than ``underfit_progress`` of the study's best loss
  reduction (``low_progress``), or the loss was still falling by more than ``converged_drop``
  per epoch over the tail of training while the validation loss had not turned up
  (``not_converged``: more epochs would still pay). A training loss still falling after the
  validation loss turned up is memorisation, not underfitting: that run is judged by the
  overfit rules.
- ``overfit``: the validation loss ended more than ``overfit_val_rise`` above its minimum
  while the training loss kept falling (``val_rise``), or the final gap val_loss − loss
  exceeds ``gap_threshold`` (``gap``).
- ``good``: none of these.

Also per run: the epochs and seconds of training it took to first reach the target accuracy
(``target_fraction`` × the study's best validation accuracy): the "a higher rate trains
faster / costs less compute" measure.

Non-finite values: a diverged run's history ends in NaN/inf losses. Training numbers are
computed on the *finite prefix* (the epochs before the first non-finite loss), validation
numbers on the epochs before the first non-finite loss or val_loss; a number that cannot be
computed is NaN and its rule does not fire. Nothing here raises or warns on NaN/inf.

Pure pandas/numpy: no TensorFlow import, so the aggregate step stays fast.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Dict, Iterable, List, Tuple

import numpy as np
import pandas as pd

from pipeline.config.schema import DiagnosisConfig
from pipeline.tables import CURVES, DIAGNOSIS_DTYPES, RUNS, STR, RunStatus
from pipeline.tables import RUN_KEYS as CURVE_KEYS

#: The fit labels, worst first: the order that breaks ties.
FIT_LABELS = ("diverged", "unstable", "underfit", "overfit", "good")

#: Fixed colour of each label, in every study: the fitting map's cells and the report's badges.
#: Kept here, with the labels, so that the report job can use them without matplotlib; the
#: spellings suit both CSS and matplotlib.
FIT_COLORS: Dict[str, str] = {
    "diverged": "#8b1a1a",  # dark red
    "unstable": "#f28e2b",  # orange
    "underfit": "#8497b0",  # blue-grey
    "overfit": "#7b3294",  # purple
    "good": "#2e8b3e",  # green
}

#: Text colour on each label's colour: white on the dark ones, black on the light ones.
FIT_TEXT_COLORS: Dict[str, str] = {
    "diverged": "#fff",
    "unstable": "#000",
    "underfit": "#000",
    "overfit": "#fff",
    "good": "#fff",
}

#: The columns the diagnosis appends to runs.csv (their dtypes: :data:`pipeline.tables.RUNS`).
DIAGNOSIS_COLUMNS: List[str] = [name for name, _ in DIAGNOSIS_DTYPES]

#: Every reason code in priority order, with the label it implies. ``fit_reasons`` lists the
#: codes that fired in this order, so its first code always names the ``fit`` label.
REASON_LABELS: Tuple[Tuple[str, str], ...] = (
    ("diverged", "diverged"),
    ("spike", "unstable"),
    ("end_worse", "unstable"),
    ("collapse", "unstable"),
    ("low_progress", "underfit"),
    ("not_converged", "underfit"),
    ("val_rise", "overfit"),
    ("gap", "overfit"),
)

#: Columns each input table must have.
RUN_INPUT_COLUMNS: List[str] = [*CURVE_KEYS, "status", "initial_loss"]
CURVE_INPUT_COLUMNS: List[str] = [*CURVE_KEYS, "epoch", "loss", "val_loss", "val_accuracy", "seconds"]

NAN = math.nan


def _floats(values: Any) -> np.ndarray:
    """A float array; anything unreadable (None, text) becomes NaN instead of raising."""
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)


def _finite_prefix(*columns: np.ndarray) -> int:
    """The number of leading rows in which every given column is finite."""
    if not columns or len(columns[0]) == 0:
        return 0
    bad = np.flatnonzero(~np.logical_and.reduce([np.isfinite(column) for column in columns]))
    return int(bad[0]) if bad.size else len(columns[0])


def _ratio_minus_one(numerator: float, denominator: float) -> float:
    """``numerator / denominator - 1``, NaN where the denominator is not a positive number
    (losses are positive; a zero or negative reference has no meaningful relative change)."""
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator <= 0:
        return NAN
    return numerator / denominator - 1.0


def tail_length(epochs: int, tail_fraction: float) -> int:
    """Epochs at the end over which convergence is judged: ``max(2, ceil(fraction × epochs))``.

    The tiny tolerance keeps products such as 0.1 × 30 = 3.0000000000000004 from rounding up
    to 4 (the configured share is meant, not its binary representation).
    """
    return max(2, math.ceil(tail_fraction * epochs - 1e-9))


def diagnose_history(
    history: pd.DataFrame,
    *,
    status: str,
    initial_loss: float,
    study_best_loss: float,
    target_accuracy: float,
    thresholds: DiagnosisConfig,
) -> Dict[str, Any]:
    """Diagnose one run from its per-epoch history.

    Args:
        history: The run's epochs, with columns ``epoch``, ``loss``, ``val_loss``,
            ``val_accuracy`` and ``seconds`` (per-epoch wall time); sorted by epoch here.
        status: The run's training status (``"ok"`` or ``"diverged"``).
        initial_loss: The untrained model's training loss (the loss the first epoch started
            from); NaN leaves ``progress`` NaN.
        study_best_loss: The lowest finite training loss any run of the study reached.
        target_accuracy: The validation accuracy counted as "reached the target"; NaN means
            no target (``epochs_to_target`` NA).
        thresholds: The diagnosis thresholds.

    Returns:
        The values of ``DIAGNOSIS_COLUMNS``, keyed by column name. ``epochs_to_target`` is an
        int or ``pd.NA``; ``spikes`` is an int (0 where fewer than two finite epochs left
        nothing to compare, which ``max_loss_rise`` = NaN marks).
    """
    if "epoch" in history:
        history = history.sort_values("epoch", kind="stable")
    loss = _floats(history["loss"])
    val_loss = _floats(history["val_loss"])
    val_accuracy = _floats(history["val_accuracy"])
    seconds = _floats(history["seconds"])
    epochs = history["epoch"].to_numpy() if "epoch" in history else np.arange(1, len(history) + 1)

    fired: set[str] = set()
    if status == RunStatus.DIVERGED:
        fired.add("diverged")

    # Training-loss numbers on the finite prefix: after a non-finite loss nothing is comparable.
    train = loss[: _finite_prefix(loss)]
    spikes, max_loss_rise, end_over_best, end_drop, final_loss = 0, NAN, NAN, NAN, NAN
    if len(train) >= 2:
        previous, current = train[:-1], train[1:]
        # The rule in its multiplied form (no division), exactly as configured.
        spikes = int(np.count_nonzero(current > previous * (1.0 + thresholds.spike_rise)))
        if spikes:
            fired.add("spike")
        positive = previous > 0
        rises = (current[positive] - previous[positive]) / previous[positive]
        max_loss_rise = max(0.0, float(rises.max())) if rises.size else NAN

        tail = train[-tail_length(len(train), thresholds.tail_fraction) :]
        # The tail's k epochs hold k - 1 epoch-to-epoch changes (hence at least 2 epochs).
        before, after = tail[:-1], tail[1:]
        if np.all(before > 0):
            end_drop = float(np.mean((before - after) / before))
            if end_drop > thresholds.converged_drop:
                fired.add("not_converged")
    if len(train) >= 1:
        final_loss, min_loss = float(train[-1]), float(train.min())
        end_over_best = _ratio_minus_one(final_loss, min_loss)
        if final_loss > min_loss * (1.0 + thresholds.end_worse_margin):
            fired.add("end_worse")

    # Progress: the share of the study's best reduction (untrained -> best loss) this run made.
    reduction = float(initial_loss) - float(study_best_loss)
    progress = (float(initial_loss) - final_loss) / reduction if math.isfinite(reduction) and reduction > 0 else NAN
    if math.isfinite(progress) and progress < thresholds.underfit_progress:
        fired.add("low_progress")

    # Validation numbers need the training loss too (the gap; "kept falling"), so they use
    # the epochs where both are finite.
    both = _finite_prefix(loss, val_loss)
    val_rise, gap = NAN, NAN
    if both >= 1:
        run_val, run_train = val_loss[:both], loss[:both]
        best = int(np.argmin(run_val))  # the first epoch of the minimum
        val_rise = _ratio_minus_one(float(run_val[-1]), float(run_val[best]))
        kept_falling = run_train[-1] < run_train[best]
        val_turned = run_val[-1] > run_val[best] * (1.0 + thresholds.overfit_val_rise)
        if val_turned and kept_falling:
            fired.add("val_rise")
        if val_turned:
            fired.discard("not_converged")
        gap = float(run_val[-1] - run_train[-1])
        if gap > thresholds.gap_threshold:
            fired.add("gap")

    epochs_to_target: Any = pd.NA
    seconds_to_target = NAN
    if math.isfinite(target_accuracy):
        # NaN accuracies compare False: an epoch without a finite accuracy never reaches it.
        reached = np.flatnonzero(np.isfinite(val_accuracy) & (val_accuracy >= target_accuracy))
        if reached.size:
            first = int(reached[0])
            epochs_to_target = int(epochs[first])
            seconds_to_target = float(np.sum(seconds[: first + 1]))  # NaN if a time is missing

    fit, reasons = label_of(fired)
    return {
        "fit": fit,
        "fit_reasons": reasons,
        "spikes": spikes,
        "max_loss_rise": max_loss_rise,
        "end_over_best": end_over_best,
        "progress": progress,
        "end_drop": end_drop,
        "val_rise": val_rise,
        "gap": gap,
        "epochs_to_target": epochs_to_target,
        "seconds_to_target": seconds_to_target,
    }


def label_of(fired: Iterable[str]) -> Tuple[str, str]:
    """The fit label and the ``fit_reasons`` text of a set of fired reason codes."""
    fired = set(fired)
    reasons = [code for code, _ in REASON_LABELS if code in fired]
    return (dict(REASON_LABELS)[reasons[0]] if reasons else "good"), ";".join(reasons)


def mark_collapses(runs: pd.DataFrame, rows: List[Dict[str, Any]], thresholds: DiagnosisConfig) -> None:
    """Add ``collapse`` to the runs with low progress at a rate above one of the same
    optimizer, schedule and seed that made enough progress without diverging (in place)."""
    cohorts = list(runs[["optimizer", "schedule", "seed"]].itertuples(index=False, name=None))
    rates = _floats(runs["lr"])
    statuses = [str(status) for status in runs["status"]]
    fine = [
        index
        for index, row in enumerate(rows)
        if statuses[index] != RunStatus.DIVERGED and row["progress"] >= thresholds.underfit_progress
    ]
    for index, row in enumerate(rows):
        fired = set(filter(None, row["fit_reasons"].split(";")))
        if "low_progress" not in fired:
            continue
        if any(cohorts[other] == cohorts[index] and rates[other] < rates[index] for other in fine):
            row["fit"], row["fit_reasons"] = label_of(fired | {"collapse"})


def diagnose_runs(runs: pd.DataFrame, curves: pd.DataFrame, thresholds: DiagnosisConfig) -> pd.DataFrame:
    """``runs`` with ``DIAGNOSIS_COLUMNS`` and ``target_accuracy`` appended (same rows, same order).

    Curves are matched to runs by (optimizer, schedule, lr, seed). The study-wide references
    (the best training loss for ``progress``, the best validation accuracy for the target)
    are taken over the curves of the given runs only. Diagnosis columns already in ``runs``
    are replaced, so re-diagnosing with other thresholds is safe.

    Raises:
        ValueError: A required column is missing, or a run has no curve rows (a key mismatch
            would otherwise label the run from nothing).
    """
    RUNS.check(runs, RUN_INPUT_COLUMNS)
    CURVES.check(curves, CURVE_INPUT_COLUMNS)

    by_run = {key: group for key, group in curves.groupby(CURVE_KEYS, sort=False)}
    keys = list(runs[CURVE_KEYS].itertuples(index=False, name=None))
    absent = [key for key in keys if key not in by_run]
    if absent:
        raise ValueError(f"no curve rows for run(s) {absent} (matched by {CURVE_KEYS})")
    histories = [by_run[key] for key in keys]

    def finite_values(column: str) -> np.ndarray:
        values = _floats(pd.concat([history[column] for history in histories])) if histories else np.array([])
        return values[np.isfinite(values)]

    losses, accuracies = finite_values("loss"), finite_values("val_accuracy")
    study_best_loss = float(losses.min()) if losses.size else NAN
    target_accuracy = thresholds.target_fraction * float(accuracies.max()) if accuracies.size else NAN

    initial_losses = _floats(runs["initial_loss"])
    rows = [
        diagnose_history(
            history,
            status=str(status),
            initial_loss=float(initial),
            study_best_loss=study_best_loss,
            target_accuracy=target_accuracy,
            thresholds=thresholds,
        )
        for history, status, initial in zip(histories, runs["status"], initial_losses)
    ]
    mark_collapses(runs, rows, thresholds)
    diagnosis = pd.DataFrame(rows, index=runs.index, columns=DIAGNOSIS_COLUMNS)
    diagnosis = diagnosis.astype({column: dtype for column, dtype in DIAGNOSIS_DTYPES if dtype != STR})
    kept = runs.drop(columns=[*DIAGNOSIS_COLUMNS, "target_accuracy"], errors="ignore")
    result = pd.concat([kept, diagnosis], axis=1)
    result["target_accuracy"] = target_accuracy
    return result


def fit_of_cell(labels: Iterable[str]) -> str:
    """One label for several seeds: the most frequent, ties broken towards the worse label.

    Worse means earlier in ``FIT_LABELS`` (diverged worst): when seeds disagree evenly, the
    report should not promise more than half of them delivered.

    Raises:
        ValueError: No labels, or a label outside ``FIT_LABELS``.
    """
    counts = Counter(labels)
    if not counts:
        raise ValueError("fit_of_cell needs at least one label")
    unknown = [label for label in counts if label not in FIT_LABELS]
    if unknown:
        raise ValueError(f"unknown fit label(s) {unknown}; valid: {list(FIT_LABELS)}")
    return max(FIT_LABELS, key=lambda label: (counts[label], -FIT_LABELS.index(label)))
