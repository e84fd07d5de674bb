"""Optuna searches as Snakemake jobs: names and specs, parallel workers sharing one journal,
the exact budget, reruns, pruning, divergence as a result, failures and stale trials."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import yaml
from factories import REPO

from pipeline.search import worker as hpo
from pipeline.search import spec as hpo_spec
from pipeline.search import storage as hpo_storage
from pipeline.search import summary as hpo_summary
from pipeline.search import trial as hpo_trial
from pipeline.config.compose import compose_study
from pipeline.tables import HISTORY, TRIALS, TrialState
from pipeline.training.data import save_npz

SMOKE = "study=smoke hpo=tpe hpo.trials=6 hpo.workers=2 study.epochs=3 optimizer=[adam] schedule=[constant]"
#: The study of the conftest's ``study`` and ``data_file`` fixtures.
STUDY = SMOKE
#: The worker's journal logic with training faked: the per-run engine, one trial per ask.
PER_RUN = "study.engine=per_run"


def local_spec(study: Any, search: str, root: Path) -> Dict[str, Any]:
    """The job spec with its results folder under ``root`` (the Snakefile's is relative)."""
    spec = hpo_spec.hpo_job_spec(study, search)
    spec["study_dir"] = str(root / "results" / study.name)
    spec["journal"] = str(Path(spec["study_dir"]) / "hpo" / search / "journal.log")
    return spec


def worker_command(spec: Dict[str, Any], data_file: Path, worker: int) -> List[str]:
    done = hpo_spec.search_dir(spec) / f"worker{worker}.done"
    return [sys.executable, "-m", "pipeline.search", "worker", "--spec", json.dumps(spec), "--data", str(data_file),
            "--worker", str(worker), "--threads", "1", "--done", str(done)]  # fmt: skip


def start_worker(spec: Dict[str, Any], data_file: Path, worker: int) -> subprocess.Popen:
    return subprocess.Popen(
        worker_command(spec, data_file, worker), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen) -> str:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    return stdout


def journal_trials(spec: Dict[str, Any]) -> list:
    return hpo_storage.open_study(spec).get_trials(deepcopy=False)


def read_done(spec: Dict[str, Any], worker: int) -> Dict[str, Any]:
    return json.loads((hpo_spec.search_dir(spec) / f"worker{worker}.done").read_text())


# --------------------------------------------------------------------------------------
# Pure: names, specs, sampling
# --------------------------------------------------------------------------------------


def test_searches_are_sampler_by_pruner():
    assert hpo_spec.searches(compose_study("study=smoke hpo=compare")) == ["random", "random_median", "tpe", "tpe_median"]
    assert hpo_spec.searches(compose_study("study=smoke hpo=tpe")) == ["tpe"]
    assert hpo_spec.searches(compose_study("study=smoke")) == []  # hpo=none


def test_job_spec_is_plain_json_with_choices_bounds_and_a_base_run(study):
    spec = hpo_spec.hpo_job_spec(study, "tpe")
    assert json.loads(json.dumps(spec)) == spec
    assert spec["search"] == "tpe" and spec["sampler"] == "tpe" and spec["pruner"] == "none"
    assert (spec["trials"], spec["workers"], spec["seed"]) == (6, 2, 0)
    assert (spec["lr_min"], spec["lr_max"]) == (1e-5, 1.0)
    assert list(spec["optimizers"]) == ["adam"] and list(spec["schedules"]) == ["constant"]
    assert spec["warmup_fraction"] is None and spec["training_seed"] == 0
    assert spec["study_dir"] == "results/smoke" and spec["journal"] == "results/smoke/hpo/tpe/journal.log"
    assert spec["base"]["training"]["epochs"] == 3 and spec["base"]["optimizer"]["name"] == "adam"
    assert spec["deterministic"] is True
    with pytest.raises(ValueError, match="its searches: tpe"):
        hpo_spec.hpo_job_spec(study, "random")

    wide = compose_study(
        "study=smoke hpo=compare optimizer=[adam,momentum] schedule=[constant,warmup_cosine] "
        "hpo.optimizers=[adam,momentum] hpo.schedules=[constant,warmup_cosine] hpo.warmup_fraction=[0.05,0.3]"
    )
    spec = hpo_spec.hpo_job_spec(wide, "random_median")
    assert (spec["sampler"], spec["pruner"]) == ("random", "median")
    assert spec["optimizers"]["momentum"]["type"] == "sgd"
    assert spec["schedules"]["warmup_cosine"]["type"] == "warmup_cosine"
    assert spec["warmup_fraction"] == [0.05, 0.3]


def test_sampling_builds_the_trial_run_config():
    import optuna

    wide = compose_study(
        "study=smoke optimizer=[adam,momentum] schedule=[constant,warmup_cosine] hpo=tpe "
        "hpo.optimizers=[adam,momentum] hpo.schedules=[constant,warmup_cosine] hpo.warmup_fraction=[0.05,0.3]"
    )
    spec = hpo_spec.hpo_job_spec(wide, "tpe")
    point = {"lr": 0.02, "optimizer": "momentum", "schedule": "warmup_cosine", "warmup_fraction": 0.2}
    params, run_config = hpo_trial.sample_trial(optuna.trial.FixedTrial(point), spec, digest="abc")
    assert params == {"lr": 0.02, "optimizer": "momentum", "schedule": "warmup_cosine", "warmup_fraction": 0.2}
    assert run_config["training"]["lr"] == 0.02 and run_config["dataset"]["digest"] == "abc"
    assert run_config["optimizer"]["name"] == "momentum" and run_config["schedule"]["warmup_fraction"] == 0.2
    # No warm-up knob on a constant schedule: no warmup_fraction dimension.
    point = {"lr": 0.1, "optimizer": "adam", "schedule": "constant"}
    params, run_config = hpo_trial.sample_trial(optuna.trial.FixedTrial(point), spec)
    assert "warmup_fraction" not in params and run_config["schedule"] == {"name": "constant", "type": "constant"}
    # Fixed dimensions are not suggested at all, only the rate is.
    study = optuna.create_study()
    trial = study.ask()
    params, _ = hpo_trial.sample_trial(trial, hpo_spec.hpo_job_spec(compose_study(SMOKE), "tpe"))
    assert list(trial.params) == ["lr"] and params["optimizer"] == "adam" and params["schedule"] == "constant"


def test_worker_seeds_differ_by_worker_and_resumption():
    seeds = {hpo_spec.worker_seed(0, worker, finished) for worker in range(3) for finished in (0, 4)}
    assert len(seeds) == 6 and hpo_spec.worker_seed(0, 1) == hpo_spec.worker_seed(0, 1, 0)


def test_worst_value_and_outcomes():
    summary = {"status": "diverged", "initial_loss": 2.5, "best_val_loss": 0.3}
    assert hpo_trial.trial_outcome(summary, False, 4.0) == ("complete", 10.0)
    assert hpo_trial.trial_outcome({**summary, "status": "ok"}, True, 4.0) == ("pruned", None)
    assert hpo_trial.trial_outcome({**summary, "status": "ok"}, False, 4.0) == ("complete", 0.3)
    assert hpo_trial.worst_value({"initial_loss": math.nan}, 4.0) == hpo_trial.WORST_FALLBACK


# --------------------------------------------------------------------------------------
# Worker logic with a fake trainer (in-process, no TensorFlow)
# --------------------------------------------------------------------------------------


class FakeCallback:
    pruned_epoch = None

    def __init__(self, trial: Any) -> None:
        self.trial = trial


@pytest.fixture
def fake_training(monkeypatch):
    """Replace TensorFlow training with a function of the rate; ``fail_for`` rates raise."""
    import pipeline.training.device
    import pipeline.training.run

    calls: Dict[str, Any] = {"fail_for": set(), "trained": []}

    def fake_train_run(run_config, arrays, out_dir, device="", callbacks=(), extra_summary=None, progress=False):
        lr = run_config["training"]["lr"]
        if lr in calls["fail_for"] or "all" in calls["fail_for"]:
            raise RuntimeError(f"boom at {lr}")
        calls["trained"].append(lr)
        summary = {"status": "ok", "best_val_loss": abs(math.log10(lr) + 2), "best_val_accuracy": 0.9,
                   "initial_loss": 2.3, "epochs_run": 3, "seconds": 0.01}  # fmt: skip
        summary.update(extra_summary(summary))
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "summary.json").write_text(json.dumps(summary))
        return summary

    monkeypatch.setattr(pipeline.training.run, "train_run", fake_train_run)
    monkeypatch.setattr(pipeline.training.device, "configure_tensorflow", lambda threads=None, deterministic=True, gpus=0: "fake")
    # The pruning callback's module imports Keras: a stand-in keeps this process TensorFlow-free.
    monkeypatch.setitem(sys.modules, "pipeline.training.callbacks", types.SimpleNamespace(PruningCallback=FakeCallback))
    return calls


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    save_npz({"x_train": rng.random((8, 4)), "y_train": np.arange(8) % 2, "x_val": rng.random((4, 4)),
              "y_val": np.arange(4) % 2}, path)  # fmt: skip
    return path


