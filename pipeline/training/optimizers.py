"""Keras optimizers from validated optimizer options.

An option names its ``type`` (a key of :data:`pipeline.config.schema.OPTIMIZER_TYPES`) and the
knobs it sets; Keras builds it through its own registry, ``keras.optimizers.get`` with a
``{"class_name", "config"}`` mapping, the same form Keras serialises optimizers in. Unset knobs
keep Keras' defaults. Keras is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, Mapping

from pipeline.config.schema import COMMON_OPTIMIZER_KNOBS, OPTIMIZER_TYPES


def keras_identifier(options: Mapping[str, Any], learning_rate: Any) -> Dict[str, Any]:
    """The ``keras.optimizers.get`` identifier of an option at a rate (a float or a schedule)."""
    class_name = OPTIMIZER_TYPES[options["type"]][0]
    knobs = {key: value for key, value in options.items() if key not in ("type", "name") and value is not None}
    return {"class_name": class_name, "config": {"learning_rate": learning_rate, **knobs}}


def build_optimizer(options: Mapping[str, Any], learning_rate: Any) -> Any:
    """A Keras optimizer from a validated optimizer option (``type`` plus set knobs)."""
    import keras

    return keras.optimizers.get(keras_identifier(options, learning_rate))


def keras_knobs(kind: str) -> frozenset[str]:
    """The keyword arguments the Keras class of an optimizer type accepts, from its signature
    (what the knobs of ``OPTIMIZER_TYPES`` must be a subset of)."""
    import keras

    class_name = OPTIMIZER_TYPES[kind][0]
    return frozenset(inspect.signature(getattr(keras.optimizers, class_name)).parameters)


def unsupported_knobs() -> Dict[str, frozenset[str]]:
    """Per optimizer type, the knobs the table allows that its Keras class does not take
    (empty when the table and Keras agree)."""
    found = {}
    for kind, (_, knobs) in OPTIMIZER_TYPES.items():
        missing = frozenset((*knobs, *COMMON_OPTIMIZER_KNOBS)) - keras_knobs(kind)
        if missing:
            found[kind] = missing
    return found
