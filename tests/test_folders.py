"""Run folders checked: each kind of damage named, the workflow's start-up check (repair counts,
orphaned tables, dry runs), and the aggregate's refusal of a damaged folder in one line per folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest
from factories import REPO, write_run

from pipeline.training.folders import (
    REPAIRS_FILE,
    DamagedRuns,
    check_run_folders,
    check_study,
    describe_findings,
    read_repairs,
    run_folder_problem,
    with_repairs,
)

ROWS = [
    {"epoch": epoch, "lr": 0.01, "loss": 1.0 / epoch, "accuracy": 0.5, "val_loss": 1.0 / epoch, "val_accuracy": 0.5, "seconds": 0.5}
    for epoch in (1, 2, 3)
]


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The working directory is tmp_path: folders are named relative to it, as in the workflow."""
    monkeypatch.chdir(tmp_path)


def study(tmp_path: Path, runs: int = 3) -> tuple:
    """A study folder (relative to tmp_path, the working directory) with ``runs`` run folders
    and one population manifest listing them; returns (study folder, manifest, entries)."""
    study_dir = Path("results") / "demo"
    entries = []
    for index in range(runs):
        lr = 0.001 * 10**index
        folder = write_run(study_dir, "adam", "constant", 0, lr, ROWS)
        entries.append({"schedule": "constant", "seed": 0, "lr": lr, "run_dir": str(folder), "status": "ok"})
    manifest = study_dir / "populations" / "adam" / "part0.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"optimizer": "adam", "engine": "population", "runs": entries}))
    return study_dir, manifest, entries


