"""Composing a study with Hydra, before any job starts.

:func:`compose_study` is the one entry point of the Snakefile, the ``lrstudy`` launcher and
the single-run app: Hydra composes ``conf/`` onto the structured schema of
:mod:`pipeline.config.schema` (registered here as ``schema``) with the user's overrides, which
catches typos and wrong types; :mod:`pipeline.config.validation` then checks the values.
Every error is a :class:`StudyConfigError` naming the key and, where there is a choice, the
valid options. Pure Python: no TensorFlow import.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import typing
from typing import Any, Dict, List, Optional, Sequence, Type, Union

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException, ValidationError

from pipeline.config.schema import OPTION_SCHEMA, SCHEDULE_TYPES, Config, Study, StudyConfigError, conf_dir, schedule_type_schema
from pipeline.config.validation import check_schedule, check_target, validate_config

# The entry points of this module, with the checks other stages call on their own.
__all__ = [
    "check_schedule",
    "check_target",
    "compose_config",
    "compose_study",
    "format_overrides",
    "parse_overrides",
    "register_schema",
    "validate",
]

#: The name under which ``conf/config.yaml`` finds the schema (first in its defaults list).
SCHEMA_NAME = "schema"


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
        try:
            return shlex.split(overrides)
        except ValueError as error:  # an unclosed quote, a trailing backslash
            raise StudyConfigError(
                f"config key 'overrides' does not split into Hydra overrides ({str(error).lower()}): {overrides!r}; "
                'close its quotes, e.g. overrides="study.name=\'my study\' model=cnn"'
            ) from error
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


def register_schema(schema: Type[Config] = Config) -> None:
    """Register the structured schemas that ``conf/`` composes onto: the study's (``schema``)
    and each schedule type's (``schedule/type/<type>``, which a schedule option names in its
    defaults list).

    Call it before Hydra composes (``compose_config`` does; the Hydra apps call it before
    ``hydra.main`` runs). The single-run app registers its subclass with ``lr`` and ``seed``.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name=SCHEMA_NAME, node=schema)
    for kind in SCHEDULE_TYPES:
        store.store(group="schedule/type", name=kind, node=schedule_type_schema(kind))


def compose_config(overrides: Sequence[str], config_name: str = "config") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with Hydra overrides, errors as StudyConfigError."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    register_schema()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        raise StudyConfigError(f"cannot compose the study from overrides {list(overrides)}: {describe_hydra_error(error)}") from error


def describe_hydra_error(error: Exception) -> str:
    """Hydra's message on one line, with the valid choices it leaves out.

    A missing group option gets the group's options; a key that cannot be set gets the keys
    the schema has there (from the ``full_key`` of the OmegaConf error that Hydra wraps).
    """
    paragraphs = []
    for paragraph in str(error).split("\nConfig search path:")[0].strip().split("\n\n"):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        if len(lines) > 1 and lines[0].endswith(":"):  # a heading and the items it lists
            paragraphs.append(f"{lines[0]} {', '.join(lines[1:])}")
        else:
            paragraphs.extend(lines)
    text = ". ".join(paragraph.rstrip(".") for paragraph in paragraphs)
    group = _missing_group(error)
    if group is not None and "Available options" not in text:
        text += f". Available options in '{group}': {', '.join(group_options(group))}"
    cause = _omegaconf_cause(error)
    if cause is not None:
        if isinstance(cause, ValidationError):
            text = f"{text}: {str(cause).splitlines()[0]}"
        owner = cause.object_type
        valid = [item.name for item in dataclasses.fields(owner)] if dataclasses.is_dataclass(owner) else valid_keys_at(str(cause.full_key))
        if valid:
            text += f". Valid keys there: {', '.join(valid)}"
    return text


def _omegaconf_cause(error: BaseException) -> Optional[OmegaConfBaseException]:
    """The OmegaConf error (with its ``full_key``) under Hydra's wrapping, if any."""
    while error is not None:
        if isinstance(error, OmegaConfBaseException) and getattr(error, "full_key", None):
            return error
        error = error.__cause__  # type: ignore[assignment]
    return None


