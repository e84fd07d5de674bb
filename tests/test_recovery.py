"""Nothing lost, nothing silently wrong, end to end through Snakemake: deleted and damaged run
folders retrain exactly themselves, orphaned tables are set aside, bad data is refused in the
terminal before any job, a failed job's own message reaches the terminal, and a workflow killed
with SIGKILL at a random moment finishes with the same command and the uninterrupted tables."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SMOKE_TABLES
from factories import make_workdir, snakemake

from pipeline.config.rates import run_dir
from pipeline.tables import BEST, CONFIRM, CURVES, RUNS

pytestmark = [pytest.mark.slow, pytest.mark.tf]

#: Columns that differ between two runs of the same study (time, device, resumption).
TIMING = ["seconds", "seconds_to_target", "resumed_from_epoch", "device"]
SCHEMAS = {"runs.csv": RUNS, "curves.csv": CURVES, "best.csv": BEST, "confirm.csv": CONFIRM}


def comparable(path: Path, name: str | None = None) -> pd.DataFrame:
    table = SCHEMAS[name or path.name].read(path)
    return table.drop(columns=[column for column in TIMING if column in table.columns])


def assert_same_tables(results: Path, reference: Path, names=("runs.csv", "curves.csv", "best.csv")) -> None:
    for name in names:
        pd.testing.assert_frame_equal(comparable(results / name), comparable(reference / name), check_exact=True, obj=name)


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


REPAIR = (
    "overrides=study=smoke study.name=repair optimizer=[adam] schedule=[constant,step] "
    "study.epochs=3 study.confirm.seeds=[]"
)


def trained(workdir: Path) -> list[str]:
    """The run folders the last training job trained (its log's ``<run>: ok|diverged`` lines)."""
    log = (workdir / "results" / "repair" / "logs" / "train" / "adam" / "population" / "part0.log").read_text()
    return re.findall(r"^(results/\S+): (?:ok|diverged)$", log, re.MULTILINE)


def test_deleted_and_damaged_run_folders_retrain_exactly_themselves(tmp_path):
    workdir = make_workdir(tmp_path / "w")
    first = snakemake(workdir, "--cores", "2", "--config", REPAIR)
    assert first.returncode == 0, output(first)[-5000:]
    results = workdir / "results" / "repair"
    reference = tmp_path / "reference"
    reference.mkdir()
    for name in ("runs.csv", "curves.csv", "best.csv"):
        shutil.copy2(results / name, reference / name)
    manifest = "results/repair/populations/adam/part0.json"

    def rerun(*arguments: str) -> str:
        result = snakemake(workdir, "--cores", "2", *arguments, "--config", REPAIR)
        assert result.returncode == 0, output(result)[-5000:]
        assert_same_tables(results, reference)
        again = snakemake(workdir, "-n", "--cores", "2", "--config", REPAIR)
        assert "Nothing to be done" in output(again), output(again)[-3000:]
        return output(result)

    # A deleted run folder and a summary cut short (a crash, a full disk): found by name, and
    # these two runs, only they, are trained again.
    deleted = str(run_dir("results/repair", "adam", "constant", 0, 0.03162))
    shutil.rmtree(workdir / deleted)
    damaged = str(run_dir("results/repair", "adam", "step", 0, 0.001))
    summary = workdir / damaged / "summary.json"
    summary.write_text(summary.read_text()[:80])
    dry = snakemake(workdir, "-n", "--cores", "2", "--config", REPAIR)
    assert f"{deleted}: the run folder is missing; retrained by the training job of {manifest}" in output(dry)
    assert f"{damaged}: summary.json is not valid JSON" in output(dry)
    assert re.search(r"^train_population\s+1$", dry.stdout, re.MULTILINE), dry.stdout[-3000:]
    rerun()
    assert sorted(trained(workdir)) == sorted([deleted, damaged])

    # A deleted folder and a forced aggregate: the run is retrained first, no traceback.
    shutil.rmtree(workdir / deleted)
    rerun("--forcerun", "aggregate")
    assert trained(workdir) == [deleted]

    # Run folders and manifests gone, the tables present: the tables are set aside and remade.
    shutil.rmtree(results / "runs")
    shutil.rmtree(results / "populations")
    assert "results/repair/runs.csv: made from 6 run folder(s) that are gone" in rerun()
    assert len(trained(workdir)) == 6
    pd.testing.assert_frame_equal(comparable(results / "runs.orphaned.csv", "runs.csv"), comparable(reference / "runs.csv"), check_exact=True)

    # TensorBoard switched on for the finished study: the export runs, nothing is trained again.
    with_board = REPAIR + " study.tensorboard=true"
    dry = snakemake(workdir, "-n", "--cores", "2", "--config", with_board)
    assert re.search(r"^tensorboard\s+1$", dry.stdout, re.MULTILINE) and "train_population" not in dry.stdout, dry.stdout[-3000:]
    board = snakemake(workdir, "--cores", "2", "--config", with_board)
    assert board.returncode == 0, output(board)[-5000:]
    exported = sorted(path.parent.relative_to(results / "tensorboard") for path in (results / "tensorboard").rglob("events.out.tfevents.*"))
    assert exported == sorted([Path("."), *(Path(run).relative_to("results/repair") for run in RUNS.read(results / "runs.csv")["run_dir"])])


def test_bad_data_is_refused_in_the_terminal_before_any_job(tmp_path):
    workdir = make_workdir(tmp_path / "w")
    (workdir / "data").mkdir()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4))
    x[3, 1] = np.nan
    np.savez(workdir / "data" / "nan.npz", x_train=x, y_train=np.arange(40) % 2, x_val=x[:10] * 0, y_val=np.arange(10) % 2)
    np.savez(workdir / "data" / "negative.npz", x_train=x * 0, y_train=np.arange(40) % 2 - 1, x_val=x[:10] * 0, y_val=np.arange(10) % 2)
    (workdir / "data" / "table.npz").write_text("x,y\n1,2\n")
    expected = {
        "nan.npz": r"dataset.path='data/nan.npz': x_train holds 1 non-finite value\(s\) \(NaN or inf\) in 1 row\(s\), feature column\(s\) \[1\]",
        "negative.npz": r"dataset.path='data/negative.npz': y_train holds 20 negative label\(s\) \(the first: -1\)",
        "table.npz": r"dataset.path='data/table.npz' is not a .npz archive",
    }
    for name, message in expected.items():
        result = snakemake(workdir, "--cores", "2", "--config", f"overrides=study=smoke dataset=npz dataset.path=data/{name} dataset.name=mine")
        assert result.returncode != 0
        assert re.search(message, result.stderr), result.stderr[-3000:]
        assert "Traceback" not in result.stderr and not (workdir / "results").exists()


