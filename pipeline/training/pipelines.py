"""A user's own input pipeline (``dataset=pipeline``): a ``tf.data.Dataset`` or a
``keras.utils.PyDataset``, streamed, never loaded into memory.

``dataset.builder`` names a function of the user's (``dataset.options`` are its keyword
arguments) that returns ``{"train": ..., "val": ...}``, each a ``tf.data.Dataset`` of single
``(features, label)`` examples (unbatched: the study batches them with ``study.batch_size``, so
that the batch-size question still applies) or a ``keras.utils.PyDataset`` (its batches are
split into examples and batched again the same way). Labels are integer class indices in
``[0, classes)``.

The dataset job (:func:`user_pipeline`) reads both splits once, streaming: it counts the
examples, checks every label, reads the feature shape, and computes the data digest, a hash of
the *multiset* of examples (the sum of every example's SHA-256 modulo 2**256, so the pipeline's
order, shuffled or not, does not change it, and any changed, added or removed example does).
It writes a manifest (the builder's option, the counts, shape, classes and digest) as the
study's data file. Each training job calls the builder again and takes its batches from it
(:class:`PipelineData`).

Batches come in the pipeline's own order, which this tool cannot promise to be a function of
``(seed, epoch)``: every run of such a study records ``batch_order: user`` (its config and
summary), all members of a population see the same batches, and a run resumed after a kill
carries on from its saved state but may see other batches than an uninterrupted run would
(seed the pipeline's shuffle per epoch to make it repeatable).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

#: ``training.batch_order`` of a run on a user's pipeline.
USER_ORDER = "user"
#: The dataset option's target (the study marks its runs' batch order from it).
TARGET = "pipeline.training.pipelines.user_pipeline"


def _builder(path: str) -> Callable[..., Any]:
    import importlib

    module_name, _, attribute = str(path).rpartition(".")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"dataset.builder={path!r} cannot be imported: {error}") from error
    if not callable(function):
        raise ValueError(f"dataset.builder={path!r} is not a function")
    return function


def check_user_pipeline(builder: str, options: Optional[Mapping[str, Any]] = None, **_: Any) -> None:
    """The composition-time check: the builder imports and takes ``options`` (its signature)."""
    import inspect

    function = _builder(builder)
    try:
        inspect.signature(function).bind(**dict(options or {}))
    except TypeError as error:
        raise ValueError(
            f"dataset.options do not fit {builder}: {error}; its arguments: {', '.join(inspect.signature(function).parameters)}"
        ) from error


def as_examples(data: Any, what: str) -> Any:
    """A split as a ``tf.data.Dataset`` of single examples (see the module doc)."""
    import keras
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        return data
    if isinstance(data, keras.utils.PyDataset):
        first = data[0]
        signature = tuple(tf.TensorSpec((None, *np.shape(part)[1:]), tf.as_dtype(np.asarray(part).dtype)) for part in first[:2])

        def batches() -> Any:
            for index in range(len(data)):
                batch = data[index]
                yield tuple(np.asarray(part) for part in batch[:2])

        return tf.data.Dataset.from_generator(batches, output_signature=signature).unbatch()
    raise ValueError(f"dataset.builder's {what!r} is a {type(data).__name__}: expected a tf.data.Dataset or a keras.utils.PyDataset")


def _splits(builder: str, options: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    built = _builder(builder)(**dict(options or {}))
    if not isinstance(built, Mapping) or not {"train", "val"} <= set(built):
        raise ValueError(f"dataset.builder={builder!r} must return {{'train': ..., 'val': ...}}, got {type(built).__name__}")
    return {split: as_examples(built[split], split) for split in ("train", "val")}


def _survey(dataset: Any, split: str, builder: str) -> Tuple[int, Tuple[int, ...], str, int, int]:
    """Count a split's examples, check its labels and hash it: (count, shape, dtype, largest
    label, digest as an integer)."""
    count, shape, dtype, largest, total = 0, None, None, -1, 0
    labels_seen = set()
    for features, label in dataset.as_numpy_iterator():
        features, label = np.asarray(features), np.asarray(label)
        if label.ndim != 0 or not np.issubdtype(label.dtype, np.integer):
            raise ValueError(
                f"dataset.builder={builder!r}: {split} example {count} has label {label!r} ({label.dtype}, shape {label.shape}); "
                "labels must be single integer class indices in [0, classes) (is the dataset batched? give single examples)"
            )
        if int(label) < 0:
            raise ValueError(f"dataset.builder={builder!r}: {split} example {count} has the negative label {int(label)}")
        if shape is None:
            shape, dtype = features.shape, str(features.dtype)
        elif features.shape != shape:
            raise ValueError(f"dataset.builder={builder!r}: {split} example {count} has shape {features.shape}, the first {shape}")
        if not np.isfinite(features.astype(np.float64)).all():
            raise ValueError(f"dataset.builder={builder!r}: {split} example {count} holds non-finite feature values")
        labels_seen.add(int(label))
        largest = max(largest, int(label))
        digest = hashlib.sha256(features.astype(np.float32).tobytes() + np.int64(label).tobytes()).digest()
        total = (total + int.from_bytes(digest, "big")) % 2**256
        count += 1
    if count == 0:
        raise ValueError(f"dataset.builder={builder!r}: the {split} split has no examples")
    if split == "train" and len(labels_seen) < 2:
        raise ValueError(f"dataset.builder={builder!r}: the train split holds a single class ({largest}); a classifier needs two")
    return count, tuple(shape), str(dtype), largest, total


def user_pipeline(builder: str, options: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The manifest of a user's pipeline (see the module doc), as the arrays to save."""
    check_user_pipeline(builder, options)
    splits = _splits(builder, options)
    train, val = (_survey(splits[split], split, builder) for split in ("train", "val"))
    if train[1] != val[1]:
        raise ValueError(f"dataset.builder={builder!r}: train examples have shape {train[1]}, val examples {val[1]}")
    digest = hashlib.sha256(f"{train[4]}:{val[4]}:{train[0]}:{val[0]}".encode()).hexdigest()[:16]
    return {
        "pipeline": np.array(json.dumps({"builder": builder, "options": dict(options or {})})),
        "count_train": np.array(train[0]),
        "count_val": np.array(val[0]),
        "input_shape": np.array(train[1], dtype=np.int64),
        "num_classes": np.array(max(train[3], val[3]) + 1),
        "digest": np.array(digest),
    }


