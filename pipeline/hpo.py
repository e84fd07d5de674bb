"""Hyperparameter searches of the rate with Optuna, run as Snakemake jobs sharing one study.

A study's ``hpo`` settings define one *search* per sampler × pruner (:func:`searches`). Each
search is one Optuna study in its own journal file,
``results/<study>/hpo/<search>/journal.log``, shared by ``hpo.workers`` parallel worker jobs
(:func:`run_worker`). The journal (``JournalStorage`` over ``JournalFileBackend``) is the
storage Optuna supports on NFS and other shared file systems without working ``fcntl``
locks, which is what SLURM clusters offer: workers on different nodes share it as a file.

Every trial is one training run, trained by :func:`pipeline.train.train_run` into
``hpo/<search>/trial<NNN>/`` (history.csv, config.yaml, summary.json with the trial's
number, state, params and value), on the study's first seed.

The budget
    A search holds exactly ``hpo.trials`` trials that count. Counted are trials COMPLETE,
    PRUNED and RUNNING (a RUNNING trial is being trained by a live worker); FAIL trials are not
    (a training error or a reaped interrupted trial), nor are WAITING ones (enqueued by hand,
    they are taken by the next ``ask`` rather than adding a trial). A worker counts and asks
    under one lock (``journal.log.budget.lock``), so workers together never create more than
    the budget: an uninterrupted search's journal holds exactly ``trials`` trials. After an
    interruption it holds ``trials`` counted trials plus the FAIL ones.

Interrupted searches
    A worker killed mid-trial leaves that trial RUNNING. Each worker keeps a heartbeat file
    (``hpo/<search>/.heartbeat/<token>``, touched every :data:`HEARTBEAT_SECONDS`) and stamps
    the trials it asks with its worker index and token. Under the lock, before counting, a
    RUNNING trial is reaped (told FAIL, ``fail_reason`` "stale: ...") when it belongs to the
    same worker index under another token (Snakemake never runs two instances of one job at
    once, so that owner is dead), or when its owner's heartbeat is missing or older than
    :data:`STALE_AFTER_SECONDS`. A rerun of the killed job thus continues up to the budget
    at once; a rerun of a finished search trains nothing.

Values
    A trial's value is its best validation loss (minimised). A diverged run is a result, not
    an error: COMPLETE with the *worst value*, ``divergence_factor × initial_loss`` (the loss
    at which the run was declared diverged; see :func:`worst_value`). A pruned run is told
    PRUNED without a value (Optuna then records the last reported loss). An exception in
    training is told FAIL and the worker goes on; a search whose errors reach the budget
    stops with :class:`HpoError` instead of looping on a systematic error.

This module imports neither TensorFlow nor Optuna at import time: the Snakefile imports it
for :func:`searches` and :func:`hpo_job_spec`.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import sys
import threading
import time
import traceback
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from pipeline.io import write_atomic, write_json_atomic

if TYPE_CHECKING:  # annotations only: optuna and pandas are imported where they are used
    import optuna
    import pandas as pd

#: Seconds between touches of a worker's heartbeat file.
HEARTBEAT_SECONDS = 10.0
#: A RUNNING trial whose owner's heartbeat is older than this is reaped as stale. Generous on
#: purpose: NFS attribute caches (up to a minute) and clock skew between nodes both shift the
#: mtime another node sees; a wrongly reaped live trial would be lost work.
STALE_AFTER_SECONDS = 300.0
#: The worst value when a diverged run has no finite untrained loss to scale.
WORST_FALLBACK = 1e6
#: Spec keys that may change between runs of one search without invalidating its trials:
#: the budget may be raised (the search continues), the worker count changed, the results
#: folder moved.
MUTABLE_SPEC_KEYS = ("trials", "workers", "study_dir", "journal")

TRIAL_COLUMNS = [
    "search", "sampler", "pruner", "trial", "state", "lr", "optimizer", "schedule", "warmup_fraction", "value",
    "best_val_loss", "best_val_accuracy", "epochs_run", "seconds", "status", "run_dir", "datetime_start",
    "datetime_complete", "worker", "fail_reason",
]  # fmt: skip


class HpoError(RuntimeError):
    """A search that cannot go on (a changed spec over an existing journal, errors at budget)."""


# --------------------------------------------------------------------------------------
# Searches and job specs (pure Python: the Snakefile calls these)
# --------------------------------------------------------------------------------------


def search_name(sampler: str, pruner: str) -> str:
    """``tpe`` for an unpruned search, ``tpe_median`` for a pruned one."""
    return sampler if pruner == "none" else f"{sampler}_{pruner}"


def _search_parts(study: Any) -> Dict[str, Tuple[str, str]]:
    return {search_name(s, p): (s, p) for s in study.hpo.samplers for p in study.hpo.pruners}


def searches(study: Any) -> List[str]:
    """The study's searches: one per sampler × pruner of ``study.hpo`` ([] without samplers)."""
    return list(_search_parts(study))


