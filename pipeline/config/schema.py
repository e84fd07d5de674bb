"""Study configuration: structured schemas and the validated :class:`Study`.

Composition and validation live in :mod:`pipeline.config.compose`; rates and paths in
:mod:`pipeline.config.rates`. Everything here is pure Python
(no TensorFlow import), so the Snakefile composes and validates a study in about a second,
before any job starts and before anything is written under ``results/``.

Layout of a composed study (``conf/config.yaml`` and its groups)::

    dataset:   {name, _target_, **kwargs}          one option of conf/dataset/
    model:     {name, _target_, **kwargs}          one option of conf/model/
    optimizer: {<name>: OptimizerConfig, ...}      one or more options of conf/optimizer/
    schedule:  {<name>: ScheduleConfig, ...}       one or more options of conf/schedule/
    study:     StudyConfig                         a preset of conf/study/

Optimizer and schedule options are keyed by their name, so that Hydra's "select several
options of one group" (``optimizer=[adam,rmsprop]``) composes them side by side.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from pipeline.config.constraints import Choices, Interval, Items, Matches, NonEmpty, Satisfies, Unique, constrained
from pipeline.config.errors import StudyConfigError as StudyConfigError  # every stage imports it from here

#: Field metadata of a free-form ``Dict[str, Any]`` group whose options are checked against a
#: schema after composition (the optimizer options).
OPTION_SCHEMA = "option_schema"

CONF_DIR = Path(__file__).resolve().parent.parent.parent / "conf"

#: Where every study's outputs land: ``results/<study>/``, relative to the directory the
#: workflow runs in.
RESULTS_DIR = "results"


def conf_dir() -> Path:
    """The config tree: ``conf/`` beside the package, or ``$LRSTUDY_CONF_DIR`` when set (a copy
    of ``conf/`` with a user's own options in it, kept outside the repository)."""
    return Path(os.environ.get("LRSTUDY_CONF_DIR") or CONF_DIR).resolve()


def study_dir(name: str) -> str:
    """The folder of one study's outputs, ``results/<name>``, as the rules spell it."""
    return f"{RESULTS_DIR}/{name}"


# --------------------------------------------------------------------------------------
# Tables of the plug-ins: optimizer and schedule types
# --------------------------------------------------------------------------------------

#: Keyword arguments each optimizer type accepts besides the learning rate, and the Keras
#: class that implements it (``pipeline.training.optimizers`` builds it through
#: ``keras.optimizers.get``; a test checks every knob against the class signature, since this
#: stage never imports Keras). ``COMMON_OPTIMIZER_KNOBS`` are accepted by every type.
OPTIMIZER_TYPES: Dict[str, tuple[str, tuple[str, ...]]] = {
    "sgd": ("SGD", ("momentum", "nesterov")),
    "adam": ("Adam", ("beta_1", "beta_2", "epsilon", "amsgrad")),
    "adamw": ("AdamW", ("beta_1", "beta_2", "epsilon", "amsgrad")),
    "nadam": ("Nadam", ("beta_1", "beta_2", "epsilon")),
    "adamax": ("Adamax", ("beta_1", "beta_2", "epsilon")),
    "rmsprop": ("RMSprop", ("rho", "momentum", "epsilon", "centered")),
    "adagrad": ("Adagrad", ("initial_accumulator_value", "epsilon")),
    "adadelta": ("Adadelta", ("rho", "epsilon")),
    "lion": ("Lion", ("beta_1", "beta_2")),
    # Schedule-free AdamW (Defazio et al. 2024; Keras >= 3.15): validation runs on its averaged
    # weights (pipeline.training.optimizers.evaluation_weights).
    "schedule_free": ("ScheduleFreeAdamW", ("beta_1", "beta_2", "epsilon")),
}
COMMON_OPTIMIZER_KNOBS = ("weight_decay", "clipnorm", "global_clipnorm")

#: Knobs of each schedule type with their defaults (the one place they are set: the options
#: in ``conf/schedule/`` state only their type and what they change).
SCHEDULE_TYPES: Dict[str, Dict[str, Any]] = {
    "constant": {},
    "step": {"every_epochs": None, "factor": 0.5},
    "exponential": {"decay_rate": 0.9},
    "cosine": {"alpha": 0.01},
    "warmup_constant": {"warmup_fraction": 0.1},
    "warmup_cosine": {"warmup_fraction": 0.1, "alpha": 0.01},
    # fastai's fit_one_cycle defaults.
    "onecycle": {"pct_start": 0.25, "div": 25.0, "div_final": 1e5},
    "wsd": {"warmup_fraction": 0.05, "decay_fraction": 0.2},
    "cosine_restarts": {"first_decay_epochs": None, "t_mul": 2.0, "m_mul": 1.0, "alpha": 0.0},
    "linear": {"alpha": 0.0},
    # Keras' ReduceLROnPlateau on val_loss, with Keras' defaults.
    "plateau": {"factor": 0.1, "patience": 10, "min_delta": 1e-4, "cooldown": 0, "min_lr": 0.0},
}

#: The range test's suggestion rules, by name, in fastai's order: fastai's four, exactly
#: (:mod:`pipeline.finder.suggest` implements them).
SUGGESTIONS: tuple[str, ...] = ("valley", "slide", "minimum", "steep")
GRID_MODES: tuple[str, ...] = ("fixed", "finder")
SAMPLERS: tuple[str, ...] = ("random", "tpe")
PRUNERS: tuple[str, ...] = ("none", "median", "successive_halving", "hyperband")

# --------------------------------------------------------------------------------------
# Constraints shared by several fields
# --------------------------------------------------------------------------------------

#: A name that becomes a folder name (studies, datasets, models, optimizer and schedule options).
NAME = Matches(
    pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    wants="is not a valid name: use letters, digits, '_', '-' and '.', starting with a letter or digit "
    "(it becomes a folder name)",
    excluded=(".", ".."),
    example="../escape",
)
POSITIVE = Interval(0, closed="neither", noun="a number")
RATE = Interval(0, closed="neither", noun="a rate")
COUNT = Interval(1, integer=True)
UNIT_OPEN = Interval(0, 1, closed="neither")
KNOB = Interval(0, noun="a finite number")
DECAY = Interval(0, 1, closed="left")

# --------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------


@dataclass
class OptimizerConfig:
    """One optimizer option. Unset knobs (None) keep Keras' defaults."""

    type: str = constrained(MISSING, Choices(tuple(OPTIMIZER_TYPES), "known optimizer type"))
    momentum: Optional[float] = constrained(None, DECAY)
    nesterov: Optional[bool] = None
    beta_1: Optional[float] = constrained(None, DECAY)
    beta_2: Optional[float] = constrained(None, DECAY)
    epsilon: Optional[float] = constrained(None, KNOB)
    amsgrad: Optional[bool] = None
    rho: Optional[float] = constrained(None, DECAY)
    centered: Optional[bool] = None
    initial_accumulator_value: Optional[float] = constrained(None, KNOB)
    weight_decay: Optional[float] = constrained(None, KNOB)
    clipnorm: Optional[float] = constrained(None, KNOB)
    global_clipnorm: Optional[float] = constrained(None, KNOB)


@dataclass
class ScheduleConfig:
    """One schedule option; the grid rate is the schedule's peak rate.

    Knobs by type (unset ones take the defaults in ``SCHEDULE_TYPES``):
    ``step``: multiply the rate by ``factor`` every ``every_epochs`` epochs (unset: a quarter
    of ``study.epochs``, at least 1, so that presets of any length get three drops);
    ``exponential``: multiply by ``decay_rate`` per epoch, applied smoothly per step;
    ``cosine``: cosine annealing over all steps down to ``alpha`` × peak;
    ``warmup_constant``: linear warm-up from 0 over ``warmup_fraction`` of the steps, then
    constant; ``warmup_cosine``: the same warm-up, then cosine annealing to ``alpha`` × peak;
    ``onecycle``: fastai's ``fit_one_cycle``, cosine up from peak/``div`` over ``pct_start`` of
    the steps, then cosine down to peak/``div_final``; ``wsd``: warm-up over ``warmup_fraction``,
    stable, then the (1 − sqrt) cooldown over the last ``decay_fraction`` of the steps (Hägele et
    al. 2024); ``cosine_restarts``: SGDR (Keras ``CosineDecayRestarts``), a first cycle of
    ``first_decay_epochs`` (unset: two cycles that end with training), each next ``t_mul`` times
    longer and ``m_mul`` times lower, down to ``alpha`` × its start; ``linear``: linear decay to
    ``alpha`` × peak (Keras ``PolynomialDecay``, power 1); ``plateau``: the adaptive one,
    Keras' ``ReduceLROnPlateau`` on ``val_loss`` from the grid rate (``factor``, ``patience``,
    ``min_delta``, ``cooldown``, ``min_lr`` as Keras has them). Formulas in
    :mod:`pipeline.training.schedules`.
    """

    type: str = constrained(MISSING, Choices(tuple(SCHEDULE_TYPES), "known schedule type"))
    every_epochs: Optional[int] = constrained(None, COUNT)
    factor: Optional[float] = constrained(None, UNIT_OPEN)
    decay_rate: Optional[float] = constrained(None, Interval(0, 1, closed="right"))
    alpha: Optional[float] = constrained(None, Interval(0, 1, closed="both"))
    warmup_fraction: Optional[float] = constrained(None, UNIT_OPEN)
    pct_start: Optional[float] = constrained(None, UNIT_OPEN)
    div: Optional[float] = constrained(None, Interval(1, noun="a factor"))
    div_final: Optional[float] = constrained(None, Interval(1, noun="a factor"))
    decay_fraction: Optional[float] = constrained(None, UNIT_OPEN)
    first_decay_epochs: Optional[int] = constrained(None, COUNT)
    t_mul: Optional[float] = constrained(None, Interval(1, noun="a factor"))
    m_mul: Optional[float] = constrained(None, Interval(0, 1, closed="right"))
    patience: Optional[int] = constrained(None, Interval(0, integer=True))
    min_delta: Optional[float] = constrained(None, KNOB)
    cooldown: Optional[int] = constrained(None, Interval(0, integer=True))
    min_lr: Optional[float] = constrained(None, KNOB)


def schedule_type_schema(kind: str) -> type:
    """The structured config of one schedule type: ``type`` and the type's knobs with their
    defaults from ``SCHEDULE_TYPES`` (the options in ``conf/schedule/`` compose onto it)."""
    hints = {item.name: item.type for item in dataclasses.fields(ScheduleConfig)}
    knobs = [(knob, hints[knob], field(default=default)) for knob, default in SCHEDULE_TYPES[kind].items()]
    name = "".join(part.capitalize() for part in kind.split("_")) + "Schedule"
    schema = dataclasses.make_dataclass(name, [("type", str, field(default=kind)), *knobs])
    schema.__module__ = __name__
    return schema


def _fixed_bounds(grid: "GridConfig") -> bool:
    return grid.mode == "fixed" and grid.values is None


@dataclass
class GridConfig:
    """The learning rates to try: an explicit ``values`` list, or ``points`` log-spaced rates
    from ``min`` to ``max`` (rounded to 4 significant digits so that paths stay readable).

    ``mode: finder`` instead centres ``points`` log-spaced rates on the LR range test's
    ``finder_suggestion`` (per optimizer, geometric mean over seeds), ``finder_decades`` each
    side; ``min``/``max``/``values`` are then unused.
    """

    min: float = constrained(1e-4, RATE, applies=_fixed_bounds)
    max: float = constrained(1.0, RATE, applies=_fixed_bounds)
    points: int = constrained(9, COUNT, applies=lambda grid: grid.mode == "finder" or grid.values is None)
    values: Optional[List[float]] = constrained(
        None,
        NonEmpty(hint="give rates or set it to null to use min/max/points"),
        Items(rule=RATE),
        applies=lambda grid: grid.mode == "fixed",
    )
    mode: str = constrained("fixed", Choices(GRID_MODES, "grid mode"))
    finder_suggestion: str = constrained("valley", Choices(SUGGESTIONS, "suggestion"))
    finder_decades: float = constrained(1.0, Interval(0, closed="neither"))


#: Which optimizer × schedule cells the confirmation retrains (``study.confirm.cells``).
CONFIRM_CELLS: tuple[str, ...] = ("all", "best")


@dataclass
class ConfirmConfig:
    """The confirmation on fresh seeds (:mod:`pipeline.analysis.confirm`): once the grid is
    aggregated, the recommended rate, the runner-up rate and the estimated optimum of each
    confirmed cell are retrained on ``seeds``, which the grid did not use, and the winner's
    margin over the runner-up gets a paired interval and a verdict (``confirmed``, ``tie``,
    ``overturned``). With hyperparameter searches, every method's chosen rate is retrained on
    the same seeds too (the fair method comparison of ``methods.csv``).
    """

    #: The fresh seeds; ``[]`` turns the confirmation off. At least two (a paired interval needs
    #: a spread); far from the grid's seeds, so that adding grid seeds never reuses one.
    seeds: List[int] = constrained(
        dataclasses.MISSING,
        Satisfies(
            test=lambda seeds: len(seeds) != 1,
            wants="at least 2 seeds (a paired interval needs two), or [] for no confirmation",
            example=[1000],
        ),
        Unique(),
        Items(rule=Interval(0)),
        default_factory=lambda: [1000, 1001, 1002],
    )
    #: ``all``: every optimizer × schedule (each row of best.csv gets its verdict); ``best``:
    #: only the best schedule of each optimizer (a sixth of the runs on the default study).
    cells: str = constrained("all", Choices(CONFIRM_CELLS, "confirmation scope"))


#: The training engines (``study.engine``).
ENGINES: tuple[str, ...] = ("population", "per_run")


@dataclass
class StudyConfig:
    """Study-wide settings: the grid, seeds, training length and the job split."""

    name: str = constrained("default", NAME)
    seeds: List[int] = constrained(
        dataclasses.MISSING,
        NonEmpty(hint="give at least one seed, e.g. study.seeds=[0]"),
        Unique(),
        Items(rule=Interval(0)),
        default_factory=lambda: [0, 1],
    )
    epochs: int = constrained(30, COUNT)
    batch_size: int = constrained(128, COUNT)
    #: The batch-size question (:mod:`pipeline.analysis.batch`): the grid is trained again at
    #: each of these batch sizes (every optimizer, schedule, seed and rate; run folders under
    #: ``batch/b<size>/``), and the study reports the best rate per batch size and the fitted
    #: exponent ``k`` of ``best rate ∝ batch_size**k`` (linear: k = 1, square root: k = 0.5).
    #: ``batch_size`` is always one of them (its runs are the grid's own); ``[]``: no question.
    batch_sizes: List[int] = constrained(
        dataclasses.MISSING, Unique(), Items(rule=Interval(1, integer=True)), default_factory=list
    )
    #: How a training job trains its runs: ``population`` (all of them as one compiled program,
    #: pipeline/training/population.py; the same answers, 2.3-3.2x faster on the MLP and CNN) or
    #: ``per_run`` (one ``model.fit`` after another: the reference, and for models too big to
    #: share a process).
    engine: str = constrained("population", Choices(ENGINES, "training engine"))
    #: per_run: runs per training job (rates of one optimizer x schedule x seed); 0 means the
    #: whole cohort (all rates) in one job.
    cohort_size: int = constrained(0, Interval(0, integer=True, note="(0 = whole cohort per job)"))
    #: population: runs per training job (any schedule, seed and rate of one optimizer). 108:
    #: the default study's 216 runs make one job per optimizer, one per core; each job pays
    #: TensorFlow's start-up and its traced programs once (2 min 5 s against 2 min 30 s with 54).
    population_size: int = constrained(108, COUNT)
    #: population: the memory a job's models may take (MB, estimated from one member); a
    #: population that needs more trains in several programs, one after another.
    population_memory_mb: float = constrained(1500.0, POSITIVE)
    #: A run diverges when an epoch's loss is non-finite or exceeds this multiple of the loss
    #: the first epoch started from (the untrained model's loss).
    divergence_factor: float = constrained(4.0, Interval(1, closed="neither", finite=False))
    grid: GridConfig = field(default_factory=GridConfig)
    confirm: ConfirmConfig = field(default_factory=ConfirmConfig)
    #: Batches per compiled call (Keras ``steps_per_execution``); larger is faster on small
    #: models, results are identical.
    steps_per_execution: int = constrained(32, COUNT)
    #: TensorFlow op determinism (bit-identical reruns on one machine).
    deterministic: bool = True
    #: XLA compilation of the train step (often faster on GPU, slower to start).
    xla: bool = False
    #: ``mixed_float16`` compute policy (for GPUs with tensor cores).
    mixed_precision: bool = False
    #: Export every run's curves and the study's HParams table for TensorBoard
    #: (``results/<study>/tensorboard/``, from the histories after training: switching it on for
    #: a finished study retrains nothing). Needs the ``tensorboard`` package (the extra
    #: ``lrstudy[tensorboard]``).
    tensorboard: bool = False
    #: GPUs each training, range-test and search job asks for (the rules' ``gpu`` resource,
    #: which Snakemake's SLURM executor turns into ``--gpus``); 0 = none asked for (TensorFlow
    #: still uses a GPU it can see). A job trains its runs one after another on one device,
    #: so 0 or 1.
    gpus: int = constrained(
        0,
        Choices(
            (0, 1),
            wants="0 (CPU jobs) or 1 (one GPU per job: a job trains its runs one after another on one device; "
            "more GPUs run more jobs at once)",
        ),
    )
    #: GPU model to ask the cluster for (SLURM's ``--gpus=<model>:<n>``), e.g. ``a100``;
    #: needs ``gpus=1``. ``null`` takes any.
    gpu_model: Optional[str] = constrained(
        None,
        Matches(
            pattern=r"[A-Za-z0-9_.]+",
            wants="must be a SLURM GPU type name (letters, digits, '_', '.'), e.g. a100",
            example="a100-x",
        ),
    )


@dataclass
class FinderConfig:
    """The LR range test (``conf/finder/``): ramp the rate from ``start_lr`` to ``end_lr`` over
    ``steps`` optimizer steps on a fresh model, record the loss of every batch (``loss:
    train``, fastai's ``lr_find``) or the validation loss every ``val_every`` steps (``loss:
    val``, Smith's original test and torch-lr-finder's ``val_loader`` mode), stop once the
    smoothed loss exceeds ``stop_factor`` × its best or turns non-finite."""

    start_lr: float = constrained(1e-7, POSITIVE)
    end_lr: float = constrained(10.0, POSITIVE)
    #: Steps of the ramp (batches; the data is cycled if it has fewer). 200 steps give ~25
    #: points per decade over 1e-7..10, enough for a stable slope after smoothing.
    steps: int = constrained(200, COUNT)
    #: ``exponential`` (multiply by a constant factor per step) or ``linear``.
    mode: str = constrained("exponential", Choices(("exponential", "linear"), "ramp"))
    #: What the curve records: ``train``, each batch's training loss before its step; ``val``,
    #: the loss over the whole validation set after the step (Smith 2017).
    loss: str = constrained("train", Choices(("train", "val"), "range test loss"))
    #: ``loss: val``: one validation pass every this many steps (each pass is one point of the
    #: curve); 1 = after every step.
    val_every: int = constrained(1, COUNT)
    stop_factor: float = constrained(4.0, POSITIVE, Interval(1, closed="neither"))
    #: Exponential moving average of the recorded losses, debiased; unset: fastai's 0.98 for
    #: ``loss: train`` and torch-lr-finder's 0.95 (its ``smooth_f`` 0.05) for ``loss: val``,
    #: whose points are fewer and far less noisy (0.98 would lag the curve by decades).
    beta: Optional[float] = constrained(None, DECAY)
    #: A curve whose smoothed loss falls by less than this fraction of its start is flat: no
    #: suggestion (a clear outcome, not an exception).
    min_drop: float = constrained(0.05, DECAY)


#: fastai's ``lr_find`` hands its suggestion rules the recorded curve from ``num_it // 10`` on,
#: without its last 5 points (:func:`pipeline.finder.suggest.fastai_crop`).
CROP_START_DIVISOR = 10
CROP_END = 5


def finder_points(finder: FinderConfig) -> int:
    """The points a full ramp records, fastai's ``num_it``: one per step (``loss: train``), or
    one per ``val_every`` steps (``loss: val``)."""
    return finder.steps // finder.val_every if finder.loss == "val" else finder.steps


def points_after_crop(points: int) -> int:
    """How many of ``points`` recorded points fastai's crop keeps (0 at least)."""
    return max(points - points // CROP_START_DIVISOR - CROP_END, 0)


@dataclass
class HpoConfig:
    """Hyperparameter optimisation of the rate with Optuna (``conf/hpo/``).

    One search per sampler × pruner in ``samplers`` × ``pruners`` (none by default), each of
    exactly ``trials`` trials shared by ``workers`` parallel Snakemake jobs through one Optuna
    journal file; with the population engine each worker asks ``batch`` trials at once and
    trains them as one population. The rate is always searched, log-uniform in [``lr_min``,
    ``lr_max``]; the optimizer and the schedule are categorical dimensions over ``optimizers``
    / ``schedules`` (names of the study's options; empty = the study's first one, fixed); for
    warm-up schedules ``warmup_fraction`` = [low, high] makes the warm-up a float dimension.
    """

    samplers: List[str] = constrained(
        dataclasses.MISSING, Items(rule=Choices(SAMPLERS, "known sampler")), Unique(), default_factory=list
    )
    pruners: List[str] = constrained(
        dataclasses.MISSING, Items(rule=Choices(PRUNERS, "known pruner")), Unique(), default_factory=lambda: ["none"]
    )
    trials: int = constrained(20, COUNT)
    workers: int = constrained(2, COUNT)
    #: Trials a worker asks at once and trains as one population (study.engine=population; the
    #: per-run engine asks one at a time). 5 with 2 workers: the first 10 trials, TPE's random
    #: start-up, train as two populations, and every later batch sees all earlier results.
    batch: int = constrained(5, COUNT)
    #: The sampler's seed (the training seed of every trial is the study's first seed).
    seed: int = 0
    lr_min: float = constrained(1e-5, RATE)
    lr_max: float = constrained(1.0, RATE)
    optimizers: List[str] = field(default_factory=list)
    schedules: List[str] = field(default_factory=list)
    warmup_fraction: Optional[List[float]] = constrained(
        None,
        Satisfies(
            test=lambda bounds: len(bounds) == 2 and 0 < bounds[0] < bounds[1] < 1,
            wants="[low, high] with 0 < low < high < 1",
            example=[0.3, 0.1],
        ),
    )


_FRACTION = Interval(0, 1, closed="neither")


@dataclass
class DiagnosisConfig:
    """Thresholds of the fitting diagnosis (``conf/diagnosis/``); the README gives the reason
    for each default. Loss ratios are relative, so they hold for any loss scale."""

    #: An epoch-to-epoch rise of the training loss by more than this fraction is a spike
    #: (epoch means of a healthy run wobble by a few percent at most) -> ``unstable``.
    spike_rise: float = constrained(0.25, POSITIVE)
    #: A final training loss above the run's own best by more than this fraction -> ``unstable``.
    end_worse_margin: float = constrained(0.2, POSITIVE)
    #: A run that achieved less than this fraction of the study's best loss reduction (from the
    #: untrained loss down to the lowest training loss any run reached) -> ``underfit``.
    underfit_progress: float = constrained(0.5, POSITIVE, _FRACTION)
    #: Share of the epochs, at the end, over which convergence is judged.
    tail_fraction: float = constrained(0.2, POSITIVE, _FRACTION)
    #: Still falling by more than this fraction per epoch over the tail -> not converged,
    #: ``underfit``.
    converged_drop: float = constrained(0.02, POSITIVE)
    #: A final validation loss above its own minimum by more than this fraction while the
    #: training loss kept falling -> ``overfit``.
    overfit_val_rise: float = constrained(0.1, POSITIVE)
    #: A final generalisation gap (val_loss - loss) above this many loss units -> ``overfit``.
    gap_threshold: float = constrained(0.5, POSITIVE)
    #: The target accuracy for cost-to-target: this fraction of the study's best val accuracy.
    target_fraction: float = constrained(0.95, POSITIVE, Interval(0, 1, closed="right"))
    #: Report warnings: a diverged share above this, per optimizer x schedule.
    diverged_warning: float = constrained(0.3, POSITIVE, _FRACTION)
    #: Report warnings: best epoch within the first ``early_best`` share of training (too many
    #: epochs) or after the ``late_best`` share (train longer).
    early_best: float = constrained(0.1, POSITIVE, _FRACTION)
    late_best: float = constrained(0.75, POSITIVE, _FRACTION)


@dataclass
class Config:
    """The composed study, as Hydra sees it: ``conf/config.yaml`` merges its groups onto this
    schema (registered as ``schema`` by :func:`pipeline.config.compose.register_schema`), so
    every default above is the one default and the YAML options state only what they change.

    Dataset and model options are free-form (their ``_target_``'s signature checks them).
    Optimizer and schedule options are checked per type by :mod:`pipeline.config.validation`
    (typed here with one dataclass for all types, every option would carry every knob of every
    type); a schedule option composes onto its type's schema (:func:`schedule_type_schema`),
    so that its knobs show their defaults and can be overridden without ``+``.
    """

    dataset: Dict[str, Any] = MISSING
    model: Dict[str, Any] = MISSING
    #: Each value is checked as an ``OptimizerConfig`` / ``ScheduleConfig`` (``OPTION_SCHEMA``)
    #: by validation.
    optimizer: Dict[str, Any] = field(default=MISSING, metadata={OPTION_SCHEMA: OptimizerConfig})
    schedule: Dict[str, Any] = field(default=MISSING, metadata={OPTION_SCHEMA: ScheduleConfig})
    study: StudyConfig = field(default_factory=StudyConfig)
    diagnosis: DiagnosisConfig = field(default_factory=DiagnosisConfig)
    finder: FinderConfig = field(default_factory=FinderConfig)
    hpo: HpoConfig = field(default_factory=HpoConfig)


@dataclass
class RunConfig(Config):
    """The single-run app (``conf/run.yaml``): a study with one optimizer and one schedule, plus
    the run's rate and seed (checked by the app itself, so that the message names them)."""

    lr: Any = MISSING
    seed: Any = 0


@dataclass
class Study:
    """A validated study: the plain-Python form every other module reads."""

    dataset: Dict[str, Any]
    model: Dict[str, Any]
    optimizers: Dict[str, Dict[str, Any]]
    schedules: Dict[str, Dict[str, Any]]
    settings: StudyConfig
    diagnosis: DiagnosisConfig
    finder: FinderConfig
    hpo: HpoConfig
    overrides: List[str]
    rates: List[float]

    @property
    def name(self) -> str:
        return self.settings.name

    def as_dict(self) -> Dict[str, Any]:
        """The resolved study as written to ``results/<study>/config.yaml``."""
        return {
            "dataset": self.dataset,
            "model": self.model,
            "optimizer": self.optimizers,
            "schedule": self.schedules,
            "study": dataclasses.asdict(self.settings),
            "diagnosis": dataclasses.asdict(self.diagnosis),
            "finder": dataclasses.asdict(self.finder),
            "hpo": dataclasses.asdict(self.hpo),
            "rates": self.rates,
            "overrides": self.overrides,
        }

    def run_config(
        self, optimizer: str, schedule: str, seed: int, lr: float, batch_size: Optional[int] = None
    ) -> Dict[str, Any]:
        """The complete configuration of one training run (what its ``config.yaml`` holds);
        ``batch_size`` other than ``study.batch_size`` for the runs of the batch-size question."""
        settings = self.settings if batch_size is None else dataclasses.replace(self.settings, batch_size=int(batch_size))
        return make_run_config(
            dataset=self.dataset,
            model=self.model,
            optimizer={"name": optimizer, **self.optimizers[optimizer]},
            schedule={"name": schedule, **self.schedules[schedule]},
            settings=settings,
            seed=seed,
            lr=lr,
        )

    @property
    def batch_sizes(self) -> List[int]:
        """The batch sizes the batch-size question compares, ascending (``study.batch_size``
        among them), or ``[]`` when the study asks no such question."""
        if not self.settings.batch_sizes:
            return []
        return sorted({*self.settings.batch_sizes, self.settings.batch_size})


def make_run_config(
    *,
    dataset: Dict[str, Any],
    model: Dict[str, Any],
    optimizer: Dict[str, Any],
    schedule: Dict[str, Any],
    settings: StudyConfig,
    seed: int,
    lr: float,
) -> Dict[str, Any]:
    """Assemble one run's configuration from validated parts."""
    run_config = {
        "study": settings.name,
        "dataset": dict(dataset),
        "model": dict(model),
        "optimizer": dict(optimizer),
        "schedule": dict(schedule),
        "training": {
            "lr": float(lr),
            "seed": int(seed),
            "epochs": settings.epochs,
            "batch_size": settings.batch_size,
            "divergence_factor": settings.divergence_factor,
            "steps_per_execution": settings.steps_per_execution,
            "deterministic": settings.deterministic,
            "xla": settings.xla,
            "mixed_precision": settings.mixed_precision,
            # How batches are drawn (pipeline.training.resume.epoch_batches): part of the hash, so that runs
            # trained with another batch order are retrained, not mixed in.
            "batch_order": "stateless-shuffle(seed, epoch)",
        },
    }
    if dataset.get("_target_") == "pipeline.training.pipelines.user_pipeline":
        # A user's pipeline gives its batches in its own order (pipeline.training.pipelines).
        run_config["training"]["batch_order"] = "user"
    if settings.engine == "population":
        # Part of the hash: a folder trained by one engine is never resumed or skipped by the other.
        run_config["training"]["engine"] = "population"
    return run_config


def config_hash(run_config: Dict[str, Any]) -> str:
    """A short hash of everything that determines a run's results (the study name excluded)."""
    payload = {key: value for key, value in run_config.items() if key != "study"}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
