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