def test_errors_are_recorded_and_the_search_goes_on(fake_training, tiny_data, tmp_path):
    spec = {**local_spec(compose_study(f"{SMOKE} {PER_RUN}"), "tpe", tmp_path), "trials": 3}
    first = hpo_storage.open_study(spec)
    first.enqueue_trial({"lr": 1e-3})
    fake_training["fail_for"].add(1e-3)
    ran = hpo.run_worker(spec, tiny_data, worker=0)
    assert [entry["state"] for entry in ran] == ["fail", "complete", "complete", "complete"]
    trials = journal_trials(spec)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    assert trials[0].user_attrs["fail_reason"].startswith("error: RuntimeError: boom")
    frame = hpo_summary.summarise_search(spec)
    assert list(frame["state"]) == ["fail", "complete", "complete", "complete"]
    assert math.isnan(frame["best_val_loss"][0]) and frame["fail_reason"][0].startswith("error")
    # A systematic error stops the search (SearchError) instead of looping for ever.
    fake_training["fail_for"].add("all")
    spec = {**spec, "trials": 6}
    with pytest.raises(hpo_storage.SearchError, match="failed with errors"):
        hpo.run_worker(spec, tiny_data, worker=0)
    assert sum(t.state.name == "FAIL" for t in journal_trials(spec)) == 6


