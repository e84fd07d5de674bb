"""Validating a composed study: the field constraints of :mod:`pipeline.config.schema`, the
checks that relate several fields (named functions below), and the plug-in checks (an
optimizer or schedule type's knobs, a ``_target_``'s signature).

:func:`validate` composes them into a :class:`~pipeline.config.schema.Study`. Every error is a
:class:`~pipeline.config.errors.StudyConfigError` naming the key, the value received and, where
there is a choice, the valid options. Pure Python: no TensorFlow import.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
from typing import Any, Callable, Dict, Mapping, Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.config.constraints import check_fields, check_value, field_constraints
from pipeline.config.errors import StudyConfigError
from pipeline.config.rates import grid_rates
from pipeline.config.schema import (
    COMMON_OPTIMIZER_KNOBS,
    NAME,
    OPTIMIZER_TYPES,
    SCHEDULE_TYPES,
    Config,
    DiagnosisConfig,
    FinderConfig,
    HpoConfig,
    OptimizerConfig,
    ScheduleConfig,
    Study,
    StudyConfig,
    finder_points,
    points_after_crop,
)

# --------------------------------------------------------------------------------------
# Checks that relate several fields of one schema
# --------------------------------------------------------------------------------------


def gpu_model_needs_a_gpu(settings: StudyConfig) -> None:
    if settings.gpu_model is not None and not settings.gpus:
        raise StudyConfigError(f"study.gpu_model={settings.gpu_model!r} needs study.gpus=1")


def grid_bounds_are_ordered(settings: StudyConfig) -> None:
    grid = settings.grid
    if grid.mode == "fixed" and grid.values is None and grid.points > 1 and grid.min >= grid.max:
        raise StudyConfigError(f"study.grid.min={grid.min} must be smaller than study.grid.max={grid.max}")


def confirm_seeds_are_fresh(settings: StudyConfig) -> None:
    reused = sorted(set(settings.confirm.seeds) & set(settings.seeds))
    if reused:
        raise StudyConfigError(
            f"study.confirm.seeds={list(settings.confirm.seeds)} reuses grid seed(s) {reused} of "
            f"study.seeds={list(settings.seeds)}: the confirmation needs seeds the grid did not use"
        )


def batch_sizes_ask_a_question(settings: StudyConfig) -> None:
    if settings.batch_sizes and set(settings.batch_sizes) <= {settings.batch_size}:
        raise StudyConfigError(
            f"study.batch_sizes={list(settings.batch_sizes)} holds no batch size but study.batch_size="
            f"{settings.batch_size}, the grid's own: add another, e.g. study.batch_sizes="
            f"[{settings.batch_size},{2 * settings.batch_size}], or [] for no batch-size question"
        )


def early_best_before_late_best(diagnosis: DiagnosisConfig) -> None:
    if diagnosis.early_best >= diagnosis.late_best:
        raise StudyConfigError(
            f"diagnosis.early_best={diagnosis.early_best} must be smaller than diagnosis.late_best={diagnosis.late_best}"
        )


def finder_ramp_rises(finder: FinderConfig) -> None:
    if finder.start_lr >= finder.end_lr:
        raise StudyConfigError(f"finder.start_lr={finder.start_lr} must be smaller than finder.end_lr={finder.end_lr}")


def finder_leaves_points_to_suggest_from(finder: FinderConfig) -> None:
    # fastai's crop keeps points[points // 10 : -5]; the rules need 3 points of it.
    points = finder_points(finder)
    kept = points_after_crop(points)
    if kept < 3:
        per = f" (one per finder.val_every={finder.val_every} steps)" if finder.loss == "val" else ""
        raise StudyConfigError(
            f"finder.steps={finder.steps} leaves {kept} points after fastai's crop of its {points} points{per} "
            "(the first tenth and the last 5); at least 3 are needed to suggest from: 9 points or more"
        )


def searches_have_pruners(hpo: HpoConfig) -> None:
    if hpo.samplers and not hpo.pruners:
        raise StudyConfigError("hpo.pruners is empty: use [none] for searches without pruning")


def search_bounds_are_ordered(hpo: HpoConfig) -> None:
    if hpo.lr_min >= hpo.lr_max:
        raise StudyConfigError(f"hpo.lr_min={hpo.lr_min} must be smaller than hpo.lr_max={hpo.lr_max}")


#: The cross-field checks of each schema, run after its field constraints.
CROSS_CHECKS: Dict[type, tuple[Callable[[Any], None], ...]] = {
    StudyConfig: (gpu_model_needs_a_gpu, grid_bounds_are_ordered, confirm_seeds_are_fresh, batch_sizes_ask_a_question),
    DiagnosisConfig: (early_best_before_late_best,),
    FinderConfig: (finder_ramp_rises, finder_leaves_points_to_suggest_from),
    HpoConfig: (searches_have_pruners, search_bounds_are_ordered),
}


def check_section(section: Any, prefix: str) -> Any:
    """A schema section's field constraints, then its cross-field checks; returns it."""
    check_fields(section, prefix)
    for check in CROSS_CHECKS.get(type(section), ()):
        check(section)
    return section


