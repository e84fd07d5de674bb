"""Hyperparameter searches of the rate with Optuna, run as Snakemake jobs sharing one study:
the worker loop and the command line (``python -m pipeline.search worker|summary``).

A study's ``hpo`` settings define one *search* per sampler × pruner. Each search is one
Optuna study in its own journal file, ``results/<study>/hpo/<search>/journal.log``, shared
by ``hpo.workers`` parallel worker jobs (:func:`run_worker`). The parts, by meaning:

- :mod:`pipeline.search.spec`: what a search is (:func:`~pipeline.search.spec.searches`, the job
  spec, its hash, the sampler and pruner);
- :mod:`pipeline.search.storage`: the journal, the budget lock, heartbeats and the reaping of
  stale trials;
- :mod:`pipeline.search.trial`: trials (sampling, training with the pruner asked after every
  epoch, their state and value); with the population engine a worker asks ``hpo.batch`` trials
  at once and trains them as one population per optimizer (ask-and-tell);
- :mod:`pipeline.search.summary`: the search's ``trials.csv``.

The budget
    A search holds exactly ``hpo.trials`` trials that count. Counted are trials COMPLETE,
    PRUNED and RUNNING (a RUNNING trial is being trained by a live worker); FAIL trials are not
    (a training error or a reaped interrupted trial), nor are WAITING ones (enqueued by hand,
    they are taken by the next ``ask`` rather than adding a trial). A worker counts and asks
    under one lock (``journal.log.budget.lock``), asking at most what the budget has left, so
    workers together never create more than the budget: an uninterrupted search's journal
    holds exactly ``trials`` trials. After an interruption it holds ``trials`` counted trials
    plus the FAIL ones. A rerun of a killed worker job reaps its stale trials and continues up
    to the budget at once; a rerun of a finished search trains nothing.

Failures
    An exception in training is told FAIL and the worker goes on; a search whose errors reach
    the budget stops with :class:`~pipeline.search.storage.SearchError` instead of looping on a
    systematic error.

This module imports neither TensorFlow nor Optuna at import time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from pipeline.training.device import add_device_arguments
from pipeline.search.spec import make_sampler, search_dir, worker_seed
from pipeline.search.storage import (
    BudgetLock,
    Heartbeat,
    SearchError,
    budget_counts,
    fail_trial,
    journal_storage,
    open_study,
    reap_stale_trials,
)
from pipeline.search.summary import summarise_search
from pipeline.search.trial import train_trials
from pipeline.io import write_atomic, write_json_atomic
from pipeline.tables import TRIALS
from pipeline.tables import TrialState as Outcome


# --------------------------------------------------------------------------------------
# The worker
# --------------------------------------------------------------------------------------


def run_worker(
    spec: Mapping[str, Any], data_file: Path, worker: int, threads: Optional[int] = None, gpus: int = 0
) -> List[Dict[str, Any]]:
    """Ask, train and tell trials of one search until its budget is full.

    Each round asks ``spec["batch"]`` trials at once (never more than the budget has left) and
    trains them together (:func:`pipeline.search.trial.train_trials`: one population per
    optimizer with the population engine). Returns one entry per trial this worker ran: trial
    number, state and value. TensorFlow is configured (before its import) only when a first
    trial needs training, so a rerun of a finished search takes a second, not TensorFlow's
    start-up.
    """
    from pipeline.training.data import arrays_digest, load_npz

    arrays = load_npz(data_file)
    digest = arrays_digest(arrays)
    journal = Path(spec["journal"])
    token = f"w{worker}-{uuid.uuid4().hex[:12]}"
    heartbeats = search_dir(spec) / ".heartbeat"
    storage = journal_storage(journal)
    study = open_study(spec, worker, digest, storage)
    # Reseed from the finished count (see worker_seed): a resumed worker must not replay its
    # predecessor's proposals.
    finished = sum(1 for trial in study.get_trials(deepcopy=False) if trial.state.is_finished())
    study.sampler = make_sampler(spec["sampler"], worker_seed(spec["seed"], worker, finished))
    lock = BudgetLock(journal)
    device: Optional[str] = None
    ran: List[Dict[str, Any]] = []

    with Heartbeat(heartbeats / token):
        while True:
            with lock:
                reaped = reap_stale_trials(study, storage, worker, token, heartbeats)
                if reaped:
                    print(f"{spec['search']}: reaped stale trial(s) {reaped} (told FAIL)", flush=True)
                counts = budget_counts(study)
                if counts["counted"] >= spec["trials"]:
                    break
                if counts["errors"] >= spec["trials"]:
                    raise SearchError(
                        f"search {spec['search']!r}: {counts['errors']} trials failed with errors (the budget is "
                        f"{spec['trials']}); giving up. See the fail_reason of the FAIL trials in {journal}"
                    )
                # Ask inside the lock: the count and the new trials are one step, so workers
                # together never create more trials than the budget.
                trials = [study.ask() for _ in range(min(int(spec.get("batch", 1)), spec["trials"] - counts["counted"]))]
                for trial in trials:
                    trial.set_user_attr("worker", int(worker))
                    trial.set_user_attr("token", token)
                    # The trials asked (and trained) together: the first one's number.
                    trial.set_user_attr("batch", trials[0].number)
            started = time.perf_counter()
            try:
                if device is None:
                    from pipeline.training.device import configure_tensorflow

                    device = configure_tensorflow(threads, spec["deterministic"], gpus=gpus)
                results = train_trials(trials, spec, arrays, digest, device, worker)
            except BaseException:
                # Interrupted (Ctrl-C, SystemExit): free the trials now rather than via reaping.
                for trial in trials:
                    fail_trial(study, storage, trial.number, "interrupted")
                raise
            seconds = time.perf_counter() - started
            for trial, result in zip(trials, results):
                ran.append(_tell(study, storage, spec, trial, result, seconds / len(trials)))
    return ran


def _tell(
    study: Any, storage: Any, spec: Mapping[str, Any], trial: Any, result: Any, seconds: float
) -> Dict[str, Any]:
    """Tell the journal a trained trial's outcome (or its failure); the worker's entry for it."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    number = trial.number
    if isinstance(result, BaseException):  # a failed trial is recorded; the search goes on
        traceback.print_exception(result, file=sys.stderr)
        fail_trial(study, storage, number, f"error: {type(result).__name__}: {result}")
        print(f"{spec['search']} trial {number}: fail ({type(result).__name__}: {result})", flush=True)
        return {"trial": number, "state": "fail", "value": None}
    params, summary, state, value = result
    try:
        study.tell(trial, value, state=TrialState.COMPLETE if state == Outcome.COMPLETE else TrialState.PRUNED)
    except UpdateFinishedTrialError:
        # Reaped as stale by another worker (a heartbeat that looked dead): the journal keeps
        # FAIL, the run folder its result; the budget fills with another trial.
        print(f"{spec['search']} trial {number}: was reaped while training; its result is not told")
        state, value = "fail", None
    print(
        f"{spec['search']} trial {number}: {state} ({summary['status']}), lr {params['lr']:.4g}, "
        f"value {value}, {summary['epochs_run']} epochs, {seconds:.1f} s (its share of its batch)",
        flush=True,
    )
    return {"trial": number, "state": state, "value": value}



# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m pipeline.search worker|summary --spec '<json>' ...`` (the Snakemake jobs)."""
    parser = argparse.ArgumentParser(description="Optuna searches of the learning rate, as Snakemake jobs.")
    commands = parser.add_subparsers(dest="command", required=True)
    worker_command = commands.add_parser("worker", help="train trials of one search until its budget is full")
    worker_command.add_argument("--spec", required=True, help="the search's job spec as JSON (see hpo_job_spec)")
    worker_command.add_argument("--data", required=True, type=Path, help="the study's dataset .npz")
    worker_command.add_argument("--worker", required=True, type=int, help="this worker's index (0 .. workers-1)")
    add_device_arguments(worker_command)
    worker_command.add_argument("--done", required=True, type=Path, help="output: marker listing the trials this worker ran")
    summary_command = commands.add_parser("summary", help="write the search's trials.csv")
    summary_command.add_argument("--spec", required=True, help="the search's job spec as JSON")
    summary_command.add_argument("--out", required=True, type=Path, help="output: trials.csv")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)
    if args.command == "worker":
        try:
            ran = run_worker(spec, args.data, args.worker, args.threads, args.gpus)
        except SearchError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        write_json_atomic(
            args.done,
            {
                "search": spec["search"],
                "worker": args.worker,
                "trials": [entry["trial"] for entry in ran],
                "states": {str(entry["trial"]): entry["state"] for entry in ran},
            },
        )
    else:
        frame = summarise_search(spec)
        write_atomic(args.out, lambda temporary: TRIALS.write(frame, temporary))
        print(f"{spec['search']}: {len(frame)} trials -> {args.out}")


if __name__ == "__main__":
    main()
