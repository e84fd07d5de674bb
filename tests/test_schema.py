"""The schema's field constraints and defaults: every rule rejects what it should with a message
naming the key and the value, and every shipped option states only what it changes."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import numpy as np
import pytest
import yaml

from pipeline.config.compose import compose_study, group_options, valid_keys_at
from pipeline.config.constraints import Choices, Constraint, Interval, Items, field_constraints
from pipeline.config.schema import (
    CONF_DIR,
    ConfirmConfig,
    SCHEDULE_TYPES,
    DiagnosisConfig,
    FinderConfig,
    GridConfig,
    HpoConfig,
    OptimizerConfig,
    ScheduleConfig,
    StudyConfig,
    StudyConfigError,
)
from pipeline.config.validation import check_optimizer, check_schedule, check_section

#: The sections a study validates field by field, with the key prefix of their messages.
SECTIONS = {"study": StudyConfig, "study.grid": GridConfig, "study.confirm": ConfirmConfig, "finder": FinderConfig, "hpo": HpoConfig, "diagnosis": DiagnosisConfig}


def cases() -> Iterator[Tuple[str, str, Constraint]]:
    """Every constraint of every section field: (prefix, field, constraint)."""
    for prefix, schema in SECTIONS.items():
        for name, constraints in field_constraints(schema):
            for constraint in constraints:
                yield prefix, name, constraint


CASES = list(cases())


def expected_fragments(key: str, value: Any, constraint: Constraint) -> List[str]:
    """What the message must hold: the key, the value received, the valid choices."""
    fragments = [key]
    rule = constraint.rule if isinstance(constraint, Items) else constraint
    if isinstance(constraint, Items):
        fragments.append(repr(next(item for item in value if not rule.accepts(item))))
    elif value != []:
        fragments.append(repr(value))
    if isinstance(rule, Choices) and not rule.wants:
        fragments.append("valid: " + ", ".join(str(choice) for choice in rule.values))
    return fragments


@pytest.mark.parametrize("prefix,name,constraint", CASES, ids=[f"{prefix}.{name}:{type(c).__name__}" for prefix, name, c in CASES])
def test_each_constraint_rejects_its_invalid_example_naming_key_and_value(prefix: str, name: str, constraint: Constraint) -> None:
    section = SECTIONS[prefix]()
    value = constraint.invalid_example()
    assert not constraint.accepts(value)
    setattr(section, name, value)
    with pytest.raises(StudyConfigError) as error:
        check_section(section, prefix)
    message = str(error.value)
    # The field's first failing rule reports; either way the message names the key and the value.
    assert f"{prefix}.{name}" in message
    reporting = next(rule for rule in dict(field_constraints(type(section)))[name] if not rule.accepts(value))
    for fragment in expected_fragments(f"{prefix}.{name}", value, reporting):
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize("prefix,schema", SECTIONS.items())
def test_the_defaults_pass_every_constraint(prefix: str, schema: type) -> None:
    # A default that breaks one of its rules raises StudyConfigError; checking changes nothing.
    assert check_section(schema(), prefix) == schema()


# Knobs of the plug-ins are checked per option; a knob is checked only by a type that has it.
KNOB_CASES = [
    (schema, name, constraint)
    for schema in (OptimizerConfig, ScheduleConfig)
    for name, constraints in field_constraints(schema)
    if name != "type"
    for constraint in constraints
]


def _type_with(schema: type, knob: str) -> str:
    if schema is ScheduleConfig:
        return next(kind for kind, knobs in SCHEDULE_TYPES.items() if knob in knobs)
    from pipeline.config.schema import COMMON_OPTIMIZER_KNOBS, OPTIMIZER_TYPES

    return next(kind for kind, (_, knobs) in OPTIMIZER_TYPES.items() if knob in knobs or knob in COMMON_OPTIMIZER_KNOBS)


@pytest.mark.parametrize("schema,name,constraint", KNOB_CASES, ids=[f"{s.__name__}.{n}" for s, n, _ in KNOB_CASES])
def test_each_knob_constraint_rejects_its_invalid_example(schema: type, name: str, constraint: Constraint) -> None:
    value = constraint.invalid_example()
    options = {"type": _type_with(schema, name), name: value}
    with pytest.raises(StudyConfigError) as error:
        if schema is ScheduleConfig:
            check_schedule("mine", options, epochs=100)
        else:
            check_optimizer("mine", options)
    group = "schedule" if schema is ScheduleConfig else "optimizer"
    assert f"{group}.mine.{name}={value!r}" in str(error.value)


@pytest.mark.parametrize("schema", [OptimizerConfig, ScheduleConfig])
def test_an_unknown_type_lists_the_valid_ones(schema: type) -> None:
    rule = dict(field_constraints(schema))["type"][0]
    assert isinstance(rule, Choices)
    with pytest.raises(StudyConfigError, match=r"\.mine\.type='spline'.*valid: " + ", ".join(rule.values)):
        (check_schedule if schema is ScheduleConfig else check_optimizer)("mine", {"type": "spline"}, *([5] if schema is ScheduleConfig else []))


def test_interval_messages() -> None:
    assert Interval(0, closed="neither", noun="a rate").message("k", 0.0) == "k=0.0 must be a rate > 0"
    assert Interval(0, 1, closed="left").message("k", 1.5) == "k=1.5 must be in [0, 1)"
    assert Interval(1, integer=True).message("k", 0) == "k=0 must be an integer >= 1"
    assert not Interval(1, integer=True).accepts(True) and not Interval(1, integer=True).accepts(2.0)
    assert not Interval(0, closed="neither").accepts(float("inf")) and Interval(1, closed="neither", finite=False).accepts(float("inf"))
    assert not Interval(0).accepts(float("nan"))


# --- every shipped option of every group composes, and states only what it changes ----------

GROUPS = sorted(path.name for path in CONF_DIR.iterdir() if path.is_dir())


def shipped_options() -> Iterator[Tuple[str, str]]:
    for group in GROUPS:
        for option in group_options(group):
            yield group, option


@pytest.mark.parametrize("group,option", list(shipped_options()))
def test_every_shipped_option_composes_against_the_schema(group: str, option: str, tmp_path: Path) -> None:
    overrides = [f"{group}={option}"]
    if (group, option) == ("dataset", "npz"):
        data = tmp_path / "mine.npz"
        labels = np.arange(4) % 2
        np.savez(data, x_train=np.zeros((4, 2)), y_train=labels, x_val=np.zeros((4, 2)), y_val=labels)
        overrides.append(f"dataset.path={data}")
    if (group, option) == ("dataset", "csv"):
        data = tmp_path / "mine.csv"
        data.write_text("x,label\n0.5,0\n1.5,1\n")
        overrides += [f"dataset.path={data}", "dataset.label=label"]
    if (group, option) == ("dataset", "images"):
        from image_folders import digit_images, write_folder

        write_folder(tmp_path / "images", *digit_images(count=20))
        overrides.append(f"dataset.directory={tmp_path / 'images'}")
    if (group, option) == ("dataset", "pipeline"):
        overrides.append("dataset.builder=examples.own_pipeline.tf_data_digits")
    study = compose_study(overrides)
    document = study.as_dict()
    for section, schema in (("study", StudyConfig), ("diagnosis", DiagnosisConfig), ("finder", FinderConfig), ("hpo", HpoConfig)):
        assert set(document[section]) == {item.name for item in dataclasses.fields(schema)}


def _option(group: str, option: str) -> Tuple[List[Any], dict]:
    """An option file's defaults list and the rest of its body."""
    body = yaml.safe_load((CONF_DIR / group / f"{option}.yaml").read_text()) or {}
    return body.pop("defaults", []), body