FAILING_BUILDER = '''
def splits(**_):
    raise ValueError("the bucket gs://lrstudy-demo is not reachable from this machine")
'''


def test_a_failed_jobs_own_message_reaches_the_terminal(tmp_path):
    # The default profile's show-failed-logs: the job's log, not only CalledProcessError.
    workdir = make_workdir(tmp_path / "w")
    (workdir / "mydata.py").write_text(FAILING_BUILDER)
    overrides = "overrides=study=smoke dataset=pipeline dataset.builder=mydata.splits dataset.name=bucket"
    result = snakemake(workdir, "--cores", "2", "--config", overrides)
    assert result.returncode != 0
    assert "the bucket gs://lrstudy-demo is not reachable from this machine" in output(result), output(result)[-3000:]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_workflow_killed_at_a_random_moment_finishes_with_the_same_command(smoke, tmp_path, seed):
    """SIGKILL of Snakemake and every job at a moment drawn from ``seed``; then the same command
    (no --unlock, no --rerun-incomplete) ends with the uninterrupted run's tables."""
    reference_workdir, _ = smoke
    workdir = make_workdir(tmp_path / "w")
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--config", "overrides=study=smoke"]
    moment = random.Random(seed).uniform(3.0, 45.0)
    job = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        job.wait(timeout=moment)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
    time.sleep(0.5)  # the killed jobs' processes are gone
    result = snakemake(workdir, *command[3:])
    assert result.returncode == 0, output(result)[-5000:]
    assert_same_tables(workdir / "results" / "smoke", reference_workdir / "reference", names=SMOKE_TABLES)
