"""The study in TensorBoard: every run's curves and one HParams table, exported from the histories.

    python -m pipeline.report.tensorboard --runs results/default/runs.csv [more runs tables] \\
        --out results/default/tensorboard    # run folders are named relative to --out's parent
    tensorboard --logdir results/default/tensorboard

``study.tensorboard=true`` makes this a job of the workflow (rule ``tensorboard``); it reads what
training already wrote, so it costs training nothing, and switching it on for a finished study
retrains nothing. For each row of the runs tables given (the grid's ``runs.csv``, the
confirmation's and each batch size's) it reads the run's ``history.csv`` and writes, under
``<out>/<run folder relative to the study>/``:

- per epoch (TensorBoard's step): ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` and
  ``learning_rate``, the rate actually in force at the epoch's end (the history's ``lr``); the
  events' wall times are the run's own cumulative training seconds, so TensorBoard's "relative"
  axis is training time;
- the run's HParams session: optimizer, schedule, lr, seed, batch size, which part of the study it
  belongs to (grid, confirm, batch) and its outcome as categories (status, and the fit label where
  the study was diagnosed), with ``best_val_loss`` as a metric (written at its best epoch).

``<out>`` itself holds the experiment's HParams configuration (every hyperparameter with the
values that occur, the metrics), so TensorBoard's HParams dashboard shows the whole grid side by
side: sort by ``best_val_loss``, filter a schedule, read each run's curves.

The events are written with TensorBoard's own writer and protocol buffers (``tensorboard``
package, the extra ``lrstudy[tensorboard]``). That package imports TensorFlow when TensorFlow is
installed, so the export is a job of its own; the report job never imports this module.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import pandas as pd

from pipeline.invocation import native_stderr_silenced, verbose
from pipeline.tables import HISTORY, RUNS

#: The per-epoch scalars: TensorBoard tag -> history.csv column.
SCALARS: Dict[str, str] = {
    "loss": "loss",
    "accuracy": "accuracy",
    "val_loss": "val_loss",
    "val_accuracy": "val_accuracy",
    "learning_rate": "lr",
}
#: The metric of the HParams table (a scalar written once per run, at its best epoch).
BEST_METRIC = "best_val_loss"
#: The HParams table's columns: numbers, and categories (their values are listed in the config).
NUMERIC_HPARAMS = ("lr", "seed", "batch_size")
CATEGORY_HPARAMS = ("optimizer", "schedule", "part", "status", "fit")


def _part(run_dir: Path, study_dir: Path) -> str:
    """Which part of the study a run folder belongs to: grid, confirm or batch."""
    first = run_dir.relative_to(study_dir).parts[0]
    return first if first in ("confirm", "batch") else "grid"


def session_rows(tables: Sequence[Path], study_dir: Path) -> List[Dict[str, Any]]:
    """One row per run of the runs tables: its run folder, its path under the export, its
    hyperparameters and outcome."""
    import yaml

    rows = []
    for table in tables:
        runs = RUNS.read(table)
        RUNS.check(runs, ["optimizer", "schedule", "lr", "seed", "status", "best_val_loss", "best_epoch", "run_dir"], what=str(table))
        for run in runs.to_dict("records"):
            folder = Path(run["run_dir"])
            config = yaml.safe_load((folder / "config.yaml").read_text())
            rows.append(
                {
                    "run_dir": folder,
                    "path": folder.relative_to(study_dir),
                    "optimizer": run["optimizer"],
                    "schedule": run["schedule"],
                    "lr": float(run["lr"]),
                    "seed": int(run["seed"]),
                    "batch_size": int(config["training"]["batch_size"]),
                    "part": _part(folder, study_dir),
                    "status": run["status"],
                    "fit": str(run.get("fit", "") or "") or "undiagnosed",
                    "best_val_loss": float(run["best_val_loss"]),
                    "best_epoch": None if pd.isna(run["best_epoch"]) else int(run["best_epoch"]),
                }
            )
    return rows


def _scalar_event(tag: str, value: float, step: int, wall_time: float) -> Any:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary

    return Event(step=step, wall_time=wall_time, summary=Summary(value=[Summary.Value(tag=tag, simple_value=value)]))


def write_run(row: Mapping[str, Any], out: Path) -> Path:
    """One run's events (its curves and its HParams session); returns its log folder."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.plugins.hparams import summary_v2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    history = HISTORY.read(Path(row["run_dir"]) / "history.csv")
    logdir = out / row["path"]
    writer = EventFileWriter(str(logdir))
    try:
        hparams = {name: row[name] for name in (*NUMERIC_HPARAMS, *CATEGORY_HPARAMS)}
        writer.add_event(Event(step=0, wall_time=0.0, summary=summary_v2.hparams_pb(hparams, trial_id=str(row["path"]), start_time_secs=0)))
        elapsed = history["seconds"].fillna(0.0).cumsum()
        for (_, epoch), wall_time in zip(history.iterrows(), elapsed):
            for tag, column in SCALARS.items():
                writer.add_event(_scalar_event(tag, float(epoch[column]), int(epoch["epoch"]), float(wall_time)))
        if row["best_epoch"] is not None and math.isfinite(row["best_val_loss"]):
            when = float(elapsed.iloc[row["best_epoch"] - 1]) if row["best_epoch"] <= len(elapsed) else 0.0
            writer.add_event(_scalar_event(BEST_METRIC, row["best_val_loss"], row["best_epoch"], when))
    finally:
        writer.close()
    return logdir


def write_experiment(rows: Sequence[Mapping[str, Any]], out: Path) -> None:
    """The HParams configuration at the export's root: each hyperparameter and the metrics."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.plugins.hparams import api as hp
    from tensorboard.plugins.hparams import summary_v2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    hparams = [hp.HParam(name, hp.Discrete(sorted({row[name] for row in rows}))) for name in (*NUMERIC_HPARAMS, *CATEGORY_HPARAMS)]
    metrics = [
        hp.Metric(BEST_METRIC, display_name="best val_loss"),
        hp.Metric("val_loss", display_name="val_loss (last epoch)"),
        hp.Metric("val_accuracy", display_name="val_accuracy (last epoch)"),
    ]
    writer = EventFileWriter(str(out))
    try:
        writer.add_event(Event(step=0, wall_time=0.0, summary=summary_v2.hparams_config_pb(hparams, metrics, time_created_secs=0)))
    finally:
        writer.close()


def export(tables: Sequence[Path], study_dir: Path, out: Path) -> int:
    """Write the TensorBoard export of the runs in ``tables`` to ``out`` (replaced whole);
    returns the number of runs."""
    rows = session_rows(tables, study_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for row in rows:
        write_run(row, out)
    if rows:
        write_experiment(rows, out)
    return len(rows)


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export a study's runs for TensorBoard (curves and an HParams table).")
    parser.add_argument("--runs", nargs="+", required=True, type=Path, help="runs tables (runs.csv of the grid, confirm/, batch/b<size>/)")
    parser.add_argument("--study-dir", type=Path, default=None, help="the study's folder, to which run paths are relative (default: --out's parent)")
    parser.add_argument("--out", required=True, type=Path, help="the export's folder (replaced whole)")
    args = parser.parse_args(argv)
    # The tensorboard package imports TensorFlow when it can: without its C++ start-up lines.
    if not verbose():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_stderr_silenced(not verbose()):
        import tensorboard.plugins.hparams.api  # noqa: F401
    count = export(args.runs, args.study_dir or args.out.parent, args.out)
    print(f"{count} runs exported to {args.out}: tensorboard --logdir {args.out}")


if __name__ == "__main__":
    main()
