"""End to end: the Snakemake workflow on the smoke study, in a scratch directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import REPO, make_workdir, snakemake

from pipeline.config.compose import compose_study
from pipeline.config.rates import run_dir
from pipeline.figures.registry import study_figures
from pipeline.report.results import headline
from pipeline.tables import BEST, CONFIRM

pytestmark = [pytest.mark.slow, pytest.mark.tf]


def test_dry_run_lists_one_training_job_per_cohort(tmp_path):
    workdir = make_workdir(tmp_path / "w")
    overrides = "overrides=study=smoke study.engine=per_run study.cohort_size=2"
    result = snakemake(workdir, "-n", "--quiet", "rules", "--config", overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    study = compose_study("study=smoke")
    cohorts = len(study.optimizers) * len(study.schedules) * len(study.settings.seeds)
    parts = -(-len(study.rates) // 2)
    train_line = next(line for line in (result.stdout + result.stderr).splitlines() if line.strip().startswith("train "))
    assert int(train_line.split()[1]) == cohorts * parts
    assert not (workdir / "results").exists()


def test_dry_run_lists_population_jobs_of_population_size_runs(tmp_path):
    workdir = make_workdir(tmp_path / "w")
    result = snakemake(workdir, "-n", "--quiet", "rules", "--config", "overrides=study=smoke study.population_size=4")
    assert result.returncode == 0, result.stderr[-3000:]
    study = compose_study("study=smoke")
    runs_per_optimizer = len(study.schedules) * len(study.settings.seeds) * len(study.rates)
    lines = (result.stdout + result.stderr).splitlines()
    train_line = next(line for line in lines if line.strip().startswith("train_population "))
    assert int(train_line.split()[1]) == len(study.optimizers) * -(-runs_per_optimizer // 4)
    assert not any(line.strip().startswith("train ") for line in lines)
    assert not (workdir / "results").exists()


def test_lint_is_clean(tmp_path):
    result = snakemake(make_workdir(tmp_path / "w"), "--lint", "--config", "overrides=study=smoke")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "Lints for" not in result.stdout + result.stderr


def test_tables_are_complete_and_consistent(smoke):
    workdir, results = smoke
    study = compose_study("study=smoke")
    runs = pd.read_csv(results / "runs.csv")
    expected_rows = len(study.optimizers) * len(study.schedules) * len(study.rates) * len(study.settings.seeds)
    assert len(runs) == expected_rows
    assert set(runs["optimizer"]) == set(study.optimizers) and set(runs["schedule"]) == set(study.schedules)
    assert sorted(set(runs["lr"])) == study.rates
    assert set(runs["status"]) <= {"ok", "diverged"}
    curves = pd.read_csv(results / "curves.csv")
    assert len(curves) == runs["epochs_run"].sum()
    for run in runs.itertuples():
        history = pd.read_csv(workdir / run.run_dir / "history.csv")
        assert len(history) == run.epochs_run
        assert run_dir(f"results/{study.name}", run.optimizer, run.schedule, run.seed, run.lr) == Path(run.run_dir)
        if run.status == "ok":
            assert run.best_val_loss == pytest.approx(history["val_loss"].min(), rel=1e-12)
    best = pd.read_csv(results / "best.csv")
    assert len(best) == len(study.optimizers) * len(study.schedules)
    for row in best.itertuples():
        group = runs[(runs.optimizer == row.optimizer) & (runs.schedule == row.schedule)]
        means = group.groupby("lr")["best_val_loss"].mean()
        allowed = group.groupby("lr")["status"].apply(lambda statuses: (statuses == "ok").all())
        assert row.best_val_loss_mean == pytest.approx(means[allowed].min())
        assert row.at_edge == (row.lr in (min(study.rates), max(study.rates)))
    config = (results / "config.yaml").read_text()
    assert "command: snakemake --cores all --config overrides=study=smoke\n" in config
    assert config.startswith("study:\n")


# The smoke study runs no hyperparameter search.
FIGURES = study_figures(with_searches=False)


def test_training_jobs_log_their_device_and_one_progress_line_per_epoch(smoke):
    _, results = smoke
    logs = sorted((results / "logs" / "train").rglob("part*.log"))
    assert logs
    for log in logs:
        text = log.read_text()
        assert text.count("training on CPU (no GPU visible)") == 1, text
        lines = re.findall(r"^epoch (\d+)/4: (\d+) of (\d+) runs still training, best val_loss so far (\S+), [\d.]+ s per epoch$", text, re.MULTILINE)
        assert [int(line[0]) for line in lines] == [1, 2, 3, 4], text
        best = [float(line[3]) for line in lines]
        assert best == sorted(best, reverse=True)  # the best so far never gets worse
        assert all(int(still) <= int(trained) for _, still, trained, _ in lines)


def test_every_run_is_diagnosed(smoke):
    from pipeline.analysis.diagnosis import DIAGNOSIS_COLUMNS, FIT_LABELS

    _, results = smoke
    runs = pd.read_csv(results / "runs.csv")
    assert set(DIAGNOSIS_COLUMNS) <= set(runs.columns)
    assert set(runs["fit"]) <= set(FIT_LABELS)
    assert ((runs["status"] == "diverged") == (runs["fit"] == "diverged")).all()
    best = pd.read_csv(results / "best.csv")
    assert set(best["fit"]) <= set(FIT_LABELS)


def test_report_and_figures_exist_and_agree_with_the_tables(smoke):
    _, results = smoke
    html = (results / "report.html").read_text()
    best = pd.read_csv(results / "best.csv")
    assert html.count("data:image/png;base64,") == len(FIGURES)
    recommended = html[html.index('id="recommended"') :]
    recommended = recommended[recommended.index("<tbody") : recommended.index("</tbody>")]
    assert recommended.count("<tr") == len(best)
    for row in best.itertuples():
        assert row.schedule in html and row.optimizer in html
    for figure in FIGURES:
        assert (results / "figures" / f"{figure}.png").stat().st_size > 10_000, figure
        assert len(pd.read_csv(results / "figures" / f"{figure}.csv")) > 0, figure
    sensitivity = pd.read_csv(results / "figures" / "lr_sensitivity.csv")
    assert len(sensitivity) == len(best) * 3  # every rate of every optimizer x schedule, diverged included


def headline_in_browser(report: Path) -> str:
    """The report's headline as headless Chromium renders it (CI installs Chromium; without it,
    the text of the page's headline element)."""
    import html

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        page = report.read_text()
        return html.unescape(page[page.index('id="headline">') + len('id="headline">') :].split("</p>")[0])
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_context(offline=True).new_page()
            page.goto(report.as_uri(), wait_until="load")
            return page.locator("p#headline").inner_text()
        finally:
            browser.close()


