"""The Keras callbacks of a training run, in the order :func:`pipeline.training.run.train_run`
passes them to ``fit``:

- :class:`EpochShuffle` tells the training dataset which epoch starts (its batches are a
  permutation drawn from ``(seed, epoch)``, :func:`pipeline.training.resume.epoch_batches`);
- :class:`RunRecorder` records one history row per epoch and stops a diverging run;
- the caller's callbacks, e.g. :class:`PruningCallback`, which reports each epoch's
  validation loss to a search trial and stops a pruned run;
- :class:`EpochStateSaver` saves the run's state at every epoch end, so that a killed run
  resumes from its last completed epoch (:mod:`pipeline.training.resume`).

Keras is imported at module level, so import this module only after
:func:`pipeline.training.device.configure_tensorflow` has run (it sets TensorFlow's thread
counts, which take effect only before TensorFlow is imported): the functions that use these
callbacks import it inside their bodies.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence

import keras

from pipeline.training.resume import save_state

__all__ = ["EpochShuffle", "EpochStateSaver", "PruningCallback", "PruningTrial", "RunRecorder", "report_epoch"]


class EpochShuffle(keras.callbacks.Callback):
    """Sets the epoch variable the training dataset draws its permutation from.

    Keras iterates the dataset afresh each epoch, after the callbacks' ``on_epoch_begin``, so
    the epoch's batches follow ``(seed, epoch)`` whatever epoch the process started at.

    Args:
        epoch: The dataset's epoch counter (an int64 ``tf.Variable``).
    """

    def __init__(self, epoch: Any) -> None:
        super().__init__()
        self.epoch_variable = epoch

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.epoch_variable.assign(epoch)


class RunRecorder(keras.callbacks.Callback):
    """Records one history row per epoch with the rate in force, and stops a diverging run.

    A row holds the epoch (1-based), the rate the optimizer will use next (its schedule at
    the epoch's end; Keras logs no schedule), the epoch's logged metrics and its seconds. The
    epoch's ``loss`` is the mean over its batches; a run diverges when that is not finite or
    exceeds ``divergence_factor`` × the loss the first epoch started from (``reference_loss``,
    see :func:`pipeline.training.run.initial_loss`).

    Args:
        divergence_factor: How many times the reference loss counts as diverged.
        reference_loss: The untrained model's loss.
        rows: Rows recorded by an earlier attempt of the run (a resumed run goes on from them).
        diverged_epoch: The epoch at which an earlier attempt found the run diverged.
    """

    def __init__(
        self,
        divergence_factor: float,
        reference_loss: float,
        rows: Sequence[Dict[str, float]] = (),
        diverged_epoch: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.divergence_factor = divergence_factor
        self.reference_loss = reference_loss
        self.rows: List[Dict[str, float]] = list(rows)
        self.diverged_epoch = diverged_epoch
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = logs or {}
        rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row = {"epoch": epoch + 1, "lr": rate}
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            row[key] = float(logs.get(key, math.nan))
        row["seconds"] = time.perf_counter() - self._started
        self.rows.append(row)
        loss = row["loss"]
        if not math.isfinite(loss) or loss > self.divergence_factor * self.reference_loss:
            self.diverged_epoch = epoch + 1
            self.model.stop_training = True


class ProgressLine(keras.callbacks.Callback):
    """Prints the epoch's progress line of a run trained alone (the per-run engine), after the
    run's recorder: the line population jobs log, for a population of one."""

    def __init__(self, recorder: RunRecorder, epochs: int) -> None:
        super().__init__()
        self.recorder = recorder
        self.epochs = int(epochs)

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        from pipeline.training.progress import EpochProgress

        rows = self.recorder.rows
        losses = [row["val_loss"] for row in rows if math.isfinite(row["val_loss"])]
        still = int(self.recorder.diverged_epoch is None and epoch + 1 < self.epochs)
        print(EpochProgress(epoch + 1, self.epochs, 1, still, min(losses, default=math.nan), rows[-1]["seconds"]).line(), flush=True)


class Plateau(keras.callbacks.ReduceLROnPlateau):
    """Keras' ``ReduceLROnPlateau`` on ``val_loss`` (mode ``min``) for a ``plateau`` schedule,
    with its state (best loss, wait, cooldown) carried across a resumption: a resumed run goes
    on as if it had never stopped. Both engines run it at each epoch's end, after validation,
    on the run's optimizer (whose rate is a variable); the history's ``lr`` is the rate after it.

    Args:
        options: The schedule's knobs (:func:`pipeline.training.schedules.plateau_options`).
        state: What :meth:`state` returned at the last saved epoch, or None.
    """

    def __init__(self, options: Mapping[str, Any], state: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(
            monitor="val_loss",
            mode="min",
            factor=float(options["factor"]),
            patience=int(options["patience"]),
            min_delta=float(options["min_delta"]),
            cooldown=int(options["cooldown"]),
            min_lr=float(options["min_lr"]),
            verbose=0,
        )
        self.restored = dict(state) if state else None

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        super().on_train_begin(logs)
        if self.restored:
            self.best, self.wait, self.cooldown_counter = self.restored["best"], self.restored["wait"], self.restored["cooldown_counter"]

    def state(self) -> Dict[str, Any]:
        """The counters to save with the run's state (JSON-able)."""
        best = None if self.best is None else float(self.best)
        return {"best": best, "wait": int(self.wait), "cooldown_counter": int(self.cooldown_counter)}


class PruningTrial(Protocol):
    """What :class:`PruningCallback` needs of a trial (an ``optuna.Trial`` has both)."""

    def report(self, value: float, step: int) -> None: ...

    def should_prune(self) -> bool: ...


class PruningCallback(keras.callbacks.Callback):
    """Reports each epoch's ``val_loss`` to a search trial and stops the run once it is pruned.

    It stops through ``model.stop_training`` rather than raising Optuna's ``TrialPruned``
    inside ``fit``, so :func:`pipeline.training.run.train_run` still writes the run folder.
    Steps are Keras' 0-based epoch indices. The pruner is not asked after the last epoch: a
    run that trained to the end is complete, whatever its rank. A run the recorder stopped as
    diverged is a result, not a pruning decision, and an epoch without a finite ``val_loss``
    is not reported.

    Args:
        trial: The trial to report to (duck-typed: Optuna is not imported here).

    Attributes:
        pruned_epoch: The 1-based epoch after which the run was pruned, or None.
    """

    def __init__(self, trial: PruningTrial) -> None:
        super().__init__()
        self.trial = trial
        self.pruned_epoch: Optional[int] = None

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if self.model.stop_training:
            return  # the recorder stopped a diverging run: a result, not a pruning decision
        value = float((logs or {}).get("val_loss", math.nan))
        if report_epoch(self.trial, epoch, value, int(self.params.get("epochs", 0) or 0)):
            self.pruned_epoch = epoch + 1
            self.model.stop_training = True


def report_epoch(trial: PruningTrial, epoch: int, val_loss: float, epochs: int) -> bool:
    """Report a trial's ``val_loss`` after epoch ``epoch`` (0-based) and say whether to prune it
    now; both engines ask the pruner through this. A non-finite loss is not reported, and the
    pruner is not asked after the last epoch (stopping then saves nothing, and the full run is
    a result)."""
    if not math.isfinite(val_loss):
        return False
    trial.report(val_loss, step=epoch)
    return epoch + 1 < epochs and bool(trial.should_prune())


class EpochStateSaver(keras.callbacks.Callback):
    """Saves the run's state at every epoch end (:func:`pipeline.training.resume.save_state`).

    Put it after the recorder, whose rows and divergence it saves (and a ``plateau``
    schedule's counters, when given).

    Args:
        path: The state file.
        recorder: The run's recorder.
        meta: What else the state holds (the config hash and the reference loss).
        seconds_before: Seconds spent by earlier attempts of the run.
        started: When this attempt began (``time.perf_counter()``).
    """

    def __init__(
        self,
        path: Path,
        recorder: RunRecorder,
        meta: Mapping[str, Any],
        seconds_before: float,
        started: float,
        plateau: Optional[Plateau] = None,
    ) -> None:
        super().__init__()
        self.path = path
        self.recorder = recorder
        self.meta = dict(meta)
        self.seconds_before = seconds_before
        self.started = started
        self.plateau = plateau

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        save_state(
            self.path,
            self.model,
            {
                **self.meta,
                "rows": self.recorder.rows,
                "diverged_epoch": self.recorder.diverged_epoch,
                "seconds": self.seconds_before + time.perf_counter() - self.started,
                **({"plateau": self.plateau.state()} if self.plateau is not None else {}),
            },
        )
