"""Tests of pipeline.training.models: the built-in builders' structure, and a user's own builder."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any, Iterator, List

import keras
import numpy as np
import pytest
import yaml

from pipeline.config.compose import check_target
from pipeline.config.schema import CONF_DIR, StudyConfigError
from pipeline.training.models import build_model, cnn, mlp

pytestmark = pytest.mark.tf


def conf_option(name: str) -> dict:
    return yaml.safe_load((CONF_DIR / "model" / f"{name}.yaml").read_text())


def layers_of(model: Any, kind: type) -> List[Any]:
    return [layer for layer in model.layers if isinstance(layer, kind)]


@pytest.fixture()
def mixed_precision() -> Iterator[None]:
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


# --------------------------------------------------------------------------------------
# Built-in builders
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("length, classes", [(40, 10), (64, 7)])
def test_mlp_structure_and_output(length: int, classes: int) -> None:
    model = build_model(conf_option("mlp"), (length,), classes)
    assert model.name == "mlp"
    assert model.input_shape == (None, length)
    assert model.output_shape == (None, classes)
    dense = layers_of(model, keras.layers.Dense)
    assert [layer.units for layer in dense] == [100, 100, classes]
    assert [layer.units for layer in dense[:-1]] == conf_option("mlp")["hidden_units"]
    assert [layer.activation.__name__ for layer in dense] == ["relu", "relu", "linear"]  # logits
    out = model(np.zeros((3, length), dtype=np.float32))
    assert tuple(out.shape) == (3, classes)


@pytest.mark.parametrize("length, classes, steps", [(40, 10, [20, 10, 5]), (64, 10, [32, 16, 8])])
def test_cnn_structure_and_output(length: int, classes: int, steps: List[int]) -> None:
    option = conf_option("cnn")
    model = build_model(option, (length,), classes)
    assert model.name == "cnn"
    assert model.input_shape == (None, length)
    assert model.output_shape == (None, classes)
    convs = layers_of(model, keras.layers.Conv1D)
    assert len(convs) == 3 == option["layers"]
    assert [layer.filters for layer in convs] == [25, 25, 25] == [option["channels"]] * 3
    assert all(layer.kernel_size == (option["kernel_size"],) and layer.strides == (option["strides"],) for layer in convs)
    # A flat input is read as a one-channel signal, each stride-2 layer halves its length.
    assert [layer.output.shape[1:] for layer in convs] == [(step, 25) for step in steps]
    assert layers_of(model, keras.layers.Reshape)[0].output.shape[1:] == (length, 1)
    dense = layers_of(model, keras.layers.Dense)
    assert [layer.units for layer in dense] == [classes]
    out = model(np.zeros((2, length), dtype=np.float32))
    assert tuple(out.shape) == (2, classes)


def test_cnn_takes_a_multichannel_signal_as_is() -> None:
    model = cnn((40, 3), 5, channels=4, layers=2)
    assert not layers_of(model, keras.layers.Reshape)
    assert [layer.output.shape[1:] for layer in layers_of(model, keras.layers.Conv1D)] == [(20, 4), (10, 4)]
    assert model.output_shape == (None, 5)


def test_builders_follow_their_arguments() -> None:
    model = mlp((12,), 3, hidden_units=[7, 5, 2], activation="tanh")
    assert [layer.units for layer in layers_of(model, keras.layers.Dense)] == [7, 5, 2, 3]
    assert layers_of(model, keras.layers.Dense)[0].activation.__name__ == "tanh"
    model = cnn((16,), 4, channels=6, layers=1, kernel_size=3, strides=4)
    (conv,) = layers_of(model, keras.layers.Conv1D)
    assert (conv.filters, conv.kernel_size, conv.strides) == (6, (3,), (4,))
    assert conv.output.shape[1:] == (4, 6)


@pytest.mark.parametrize("builder", [mlp, cnn])
def test_logits_are_float32(builder: Any) -> None:
    model = builder((40,), 10)
    assert model.layers[-1].dtype_policy.compute_dtype == "float32"
    assert model.output.dtype == "float32"


@pytest.mark.parametrize("builder", [mlp, cnn])
def test_logits_are_float32_under_mixed_precision(builder: Any, mixed_precision: None) -> None:
    model = builder((40,), 10)
    hidden = layers_of(model, keras.layers.Dense)[:-1] + layers_of(model, keras.layers.Conv1D)
    assert hidden and all(layer.dtype_policy.compute_dtype == "float16" for layer in hidden)
    last = model.layers[-1]
    assert isinstance(last, keras.layers.Dense)
    assert last.dtype_policy.compute_dtype == "float32"
    assert model.output.dtype == "float32"
    assert keras.ops.convert_to_numpy(model(np.zeros((1, 40), dtype=np.float32))).dtype == np.float32


@pytest.mark.parametrize("hidden_units", [[], [100, 0], [-1]])
def test_mlp_bad_hidden_units(hidden_units: list) -> None:
    with pytest.raises(ValueError, match=r"model\.hidden_units"):
        mlp((40,), 10, hidden_units=hidden_units)


def test_mlp_scalar_hidden_units_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"model\.hidden_units"):
        mlp((40,), 10, hidden_units=100)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs, key", [({"layers": 0}, "model.layers"), ({"channels": 0}, "model.channels"), ({"layers": -2}, "model.layers")])
def test_cnn_bad_arguments(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")) as error:
        cnn((40,), 10, **kwargs)
    assert str(next(iter(kwargs.values()))) in str(error.value)


def test_build_model_drops_the_name_and_passes_options() -> None:
    model = build_model({"name": "tiny", "_target_": "pipeline.training.models.mlp", "hidden_units": [8]}, [40], 4)
    assert [layer.units for layer in layers_of(model, keras.layers.Dense)] == [8, 4]
    assert model.input_shape == (None, 40)


# --------------------------------------------------------------------------------------
# A user's own builder
# --------------------------------------------------------------------------------------

USER_MODULE = '''
"""A user's builder: keras is imported inside, so importing this module stays cheap."""