def search_names_are_study_options(hpo: HpoConfig, optimizers: Mapping[str, Any], schedules: Mapping[str, Any]) -> None:
    for key, available in (("optimizers", optimizers), ("schedules", schedules)):
        missing = [name for name in getattr(hpo, key) if name not in available]
        if missing:
            raise StudyConfigError(f"hpo.{key} names {missing}, not options of this study; selected: {', '.join(available)}")


# --------------------------------------------------------------------------------------
# Plug-ins: optimizer and schedule types, dataset and model targets
# --------------------------------------------------------------------------------------


def _check_type(group: str, name: str, kind: Any, schema: type) -> None:
    constraints = dict(field_constraints(schema))["type"]
    if kind is None or not constraints[0].accepts(kind):
        raise StudyConfigError(constraints[0].message(f"{group}.{name}.type", kind))


def _typed(group: str, name: str, schema: type, options: Mapping[str, Any]) -> Any:
    """The option as its schema dataclass (values converted as the YAML would be)."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), dict(options)))
    except OmegaConfBaseException as error:
        key = f"{group}.{name}.{error.full_key}" if getattr(error, "full_key", None) else f"{group}.{name}"
        valid = ", ".join(item.name for item in dataclasses.fields(schema))
        raise StudyConfigError(f"invalid value at '{key}': {str(error).splitlines()[0]}; valid keys there: {valid}") from error


def check_optimizer(name: str, options: Mapping[str, Any]) -> Dict[str, Any]:
    """Validate one optimizer option; returns its type and set knobs (in schema order)."""
    kind = options.get("type")
    _check_type("optimizer", name, kind, OptimizerConfig)
    allowed = set(OPTIMIZER_TYPES[kind][1]) | set(COMMON_OPTIMIZER_KNOBS)
    for key, value in options.items():
        if key not in ("type", "name") and value is not None and key not in allowed:
            raise StudyConfigError(
                f"optimizer.{name}.{key} does not apply to optimizer type {kind!r}; its knobs: {', '.join(sorted(allowed))}"
            )
    typed = _typed("optimizer", name, OptimizerConfig, {key: value for key, value in options.items() if key != "name"})
    check_fields(typed, f"optimizer.{name}")
    knobs = {item.name: getattr(typed, item.name) for item in dataclasses.fields(OptimizerConfig) if item.name != "type"}
    return {"type": kind, **{key: value for key, value in knobs.items() if value is not None}}


def check_schedule(name: str, options: Dict[str, Any], epochs: int) -> Dict[str, Any]:
    """Validate one schedule option; returns its type with every knob filled in.

    Raises StudyConfigError (a ValueError) naming ``schedule.<name>.<knob>`` and the value.
    The schedule constructors in :mod:`pipeline.training.schedules` use the same checks.
    """
    kind = options.get("type")
    _check_type("schedule", name, kind, ScheduleConfig)
    defaults = SCHEDULE_TYPES[kind]
    knobs = dict(defaults)
    for key, value in options.items():
        if key == "type" or value is None:
            continue
        if key not in defaults:
            valid = ", ".join(defaults) or "none"
            raise StudyConfigError(f"schedule.{name}.{key} does not apply to schedule type {kind!r}; its knobs: {valid}")
        knobs[key] = value
    if kind == "step" and knobs["every_epochs"] is None:
        knobs["every_epochs"] = max(1, epochs // 4)
    if kind == "cosine_restarts" and knobs["first_decay_epochs"] is None and isinstance(knobs["t_mul"], (int, float)):
        # Two cycles that end with training: first + t_mul × first = epochs.
        knobs["first_decay_epochs"] = max(1, round(epochs / (1 + knobs["t_mul"])))
    constraints = dict(field_constraints(ScheduleConfig))
    for key, value in knobs.items():
        check_value(f"schedule.{name}.{key}", value, constraints[key])
    if kind == "wsd" and knobs["warmup_fraction"] + knobs["decay_fraction"] > 1:
        raise StudyConfigError(
            f"schedule.{name}.warmup_fraction={knobs['warmup_fraction']} + schedule.{name}.decay_fraction="
            f"{knobs['decay_fraction']} must be at most 1: the warm-up and the cooldown share the run"
        )
    if "every_epochs" in knobs and knobs["every_epochs"] >= epochs:
        raise StudyConfigError(
            f"schedule.{name}.every_epochs={knobs['every_epochs']} must be smaller than study.epochs={epochs}, "
            "or the rate never drops"
        )
    return {"type": kind, **knobs}


def check_target(group: str, options: Dict[str, Any], fixed: Sequence[str]) -> Callable[..., Any]:
    """Check that ``_target_`` imports and that the option's other keys fit its signature;
    returns the target.

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
        raise StudyConfigError(f"{group} option does not fit {target}: {error}; its arguments: {', '.join(parameters)}") from error
    return function


