"""Run folders as the workflow finds them: complete, missing or damaged.

A training job trains many runs and declares one output, its manifest (the list of its run
folders). The run folders themselves cannot be declared outputs: every output of a Snakemake rule
must carry the rule's wildcards (a job is one optimizer and part, its runs are rates, seeds and
schedules), the members of the confirmation's and of a finder-centred grid's jobs are known only
once a checkpoint has run, and Snakemake deletes a job's declared outputs before it runs it
(which would throw away the complete runs a rerun skips). Nor does Snakemake rerun a job whose
output was deleted while the tables after it are present. So the workflow checks the run folders
itself, each time it is started (:func:`check_study`, called by ``rules/common.smk``):

- a manifest whose run folders are all complete is left alone (the check reads each folder's
  ``summary.json`` and the header and length of its ``history.csv``: well under a millisecond per run);
- a run folder that is missing or damaged (a summary cut short by a crash or a full disk, a
  missing history, a history shorter than the summary says) adds one to its job's count in
  ``results/<study>/repairs.json``; the count is part of the job's spec (a rule parameter, present
  once it is above 0), and Snakemake reruns a job whose parameters changed: exactly that job
  runs again, skips its complete runs and retrains the rest, and the tables after it follow. The
  count stays, so the repaired job is up to date afterwards;
- a runs table (``runs.csv``) whose run folders are gone together with the manifest that listed
  them is orphaned: it is set aside as ``runs.orphaned.csv`` (kept, never deleted), so the
  aggregate and the training jobs behind it run again.

A dry run (``snakemake -n``) changes nothing on disk and plans what a real run would do.
The aggregate validates every folder it reads more strictly (:func:`run_folder_problem` with
``thorough=True``: the config's hash too) and stops with one line per damaged folder.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Dict, Iterable, List, Mapping, Optional, Sequence

from pipeline.io import write_json_atomic
from pipeline.tables import HISTORY_COLUMNS, RUN_KEYS

#: The keys a run's summary.json must hold to be read: the run's identity, its outcome, its
#: length and its config's hash (other keys may be missing in folders of older versions).
SUMMARY_KEYS: List[str] = [*RUN_KEYS, "status", "best_val_loss", "epochs_run", "config_hash"]

#: What a table set aside by :func:`check_study` is called: ``runs.csv`` -> ``runs.orphaned.csv``.
ORPHANED_SUFFIX = ".orphaned"


def _summary(directory: Path) -> tuple:
    """``(summary, problem)`` of a run folder's summary.json."""
    path = directory / "summary.json"
    if not path.is_file():
        return None, "summary.json is missing (the run never finished)"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None, "summary.json is not valid JSON (cut short by a crash or a full disk?)"
    if not isinstance(summary, dict):
        return None, f"summary.json holds a {type(summary).__name__}, not a run's summary"
    missing = [key for key in SUMMARY_KEYS if key not in summary]
    if missing:
        return None, f"summary.json lacks {', '.join(missing)}"
    return summary, None


def _history_problem(directory: Path, epochs_run: Any) -> Optional[str]:
    path = directory / "history.csv"
    if not path.is_file():
        return "history.csv is missing"
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return "history.csv cannot be read"
    if not rows:
        return "history.csv is empty"
    missing = [column for column in HISTORY_COLUMNS if column not in rows[0]]
    if missing:
        return f"history.csv lacks column(s) {', '.join(missing)}"
    epochs = [row for row in rows[1:] if row]
    if any(len(row) != len(rows[0]) for row in epochs):
        return "history.csv has a row cut short"
    if isinstance(epochs_run, int) and len(epochs) != epochs_run:
        return f"history.csv has {len(epochs)} epoch row(s), summary.json says {epochs_run}"
    return None


