"""The package's architecture: the import-linter contracts in pyproject.toml.

A stage imports only the stages below it, and the light stages never import TensorFlow, Keras
or Optuna (not even inside a function), so the Snakefile and the light jobs start in a second.
The contracts replace run-time checks of ``sys.modules`` in a fresh process, module by module.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = REPO / "pyproject.toml"


def test_import_contracts_hold() -> None:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    result = subprocess.run([command], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    contracts = PYPROJECT.read_text().count("[[tool.importlinter.contracts]]")
    assert f"Contracts: {contracts} kept, 0 broken." in result.stdout


def imports_of(tree: ast.Module, module: str) -> List[ast.stmt]:
    """The statements of ``tree`` that import ``module`` (or a module inside it)."""
    found: List[ast.stmt] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        if any(name == module or name.startswith(module + ".") for name in names):
            found.append(node)
    return found


def test_each_ignored_import_runs_only_inside_a_function() -> None:
    """An import the contracts ignore (``ignore_imports``) must not run when its module is
    imported: import-linter sees the statement, not when it runs, so this checks the rest."""
    ignored = re.findall(r'"(pipeline[\w.]*) -> (pipeline[\w.]*)"', PYPROJECT.read_text())
    assert ignored, "no ignored import found in pyproject.toml"
    for importer, imported in ignored:
        tree = ast.parse((REPO / f"{importer.replace('.', '/')}.py").read_text())
        in_functions = {
            id(node)
            for function in ast.walk(tree)
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
            for node in ast.walk(function)
        }
        statements = imports_of(tree, imported)
        assert statements, f"{importer} no longer imports {imported}: drop the ignore"
        for statement in statements:
            assert id(statement) in in_functions, f"{importer}, line {statement.lineno}: {imported} imported at module level"
