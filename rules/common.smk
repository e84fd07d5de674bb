# The study, composed and validated once when the workflow is read, and the helpers the
# rules share. A bad override stops here, before any job, with nothing under results/ touched.

import dataclasses
import json
import sys
from pathlib import Path
from types import SimpleNamespace

from pipeline.analysis.confirm import plan_members, plan_optimizers
from pipeline.training.cohort import cohort_spec
from pipeline.training.data import dataset_files, dataset_listing
from pipeline.training.population_job import population_members, population_parts, population_spec
from pipeline.config.compose import compose_study
from pipeline.config.rates import cohort_parts
from pipeline.config.schema import StudyConfigError, study_dir
from pipeline.finder.suggest import centred_grid, finder_job_spec, read_suggestion
from pipeline.invocation import dry_run, record_owner, remove_stale_lock
from pipeline.training.folders import check_study, describe_findings, read_repairs, with_repairs
from pipeline.search.spec import hpo_job_spec, searches


_unknown_keys = sorted(set(config) - {"overrides"})
if _unknown_keys:
    raise StudyConfigError(
        f"unknown --config key(s) {_unknown_keys}: the only key is 'overrides', "
        'e.g. --config overrides="study=smoke optimizer=[adam]"'
    )

STUDY = compose_study(config.get("overrides"))
STUDY_DIR = study_dir(STUDY.name)

DATA_FILE = f"{STUDY_DIR}/data/{STUDY.dataset['name']}.npz"
# A user's files (.npz, CSV tables) are inputs of the dataset rule: a changed file rebuilds the
# data, and its content digest in every run's config retrains what it affects.
DATASET_INPUTS = dataset_files(STUDY.dataset)
# An image folder is no file input: its listing (paths, sizes, times) is a parameter instead.
DATASET_LISTING = dataset_listing(STUDY.dataset)
# Rule parameters as JSON: Snakemake reruns a job when its parameters change.
STUDY_JSON = json.dumps(STUDY.as_dict())
DATASET_JSON = json.dumps(STUDY.dataset)
DIAGNOSIS_JSON = json.dumps(dataclasses.asdict(STUDY.diagnosis))
FINDER_MODE = STUDY.settings.grid.mode == "finder"
# What each TensorFlow job (train, lr_finder, hpo_worker) asks for: Snakemake's `gpu` resource,
# which `--resources gpu=N` caps on one machine and the SLURM executor turns into --gpus
# (with `gpu_model`, --gpus=<model>:<n>). See pipeline/training/device.py for how a job picks its GPU.
GPU_RESOURCES = {"gpu": STUDY.settings.gpus}
if STUDY.settings.gpu_model:
    GPU_RESOURCES["gpu_model"] = STUDY.settings.gpu_model
# Hyperparameter searches (none unless hpo.samplers is set): one job per search and worker.
SEARCHES = searches(STUDY)
HPO_SPECS = {search: json.dumps(hpo_job_spec(STUDY, search)) for search in SEARCHES}
# The confirmation on fresh seeds (study.confirm.seeds; [] = none): rules/confirm.smk.
CONFIRM = STUDY.settings.confirm
CONFIRM_ON = bool(CONFIRM.seeds)
CONFIRM_DIR = f"{STUDY_DIR}/confirm"
CONFIRM_FILES = {"plan": f"{CONFIRM_DIR}/plan.json", "runs": f"{CONFIRM_DIR}/runs.csv", "table": f"{STUDY_DIR}/confirm.csv"}
# The batch-size question (study.batch_sizes; [] = none): rules/batch.smk.
BATCH_SIZES_ON = bool(STUDY.batch_sizes)
BATCH_DIR = f"{STUDY_DIR}/batch"
BATCH_FILES = {"sizes": f"{STUDY_DIR}/batch_sizes.csv", "scaling": f"{STUDY_DIR}/batch_scaling.csv"}
# The TensorBoard export (study.tensorboard; rules/tensorboard.smk).
TENSORBOARD_DIR = f"{STUDY_DIR}/tensorboard"


def rates_for(optimizer):
    """The grid rates of an optimizer: the study's grid, or (grid.mode=finder) the rates
    centred on its LR range test's suggestion, known once that checkpoint has run."""
    if not FINDER_MODE:
        return STUDY.rates
    grid = STUDY.settings.grid
    suggestions = checkpoints.lr_finder.get(optimizer=optimizer).output.suggestions
    suggestion = read_suggestion(suggestions, grid.finder_suggestion)
    if suggestion is None:
        raise StudyConfigError(
            f"the LR range test of optimizer {optimizer!r} gave no {grid.finder_suggestion!r} suggestion "
            f"(see {suggestions}); choose another study.grid.finder_suggestion or study.grid.mode=fixed"
        )
    return centred_grid(suggestion, grid.finder_decades, grid.points)


def parts_for(optimizer):
    """The rates of each training job of an optimizer's cohorts (cohort_size rates per job)."""
    return cohort_parts(rates_for(optimizer), STUDY.settings.cohort_size)


def population_parts_for(optimizer):
    """The members ([schedule, seed, lr]) of each population job of an optimizer
    (study.population_size members per job)."""
    members = population_members(STUDY, optimizer, rates_for(optimizer))
    return population_parts(members, STUDY.settings.population_size)


def manifests(wildcards):
    """Every training job's manifest: per_run, one job per optimizer x schedule x seed x part
    (cohort_size rates); population, one job per optimizer x part (population_size runs)."""
    if STUDY.settings.engine == "population":
        return [
            f"{STUDY_DIR}/populations/{optimizer}/part{part}.json"
            for optimizer in STUDY.optimizers
            for part in range(len(population_parts_for(optimizer)))
        ]
    return [
        f"{STUDY_DIR}/cohorts/{optimizer}/{schedule}/seed{seed}/part{part}.json"
        for optimizer in STUDY.optimizers
        for schedule in STUDY.schedules
        for seed in STUDY.settings.seeds
        for part in range(len(parts_for(optimizer)))
    ]


