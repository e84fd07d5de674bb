"""The warnings that matter in a study, each with the override that addresses it.

Pure functions over ``runs.csv``, ``best.csv`` and the resolved study (``config.yaml``); no
HTML here, so the same advice can be printed, tested or rendered by :mod:`pipeline.report`.

Kinds, per optimizer × schedule (thresholds from ``diagnosis`` in the study, see
:class:`pipeline.config.schema.DiagnosisConfig`):

- ``edge``: the recommended rate is the grid's smallest or largest rate, so the optimum may
  lie outside the grid: widen it by a decade that way (the override keeps the grid's spacing,
  so the runs already made are reused).
- ``diverged``: more than ``diagnosis.diverged_warning`` of the runs diverged.
- ``early_best``: the mean best epoch at the recommended rate falls within the first
  ``diagnosis.early_best`` share of the epochs: the study trains longer than it needs to.
- ``late_best``: it falls after the ``diagnosis.late_best`` share: still improving, train longer.
- ``seeds_disagree``: the seeds' spread (std of best val_loss) at the recommended rate exceeds
  the gap between the two best rates' means: the winner is not distinguishable from the
  runner-up on the grid's seeds. Where the study confirmed the cell on fresh seeds
  (:mod:`pipeline.analysis.confirm`), the warning gives that verdict; otherwise it asks for
  more seeds.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

import pandas as pd

from pipeline.analysis.aggregate import rate_table
from pipeline.analysis.confirm import confirm_row
from pipeline.config.rates import override_rate
from pipeline.config.schema import DiagnosisConfig
from pipeline.tables import BEST, RUNS, RunStatus, Verdict
from pipeline.values import is_finite

#: The warning kinds, in the order they are listed for one optimizer × schedule.
KINDS: tuple[str, ...] = ("edge", "diverged", "early_best", "late_best", "seeds_disagree")

#: Columns of :func:`diverged_by_schedule` (a table the report shows, not a study file).
DIVERGED_COLUMNS: tuple[str, ...] = ("optimizer", "schedule", "runs", "diverged", "diverged_fraction", "lowest_diverging_lr")


@dataclass(frozen=True)
class StudyWarning:
    """One piece of advice about one optimizer × schedule of a study.

    Attributes:
        kind: One of :data:`KINDS`.
        optimizer: The optimizer option's name.
        schedule: The schedule option's name.
        message: One sentence, starting with "optimizer × schedule:", ending with the override
            that addresses it.
    """

    kind: str
    optimizer: str
    schedule: str
    message: str


def _section(study: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = study.get(key)
    return value if isinstance(value, Mapping) else {}


def diagnosis_settings(study: Mapping[str, Any]) -> DiagnosisConfig:
    """The study's diagnosis thresholds; defaults for keys it lacks (older config.yaml files)."""
    given = _section(study, "diagnosis")
    known = {item.name for item in dataclasses.fields(DiagnosisConfig)}
    chosen = {key: value for key, value in given.items() if key in known and value is not None}
    # YAML may spell a threshold as an integer (``late_best: 1``); the comparisons want floats.
    return DiagnosisConfig(**{key: float(value) if isinstance(value, (int, float)) else value for key, value in chosen.items()})


def _is_diverged(statuses: pd.Series) -> pd.Series:
    return statuses == RunStatus.DIVERGED