user_pipeline.composition_check = check_user_pipeline  # type: ignore[attr-defined]


class PipelineData:
    """One split of a user's pipeline: ``len`` examples of ``shape[1:]``, batched in the
    pipeline's order (:meth:`batches`); ``head(n)`` gives the first ``n`` as arrays."""

    def __init__(self, examples: Any, count: int, input_shape: Tuple[int, ...]) -> None:
        self.examples = examples
        self.shape = (int(count), *(int(side) for side in input_shape))
        self.dtype = np.dtype(np.float32)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def batches(self, batch_size: int) -> Any:
        """The split as float32 batches of ``(features, labels)``, in the pipeline's order."""
        import tensorflow as tf

        steps = -(-len(self) // int(batch_size))
        return (
            self.examples.map(lambda features, label: (tf.cast(features, tf.float32), tf.cast(label, tf.int64)))
            .batch(int(batch_size))
            .apply(tf.data.experimental.assert_cardinality(steps))
            .prefetch(tf.data.AUTOTUNE)
        )

    def head(self, count: int) -> Tuple[np.ndarray, np.ndarray]:
        """The first ``count`` examples as arrays (features float32, labels int64)."""
        pairs = list(self.examples.take(int(count)).as_numpy_iterator())
        return (
            np.stack([np.asarray(features, np.float32) for features, _ in pairs]),
            np.array([int(label) for _, label in pairs], dtype=np.int64),
        )

    def __getitem__(self, index: Any) -> np.ndarray:
        raise TypeError(
            "a user's pipeline is streamed in its own order: it has no random access (use batches() or head())"
        )

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError("a user's pipeline is streamed, not loaded into memory")


def load_pipeline(manifest: Mapping[str, Any]) -> Dict[str, Any]:
    """A training job's data from a pipeline manifest: the builder called again, its splits as
    :class:`PipelineData`; no label arrays (``y_*`` are None), ``num_classes``, ``digest`` and
    ``batch_order``."""
    recipe = json.loads(str(manifest["pipeline"]))
    splits = _splits(recipe["builder"], recipe["options"])
    shape = tuple(int(side) for side in np.asarray(manifest["input_shape"]))
    return {
        "x_train": PipelineData(splits["train"], int(manifest["count_train"]), shape),
        "y_train": None,
        "x_val": PipelineData(splits["val"], int(manifest["count_val"]), shape),
        "y_val": None,
        "num_classes": int(manifest["num_classes"]),
        "digest": str(manifest["digest"]),
        "batch_order": USER_ORDER,
    }


def is_pipeline(x: Any) -> bool:
    """Whether training data is a user's pipeline (no random access, its own order)."""
    return isinstance(x, PipelineData)


def first_examples(arrays: Mapping[str, Any], count: int) -> Tuple[Any, Any]:
    """The first ``count`` training examples as arrays, whatever holds the data."""
    x = arrays["x_train"]
    if is_pipeline(x):
        return x.head(count)
    return x[:count], arrays["y_train"][:count]
