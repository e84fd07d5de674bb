"""Preemption-safe training: a run's state saved at every epoch end, and resumed from it.

A training job on a cluster can be killed at any moment: at the end of its time limit, by a
node failure, or by SLURM preempting it (with ``--slurm-requeue`` SLURM then starts it again;
Snakemake's ``retries`` does the same for a failed job). While a run trains, it keeps its
whole state in ``resume.npz`` in its run folder, rewritten at the end of every epoch
(:class:`pipeline.training.callbacks.EpochStateSaver`). When the
job starts again, the run carries on from its last completed epoch and ends with the same
``history.csv`` and ``summary.json`` an uninterrupted run writes (but for the timings).

What makes the resumed run identical:

- The state holds every model variable (weights, and the seed-generator states of layers such
  as ``Dropout``), every optimizer variable (its step counter, which drives the schedule, and
  its moment slots), the history rows so far, the untrained loss that divergence is measured
  against, and the seconds spent.
- The order of the training examples in epoch ``e`` is a pure function of ``(seed, e)``
  (:func:`epoch_batches`). Keras' own ``shuffle=True`` draws from a process-wide random stream
  that a restarted process cannot continue.
- The state is written to a temporary file, flushed to disk and renamed: a kill during the
  write leaves the previous epoch's state.
- It carries the run's config hash: a state left by another configuration is ignored (and
  overwritten), never resumed.

The file is deleted once ``summary.json`` is written (and by the next job, should it be killed
in between: a complete run's state is never trusted later). Range tests and search trials do not
resume: a range test is short, and a killed search worker's trial is reaped and asked again
(:mod:`pipeline.search.worker`).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from pipeline.io import write_atomic

STATE_FILE = "resume.npz"


def epoch_batches(x: Any, y: Any, batch_size: int, seed: int) -> Tuple[Any, Any]:
    """The training batches of one epoch, shuffled by ``(seed, epoch)``; and the callback that
    tells the dataset which epoch Keras is starting.

    Returns ``(dataset, callback)``, the callback an
    :class:`~pipeline.training.callbacks.EpochShuffle`. Keras iterates the dataset afresh each
    epoch (after the callbacks' ``on_epoch_begin``), so each epoch's permutation is
    ``stateless_shuffle(range(n), seed=[seed, epoch])`` whatever epoch the process started at.
    """
    import tensorflow as tf

    import keras

    from pipeline.training.callbacks import EpochShuffle  # imports Keras
    from pipeline.training.images import gather_rows, is_streamed
    from pipeline.training.pipelines import is_pipeline

    if is_pipeline(x):  # a user's pipeline: its own order (batch_order: user)
        return x.batches(batch_size), keras.callbacks.Callback()
    count = len(x)
    steps = -(-count // batch_size)
    # Data and the epoch counter live on the CPU, where tf.data runs; image files are decoded
    # batch by batch (pipeline.training.images), never held.
    with tf.device("/CPU:0"):
        features = None if is_streamed(x) else tf.constant(x)
        labels = tf.constant(y)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="shuffle_epoch")
        base_seed = tf.constant(int(seed), dtype=tf.int64)

    def one_epoch(_: Any) -> Any:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([base_seed, epoch.read_value()])
        )
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    dataset = (
        tf.data.Dataset.from_tensors(0)
        .flat_map(one_epoch)
        .map(lambda index: (gather_rows(x, index, features), tf.gather(labels, index)))
        .apply(tf.data.experimental.assert_cardinality(steps))
        .prefetch(tf.data.AUTOTUNE)
    )

    return dataset, EpochShuffle(epoch)


def validation_data(x: Any, y: Any, batch_size: int) -> Dict[str, Any]:
    """``fit``'s validation arguments: the arrays and their batch size, or, for image files, a
    dataset that decodes them batch by batch in file order."""
    import tensorflow as tf

    from pipeline.training.images import is_streamed
    from pipeline.training.pipelines import is_pipeline

    if is_pipeline(x):
        return {"validation_data": x.batches(batch_size)}
    if not is_streamed(x):
        return {"validation_data": (x, y), "validation_batch_size": batch_size}
    with tf.device("/CPU:0"):
        labels = tf.constant(y)
    dataset = (
        tf.data.Dataset.range(len(x))
        .batch(batch_size)
        .map(lambda rows: (x.gather(rows), tf.gather(labels, rows)))
        .prefetch(tf.data.AUTOTUNE)
    )
    return {"validation_data": dataset}


def save_state(path: Path, model: Any, meta: Mapping[str, Any]) -> None:
    """Write the model's and optimizer's variables and ``meta`` (JSON-able) to ``path``,
    atomically and flushed to disk."""
    write_state(path, state_arrays(model, meta))


def state_arrays(model: Any, meta: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    """A copy of what :func:`save_state` writes: the model's and optimizer's variables, and
    ``meta``. Taken between two epochs, it can be written while the next one trains."""
    import keras

    arrays: Dict[str, np.ndarray] = {}
    for prefix, variables in (("model", model.variables), ("optimizer", model.optimizer.variables)):
        for index, variable in enumerate(variables):
            arrays[f"{prefix}_{index:05d}"] = keras.ops.convert_to_numpy(variable)
    arrays["meta"] = np.array(json.dumps(dict(meta), allow_nan=True))
    return arrays


def write_state(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write :func:`state_arrays` to ``path``, atomically and flushed to disk."""

    def write(temporary: Path) -> None:
        with temporary.open("wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())

    write_atomic(path, write)


def load_state(path: Path, config_hash: str) -> Optional[Dict[str, Any]]:
    """The state saved at ``path`` for this configuration, or None (no file, another
    configuration's state, or an unreadable file)."""
    if not Path(path).is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            if meta.get("config_hash") != config_hash:
                return None
            arrays = {name: stored[name] for name in stored.files if name != "meta"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    return {**meta, "arrays": arrays}


def saved_epochs(path: Path) -> int:
    """How many epochs the state at ``path`` holds (0 without a readable state): how far an
    unfinished run got, whatever its configuration (for progress checks and the tests)."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            return len(json.loads(str(stored["meta"]))["rows"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return 0


def restore_state(model: Any, state: Mapping[str, Any]) -> None:
    """Assign a saved state's variables to a freshly built and compiled model.

    The optimizer creates its variables lazily; it is built here so that they exist. A state
    whose variables don't match the model (another model code, say) raises ``ValueError``.
    """
    model.optimizer.build(model.trainable_variables)
    arrays = state["arrays"]
    for prefix, variables in (("model", model.variables), ("optimizer", model.optimizer.variables)):
        names = sorted(name for name in arrays if name.startswith(f"{prefix}_"))
        if len(names) != len(variables):
            raise ValueError(f"saved state has {len(names)} {prefix} variables, the run has {len(variables)}")
        for name, variable in zip(names, variables):
            if tuple(arrays[name].shape) != tuple(variable.shape):
                raise ValueError(f"saved {name} has shape {arrays[name].shape}, the run's variable {tuple(variable.shape)}")
            variable.assign(arrays[name])