SCHEMA_GROUPS = {"diagnosis": DiagnosisConfig, "finder": FinderConfig, "hpo": HpoConfig}


@pytest.mark.parametrize("group,option", [(g, o) for g, o in shipped_options() if g in (*SCHEMA_GROUPS, "schedule", "study")])
def test_shipped_options_state_only_what_they_change(group: str, option: str) -> None:
    """A default lives in the schema: an option that repeats one would be a second source."""
    defaults_list, body = _option(group, option)
    if group == "schedule":
        # The option names its type's schema (which holds the type's defaults) and changes nothing.
        assert defaults_list == [f"/schedule/type/{option}@{option}"]
        assert body == {}
        return
    if group == "study":
        body = body.get("study", body)  # presets are global packages
        schema: Any = StudyConfig
    else:
        schema = SCHEMA_GROUPS[group]
    defaults = dataclasses.asdict(schema())
    repeated = {key for key, value in body.items() if key in defaults and defaults[key] == value and key != "name"}
    assert not repeated, f"conf/{group}/{option}.yaml repeats the defaults of {sorted(repeated)}"


@pytest.mark.parametrize(
    "full_key,expected",
    [
        ("study.epoch", "epochs"),
        ("study.grid.mod", "mode"),
        ("schedule.step", "every_epochs"),
        ("schedule.step.factr", "factor"),
        ("optimizer.momentum.nesterov", "initial_accumulator_value"),
        ("hpo.sampler", "samplers"),
    ],
)
def test_valid_keys_are_read_from_the_schema(full_key: str, expected: str) -> None:
    assert expected in valid_keys_at(full_key)


