"""Model builders selected by ``model._target_``.

A builder takes ``input_shape`` (one example's shape, without the batch axis) and
``num_classes`` from the pipeline, plus its own keyword arguments from the model option,
and returns an *uncompiled* ``keras.Model`` that outputs logits. Keras is imported inside
the builders so that validating a study (which imports this module to check signatures)
stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence


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


def keras_app(
    input_shape: Sequence[int],
    num_classes: int,
    application: str = "MobileNetV3Small",
    weights: Optional[str] = None,
    pooling: str = "avg",
    dropout: float = 0.0,
    options: Optional[Mapping[str, Any]] = None,
) -> Any:
    """Any ``keras.applications`` model by name, with a fresh classification head.

    Args:
        application: The constructor's name in ``keras.applications`` (``ResNet50``,
            ``MobileNetV3Small``, ``EfficientNetB0``, ...).
        weights: ``None`` (random initialisation, the default: this tool trains from scratch and
            needs no network) or the path of a local weights file for the network without its
            top (Keras' ``*_notop.h5`` / ``.weights.h5``); ``"imagenet"`` would download and is
            refused: download the file once and give its path.
        pooling: ``avg`` or ``max``: how the last feature map becomes one vector.
        dropout: Dropout before the head (0 = none).
        options: Further keyword arguments of the constructor (e.g. ``{alpha: 0.75}``,
            ``{include_preprocessing: false}``).

    The input shape is the data's (height, width, channels); the head is one ``Dense`` layer of
    ``num_classes`` float32 logits, so a mixed-precision policy set before the build applies to
    the network and the loss stays in float32.
    """
    import keras

    if len(tuple(input_shape)) != 3:
        raise ValueError(
            f"model=keras_app needs images of shape (height, width, channels); the data's examples have shape "
            f"{tuple(input_shape)}"
        )
    check_keras_app(application, weights, pooling, dropout, options)
    constructor = getattr(keras.applications, application)
    extra = dict(options or {})
    base = constructor(include_top=False, weights=None, input_shape=tuple(input_shape), pooling=pooling, **extra)
    if weights is not None:
        base.load_weights(str(weights))
    inputs = keras.Input(shape=tuple(input_shape))
    x = base(inputs)
    if dropout:
        x = keras.layers.Dropout(float(dropout))(x)
    outputs = keras.layers.Dense(num_classes, dtype="float32", name="head")(x)
    return keras.Model(inputs, outputs, name=application.lower())


def check_keras_app(
    application: str = "MobileNetV3Small",
    weights: Optional[str] = None,
    pooling: str = "avg",
    dropout: float = 0.0,
    options: Optional[Mapping[str, Any]] = None,
    **_: Any,
) -> None:
    """The checks of :func:`keras_app`'s options, also run when the study is composed (this
    imports Keras: only for ``model=keras_app``); raises ValueError naming the key and the valid
    choices."""
    import inspect

    import keras

    constructor = getattr(keras.applications, application, None) if isinstance(application, str) else None
    if not (callable(constructor) and str(application)[:1].isupper()):
        names = sorted(name for name in dir(keras.applications) if name[:1].isupper() and callable(getattr(keras.applications, name)))
        raise ValueError(f"model.application={application!r} is not a keras.applications model; valid: {', '.join(names)}")
    if weights is not None and not Path(str(weights)).is_file():
        raise ValueError(
            f"model.weights={weights!r}: no such file; give the path of a local weights file of {application} without "
            "its top (no download happens here), or null to train from a random initialisation"
        )
    if pooling not in ("avg", "max"):
        raise ValueError(f"model.pooling={pooling!r}: valid: avg, max")
    if not 0 <= float(dropout) < 1:
        raise ValueError(f"model.dropout={dropout!r} must be in [0, 1)")
    accepted = set(inspect.signature(constructor).parameters) - {"include_top", "weights", "input_shape", "pooling", "input_tensor"}
    unknown = sorted(set(dict(options or {})) - accepted)
    if unknown:
        raise ValueError(f"model.options {unknown} are not arguments of keras.applications.{application}; valid: {sorted(accepted)}")


# The study's validation runs it before any job (pipeline.config.validation reads a builder's
# ``composition_check``).
keras_app.composition_check = check_keras_app  # type: ignore[attr-defined]


def build_model(options: dict, input_shape: Sequence[int], num_classes: int) -> Any:
    """Call the model option's ``_target_`` with the data's shape and its keyword arguments."""
    from hydra.utils import instantiate

    config = {key: value for key, value in options.items() if key != "name"}
    return instantiate(config, input_shape=tuple(input_shape), num_classes=int(num_classes), _convert_="all")
