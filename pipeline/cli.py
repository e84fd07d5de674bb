"""``lrstudy``: a Hydra-native front door to the workflow.

    lrstudy model=cnn optimizer=[adam,rmsprop] study.seeds=[0,1,2] -- --cores all
    lrstudy study=smoke --cfg job          # print the composed study, run nothing
    lrstudy --help                         # Hydra's help: groups and their options
    lrstudy --verbose study=smoke          # TensorFlow's own log lines too (LRSTUDY_VERBOSE=1)
    lrstudy --no-progress study=smoke      # Snakemake's output alone, no live summary line

Everything before ``--`` is a Hydra override (or one of the two flags above); everything after
goes to Snakemake (default ``--cores all``). The study is validated first; then Snakemake runs
with ``--config overrides="<the same overrides>"``, the route SLURM jobs and scripts use, so the
two spellings always run the same study.

While Snakemake runs, its output scrolls above one live line (rich's progress display): runs
done of the runs known so far, diverged so far, time elapsed and an estimate of the time left.
Runs are counted from the run folders (:func:`study_progress`): the grid's and the batch-size
question's are known from the study, the confirmation's once its plan exists, a finder-centred
grid's once its range test has suggested a rate.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from pipeline.config.compose import format_overrides

SNAKEFILE = Path(__file__).resolve().parent.parent / "Snakefile"


def split_arguments(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Hydra's arguments before ``--``, Snakemake's after (``--cores all`` when none)."""
    arguments = list(argv)
    if "--" in arguments:
        cut = arguments.index("--")
        return arguments[:cut], arguments[cut + 1 :] or ["--cores", "all"]
    return arguments, ["--cores", "all"]


def snakemake_command(overrides: Sequence[str], snakemake_arguments: Sequence[str]) -> List[str]:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), *snakemake_arguments]
    if overrides:
        command += ["--config", "overrides=" + format_overrides(overrides)]
    return command


#: The launcher's own flags (before ``--``): they never reach Hydra.
VERBOSE_FLAG = "--verbose"
NO_PROGRESS_FLAG = "--no-progress"


@dataclass(frozen=True)
class Progress:
    """A study's runs: done (a complete ``summary.json``), of which diverged, of ``total`` known."""

    done: int
    diverged: int
    total: int


def study_run_dirs(study: Any) -> Tuple[List[Path], int]:
    """The run folders a study will have that are known now, and how many more it will have
    whose names are not known yet (a finder-centred grid before its range test has run)."""
    from pipeline.analysis.confirm import plan_members, plan_optimizers
    from pipeline.config.rates import run_dir
    from pipeline.config.schema import study_dir
    from pipeline.finder.suggest import centred_grid, read_suggestion

    root = Path(study_dir(study.name))
    grid = study.settings.grid
    known: List[Path] = []
    unknown = 0
    roots = [root, *(root / "batch" / f"b{size}" for size in study.batch_sizes if size != study.settings.batch_size)]
    for optimizer in study.optimizers:
        rates: Optional[List[float]] = list(study.rates)
        if grid.mode == "finder":
            suggestion = None
            suggestions = root / "finder" / optimizer / "suggestions.json"
            if suggestions.is_file():
                suggestion = read_suggestion(suggestions, grid.finder_suggestion)
            rates = centred_grid(suggestion, grid.finder_decades, grid.points) if suggestion is not None else None
        if rates is None:
            unknown += len(roots) * len(study.schedules) * len(study.settings.seeds) * grid.points
            continue
        for folder in roots:
            known += [
                run_dir(folder, optimizer, schedule, int(seed), float(lr))
                for schedule in study.schedules
                for seed in study.settings.seeds
                for lr in rates
            ]
    plan = root / "confirm" / "plan.json"
    if plan.is_file():
        try:
            planned = json.loads(plan.read_text())
            known += [
                run_dir(root / "confirm", optimizer, schedule, seed, lr)
                for optimizer in plan_optimizers(planned)
                for schedule, seed, lr in plan_members(planned, optimizer)
            ]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return known, unknown


def study_progress(study: Any, finished: Optional[Dict[Path, str]] = None) -> Progress:
    """How far a study is: its run folders with a complete summary (``finished`` caches their
    statuses between calls, so each folder is read once)."""
    finished = {} if finished is None else finished
    known, unknown = study_run_dirs(study)
    for folder in known:
        if folder in finished:
            continue
        try:
            finished[folder] = str(json.loads((folder / "summary.json").read_text())["status"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    statuses = [finished[folder] for folder in known if folder in finished]
    return Progress(done=len(statuses), diverged=statuses.count("diverged"), total=len(known) + unknown)


def run_with_progress(command: Sequence[str], study: Any, interval: float = 1.0) -> int:
    """Run Snakemake with its output scrolling above a live summary line; its exit code."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.progress import Progress as RichProgress

    finished: Dict[Path, str] = {}
    start = study_progress(study, finished)
    console = Console(stderr=True)
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("runs,"),
        TextColumn("{task.fields[diverged]} diverged,"), TimeElapsedColumn(), TextColumn("elapsed,"),
        TimeRemainingColumn(), TextColumn("left"),
    )  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    with RichProgress(*columns, console=console, transient=False) as display:
        task = display.add_task(study.name, total=max(start.total, 1), completed=start.done, diverged=start.diverged)

        def relay() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                display.console.print(line.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)

        reader = threading.Thread(target=relay, daemon=True)
        reader.start()
        try:
            while process.poll() is None:
                reader.join(timeout=interval)
                now = study_progress(study, finished)
                display.update(task, total=max(now.total, 1), completed=now.done, diverged=now.diverged)
        except KeyboardInterrupt:  # Ctrl-C reached Snakemake too (one process group): let it stop its jobs
            process.wait()
        reader.join()
        now = study_progress(study, finished)
        display.update(task, total=max(now.total, 1), completed=now.done, diverged=now.diverged)
    return process.returncode


def main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from pipeline.config.compose import register_schema, validate
    from pipeline.config.schema import StudyConfigError, conf_dir, study_dir
    from pipeline.invocation import VERBOSE_ENV, dry_run

    hydra_arguments, snakemake_arguments = split_arguments(sys.argv[1:])
    if VERBOSE_FLAG in hydra_arguments:
        os.environ[VERBOSE_ENV] = "1"  # read by every job (pipeline.training.device)
    progress = NO_PROGRESS_FLAG not in hydra_arguments
    hydra_arguments = [argument for argument in hydra_arguments if argument not in (VERBOSE_FLAG, NO_PROGRESS_FLAG)]
    sys.argv = [sys.argv[0], *hydra_arguments]
    register_schema()

    @hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
    def app(cfg: DictConfig) -> None:
        overrides = list(HydraConfig.get().overrides.task)
        try:
            study = validate(cfg, overrides)
        except StudyConfigError as error:
            print(f"lrstudy: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        command = snakemake_command(overrides, snakemake_arguments)
        print(f"study {study.name!r}: {study_dir(study.name)}/\n$ {shlex.join(command)}", flush=True)
        quiet_runs = {"--unlock", "--lint", "--summary", "--detailed-summary", "--list-rules", "--dag", "--rulegraph"}
        if progress and not dry_run(["snakemake", *snakemake_arguments]) and not quiet_runs & set(snakemake_arguments):
            raise SystemExit(run_with_progress(command, study))
        raise SystemExit(subprocess.call(command))

    app()


if __name__ == "__main__":
    main()