def _missing_group(error: Exception) -> Optional[str]:
    """The config group of a ``group=option`` that does not exist, if that is the error."""
    from hydra.errors import MissingConfigException

    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group = str(error.missing_cfg_file).split("/")[0]
        return group if (conf_dir() / group).is_dir() else None
    return None


def compose_study(overrides: Union[None, str, Sequence[Any]] = None) -> Study:
    """Compose and validate a study: the one entry point the Snakefile and the CLIs use."""
    override_list = parse_overrides(overrides)
    cfg = compose_config(override_list)
    return validate(cfg, override_list)


def validate(cfg: DictConfig, overrides: Sequence[str] = ()) -> Study:
    """Turn a composed config into a :class:`Study`, or raise StudyConfigError."""
    return validate_config(_schema_merge(cfg), overrides)


def _schema_merge(cfg: DictConfig) -> Config:
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in ("dataset", "model", "optimizer", "schedule"):
        if not isinstance(plain.get(key), dict) or not plain.get(key):
            raise StudyConfigError(
                f"'{key}' is not selected: choose an option of conf/{key}/, e.g. {key}={group_options(key)[0]} "
                f"(valid: {', '.join(group_options(key))})"
            )
    for group in ("optimizer", "schedule"):
        for name, options in plain[group].items():
            if not isinstance(options, dict) or options.get("type") in (None, "???"):
                raise StudyConfigError(
                    f"{group}.{name} is set (by an override or a preset) but {name!r} is not a selected "
                    f"{group}: select it, e.g. {group}=[{','.join([*[n for n in plain[group] if n != name], name])}], "
                    f"or drop the setting. Options in conf/{group}/: {', '.join(group_options(group))}"
                )
    extra = sorted(set(plain) - {item.name for item in dataclasses.fields(Config)})
    if extra:
        raise StudyConfigError(f"unknown top-level key(s) {extra}; valid keys: {', '.join(item.name for item in dataclasses.fields(Config))}")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), plain))  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        raise StudyConfigError(describe_omegaconf_error(error)) from error


def describe_omegaconf_error(error: OmegaConfBaseException) -> str:
    """A schema error as ``invalid value at '<key>': <reason>; valid keys there: ...``."""
    full_key = getattr(error, "full_key", None)
    message = str(error).splitlines()[0]
    if full_key and "Missing mandatory value" in message:
        return f"{full_key} is required: set it, e.g. {full_key}=..."
    if full_key:
        valid = valid_keys_at(str(full_key))
        hint = f"; valid keys there: {', '.join(valid)}" if valid else ""
        return f"invalid value at '{full_key}': {message}{hint}"
    return f"invalid study configuration: {message}"


def valid_keys_at(full_key: str) -> List[str]:
    """The keys the schema allows beside ``full_key`` (``study.grid.mod`` -> GridConfig's
    fields), found by walking the dataclasses' type hints; for a key of a group of options
    (``schedule.step``), an option's keys; empty where the node is free-form (a model option)."""
    node: Any = Config
    for part in full_key.split(".")[:-1]:
        if dataclasses.is_dataclass(node):
            fields = {item.name: item for item in dataclasses.fields(node)}
            if part not in fields:
                return []
            option_schema = fields[part].metadata.get(OPTION_SCHEMA)
            node = Dict[str, option_schema] if option_schema else typing.get_type_hints(node)[part]
        elif typing.get_origin(node) is dict:
            node = typing.get_args(node)[1]
        else:
            return []
    if typing.get_origin(node) is dict:
        node = typing.get_args(node)[1]
    return [item.name for item in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []


def group_options(group: str) -> List[str]:
    """The options of a config group: the YAML files in ``conf/<group>/``."""
    return sorted(path.stem for path in (conf_dir() / group).glob("*.yaml"))
