"""The lrstudy launcher: Hydra's grammar in front, the --config overrides route behind."""

from __future__ import annotations

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