def hpo_job_spec(study: Any, search: str) -> Dict[str, Any]:
    """Everything a worker job of ``search`` needs, as plain JSON-able data.

    ``optimizers``/``schedules`` are the categorical choices (validated options keyed by
    name): ``hpo.optimizers``/``hpo.schedules``, or the study's first option, fixed. ``base``
    is a complete run configuration on the first choices; a trial replaces its optimizer,
    schedule and rate.
    """
    parts = _search_parts(study)
    if search not in parts:
        raise ValueError(f"no search {search!r} in study {study.name!r}; its searches: {', '.join(parts) or 'none'}")
    sampler, pruner = parts[search]
    hpo = study.hpo
    optimizer_names = list(hpo.optimizers) or [next(iter(study.optimizers))]
    schedule_names = list(hpo.schedules) or [next(iter(study.schedules))]
    optimizers = {name: dict(study.optimizers[name]) for name in optimizer_names}
    schedules = {name: dict(study.schedules[name]) for name in schedule_names}
    training_seed = int(study.settings.seeds[0])
    from pipeline.config import make_run_config

    base = make_run_config(
        dataset=study.dataset,
        model=study.model,
        optimizer={"name": optimizer_names[0], **optimizers[optimizer_names[0]]},
        schedule={"name": schedule_names[0], **schedules[schedule_names[0]]},
        settings=study.settings,
        seed=training_seed,
        lr=hpo.lr_min,  # a placeholder: every trial sets its own rate
    )
    study_dir = f"results/{study.name}"
    return {
        "search": search,
        "sampler": sampler,
        "pruner": pruner,
        "trials": int(hpo.trials),
        "workers": int(hpo.workers),
        "seed": int(hpo.seed),
        "lr_min": float(hpo.lr_min),
        "lr_max": float(hpo.lr_max),
        "optimizers": optimizers,
        "schedules": schedules,
        "warmup_fraction": [float(v) for v in hpo.warmup_fraction] if hpo.warmup_fraction is not None else None,
        "training_seed": training_seed,
        "base": base,
        "study_dir": study_dir,
        "journal": f"{study_dir}/hpo/{search}/journal.log",
        "deterministic": bool(study.settings.deterministic),
    }


def search_dir(spec: Mapping[str, Any]) -> Path:
    return Path(spec["study_dir"]) / "hpo" / spec["search"]


def trial_dir(spec: Mapping[str, Any], number: int) -> Path:
    """A trial's run folder: ``<study_dir>/hpo/<search>/trial<NNN>``."""
    return search_dir(spec) / f"trial{number:03d}"


def spec_hash(spec: Mapping[str, Any]) -> str:
    """A hash of what defines a search's trials (the budget, workers and paths excluded)."""
    payload = {key: value for key, value in spec.items() if key not in MUTABLE_SPEC_KEYS}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def worker_seed(seed: int, worker: int, finished: int = 0) -> int:
    """The sampler seed of one worker process.

    Workers sharing a study must not draw from the same random stream, or parallel random
    search would propose the same rates twice. ``finished`` (finished trials when the worker
    started; 0 for a fresh search) makes a resumed worker's stream differ from its killed
    predecessor's, which would otherwise re-propose the rates already tried.
    """
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(worker), int(finished)]).generate_state(1)[0])


# --------------------------------------------------------------------------------------
# Optuna objects
# --------------------------------------------------------------------------------------


def make_sampler(name: str, seed: int) -> "optuna.samplers.BaseSampler":
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        # constant_liar: running trials count as bad guesses, so parallel workers spread out
        # instead of proposing the same promising rate (explicit: its default differs by version).
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    raise ValueError(f"unknown sampler {name!r}; valid: random, tpe")


