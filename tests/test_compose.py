"""Study composition and validation: every option composes and builds; bad input fails early."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from factories import REPO

from pipeline.config.compose import compose_study, format_overrides, parse_overrides
from pipeline.config.schema import CONF_DIR, StudyConfigError, config_hash


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def test_default_study_is_the_documented_one():
    study = compose_study()
    assert study.name == "default"
    assert study.dataset["name"] == "mnist1d" and study.model["name"] == "mlp"
    assert list(study.optimizers) == ["momentum", "adam"]
    assert list(study.schedules) == ["constant", "step", "exponential", "cosine", "warmup_constant", "warmup_cosine"]
    assert len(study.rates) == 9 and study.rates[0] == 1e-4 and study.rates[-1] == 1.0
    assert study.settings.seeds == [0, 1]


@pytest.mark.tf
@pytest.mark.parametrize("optimizer", options("optimizer"))
def test_every_optimizer_option_composes_and_builds(optimizer):
    keras = pytest.importorskip("keras")
    from pipeline.training.optimizers import build_optimizer

    study = compose_study([f"optimizer={optimizer}"])
    assert list(study.optimizers) == [optimizer]
    built = build_optimizer(study.optimizers[optimizer], 0.01)
    assert isinstance(built, keras.optimizers.Optimizer)
    assert math.isclose(float(built.learning_rate), 0.01, rel_tol=1e-6)
    if optimizer == "momentum":
        assert built.momentum == 0.9


@pytest.mark.tf
@pytest.mark.parametrize("schedule", options("schedule"))
def test_every_schedule_option_composes_and_builds(schedule):
    from pipeline.training.schedules import build_schedule

    study = compose_study([f"schedule={schedule}"])
    built = build_schedule(study.schedules[schedule], 0.1, steps_per_epoch=5, epochs=study.settings.epochs)
    assert 0 <= float(built(3)) <= 0.1 * (1 + 1e-6)  # float32


@pytest.mark.tf
@pytest.mark.parametrize("model", [option for option in options("model") if option != "keras_app"])  # images: test_models
@pytest.mark.parametrize("dataset", [option for option in options("dataset") if option not in ("npz", "csv", "images", "pipeline")])  # a user's files or builder: below, test_images, test_pipelines
def test_every_model_and_dataset_option_builds(model, dataset):
    from pipeline.training.data import build_dataset, num_classes
    from pipeline.training.models import build_model

    study = compose_study([f"model={model}", f"dataset={dataset}"])
    arrays = build_dataset(study.dataset)
    assert arrays["x_train"].dtype == np.float32 and len(arrays["x_train"]) == len(arrays["y_train"])
    built = build_model(study.model, arrays["x_train"].shape[1:], num_classes(arrays))
    assert built.output_shape == (None, 10)
    assert built(arrays["x_val"][:4]).shape == (4, 10)


def test_several_optimizers_and_schedules_cross():
    study = compose_study('optimizer=[adam,rmsprop,adagrad] schedule=[cosine,warmup_cosine] study.seeds=[0,1,2]')
    assert list(study.optimizers) == ["adam", "rmsprop", "adagrad"]
    assert list(study.schedules) == ["cosine", "warmup_cosine"]
    assert study.settings.seeds == [0, 1, 2]


def test_overrides_accept_a_yaml_list_and_a_string_alike():
    as_string = compose_study("study=smoke model=cnn study.grid.points=4")
    as_list = compose_study(["study=smoke", "model=cnn", "study.grid.points=4"])
    assert as_string.as_dict() | {"overrides": None} == as_list.as_dict() | {"overrides": None}
    assert parse_overrides(None) == []
    assert parse_overrides("a=1 'b=x y'") == ["a=1", "b=x y"]
    # What Snakemake hands over for --config overrides='[study=smoke, schedule=[a,b]]' (unreadable
    # as YAML, so a string) and for overrides='["study=smoke", "schedule=[a,b]"]' (a list).
    assert parse_overrides('["study=smoke", "schedule=[a,b]"]') == ["study=smoke", "schedule=[a,b]"]
    assert parse_overrides(["study=smoke", "schedule=[a,b]"]) == ["study=smoke", "schedule=[a,b]"]
    with pytest.raises(StudyConfigError, match="quote its items"):
        parse_overrides("[study=smoke, schedule=[a,b]]")


@pytest.mark.parametrize(
    "overrides",
    [[], ["study=smoke"], ["model=cnn", "study.seeds=[0,1]"], ["study.name=x", "dataset.path='my data/x.npz'"], ["a=b c"]],
)
def test_format_overrides_round_trips(overrides):
    text = format_overrides(overrides)
    assert parse_overrides(text) == overrides
    assert not text.endswith(("'", '"'))


def test_smoke_preset_and_study_name():
    smoke = compose_study("study=smoke")
    assert smoke.name == "smoke" and smoke.dataset["name"] == "digits"
    assert compose_study("study=smoke study.name=mine").name == "mine"


def test_explicit_rate_list_is_sorted_and_deduplicated():
    study = compose_study("study.grid.values=[0.1,0.001,0.01,0.1]")
    assert study.rates == [0.001, 0.01, 0.1]


def test_config_hash_ignores_the_study_name_but_not_settings():
    study = compose_study("study=smoke")
    base = study.run_config("adam", "constant", 0, 0.01)
    renamed = compose_study("study=smoke study.name=other").run_config("adam", "constant", 0, 0.01)
    longer = compose_study("study=smoke study.epochs=5").run_config("adam", "constant", 0, 0.01)
    assert config_hash(base) == config_hash(renamed)
    assert config_hash(base) != config_hash(longer)
    assert config_hash(base) != config_hash(study.run_config("adam", "constant", 0, 0.02))


def test_the_batch_size_question_crosses_batch_sizes_with_the_grid():
    from pipeline.training.population_job import population_members, population_spec

    assert compose_study("study=smoke").batch_sizes == []  # off by default
    study = compose_study("study=smoke study.batch_sizes=[256,32]")
    assert study.batch_sizes == [32, 128, 256]  # the grid's own batch size is always one of them
    at_32 = study.run_config("adam", "constant", 0, 0.01, batch_size=32)
    assert at_32["training"]["batch_size"] == 32 and study.settings.batch_size == 128
    assert study.run_config("adam", "constant", 0, 0.01, batch_size=128) == study.run_config("adam", "constant", 0, 0.01)
    assert config_hash(at_32) != config_hash(study.run_config("adam", "constant", 0, 0.01))
    members = population_members(study, "adam", study.rates)
    for engine in ("population", "per_run"):
        spec = population_spec(
            compose_study(f"study=smoke study.engine={engine}"), "adam", members, root="r/batch/b32", batch_size=32
        )
        assert {base["training"]["batch_size"] for base in spec["bases"].values()} == {32}
        assert spec["study_dir"] == "r/batch/b32" and spec["members"] == members


# --- bad input: each fails at composition, naming the key and (for groups) the choices -------

BAD_INPUTS = [
    ("optimizer=adamx", r"optimizer.*adam.*momentum"),  # unknown group option: lists valid ones
    ("schedule=[cosine,triangular]", r"schedule.*warmup_cosine"),
    ("model=resnet", r"model.*cnn.*mlp"),
    ("dataset=cifar", r"dataset.*digits.*mnist1d"),
    ("study=huge", r"study.*default.*smoke"),
    ("study.epoch=3", r"epoch"),  # typo of a key
    ("diagnosis.early_best=0.9", r"diagnosis.early_best=0.9 must be smaller than diagnosis.late_best"),
    ("diagnosis.spike_rise=-1", r"diagnosis.spike_rise=-1.0 must be a number > 0"),
    ("+study.seedz=[1]", r"seedz.*valid keys there.*seeds"),  # added unknown key
    ("study.epochs=abc", r"study.epochs"),  # wrong type
    ("study.seeds=[]", r"study.seeds is empty"),
    ("study.seeds=[0,0]", r"duplicates"),
    ("study.grid.min=0", r"study.grid.min=0.* > 0"),
    ("study.grid.min=-1e-3", r"study.grid.min"),
    ("study.grid.min=1 study.grid.max=0.1", r"study.grid.min=1.0 must be smaller than study.grid.max"),
    ("study.grid.values=[0.1,-0.5]", r"study.grid.values contains -0.5"),
    ("study.grid.points=0", r"study.grid.points"),
    ("study.batch_size=0", r"study.batch_size"),
    ("study.batch_sizes=[64,0]", r"study.batch_sizes contains 0, which must be an integer >= 1"),
    ("study.batch_sizes=[64,64]", r"study.batch_sizes=\[64, 64\] has duplicates"),
    ("study.batch_sizes=[128]", r"study.batch_sizes=\[128\] holds no batch size but study.batch_size=128"),
    ("study.batch_sizes=[big]", r"study.batch_sizes"),
    ("study.cohort_size=-2", r"study.cohort_size"),
    ("study.divergence_factor=0.5", r"study.divergence_factor"),
    ("study.gpus=2", r"study.gpus=2 must be 0 \(CPU jobs\) or 1"),
    ("study.gpus=one", r"study.gpus"),
    ("study.gpu_model=a100", r"study.gpu_model='a100' needs study.gpus=1"),
    ("study.gpus=1 study.gpu_model=a100-x", r"SLURM GPU type name"),
    ("study.name=../escape", r"study.name"),
    ("optimizer=adam +optimizer.adam.momentum=0.9", r"optimizer.adam.momentum does not apply.*beta_1"),
    ("optimizer.momentum.type=sgdd", r"optimizer.momentum.type='sgdd'.*valid: sgd, adam"),
    ("optimizer.momentum.momentum=1.5", r"optimizer.momentum.momentum=1.5 must be in"),
    ("schedule.cosine.alpha=2", r"schedule.cosine.alpha=2.0 must be in \[0, 1\]"),
    ("schedule.step.every_epochs=30", r"schedule.step.every_epochs=30 must be smaller than study.epochs=30"),
    ("schedule.warmup_cosine.warmup_fraction=1.0", r"schedule.warmup_cosine.warmup_fraction"),
    ("schedule.cosine.type=triangle", r"schedule.cosine.type='triangle'.*valid: constant, step"),
    ("+schedule.constant.alpha=0.1", r"schedule.constant.alpha does not apply.*none"),
    ("model.hidden_unitz=[10]", r"hidden_unitz"),
    ("+model.dropout=0.5", r"model option does not fit pipeline.training.models.mlp.*hidden_units"),
    ("model._target_=nowhere.build", r"model._target_='nowhere.build' cannot be imported"),
    ("dataset=npz", r"dataset.path is required"),
    ("dataset=npz dataset.path=no/such.npz", r"dataset.path='no/such.npz': no such file"),
    ("schedule=[constant] schedule.step.factor=0.1", r"schedule.step.factor.*Valid keys there"),
]


@pytest.mark.parametrize("overrides,message", BAD_INPUTS, ids=[item[0] for item in BAD_INPUTS])
def test_bad_input_fails_at_composition_with_a_clear_error(overrides, message):
    with pytest.raises(StudyConfigError, match=message):
        compose_study(overrides)


def test_bad_overrides_type():
    with pytest.raises(StudyConfigError, match="overrides"):
        compose_study(42)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize(
    "config_args,message",
    [
        (["overrides=study=smoke study.grid.min=0"], "study.grid.min"),
        (["overrides=study=smoke optimizer=adamx"], "Available options in 'optimizer'"),
        (["overides=study=smoke"], "unknown --config key"),
    ],
)
def test_snakemake_refuses_bad_input_before_any_job_and_touches_nothing(tmp_path, config_args, message):
    """A bad override stops the workflow at parse time: nothing under results/ is written or removed."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    for name in ("Snakefile", "rules", "conf", "pipeline", "report", "envs"):
        (workdir / name).symlink_to(REPO / name)
    kept = workdir / "results" / "smoke" / "runs.csv"
    kept.parent.mkdir(parents=True)
    kept.write_text("already computed\n")
    before = sorted(str(path) for path in (workdir / "results").rglob("*"))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--config", *config_args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert sorted(str(path) for path in (workdir / "results").rglob("*")) == before
    assert kept.read_text() == "already computed\n"