def test_confirmation_on_fresh_seeds(smoke):
    """study.confirm: the plan's rates retrained on the fresh seeds in their own run folders,
    a verdict per cell, the winner's verdict in the headline, and nothing retrained on a rerun."""
    workdir, results = smoke
    study = compose_study("study=smoke")
    seeds = study.settings.confirm.seeds
    best = pd.read_csv(results / "best.csv")
    confirm = pd.read_csv(results / "confirm.csv")
    assert len(confirm) == len(best) and set(confirm["verdict"]) <= {"confirmed", "tie", "overturned", "no runner-up"}
    assert (confirm["seeds"] == len(seeds)).all()
    plan = json.loads((results / "confirm" / "plan.json").read_text())
    assert plan["seeds"] == seeds and not set(seeds) & set(study.settings.seeds)
    fresh = pd.read_csv(results / "confirm" / "runs.csv")
    assert len(fresh) == len(plan["members"]) * len(seeds) and set(fresh["seed"]) == set(seeds)
    for member in plan["members"]:
        for seed in seeds:
            folder = run_dir(results / "confirm", member["optimizer"], member["schedule"], seed, member["lr"])
            assert (folder / "summary.json").exists(), folder
    # The cells' rates are among the members: recommended and runner-up of each.
    rates = {(member["optimizer"], member["schedule"], member["lr"]) for member in plan["members"]}
    for row in confirm.itertuples():
        assert (row.optimizer, row.schedule, row.lr) in rates
    # The headline, as a browser shows it, is the sentence the tables give.
    expected = headline(BEST.read(results / "best.csv"), CONFIRM.read(results / "confirm.csv"))
    assert f"on {len(seeds)} fresh seeds" in expected
    assert headline_in_browser(results / "report.html") == expected
    assert 'id="confirmation-section"' in (results / "report.html").read_text()
    stamps = {run: (workdir / run / "history.csv").stat().st_mtime_ns for run in fresh["run_dir"]}
    forced = snakemake(workdir, "--cores", "2", "--forcerun", "confirm_train", "--config", "overrides=study=smoke")
    assert forced.returncode == 0, (forced.stdout + forced.stderr)[-5000:]
    logs = "".join(path.read_text() for path in (results / "logs" / "confirm").rglob("part*.log"))
    assert logs.count("up to date") == len(fresh)
    assert {run: (workdir / run / "history.csv").stat().st_mtime_ns for run in fresh["run_dir"]} == stamps


