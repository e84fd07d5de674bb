"""Study configuration: Hydra composition, structured schemas and validation.

Everything here is pure Python (no TensorFlow import), so the Snakefile can compose and
validate a study in well under a second, before any job starts and before anything is
written under ``results/``.

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
import importlib
import inspect
import json
import math
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


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
    from ``min`` to ``max`` (rounded to 4 significant digits so that paths stay readable)."""

    min: float = 1e-4
    max: float = 1.0
    points: int = 9
    values: Optional[List[float]] = None


@dataclass
class StudyConfig:
    """Study-wide settings: the grid, seeds, training length and the job split."""

    name: str = "default"
    seeds: List[int] = field(default_factory=lambda: [0])
    epochs: int = 20
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


@dataclass
class Config:
    dataset: Dict[str, Any] = MISSING
    model: Dict[str, Any] = MISSING
    optimizer: Dict[str, OptimizerConfig] = MISSING
    schedule: Dict[str, ScheduleConfig] = MISSING
    study: StudyConfig = field(default_factory=StudyConfig)


@dataclass
class Study:
    """A validated study: the plain-Python form every other module reads."""

    dataset: Dict[str, Any]
    model: Dict[str, Any]
    optimizers: Dict[str, Dict[str, Any]]
    schedules: Dict[str, Dict[str, Any]]
    settings: StudyConfig
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
        },
    }


def config_hash(run_config: Dict[str, Any]) -> str:
    """A short hash of everything that determines a run's results (the study name excluded)."""
    payload = {key: value for key, value in run_config.items() if key != "study"}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------
# Learning rates and paths
# --------------------------------------------------------------------------------------


def lr_to_str(lr: float) -> str:
    """The path string of a learning rate: the shortest scientific form that reads back
    exactly (``1e-4``, ``3.162e-4``, ``1e0``)."""
    value = float(lr)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"learning rate must be a finite number > 0, got {lr!r}")
    return np.format_float_scientific(value, unique=True, trim="-", exp_digits=1).replace("e+", "e")


_LR_PATTERN = re.compile(r"^[1-9](\.[0-9]*[1-9])?e(0|-?[1-9][0-9]*)$")


def str_to_lr(text: str) -> float:
    """Inverse of :func:`lr_to_str`; only the canonical spelling is accepted."""
    if not _LR_PATTERN.match(text):
        raise ValueError(f"not a learning-rate path string: {text!r} (expected e.g. '3.162e-4')")
    value = float(text)
    if lr_to_str(value) != text:
        raise ValueError(f"not a canonical learning-rate path string: {text!r}")
    return value


def round_significant(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits - 1}e}")


def grid_rates(grid: GridConfig) -> List[float]:
    """The sorted learning rates of a grid."""
    if grid.values is not None:
        return sorted({float(value) for value in grid.values})
    exponents = np.linspace(math.log10(grid.min), math.log10(grid.max), grid.points)
    return sorted({round_significant(10.0**exponent) for exponent in exponents})


def run_dir(study_dir: Union[str, Path], optimizer: str, schedule: str, seed: int, lr: float) -> Path:
    """Where one run's outputs live."""
    return Path(study_dir) / "runs" / optimizer / schedule / f"seed{seed}" / f"lr{lr_to_str(lr)}"


def cohort_parts(rates: Sequence[float], cohort_size: int) -> List[List[float]]:
    """Split a cohort's rates into the chunks trained by one job each (0 = one chunk)."""
    rates = list(rates)
    size = cohort_size if cohort_size > 0 else len(rates)
    return [rates[start : start + size] for start in range(0, len(rates), size)]


# --------------------------------------------------------------------------------------
# Composition and validation
# --------------------------------------------------------------------------------------


def parse_overrides(overrides: Union[None, str, Sequence[Any]]) -> List[str]:
    """Snakemake's ``--config overrides=...`` value as a list of Hydra overrides.

    A string is split like a shell would (``"model=cnn study.seeds=[0,1]"``). A list is taken
    item by item: Snakemake makes one of a YAML list whose items it can read
    (``overrides='["model=cnn", "study.seeds=[0,1]"]'``); a list it could not read reaches us
    as a string starting with ``[`` and is read here as YAML.
    """
    if overrides is None:
        return []
    if isinstance(overrides, str) and overrides.strip().startswith("["):
        import yaml

        try:
            overrides = yaml.safe_load(overrides)
        except yaml.YAMLError as error:
            raise StudyConfigError(
                f"config key 'overrides' looks like a YAML list but does not parse ({error.__class__.__name__}); "
                'quote its items: overrides=\'["model=cnn", "study.seeds=[0,1]"]\''
            ) from error
    if isinstance(overrides, str):
        return shlex.split(overrides)
    if isinstance(overrides, (list, tuple)) and all(isinstance(item, (str, int, float)) for item in overrides):
        return [str(item) for item in overrides]
    raise StudyConfigError(
        f"config key 'overrides' must be a string of Hydra overrides or a list of them, "
        f"got {type(overrides).__name__}: {overrides!r}"
    )


