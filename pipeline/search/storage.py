"""Where a search's trials live and how workers share them safely: the Optuna journal, the
budget lock, heartbeats and the reaping of stale trials.

Each search is one Optuna study in its own journal file,
``results/<study>/hpo/<search>/journal.log`` (``JournalStorage`` over ``JournalFileBackend``),
the storage Optuna supports on NFS and other shared file systems without working ``fcntl``
locks, which is what SLURM clusters offer: workers on different nodes share it as a file.

The budget
    A worker reaps, counts and asks under one lock (:class:`BudgetLock`,
    ``journal.log.budget.lock``), so workers together never create more trials than the
    budget. :func:`budget_counts` says what counts: trials COMPLETE, PRUNED and RUNNING; not
    FAIL ones (a training error or a reaped interrupted trial), nor WAITING ones.

Interrupted searches
    A worker killed mid-trial leaves that trial RUNNING. Each worker keeps a heartbeat file
    (``hpo/<search>/.heartbeat/<token>``, touched every :data:`HEARTBEAT_SECONDS`) and stamps
    the trials it asks with its worker index and token. Under the lock, before counting, a
    RUNNING trial is reaped (told FAIL, ``fail_reason`` "stale: ...") when it belongs to the
    same worker index under another token (Snakemake never runs two instances of one job at
    once, so that owner is dead), or when its owner's heartbeat is missing or older than
    :data:`STALE_AFTER_SECONDS` (:func:`reap_stale_trials`).

Optuna is imported where it is used, not at import time.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional

from pipeline.search.spec import make_pruner, make_sampler, spec_hash, worker_seed

if TYPE_CHECKING:  # annotations only: optuna is imported where it is used
    import optuna

#: Seconds between touches of a worker's heartbeat file.
HEARTBEAT_SECONDS = 10.0
#: A RUNNING trial whose owner's heartbeat is older than this is reaped as stale. Generous on
#: purpose: NFS attribute caches (up to a minute) and clock skew between nodes both shift the
#: mtime another node sees; a wrongly reaped live trial would be lost work.
STALE_AFTER_SECONDS = 300.0


class SearchError(RuntimeError):
    """A search that cannot go on (a changed spec over an existing journal, errors at budget)."""



def journal_storage(journal: Path) -> "optuna.storages.JournalStorage":
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(journal)))


class BudgetLock:
    """The lock under which a worker reaps, counts and asks (``journal.log.budget.lock``).

    Not the backend's own append lock (``journal.log.lock``): ``study.ask`` takes that one
    inside, and Optuna's file locks are not reentrant. An O_EXCL lock file works on NFSv3+;
    one left by a killed holder is broken after Optuna's 30 s grace period.
    """

    def __init__(self, journal: Path) -> None:
        from optuna.storages.journal import JournalFileOpenLock

        self._lock = JournalFileOpenLock(f"{journal}.budget")

    def __enter__(self) -> "BudgetLock":
        self._lock.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()


def open_study(
    spec: Mapping[str, Any],
    worker: int = 0,
    data_digest: Optional[str] = None,
    storage: Optional["optuna.storages.BaseStorage"] = None,
) -> "optuna.Study":
    """Create or load the search's Optuna study (also how tests enqueue trials).

    The first opener records the spec's hash (and, from a worker, the data's digest) as study
    user attributes; a later opener with a different one raises :class:`SearchError`, since
    trials of another search space or other data must not fill this one's budget.

    ``storage`` is the search's journal storage (:func:`journal_storage`); a caller that
    also needs the storage itself (to :func:`fail_trial`) opens it and passes it in.
    """
    import optuna

    journal = Path(spec["journal"])
    storage = storage if storage is not None else journal_storage(journal)
    study = optuna.create_study(
        study_name=spec["search"],
        storage=storage,
        sampler=make_sampler(spec["sampler"], worker_seed(spec["seed"], worker)),
        pruner=make_pruner(spec["pruner"], spec["base"]["training"]["epochs"]),
        direction="minimize",
        load_if_exists=True,
    )
    with BudgetLock(journal):  # check-and-set of the signature must not race another opener
        attrs = study.user_attrs
        for key, value in (("spec_hash", spec_hash(spec)), ("data_digest", data_digest)):
            if value is None:
                continue
            if key not in attrs:
                study.set_user_attr(key, value)
            elif attrs[key] != value:
                what = "search settings" if key == "spec_hash" else "dataset"
                raise SearchError(
                    f"{journal} was made with other {what} ({key} {attrs[key]} != {value}); "
                    f"delete {journal.parent} to start search {spec['search']!r} afresh"
                )
    return study



class Heartbeat:
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

    def __enter__(self) -> "Heartbeat":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.path.unlink(missing_ok=True)


def fail_trial(study: "optuna.Study", storage: "optuna.storages.BaseStorage", number: int, reason: str) -> None:
    """Tell a trial FAIL, recording why in its ``fail_reason`` user attribute.

    Optuna's study has no way to set an attribute of a trial by number (a reaped trial has
    no ``Trial`` object here), so the attribute goes through the public methods of the
    study's storage: ``storage`` is the one the study was opened with (:func:`open_study`).
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)
    try:
        storage.set_trial_user_attr(trial_id, "fail_reason", reason[:500])
        study.tell(number, state=TrialState.FAIL)
    except UpdateFinishedTrialError:  # another worker finished it meanwhile (reaped it): nothing to do
        pass


def reap_stale_trials(
    study: "optuna.Study",
    storage: "optuna.storages.BaseStorage",
    worker: int,
    token: str,
    heartbeats: Path,
    now: Optional[float] = None,
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
            fail_trial(study, storage, trial.number, reason)
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