def test_free_form_options_have_no_key_list() -> None:
    assert valid_keys_at("model.hidden_unitz") == []
    assert valid_keys_at("nowhere.at.all") == []


def test_an_option_written_as_a_plain_mapping_still_composes_with_converted_values() -> None:
    """A user's option may state its type instead of naming the type's schema in a defaults list."""
    study = compose_study(["schedule=[constant]", "+schedule.mine.type=cosine", "+schedule.mine.alpha=0"])
    assert study.schedules["mine"] == {"type": "cosine", "alpha": 0.0}
    assert isinstance(study.schedules["mine"]["alpha"], float)


def test_a_schedule_option_shows_its_type_defaults_and_takes_overrides_without_plus() -> None:
    from pipeline.config.compose import compose_config

    cfg = compose_config(["schedule=[warmup_cosine,step]", "schedule.step.factor=0.3"])
    assert dict(cfg.schedule.warmup_cosine) == {"type": "warmup_cosine", **SCHEDULE_TYPES["warmup_cosine"]}
    assert cfg.schedule.step.factor == 0.3
    with pytest.raises(StudyConfigError, match=r"schedule.step.alpha.*Valid keys there: type, every_epochs, factor$"):
        compose_config(["schedule=[step]", "schedule.step.alpha=0.1"])


# --- cross-field checks: each named check, with an input that breaks it ---------------------

CROSS_CASES = {
    "gpu_model_needs_a_gpu": ("study", StudyConfig(gpu_model="a100"), "study.gpu_model='a100' needs study.gpus=1"),
    "grid_bounds_are_ordered": ("study", StudyConfig(grid=GridConfig(min=1.0, max=0.1)), "study.grid.min=1.0 must be smaller than study.grid.max=0.1"),
    "early_best_before_late_best": ("diagnosis", DiagnosisConfig(early_best=0.8), "diagnosis.early_best=0.8 must be smaller than diagnosis.late_best=0.75"),
    "finder_ramp_rises": ("finder", FinderConfig(start_lr=1.0, end_lr=0.1), "finder.start_lr=1.0 must be smaller than finder.end_lr=0.1"),
    "finder_leaves_points_to_suggest_from": ("finder", FinderConfig(steps=7), "finder.steps=7 leaves 2 points after fastai's crop of its 7 points"),
    "searches_have_pruners": ("hpo", HpoConfig(samplers=["tpe"], pruners=[]), "hpo.pruners is empty"),
    "search_bounds_are_ordered": ("hpo", HpoConfig(lr_min=1.0, lr_max=1.0), "hpo.lr_min=1.0 must be smaller than hpo.lr_max=1.0"),
    "confirm_seeds_are_fresh": (
        "study",
        StudyConfig(seeds=[0, 1], confirm=ConfirmConfig(seeds=[1, 2])),
        "study.confirm.seeds=[1, 2] reuses grid seed(s) [1] of study.seeds=[0, 1]",
    ),
    "batch_sizes_ask_a_question": (
        "study",
        StudyConfig(batch_size=64, batch_sizes=[64]),
        "study.batch_sizes=[64] holds no batch size but study.batch_size=64, the grid's own: add another, "
        "e.g. study.batch_sizes=[64,128]",
    ),
}


def test_every_cross_check_has_a_case() -> None:
    from pipeline.config.validation import CROSS_CHECKS

    assert {check.__name__ for checks in CROSS_CHECKS.values() for check in checks} == set(CROSS_CASES)


@pytest.mark.parametrize("check", list(CROSS_CASES))
def test_each_cross_check_names_both_keys(check: str) -> None:
    prefix, section, message = CROSS_CASES[check]
    with pytest.raises(StudyConfigError, match="^" + re.escape(message)):
        check_section(section, prefix)