def train_spec(wildcards):
    """The JSON spec of one training job: a change in it reruns just that job."""
    rates = parts_for(wildcards.optimizer)[int(wildcards.part)]
    manifest = f"{STUDY_DIR}/cohorts/{wildcards.optimizer}/{wildcards.schedule}/seed{wildcards.seed}/part{wildcards.part}.json"
    return json.dumps(with_repairs(cohort_spec(STUDY, wildcards.optimizer, wildcards.schedule, int(wildcards.seed), rates), manifest, REPAIRS))


def population_train_spec(wildcards):
    """The JSON spec of one population job: a change in it reruns just that job."""
    members = population_parts_for(wildcards.optimizer)[int(wildcards.part)]
    manifest = f"{STUDY_DIR}/populations/{wildcards.optimizer}/part{wildcards.part}.json"
    return json.dumps(with_repairs(population_spec(STUDY, wildcards.optimizer, members), manifest, REPAIRS))


def batch_runs_file(size):
    """The runs table of one batch size of the batch-size question: the grid's own runs.csv
    for study.batch_size, batch/b<size>/runs.csv for the others."""
    return f"{STUDY_DIR}/runs.csv" if int(size) == STUDY.settings.batch_size else f"{BATCH_DIR}/b{size}/runs.csv"


def batch_manifests(wildcards):
    """Every training job's manifest at one other batch size: the grid's jobs, one per optimizer and part."""
    return [
        f"{BATCH_DIR}/b{wildcards.batch}/populations/{optimizer}/part{part}.json"
        for optimizer in STUDY.optimizers
        for part in range(len(population_parts_for(optimizer)))
    ]


def batch_train_spec(wildcards):
    """The JSON spec of one job of the batch-size question: the grid's population spec at another
    batch size, run folders under batch/b<size>/."""
    members = population_parts_for(wildcards.optimizer)[int(wildcards.part)]
    root = f"{BATCH_DIR}/b{wildcards.batch}"
    spec = population_spec(STUDY, wildcards.optimizer, members, root=root, batch_size=int(wildcards.batch))
    return json.dumps(with_repairs(spec, f"{root}/populations/{wildcards.optimizer}/part{wildcards.part}.json", REPAIRS))


def confirm_plan_data():
    """The confirmation's plan (a checkpoint: known once the grid is aggregated)."""
    return json.loads(Path(checkpoints.confirm_plan.get().output.plan).read_text())


def confirm_parts_for(optimizer):
    """The members ([schedule, seed, lr]) of each confirmation job of an optimizer."""
    return population_parts(plan_members(confirm_plan_data(), optimizer), STUDY.settings.population_size)


def confirm_manifests(wildcards):
    """Every confirmation job's manifest: one job per optimizer and part, as for the grid."""
    return [
        f"{CONFIRM_DIR}/populations/{optimizer}/part{part}.json"
        for optimizer in plan_optimizers(confirm_plan_data())
        for part in range(len(confirm_parts_for(optimizer)))
    ]


def confirm_train_spec(wildcards):
    """The JSON spec of one confirmation job: the grid's population spec, run folders under confirm/."""
    members = confirm_parts_for(wildcards.optimizer)[int(wildcards.part)]
    spec = population_spec(STUDY, wildcards.optimizer, members, root=CONFIRM_DIR)
    return json.dumps(with_repairs(spec, f"{CONFIRM_DIR}/populations/{wildcards.optimizer}/part{wildcards.part}.json", REPAIRS))


def finder_spec(wildcards):
    """The JSON spec of one optimizer's LR range test (repeated over the study's seeds)."""
    return json.dumps(finder_job_spec(STUDY, wildcards.optimizer))


def hpo_spec(wildcards):
    """The JSON spec of one search (shared by its workers)."""
    return HPO_SPECS[wildcards.search]


def figure_options(figure, input_files):
    """The command-line options of a figure's inputs (pipeline.figures.registry), given the
    study's file or files behind each kind of input."""
    options = []
    for kind in figure.inputs:
        files = input_files[kind]
        options.append(" ".join([f"--{kind}", *([files] if isinstance(files, str) else files)]))
    return " ".join(options)


def known_manifests():
    """The training jobs' manifests of this study where they are known before any checkpoint:
    the grid's and each batch size's (None with a finder-centred grid, whose parts follow the
    range test). The confirmation's follow its plan: all of them are checked."""
    if FINDER_MODE:
        return None
    known = set(manifests(None))
    for size in STUDY.batch_sizes:
        if size != STUDY.settings.batch_size:
            known.update(batch_manifests(SimpleNamespace(batch=size)))
    return known


# Started by a user (not a job's own Snakemake): remove the lock of a workflow that was killed,
# and find every run folder of this study that is missing or damaged; its training job's repair
# count (part of the job's spec) goes up, so Snakemake reruns that job (pipeline/invocation.py,
# pipeline/training/folders.py). A job's own Snakemake reads the counts the user's one wrote.
if workflow.is_main_process:
    _stale = remove_stale_lock()
    _check = check_study(Path(STUDY_DIR), dry_run=dry_run(sys.argv), known=known_manifests())
    for _line in [_stale, *describe_findings(_check.findings)]:
        if _line:
            print(_line, file=sys.stderr)
    REPAIRS = _check.repairs
else:
    REPAIRS = read_repairs(Path(STUDY_DIR))


onstart:
    record_owner()
