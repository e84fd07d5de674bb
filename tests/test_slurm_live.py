"""Live SLURM: the smoke study through Snakemake's SLURM executor and profiles/slurm.

A single-node cluster on this machine (scripts/local_slurm.sh: munged, slurmctld, slurmd started
by hand, no accounting) runs the smoke study; its tables must equal a local run's, its jobs must
have gone through sbatch, and the profile's grouping must have put several training jobs into one
cluster job. A second study is run with `--slurm-requeue` and its training job requeued mid-run
(`scontrol requeue`, what preemption does): it must resume from its saved epoch and end equal to
an uninterrupted local run. Needs root and the SLURM packages (`scripts/local_slurm.sh install`): skipped without
them, except under CI, where it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from factories import REPO

from pipeline.training.resume import STATE_FILE, saved_epochs

pytestmark = [pytest.mark.slow, pytest.mark.slurm, pytest.mark.tf]

SCRIPT = REPO / "scripts" / "local_slurm.sh"
# Not the script's default (/run/lrstudy-slurm): a cluster started by hand is left alone (the
# start then fails on its ports, clearly), and one left by a killed test run is stopped by the next.
STATE_DIR = Path("/run/lrstudy-slurm-test")
BINARIES = ("munged", "munge", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
LINKED = ("Snakefile", "rules", "pipeline", "report", "envs", "examples", "conf", "profiles")
# The population engine with 3 runs per job: six training jobs (18 runs), which the profile
# groups four to a cluster job (4 + 2). The requeue test below runs the per-run engine, so
# both engines' jobs go through SLURM.
# The confirmation of each optimizer's best schedule only (study.confirm.cells=best): a checkpoint
# and its jobs through SLURM, at a fraction of the smoke study's 28 confirmation runs.
STUDY = "overrides=study=smoke study.population_size=3 study.confirm.cells=best"
RUN_TIMEOUT = 900  # seconds, per Snakemake run; the SLURM run takes about 2.5 minutes
STATUS_CHECK_SECONDS = 5  # the cluster's MinJobAge (3600 s) is well above 3 x this
KEYS = ["optimizer", "schedule", "seed", "lr"]
# Columns that may differ between two correct runs: wall-clock timings (seconds,
# seconds_to_target, ...) and where a run happened. Everything else must agree.
TIMING_COLUMN = re.compile(r"(^|_)seconds($|_)")
# resumed_from_epoch says whether a run was interrupted, not what it computed.
MACHINE_COLUMNS = {"device", "host", "hostname", "node", "threads", "resumed_from_epoch"}


def prerequisites_missing() -> str | None:
    problems = []
    if not sys.platform.startswith("linux"):
        problems.append("it needs Linux")
    elif os.geteuid() != 0:
        problems.append("it needs root (it writes /etc/slurm/slurm.conf and starts the SLURM daemons)")
    search_path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    missing = [name for name in BINARIES if shutil.which(name, path=search_path) is None]
    if missing:
        problems.append(f"SLURM/munge programs missing ({', '.join(missing)}): run `scripts/local_slurm.sh install` as root")
    return "; ".join(problems) or None


@dataclass(frozen=True)
class Cluster:
    state: Path
    cpus: int
    memory_mb: int


def daemon_logs(state: Path) -> str:
    parts = []
    for path in sorted(state.glob("*.log")) + sorted(state.glob("*.out")):
        lines = path.read_text(errors="replace").splitlines()[-40:]
        parts.append(f"----- {path} (last {len(lines)} lines) -----\n" + "\n".join(lines))
    return "\n".join(parts)


def script(command: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), command, str(STATE_DIR)], check=False, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


@pytest.fixture(scope="module")
def cluster():
    """The single-node cluster for this module; every daemon it started is stopped afterwards."""
    problem = prerequisites_missing()
    if problem:
        message = f"live SLURM test cannot run: {problem}"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{message} (CI must provide them: .ci/run calls scripts/local_slurm.sh install)", pytrace=False)
        pytest.skip(message)
    try:
        started = script("start")
        if started.returncode != 0:
            pytest.fail(f"scripts/local_slurm.sh start failed:\n{started.stdout}{started.stderr}", pytrace=False)
        node = subprocess.run(["sinfo", "-h", "-N", "-o", "%c %m"], capture_output=True, text=True, check=True, timeout=30)
        cpus, memory_mb = (int(value) for value in node.stdout.split()[:2])
        yield Cluster(STATE_DIR, cpus, memory_mb)
    finally:
        stopped = script("stop")
        left = [path.stem for path in STATE_DIR.glob("*.pid") if not path.stem.endswith(".daemon")]
        assert stopped.returncode == 0 and not left, f"stopping the cluster failed:\n{stopped.stdout}{stopped.stderr}"


def make_workdir(path: Path) -> Path:
    """A scratch checkout: the workflow's files and profiles linked in, results written locally."""
    path.mkdir(parents=True)
    for name in LINKED:
        (path / name).symlink_to(REPO / name)
    return path