def format_overrides(overrides: Sequence[str]) -> str:
    """The ``--config overrides=`` value for a list of overrides (inverse of parse_overrides).

    Items are quoted only where they hold spaces or quotes; the value never ends in a quote,
    which Snakemake's config parser would drop.
    """
    text = " ".join(shlex.quote(item) if re.search(r"[\s'\"]", item) else item for item in overrides)
    return text + " " if text.endswith(("'", '"')) else text


def compose_config(overrides: Sequence[str], config_name: str = "config") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with Hydra overrides, errors as StudyConfigError."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        raise StudyConfigError(f"cannot compose the study from overrides {list(overrides)}: {_one_line(error)}") from error


def _one_line(error: Exception) -> str:
    """Hydra's message without the search-path dump, option lists joined on one line."""
    text = str(error).split("\nConfig search path:")[0].strip()
    text = re.sub(r":\n\t", ": ", text)
    text = re.sub(r"\s*\n\n\s*", ". ", text)
    text = re.sub(r"\s*\n+\s*", ", ", text)
    missing = re.search(r"Could not (?:find|load) '([A-Za-z_]+)/[^']*'", text)
    if missing and "Available options" not in text and (conf_dir() / missing.group(1)).is_dir():
        group = missing.group(1)
        text += f" Available options in '{group}': {', '.join(_group_options(group))}"
    unknown = re.search(r"Could not override '([A-Za-z0-9_.]+)'", text)
    if unknown:
        text = text.replace("'., To append", "'. To append")
        valid = _valid_keys_for(unknown.group(1))
        if valid:
            text += f". Valid keys there: {', '.join(valid)}"
    return text


def compose_study(overrides: Union[None, str, Sequence[Any]] = None) -> Study:
    """Compose and validate a study: the one entry point the Snakefile and the CLIs use."""
    override_list = parse_overrides(overrides)
    cfg = compose_config(override_list)
    return validate(cfg, override_list)


def _schema_merge(cfg: DictConfig) -> Config:
    schema = OmegaConf.structured(Config)
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in ("dataset", "model", "optimizer", "schedule"):
        if not isinstance(plain.get(key), dict) or not plain.get(key):
            raise StudyConfigError(
                f"'{key}' is not selected: choose an option of conf/{key}/, e.g. {key}={_group_options(key)[0]} "
                f"(valid: {', '.join(_group_options(key))})"
            )
    for group in ("optimizer", "schedule"):
        for name, options in plain[group].items():
            if not isinstance(options, dict) or "type" not in options:
                raise StudyConfigError(
                    f"{group}.{name} is set (by an override or a preset) but {name!r} is not a selected "
                    f"{group}: select it, e.g. {group}=[{','.join([*[n for n in plain[group] if n != name], name])}], "
                    f"or drop the setting. Options in conf/{group}/: {', '.join(_group_options(group))}"
                )
    extra = sorted(set(plain) - {field.name for field in dataclasses.fields(Config)})
    if extra:
        raise StudyConfigError(
            f"unknown top-level key(s) {extra}; valid keys: dataset, model, optimizer, schedule, study"
        )
    try:
        merged = OmegaConf.merge(schema, plain)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        raise StudyConfigError(_describe_omegaconf_error(error)) from error


def _describe_omegaconf_error(error: OmegaConfBaseException) -> str:
    full_key = getattr(error, "full_key", None)
    message = str(error).splitlines()[0]
    if full_key and "Missing mandatory value" in message:
        return f"{full_key} is required: set it, e.g. {full_key}=..."
    if full_key:
        valid = _valid_keys_for(str(full_key))
        hint = f"; valid keys there: {', '.join(valid)}" if valid else ""
        return f"invalid value at '{full_key}': {message}{hint}"
    return f"invalid study configuration: {message}"


def _valid_keys_for(full_key: str) -> List[str]:
    parts = full_key.split(".")
    if parts[0] == "study":
        target: Any = StudyConfig
        for part in parts[1:-1]:
            if part == "grid":
                target = GridConfig
        return [f.name for f in dataclasses.fields(target)]
    if parts[0] == "optimizer" and len(parts) >= 3:
        return [f.name for f in dataclasses.fields(OptimizerConfig)]
    if parts[0] == "schedule" and len(parts) >= 3:
        return [f.name for f in dataclasses.fields(ScheduleConfig)]
    return []


