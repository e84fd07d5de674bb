"""Composing a study with Hydra and validating it, before any job starts.

:func:`compose_study` is the one entry point of the Snakefile, the ``lrstudy`` launcher and
the single-run app: Hydra composes ``conf/`` with the user's overrides, the structured
schemas of :mod:`pipeline.config` catch typos and wrong types, and the checks here catch bad
values (a rate <= 0, min >= max, an empty seed list, a knob that does not apply, a model
argument the builder does not take). Every error is a :class:`StudyConfigError` naming the
key and, where there is a choice, the valid options. Pure Python: no TensorFlow import.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import re
import shlex
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.config.schema import (
    COMMON_OPTIMIZER_KNOBS,
    OPTIMIZER_TYPES,
    SCHEDULE_TYPES,
    Config,
    DiagnosisConfig,
    FinderConfig,
    GridConfig,
    HpoConfig,
    OptimizerConfig,
    ScheduleConfig,
    Study,
    StudyConfig,
    StudyConfigError,
    SUGGESTIONS,
    conf_dir,
)
from pipeline.config.rates import grid_rates


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
            f"unknown top-level key(s) {extra}; valid keys: dataset, model, optimizer, schedule, study, diagnosis, finder, hpo"
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
    if parts[0] == "diagnosis":
        return [f.name for f in dataclasses.fields(DiagnosisConfig)]
    if parts[0] == "finder":
        return [f.name for f in dataclasses.fields(FinderConfig)]
    if parts[0] == "hpo":
        return [f.name for f in dataclasses.fields(HpoConfig)]
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
    The schedule constructors in :mod:`pipeline.training.schedules` use the same checks.
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


def check_diagnosis(diagnosis: DiagnosisConfig) -> DiagnosisConfig:
    """Every diagnosis threshold is a positive number; fractions lie in (0, 1)."""
    fractions = ("underfit_progress", "tail_fraction", "target_fraction", "diverged_warning", "early_best", "late_best")
    for item in dataclasses.fields(DiagnosisConfig):
        value = getattr(diagnosis, item.name)
        if not (math.isfinite(value) and value > 0):
            raise StudyConfigError(f"diagnosis.{item.name}={value!r} must be a number > 0")
        if item.name in fractions and not value < 1 and not (item.name == "target_fraction" and value == 1):
            raise StudyConfigError(f"diagnosis.{item.name}={value!r} must be in (0, 1)")
    if diagnosis.early_best >= diagnosis.late_best:
        raise StudyConfigError(
            f"diagnosis.early_best={diagnosis.early_best} must be smaller than diagnosis.late_best={diagnosis.late_best}"
        )
    return diagnosis


GRID_MODES = ("fixed", "finder")


def check_finder(finder: FinderConfig) -> FinderConfig:
    """The range test's settings, each error naming its key."""
    for key in ("start_lr", "end_lr", "stop_factor"):
        value = getattr(finder, key)
        if not (math.isfinite(value) and value > 0):
            raise StudyConfigError(f"finder.{key}={value!r} must be a number > 0")
    if finder.start_lr >= finder.end_lr:
        raise StudyConfigError(f"finder.start_lr={finder.start_lr} must be smaller than finder.end_lr={finder.end_lr}")
    if finder.mode not in ("exponential", "linear"):
        raise StudyConfigError(f"finder.mode={finder.mode!r} is not a ramp; valid: exponential, linear")
    if finder.stop_factor <= 1:
        raise StudyConfigError(f"finder.stop_factor={finder.stop_factor} must be > 1")
    if not 0 <= finder.beta < 1:
        raise StudyConfigError(f"finder.beta={finder.beta} must be in [0, 1)")
    if finder.skip_start < 0 or finder.skip_end < 0:
        raise StudyConfigError("finder.skip_start and finder.skip_end must be >= 0")
    if finder.steps < finder.skip_start + finder.skip_end + 3:
        raise StudyConfigError(
            f"finder.steps={finder.steps} must exceed finder.skip_start + finder.skip_end + 2 "
            f"({finder.skip_start + finder.skip_end + 2}), or no point is left to suggest from"
        )
    if not 0 <= finder.min_drop < 1:
        raise StudyConfigError(f"finder.min_drop={finder.min_drop} must be in [0, 1)")
    return finder


SAMPLERS = ("random", "tpe")
PRUNERS = ("none", "median", "successive_halving", "hyperband")


