"""Shared fixtures: a composed study, its dataset, and the dataset's file.

A test module chooses its study with a module-level ``STUDY`` string of Hydra overrides (the
smoke study when it has none); the fixtures are module-scoped, so each module composes its
study and builds its data once. Synthetic files (run folders, tables) come from
:mod:`factories`.

Marks (registered in ``pyproject.toml``, ``--strict-markers``): ``tf`` on every test that imports
TensorFlow or Keras or starts a process that does; ``slow`` on the end-to-end tests;
``slurm`` on the live SLURM tests. The fast loop is ``python -m pytest -m "not slow and not tf"``.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from pipeline.config.compose import compose_study
from pipeline.config.schema import Study
from pipeline.training.data import build_dataset, save_npz

# Hypothesis (tests/test_properties.py): one fixed profile, here and in CI: a bounded number of
# examples, drawn deterministically (the same examples on every run), no example database
# written into the checkout; HYPOTHESIS_PROFILE=explore draws new examples, more of them.
settings.register_profile(
    "lrstudy",
    max_examples=80,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("explore", parent=settings.get_profile("lrstudy"), max_examples=2000, derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "lrstudy"))

#: The study of a test module without a ``STUDY`` of its own.
SMOKE = "study=smoke"


def marked_tf_as_a_whole(path: Path) -> bool:
    """Whether the test module sets ``pytestmark`` to ``pytest.mark.tf`` (alone or in a list)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(target, ast.Name) and target.id == "pytestmark" for target in node.targets):
            marks = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            return any(ast.unparse(mark) == "pytest.mark.tf" for mark in marks)
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> Optional[bool]:
    """Leave out, unimported, a module marked ``tf`` as a whole when ``-m`` deselects ``tf``.

    Importing such a module imports Keras (seconds) only for its tests to be deselected. The
    rule applies only where that is certain: ``-m`` is a conjunction (no ``or``, no
    parentheses) with ``not tf`` as one of its terms.
    """
    expression = config.getoption("markexpr") or ""
    if "(" in expression or "or" in expression.split():
        return None
    if "not tf" not in (term.strip() for term in expression.split(" and ")):
        return None
    if collection_path.suffix == ".py" and collection_path.name.startswith("test_") and marked_tf_as_a_whole(collection_path):
        return True
    return None


#: The tables of the smoke study as the uninterrupted workflow left them (see :func:`smoke`).
SMOKE_TABLES = ("runs.csv", "curves.csv", "best.csv", "confirm.csv")


@pytest.fixture(scope="session")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The smoke study run once for the session through Snakemake: (workdir, results folder).

    Tests may change the results afterwards (force jobs, widen the grid); the tables as the
    uninterrupted run wrote them are copied to ``<workdir>/reference/`` first."""
    import shutil

    from factories import make_workdir, snakemake

    workdir = make_workdir(tmp_path_factory.mktemp("smoke"))
    dry = snakemake(workdir, "-n", "--cores", "2", "--config", "overrides=study=smoke")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert not (workdir / "results").exists(), "a dry run must not write anything"
    result = snakemake(workdir, "--cores", "2", "--config", "overrides=study=smoke")
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    results = workdir / "results" / "smoke"
    (workdir / "reference").mkdir()
    for name in SMOKE_TABLES:
        shutil.copy2(results / name, workdir / "reference" / name)
    return workdir, results


@pytest.fixture(scope="module")
def study(request: pytest.FixtureRequest) -> Study:
    """The study composed from the test module's ``STUDY`` overrides (default: the smoke study)."""
    return compose_study(getattr(request.module, "STUDY", SMOKE))


@pytest.fixture(scope="module")
def arrays(study: Study) -> Dict[str, np.ndarray]:
    """The study's dataset in memory, TensorFlow set up first (one thread, deterministic ops).

    TensorFlow reads its thread counts when it is first imported, so it is configured before
    any test of the module trains.
    """
    from pipeline.training.device import configure_tensorflow

    configure_tensorflow(threads=1)
    return build_dataset(study.dataset)


@pytest.fixture(scope="module")
def data_file(study: Study, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The study's dataset written as the dataset rule writes it, for job subprocesses."""
    path = tmp_path_factory.mktemp("data") / "dataset.npz"
    save_npz(build_dataset(study.dataset), path)
    return path
