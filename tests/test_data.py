"""Tests of pipeline.training.data: the builders, the user's .npz plug-in, the cached file and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
from factories import REPO

import pipeline.training.data as data
from pipeline.training.data import (
    ARRAY_KEYS,
    build_dataset,
    digits,
    load_npz,
    mnist1d,
    npz_file,
    num_classes,
    save_npz,
)

DIGITS_TOTAL = 1797


def small_arrays(train: int = 6, val: int = 4, features: int = 3) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.normal(size=(train, features)),  # float64 on purpose: the loader makes float32
        "y_train": (np.arange(train) % 3).astype(np.int32),
        "x_val": rng.normal(size=(val, features)),
        "y_val": (np.arange(val) % 3).astype(np.int32),
    }


def assert_arrays_equal(left: Dict[str, np.ndarray], right: Dict[str, np.ndarray]) -> None:
    assert set(left) == set(right) == set(ARRAY_KEYS)
    for key in ARRAY_KEYS:
        assert left[key].dtype == right[key].dtype, key
        np.testing.assert_array_equal(left[key], right[key], err_msg=key)


# --------------------------------------------------------------------------------------
# mnist1d
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_small() -> Dict[str, np.ndarray]:
    return mnist1d(num_samples=200, train_split=0.75, seed=3)


def test_mnist1d_arrays_types_and_sizes(mnist_small: Dict[str, np.ndarray]) -> None:
    assert set(mnist_small) == set(ARRAY_KEYS)
    assert mnist_small["x_train"].dtype == np.float32 and mnist_small["x_val"].dtype == np.float32
    assert mnist_small["y_train"].dtype == np.int64 and mnist_small["y_val"].dtype == np.int64
    assert mnist_small["x_train"].shape == (150, 40)
    assert mnist_small["x_val"].shape == (50, 40)
    assert mnist_small["y_train"].shape == (150,) and mnist_small["y_val"].shape == (50,)
    assert set(np.unique(np.concatenate([mnist_small["y_train"], mnist_small["y_val"]]))) <= set(range(10))
    assert num_classes(mnist_small) == 10


def test_mnist1d_other_split() -> None:
    arrays = mnist1d(num_samples=300, train_split=0.8, seed=0)
    assert len(arrays["x_train"]) == 240 and len(arrays["y_train"]) == 240
    assert len(arrays["x_val"]) == 60 and len(arrays["y_val"]) == 60


def test_mnist1d_is_a_function_of_its_seed(mnist_small: Dict[str, np.ndarray]) -> None:
    again = mnist1d(num_samples=200, train_split=0.75, seed=3)
    assert_arrays_equal(again, mnist_small)
    other = mnist1d(num_samples=200, train_split=0.75, seed=4)
    assert other["x_train"].shape == mnist_small["x_train"].shape
    assert not np.array_equal(other["x_train"], mnist_small["x_train"])


# --------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------


def test_digits_stratified_split_and_range() -> None:
    arrays = digits(val_fraction=0.25, seed=0)
    val_size = int(np.ceil(0.25 * DIGITS_TOTAL))  # 450, scikit-learn rounds the test size up
    assert arrays["x_val"].shape == (val_size, 64)
    assert arrays["x_train"].shape == (DIGITS_TOTAL - val_size, 64)
    assert arrays["y_val"].shape == (val_size,) and arrays["y_train"].shape == (DIGITS_TOTAL - val_size,)
    assert arrays["x_train"].dtype == np.float32 and arrays["y_train"].dtype == np.int64
    for key in ("x_train", "x_val"):
        assert arrays[key].min() == 0.0 and arrays[key].max() == 1.0
    # Stratified: every class's share of the validation set is within one example of 25 %.
    train_counts = np.bincount(arrays["y_train"], minlength=10)
    val_counts = np.bincount(arrays["y_val"], minlength=10)
    assert len(val_counts) == 10 and (val_counts > 0).all()
    totals = train_counts + val_counts
    assert np.all(np.abs(val_counts - 0.25 * totals) <= 1)


def test_digits_seed_changes_the_split_only() -> None:
    a, b = digits(0.2, seed=0), digits(0.2, seed=1)
    assert a["x_val"].shape == b["x_val"].shape == (360, 64)
    assert not np.array_equal(a["y_val"], b["y_val"])
    assert_arrays_equal(digits(0.2, seed=0), a)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_digits_rejects_a_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"dataset\.val_fraction"):
        digits(val_fraction=fraction)


# --------------------------------------------------------------------------------------
# npz_file (a user's own data)
# --------------------------------------------------------------------------------------


def test_npz_file_round_trip(tmp_path: Path) -> None:
    arrays = small_arrays()
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays, extra=np.arange(3))  # extra arrays are ignored
    loaded = npz_file(str(path))
    assert set(loaded) == set(ARRAY_KEYS)
    assert loaded["x_train"].dtype == np.float32 and loaded["y_train"].dtype == np.int64
    np.testing.assert_array_equal(loaded["x_train"], arrays["x_train"].astype(np.float32))
    np.testing.assert_array_equal(loaded["x_val"], arrays["x_val"].astype(np.float32))
    np.testing.assert_array_equal(loaded["y_train"], arrays["y_train"])
    np.testing.assert_array_equal(loaded["y_val"], arrays["y_val"])


def test_npz_file_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "absent.npz"
    with pytest.raises(FileNotFoundError) as error:
        npz_file(str(path))
    assert str(path) in str(error.value)
    assert "x_train" in str(error.value)


def test_npz_file_missing_arrays_are_named(tmp_path: Path) -> None:
    arrays = small_arrays()
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=arrays["x_train"], y_train=arrays["y_train"], x_test=arrays["x_val"])
    with pytest.raises(ValueError) as error:
        npz_file(str(path))
    message = str(error.value)
    assert str(path) in message
    assert "'x_val'" in message and "'y_val'" in message
    assert "'x_train'" in message.split("it has")[1]  # what the file does have
    assert "lacks" in message and "'x_train'" not in message.split("it has")[0]


def test_npz_file_mismatched_lengths(tmp_path: Path) -> None:
    arrays = small_arrays()
    arrays["y_val"] = arrays["y_val"][:-1]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"x_val has 4 rows but y_val has 3") as error:
        npz_file(str(path))
    assert str(path) in str(error.value)


@pytest.mark.parametrize("labels", [np.array([0.0, 1.0, 2.0, 0.0]), np.array(["a", "b", "c", "a"]), np.zeros((4, 1), dtype=int)])
def test_npz_file_non_integer_labels(tmp_path: Path, labels: np.ndarray) -> None:
    arrays = small_arrays()
    arrays["y_val"] = labels
    path = tmp_path / "labels.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"y_val must be a 1-D array of integer class labels"):
        npz_file(str(path))


def test_npz_file_mismatched_feature_shapes(tmp_path: Path) -> None:
    arrays = small_arrays()
    arrays["x_val"] = arrays["x_val"][:, :2]
    path = tmp_path / "shapes.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"x_train rows \(3,\) differ from x_val rows \(2,\)"):
        npz_file(str(path))


def test_npz_file_empty_split(tmp_path: Path) -> None:
    arrays = small_arrays()
    arrays["x_val"] = arrays["x_val"][:0]
    arrays["y_val"] = arrays["y_val"][:0]
    path = tmp_path / "empty.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"the val split is empty"):
        npz_file(str(path))


# --------------------------------------------------------------------------------------
# save_npz / load_npz
# --------------------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    arrays = data._checked(small_arrays(), source="test")
    path = tmp_path / "sub" / "data.npz"
    save_npz(arrays, path)
    assert os.listdir(path.parent) == ["data.npz"]
    assert_arrays_equal(load_npz(path), arrays)
    assert_arrays_equal(load_npz(str(path)), arrays)


def test_save_npz_overwrites_atomically(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    first = data._checked(small_arrays(train=6), source="test")
    second = data._checked(small_arrays(train=9), source="test")
    save_npz(first, path)
    save_npz(second, path)
    assert os.listdir(tmp_path) == ["data.npz"]
    assert_arrays_equal(load_npz(path), second)


def test_save_npz_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_savez(file, **arrays) -> None:  # type: ignore[no-untyped-def]
        file.write(b"partial")  # a half-written file that must not survive
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    path = tmp_path / "data.npz"
    with pytest.raises(OSError, match="disk full"):
        save_npz(small_arrays(), path)
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def test_save_npz_failure_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data.npz"
    arrays = data._checked(small_arrays(), source="test")
    save_npz(arrays, path)

    def failing_savez(file, **arrays) -> None:  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(KeyboardInterrupt):
        save_npz(small_arrays(train=9), path)
    assert os.listdir(tmp_path) == ["data.npz"]
    assert_arrays_equal(load_npz(path), arrays)


def test_save_npz_to_a_path_without_npz_suffix(tmp_path: Path) -> None:
    arrays = data._checked(small_arrays(), source="test")
    path = tmp_path / "data.cache"
    save_npz(arrays, path)
    assert os.listdir(tmp_path) == ["data.cache"]
    assert_arrays_equal(load_npz(path), arrays)


def test_load_npz_checks_the_arrays(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    arrays = small_arrays()
    arrays["y_train"] = arrays["y_train"].astype(np.float32)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"y_train must be a 1-D array of integer class labels"):
        load_npz(path)


# --------------------------------------------------------------------------------------
# build_dataset and the CLI
# --------------------------------------------------------------------------------------


def test_build_dataset_with_a_target_option() -> None:
    arrays = build_dataset({"name": "digits", "_target_": "pipeline.training.data.digits", "val_fraction": 0.5, "seed": 1})
    assert arrays["x_val"].shape == (899, 64) and arrays["x_train"].shape == (898, 64)
    assert_arrays_equal(arrays, digits(val_fraction=0.5, seed=1))


def test_build_dataset_with_a_users_npz(tmp_path: Path) -> None:
    path = tmp_path / "mine.npz"
    np.savez(path, **small_arrays())
    arrays = build_dataset({"name": "mine", "_target_": "pipeline.training.data.npz_file", "path": str(path)})
    assert_arrays_equal(arrays, npz_file(str(path)))


def test_build_dataset_checks_a_users_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_bad_data_module.py").write_text(
        "import numpy as np\n"
        "def make():\n"
        "    return {'x_train': np.zeros((3, 2)), 'y_train': np.zeros(2, dtype=int),\n"
        "            'x_val': np.zeros((2, 2)), 'y_val': np.zeros(2, dtype=int)}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"my_bad_data_module\.make: x_train has 3 rows but y_train has 2"):
        build_dataset({"name": "bad", "_target_": "my_bad_data_module.make"})


def test_cli_writes_the_dataset_file(tmp_path: Path) -> None:
    source = tmp_path / "mine.npz"
    np.savez(source, **small_arrays())
    out = tmp_path / "data" / "mine.npz"
    options = {"name": "mine", "_target_": "pipeline.training.data.npz_file", "path": str(source)}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.training.data", "--options", json.dumps(options), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"dataset mine: 6 train, 4 val, input shape (3,), 3 classes -> {out}"
    assert os.listdir(out.parent) == ["mine.npz"]
    assert_arrays_equal(load_npz(out), npz_file(str(source)))


def test_cli_fails_on_a_missing_user_file(tmp_path: Path) -> None:
    out = tmp_path / "out.npz"
    options = {"name": "mine", "_target_": "pipeline.training.data.npz_file", "path": str(tmp_path / "absent.npz")}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.training.data", "--options", json.dumps(options), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "absent.npz" in result.stderr and "no such file" in result.stderr
    assert not out.exists()
    assert os.listdir(tmp_path) == []