def check_hpo(hpo: HpoConfig, optimizers: Dict[str, Any], schedules: Dict[str, Any]) -> HpoConfig:
    """The searches' settings: known samplers and pruners, a budget, bounds, study options."""
    for key, valid in (("samplers", SAMPLERS), ("pruners", PRUNERS)):
        chosen = getattr(hpo, key)
        unknown = [name for name in chosen if name not in valid]
        if unknown:
            raise StudyConfigError(f"hpo.{key} has unknown {unknown}; valid: {', '.join(valid)}")
        if len(set(chosen)) != len(chosen):
            raise StudyConfigError(f"hpo.{key}={list(chosen)} has duplicates")
    if hpo.samplers and not hpo.pruners:
        raise StudyConfigError("hpo.pruners is empty: use [none] for searches without pruning")
    if hpo.trials < 1 or hpo.workers < 1:
        raise StudyConfigError(f"hpo.trials={hpo.trials} and hpo.workers={hpo.workers} must be >= 1")
    for key in ("lr_min", "lr_max"):
        value = getattr(hpo, key)
        if not (math.isfinite(value) and value > 0):
            raise StudyConfigError(f"hpo.{key}={value!r} must be a rate > 0")
    if hpo.lr_min >= hpo.lr_max:
        raise StudyConfigError(f"hpo.lr_min={hpo.lr_min} must be smaller than hpo.lr_max={hpo.lr_max}")
    for key, available in (("optimizers", optimizers), ("schedules", schedules)):
        missing = [name for name in getattr(hpo, key) if name not in available]
        if missing:
            raise StudyConfigError(
                f"hpo.{key} names {missing}, not options of this study; selected: {', '.join(available)}"
            )
    if hpo.warmup_fraction is not None:
        bounds = list(hpo.warmup_fraction)
        if len(bounds) != 2 or not 0 < bounds[0] < bounds[1] < 1:
            raise StudyConfigError(f"hpo.warmup_fraction={bounds} must be [low, high] with 0 < low < high < 1")
    return hpo


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
    if settings.gpus not in (0, 1):
        raise StudyConfigError(
            f"study.gpus={settings.gpus} must be 0 (CPU jobs) or 1 (one GPU per job: a job trains its runs one "
            "after another on one device; more GPUs run more jobs at once)"
        )
    if settings.gpu_model is not None:
        if not settings.gpus:
            raise StudyConfigError(f"study.gpu_model={settings.gpu_model!r} needs study.gpus=1")
        if not re.fullmatch(r"[A-Za-z0-9_.]+", settings.gpu_model):
            raise StudyConfigError(
                f"study.gpu_model={settings.gpu_model!r} must be a SLURM GPU type name (letters, digits, '_', '.'), e.g. a100"
            )
    if not settings.divergence_factor > 1:
        raise StudyConfigError(f"study.divergence_factor={settings.divergence_factor} must be > 1")
    if not settings.seeds:
        raise StudyConfigError("study.seeds is empty: give at least one seed, e.g. study.seeds=[0]")
    if len(set(settings.seeds)) != len(settings.seeds):
        raise StudyConfigError(f"study.seeds={settings.seeds} has duplicates")
    if any(seed < 0 for seed in settings.seeds):
        raise StudyConfigError(f"study.seeds={settings.seeds}: seeds must be >= 0")
    grid = settings.grid
    if grid.mode not in GRID_MODES:
        raise StudyConfigError(f"study.grid.mode={grid.mode!r} is not a grid mode; valid: {', '.join(GRID_MODES)}")
    if grid.finder_suggestion not in SUGGESTIONS:
        raise StudyConfigError(
            f"study.grid.finder_suggestion={grid.finder_suggestion!r} is not a suggestion; valid: {', '.join(SUGGESTIONS)}"
        )
    if not (math.isfinite(grid.finder_decades) and grid.finder_decades > 0):
        raise StudyConfigError(f"study.grid.finder_decades={grid.finder_decades!r} must be > 0")
    if grid.mode == "finder":
        # The rates come from the range test, per optimizer (pipeline.finder.suggest.centred_grid).
        if grid.points < 1:
            raise StudyConfigError(f"study.grid.points={grid.points} must be >= 1")
    elif grid.values is not None:
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
    if config.dataset.get("_target_") == "pipeline.training.data.npz_file" and not Path(str(config.dataset.get("path"))).is_file():
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
        diagnosis=check_diagnosis(config.diagnosis),
        finder=check_finder(config.finder),
        hpo=check_hpo(config.hpo, optimizers, schedules),
        overrides=list(overrides),
        rates=grid_rates(grid) if grid.mode == "fixed" else [],  # finder mode: per optimizer, later
    )
