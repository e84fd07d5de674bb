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

CONF_DIR = Path(__file__).resolve().parent.parent.parent / "conf"


def conf_dir() -> Path:
    """The config tree: ``conf/`` beside the package, or ``$LRSTUDY_CONF_DIR`` when set (a copy
    of ``conf/`` with a user's own options in it, kept outside the repository)."""
    return Path(os.environ.get("LRSTUDY_CONF_DIR") or CONF_DIR).resolve()


class StudyConfigError(ValueError):
    """A study configuration that cannot run; the message names the key and the valid choices."""


# --------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------

#: Keyword arguments each optimizer type accepts besides the learning rate, and the Keras
#: class that implements it. ``weight_decay``, ``clipnorm`` and ``global_clipnorm`` are
#: accepted by every Keras optimizer.
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
}
COMMON_OPTIMIZER_KNOBS = ("weight_decay", "clipnorm", "global_clipnorm")

#: Knobs of each schedule type with their defaults (used when the option leaves them unset).
SCHEDULE_TYPES: Dict[str, Dict[str, Any]] = {
    "constant": {},
    "step": {"every_epochs": None, "factor": 0.5},
    "exponential": {"decay_rate": 0.9},
    "cosine": {"alpha": 0.0},
    "warmup_constant": {"warmup_fraction": 0.1},
    "warmup_cosine": {"warmup_fraction": 0.1, "alpha": 0.0},
}


@dataclass
class OptimizerConfig:
    """One optimizer option. Unset knobs (None) keep Keras' defaults."""

    type: str = MISSING
    momentum: Optional[float] = None
    nesterov: Optional[bool] = None
    beta_1: Optional[float] = None
    beta_2: Optional[float] = None
    epsilon: Optional[float] = None
    amsgrad: Optional[bool] = None
    rho: Optional[float] = None
    centered: Optional[bool] = None
    initial_accumulator_value: Optional[float] = None
    weight_decay: Optional[float] = None
    clipnorm: Optional[float] = None
    global_clipnorm: Optional[float] = None


@dataclass
class ScheduleConfig:
    """One schedule option; the grid rate is the schedule's peak rate.

    Knobs by type (unset ones take the defaults in ``SCHEDULE_TYPES``):
    ``step``: multiply the rate by ``factor`` every ``every_epochs`` epochs (unset: a quarter
    of ``study.epochs``, at least 1, so that presets of any length get three drops);
    ``exponential``: multiply by ``decay_rate`` per epoch, applied smoothly per step;
    ``cosine``: cosine annealing over all steps down to ``alpha`` × peak;
    ``warmup_constant``: linear warm-up from 0 over ``warmup_fraction`` of the steps, then
    constant; ``warmup_cosine``: the same warm-up, then cosine annealing to ``alpha`` × peak.
    """

    type: str = MISSING
    every_epochs: Optional[int] = None
    factor: Optional[float] = None
    decay_rate: Optional[float] = None
    alpha: Optional[float] = None
    warmup_fraction: Optional[float] = None


@dataclass
class GridConfig:
    """The learning rates to try: an explicit ``values`` list, or ``points`` log-spaced rates
    from ``min`` to ``max`` (rounded to 4 significant digits so that paths stay readable).

    ``mode: finder`` instead centres ``points`` log-spaced rates on the LR range test's
    ``finder_suggestion`` (per optimizer, geometric mean over seeds), ``finder_decades`` each
    side; ``min``/``max``/``values`` are then unused.
    """

    min: float = 1e-4
    max: float = 1.0
    points: int = 9
    values: Optional[List[float]] = None
    mode: str = "fixed"
    finder_suggestion: str = "valley"
    finder_decades: float = 1.0


@dataclass
class StudyConfig:
    """Study-wide settings: the grid, seeds, training length and the job split."""

    name: str = "default"
    seeds: List[int] = field(default_factory=lambda: [0, 1])
    epochs: int = 30
    batch_size: int = 128
    #: Runs per training job; 0 means the whole cohort (all rates) in one job.
    cohort_size: int = 0
    #: A run diverges when an epoch's loss is non-finite or exceeds this multiple of the loss
    #: the first epoch started from (the untrained model's loss).
    divergence_factor: float = 4.0
    grid: GridConfig = field(default_factory=GridConfig)
    #: Batches per compiled call (Keras ``steps_per_execution``); larger is faster on small
    #: models, results are identical.
    steps_per_execution: int = 32
    #: TensorFlow op determinism (bit-identical reruns on one machine).
    deterministic: bool = True
    #: XLA compilation of the train step (often faster on GPU, slower to start).
    xla: bool = False
    #: ``mixed_float16`` compute policy (for GPUs with tensor cores).
    mixed_precision: bool = False
    #: GPUs each training, range-test and search job asks for (the rules' ``gpu`` resource,
    #: which Snakemake's SLURM executor turns into ``--gpus``); 0 = none asked for (TensorFlow
    #: still uses a GPU it can see). A job trains its runs one after another on one device,
    #: so 0 or 1.
    gpus: int = 0
    #: GPU model to ask the cluster for (SLURM's ``--gpus=<model>:<n>``), e.g. ``a100``;
    #: needs ``gpus=1``. ``null`` takes any.
    gpu_model: Optional[str] = None