def _group_options(group: str) -> List[str]:
    return sorted(path.stem for path in (conf_dir() / group).glob("*.yaml"))


_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _check_name(key: str, value: str) -> None:
    if not _NAME_PATTERN.match(value) or value in (".", ".."):
        raise StudyConfigError(
            f"{key}={value!r} is not a valid name: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit (it becomes a folder name)"
        )


def check_optimizer(name: str, options: Dict[str, Any]) -> Dict[str, Any]:
    """Validate one optimizer option; returns its type and set knobs."""
    kind = options.get("type")
    if kind not in OPTIMIZER_TYPES:
        raise StudyConfigError(
            f"optimizer.{name}.type={kind!r} is not a known optimizer type; valid: {', '.join(OPTIMIZER_TYPES)}"
        )
    allowed = set(OPTIMIZER_TYPES[kind][1]) | set(COMMON_OPTIMIZER_KNOBS)
    knobs = {key: value for key, value in options.items() if key != "type" and value is not None}
    for key, value in knobs.items():
        if key not in allowed:
            raise StudyConfigError(
                f"optimizer.{name}.{key} does not apply to optimizer type {kind!r}; "
                f"its knobs: {', '.join(sorted(allowed))}"
            )
        if isinstance(value, float) and (not math.isfinite(value) or value < 0):
            raise StudyConfigError(f"optimizer.{name}.{key}={value!r} must be a finite number >= 0")
    for key in ("momentum", "beta_1", "beta_2", "rho"):
        if key in knobs and not 0 <= knobs[key] < 1:
            raise StudyConfigError(f"optimizer.{name}.{key}={knobs[key]!r} must be in [0, 1)")
    return {"type": kind, **knobs}