def snakemake_environment() -> dict[str, str]:
    """This environment without SLURM_* variables, with this interpreter's directory first on
    PATH: jobs call `python -m pipeline...`, and sbatch's --export=ALL carries PATH into them."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("SLURM_")}
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment.get("PATH", "")])
    return environment


def snakemake(workdir: Path, *arguments: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run Snakemake in workdir; returns the process and its whole output (stdout then stderr)."""
    command = [sys.executable, "-m", "snakemake", *arguments]
    try:
        result = subprocess.run(
            command, check=False, cwd=workdir, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=snakemake_environment(), stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as error:
        output = "".join(text.decode(errors="replace") if isinstance(text, bytes) else (text or "") for text in (error.stdout, error.stderr))
        result = subprocess.CompletedProcess(command, returncode=-1, stdout=output, stderr=f"\ntimed out after {RUN_TIMEOUT} s")
    return result, result.stdout + result.stderr


def failure_report(output: str, workdir: Path, cluster: Cluster | None) -> str:
    parts = ["----- snakemake output (tail) -----", output[-6000:]]
    for log in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))[-4:]:
        parts += [f"----- {log.relative_to(workdir)} (tail) -----", log.read_text(errors="replace")[-2000:]]
    if cluster is not None:
        queue = subprocess.run(["squeue", "-t", "all"], check=False, capture_output=True, text=True, timeout=30)
        parts += ["----- squeue -t all -----", queue.stdout + queue.stderr, daemon_logs(cluster.state)]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def local_run(cluster, tmp_path_factory):
    """The reference: the smoke study run by local Snakemake (after the cluster check, so that a
    machine without SLURM skips before spending the time)."""
    workdir = make_workdir(tmp_path_factory.mktemp("slurm-local") / "w")
    result, output = snakemake(workdir, "--cores", "2", "--config", STUDY)
    assert result.returncode == 0, failure_report(output, workdir, None)
    return workdir


def slurm_arguments(cluster: Cluster) -> list[str]:
    return [
        "--workflow-profile", "profiles/slurm",
        "--executor", "slurm",
        "--jobs", "20",
        # A group job may use at most the node: --cores and --resources cap each group (the
        # profile's four training jobs then run two at a time inside it); without them a group
        # would ask for more CPUs than the node has and never start.
        "--cores", str(cluster.cpus),
        "--resources", f"mem_mb={cluster.memory_mb}",
        # No accounting database: squeue answers (the cluster's MinJobAge is 3600 s).
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", str(STATUS_CHECK_SECONDS),
        "--slurm-no-account",
        # Keep the SLURM logs of successful jobs: the test counts them.
        "--slurm-keep-successful-logs",
        # A failure should show at once, not after the profile's retry.
        "--retries", "0",
        "--config", STUDY,
    ]  # fmt: skip


@dataclass(frozen=True)
class SlurmRun:
    workdir: Path
    output: str
    job_ids: dict[str, set[int]]  # SLURM job ids by log folder: rule_dataset, group_training_train, ...


SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


@pytest.fixture(scope="module")
def slurm_run(cluster, local_run, tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("slurm-cluster") / "w")
    result, output = snakemake(workdir, *slurm_arguments(cluster))
    assert result.returncode == 0, failure_report(output, workdir, cluster)
    logs = workdir / ".snakemake" / "slurm_logs"
    job_ids: dict[str, set[int]] = {}
    for job_id, log in SUBMITTED.findall(output):
        kind = Path(log).relative_to(logs).parts[0]
        job_ids.setdefault(kind, set()).add(int(job_id))
    return SlurmRun(workdir, output, job_ids)


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    excluded = [column for column in table.columns if TIMING_COLUMN.search(column) or column in MACHINE_COLUMNS]
    keys = [key for key in KEYS if key in table.columns]
    return table.drop(columns=excluded).sort_values(keys).reset_index(drop=True)


@pytest.mark.parametrize("table", ["runs.csv", "best.csv", "curves.csv", "confirm.csv", "confirm/runs.csv"])
def test_tables_match_a_local_run(local_run, slurm_run, table):
    local = pd.read_csv(local_run / "results" / "smoke" / table)
    remote = pd.read_csv(slurm_run.workdir / "results" / "smoke" / table)
    assert list(remote.columns) == list(local.columns)
    keys = [key for key in KEYS if key in local.columns]
    # The same runs (optimizer, schedule, seed, lr) before the same values.
    assert sorted(map(tuple, remote[keys].to_numpy().tolist())) == sorted(map(tuple, local[keys].to_numpy().tolist()))
    if "status" in local.columns:
        assert comparable(remote)["status"].tolist() == comparable(local)["status"].tolist()
    # CPU training with op determinism and one thread per job repeats to the bit; the tolerance
    # only forgives the CSV round trip.
    pd.testing.assert_frame_equal(comparable(remote), comparable(local), check_exact=False, rtol=1e-6, atol=1e-12)