def make_pruner(name: str, epochs: int) -> "optuna.pruners.BasePruner":
    """The pruner of a search; steps are Keras' 0-based epoch indices (Optuna's convention).

    MedianPruner's ``n_warmup_steps=1`` so never prunes on the first epoch's loss (step 0).
    """
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=int(epochs))
    raise ValueError(f"unknown pruner {name!r}; valid: none, median, successive_halving, hyperband")


def _storage(journal: Path) -> "optuna.storages.JournalStorage":
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(journal)))


class _BudgetLock:
    """The lock under which a worker reaps, counts and asks (``journal.log.budget.lock``).

    Not the backend's own append lock (``journal.log.lock``): ``study.ask`` takes that one
    inside, and Optuna's file locks are not reentrant. An O_EXCL lock file works on NFSv3+;
    one left by a killed holder is broken after Optuna's 30 s grace period.
    """

    def __init__(self, journal: Path) -> None:
        from optuna.storages.journal import JournalFileOpenLock

        self._lock = JournalFileOpenLock(f"{journal}.budget")

    def __enter__(self) -> "_BudgetLock":
        self._lock.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()


def open_study(spec: Mapping[str, Any], worker: int = 0, data_digest: Optional[str] = None) -> "optuna.Study":
    """Create or load the search's Optuna study (also how tests enqueue trials).

    The first opener records the spec's hash (and, from a worker, the data's digest) as study
    user attributes; a later opener with a different one raises :class:`HpoError`, since
    trials of another search space or other data must not fill this one's budget.
    """
    import optuna

    journal = Path(spec["journal"])
    storage = _storage(journal)
    study = optuna.create_study(
        study_name=spec["search"],
        storage=storage,
        sampler=make_sampler(spec["sampler"], worker_seed(spec["seed"], worker)),
        pruner=make_pruner(spec["pruner"], spec["base"]["training"]["epochs"]),
        direction="minimize",
        load_if_exists=True,
    )
    with _BudgetLock(journal):  # check-and-set of the signature must not race another opener
        attrs = study.user_attrs
        for key, value in (("spec_hash", spec_hash(spec)), ("data_digest", data_digest)):
            if value is None:
                continue
            if key not in attrs:
                study.set_user_attr(key, value)
            elif attrs[key] != value:
                what = "search settings" if key == "spec_hash" else "dataset"
                raise HpoError(
                    f"{journal} was made with other {what} ({key} {attrs[key]} != {value}); "
                    f"delete {journal.parent} to start search {spec['search']!r} afresh"
                )
    return study


# --------------------------------------------------------------------------------------
# One trial
# --------------------------------------------------------------------------------------