CALLS = []


def tiny(input_shape, num_classes, width=8, depth=1):
    import keras

    CALLS.append({"input_shape": input_shape, "num_classes": num_classes, "width": width, "depth": depth})
    inputs = keras.Input(shape=tuple(input_shape))
    x = inputs
    for _ in range(depth):
        x = keras.layers.Dense(width, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, dtype="float32")(x), name="tiny")
'''


@pytest.fixture()
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    name = "lrstudy_test_user_models"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    module = __import__(name)
    yield module
    sys.modules.pop(name, None)


def test_build_model_with_a_users_builder(user_module: Any) -> None:
    option = {"name": "tiny", "_target_": f"{user_module.__name__}.tiny", "width": 6, "depth": 2}
    model = build_model(option, (64,), 10)
    assert model.name == "tiny"
    assert model.output_shape == (None, 10)
    assert [layer.units for layer in layers_of(model, keras.layers.Dense)] == [6, 6, 10]
    assert len(user_module.CALLS) == 1
    call = user_module.CALLS[0]
    assert tuple(call["input_shape"]) == (64,)
    assert call["num_classes"] == 10 and isinstance(call["num_classes"], int)
    assert (call["width"], call["depth"]) == (6, 2)


def test_check_target_accepts_a_users_builder(user_module: Any) -> None:
    option = {"name": "tiny", "_target_": f"{user_module.__name__}.tiny", "width": 6, "depth": 2}
    assert check_target("model", option, fixed=("input_shape", "num_classes")) is user_module.tiny
    assert check_target("model", {"_target_": f"{user_module.__name__}.tiny"}, fixed=("input_shape", "num_classes")) is user_module.tiny
    assert user_module.CALLS == []  # checking never builds


def test_check_target_rejects_a_typo(user_module: Any) -> None:
    option = {"name": "tiny", "_target_": f"{user_module.__name__}.tiny", "widht": 6}
    with pytest.raises(StudyConfigError) as error:
        check_target("model", option, fixed=("input_shape", "num_classes"))
    message = str(error.value)
    assert "widht" in message
    assert f"{user_module.__name__}.tiny" in message
    assert "its arguments: width, depth" in message


def test_check_target_rejects_a_missing_builder(user_module: Any) -> None:
    with pytest.raises(StudyConfigError, match=r"cannot be imported"):
        check_target("model", {"_target_": f"{user_module.__name__}.huge"}, fixed=("input_shape", "num_classes"))


@pytest.mark.parametrize("builder", [mlp, cnn])
def test_check_target_accepts_the_shipped_options(builder: Any) -> None:
    option = conf_option(builder.__name__)
    assert option["_target_"] == f"{builder.__module__}.{builder.__name__}"
    check_target("model", option, fixed=("input_shape", "num_classes"))  # raises on a misfit
    assert set(option) - {"name", "_target_"} <= set(inspect.signature(builder).parameters) - {"input_shape", "num_classes"}


# --------------------------------------------------------------------------------------
# keras_app: any keras.applications model, a fresh head
# --------------------------------------------------------------------------------------

from pipeline.training.models import keras_app  # noqa: E402

SMALL_APP = {"application": "MobileNetV3Small", "options": {"minimalistic": True, "alpha": 0.75}}


def test_keras_app_builds_the_named_application_with_a_fresh_head() -> None:
    model = keras_app((32, 32, 3), 7, **SMALL_APP)
    assert model.output_shape == (None, 7)
    base, head = model.layers[1], model.layers[-1]
    assert base.name.startswith("MobileNetV3Small") and head.name == "head" and head.units == 7
    assert model(np.zeros((2, 32, 32, 3), np.float32)).shape == (2, 7)
    # One grey channel works as well: the input shape is the data's.
    assert keras_app((32, 32, 1), 3, **SMALL_APP).input_shape == (None, 32, 32, 1)


def test_keras_app_logits_stay_float32_under_mixed_precision(mixed_precision: None) -> None:
    model = keras_app((32, 32, 3), 4, **SMALL_APP)
    assert model.layers[1].compute_dtype == "float16"
    assert model.layers[-1].dtype_policy.compute_dtype == "float32"
    assert model(np.zeros((1, 32, 32, 3), np.float32)).dtype == "float32"


def test_keras_app_loads_a_local_weights_file(tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    first = keras_app((32, 32, 3), 4, **SMALL_APP)
    weights = tmp_path / "notop.weights.h5"
    first.layers[1].save_weights(weights)
    keras.utils.set_random_seed(2)
    loaded = keras_app((32, 32, 3), 4, weights=str(weights), **SMALL_APP)
    for mine, theirs in zip(loaded.layers[1].weights, first.layers[1].weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"input_shape": (64,)}, r"model=keras_app needs images of shape \(height, width, channels\); .* shape \(64,\)"),
        ({"application": "ResNet51"}, r"model.application='ResNet51' is not a keras.applications model; valid: .*ResNet50"),
        ({"application": "imagenet_utils"}, r"model.application='imagenet_utils' is not a keras.applications model"),
        ({"weights": "imagenet"}, r"model.weights='imagenet': no such file; .* \(no download happens here\)"),
        ({"options": {"alpah": 1.0}}, r"model.options \['alpah'\] are not arguments of keras.applications.MobileNetV3Small; valid: .*'alpha'"),
        ({"pooling": "sum"}, r"model.pooling='sum': valid: avg, max"),
    ],
)
def test_keras_app_refuses_bad_options_by_name(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        keras_app(**{"input_shape": (32, 32, 3), "num_classes": 3, **arguments})


def test_keras_app_is_checked_when_the_study_is_composed() -> None:
    from pipeline.config.compose import compose_study

    assert compose_study("model=keras_app model.application=ResNet50").model["application"] == "ResNet50"
    with pytest.raises(StudyConfigError, match=r"model.application='ResNet51' is not a keras.applications model"):
        compose_study("model=keras_app model.application=ResNet51")
    with pytest.raises(StudyConfigError, match=r"model.options \['alpah'\]"):
        compose_study("model=keras_app +model.options.alpah=1")
