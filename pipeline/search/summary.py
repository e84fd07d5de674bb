"""A search's trials as one table (``hpo/<search>/trials.csv``): states from the journal,
metrics from each trial's run folder."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional

from pipeline.search.spec import trial_dir
from pipeline.search.storage import journal_storage
from pipeline.tables import NULLABLE_INT, TRIALS, TrialState

if TYPE_CHECKING:  # annotations only
    import pandas as pd


def _iso(value: Optional[datetime]) -> Optional[str]:
    return value.isoformat() if value is not None else None


def summarise_search(spec: Mapping[str, Any]) -> "pd.DataFrame":
    """One row per trial of the search (:data:`pipeline.tables.TRIALS`), by trial number.

    States come from the journal; metrics (best_val_loss, status, ...) from each trial's
    summary.json, NaN where a trial has none (failed or still running).
    """
    import optuna
    import pandas as pd

    journal = Path(spec["journal"])
    if not journal.is_file():
        return pd.DataFrame(columns=TRIALS.columns)
    storage = journal_storage(journal)
    names = [summary.study_name for summary in storage.get_all_studies()]
    if spec["search"] not in names:
        return pd.DataFrame(columns=TRIALS.columns)
    study = optuna.load_study(study_name=spec["search"], storage=storage)
    single_optimizer = next(iter(spec["optimizers"])) if len(spec["optimizers"]) == 1 else None
    single_schedule = next(iter(spec["schedules"])) if len(spec["schedules"]) == 1 else None
    rows = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        folder = trial_dir(spec, trial.number)
        summary: Dict[str, Any] = {}
        if (folder / "summary.json").is_file():
            summary = json.loads((folder / "summary.json").read_text())
        schedule = trial.params.get("schedule", single_schedule)
        warmup = trial.params.get("warmup_fraction")
        if warmup is None and schedule in spec["schedules"]:
            warmup = spec["schedules"][schedule].get("warmup_fraction")
        rows.append(
            {
                "search": spec["search"],
                "sampler": spec["sampler"],
                "pruner": spec["pruner"],
                "trial": trial.number,
                "state": TrialState(trial.state.name.lower()),
                "lr": trial.params.get("lr", math.nan),
                "optimizer": trial.params.get("optimizer", single_optimizer),
                "schedule": schedule,
                "warmup_fraction": math.nan if warmup is None else warmup,
                "value": math.nan if trial.value is None else trial.value,
                "best_val_loss": summary.get("best_val_loss", math.nan),
                "best_val_accuracy": summary.get("best_val_accuracy", math.nan),
                "epochs_run": summary.get("epochs_run"),
                "seconds": summary.get("seconds", math.nan),
                "status": summary.get("status"),
                "run_dir": str(folder),
                "datetime_start": _iso(trial.datetime_start),
                "datetime_complete": _iso(trial.datetime_complete),
                "worker": trial.user_attrs.get("worker"),
                "fail_reason": trial.user_attrs.get("fail_reason"),
            }
        )
    frame = pd.DataFrame(rows, columns=TRIALS.columns)
    # Integers a trial may lack (a failed or running trial has no epochs, a trial no worker):
    # Int64, written without a decimal point.
    return frame.astype({column: dtype for column, dtype in TRIALS.dtypes.items() if dtype == NULLABLE_INT})