def _config_problem(directory: Path, summary: Dict[str, Any]) -> Optional[str]:
    import yaml

    from pipeline.config.schema import config_hash

    path = directory / "config.yaml"
    if not path.is_file():
        return "config.yaml is missing"
    try:
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return "config.yaml cannot be parsed"
    if not isinstance(config, dict) or config_hash(config) != summary["config_hash"]:
        return "config.yaml does not match summary.json's config_hash (files of two different runs)"
    return None


def run_folder_problem(directory: Path, thorough: bool = False, entry: Optional[Dict[str, Any]] = None) -> Optional[str]:
    """What is wrong with a run folder, or None when it is complete.

    Args:
        directory: The run folder.
        thorough: Also check that ``config.yaml`` parses and hashes to the summary's
            ``config_hash`` (a YAML parse per run: the aggregate does it, the workflow's start-up
            check does not).
        entry: The run's manifest entry (``schedule``, ``seed``, ``lr``): the summary must be that run's.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return "the run folder is missing"
    summary, problem = _summary(directory)
    if problem is not None:
        return problem
    if entry is not None:
        for key in ("schedule", "seed", "lr"):
            if key in entry and summary.get(key) != entry[key]:
                return f"summary.json is of another run ({key} {summary.get(key)!r}, the manifest says {entry[key]!r})"
    problem = _history_problem(directory, summary.get("epochs_run"))
    if problem is None and thorough:
        problem = _config_problem(directory, summary)
    return problem


class DamagedRuns(ValueError):
    """Run folders a table cannot be made from; the message has one line per folder."""


def check_run_folders(entries: Sequence[Dict[str, Any]]) -> None:
    """Raise :class:`DamagedRuns` naming every damaged folder among manifest ``entries``
    (``run_dir`` and the run's keys), thoroughly (:func:`run_folder_problem`)."""
    problems = []
    for entry in entries:
        problem = run_folder_problem(Path(entry["run_dir"]), thorough=True, entry=entry)
        if problem is not None:
            problems.append(f"{entry['run_dir']}: {problem}")
    if problems:
        raise DamagedRuns(
            f"{len(problems)} damaged run folder(s):\n  "
            + "\n  ".join(problems)
            + "\nStart the workflow again (the same snakemake command): it finds them and retrains exactly these runs."
        )


# --------------------------------------------------------------------------------------
# The workflow's start-up check
# --------------------------------------------------------------------------------------

#: Where the training jobs' manifests live under a study's folder (the grid's, per_run's cohorts,
#: the confirmation's and the batch-size question's).
MANIFEST_PATTERNS = (
    "populations/*/part*.json",
    "cohorts/*/*/seed*/part*.json",
    "confirm/populations/*/part*.json",
    "batch/b*/populations/*/part*.json",
)

#: The runs tables made from run folders (by the aggregate, the confirmation and each batch size).
RUNS_TABLE_PATTERNS = ("runs.csv", "confirm/runs.csv", "batch/b*/runs.csv")


@dataclass(frozen=True)
class Finding:
    """A run folder (or manifest) that needs its training job again, and what happens."""

    path: str
    problem: str
    action: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}; {self.action}"


@dataclass
class StudyCheck:
    """What :func:`check_study` found, and each manifest's repair count (for the job specs)."""

    findings: List[Finding] = field(default_factory=list)
    repairs: Dict[str, int] = field(default_factory=dict)


#: Each training job's repair count, by manifest path (see the module's docstring).
REPAIRS_FILE = "repairs.json"


