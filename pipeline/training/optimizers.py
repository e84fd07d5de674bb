"""Keras optimizers from validated optimizer options.

An option names its ``type`` (a key of :data:`pipeline.config.schema.OPTIMIZER_TYPES`) and the
knobs it sets; Keras builds it through its own registry, ``keras.optimizers.get`` with a
``{"class_name", "config"}`` mapping, the same form Keras serialises optimizers in. Unset knobs
keep Keras' defaults. Keras is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Dict, Iterator, Mapping, Sequence

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


def is_schedule_free(optimizer: Any) -> bool:
    """Whether ``optimizer`` is Keras' ``ScheduleFreeAdamW`` (its model weights during training
    are an interpolation, not the weights to evaluate)."""
    import keras

    schedule_free = getattr(keras.optimizers, "ScheduleFreeAdamW", None)
    return schedule_free is not None and isinstance(optimizer, schedule_free)


@contextlib.contextmanager
def evaluation_weights(models: Sequence[Any]) -> Iterator[None]:
    """Within the block, each schedule-free model holds its averaged weights; after it, the
    training weights again, bit for bit. Other models are left alone.

    Schedule-free AdamW trains with the model's variables at ``y = (1 − β1)·z + β1·x``, an
    interpolation between the sequence ``z`` the gradient steps move (the optimizer's
    ``momentum`` slot) and the running average ``x``, which is what generalises and what
    evaluation must see (Defazio et al. 2024). Keras' ``fit`` does not switch: its validation
    runs on ``y``. A Keras whose optimizer has ``swap_to_eval``/``swap_to_train`` is asked to
    switch itself; Keras 3.15 has neither, so ``x = (y − (1 − β1)·z) / β1`` is computed here,
    as its ``update_step`` recovers ``x_old``, and ``y`` is put back from a copy afterwards.
    """
    import keras

    chosen = [model for model in models if is_schedule_free(model.optimizer) and model.optimizer.built]
    if not chosen:
        yield
        return
    saved = []
    for model in chosen:
        optimizer = model.optimizer
        if hasattr(optimizer, "swap_to_eval"):
            optimizer.swap_to_eval()
            continue
        for variable in model.trainable_variables:
            momentum = optimizer._momentums[optimizer._get_variable_index(variable)]
            if momentum is None:
                continue
            beta_1 = keras.ops.cast(optimizer.beta_1, variable.dtype)
            saved.append((variable, keras.ops.copy(variable.value)))
            variable.assign((variable.value - (1 - beta_1) * momentum.value) / beta_1)
    try:
        yield
    finally:
        for model in chosen:
            if hasattr(model.optimizer, "swap_to_train"):
                model.optimizer.swap_to_train()
        for variable, value in saved:
            variable.assign(value)


def evaluation_callback() -> Any:
    """A Keras callback that evaluates a schedule-free model on its averaged weights inside
    ``fit`` (:func:`evaluation_weights` from ``on_test_begin`` to ``on_test_end``)."""
    import keras

    class AveragedWeightsForEvaluation(keras.callbacks.Callback):
        def on_test_begin(self, logs: Any = None) -> None:
            self._swap = evaluation_weights([self.model])
            self._swap.__enter__()

        def on_test_end(self, logs: Any = None) -> None:
            self._swap.__exit__(None, None, None)

    return AveragedWeightsForEvaluation()


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
