"""A user's own Keras model builder, selected by a config option such as::

    # conf/model/wide.yaml
    name: wide
    _target_: examples.custom_model.wide_mlp
    width: 256

Any function works if it takes ``input_shape`` and ``num_classes`` (the pipeline passes both)
plus its own keyword arguments from the option, and returns an uncompiled ``keras.Model``
that outputs logits. Import Keras inside the function: the workflow imports this module
when it validates the study, and TensorFlow's import costs seconds.
"""

from __future__ import annotations

from typing import Any, Sequence


def wide_mlp(input_shape: Sequence[int], num_classes: int, width: int = 256, dropout: float = 0.0) -> Any:
    """One wide hidden layer, optional dropout, logits out."""
    import keras

    inputs = keras.Input(shape=tuple(input_shape))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(width, activation="relu")(x)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, dtype="float32")(x)
    return keras.Model(inputs, outputs, name="wide_mlp")