#: The range test's suggestion rules, by name (:mod:`pipeline.finder.suggest` implements them).
SUGGESTIONS: tuple[str, ...] = ("steepest", "valley", "minimum")


@dataclass
class FinderConfig:
    """The LR range test (``conf/finder/``): ramp the rate from ``start_lr`` to ``end_lr`` over
    ``steps`` optimizer steps on a fresh model, record the loss of every batch, stop once the
    smoothed loss exceeds ``stop_factor`` × its best or turns non-finite."""

    start_lr: float = 1e-7
    end_lr: float = 10.0
    #: Steps of the ramp (batches; the data is cycled if it has fewer). 200 steps give ~25
    #: points per decade over 1e-7..10, enough for a stable slope after smoothing.
    steps: int = 200
    #: ``exponential`` (multiply by a constant factor per step) or ``linear``.
    mode: str = "exponential"
    stop_factor: float = 4.0
    #: Exponential moving average of the batch loss, debiased (fastai's 0.98).
    beta: float = 0.98
    #: Points ignored at each end by the ``steepest`` rule (noisy start, blow-up at the end).
    skip_start: int = 10
    skip_end: int = 5
    #: A curve whose smoothed loss falls by less than this fraction of its start is flat: no
    #: suggestion (a clear outcome, not an exception).
    min_drop: float = 0.05


@dataclass
class HpoConfig:
    """Hyperparameter optimisation of the rate with Optuna (``conf/hpo/``).

    One search per sampler × pruner in ``samplers`` × ``pruners`` (none by default), each of
    exactly ``trials`` trials shared by ``workers`` parallel Snakemake jobs through one Optuna
    journal file. The rate is always searched, log-uniform in [``lr_min``, ``lr_max``]; the
    optimizer and the schedule are categorical dimensions over ``optimizers`` / ``schedules``
    (names of the study's options; empty = the study's first one, fixed); for warm-up
    schedules ``warmup_fraction`` = [low, high] makes the warm-up a float dimension.
    """

    samplers: List[str] = field(default_factory=list)
    pruners: List[str] = field(default_factory=lambda: ["none"])
    trials: int = 20
    workers: int = 2
    #: The sampler's seed (the training seed of every trial is the study's first seed).
    seed: int = 0
    lr_min: float = 1e-5
    lr_max: float = 1.0
    optimizers: List[str] = field(default_factory=list)
    schedules: List[str] = field(default_factory=list)
    warmup_fraction: Optional[List[float]] = None


@dataclass
class DiagnosisConfig:
    """Thresholds of the fitting diagnosis (``conf/diagnosis/``); the README gives the reason
    for each default. Loss ratios are relative, so they hold for any loss scale."""

    #: An epoch-to-epoch rise of the training loss by more than this fraction is a spike
    #: (epoch means of a healthy run wobble by a few percent at most) -> ``unstable``.
    spike_rise: float = 0.25
    #: A final training loss above the run's own best by more than this fraction -> ``unstable``.
    end_worse_margin: float = 0.2
    #: A run that achieved less than this fraction of the study's best loss reduction (from the
    #: untrained loss down to the lowest training loss any run reached) -> ``underfit``.
    underfit_progress: float = 0.5
    #: Share of the epochs, at the end, over which convergence is judged.
    tail_fraction: float = 0.2
    #: Still falling by more than this fraction per epoch over the tail -> not converged,
    #: ``underfit``.
    converged_drop: float = 0.02
    #: A final validation loss above its own minimum by more than this fraction while the
    #: training loss kept falling -> ``overfit``.
    overfit_val_rise: float = 0.1
    #: A final generalisation gap (val_loss - loss) above this many loss units -> ``overfit``.
    gap_threshold: float = 0.5
    #: The target accuracy for cost-to-target: this fraction of the study's best val accuracy.
    target_fraction: float = 0.95
    #: Report warnings: a diverged share above this, per optimizer x schedule.
    diverged_warning: float = 0.3
    #: Report warnings: best epoch within the first ``early_best`` share of training (too many
    #: epochs) or after the ``late_best`` share (train longer).
    early_best: float = 0.1
    late_best: float = 0.75


@dataclass
class Config:
    dataset: Dict[str, Any] = MISSING
    model: Dict[str, Any] = MISSING
    optimizer: Dict[str, OptimizerConfig] = MISSING
    schedule: Dict[str, ScheduleConfig] = MISSING
    study: StudyConfig = field(default_factory=StudyConfig)
    diagnosis: DiagnosisConfig = field(default_factory=DiagnosisConfig)
    finder: FinderConfig = field(default_factory=FinderConfig)
    hpo: HpoConfig = field(default_factory=HpoConfig)


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

    def run_config(self, optimizer: str, schedule: str, seed: int, lr: float) -> Dict[str, Any]:
        """The complete configuration of one training run (what its ``config.yaml`` holds)."""
        return make_run_config(
            dataset=self.dataset,
            model=self.model,
            optimizer={"name": optimizer, **self.optimizers[optimizer]},
            schedule={"name": schedule, **self.schedules[schedule]},
            settings=self.settings,
            seed=seed,
            lr=lr,
        )


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
    return {
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


def config_hash(run_config: Dict[str, Any]) -> str:
    """A short hash of everything that determines a run's results (the study name excluded)."""
    payload = {key: value for key, value in run_config.items() if key != "study"}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
