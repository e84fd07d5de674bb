"""Image folders (pipeline.training.images): the folder's checks, the manifest, decoding, and
training streamed from disk giving exactly what the same pixels give in memory, with both
engines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import REPO
from image_folders import digit_images, write_folder

from pipeline.config.compose import compose_study
from pipeline.config.errors import StudyConfigError
from pipeline.training.images import DIGEST_SAMPLE, FULL_DIGEST_BYTES, ImageFiles, folder_digest, image_folder, listing_digest

OPTIONS = "dataset=images dataset.image_size=[32,32] dataset.color_mode=grayscale dataset.name=digits_png"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A training and a validation folder of digit PNGs, and the pixels they hold."""
    root = tmp_path_factory.mktemp("images")
    images, labels = digit_images(240)
    write_folder(root / "train", images[:180], labels[:180])
    write_folder(root / "val", images[180:], labels[180:])
    return {"root": root, "images": images, "labels": labels}


def pixels_of(paths, folders: dict, offset: int) -> np.ndarray:
    """The original pixels of files named by their index, scaled as the folder decodes them."""
    rows = [offset + int(Path(path).stem) for path in paths]
    return folders["images"][rows][..., None].astype(np.float32) * np.float32(1 / 255), folders["labels"][rows]


# --------------------------------------------------------------------------------------
# The folder, checked by name
# --------------------------------------------------------------------------------------


def test_the_manifest_lists_every_file_with_its_class_in_sorted_order(folders: dict) -> None:
    manifest = image_folder(str(folders["root"] / "train"), str(folders["root"] / "val"), [32, 32], "grayscale")
    assert list(manifest["classes"]) == [f"digit{label}" for label in range(10)]
    assert len(manifest["paths_train"]) == 180 and len(manifest["paths_val"]) == 60
    for path, label in zip(manifest["paths_train"], manifest["y_train"]):
        assert Path(path).parent.name == f"digit{label}"
    assert json.loads(str(manifest["settings"])) == {"image_size": [32, 32], "color_mode": "grayscale", "rescale": 1 / 255}


def test_a_seeded_stratified_split_without_a_validation_folder(folders: dict) -> None:
    first = image_folder(str(folders["root"] / "train"), None, [32, 32], "grayscale", val_fraction=0.25, seed=1)
    again = image_folder(str(folders["root"] / "train"), None, [32, 32], "grayscale", val_fraction=0.25, seed=1)
    other = image_folder(str(folders["root"] / "train"), None, [32, 32], "grayscale", val_fraction=0.25, seed=2)
    assert list(first["paths_val"]) == list(again["paths_val"]) != list(other["paths_val"])
    assert len(first["paths_val"]) == 45 and set(first["paths_train"]).isdisjoint(first["paths_val"])
    assert set(np.unique(first["y_val"])) == set(range(10))  # stratified: every class in both


def test_the_digest_follows_the_content(folders: dict, tmp_path: Path) -> None:
    images, labels = digit_images(40)
    write_folder(tmp_path / "a", images, labels)
    paths = sorted(str(path) for path in (tmp_path / "a").rglob("*.png"))
    before = folder_digest(paths)
    assert folder_digest(paths) == before
    from PIL import Image

    Image.fromarray(255 - images[0]).save(paths[0])  # same name, same size, other pixels
    assert folder_digest(paths) != before
    assert listing_digest(str(tmp_path / "a")) == listing_digest(str(tmp_path / "a"))
    assert FULL_DIGEST_BYTES > sum(Path(path).stat().st_size for path in paths) and DIGEST_SAMPLE >= 1


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: (root / "only").mkdir(parents=True), r"holds 1 class folder\(s\) \['only'\]; a classifier needs at least two"),
        (lambda root: [(root / name).mkdir(parents=True) for name in ("cat", "dog")], r"class folder 'cat' holds no image"),
        (lambda root: None, r"no such folder \(expected one subfolder per class\)"),
    ],
    ids=["one class", "empty class", "no folder"],
)
def test_bad_folders_are_refused_at_composition(tmp_path: Path, setup, message: str) -> None:
    root = tmp_path / "pets"
    setup(root)
    with pytest.raises(StudyConfigError, match=rf"dataset.directory='{root}'.*{message}|{message}"):
        compose_study(f"{OPTIONS} dataset.directory={root}")


def test_a_validation_class_the_training_folder_lacks_is_refused(folders: dict, tmp_path: Path) -> None:
    images, labels = digit_images(40)
    write_folder(tmp_path / "val", images, labels, names=[f"digit{label}" for label in range(9)] + ["ten"])
    with pytest.raises(StudyConfigError, match=r"has class folder\(s\) \['ten'\] that dataset.directory=.* lacks"):
        compose_study(f"{OPTIONS} dataset.directory={folders['root'] / 'train'} dataset.val_directory={tmp_path / 'val'}")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("image_size", "[32]", r"dataset.image_size=\[32\] must be \[height, width\]"),
    ("color_mode", "cmyk", r"dataset.color_mode='cmyk': valid: grayscale, rgb, rgba"),
])  # fmt: skip
def test_bad_settings_are_refused_at_composition(folders: dict, key: str, value: str, message: str) -> None:
    with pytest.raises(StudyConfigError, match=message):
        compose_study(f"{OPTIONS} dataset.directory={folders['root'] / 'train'} dataset.{key}={value}")