def test_stale_running_trials_are_reaped_live_ones_kept(fake_training, tiny_data, tmp_path):
    spec = {**local_spec(compose_study(f"{SMOKE} {PER_RUN}"), "tpe", tmp_path), "trials": 4}
    setup = hpo_storage.open_study(spec)
    heartbeats = hpo_spec.search_dir(spec) / ".heartbeat"
    heartbeats.mkdir(parents=True)
    for worker, token in ((0, "w0-killed"), (1, "w1-gone"), (1, "w1-alive")):
        trial = setup.ask()
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("token", token)
    (heartbeats / "w1-alive").touch()  # a live worker 1 still training trial 2
    (heartbeats / "w1-gone").touch()
    old = time.time() - 2 * hpo_storage.STALE_AFTER_SECONDS
    os.utime(heartbeats / "w1-gone", (old, old))
    ran = hpo.run_worker(spec, tiny_data, worker=0)  # the restarted job of worker 0
    states = [t.state.name for t in journal_trials(spec)]
    assert states[:3] == ["FAIL", "FAIL", "RUNNING"]
    assert [t.user_attrs["fail_reason"] for t in journal_trials(spec)[:2]] == [
        "stale: worker 0 restarted", "stale: worker 1 has no heartbeat"]  # fmt: skip
    # The budget counts the live RUNNING trial: 3 more trials complete 4 counted ones.
    assert len(ran) == 3 and states[3:] == ["COMPLETE"] * 3
    assert not (heartbeats / "w1-gone").exists()
    with pytest.raises(hpo_storage.SearchError, match="other search settings"):
        hpo_storage.open_study({**spec, "lr_max": 0.5})


# --------------------------------------------------------------------------------------
# Real workers (subprocesses, TensorFlow)
# --------------------------------------------------------------------------------------