def truncate(path: Path) -> None:
    path.write_text(path.read_text()[: len(path.read_text()) // 2])


DAMAGE: Dict[str, tuple] = {
    "folder deleted": (lambda d: __import__("shutil").rmtree(d), r"the run folder is missing"),
    "summary deleted": (lambda d: (d / "summary.json").unlink(), r"summary.json is missing"),
    "summary cut short": (lambda d: truncate(d / "summary.json"), r"summary.json is not valid JSON"),
    "summary of no run": (lambda d: (d / "summary.json").write_text("[1, 2]"), r"summary.json holds a list"),
    "summary without keys": (lambda d: (d / "summary.json").write_text('{"status": "ok"}'), r"summary.json lacks optimizer, schedule, lr, seed, best_val_loss, epochs_run, config_hash"),
    "history deleted": (lambda d: (d / "history.csv").unlink(), r"history.csv is missing"),
    "history empty": (lambda d: (d / "history.csv").write_text(""), r"history.csv is empty"),
    "history cut short": (lambda d: (d / "history.csv").write_text((d / "history.csv").read_text().rsplit("\n", 2)[0] + "\n"), r"history.csv has 2 epoch row\(s\), summary.json says 3"),
    "history row cut": (lambda d: (d / "history.csv").write_text((d / "history.csv").read_text()[:-12]), r"history.csv has a row cut short"),
    "history without columns": (lambda d: (d / "history.csv").write_text("epoch,loss\n1,2\n2,1\n3,0\n"), r"history.csv lacks column\(s\) lr, accuracy, val_loss"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_each_damage_is_named(tmp_path: Path, damage: str) -> None:
    _, _, entries = study(tmp_path)
    folder = Path(entries[1]["run_dir"])
    assert run_folder_problem(folder) is None and run_folder_problem(folder, thorough=True) is None
    change, message = DAMAGE[damage]
    change(folder)
    problem = run_folder_problem(folder)
    assert problem is not None
    __import__("re").search(message, problem) or pytest.fail(f"{problem!r} does not match {message!r}")


def test_a_thorough_check_compares_the_config_with_its_hash(tmp_path: Path) -> None:
    _, _, entries = study(tmp_path)
    folder = Path(entries[0]["run_dir"])
    (folder / "config.yaml").write_text((folder / "config.yaml").read_text().replace("0.001", "0.002"))
    assert run_folder_problem(folder) is None  # the start-up check skips the YAML
    assert "config.yaml does not match summary.json's config_hash" in run_folder_problem(folder, thorough=True)
    (folder / "config.yaml").write_text("training: [")
    assert run_folder_problem(folder, thorough=True) == "config.yaml cannot be parsed"
    (folder / "config.yaml").unlink()
    assert run_folder_problem(folder, thorough=True) == "config.yaml is missing"


def test_a_summary_of_another_run_is_caught_by_its_manifest_entry(tmp_path: Path) -> None:
    _, _, entries = study(tmp_path)
    first, second = (Path(entry["run_dir"]) for entry in entries[:2])
    (first / "summary.json").write_text((second / "summary.json").read_text())
    assert "summary.json is of another run (lr 0.01, the manifest says 0.001)" in run_folder_problem(first, entry=entries[0])


def test_the_aggregate_check_names_every_damaged_folder(tmp_path: Path) -> None:
    _, _, entries = study(tmp_path)
    check_run_folders(entries)
    truncate(Path(entries[0]["run_dir"]) / "summary.json")
    __import__("shutil").rmtree(entries[2]["run_dir"])
    with pytest.raises(DamagedRuns) as raised:
        check_run_folders(entries)
    lines = str(raised.value).splitlines()
    assert lines[0] == "2 damaged run folder(s):"
    assert lines[1] == f"  {entries[0]['run_dir']}: summary.json is not valid JSON (cut short by a crash or a full disk?)"
    assert lines[2] == f"  {entries[2]['run_dir']}: the run folder is missing"
    assert "Start the workflow again" in lines[3]


def test_the_aggregate_job_stops_with_the_folder_named_and_no_traceback(tmp_path: Path) -> None:
    study_dir, manifest, entries = study(tmp_path)
    truncate(Path(entries[1]["run_dir"]) / "summary.json")
    out = tmp_path / "tables"
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.analysis", "--manifests", str(manifest), "--runs", str(out / "runs.csv"),
         "--curves", str(out / "curves.csv"), "--best", str(out / "best.csv")],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"{entries[1]['run_dir']}: summary.json is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
    manifest.write_text('{"runs": ')
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.analysis", "--manifests", str(manifest), "--runs", "r.csv", "--curves", "c.csv", "--best", "b.csv"],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and f"{manifest}: not a readable training manifest" in result.stderr


# --------------------------------------------------------------------------------------
# The workflow's start-up check
# --------------------------------------------------------------------------------------


def test_complete_folders_change_nothing(tmp_path: Path) -> None:
    study_dir, _, _ = study(tmp_path)
    check = check_study(study_dir)
    assert check.findings == [] and check.repairs == {} and not (study_dir / REPAIRS_FILE).exists()


def test_a_damaged_folder_raises_its_jobs_repair_count_once_per_start(tmp_path: Path) -> None:
    study_dir, manifest, entries = study(tmp_path)
    __import__("shutil").rmtree(entries[1]["run_dir"])
    dry = check_study(study_dir, dry_run=True)
    assert dry.repairs == {str(manifest): 1} and not (study_dir / REPAIRS_FILE).exists()  # a dry run writes nothing
    assert [str(finding) for finding in dry.findings] == [
        f"{entries[1]['run_dir']}: the run folder is missing; retrained by the training job of {manifest}"
    ]
    assert check_study(study_dir).repairs == {str(manifest): 1}
    assert read_repairs(study_dir) == {str(manifest): 1}
    # Still damaged (the job failed, or was not run): the next start asks again.
    assert check_study(study_dir).repairs == {str(manifest): 2}
    # Repaired: the count stays, so the job's spec (and Snakemake's record of it) stays the same.
    write_run(study_dir, "adam", "constant", 0, entries[1]["lr"], ROWS)
    assert check_study(study_dir).findings == [] and read_repairs(study_dir) == {str(manifest): 2}


def test_an_unreadable_manifest_reruns_its_job(tmp_path: Path) -> None:
    study_dir, manifest, _ = study(tmp_path)
    manifest.write_text("{")
    check = check_study(study_dir)
    assert check.repairs == {str(manifest): 1}
    assert [finding.problem for finding in check.findings] == ["the manifest cannot be read"]


def test_the_spec_carries_a_count_only_above_zero() -> None:
    spec = {"optimizer": "adam", "members": [["constant", 0, 0.1]]}
    assert with_repairs(spec, "results/x/populations/adam/part0.json", {}) is spec
    assert with_repairs(spec, "results/x/populations/adam/part0.json", {"results/x/populations/adam/part0.json": 3}) == {**spec, "repairs": 3}


@pytest.mark.parametrize("content", ["[1]", "{", '{"a": "b"}'])
def test_unreadable_repair_counts_count_as_none(tmp_path: Path, content: str) -> None:
    (tmp_path / REPAIRS_FILE).write_text(content)
    assert read_repairs(tmp_path) == {}


def test_a_table_whose_runs_and_manifests_are_gone_is_set_aside(tmp_path: Path) -> None:
    study_dir, manifest, entries = study(tmp_path)
    table = study_dir / "runs.csv"
    table.write_text("optimizer,run_dir\n" + "".join(f"adam,{entry['run_dir']}\n" for entry in entries))
    manifest.unlink()
    assert check_study(study_dir).findings == []  # the runs are there: nothing to retrain
    for entry in entries:
        __import__("shutil").rmtree(entry["run_dir"])
    dry = check_study(study_dir, dry_run=True)
    assert table.exists() and "a real run sets it aside as runs.orphaned.csv" in str(dry.findings[0])
    check = check_study(study_dir)
    assert len(check.findings) == 1 and check.findings[0].path == str(table)
    assert f"made from 3 run folder(s) that are gone with their training jobs' manifests (the first: {entries[0]['run_dir']})" in str(check.findings[0])
    assert not table.exists() and (study_dir / "runs.orphaned.csv").read_text().startswith("optimizer,run_dir")


def test_findings_are_listed_up_to_a_limit() -> None:
    from pipeline.training.folders import Finding

    findings = [Finding(f"run{index}", "the run folder is missing", "retrained") for index in range(13)]
    lines = describe_findings(findings)
    assert len(lines) == 11 and lines[0] == "run0: the run folder is missing; retrained"
    assert lines[-1] == "... and 3 more run folder(s) to retrain"


def test_manifests_the_study_no_longer_has_are_not_checked(tmp_path: Path) -> None:
    study_dir, manifest, entries = study(tmp_path)
    __import__("shutil").rmtree(entries[0]["run_dir"])
    old = str(manifest)
    assert check_study(study_dir, dry_run=True, known={old}).repairs == {old: 1}
    # A narrower grid: part0 is no job of the study any more.
    narrower = check_study(study_dir, known={str(study_dir / "populations" / "adam" / "part1.json")})
    assert narrower.findings == [] and not (study_dir / REPAIRS_FILE).exists()
    # The confirmation's manifests follow its plan: always checked.
    confirm = study_dir / "confirm" / "populations" / "adam" / "part0.json"
    confirm.parent.mkdir(parents=True)
    confirm.write_text(manifest.read_text())
    assert check_study(study_dir, dry_run=True, known=set()).repairs == {str(confirm): 1}