def sample_trial(
    trial: Any, spec: Mapping[str, Any], digest: Optional[str] = None
) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Sample a trial's point and build its run config; returns (params, run_config).

    ``params`` holds the effective values (also the fixed ones), warmup_fraction only for a
    schedule that has the knob.
    """
    from pipeline.compose import check_schedule

    lr = trial.suggest_float("lr", spec["lr_min"], spec["lr_max"], log=True)
    optimizers, schedules = list(spec["optimizers"]), list(spec["schedules"])
    # A one-option dimension is no dimension: suggesting it would only add a constant param.
    optimizer = trial.suggest_categorical("optimizer", optimizers) if len(optimizers) > 1 else optimizers[0]
    schedule = trial.suggest_categorical("schedule", schedules) if len(schedules) > 1 else schedules[0]
    epochs = spec["base"]["training"]["epochs"]
    options = {key: value for key, value in spec["schedules"][schedule].items() if key != "name"}
    params: Dict[str, Any] = {"lr": lr, "optimizer": optimizer, "schedule": schedule}
    if "warmup_fraction" in options:
        if spec.get("warmup_fraction"):
            low, high = spec["warmup_fraction"]
            options["warmup_fraction"] = trial.suggest_float("warmup_fraction", low, high)
        params["warmup_fraction"] = options["warmup_fraction"]
    # Re-validate: a sampled knob goes through the same checks as a configured one.
    options = check_schedule(schedule, options, epochs)
    run_config = copy.deepcopy(dict(spec["base"]))
    run_config["optimizer"] = {"name": optimizer, **spec["optimizers"][optimizer]}
    run_config["schedule"] = {"name": schedule, **options}
    run_config["training"]["lr"] = float(lr)
    if digest is not None:
        run_config["dataset"]["digest"] = digest
    return params, run_config


def worst_value(summary: Mapping[str, Any], divergence_factor: float) -> float:
    """The value of a diverged trial: ``divergence_factor × initial_loss``.

    That is the loss at which training declared the run diverged, so it is worse than any
    loss a healthy run reports, yet on the same scale as real values (for plots of value
    against rate); TPE only ranks values, so any finite worst value works for it.
    """
    value = float(summary.get("initial_loss", math.nan)) * float(divergence_factor)
    return value if math.isfinite(value) else WORST_FALLBACK


def trial_outcome(
    summary: Mapping[str, Any], pruned: bool, divergence_factor: float
) -> Tuple[str, Optional[float]]:
    """(state, value) of a trained trial: diverged -> complete/worst, pruned -> pruned/None,
    else complete/best val_loss (worst when no epoch had a finite one)."""
    if summary["status"] == "diverged":
        return "complete", worst_value(summary, divergence_factor)
    if pruned:
        return "pruned", None
    best = float(summary["best_val_loss"])
    return "complete", best if math.isfinite(best) else worst_value(summary, divergence_factor)


def make_pruning_callback(trial: Any) -> Any:
    """A Keras callback reporting each epoch's val_loss to ``trial`` and stopping a pruned run.

    It stops through ``model.stop_training`` rather than raising ``TrialPruned`` inside
    ``fit``, so train_run still writes the run folder. Its ``pruned_epoch`` (1-based) says
    whether it stopped the run. The pruner is not asked after the last epoch: a run that
    trained to the end is complete, whatever its rank.
    """
    import keras

    class PruningCallback(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.pruned_epoch: Optional[int] = None

        def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
            if self.model.stop_training:
                return  # the recorder stopped a diverging run: a result, not a pruning decision
            value = float((logs or {}).get("val_loss", math.nan))
            if not math.isfinite(value):
                return
            trial.report(value, step=epoch)
            # Not on the last epoch: stopping then saves nothing, and the full run is a result.
            last = epoch + 1 >= int(self.params.get("epochs", 0) or 0)
            if not last and trial.should_prune():
                self.pruned_epoch = epoch + 1
                self.model.stop_training = True

    return PruningCallback()


# --------------------------------------------------------------------------------------
# The worker
# --------------------------------------------------------------------------------------


class _Heartbeat:
    """Touches ``path`` every ``interval`` seconds from a daemon thread while in use."""

    def __init__(self, path: Path, interval: float = HEARTBEAT_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="hpo-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.path.touch()
            except OSError:  # a transient NFS error: the next beat retries
                pass

    def __enter__(self) -> "_Heartbeat":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.path.unlink(missing_ok=True)


def _fail(study: Any, number: int, reason: str) -> None:
    """Tell a trial FAIL, recording why in its ``fail_reason`` user attribute.

    Optuna has no public way to set an attribute of a trial by number (a reaped trial has no
    ``Trial`` object here), so this goes through the study's storage, the JournalStorage
    that :func:`open_study` passed in, with the storage's public methods.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)
    try:
        storage.set_trial_user_attr(trial_id, "fail_reason", reason[:500])
        study.tell(number, state=TrialState.FAIL)
    except UpdateFinishedTrialError:  # another worker finished it meanwhile (reaped it): nothing to do
        pass


def reap_stale_trials(
    study: Any, worker: int, token: str, heartbeats: Path, now: Optional[float] = None
) -> List[int]:
    """Tell FAIL every RUNNING trial whose worker is gone (call under the budget lock).

    Stale: owned by this worker index under another token (this job was restarted), or
    whose owner's heartbeat file is missing or older than :data:`STALE_AFTER_SECONDS`, or
    (no owner recorded: killed between ask and stamping) started that long ago.
    """
    from optuna.trial import TrialState

    now = time.time() if now is None else now
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner, owner_worker = trial.user_attrs.get("token"), trial.user_attrs.get("worker")
        if owner == token:
            continue
        reason = None
        if owner is None:
            started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
            if now - started > STALE_AFTER_SECONDS:
                reason = "stale: RUNNING without an owner"
        elif owner_worker == worker:
            reason = f"stale: worker {worker} restarted"
        else:
            beat = heartbeats / str(owner)
            age = now - beat.stat().st_mtime if beat.exists() else math.inf
            if age > STALE_AFTER_SECONDS:
                reason = f"stale: worker {owner_worker} has no heartbeat"
        if reason is not None:
            _fail(study, trial.number, reason)
            if owner is not None:
                (heartbeats / str(owner)).unlink(missing_ok=True)
            reaped.append(trial.number)
    return reaped


