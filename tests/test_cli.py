"""The lrstudy launcher: Hydra's grammar in front, the --config overrides route behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import snakemake_command, split_arguments


def lrstudy(cwd: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *arguments], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_arguments_split_at_the_double_dash():
    assert split_arguments(["model=cnn", "--", "--cores", "2", "-n"]) == (["model=cnn"], ["--cores", "2", "-n"])
    assert split_arguments(["model=cnn"]) == (["model=cnn"], ["--cores", "all"])
    assert split_arguments(["--"]) == ([], ["--cores", "all"])


def test_snakemake_command_carries_the_overrides_as_one_config_value():
    command = snakemake_command(["model=cnn", "study.seeds=[0,1]"], ["--cores", "all"])
    assert command[-2:] == ["--config", "overrides=model=cnn study.seeds=[0,1]"]
    assert snakemake_command(["a=x y"], [])[-1] == "overrides='a=x y' "
    assert "--snakefile" in command and command[command.index("--snakefile") + 1].endswith("Snakefile")
    assert "--config" not in snakemake_command([], ["-n"])


def test_help_lists_groups_and_cfg_job_prints_the_study(tmp_path):
    shown = lrstudy(tmp_path, "--help")
    assert shown.returncode == 0
    assert "optimizer: adagrad, adam, adamw, lion, momentum, rmsprop, schedule_free, sgd" in shown.stdout
    composed = lrstudy(tmp_path, "study=smoke", "optimizer=[adam]", "--cfg", "job")
    assert composed.returncode == 0
    assert "name: smoke" in composed.stdout and "adam:" in composed.stdout and "momentum:" not in composed.stdout
    assert not any(tmp_path.iterdir()), "printing the config writes nothing"


def test_bad_input_stops_before_snakemake(tmp_path):
    result = lrstudy(tmp_path, "study=smoke", "study.grid.min=0", "--", "-n")
    assert result.returncode == 2
    assert "study.grid.min" in result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow  # a whole Snakemake dry run (about 10 s)
def test_dry_run_through_the_launcher(tmp_path):
    result = lrstudy(tmp_path, "study=smoke", "schedule=[constant]", "--", "-n", "--cores", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "overrides=study=smoke schedule=[constant]" in output
    assert "train" in output and "This was a dry-run" in output
    assert not (tmp_path / "results").exists()


# --------------------------------------------------------------------------------------
# The live summary line
# --------------------------------------------------------------------------------------


def test_progress_counts_the_studys_run_folders(tmp_path, monkeypatch):
    import json

    from factories import write_run

    from pipeline.cli import Progress, study_progress
    from pipeline.config.compose import compose_study

    monkeypatch.chdir(tmp_path)
    study = compose_study("study=smoke optimizer=[adam] schedule=[constant,step]")
    assert study_progress(study) == Progress(done=0, diverged=0, total=6)
    history = [{"epoch": 1, "lr": 0.1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5, "seconds": 0.1}]
    write_run("results/smoke", "adam", "constant", 0, study.rates[0], history)
    write_run("results/smoke", "adam", "step", 0, study.rates[2], history, diverged_epoch=1)
    write_run("results/smoke", "adam", "step", 0, 0.5, history)  # not this study's: not counted
    finished: dict = {}
    assert study_progress(study, finished) == Progress(done=2, diverged=1, total=6)
    assert len(finished) == 2  # read once, remembered
    # The confirmation's runs count once its plan names them.
    plan = {"seeds": [1000, 1001], "members": [{"optimizer": "adam", "schedule": "constant", "lr": study.rates[1]}]}
    (tmp_path / "results" / "smoke" / "confirm").mkdir()
    (tmp_path / "results" / "smoke" / "confirm" / "plan.json").write_text(json.dumps(plan))
    assert study_progress(study, finished) == Progress(done=2, diverged=1, total=8)
    # A finder-centred grid: its rates are unknown until the range test suggested one.
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    finder = compose_study("study=smoke optimizer=[adam] schedule=[constant] study.grid.mode=finder study.grid.points=4")
    assert study_progress(finder).total == 4


def test_snakemakes_output_scrolls_above_the_summary_and_its_exit_code_is_kept(tmp_path, monkeypatch, capsys):
    from pipeline.cli import run_with_progress
    from pipeline.config.compose import compose_study

    monkeypatch.chdir(tmp_path)
    command = [sys.executable, "-c", "print('Building DAG of jobs...'); print('3 of 7 steps (43%) done'); raise SystemExit(3)"]
    assert run_with_progress(command, compose_study("study=smoke"), interval=0.05) == 3
    shown = capsys.readouterr().err
    assert "Building DAG of jobs..." in shown and "3 of 7 steps (43%) done" in shown
    assert re.search(r"smoke .* 0/18 runs, 0 diverged,", shown), shown


def test_the_launchers_own_flags_never_reach_hydra(tmp_path):
    shown = lrstudy(tmp_path, "--verbose", "--no-progress", "study=smoke", "--cfg", "job")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "name: smoke" in shown.stdout
