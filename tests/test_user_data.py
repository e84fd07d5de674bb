"""A user's own data: CSV tables (pipeline.training.data.csv_table) and the checks that refuse
bad files by name, at composition where cheap (headers, lazy .npz loads) and in the dataset job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from pipeline.config.compose import compose_study
from pipeline.config.errors import StudyConfigError
from pipeline.training.data import csv_table, npz_file

FEATURES = ["length", "width", "count"]


def table(rows: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    species = np.array(["setosa", "versicolor", "virginica"])[np.arange(rows) % 3]
    return pd.DataFrame(
        {"length": rng.normal(5, 2, rows), "width": rng.normal(-3, 0.5, rows), "count": rng.integers(0, 9, rows), "species": species}
    )


def write(frame: pd.DataFrame, path: Path) -> str:
    frame.to_csv(path, index=False)
    return str(path)


# --------------------------------------------------------------------------------------
# csv_table
# --------------------------------------------------------------------------------------


def test_a_table_splits_by_seed_and_stratified_with_classes_in_sorted_order(tmp_path: Path) -> None:
    frame = table()
    arrays = csv_table(write(frame, tmp_path / "t.csv"), label="species", val_fraction=0.25, seed=3, standardize=False)
    x = frame[FEATURES].to_numpy(dtype=np.float64).astype(np.float32)
    y = frame["species"].map({"setosa": 0, "versicolor": 1, "virginica": 2}).to_numpy()
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, random_state=3, stratify=y)
    np.testing.assert_array_equal(arrays["x_train"], x_train)
    np.testing.assert_array_equal(arrays["y_val"], y_val)
    assert arrays["x_train"].dtype == np.float32 and arrays["y_train"].dtype == np.int64
    assert np.bincount(arrays["y_train"]).tolist() == [15, 15, 15] and np.bincount(arrays["y_val"]).tolist() == [5, 5, 5]


def test_standardisation_uses_the_training_split_alone(tmp_path: Path) -> None:
    path = write(table(), tmp_path / "t.csv")
    raw = csv_table(path, label="species", standardize=False)
    scaled = csv_table(path, label="species")
    mean, std = raw["x_train"].mean(axis=0), raw["x_train"].std(axis=0)
    np.testing.assert_allclose(scaled["x_train"], (raw["x_train"] - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scaled["x_val"], (raw["x_val"] - mean) / std, rtol=1e-5, atol=1e-6)
    assert np.abs(scaled["x_val"].mean(axis=0)).max() > 1e-3  # the validation split's own statistics were not used


def test_a_validation_table_integer_labels_chosen_features_and_a_constant_column(tmp_path: Path) -> None:
    frame = table().assign(species=lambda f: f["species"].map({"setosa": 0, "versicolor": 1, "virginica": 2}), flag=1.0)
    train, val = write(frame.iloc[:40], tmp_path / "train.csv"), write(frame.iloc[40:], tmp_path / "val.csv")
    arrays = csv_table(train, label="species", val_path=val, features=["width", "flag"])
    assert arrays["x_train"].shape == (40, 2) and arrays["x_val"].shape == (20, 2)
    np.testing.assert_array_equal(arrays["y_val"], frame["species"].iloc[40:].to_numpy())
    # A constant column is centred, not divided by zero.
    np.testing.assert_array_equal(arrays["x_train"][:, 1], 0.0)


@pytest.mark.parametrize(
    ("change", "options", "message"),
    [
        (lambda f: f, {"label": "kind"}, r"dataset.label='kind' is no column of dataset.path='.*t.csv'; its columns: \['length', 'width', 'count', 'species'\]"),
        (lambda f: f.assign(colour="red"), {}, r"feature column\(s\) \['colour'\] are not numeric \(e.g. 'red'\)"),
        (lambda f: f.assign(length=f["length"].where(f.index % 7 != 0)), {}, r"non-finite values \(empty, NaN or inf\) in feature column\(s\) \{'length': 9\}"),
        (lambda f: f.assign(species=f["species"].where(f.index != 4)), {}, r"1 row\(s\) have no label in column 'species'"),
        (lambda f: f.assign(species=np.where(f.index % 3 == 0, -1, 1)), {}, r"y_train holds \d+ negative label\(s\) \(the first: -1\)"),
        (lambda f: f.assign(species=1.5), {}, r"y_train must be a 1-D array of integer class labels"),
        (lambda f: f.assign(species="only"), {}, r"y_train holds a single class \(0\); a classifier needs at least two"),
        (lambda f: f, {"features": ["length", "size"]}, r"dataset.features names \['size'\], no column\(s\)"),
    ],
    ids=["no label column", "text feature", "NaN features", "missing label", "negative label", "fractional label", "one class", "unknown feature"],
)
def test_bad_tables_are_refused_by_name(tmp_path: Path, change, options, message) -> None:
    path = write(change(table()), tmp_path / "t.csv")
    with pytest.raises(ValueError, match=message):
        csv_table(path, **{"label": "species", **options})


def test_a_validation_class_unknown_to_training_is_refused(tmp_path: Path) -> None:
    frame = table()
    train = write(frame[frame["species"] != "virginica"], tmp_path / "train.csv")
    val = write(frame, tmp_path / "val.csv")
    with pytest.raises(ValueError, match=r"validation class\(es\) \['virginica'\] never occur in training"):
        csv_table(train, label="species", val_path=val)


def test_the_table_is_checked_when_the_study_is_composed(tmp_path: Path) -> None:
    path = write(table(), tmp_path / "t.csv")
    study = compose_study(f"dataset=csv dataset.path={path} dataset.label=species dataset.name=mine")
    assert study.dataset["label"] == "species" and study.dataset["_target_"] == "pipeline.training.data.csv_table"
    with pytest.raises(StudyConfigError, match=r"dataset.label='kind' is no column .* its columns: \['length'"):
        compose_study(f"dataset=csv dataset.path={path} dataset.label=kind")
    with pytest.raises(StudyConfigError, match=r"dataset.path='.*nowhere.csv': no such file"):
        compose_study(f"dataset=csv dataset.path={tmp_path / 'nowhere.csv'} dataset.label=species")
    with pytest.raises(StudyConfigError, match=r"dataset.label is required"):
        compose_study(f"dataset=csv dataset.path={path}")


# --------------------------------------------------------------------------------------
# .npz files: refused by name, at composition when the file is small
# --------------------------------------------------------------------------------------


def arrays(**changes: np.ndarray) -> dict:
    rng = np.random.default_rng(0)
    base = {
        "x_train": rng.normal(size=(30, 4)).astype(np.float32),
        "y_train": np.arange(30) % 3,
        "x_val": rng.normal(size=(12, 4)).astype(np.float32),
        "y_val": np.arange(12) % 3,
    }
    return {**base, **changes}


NPZ_CASES = {
    "negative label": (arrays(y_train=np.where(np.arange(30) % 3 == 0, -1, 1)), r"y_train holds 10 negative label\(s\) \(the first: -1\)"),
    "NaN feature": (arrays(x_val=np.where(np.arange(48).reshape(12, 4) % 5 == 0, np.nan, 1.0)), r"x_val holds 10 non-finite value\(s\) \(NaN or inf\) in 10 row\(s\), feature column\(s\) \[0, 1, 2, 3\]"),
    "inf feature": (arrays(x_train=np.full((30, 4), np.inf)), r"x_train holds 120 non-finite value\(s\)"),
    "one class": (arrays(y_train=np.zeros(30, int)), r"y_train holds a single class \(0\)"),
    "float labels": (arrays(y_val=np.zeros(12)), r"y_val must be a 1-D array of integer class labels in \[0, classes\), got float64"),
    "text features": (arrays(x_train=np.array([["a"] * 4] * 30)), r"x_train has dtype <U1; features must be real numbers"),
    "lengths": (arrays(y_val=np.arange(11) % 3), r"x_val has shape \(12, 4\) and y_val \(11,\)"),
    "feature shapes": (arrays(x_val=np.zeros((12, 5), np.float32)), r"x_train rows \(4,\) differ from x_val rows \(5,\)"),
}


@pytest.mark.parametrize("case", list(NPZ_CASES))
def test_a_bad_npz_is_refused_at_composition_naming_the_file_and_array(tmp_path: Path, case: str) -> None:
    content, message = NPZ_CASES[case]
    path = tmp_path / "mine.npz"
    np.savez(path, **content)
    with pytest.raises(StudyConfigError, match=rf"^dataset.path='{path}': {message}"):
        compose_study(f"dataset=npz dataset.path={path} dataset.name=mine")


@pytest.mark.parametrize("case", [case for case in NPZ_CASES if case not in ("lengths",)])
def test_the_dataset_job_refuses_the_same_content(tmp_path: Path, case: str) -> None:
    content, message = NPZ_CASES[case]
    path = tmp_path / "mine.npz"
    np.savez(path, **content)
    with pytest.raises(ValueError, match=message.split(r" \(")[0].split(" in ")[0]):
        npz_file(str(path))


def test_files_that_are_no_npz_archive(tmp_path: Path) -> None:
    text = tmp_path / "notes.npz"
    text.write_text("x_train,y_train\n1,2\n")
    with pytest.raises(StudyConfigError, match=r"is not a .npz archive: not a zip of .npy arrays \(np.savez writes one\)"):
        compose_study(f"dataset=npz dataset.path={text}")
    single = tmp_path / "single.npz"
    with single.open("wb") as handle:
        np.save(handle, np.zeros(3))
    with pytest.raises(StudyConfigError, match=r"is not a .npz archive: it holds one array \(np.save\)"):
        compose_study(f"dataset=npz dataset.path={single}")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **arrays(x_train=np.array([object()] * 30)))
    with pytest.raises(StudyConfigError, match=r"x_train holds pickled \(object\) data; save plain numeric arrays"):
        compose_study(f"dataset=npz dataset.path={pickled}")


def test_a_good_npz_composes_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "mine.npz"
    np.savez_compressed(path, **arrays())
    study = compose_study(f"dataset=npz dataset.path={path} dataset.name=mine")
    loaded = npz_file(study.dataset["path"])
    assert loaded["x_train"].shape == (30, 4) and loaded["y_val"].dtype == np.int64
