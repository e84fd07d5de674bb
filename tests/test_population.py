"""The population engine: many runs trained as one compiled program, each exactly as alone.

What is promised (pipeline/training/population.py): a member's history does not depend on who
shares its population (bit for bit), it agrees with the per-run engine, divergence stops only
the diverged member, a killed job resumes every member identically, complete members are
skipped, any Keras model builder works, and a model that cannot be traced as a population is
trained run by run with one log line saying why.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import List

import pandas as pd
import pytest

from factories import REPO, sigkill_after_saved_epochs
from pipeline.config.compose import compose_study
from pipeline.config.rates import run_dir
from pipeline.training.resume import STATE_FILE

pytestmark = pytest.mark.tf

#: The conftest's study: digits, 3 epochs, the population engine.
STUDY = "study=smoke study.epochs=3 optimizer=[adam] schedule=[constant,cosine] study.engine=population"
RATES = [1e-4, 1e-3, 3e-3, 1e-2, 3e-2]


def history(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "history.csv").drop(columns="seconds")


def train(configs: List[dict], arrays, folders: List[Path]) -> List[dict]:
    from pipeline.training.population import train_population

    return train_population(configs, arrays, folders)


def members_of(study, seeds=(0, 1), schedules=("constant", "cosine"), rates=RATES) -> List[dict]:
    return [study.run_config("adam", schedule, seed, lr) for schedule in schedules for seed in seeds for lr in rates]


def test_population_run_configs_say_their_engine_and_so_hash_apart(study):
    from pipeline.config.schema import config_hash

    per_run = compose_study(STUDY.replace("study.engine=population", "study.engine=per_run"))
    population = study.run_config("adam", "constant", 0, 1e-3)
    assert population["training"]["engine"] == "population"
    assert "engine" not in per_run.run_config("adam", "constant", 0, 1e-3)["training"]
    assert config_hash(population) != config_hash(per_run.run_config("adam", "constant", 0, 1e-3))


def test_a_member_alone_and_in_a_population_of_20_writes_the_same_history(study, arrays, tmp_path):
    configs = members_of(study)
    assert len(configs) == 20
    folders = [tmp_path / "population" / str(index) for index in range(len(configs))]
    summaries = train(configs, arrays, folders)
    assert [summary["epochs_run"] for summary in summaries if summary["status"] == "ok"] == [3] * sum(
        summary["status"] == "ok" for summary in summaries
    )
    for index in (3, 17):  # a constant and a cosine member, seeds 0 and 1
        alone = tmp_path / "alone" / str(index)
        train([configs[index]], arrays, [alone])
        assert (alone / "history.csv").read_text().splitlines()[0] == (folders[index] / "history.csv").read_text().splitlines()[0]
        pd.testing.assert_frame_equal(history(alone), history(folders[index]), check_exact=True)
        solo = json.loads((alone / "summary.json").read_text())
        shared = json.loads((folders[index] / "summary.json").read_text())
        for key in ("seconds", "threads"):
            solo.pop(key), shared.pop(key)
        assert solo == shared


def test_the_population_agrees_with_the_per_run_engine(study, arrays, tmp_path):
    from pipeline.training.run import train_run

    per_run_study = compose_study(STUDY.replace("study.engine=population", "study.engine=per_run"))
    chosen = [("constant", 0, 1e-3), ("cosine", 1, 3e-2), ("cosine", 0, 1e-4)]
    configs = [study.run_config("adam", *member) for member in chosen]
    folders = [tmp_path / "population" / str(index) for index in range(len(chosen))]
    train(configs, arrays, folders)
    for index, member in enumerate(chosen):
        reference = tmp_path / "per_run" / str(index)
        train_run(per_run_study.run_config("adam", *member), arrays, reference)
        ours, theirs = history(folders[index]), history(reference)
        assert ours["epoch"].tolist() == theirs["epoch"].tolist()
        assert ours["lr"].tolist() == theirs["lr"].tolist()
        # The promise: first-epoch losses within 1e-4 relative (the same Keras train_step runs).
        assert ours["loss"][0] == pytest.approx(theirs["loss"][0], rel=1e-4)
        pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=1e-4)


def test_a_diverging_member_stops_alone_and_the_others_are_unchanged(study, arrays, tmp_path):
    configs = [study.run_config("adam", "constant", 0, lr) for lr in (1e-3, 50.0, 3e-3)]
    folders = [tmp_path / "population" / str(index) for index in range(3)]
    summaries = train(configs, arrays, folders)
    assert [str(summary["status"]) for summary in summaries] == ["ok", "diverged", "ok"]
    diverged = summaries[1]
    assert diverged["diverged_epoch"] == len(history(folders[1])) == diverged["epochs_run"]
    assert diverged["diverged_epoch"] < 3
    assert diverged["steps"] == diverged["epochs_run"] * diverged["steps_per_epoch"]
    assert not (folders[1] / STATE_FILE).exists()
    for index in (0, 2):
        alone = tmp_path / "alone" / str(index)
        train([configs[index]], arrays, [alone])
        pd.testing.assert_frame_equal(history(alone), history(folders[index]), check_exact=True)


def test_a_cnn_population_and_a_users_own_builder(arrays, tmp_path):
    for model in ("model=cnn model.channels=4", "model=mlp model._target_=examples.custom_model.wide_mlp +model.width=16 ~model.hidden_units ~model.activation"):
        study = compose_study(f"{STUDY} study.epochs=2 {model}")
        configs = [study.run_config("adam", "cosine", 0, lr) for lr in (1e-3, 1e-2)]
        folders = [tmp_path / model.split()[0] / str(index) for index in range(2)]
        train(configs, arrays, folders)
        alone = tmp_path / model.split()[0] / "alone"
        train([configs[1]], arrays, [alone])
        pd.testing.assert_frame_equal(history(alone), history(folders[1]), check_exact=True)
        assert len(history(folders[0])) == 2


def population_job(spec: dict, data_file: Path, manifest: Path) -> List[str]:
    return [sys.executable, "-m", "pipeline.training", "--spec", json.dumps(spec), "--data", str(data_file),
            "--threads", "1", "--manifest", str(manifest)]  # fmt: skip


def job_spec(study, root: Path, members) -> dict:
    from pipeline.training.population_job import population_spec

    spec = population_spec(study, "adam", members)
    spec["study_dir"] = str(root)
    return spec


@pytest.mark.slow
def test_a_population_job_killed_mid_run_resumes_every_member_identically(data_file, tmp_path):
    epochs = 40
    study = compose_study(f"{STUDY} study.epochs={epochs}")
    members = [["constant", 0, 1e-3], ["cosine", 1, 3e-3], ["constant", 1, 100.0]]
    specs = {name: job_spec(study, tmp_path / name, members) for name in ("reference", "killed")}
    folders = {
        name: [run_dir(spec["study_dir"], "adam", schedule, seed, lr) for schedule, seed, lr in members]
        for name, spec in specs.items()
    }
    reference = subprocess.run(population_job(specs["reference"], data_file, tmp_path / "reference.json"),
                               cwd=REPO, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert reference.returncode == 0, reference.stdout[-3000:] + reference.stderr[-3000:]

    watched = folders["killed"][0] / STATE_FILE
    command = population_job(specs["killed"], data_file, tmp_path / "killed.json")
    done_before_kill = sigkill_after_saved_epochs(command, watched, 3)
    assert 3 <= done_before_kill < epochs, f"the job was not killed mid-run ({done_before_kill} epochs saved)"
    assert not (tmp_path / "killed.json").exists()

    resumed = subprocess.run(population_job(specs["killed"], data_file, tmp_path / "killed.json"),
                             cwd=REPO, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"resuming after epoch {done_before_kill} of {epochs}" in resumed.stdout
    for killed, uninterrupted in zip(folders["killed"], folders["reference"]):
        pd.testing.assert_frame_equal(history(killed), history(uninterrupted), check_exact=True)
        ours = json.loads((killed / "summary.json").read_text())
        theirs = json.loads((uninterrupted / "summary.json").read_text())
        for key in ("seconds", "resumed_from_epoch"):
            ours.pop(key), theirs.pop(key)
        assert ours == theirs
        assert not (killed / STATE_FILE).exists()
    manifest = json.loads((tmp_path / "killed.json").read_text())
    assert [entry["status"] for entry in manifest["runs"]] == ["ok", "ok", "diverged"]

    again = subprocess.run(population_job(specs["killed"], data_file, tmp_path / "again.json"),
                           cwd=REPO, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert again.returncode == 0
    assert again.stdout.count("up to date") == len(members)
    assert "as one population" not in again.stdout


def test_a_job_skips_complete_members_and_trains_only_the_missing_one(study, data_file, tmp_path):
    from pipeline.training.population_job import train_population_job

    members = [["constant", 0, 1e-3], ["cosine", 0, 1e-3]]
    spec = job_spec(study, tmp_path / "study", members)
    train_population_job(spec, data_file, threads=1)
    first = (run_dir(spec["study_dir"], "adam", "constant", 0, 1e-3) / "summary.json").read_text()
    spec["members"].append(["cosine", 1, 3e-3])
    entries = train_population_job(spec, data_file, threads=1)
    assert [entry["status"] for entry in entries] == ["ok", "ok", "ok"]
    assert (run_dir(spec["study_dir"], "adam", "constant", 0, 1e-3) / "summary.json").read_text() == first


def test_a_small_memory_budget_splits_the_population_with_the_same_histories(study, data_file, tmp_path, capsys):
    from pipeline.training.population_job import train_population_job

    members = [["constant", 0, 1e-3], ["cosine", 0, 1e-3], ["cosine", 1, 1e-2]]
    whole = job_spec(study, tmp_path / "whole", members)
    split = job_spec(study, tmp_path / "split", members)
    split["memory_mb"] = 1e-6  # one member per program
    train_population_job(whole, data_file, threads=1)
    capsys.readouterr()
    train_population_job(split, data_file, threads=1)
    out = capsys.readouterr().out
    assert out.count("as one population") == 3
    for schedule, seed, lr in members:
        pd.testing.assert_frame_equal(
            history(run_dir(whole["study_dir"], "adam", schedule, seed, lr)),
            history(run_dir(split["study_dir"], "adam", schedule, seed, lr)),
            check_exact=True,
        )


def test_a_model_the_engine_cannot_trace_falls_back_to_per_run_with_one_line(study, data_file, tmp_path, capsys, monkeypatch):
    import pipeline.training.population as population
    import pipeline.training.population_job as job

    def refuse(self):
        raise population.PopulationUnsupported("cannot trace model 'mlp' as a population (TypeError: a layer refused)")

    monkeypatch.setattr(population._Programs, "trace", refuse)
    members = [["constant", 0, 1e-3], ["cosine", 0, 1e-3]]
    spec = job_spec(study, tmp_path / "study", members)
    entries = job.train_population_job(spec, data_file, threads=1)
    out = capsys.readouterr().out
    assert out.count("training these 2 runs one by one (per_run)") == 1
    assert "a layer refused" in out
    assert [entry["status"] for entry in entries] == ["ok", "ok"]
    folder = run_dir(spec["study_dir"], "adam", "constant", 0, 1e-3)
    assert "engine" not in (folder / "config.yaml").read_text()
    assert spec["bases"]["constant"]["training"]["engine"] == "population"
    assert json.loads((folder / "summary.json").read_text())["population_fallback"].startswith("cannot trace model")
    # The fallback's runs are complete: the next job skips them instead of training again...
    job.train_population_job(spec, data_file, threads=1)
    out = capsys.readouterr().out
    assert out.count("up to date") == 2 and "as one population" not in out
    # ... while a complete folder of the per-run engine proper is not taken for a population run.
    import yaml

    from pipeline.training.data import load_npz
    from pipeline.training.run import train_run

    per_run_config = yaml.safe_load((folder / "config.yaml").read_text())
    train_run(per_run_config, load_npz(data_file), tmp_path / "per_run")
    population_config = json.loads(json.dumps(per_run_config))
    population_config["training"]["engine"] = "population"
    assert job._fallback_complete(folder, population_config)
    assert not job._fallback_complete(tmp_path / "per_run", population_config)


def test_population_parts_cover_every_member_once(study):
    from pipeline.training.population_job import population_members, population_parts

    members = population_members(study, "adam", RATES)
    assert len(members) == len(study.schedules) * len(study.settings.seeds) * len(RATES)
    parts = population_parts(members, 4)
    assert [len(part) for part in parts] == [4] * (len(members) // 4) + ([len(members) % 4] if len(members) % 4 else [])
    assert [member for part in parts for member in part] == members


def test_runs_that_differ_in_more_than_rate_seed_and_schedule_are_not_one_population(study):
    from pipeline.training.population import PopulationError, check_population

    other = compose_study(f"{STUDY} study.batch_size=64")
    with pytest.raises(PopulationError, match="training.batch_size"):
        check_population([study.run_config("adam", "constant", 0, 1e-3), other.run_config("adam", "constant", 0, 1e-3)])
    check_population([study.run_config("adam", "constant", 0, 1e-3), study.run_config("adam", "cosine", 1, 1e-2)])
    sgd = compose_study(f"{STUDY} optimizer=[sgd]").run_config("sgd", "constant", 0, 1e-3)
    with pytest.raises(PopulationError, match="optimizer.type"):
        check_population([study.run_config("adam", "constant", 0, 1e-3), sgd])


def test_member_seconds_are_shares_of_the_population_time(study, arrays, tmp_path):
    configs = members_of(study, seeds=(0,), schedules=("constant",), rates=(1e-3, 3e-3))
    folders = [tmp_path / str(index) for index in range(2)]
    summaries = train(configs, arrays, folders)
    rows = [pd.read_csv(folder / "history.csv") for folder in folders]
    # Each epoch's time is split evenly between the members that trained in it.
    assert rows[0]["seconds"].tolist() == rows[1]["seconds"].tolist()
    assert all(summary["seconds"] >= sum(frame["seconds"]) for summary, frame in zip(summaries, rows))
    assert all(math.isfinite(summary["seconds"]) for summary in summaries)


def test_a_model_holding_a_seed_dependent_constant_trains_run_by_run(data_file, tmp_path, capsys):
    from pipeline.training.population_job import train_population_job
    from pipeline.training.run import train_run
    from pipeline.training.data import load_npz

    study = compose_study(f"{STUDY} study.epochs=2 model=mlp model._target_=factories.seeded_scale_mlp ~model.hidden_units ~model.activation")
    members = [["constant", 0, 1e-3], ["constant", 1, 1e-3]]
    spec = job_spec(study, tmp_path / "study", members)
    entries = train_population_job(spec, data_file, threads=1)
    out = capsys.readouterr().out
    assert "captures values that differ between" in out and out.count("one by one (per_run)") == 1
    assert [entry["status"] for entry in entries] == ["ok", "ok"]
    # Each run is what the per-run engine trains: its own seed's constant, not the other's.
    import yaml

    arrays = load_npz(data_file)
    for schedule, seed, lr in members:
        folder = run_dir(spec["study_dir"], "adam", schedule, seed, lr)
        config = yaml.safe_load((folder / "config.yaml").read_text())
        assert "engine" not in config["training"]
        reference = tmp_path / "per_run" / str(seed)
        train_run(config, arrays, reference)
        pd.testing.assert_frame_equal(history(reference), history(folder), check_exact=True)


def test_xla_compiles_the_shared_step_once_and_keeps_membership_independence(arrays, tmp_path):
    from tensorflow.python.framework import config as tf_config

    # Keras compiles with XLA only without op determinism (and so does the population engine).
    study = compose_study(f"{STUDY} study.epochs=2 study.xla=true study.deterministic=false")
    configs = [study.run_config("adam", schedule, 0, lr) for schedule in ("constant", "cosine") for lr in (1e-3, 1e-2)]
    assert configs[0]["training"]["xla"] is True
    deterministic = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    try:
        folders = [tmp_path / "population" / str(index) for index in range(len(configs))]
        summaries = train(configs, arrays, folders)
        alone = tmp_path / "alone"
        train([configs[3]], arrays, [alone])
    finally:
        if deterministic:
            tf_config.enable_op_determinism()
    assert all("population_fallback" not in summary for summary in summaries)
    assert [summary["epochs_run"] for summary in summaries] == [2] * len(configs)
    pd.testing.assert_frame_equal(history(alone), history(folders[3]), check_exact=True)


def test_schedule_free_members_are_validated_on_their_averaged_weights_as_in_the_per_run_engine(arrays, tmp_path):
    """Schedule-free AdamW in a population: its validation runs on the averaged weights, as the
    per-run engine's callback does, and its histories agree with the per-run engine's."""
    from pipeline.training.run import train_run

    overrides = STUDY.replace("optimizer=[adam]", "optimizer=[schedule_free]")
    population, per_run = compose_study(overrides), compose_study(overrides.replace("study.engine=population", "study.engine=per_run"))
    chosen = [("constant", 0, 1e-3), ("cosine", 1, 1e-2)]
    folders = [tmp_path / "population" / str(index) for index in range(len(chosen))]
    train([population.run_config("schedule_free", *member) for member in chosen], arrays, folders)
    for index, member in enumerate(chosen):
        reference = tmp_path / "per_run" / str(index)
        train_run(per_run.run_config("schedule_free", *member), arrays, reference)
        pd.testing.assert_frame_equal(history(folders[index]), history(reference), check_exact=False, rtol=1e-4)
        # It trains: with the optimizer built inside Keras' traced step its slots reset every step
        # and the loss stays at the untrained ln(10) (pipeline.training.run.build_run builds it first).
        losses = history(reference)["loss"].tolist()
        assert losses[-1] < losses[0] < math.log(10) - 0.05