def check_schedule(name: str, options: Dict[str, Any], epochs: int) -> Dict[str, Any]:
    """Validate one schedule option; returns its type with every knob filled in.

    Raises StudyConfigError (a ValueError) naming ``schedule.<name>.<knob>`` and the value.
    The schedule constructors in :mod:`pipeline.schedules` use the same checks.
    """
    kind = options.get("type")
    if kind not in SCHEDULE_TYPES:
        raise StudyConfigError(
            f"schedule.{name}.type={kind!r} is not a known schedule type; valid: {', '.join(SCHEDULE_TYPES)}"
        )
    defaults = SCHEDULE_TYPES[kind]
    knobs = dict(defaults)
    for key, value in options.items():
        if key == "type" or value is None:
            continue
        if key not in defaults:
            valid = ", ".join(defaults) or "none"
            raise StudyConfigError(
                f"schedule.{name}.{key} does not apply to schedule type {kind!r}; its knobs: {valid}"
            )
        knobs[key] = value
    prefix = f"schedule.{name}"
    if kind == "step" and knobs["every_epochs"] is None:
        knobs["every_epochs"] = max(1, epochs // 4)
    elif "every_epochs" in knobs:
        every = knobs["every_epochs"]
        if not isinstance(every, int) or every < 1:
            raise StudyConfigError(f"{prefix}.every_epochs={every!r} must be an integer >= 1")
        if every >= epochs:
            raise StudyConfigError(
                f"{prefix}.every_epochs={every} must be smaller than study.epochs={epochs}, "
                "or the rate never drops"
            )
    if "factor" in knobs and not 0 < knobs["factor"] < 1:
        raise StudyConfigError(f"{prefix}.factor={knobs['factor']!r} must be in (0, 1)")
    if "decay_rate" in knobs and not 0 < knobs["decay_rate"] <= 1:
        raise StudyConfigError(f"{prefix}.decay_rate={knobs['decay_rate']!r} must be in (0, 1]")
    if "alpha" in knobs and not 0 <= knobs["alpha"] <= 1:
        raise StudyConfigError(f"{prefix}.alpha={knobs['alpha']!r} must be in [0, 1]")
    if "warmup_fraction" in knobs and not 0 < knobs["warmup_fraction"] < 1:
        raise StudyConfigError(f"{prefix}.warmup_fraction={knobs['warmup_fraction']!r} must be in (0, 1)")
    return {"type": kind, **knobs}


def check_target(group: str, options: Dict[str, Any], fixed: Sequence[str]) -> None:
    """Check that ``_target_`` imports and that the option's other keys fit its signature.

    ``fixed`` are the arguments the pipeline passes itself (e.g. ``input_shape``). Importing
    the target module must stay cheap: builders import Keras inside the function.
    """
    target = options.get("_target_")
    if not isinstance(target, str) or "." not in target:
        raise StudyConfigError(f"{group}._target_ must be a dotted path to a function, got {target!r}")
    module_name, _, attribute = target.rpartition(".")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise StudyConfigError(f"{group}._target_={target!r} cannot be imported: {error}") from error
    kwargs = {key: value for key, value in options.items() if key not in ("_target_", "name")}
    try:
        inspect.signature(function).bind_partial(**{key: None for key in fixed}, **kwargs)
    except TypeError as error:
        parameters = [p for p in inspect.signature(function).parameters if p not in fixed]
        raise StudyConfigError(
            f"{group} option does not fit {target}: {error}; its arguments: {', '.join(parameters)}"
        ) from error


def validate(cfg: DictConfig, overrides: Sequence[str] = ()) -> Study:
    """Turn a composed config into a :class:`Study`, or raise StudyConfigError."""
    config = _schema_merge(cfg)
    settings = config.study
    _check_name("study.name", settings.name)
    if settings.epochs < 1:
        raise StudyConfigError(f"study.epochs={settings.epochs} must be >= 1")
    if settings.batch_size < 1:
        raise StudyConfigError(f"study.batch_size={settings.batch_size} must be >= 1")
    if settings.cohort_size < 0:
        raise StudyConfigError(f"study.cohort_size={settings.cohort_size} must be >= 0 (0 = whole cohort per job)")
    if settings.steps_per_execution < 1:
        raise StudyConfigError(f"study.steps_per_execution={settings.steps_per_execution} must be >= 1")
    if not settings.divergence_factor > 1:
        raise StudyConfigError(f"study.divergence_factor={settings.divergence_factor} must be > 1")
    if not settings.seeds:
        raise StudyConfigError("study.seeds is empty: give at least one seed, e.g. study.seeds=[0]")
    if len(set(settings.seeds)) != len(settings.seeds):
        raise StudyConfigError(f"study.seeds={settings.seeds} has duplicates")
    if any(seed < 0 for seed in settings.seeds):
        raise StudyConfigError(f"study.seeds={settings.seeds}: seeds must be >= 0")
    grid = settings.grid
    if grid.values is not None:
        if not grid.values:
            raise StudyConfigError("study.grid.values is empty: give rates or set it to null to use min/max/points")
        for value in grid.values:
            if not (math.isfinite(value) and value > 0):
                raise StudyConfigError(f"study.grid.values contains {value!r}: every rate must be > 0")
    else:
        for key in ("min", "max"):
            value = getattr(grid, key)
            if not (math.isfinite(value) and value > 0):
                raise StudyConfigError(f"study.grid.{key}={value!r} must be a rate > 0")
        if grid.points < 1:
            raise StudyConfigError(f"study.grid.points={grid.points} must be >= 1")
        if grid.points > 1 and grid.min >= grid.max:
            raise StudyConfigError(f"study.grid.min={grid.min} must be smaller than study.grid.max={grid.max}")

    for group in ("dataset", "model"):
        options = getattr(config, group)
        name = options.get("name")
        if not isinstance(name, str):
            raise StudyConfigError(f"{group}.name is missing: every {group} option needs a name")
        _check_name(f"{group}.name", name)
    for group in ("dataset", "model"):
        for key, value in getattr(config, group).items():
            if value == "???":
                raise StudyConfigError(f"{group}.{key} is required: set it, e.g. {group}.{key}=...")
    if config.dataset.get("_target_") == "pipeline.data.npz_file" and not Path(str(config.dataset.get("path"))).is_file():
        raise StudyConfigError(
            f"dataset.path={config.dataset.get('path')!r}: no such file (an .npz with x_train, y_train, x_val, y_val)"
        )
    check_target("dataset", config.dataset, fixed=())
    check_target("model", config.model, fixed=("input_shape", "num_classes"))

    optimizers = {}
    for name, options in config.optimizer.items():
        _check_name("optimizer", name)
        optimizers[name] = check_optimizer(name, dataclasses.asdict(options))
    schedules = {}
    for name, options in config.schedule.items():
        _check_name("schedule", name)
        schedules[name] = check_schedule(name, dataclasses.asdict(options), settings.epochs)

    return Study(
        dataset=dict(config.dataset),
        model=dict(config.model),
        optimizers=optimizers,
        schedules=schedules,
        settings=settings,
        overrides=list(overrides),
        rates=grid_rates(grid),
    )