def test_jobs_went_through_slurm_and_training_was_grouped(cluster, slurm_run):
    job_ids = slurm_run.job_ids
    assert job_ids, "no 'submitted with SLURM jobid' line in the output:\n" + slurm_run.output[-3000:]
    # The rules that are not localrules were submitted: dataset, the range tests, training.
    assert {"rule_dataset", "rule_lr_finder", "group_training_train_population"} <= set(job_ids), job_ids
    # The confirmation's jobs, planned by a checkpoint once the grid was aggregated, went out too.
    assert any(kind.startswith("group_training") and "confirm_train" in kind for kind in job_ids) or "rule_confirm_train" in job_ids, job_ids
    # Each job left its SLURM log (the job step's own Snakemake output) under .snakemake/slurm_logs.
    logs = slurm_run.workdir / ".snakemake" / "slurm_logs"
    logged = {int(path.stem) for path in logs.rglob("*.log")}
    submitted = set().union(*job_ids.values())
    assert submitted <= logged, f"jobs without a SLURM log: {sorted(submitted - logged)}"
    # slurmctld still knows them (the cluster's MinJobAge is an hour), and all completed.
    queue = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T"], capture_output=True, text=True, check=True, timeout=30)
    states = {int(job_id): state for job_id, state in (line.split() for line in queue.stdout.splitlines())}
    assert submitted <= set(states), f"jobs squeue does not know: {sorted(submitted - set(states))}"
    assert all(states[job_id] == "COMPLETED" for job_id in submitted), states
    # Grouping: the training jobs went out as fewer cluster jobs, at most as many as the profile's
    # group-components makes of them (smoke: six training jobs, four per group: 4 + 2). Fewer is
    # Snakemake's open bug #1628: when a checkpoint (here the range test's) makes it rebuild the
    # DAG, its cached group jobs merge again and the groups grow past group-components.
    per_group = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())["group-components"]["training"]
    stats = re.search(r"^train_population\s+(\d+)\s*$", slurm_run.output, re.MULTILINE)
    assert stats, "no 'train_population' line in Snakemake's job stats"
    training_jobs = int(stats.group(1))
    assert training_jobs == 6
    groups = len(job_ids["group_training_train_population"])
    assert groups < training_jobs, f"{training_jobs} training jobs went out as {groups} cluster jobs"
    assert groups <= -(-training_jobs // per_group), f"{training_jobs} training jobs in groups of {per_group} went out as {groups} cluster jobs"


REQUEUE_STUDY = (
    "overrides=study=smoke dataset=mnist1d study.name=requeue study.epochs=60 optimizer=[adam] "
    "schedule=[constant] study.grid.values=[0.003] study.engine=per_run"
)
REQUEUE_TARGET = "results/requeue/runs.csv"


def scontrol(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(["scontrol", *arguments], check=False, capture_output=True, text=True, timeout=30)


def test_a_requeued_training_job_resumes_from_its_last_epoch_and_matches_a_local_run(cluster, tmp_path):
    """`--slurm-requeue`: SLURM requeues the training job mid-run (as preemption does); the job
    starts again, resumes from the saved epoch, and the run equals an uninterrupted local one."""
    local = make_workdir(tmp_path / "local")
    result, output = snakemake(local, "--cores", "2", "--config", REQUEUE_STUDY, "--", REQUEUE_TARGET)
    assert result.returncode == 0, failure_report(output, local, None)

    workdir = make_workdir(tmp_path / "cluster")
    arguments = [argument if argument != STUDY else REQUEUE_STUDY for argument in slurm_arguments(cluster)]
    log = tmp_path / "snakemake.log"
    run_folder = Path("results/requeue/runs/adam/constant/seed0/lr3e-3")
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "snakemake", *arguments, "--slurm-requeue", "--", REQUEUE_TARGET],
            cwd=workdir, stdout=handle, stderr=subprocess.STDOUT, env=snakemake_environment(), stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + RUN_TIMEOUT
            while saved_epochs(workdir / run_folder / STATE_FILE) < 3 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            logs = workdir / ".snakemake" / "slurm_logs"
            submitted = {Path(log_file).relative_to(logs).parts[0]: int(job_id) for job_id, log_file in SUBMITTED.findall(log.read_text())}
            assert "group_training_train" in submitted or "rule_train" in submitted, failure_report(log.read_text(), workdir, cluster)
            job_id = str(submitted.get("group_training_train", submitted.get("rule_train")))
            requeued = scontrol("requeue", job_id)
            assert requeued.returncode == 0, requeued.stdout + requeued.stderr
            epochs_at_requeue = saved_epochs(workdir / run_folder / STATE_FILE)
            # SLURM holds a requeued job back for a while (BeginTime); let it start again now.
            for _ in range(100):
                if scontrol("update", f"jobid={job_id}", "StartTime=now").returncode == 0:
                    break
                time.sleep(0.2)
            process.wait(timeout=max(1, deadline - time.monotonic()))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    output = log.read_text()
    assert process.returncode == 0, failure_report(output, workdir, cluster)
    job = scontrol("show", "job", job_id).stdout
    assert "Restarts=1" in job and "Requeue=1" in job, job
    summary = json.loads((workdir / run_folder / "summary.json").read_text())
    assert 3 <= epochs_at_requeue < 60, f"the job was not requeued mid-run ({epochs_at_requeue} epochs saved)"
    assert summary["resumed_from_epoch"] is not None and summary["resumed_from_epoch"] >= epochs_at_requeue
    assert not (workdir / run_folder / STATE_FILE).exists()
    pd.testing.assert_frame_equal(
        pd.read_csv(workdir / run_folder / "history.csv").drop(columns="seconds"),
        pd.read_csv(local / run_folder / "history.csv").drop(columns="seconds"),
        check_exact=True,
    )
    pd.testing.assert_frame_equal(
        comparable(pd.read_csv(workdir / REQUEUE_TARGET)), comparable(pd.read_csv(local / REQUEUE_TARGET)), check_exact=False, rtol=1e-6, atol=1e-12
    )