@pytest.mark.tf
def test_two_parallel_workers_fill_the_budget_exactly_and_a_rerun_trains_nothing(data_file, tmp_path):
    # The population engine: each worker asks 4 trials at once (ask-and-tell) and trains them as
    # one population; the budget of 6 is still exact (the last batch asks only what is left).
    spec = local_spec(compose_study(f"{SMOKE} hpo.batch=4"), "tpe", tmp_path)
    assert spec["batch"] == 4 and spec["base"]["training"]["engine"] == "population"
    processes = [start_worker(spec, data_file, worker) for worker in (0, 1)]
    for process in processes:
        finish(process)
    trials = journal_trials(spec)
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)
    ran = [read_done(spec, worker)["trials"] for worker in (0, 1)]
    assert not set(ran[0]) & set(ran[1]) and sorted(ran[0] + ran[1]) == list(range(6))
    assert ran[0] and ran[1]  # both workers took part
    batches: Dict[int, List[int]] = {}
    for trial in trials:
        batches.setdefault(trial.user_attrs["batch"], []).append(trial.number)
    # Asked together: one worker's 4, the other's 2 (what the budget had left).
    assert sorted(len(numbers) for numbers in batches.values()) == [2, 4]
    assert all(len({trials[n].user_attrs["worker"] for n in numbers}) == 1 for numbers in batches.values())

    out = hpo_spec.search_dir(spec) / "trials.csv"
    summary = subprocess.run(
        [sys.executable, "-m", "pipeline.search", "summary", "--spec", json.dumps(spec), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert summary.returncode == 0, summary.stderr[-2000:]
    frame = TRIALS.read(out)
    assert list(frame.columns) == TRIALS.columns
    assert list(frame["trial"]) == list(range(6)) and set(frame["state"]) == {TrialState.COMPLETE}
    assert frame["worker"].dtype == "Int64" and frame["status"].isin(["ok", "diverged"]).all()
    assert list(frame["value"]) == pytest.approx([t.value for t in trials])
    assert set(frame["optimizer"]) == {"adam"} and frame["lr"].between(1e-5, 1.0).all()
    assert len(set(frame["lr"])) == 6  # the workers' samplers don't share a random stream
    mtimes = {}
    for trial in trials:
        folder = hpo_spec.trial_dir(spec, trial.number)
        assert (folder / "history.csv").is_file()
        run_summary = json.loads((folder / "summary.json").read_text())
        assert (run_summary["trial"], run_summary["state"], run_summary["search"]) == (trial.number, "complete", "tpe")
        assert "population_fallback" not in run_summary
        assert yaml.safe_load((folder / "config.yaml").read_text())["training"]["engine"] == "population"
        assert run_summary["params"]["lr"] == trial.params["lr"] and run_summary["value"] == trial.value
        mtimes.update({path: path.stat().st_mtime_ns for path in folder.iterdir()})

    finish(start_worker(spec, data_file, 0))
    assert read_done(spec, 0)["trials"] == []
    assert len(journal_trials(spec)) == 6
    assert {path: path.stat().st_mtime_ns for path in mtimes} == mtimes

    # optuna-dashboard opens the journal as the README says (`optuna-dashboard <journal.log>`):
    # its own storage loader finds every trial, with each epoch's val_loss as an intermediate value.
    from optuna_dashboard._storage_url import get_storage

    dashboard = get_storage(spec["journal"])
    [summary] = dashboard.get_all_studies()
    shown = dashboard.get_all_trials(summary._study_id)
    curves = 0
    assert [trial.number for trial in shown] == list(range(6)) and all(trial.state.name == "COMPLETE" for trial in shown)
    for trial in shown:
        history = HISTORY.read(hpo_spec.trial_dir(spec, trial.number) / "history.csv")
        diverged = json.loads((hpo_spec.trial_dir(spec, trial.number) / "summary.json").read_text())["diverged_epoch"]
        reported = {  # every epoch's val_loss but a diverged one's
            int(epoch) - 1: pytest.approx(loss) for epoch, loss in zip(history["epoch"], history["val_loss"]) if diverged is None or epoch < diverged
        }
        assert trial.intermediate_values == reported
        assert trial.params == trials[trial.number].params and trial.value == trials[trial.number].value
        curves += len(reported)
    assert curves >= 6  # most trials reported every epoch


@pytest.mark.tf
@pytest.mark.parametrize("engine", ["study.engine=per_run", "study.engine=population hpo.batch=2"])
def test_a_bad_trial_is_pruned_and_a_diverging_one_is_a_worst_valued_result(tmp_path, data_file, engine):
    study = compose_study(f"{SMOKE} hpo.pruners=[median] hpo.trials=4 hpo.workers=1 hpo.lr_max=30 {engine}")
    spec = local_spec(study, "tpe_median", tmp_path)
    setup = hpo_storage.open_study(spec)
    # Two good rates complete first (MedianPruner needs 2), then a rate too small to learn
    # in 3 epochs, then one far too large for Adam. With the population engine and batches of
    # 2, the first two train as one population, then the last two, pruned and diverged alone.
    for lr in (1e-2, 3e-3, 1e-6, 30.0):
        setup.enqueue_trial({"lr": lr})
    stdout = finish(start_worker(spec, data_file, 0))
    trials = journal_trials(spec)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"], stdout
    frame = hpo_summary.summarise_search(spec)
    assert list(frame["state"]) == ["complete", "complete", "pruned", "complete"]
    assert list(frame["status"]) == ["ok", "ok", "ok", "diverged"]
    pruned = json.loads((hpo_spec.trial_dir(spec, 2) / "summary.json").read_text())
    # Step 0 (epoch 1) is the pruner's warm-up: stopped after epoch 2 of 3.
    assert (pruned["state"], pruned["pruned_epoch"], pruned["epochs_run"]) == ("pruned", 2, 2)
    diverged = json.loads((hpo_spec.trial_dir(spec, 3) / "summary.json").read_text())
    assert (diverged["state"], diverged["status"]) == ("complete", "diverged")
    worst = study.settings.divergence_factor * diverged["initial_loss"]
    assert trials[3].value == pytest.approx(worst) and diverged["value"] == pytest.approx(worst)
    assert worst > max(trials[0].value, trials[1].value)
