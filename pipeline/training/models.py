"""Model builders selected by ``model._target_``.

A builder takes ``input_shape`` (one example's shape, without the batch axis) and
``num_classes`` from the pipeline, plus its own keyword arguments from the model option,
and returns an *uncompiled* ``keras.Model`` that outputs logits. Keras is imported inside
the builders so that validating a study (which imports this module to check signatures)
stays fast.
"""

from __future__ import annotations

from typing import Any, Sequence


def mlp(input_shape: Sequence[int], num_classes: int, hidden_units: Sequence[int] = (100, 100), activation: str = "relu") -> Any:
    """Fully connected network: ``Flatten`` then one ``Dense`` per entry of ``hidden_units``."""
    import keras

    if isinstance(hidden_units, (int, str)) or not hidden_units or any(int(units) < 1 for units in hidden_units):
        raise ValueError(f"model.hidden_units must be a non-empty list of positive sizes, got {hidden_units!r}")
    inputs = keras.Input(shape=tuple(input_shape))
    x = keras.layers.Flatten()(inputs)
    for units in hidden_units:
        x = keras.layers.Dense(int(units), activation=activation)(x)
    # float32 logits even under a mixed-precision policy, for a numerically stable loss.
    outputs = keras.layers.Dense(num_classes, dtype="float32")(x)
    return keras.Model(inputs, outputs, name="mlp")


def cnn(
    input_shape: Sequence[int],
    num_classes: int,
    channels: int = 25,
    layers: int = 3,
    kernel_size: int = 5,
    strides: int = 2,
    activation: str = "relu",
) -> Any:
    """The MNIST-1D paper's small CNN: ``layers`` Conv1D layers of ``channels`` channels.

    A flat input (``(length,)``) is read as a one-channel signal.
    """
    import keras

    if layers < 1 or channels < 1:
        raise ValueError(f"model.layers and model.channels must be >= 1, got {layers} and {channels}")
    inputs = keras.Input(shape=tuple(input_shape))
    x = keras.layers.Reshape((*input_shape, 1))(inputs) if len(input_shape) == 1 else inputs
    for _ in range(layers):
        x = keras.layers.Conv1D(channels, kernel_size, strides=strides, padding="same", activation=activation)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(num_classes, dtype="float32")(x)
    return keras.Model(inputs, outputs, name="cnn")


def build_model(options: dict, input_shape: Sequence[int], num_classes: int) -> Any:
    """Call the model option's ``_target_`` with the data's shape and its keyword arguments."""
    from hydra.utils import instantiate

    config = {key: value for key, value in options.items() if key != "name"}
    return instantiate(config, input_shape=tuple(input_shape), num_classes=int(num_classes), _convert_="all")