def test_rerun_does_nothing_and_a_wider_grid_trains_only_new_rates(smoke):
    workdir, results = smoke
    again = snakemake(workdir, "-n", "--cores", "2", "--config", "overrides=study=smoke")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr
    old = pd.read_csv(results / "runs.csv")
    stamps = {run: (workdir / run / "history.csv").stat().st_mtime_ns for run in old["run_dir"]}
    wider = "overrides=study=smoke study.grid.values=[0.001,0.01,0.03162,1.0]"
    result = snakemake(workdir, "--cores", "2", "--config", wider)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    runs = pd.read_csv(results / "runs.csv")
    assert len(runs) == len(old) // 3 * 4
    assert sorted(set(runs["lr"])) == [0.001, 0.01, 0.03162, 1.0]
    assert {run: (workdir / run / "history.csv").stat().st_mtime_ns for run in old["run_dir"]} == stamps
    logs = "".join(path.read_text() for path in (results / "logs" / "train").rglob("*.log"))
    assert logs.count("up to date") == len(old)


def test_single_run_app_writes_what_the_workflow_writes(smoke, tmp_path):
    workdir, results = smoke
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.training.run", "study=smoke", "optimizer=adam", "schedule=warmup_cosine",
         "lr=0.03162", "seed=0"],  # fmt: skip
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    relative = Path("results/smoke/runs/adam/warmup_cosine/seed0/lr3.162e-2")
    alone = pd.read_csv(tmp_path / relative / "history.csv").drop(columns="seconds")
    in_cohort = pd.read_csv(workdir / relative / "history.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(alone, in_cohort, check_exact=True)
    summary_alone = json.loads((tmp_path / relative / "summary.json").read_text())
    summary_cohort = json.loads((workdir / relative / "summary.json").read_text())
    assert summary_alone["config_hash"] == summary_cohort["config_hash"]
    assert (tmp_path / relative / "config.yaml").read_text() == (workdir / relative / "config.yaml").read_text()


def test_snakemake_report(smoke):
    workdir, results = smoke
    out = results / "workflow-report.html"
    result = snakemake(workdir, "--report", str(out.relative_to(workdir)), "--config", "overrides=study=smoke")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert out.stat().st_size > 10_000
    text = out.read_text(errors="replace")
    for figure in FIGURES:
        assert f"{figure}.png" in text, figure


def test_a_users_own_model_and_npz_dataset(tmp_path):
    """The README's example: a model builder of one's own and an .npz file, no package edits."""
    from sklearn.datasets import load_digits

    workdir = make_workdir(tmp_path / "w", copy_conf=True)
    (workdir / "conf" / "model" / "wide.yaml").write_text(
        "name: wide\n_target_: examples.custom_model.wide_mlp\nwidth: 32\n"
    )
    digits = load_digits()
    x, y = (digits.data / 16).astype(np.float32), digits.target
    (workdir / "data").mkdir()
    np.savez(workdir / "data" / "mine.npz", x_train=x[:1200], y_train=y[:1200], x_val=x[1200:], y_val=y[1200:])
    overrides = (
        "overrides=study=smoke study.name=mine model=wide dataset=npz dataset.path=data/mine.npz dataset.name=mine "
        "optimizer=[adam] schedule=[constant] study.grid.values=[0.001,0.03] study.confirm.seeds=[]"
    )
    env = {"LRSTUDY_CONF_DIR": str(workdir / "conf")}
    result = snakemake(workdir, "--cores", "2", "--config", overrides, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    runs = pd.read_csv(workdir / "results" / "mine" / "runs.csv")
    assert len(runs) == 2 and set(runs["status"]) == {"ok"}
    assert runs["best_val_accuracy"].max() > 0.8  # it really trained on the user data
    config = json.loads(json.dumps(__import__("yaml").safe_load((workdir / runs["run_dir"][0] / "config.yaml").read_text())))
    assert config["model"]["_target_"] == "examples.custom_model.wide_mlp" and config["model"]["width"] == 32
    assert config["dataset"]["path"] == "data/mine.npz"
    assert not (workdir / "results" / "mine" / "confirm").exists()  # study.confirm.seeds=[]: no confirmation


def test_lr_range_test_and_finder_centred_grid(tmp_path):
    """grid.mode=finder: each optimizer's grid is centred on its range test's suggestion."""
    from pipeline.finder.suggest import centred_grid, read_suggestion

    workdir = make_workdir(tmp_path / "w")
    overrides = (
        "overrides=study=smoke study.name=centred study.grid.mode=finder study.grid.finder_decades=1 schedule=[constant] "
        "study.confirm.seeds=[]"
    )
    result = snakemake(workdir, "--cores", "2", "--config", overrides)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    results = workdir / "results" / "centred"
    runs = pd.read_csv(results / "runs.csv")
    for optimizer in ("adam", "momentum"):
        suggestions = results / "finder" / optimizer / "suggestions.json"
        curve = pd.read_csv(results / "finder" / optimizer / "finder.csv")
        assert list(curve.columns) == ["optimizer", "seed", "step", "lr", "loss", "smooth_loss"]
        suggestion = read_suggestion(suggestions, "valley")
        assert suggestion is not None
        expected = centred_grid(suggestion, 1.0, 3)
        assert sorted(runs.loc[runs["optimizer"] == optimizer, "lr"]) == pytest.approx(expected, rel=1e-12)
        assert expected[0] < suggestion < expected[-1]
    comparison = pd.read_csv(results / "finder_vs_grid.csv")
    assert len(comparison) == 2 * 1 * 4  # optimizers x schedules x suggestion kinds (fastai's four)
    html = (results / "report.html").read_text()
    assert "LR range test" in html


def test_hyperparameter_search_through_the_workflow(tmp_path):
    """hpo=tpe: worker jobs share one journal, run exactly the budget, and land in the report."""
    workdir = make_workdir(tmp_path / "w")
    overrides = (
        "overrides=study=smoke study.name=search hpo=tpe hpo.trials=4 hpo.workers=2 "
        "optimizer=[adam] schedule=[constant]"
    )
    result = snakemake(workdir, "--cores", "2", "--config", overrides)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    results = workdir / "results" / "search"
    trials = pd.read_csv(results / "hpo" / "tpe" / "trials.csv")
    assert trials["trial"].tolist() == [0, 1, 2, 3]
    assert set(trials["state"]) <= {"complete", "pruned"}
    ran = [json.loads((results / "hpo" / "tpe" / f"worker{k}.done").read_text())["trials"] for k in (0, 1)]
    assert sorted(ran[0] + ran[1]) == [0, 1, 2, 3]
    methods = pd.read_csv(results / "methods.csv")
    assert {"grid", "tpe"} <= set(methods["method"])
    assert "Hyperparameter search" in (results / "report.html").read_text()
    # The fair comparison: each method's choice retrained on the confirmation's fresh seeds.
    seeds = compose_study("study=smoke").settings.confirm.seeds
    assert (methods.set_index("method").loc[["grid", "tpe"], "fresh_seeds"] == len(seeds)).all()
    assert methods.set_index("method").loc[["grid", "tpe"], "fresh_rank"].notna().all()
    plan = json.loads((results / "confirm" / "plan.json").read_text())
    assert {"grid", "tpe"} <= {method["method"] for method in plan["methods"]}
    again = snakemake(workdir, "-n", "--cores", "2", "--config", overrides)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_the_batch_size_question_end_to_end(tmp_path):
    """study.batch_sizes: the grid trained again at each other batch size, the best rate per batch
    size and the fitted exponent in two tables, a figure and the report's section."""
    from pipeline.analysis.batch import batch_scaling_table, batch_sizes_table
    from pipeline.tables import BATCH_SCALING, BATCH_SIZES, RUNS

    workdir = make_workdir(tmp_path / "w")
    overrides = (
        "overrides=study=smoke study.name=batch optimizer=[adam] schedule=[constant,cosine] study.seeds=[0,1] "
        "study.grid.values=[0.001,0.003162,0.01,0.03162] study.batch_sizes=[32,64] study.epochs=3 study.confirm.seeds=[]"
    )
    result = snakemake(workdir, "--cores", "2", "--config", overrides)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    results = workdir / "results" / "batch"
    # The grid's own batch size (study.batch_size=128) is the grid: never trained twice.
    assert sorted(path.name for path in (results / "batch").iterdir()) == ["b32", "b64"]
    runs_by_size = {128: RUNS.read(results / "runs.csv")}
    for size in (32, 64):
        runs = RUNS.read(results / "batch" / f"b{size}" / "runs.csv")
        assert len(runs) == 2 * 4 * 2 and set(runs["status"]) <= {"ok", "diverged"}
        for run_folder in runs["run_dir"]:
            config = __import__("yaml").safe_load((workdir / run_folder / "config.yaml").read_text())
            assert config["training"]["batch_size"] == size
            assert Path(run_folder).is_relative_to(Path("results/batch/batch") / f"b{size}" / "runs")
        # ceil(examples / batch size) steps per epoch: the batch size was really used.
        assert set(runs["steps"] // runs["epochs_run"]) == {-(-1437 // size)}
        runs_by_size[size] = runs
    assert set(runs_by_size[128]["steps"] // runs_by_size[128]["epochs_run"]) == {-(-1437 // 128)}
    sizes = BATCH_SIZES.read(results / "batch_sizes.csv")
    scaling = BATCH_SCALING.read(results / "batch_scaling.csv")
    # The workflow's tables are the analysis of its runs tables.
    pd.testing.assert_frame_equal(sizes, BATCH_SIZES.typed(batch_sizes_table(runs_by_size)))
    pd.testing.assert_frame_equal(scaling, BATCH_SCALING.typed(batch_scaling_table(runs_by_size)))
    assert list(sizes["batch_size"]) == [32, 64, 128, 32, 64, 128]
    assert list(scaling["schedule"]) == ["constant", "cosine"] and set(scaling["batch_sizes"]) == {"32 64 128"}
    assert scaling["exponent_low"].notna().all()  # two seeds: an interval
    html = (results / "report.html").read_text()
    assert 'id="batch-size"' in html and 'id="figure-batch_scaling"' in html
    assert (results / "figures" / "batch_scaling.png").exists()
    again = snakemake(workdir, "-n", "--cores", "2", "--config", overrides)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_a_users_csv_table_end_to_end(tmp_path):
    """dataset=csv: a table with class names trains through the workflow; a wrong label column
    stops it before any job, naming the columns, with nothing under results/ touched."""
    from sklearn.datasets import load_iris

    workdir = make_workdir(tmp_path / "w")
    iris = load_iris(as_frame=True)
    frame = iris.data.assign(species=iris.target_names[iris.target])
    (workdir / "data").mkdir()
    frame.to_csv(workdir / "data" / "iris.csv", index=False)
    common = (
        "study=smoke study.name=iris dataset=csv dataset.path=data/iris.csv dataset.name=iris optimizer=[adam] "
        "schedule=[constant] study.grid.values=[0.003,0.03] study.confirm.seeds=[] study.epochs=20"
    )
    wrong = snakemake(workdir, "--cores", "2", "--config", f"overrides={common} dataset.label=kind")
    assert wrong.returncode != 0
    assert "dataset.label='kind' is no column of dataset.path='data/iris.csv'; its columns: ['sepal length (cm)'" in (
        wrong.stdout + wrong.stderr
    )
    assert not (workdir / "results").exists()
    result = snakemake(workdir, "--cores", "2", "--config", f"overrides={common} dataset.label=species")
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    runs = pd.read_csv(workdir / "results" / "iris" / "runs.csv")
    assert len(runs) == 2 and set(runs["status"]) == {"ok"}
    assert runs["best_val_accuracy"].max() > 0.8  # it really learned the table
    data = np.load(workdir / "results" / "iris" / "data" / "iris.npz")
    assert data["x_train"].shape == (120, 4) and sorted(set(data["y_val"].tolist())) == [0, 1, 2]
    assert "dataset.label='species': classes 0=setosa, 1=versicolor, 2=virginica" in (
        workdir / "results" / "iris" / "logs" / "dataset.log"
    ).read_text()
    # The table is an input of the dataset rule: a changed table rebuilds the data.
    frame.iloc[:-3].to_csv(workdir / "data" / "iris.csv", index=False)
    again = snakemake(workdir, "-n", "--cores", "2", "--config", f"overrides={common} dataset.label=species")
    assert "dataset" in again.stdout and "Nothing to be done" not in again.stdout + again.stderr


def test_an_image_folder_end_to_end_killed_and_resumed(tmp_path):
    """dataset=images: a folder of PNGs streamed through the whole workflow; the workflow killed
    (SIGKILL of Snakemake and its jobs) mid-training and started again with the same command
    gives the tables of an uninterrupted run."""
    import signal
    import time

    from image_folders import digit_images, write_folder

    from pipeline.tables import CURVES, RUNS
    from pipeline.training.resume import STATE_FILE, saved_epochs

    images, labels = digit_images(400)
    overrides = (
        "overrides=study=smoke dataset=images dataset.directory=data/digits dataset.image_size=[32,32] "
        "dataset.color_mode=grayscale dataset.name=digits_png optimizer=[adam] schedule=[constant] "
        "study.grid.values=[0.001,0.003162] study.epochs=8 study.confirm.seeds=[]"
    )
    workdirs = {}
    for name in ("uninterrupted", "killed"):
        workdirs[name] = make_workdir(tmp_path / name)
        write_folder(workdirs[name] / "data" / "digits", images, labels)
    reference = snakemake(workdirs["uninterrupted"], "--cores", "2", "--config", overrides)
    assert reference.returncode == 0, (reference.stdout + reference.stderr)[-5000:]

    workdir = workdirs["killed"]
    state = workdir / run_dir("results/smoke", "adam", "constant", 0, 0.001) / STATE_FILE
    job = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2", "--config", overrides], cwd=workdir,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while saved_epochs(state) < 3 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(timeout=30)
    assert 3 <= saved_epochs(state) < 8, "the workflow was not killed mid-training"
    assert not (workdir / "results" / "smoke" / "runs.csv").exists()
    # The same command again: the lock of the killed workflow is removed, its jobs rerun.
    resumed = snakemake(workdir, "--cores", "2", "--config", overrides)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-5000:]
    assert "removed the lock of a workflow that was killed" in resumed.stderr

    results = {name: path / "results" / "smoke" for name, path in workdirs.items()}
    timing = ["seconds", "seconds_to_target", "resumed_from_epoch", "device"]
    runs = {name: RUNS.read(folder / "runs.csv").drop(columns=timing) for name, folder in results.items()}
    pd.testing.assert_frame_equal(runs["killed"], runs["uninterrupted"], check_exact=True)
    curves = {name: CURVES.read(folder / "curves.csv").drop(columns="seconds") for name, folder in results.items()}
    pd.testing.assert_frame_equal(curves["killed"], curves["uninterrupted"], check_exact=True)
    assert set(runs["killed"]["status"]) == {"ok"} and runs["killed"]["best_val_accuracy"].max() > 0.5
    # Streamed: the study's data file is a manifest of the PNGs, not their pixels.
    with np.load(results["killed"] / "data" / "digits_png.npz") as manifest:
        assert "paths_train" in manifest.files and "x_train" not in manifest.files
    assert (results["killed"] / "data" / "digits_png.npz").stat().st_size < 100_000


def test_a_users_own_tf_data_pipeline_end_to_end(tmp_path):
    """dataset=pipeline: a tf.data pipeline of the user's, streamed through the whole workflow
    (range tests, training, tables, report); every run says its batches came in the user's order."""
    workdir = make_workdir(tmp_path / "w")
    overrides = (
        "overrides=study=smoke study.name=own dataset=pipeline dataset.builder=examples.own_pipeline.tf_data_digits "
        "dataset.name=own optimizer=[adam] schedule=[constant] study.grid.values=[0.003,0.03] study.confirm.seeds=[] "
        "study.epochs=3"
    )
    result = snakemake(workdir, "--cores", "2", "--config", overrides)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    results = workdir / "results" / "own"
    runs = pd.read_csv(results / "runs.csv")
    assert len(runs) == 2 and set(runs["status"]) == {"ok"} and runs["best_val_accuracy"].max() > 0.8
    for folder in runs["run_dir"]:
        assert json.loads((workdir / folder / "summary.json").read_text())["batch_order"] == "user"
    with np.load(results / "data" / "own.npz") as manifest:
        assert "pipeline" in manifest.files and int(manifest["count_train"]) == 1437
    assert (results / "report.html").exists()
