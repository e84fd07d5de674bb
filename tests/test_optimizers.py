"""Optimizers from options: Keras builds each type through its registry, with the option's knobs."""

from __future__ import annotations

import math

import pytest

from pipeline.config.schema import COMMON_OPTIMIZER_KNOBS, OPTIMIZER_TYPES
from pipeline.training.optimizers import build_optimizer, keras_identifier, unsupported_knobs

pytestmark = pytest.mark.tf
keras = pytest.importorskip("keras")


def test_every_knob_of_the_table_is_an_argument_of_its_keras_class() -> None:
    """The table stays in the config stage (which never imports Keras); Keras' signatures check it."""
    assert unsupported_knobs() == {}


@pytest.mark.parametrize("kind", list(OPTIMIZER_TYPES))
def test_every_type_builds_its_keras_class(kind: str) -> None:
    built = build_optimizer({"type": kind}, 0.01)
    assert type(built) is getattr(keras.optimizers, OPTIMIZER_TYPES[kind][0])
    assert math.isclose(float(built.learning_rate), 0.01, rel_tol=1e-6)


def test_knobs_reach_the_optimizer_and_unset_ones_keep_keras_defaults() -> None:
    built = build_optimizer({"name": "nag", "type": "sgd", "momentum": 0.9, "nesterov": True, "clipnorm": None}, 0.1)
    assert built.momentum == 0.9 and built.nesterov is True and built.clipnorm is None
    assert keras_identifier({"type": "adam", "beta_1": 0.8}, 0.1) == {
        "class_name": "Adam",
        "config": {"learning_rate": 0.1, "beta_1": 0.8},
    }
    assert set(COMMON_OPTIMIZER_KNOBS) <= set(build_optimizer({"type": "adam"}, 0.1).get_config())


def test_a_schedule_is_the_learning_rate() -> None:
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    built = build_optimizer({"type": "rmsprop"}, schedule)
    assert math.isclose(float(built.learning_rate), 0.1, rel_tol=1e-6)
    assert isinstance(built.get_config()["learning_rate"], dict)  # serialised as a schedule, not a number


# --------------------------------------------------------------------------------------
# Schedule-free AdamW: evaluation on the averaged weights
# --------------------------------------------------------------------------------------


def _schedule_free_model(seed: int = 0):
    import numpy as np

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    model.compile(
        optimizer=build_optimizer({"type": "schedule_free"}, 0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.optimizer.build(model.trainable_variables)  # eagerly, as pipeline.training.run.build_run does
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(96, 8)).astype("float32"), rng.integers(0, 3, 96)
    return model, (x[:64], y[:64]), (x[64:], y[64:])


def _weights(model) -> list:
    return [keras.ops.convert_to_numpy(variable.value).copy() for variable in model.trainable_variables]


def test_averaged_weights_are_x_and_the_training_weights_come_back_bit_for_bit() -> None:
    """x = (y − (1 − β1)·z)/β1 (the formula Keras' update_step recovers x_old with), checked by
    hand on the optimizer's own slots; y restored exactly afterwards."""
    import numpy as np

    from pipeline.training.optimizers import evaluation_weights, is_schedule_free

    model, train, _ = _schedule_free_model()
    assert is_schedule_free(model.optimizer)
    model.fit(*train, epochs=2, batch_size=16, verbose=0)
    before = _weights(model)
    momentum = [keras.ops.convert_to_numpy(model.optimizer._momentums[model.optimizer._get_variable_index(v)].value) for v in model.trainable_variables]
    with evaluation_weights([model]):
        inside = _weights(model)
    for y, z, x in zip(before, momentum, inside):
        np.testing.assert_allclose(x, (y - 0.1 * z) / 0.9, rtol=1e-5, atol=1e-7)
        assert not np.array_equal(x, y)  # the averaged weights are another point
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model)))
    # Any other optimizer is left alone.
    other = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    other.compile(optimizer=build_optimizer({"type": "adam"}, 0.01), loss="mse")
    snapshot = _weights(other)
    with evaluation_weights([other]):
        assert all(np.array_equal(a, b) for a, b in zip(snapshot, _weights(other)))


def test_fits_validation_uses_the_averaged_weights_only_with_the_callback() -> None:
    """The test that fails if the swap is missing: fit's own val_loss is y's; with the callback
    it is x's, and training goes on from y (the same training losses either way)."""
    import numpy as np

    from pipeline.training.optimizers import evaluation_callback, evaluation_weights

    histories = {}
    for swap in (False, True):
        model, train, val = _schedule_free_model()
        callbacks = [evaluation_callback()] if swap else []
        histories[swap] = model.fit(*train, epochs=3, batch_size=16, validation_data=val, verbose=0, callbacks=callbacks).history
        at_y = model.evaluate(*val, verbose=0)
        with evaluation_weights([model]):
            at_x = model.evaluate(*val, verbose=0)
        assert histories[swap]["val_loss"][-1] == pytest.approx(at_x if swap else at_y, rel=1e-6)
        assert abs(at_x - at_y) > 1e-4
    np.testing.assert_array_equal(histories[True]["loss"], histories[False]["loss"])