def check_target_option(group: str, options: Dict[str, Any], fixed: Sequence[str]) -> None:
    """A dataset or model option: a valid name, every required value set, a fitting target."""
    name = options.get("name")
    if not isinstance(name, str):
        raise StudyConfigError(f"{group}.name is missing: every {group} option needs a name")
    check_value(f"{group}.name", name, (NAME,))
    for key, value in options.items():
        if value == "???":
            raise StudyConfigError(f"{group}.{key} is required: set it, e.g. {group}.{key}=...")
    function = check_target(group, options, fixed)
    # A builder's own cheap check (a user's file, a Keras application's name), before any job:
    # the function in its ``composition_check`` attribute, called with the option's arguments.
    check = getattr(function, "composition_check", None)
    if check is not None:
        try:
            check(**{key: value for key, value in options.items() if key not in ("_target_", "name")})
        except (OSError, ValueError) as error:
            raise StudyConfigError(str(error)) from error


# --------------------------------------------------------------------------------------
# The whole study
# --------------------------------------------------------------------------------------


def validate_config(config: Config, overrides: Sequence[str] = ()) -> Study:
    """Check a schema-typed config section by section and return the :class:`Study`."""
    settings = check_section(config.study, "study")
    check_target_option("dataset", config.dataset, fixed=())
    check_target_option("model", config.model, fixed=("input_shape", "num_classes"))
    optimizers = {}
    for name, options in config.optimizer.items():
        check_value("optimizer", name, (NAME,))
        optimizers[name] = check_optimizer(name, options)
    schedules = {}
    for name, options in config.schedule.items():
        check_value("schedule", name, (NAME,))
        typed = _typed("schedule", name, ScheduleConfig, options)  # values converted as before
        schedules[name] = check_schedule(name, dataclasses.asdict(typed), settings.epochs)
    hpo = check_section(config.hpo, "hpo")
    search_names_are_study_options(hpo, optimizers, schedules)
    if settings.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise StudyConfigError(
            "study.tensorboard=true needs the tensorboard package, which is not installed: "
            "pip install 'lrstudy[tensorboard]' (or pip install tensorboard), or leave study.tensorboard=false"
        )
    grid = settings.grid
    return Study(
        dataset=dict(config.dataset),
        model=dict(config.model),
        optimizers=optimizers,
        schedules=schedules,
        settings=settings,
        diagnosis=check_section(config.diagnosis, "diagnosis"),
        finder=check_section(config.finder, "finder"),
        hpo=hpo,
        overrides=list(overrides),
        rates=grid_rates(grid) if grid.mode == "fixed" else [],  # finder mode: per optimizer, later
    )