def budget_counts(study: Any) -> Dict[str, int]:
    """Trials by state (lower-case names); ``counted`` is what fills the budget, ``errors``
    the FAIL trials whose training raised (reaped ones are not errors)."""
    counts: Dict[str, int] = {"complete": 0, "pruned": 0, "running": 0, "fail": 0, "waiting": 0, "errors": 0}
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name.lower()
        counts[state] = counts.get(state, 0) + 1
        if state == "fail" and str(trial.user_attrs.get("fail_reason", "")).startswith("error"):
            counts["errors"] += 1
    counts["counted"] = counts["complete"] + counts["pruned"] + counts["running"]
    return counts


def train_trial(
    trial: Any, spec: Mapping[str, Any], arrays: Mapping[str, Any], digest: str, device: str, worker: int
) -> Tuple[Dict[str, Any], Dict[str, Any], str, Optional[float]]:
    """Sample and train one asked trial into its run folder; returns (params, summary, state,
    value), the state and value to tell (see :func:`trial_outcome`)."""
    from pipeline.train import train_run

    params, run_config = sample_trial(trial, spec, digest)
    callback = make_pruning_callback(trial)
    divergence_factor = float(run_config["training"]["divergence_factor"])
    outcome: Dict[str, Any] = {}

    def extra(summary: Dict[str, Any]) -> Dict[str, Any]:
        # Called by train_run before it writes summary.json, so the folder records the state.
        state, value = trial_outcome(summary, callback.pruned_epoch is not None, divergence_factor)
        outcome.update(state=state, value=value)
        return {
            "trial": trial.number,
            "state": state,
            "value": value,
            "search": spec["search"],
            "worker": int(worker),
            "params": params,
            "pruned_epoch": callback.pruned_epoch,
        }

    summary = train_run(
        run_config, arrays, trial_dir(spec, trial.number), device, callbacks=[callback], extra_summary=extra
    )
    return params, summary, outcome["state"], outcome["value"]