def test_an_unreadable_image_is_named_by_the_dataset_job(tmp_path: Path) -> None:
    images, labels = digit_images(30)
    write_folder(tmp_path / "pets", images, labels)
    broken = sorted((tmp_path / "pets" / "digit3").glob("*.png"))[0]
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ValueError, match=rf"dataset: {broken} is not a readable image"):
        image_folder(str(tmp_path / "pets"), None, [32, 32], "grayscale")


# --------------------------------------------------------------------------------------
# Decoding and training, streamed
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_files(folders: dict) -> dict:
    """The study's data file for the folders (the manifest) and the same pixels as arrays."""
    root = folders["root"]
    study = compose_study(f"{OPTIONS} dataset.directory={root / 'train'} dataset.val_directory={root / 'val'}")
    manifest = root / "manifest.npz"
    subprocess.run([sys.executable, "-m", "pipeline.training.data", "--options", json.dumps(study.dataset), "--out", str(manifest)],
                   cwd=REPO, check=True, capture_output=True)  # fmt: skip
    with np.load(manifest) as archive:
        x_train, y_train = pixels_of(archive["paths_train"], folders, 0)
        x_val, y_val = pixels_of(archive["paths_val"], folders, 180)
    arrays = root / "arrays.npz"
    np.savez(arrays, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val)
    return {"manifest": manifest, "arrays": arrays, "study": study}


@pytest.mark.tf
def test_image_files_decode_to_the_pixels_and_refuse_to_load_whole(data_files: dict) -> None:
    from pipeline.training.data import arrays_digest, load_npz, num_classes

    streamed, held = load_npz(data_files["manifest"]), np.load(data_files["arrays"])
    assert isinstance(streamed["x_train"], ImageFiles) and streamed["x_train"].shape == (180, 32, 32, 1)
    np.testing.assert_array_equal(streamed["x_train"][[5, 0, 179]], held["x_train"][[5, 0, 179]])
    np.testing.assert_array_equal(streamed["x_val"][:7], held["x_val"][:7])
    np.testing.assert_array_equal(streamed["x_val"][3], held["x_val"][3])
    assert num_classes(streamed) == 10 and arrays_digest(streamed) == streamed["digest"]
    with pytest.raises(TypeError, match="streamed, not loaded into memory"):
        np.asarray(streamed["x_train"])


@pytest.mark.tf
def test_rgb_and_resized_images_decode_as_tensorflow_resizes_them(tmp_path: Path) -> None:
    import tensorflow as tf

    images, labels = digit_images(20, size=16, rgb=True)
    write_folder(tmp_path / "rgb", images, labels)
    manifest = image_folder(str(tmp_path / "rgb"), None, [24, 20], "rgb", rescale=None, val_fraction=0.25)
    files = ImageFiles(manifest["paths_train"], [24, 20], "rgb", None)
    rows = [int(Path(path).stem) for path in manifest["paths_train"][:3]]
    expected = tf.image.resize(images[rows].astype(np.float32), (24, 20), method="bilinear").numpy()
    np.testing.assert_allclose(files[:3], expected, rtol=0, atol=1e-4)
    assert files[:3].shape == (3, 24, 20, 3) and files[:3].max() > 1  # rescale=None keeps 0-255


@pytest.mark.tf
@pytest.mark.parametrize("engine", ["population", "per_run"])
def test_training_streamed_from_the_folder_equals_training_on_the_same_pixels(data_files: dict, tmp_path: Path, engine: str) -> None:
    from pipeline.training.population_job import population_spec, train_population_job

    study = compose_study(f"{OPTIONS} dataset.directory=unused study=smoke study.epochs=2 study.engine={engine}".replace(
        "dataset.directory=unused", f"dataset.directory={data_files['manifest'].parent / 'train'}"))  # fmt: skip
    members = [["constant", 0, 1e-2], ["step", 1, 3e-3]]
    histories = {}
    for name in ("manifest", "arrays"):
        spec = population_spec(study, "adam", members, root=str(tmp_path / name))
        entries = train_population_job(spec, data_files[name], threads=1)
        histories[name] = [pd.read_csv(Path(entry["run_dir"]) / "history.csv").drop(columns="seconds") for entry in entries]
    for streamed, held in zip(histories["manifest"], histories["arrays"]):
        pd.testing.assert_frame_equal(streamed, held, check_exact=True)