def read_repairs(study_dir: Path) -> Dict[str, int]:
    """The repair counts of a study (empty when there were none, or the file is unreadable)."""
    try:
        repairs = json.loads((Path(study_dir) / REPAIRS_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(repairs, dict):
        return {}
    return {str(key): int(value) for key, value in repairs.items() if isinstance(value, int) and value > 0}


def with_repairs(spec: Dict[str, Any], manifest: str, repairs: Mapping[str, int]) -> Dict[str, Any]:
    """A training job's spec with its repair count, when it has one (a spec without repairs is
    unchanged, so results made before there was a count stay up to date)."""
    count = repairs.get(manifest, 0)
    return {**spec, "repairs": count} if count else spec


def manifest_entries(manifest: Path) -> Optional[List[Dict[str, Any]]]:
    """A manifest's run entries, or None when it cannot be read."""
    try:
        entries = json.loads(Path(manifest).read_text(encoding="utf-8"))["runs"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) and "run_dir" in entry for entry in entries):
        return None
    return entries


def _table_run_dirs(table: Path) -> Optional[List[str]]:
    try:
        with table.open(newline="", encoding="utf-8") as handle:
            return [row["run_dir"] for row in csv.DictReader(handle) if row.get("run_dir")]
    except (OSError, UnicodeDecodeError, csv.Error, KeyError):
        return None


def _glob(root: Path, patterns: Iterable[str]) -> List[Path]:
    return sorted({path for pattern in patterns for path in root.glob(pattern)})


def check_study(study_dir: Path, dry_run: bool = False, known: Optional[Collection[str]] = None) -> StudyCheck:
    """Check every run folder the study's manifests and runs tables list, and make the workflow
    retrain the missing and damaged ones (see the module's docstring).

    Args:
        study_dir: The study's results folder (relative to the working directory, as the
            Snakefile names it: the repair counts are keyed by the manifests' paths under it).
        dry_run: Write nothing: the counts returned are what a real run would write.
        known: The grid's and batch sizes' manifests the workflow has now, where known: others
            there are left from an earlier shape of the study (a narrower grid, a smaller
            population size) and are not checked. The confirmation's are always checked.
    """
    study_dir = Path(study_dir)
    check = StudyCheck(repairs=read_repairs(study_dir))
    listed: set = set()
    damaged_jobs: List[str] = []
    confirm = study_dir / "confirm"
    for manifest in _glob(study_dir, MANIFEST_PATTERNS):
        if known is not None and confirm not in manifest.parents and str(manifest) not in known:
            continue
        entries = manifest_entries(manifest)
        if entries is None:
            damaged_jobs.append(str(manifest))
            check.findings.append(Finding(str(manifest), "the manifest cannot be read", "its training job runs again"))
            continue
        damaged = []
        for entry in entries:
            listed.add(os.path.normpath(entry["run_dir"]))
            problem = run_folder_problem(Path(entry["run_dir"]), entry=entry)
            if problem is not None:
                damaged.append(Finding(str(entry["run_dir"]), problem, f"retrained by the training job of {manifest}"))
        if damaged:
            damaged_jobs.append(str(manifest))
            check.findings.extend(damaged)
    for manifest in damaged_jobs:
        check.repairs[manifest] = check.repairs.get(manifest, 0) + 1
    if damaged_jobs and not dry_run:
        write_json_atomic(study_dir / REPAIRS_FILE, check.repairs)
    for table in _glob(study_dir, RUNS_TABLE_PATTERNS):
        run_dirs = _table_run_dirs(table)
        gone = [run for run in run_dirs or [] if os.path.normpath(run) not in listed and not Path(run, "summary.json").is_file()]
        if not gone:
            continue
        aside = table.with_name(f"{table.stem}{ORPHANED_SUFFIX}{table.suffix}")
        problem = f"made from {len(gone)} run folder(s) that are gone with their training jobs' manifests (the first: {gone[0]})"
        if dry_run:
            action = f"a real run sets it aside as {aside.name} and retrains them"
        else:
            os.replace(table, aside)
            action = f"set aside as {aside.name}; the runs are retrained"
        check.findings.append(Finding(str(table), problem, action))
    return check


def describe_findings(findings: Sequence[Finding], limit: int = 10) -> List[str]:
    """The lines the workflow prints about ``findings``: the first ``limit``, then a count."""
    lines = [str(finding) for finding in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"... and {len(findings) - limit} more run folder(s) to retrain")
    return lines
