"""A user's own input pipeline for ``dataset=pipeline``: scikit-learn's digits as a
``tf.data.Dataset`` of single examples (``tf_data_digits``) and as a ``keras.utils.PyDataset``
of batches (``pydataset_digits``).

    snakemake --cores all --config overrides="dataset=pipeline dataset.builder=examples.own_pipeline.tf_data_digits dataset.name=own"
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np


def _digits(validation: int = 360) -> tuple:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16).astype(np.float32), digits.target.astype(np.int64)
    return (x[:-validation], y[:-validation]), (x[-validation:], y[-validation:])


def tf_data_digits(validation: int = 360, shuffle_seed: int | None = None) -> Dict[str, Any]:
    """The digits as ``tf.data`` pipelines of single examples; ``shuffle_seed`` shuffles the
    training split (a different order every epoch, from that seed)."""
    import tensorflow as tf

    (x_train, y_train), (x_val, y_val) = _digits(validation)
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    if shuffle_seed is not None:
        train = train.shuffle(len(x_train), seed=shuffle_seed, reshuffle_each_iteration=True)
    return {"train": train, "val": tf.data.Dataset.from_tensor_slices((x_val, y_val))}


def pydataset_digits(validation: int = 360, batch_size: int = 100) -> Dict[str, Any]:
    """The digits as ``keras.utils.PyDataset`` objects of ``batch_size`` examples per batch."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
            super().__init__()
            self.x, self.y = x, y

        def __len__(self) -> int:
            return -(-len(self.x) // batch_size)

        def __getitem__(self, index: int) -> tuple:
            rows = slice(index * batch_size, (index + 1) * batch_size)
            return self.x[rows], self.y[rows]

    (x_train, y_train), (x_val, y_val) = _digits(validation)
    return {"train": Batches(x_train, y_train), "val": Batches(x_val, y_val)}
