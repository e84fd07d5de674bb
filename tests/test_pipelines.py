"""A user's own input pipeline (pipeline.training.pipelines): the manifest and its digest, the
refusals, and training on it with both engines and the range test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pandas as pd
import pytest
from factories import REPO

from pipeline.config.compose import compose_study
from pipeline.config.errors import StudyConfigError

pytestmark = pytest.mark.tf

BUILDERS = "examples.own_pipeline"
STUDY = f"study=smoke dataset=pipeline dataset.name=own study.epochs=2"


def examples(count: int = 60, features: int = 5, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(count, features)).astype(np.float32), (np.arange(count) % 3).astype(np.int64)


# Builders the tests point dataset.builder at (this module is importable from tests/).
def ordered(count: int = 60) -> Dict[str, Any]:
    import tensorflow as tf

    x, y = examples(count)
    return {"train": tf.data.Dataset.from_tensor_slices((x, y)), "val": tf.data.Dataset.from_tensor_slices((x[:20], y[:20]))}


def shuffled(count: int = 60) -> Dict[str, Any]:
    built = ordered(count)
    return {"train": built["train"].shuffle(count, seed=7), "val": built["val"].shuffle(20, seed=8)}


def one_changed(count: int = 60) -> Dict[str, Any]:
    import tensorflow as tf

    x, y = examples(count)
    x[10, 2] += 1e-3
    return {"train": tf.data.Dataset.from_tensor_slices((x, y)), "val": tf.data.Dataset.from_tensor_slices((x[:20], y[:20]))}


def batched() -> Dict[str, Any]:
    built = ordered()
    return {"train": built["train"].batch(8), "val": built["val"].batch(8)}


def negative() -> Dict[str, Any]:
    import tensorflow as tf

    x, y = examples()
    return {"train": tf.data.Dataset.from_tensor_slices((x, y - 1)), "val": ordered()["val"]}


def single_class() -> Dict[str, Any]:
    import tensorflow as tf

    x, y = examples()
    return {"train": tf.data.Dataset.from_tensor_slices((x, y * 0)), "val": ordered()["val"]}


def arrays_instead() -> Dict[str, Any]:
    return {"train": examples(), "val": examples()}


def manifest_of(builder: str, **options: Any) -> Dict[str, np.ndarray]:
    from pipeline.training.pipelines import user_pipeline

    return user_pipeline(builder, options)


def test_the_manifest_counts_and_describes_the_pipeline() -> None:
    manifest = manifest_of("test_pipelines.ordered")
    assert (int(manifest["count_train"]), int(manifest["count_val"])) == (60, 20)
    assert tuple(manifest["input_shape"]) == (5,) and int(manifest["num_classes"]) == 3
    assert json.loads(str(manifest["pipeline"])) == {"builder": "test_pipelines.ordered", "options": {}}


def test_the_digest_ignores_the_order_and_sees_any_change() -> None:
    digest = str(manifest_of("test_pipelines.ordered")["digest"])
    assert str(manifest_of("test_pipelines.shuffled")["digest"]) == digest
    assert str(manifest_of("test_pipelines.one_changed")["digest"]) != digest
    assert str(manifest_of("test_pipelines.ordered", count=59)["digest"]) != digest


def test_a_pydataset_and_a_tf_data_pipeline_of_the_same_examples_are_the_same_data() -> None:
    assert str(manifest_of(f"{BUILDERS}.tf_data_digits")["digest"]) == str(manifest_of(f"{BUILDERS}.pydataset_digits")["digest"])


@pytest.mark.parametrize(
    ("builder", "message"),
    [
        ("batched", r"train example 0 has label .* labels must be single integer class indices .* \(is the dataset batched\?"),
        ("negative", r"train example 0 has the negative label -1"),
        ("single_class", r"the train split holds a single class \(0\)"),
        ("arrays_instead", r"dataset.builder's 'train' is a tuple: expected a tf.data.Dataset or a keras.utils.PyDataset"),
    ],
)
def test_bad_pipelines_are_refused_by_the_dataset_job(builder: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        manifest_of(f"test_pipelines.{builder}")


def test_the_builder_is_checked_at_composition() -> None:
    assert compose_study(f"{STUDY} dataset.builder={BUILDERS}.tf_data_digits").dataset["builder"].endswith("tf_data_digits")
    with pytest.raises(StudyConfigError, match=r"dataset.builder='nowhere.make' cannot be imported"):
        compose_study(f"{STUDY} dataset.builder=nowhere.make")
    with pytest.raises(StudyConfigError, match=r"dataset.options do not fit examples.own_pipeline.tf_data_digits: .*validation, shuffle_seed"):
        compose_study(f"{STUDY} dataset.builder={BUILDERS}.tf_data_digits +dataset.options.valdation=3")
    with pytest.raises(StudyConfigError, match=r"dataset.builder is required"):
        compose_study(STUDY)


def test_runs_on_a_pipeline_record_that_its_order_is_the_users() -> None:
    study = compose_study(f"{STUDY} dataset.builder={BUILDERS}.tf_data_digits")
    assert study.run_config("adam", "constant", 0, 0.01)["training"]["batch_order"] == "user"
    assert compose_study("study=smoke").run_config("adam", "constant", 0, 0.01)["training"]["batch_order"] != "user"


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("pipelines")
    files = {}
    for builder in ("tf_data_digits", "pydataset_digits"):
        study = compose_study(f"{STUDY} dataset.builder={BUILDERS}.{builder}")
        files[builder] = root / f"{builder}.npz"
        subprocess.run([sys.executable, "-m", "pipeline.training.data", "--options", json.dumps(study.dataset),
                        "--out", str(files[builder])], cwd=REPO, check=True, capture_output=True)  # fmt: skip
        with np.load(files[builder]) as manifest:
            assert "pipeline" in manifest.files and "x_train" not in manifest.files
    return files


def test_both_engines_and_both_kinds_of_pipeline_train_the_same_runs(data_files: Dict[str, Path], tmp_path: Path) -> None:
    from pipeline.training.population_job import population_spec, train_population_job

    members = [["constant", 0, 1e-2], ["step", 1, 3e-2]]
    histories = {}
    for builder, data_file in data_files.items():
        for engine in ("population", "per_run"):
            study = compose_study(f"{STUDY} dataset.builder={BUILDERS}.{builder} study.engine={engine}")
            spec = population_spec(study, "adam", members, root=str(tmp_path / builder / engine))
            entries = train_population_job(spec, data_file, threads=1)
            for entry in entries:
                summary = json.loads((Path(entry["run_dir"]) / "summary.json").read_text())
                assert summary["batch_order"] == "user" and summary["status"] == "ok"
                assert summary.get("population_fallback") is None
            histories[builder, engine] = [
                pd.read_csv(Path(entry["run_dir"]) / "history.csv").drop(columns="seconds") for entry in entries
            ]
    reference = histories["tf_data_digits", "per_run"]
    for key, runs in histories.items():
        for mine, theirs in zip(runs, reference):
            pd.testing.assert_frame_equal(mine, theirs, check_exact=True, obj=str(key))
    assert reference[0]["val_accuracy"].iloc[-1] > 0.5  # it learned the digits


def test_the_range_test_takes_the_pipelines_batches(data_files: Dict[str, Path]) -> None:
    from pipeline.finder.range_test import run_finder
    from pipeline.finder.suggest import finder_job_spec
    from pipeline.training.data import load_npz

    study = compose_study(f"{STUDY} dataset.builder={BUILDERS}.tf_data_digits study.seeds=[0,1]")
    table, document = run_finder(finder_job_spec(study, "adam"), load_npz(data_files["tf_data_digits"]))
    assert set(table["seed"]) == {0, 1} and np.isfinite(table["loss"].iloc[:5]).all()
    assert document["optimizer"] == "adam"


def test_the_pipeline_has_no_random_access() -> None:
    from pipeline.training.pipelines import PipelineData

    data = PipelineData(ordered()["train"], 60, (5,))
    features, labels = data.head(4)
    assert features.shape == (4, 5) and labels.tolist() == [0, 1, 2, 0]
    with pytest.raises(TypeError, match="no random access"):
        data[[1, 2]]
    with pytest.raises(TypeError, match="streamed, not loaded into memory"):
        np.asarray(data)