def run_worker(
    spec: Mapping[str, Any], data_file: Path, worker: int, threads: Optional[int] = None, gpus: int = 0
) -> List[Dict[str, Any]]:
    """Ask, train and tell trials of one search until its budget is full.

    Returns one entry per trial this worker ran: trial number, state and value. TensorFlow
    is configured (before its import) only when a first trial needs training, so a rerun of
    a finished search takes a second, not TensorFlow's start-up.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from pipeline.data import arrays_digest, load_npz

    arrays = load_npz(data_file)
    digest = arrays_digest(arrays)
    journal = Path(spec["journal"])
    token = f"w{worker}-{uuid.uuid4().hex[:12]}"
    heartbeats = search_dir(spec) / ".heartbeat"
    study = open_study(spec, worker, digest)
    # Reseed from the finished count (see worker_seed): a resumed worker must not replay its
    # predecessor's proposals.
    finished = sum(1 for trial in study.get_trials(deepcopy=False) if trial.state.is_finished())
    study.sampler = make_sampler(spec["sampler"], worker_seed(spec["seed"], worker, finished))
    lock = _BudgetLock(journal)
    device: Optional[str] = None
    ran: List[Dict[str, Any]] = []

    with _Heartbeat(heartbeats / token):
        while True:
            with lock:
                reaped = reap_stale_trials(study, worker, token, heartbeats)
                if reaped:
                    print(f"{spec['search']}: reaped stale trial(s) {reaped} (told FAIL)", flush=True)
                counts = budget_counts(study)
                if counts["counted"] >= spec["trials"]:
                    break
                if counts["errors"] >= spec["trials"]:
                    raise HpoError(
                        f"search {spec['search']!r}: {counts['errors']} trials failed with errors (the budget is "
                        f"{spec['trials']}); giving up. See the fail_reason of the FAIL trials in {journal}"
                    )
                # Ask inside the lock: the count and the new trial are one step, so workers
                # together never create more trials than the budget.
                trial = study.ask()
                trial.set_user_attr("worker", int(worker))
                trial.set_user_attr("token", token)
            number = trial.number
            started = time.perf_counter()
            try:
                if device is None:
                    from pipeline.device import configure_tensorflow

                    device = configure_tensorflow(threads, spec["deterministic"], gpus=gpus)
                params, summary, state, value = train_trial(trial, spec, arrays, digest, device, worker)
            except Exception as error:  # a failed trial is recorded; the search goes on
                traceback.print_exc(file=sys.stderr)
                _fail(study, number, f"error: {type(error).__name__}: {error}")
                ran.append({"trial": number, "state": "fail", "value": None})
                print(f"{spec['search']} trial {number}: fail ({type(error).__name__}: {error})", flush=True)
                continue
            except BaseException:
                # Interrupted (Ctrl-C, SystemExit): free the trial now rather than via reaping.
                _fail(study, number, "interrupted")
                raise
            try:
                study.tell(trial, value, state=TrialState.COMPLETE if state == "complete" else TrialState.PRUNED)
            except UpdateFinishedTrialError:
                # Reaped as stale by another worker (a heartbeat that looked dead): the journal
                # keeps FAIL, the run folder its result; the budget fills with another trial.
                print(f"{spec['search']} trial {number}: was reaped while training; its result is not told")
                state, value = "fail", None
            ran.append({"trial": number, "state": state, "value": value})
            print(
                f"{spec['search']} trial {number}: {state} ({summary['status']}), lr {params['lr']:.4g}, "
                f"value {value}, {summary['epochs_run']} epochs in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
    return ran


# --------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------


def _iso(value: Optional[datetime]) -> Optional[str]:
    return value.isoformat() if value is not None else None


def summarise_search(spec: Mapping[str, Any]) -> "pd.DataFrame":
    """One row per trial of the search (columns :data:`TRIAL_COLUMNS`), by trial number.

    States come from the journal; metrics (best_val_loss, status, ...) from each trial's
    summary.json, NaN where a trial has none (failed or still running).
    """
    import optuna
    import pandas as pd

    journal = Path(spec["journal"])
    if not journal.is_file():
        return pd.DataFrame(columns=TRIAL_COLUMNS)
    storage = _storage(journal)
    names = [summary.study_name for summary in storage.get_all_studies()]
    if spec["search"] not in names:
        return pd.DataFrame(columns=TRIAL_COLUMNS)
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
                "state": trial.state.name.lower(),
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
    frame = pd.DataFrame(rows, columns=TRIAL_COLUMNS)
    frame["epochs_run"] = frame["epochs_run"].astype("Int64")  # NaN-able integers, not floats
    frame["worker"] = frame["worker"].astype("Int64")
    return frame


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m pipeline.hpo worker|summary --spec '<json>' ...`` (the Snakemake jobs)."""
    parser = argparse.ArgumentParser(description="Optuna searches of the learning rate, as Snakemake jobs.")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="train trials of one search until its budget is full")
    worker.add_argument("--spec", required=True, help="the search's job spec as JSON (see hpo_job_spec)")
    worker.add_argument("--data", required=True, type=Path, help="the study's dataset .npz")
    worker.add_argument("--worker", required=True, type=int, help="this worker's index (0 .. workers-1)")
    worker.add_argument("--threads", type=int, default=None, help="TensorFlow intra/inter-op threads")
    worker.add_argument("--gpus", type=int, default=0, help="GPUs the job asked for (the rule's gpu resource): with 1, a missing GPU is an error")
    worker.add_argument("--done", required=True, type=Path, help="output: marker listing the trials this worker ran")
    summary = commands.add_parser("summary", help="write the search's trials.csv")
    summary.add_argument("--spec", required=True, help="the search's job spec as JSON")
    summary.add_argument("--out", required=True, type=Path, help="output: trials.csv")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)
    if args.command == "worker":
        try:
            ran = run_worker(spec, args.data, args.worker, args.threads, args.gpus)
        except HpoError as error:
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
        write_atomic(args.out, lambda temporary: frame.to_csv(temporary, index=False))
        print(f"{spec['search']}: {len(frame)} trials -> {args.out}")


if __name__ == "__main__":
    main()
