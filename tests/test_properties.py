"""Property-based tests (Hypothesis) of the input surface, under the fixed profile of conftest.py.

- Override lists, generated from the real keys and group options, misspelt and invented keys,
  values of every type (numbers, NaN, booleans, unicode text, lists, nesting, null, path-like
  names), in Hydra's forms (``key=value``, ``+key=value``, ``~key``, a bare word), given to
  :func:`compose_study` as Snakemake gives them (a list, or one string): each either composes or
  raises :class:`StudyConfigError` whose message names a key, never another exception, and
  nothing is written.
- ``.npz`` files, generated with every array present or missing, extra arrays, dtypes of every
  kind, shapes and lengths that agree or not, NaN and infinity, labels negative, fractional, or a
  single class: composition and the dataset job's own check agree (both accept, or both refuse
  with a message naming the file and an array), and neither raises anything else.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipeline.config.compose import compose_study, group_options
from pipeline.config.schema import StudyConfigError

SECTIONS = ("study", "diagnosis", "finder", "hpo")
GROUPS = ("dataset", "model", "optimizer", "schedule")


def _flat(prefix: str, value: Any) -> List[str]:
    if isinstance(value, dict) and value:
        return [key for name, item in value.items() for key in _flat(f"{prefix}.{name}", item)]
    return [prefix]


DOCUMENT = compose_study().as_dict()
#: Every settable key of the default study (study.*, diagnosis.*, finder.*, hpo.*).
KEYS = sorted(key for section in SECTIONS for key in _flat(section, DOCUMENT[section]))
OPTIONS = {group: group_options(group) for group in GROUPS}
#: Words a message may name a key by: the study's dotted keys, the groups, the config key.
KEY_WORDS = {*KEYS, *GROUPS, "overrides", "dataset.path"}

identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)
keys = st.one_of(
    st.sampled_from(KEYS),
    st.builds(lambda key, typo: key[:-1] + typo, st.sampled_from(KEYS), st.sampled_from("xz_1")),  # misspelt
    st.builds(lambda section, name: f"{section}.{name}", st.sampled_from([*SECTIONS, *GROUPS]), identifiers),
    identifiers,
    st.text(min_size=1, max_size=12),  # anything at all
)
scalars = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["true", "false", "null", "nan", "inf", "-inf", "1e-3", "0", "-1", "''", '""']),
    st.sampled_from(["results/x", "../../etc", "~/data", "/tmp/a b", "C:\\data", "data/ü.npz", "a/../b"]),
    st.text(max_size=12),  # unicode, quotes, brackets, equals signs
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.dictionaries(identifiers, inner, max_size=3).map(lambda items: "{" + ",".join(f"{k}:{v}" for k, v in items.items()) + "}"),
    ),
    max_leaves=6,
)
group_choice = st.sampled_from(GROUPS).flatmap(
    lambda group: st.one_of(
        st.sampled_from(OPTIONS[group]).map(lambda option: f"{group}={option}"),
        identifiers.map(lambda option: f"{group}={option}"),
        st.lists(st.sampled_from(OPTIONS[group]), min_size=1, max_size=3).map(lambda chosen: f"{group}=[{','.join(chosen)}]"),
    )
)
overrides = st.lists(
    st.one_of(
        st.builds(lambda key, value: f"{key}={value}", keys, values),
        st.builds(lambda key, value: f"+{key}={value}", keys, values),
        keys.map(lambda key: f"~{key}"),
        keys,  # a bare word, no '='
        group_choice,
    ),
    max_size=4,
)


def names_a_key(message: str, given: List[str]) -> bool:
    """Whether an error message names a key: a dotted key of the study's, a config group, the
    ``overrides`` config key, or a key the user typed. The override list a composition error
    echoes does not count (it would name every typed key whatever the error)."""
    said = re.sub(r"from overrides \[.*\]:", "from overrides:", message, count=1, flags=re.DOTALL)
    typed = {item.lstrip("+~").split("=", 1)[0] for item in given}
    words = set(re.findall(r"[\w.]+", said))
    return bool(words & KEY_WORDS) or any(key.strip() and key in said for key in typed)


@pytest.fixture()
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@given(items=overrides, as_string=st.booleans())
def test_any_override_list_composes_or_names_a_key(empty_cwd: Path, items: List[str], as_string: bool) -> None:
    given_value: Any = " ".join(shlex.quote(item) for item in items) if as_string else items
    try:
        compose_study(given_value)
    except StudyConfigError as error:
        message = str(error)
        assert message and names_a_key(message, items), message
    assert list(empty_cwd.iterdir()) == [], "composing wrote files"


@given(text=st.text(max_size=40))
def test_any_string_snakemake_may_pass_composes_or_names_a_key(empty_cwd: Path, text: str) -> None:
    # --config overrides="..." arrives as a string (or a YAML list when it starts with '[').
    try:
        compose_study(text)
    except StudyConfigError as error:
        assert names_a_key(str(error), shlex.split(text) if _splits(text) else [text]), str(error)
    assert list(empty_cwd.iterdir()) == []


def _splits(text: str) -> bool:
    try:
        shlex.split(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------
# Generated .npz files
# --------------------------------------------------------------------------------------

ARRAYS = ("x_train", "y_train", "x_val", "y_val")
dtypes = st.sampled_from(["float32", "float64", "int64", "int8", "uint8", "bool", "complex64", "U3", "object", "float16"])


@st.composite
def npz_contents(draw: Any) -> Dict[str, np.ndarray]:
    rows = {"train": draw(st.integers(0, 12)), "val": draw(st.integers(0, 6))}
    features = draw(st.lists(st.integers(0, 3), min_size=0, max_size=2))
    classes = draw(st.integers(1, 4))
    content: Dict[str, np.ndarray] = {}
    for split in ("train", "val"):
        count = rows[split] + draw(st.sampled_from([0, 0, 0, 1, -1])) * (rows[split] > 0)
        x_shape = (rows[split], *draw(st.sampled_from([features, features, [2], []])))
        x = np.arange(int(np.prod(x_shape)), dtype=float).reshape(x_shape) / 7.0
        if x.size and draw(st.booleans()):
            x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        y = np.arange(max(count, 0)) % classes
        if y.size and draw(st.integers(0, 3)) == 0:
            y = y - draw(st.sampled_from([1, 0.5]))
        dtype = draw(dtypes)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf cast to integers: any value
            content[f"x_{split}"] = x.astype(dtype) if dtype not in ("U3", "object") else x.astype(str).astype(dtype)
            content[f"y_{split}"] = y.astype(draw(st.sampled_from(["int64", "int32", "float64", "uint8", "bool", "int64"])))
    for name in draw(st.lists(st.sampled_from(ARRAYS), max_size=2, unique=True)):
        del content[name]
    if draw(st.booleans()):
        content["extra"] = np.zeros(3)
    return content


@settings(max_examples=40)  # a composition and a load per example
@given(content=npz_contents(), compressed=st.booleans())
def test_any_npz_is_accepted_or_refused_alike_at_composition_and_in_the_dataset_job(
    tmp_path_factory: pytest.TempPathFactory, content: Dict[str, np.ndarray], compressed: bool
) -> None:
    from pipeline.training.data import npz_file

    folder = tmp_path_factory.mktemp("npz")
    path = folder / "generated.npz"
    (np.savez_compressed if compressed else np.savez)(path, **content)
    try:
        compose_study(f"dataset=npz dataset.path={path} dataset.name=generated")
        composed = None
    except StudyConfigError as error:
        composed = str(error)
        assert composed.startswith(f"dataset.path='{path}'"), composed
    try:
        loaded = npz_file(str(path))
        job = None
    except ValueError as error:
        job = str(error)
    assert (composed is None) == (job is None), f"composition: {composed!r}; the dataset job: {job!r}"
    if composed is not None:
        assert any(name in composed for name in (*ARRAYS, "archive", "pickled")), composed
    else:
        assert loaded["x_train"].dtype == np.float32 and loaded["y_train"].dtype == np.int64
    assert sorted(os.listdir(folder)) == ["generated.npz"]


@settings(max_examples=30)
@given(data=st.binary(max_size=200))
def test_any_bytes_as_an_npz_are_refused_by_name(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    assume(not data.startswith(b"PK"))
    path = tmp_path_factory.mktemp("bytes") / "noise.npz"
    path.write_bytes(data)
    with pytest.raises(StudyConfigError, match=rf"^dataset.path='{re.escape(str(path))}'"):
        compose_study(f"dataset=npz dataset.path={path} dataset.name=noise")