def diverged_by_schedule(runs: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer × schedule: runs, diverged runs, their share and the lowest rate that diverged.

    ``lowest_diverging_lr`` is NaN where no run diverged.
    """
    rows: List[Dict[str, Any]] = []
    for (optimizer, schedule), group in runs.groupby(["optimizer", "schedule"], sort=True):
        diverged = _is_diverged(group["status"])
        rates = group.loc[diverged, "lr"]
        rows.append(
            {
                "optimizer": optimizer,
                "schedule": schedule,
                "runs": int(len(group)),
                "diverged": int(diverged.sum()),
                "diverged_fraction": float(diverged.mean()) if len(group) else math.nan,
                "lowest_diverging_lr": float(rates.min()) if len(rates) else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=list(DIVERGED_COLUMNS))


# --------------------------------------------------------------------------------------
# The kinds, one function each (each returns the message, or None when silent)
# --------------------------------------------------------------------------------------


def _widen_grid(grid: Mapping[str, Any], rates: Sequence[float], lr: float, direction: str) -> str:
    """The override that widens the grid by a decade past ``lr`` (``direction``: low, high, both).

    For a min/max/points grid the points grow by the number of grid steps in a decade, so the
    spacing stays the same and, where a decade is a whole number of steps, every rate already
    run stays on the grid (its runs are reused instead of retrained).
    """
    below, above = override_rate(lr / 10), override_rate(lr * 10)
    new = {"low": [below], "high": [above], "both": [below, above]}[direction]
    if grid.get("mode") == "finder":
        # A finder-centred grid is symmetric about the suggestion: widen both sides by a
        # decade, with as many more points as keep the spacing.
        decades = float(grid.get("finder_decades") or 1.0) + 1.0
        points = int(grid.get("points") or 1)
        step = 2 * (decades - 1.0) / (points - 1) if points > 1 else 0.0
        per_decade = max(1, round(1 / step)) if step > 0 else 1
        return f"study.grid.finder_decades={decades:g} study.grid.points={points + 2 * per_decade}"
    values = grid.get("values")
    if isinstance(values, Sequence) and not isinstance(values, str) and len(values) > 0:
        merged = sorted({float(value) for value in values} | {float(rate) for rate in new})
        added = " and ".join(new)
        return f"add {added} to study.grid.values: study.grid.values=[{','.join(override_rate(value) for value in merged)}]"
    parts = []
    if direction in ("low", "both"):
        parts.append(f"study.grid.min={below}")
    if direction in ("high", "both"):
        parts.append(f"study.grid.max={above}")
    points = grid.get("points")
    if is_finite(points) and int(points) >= 1:
        points = int(points)
        finite_rates = sorted(float(rate) for rate in rates if is_finite(rate) and float(rate) > 0)
        if points > 1 and len(finite_rates) > 1:
            step = (math.log10(finite_rates[-1]) - math.log10(finite_rates[0])) / (len(finite_rates) - 1)
            per_decade = max(1, round(1 / step)) if step > 0 else 1
        else:
            per_decade = 1  # one rate: a decade each way is one more point each way
        parts.append(f"study.grid.points={points + per_decade * len(new)}")
    return " ".join(parts)


def _edge_message(row: pd.Series, rates: Sequence[float], grid: Mapping[str, Any]) -> Optional[str]:
    if not row["at_edge"] or not is_finite(row["lr"]):
        return None
    lr = float(row["lr"])
    side = row["edge"]
    if len(set(rates)) == 1:
        return f"best rate {override_rate(lr)} is the grid's only rate; widen it both ways by a decade: {_widen_grid(grid, rates, lr, 'both')}"
    if side == "low":
        return f"best rate {override_rate(lr)} is the grid's smallest; widen it downwards by a decade: {_widen_grid(grid, rates, lr, 'low')}"
    if side == "high":
        return f"best rate {override_rate(lr)} is the grid's largest; widen it upwards by a decade: {_widen_grid(grid, rates, lr, 'high')}"
    return f"best rate {override_rate(lr)} is on the grid's edge; widen the grid past it"


def _diverged_message(group: pd.DataFrame, threshold: float) -> Optional[str]:
    diverged = _is_diverged(group["status"])
    if not len(group) or not diverged.mean() > threshold:
        return None
    per_rate = diverged.groupby(group["lr"]).sum().sort_index()
    hit = per_rate[per_rate > 0]
    lowest = float(hit.index[0])
    above = per_rate[per_rate.index >= lowest]
    if bool((above > 0).all()):
        where = f"at every rate from {override_rate(lowest)} upwards"
    else:
        where = "at rates " + ", ".join(override_rate(rate) for rate in hit.index) + f" (from {override_rate(lowest)} up, not at every rate)"
    return (
        f"{diverged.mean():.0%} of runs diverged ({int(diverged.sum())} of {len(group)}), {where} "
        f"(more than the {threshold:.0%} warning threshold, diagnosis.diverged_warning)"
    )


def _best_epoch_mean(row: pd.Series, group: pd.DataFrame) -> Optional[float]:
    """The mean best epoch at the recommended rate: best.csv's, else from the runs."""
    if is_finite(row.get("best_epoch_mean")):
        return float(row["best_epoch_mean"])
    if "best_epoch" not in group.columns or not is_finite(row.get("lr")):
        return None
    at_rate = group.loc[group["lr"] == float(row["lr"]), "best_epoch"].dropna()
    return float(at_rate.mean()) if len(at_rate) else None


def _epoch_message(row: pd.Series, group: pd.DataFrame, epochs: Any, diagnosis: DiagnosisConfig) -> Optional[tuple[str, str]]:
    if not is_finite(epochs) or int(epochs) < 1 or not is_finite(row.get("lr")):
        return None
    at_rate = group[group["lr"] == float(row["lr"])]
    if _is_diverged(at_rate["status"]).any():
        # The best epoch of a diverging run marks where it blew up, not where learning stopped:
        # it says nothing about the number of epochs (the diverged warning covers it).
        return None
    best_epoch = _best_epoch_mean(row, group)
    if best_epoch is None:
        return None
    epochs = int(epochs)
    share = best_epoch / epochs
    shown = f"{best_epoch:.3g}"
    if share < diagnosis.early_best:
        suggested = max(1, round(3 * best_epoch))
        return (
            "early_best",
            f"the best epoch (mean {shown} of {epochs}) comes within the first {diagnosis.early_best:.0%} of training: "
            f"more epochs than needed; about three times the best epoch is enough: study.epochs={suggested}",
        )
    if share > diagnosis.late_best:
        return (
            "late_best",
            f"the best epoch (mean {shown} of {epochs}) comes after {diagnosis.late_best:.0%} of training: "
            f"still improving; train longer: study.epochs={2 * epochs}",
        )
    return None


def _more_seeds(seeds: Any, count: int) -> str:
    """Twice as many seeds as now, the current ones kept (their runs are reused)."""
    current = [int(seed) for seed in seeds] if isinstance(seeds, Sequence) and not isinstance(seeds, str) else []
    current = current or list(range(max(1, count)))
    extra, candidate = [], max(current) + 1
    while len(extra) < len(current):
        extra.append(candidate)
        candidate += 1
    return "[" + ",".join(str(seed) for seed in [*current, *extra]) + "]"


def _seeds_message(row: pd.Series, group: pd.DataFrame, seeds: Any, confirmed: Optional[pd.Series] = None) -> Optional[str]:
    # The ranking of best.csv; rates without a finite mean (tier 2) cannot be compared.
    ranked = rate_table(group)
    ranked = ranked[ranked["tier"] < 2]
    if len(ranked) < 2 or int(ranked["seeds"].iloc[0]) < 2:
        return None  # one rate has no runner-up; one seed has no spread
    winner, runner = ranked.iloc[0], ranked.iloc[1]
    if int(runner["diverged"]) > 0 and int(winner["diverged"]) == 0:
        return None  # the runner-up diverged on some seed: clearly worse, whatever the spread
    std = float(row["best_val_loss_std"]) if is_finite(row.get("best_val_loss_std")) else float(winner["best_val_loss_std"])
    gap = float(runner["best_val_loss_mean"]) - float(winner["best_val_loss_mean"])
    if not std > gap:
        return None
    text = (
        f"the seeds disagree more than the top two rates differ: best val_loss std {std:.3g} over "
        f"{int(winner['seeds'])} seeds at {override_rate(ranked.index[0])} vs a gap of {gap:.3g} to the runner-up "
        f"{override_rate(ranked.index[1])}; the winner is not distinguishable from it on the grid's seeds"
    )
    if confirmed is not None and str(confirmed["verdict"]) in (Verdict.CONFIRMED, Verdict.TIE, Verdict.OVERTURNED):
        return (
            f"{text}; the confirmation on {int(confirmed['seeds'])} fresh seeds settles it: {confirmed['verdict']} "
            f"(margin {float(confirmed['margin']):.3g}, 95% interval {float(confirmed['margin_low']):.3g} to "
            f"{float(confirmed['margin_high']):.3g}; see Confirmation on fresh seeds)"
        )
    return f"{text}; add seeds: study.seeds={_more_seeds(seeds, int(winner['seeds']))}"


def study_warnings(
    runs: pd.DataFrame, best: pd.DataFrame, study: Mapping[str, Any], confirm: Optional[pd.DataFrame] = None
) -> List[StudyWarning]:
    """The warnings of a study, per optimizer × schedule in name order, kinds in :data:`KINDS` order.

    Args:
        runs: ``runs.csv``: optimizer, schedule, lr, seed, status, best_val_loss (and
            best_epoch, used when ``best`` lacks ``best_epoch_mean``).
        best: ``best.csv``: optimizer, schedule, lr, best_val_loss_std, at_edge, edge (and
            best_epoch_mean).
        study: The resolved study (``config.yaml``); reads ``study.epochs``, ``study.seeds``,
            ``study.grid`` and ``diagnosis`` (defaults where absent).
        confirm: The confirmation on fresh seeds (``confirm.csv``), if the study made one: a
            ``seeds_disagree`` warning of a confirmed cell then gives its verdict instead of
            asking for more seeds.

    Returns:
        The warnings; empty when the study gives no reason for any.
    """
    diagnosis = diagnosis_settings(study)
    settings = _section(study, "study")
    grid = _section(settings, "grid")
    RUNS.check(runs, ["optimizer", "schedule", "lr", "seed", "status", "best_val_loss"])
    BEST.check(best, ["optimizer", "schedule", "lr", "best_val_loss_std", "at_edge", "edge"])
    found: List[StudyWarning] = []
    best = best.sort_values(["optimizer", "schedule"], kind="stable")
    for _, row in best.iterrows():
        optimizer, schedule = str(row["optimizer"]), str(row["schedule"])
        group = runs[(runs["optimizer"] == optimizer) & (runs["schedule"] == schedule)]
        rates = sorted(float(rate) for rate in group["lr"].unique()) if len(group) else [float(row["lr"])]
        # Grid rates come from the study where recorded (a rate whose runs are missing is still on the grid).
        if isinstance(study.get("rates"), Sequence) and study.get("rates"):
            rates = sorted({*rates, *(float(rate) for rate in study["rates"])})
        messages: List[tuple[str, Optional[str]]] = [
            ("edge", _edge_message(row, rates, grid)),
            ("diverged", _diverged_message(group, diagnosis.diverged_warning) if len(group) else None),
        ]
        epoch = _epoch_message(row, group, settings.get("epochs"), diagnosis) if len(group) else None
        if epoch is not None:
            messages.append(epoch)
        confirmed = confirm_row(confirm, optimizer, schedule)
        messages.append(("seeds_disagree", _seeds_message(row, group, settings.get("seeds"), confirmed) if len(group) else None))
        for kind, message in messages:
            if message is not None:
                found.append(StudyWarning(kind, optimizer, schedule, f"{optimizer} × {schedule}: {message}"))
    return found
