"""``results/<study>/config.yaml``: the resolved study, package versions and the command that
reproduces it."""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Sequence

from pipeline.config.compose import format_overrides
from pipeline.io import write_yaml_atomic

#: The packages whose versions a study records in its ``config.yaml``, in that order.
PACKAGES = ("snakemake", "hydra-core", "tensorflow", "keras", "numpy", "pandas", "seaborn", "matplotlib", "mnist1d", "scikit-learn")
#: The packages whose versions a training run records in its ``summary.json``: those that
#: compute its numbers.
TRAINING_PACKAGES = ("tensorflow", "keras", "numpy")


def reproduce_command(overrides: Sequence[str]) -> str:
    """The exact shell command that recomposes and reruns this study."""
    command = ["snakemake", "--cores", "all"]
    if overrides:
        command += ["--config", "overrides=" + format_overrides(overrides)]
    return shlex.join(command)


def package_versions(packages: Sequence[str] = PACKAGES) -> Dict[str, str]:
    """Python's version, then each package's installed version ("not installed" if missing),
    read from the installed distributions' metadata (nothing is imported)."""
    found = {"python": platform.python_version()}
    providers = None
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            # Installed under another distribution's name (tensorflow-cpu, tf-nightly, ...):
            # the distribution that provides the import package of that name.
            providers = metadata.packages_distributions() if providers is None else providers
            names = providers.get(package.replace("-", "_"), [])
            found[package] = metadata.version(names[0]) if names else "not installed"
    return found


def git_commit(directory: Path = Path(".")) -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


ORDER = ("study", "dataset", "model", "optimizer", "schedule", "rates", "overrides")


def study_document(study: Dict[str, Any]) -> Dict[str, Any]:
    """The study in a reading order, then how to reproduce it and with what."""
    ordered = {key: study[key] for key in ORDER if key in study}
    ordered.update({key: value for key, value in study.items() if key not in ordered})
    return {**ordered, "command": reproduce_command(study.get("overrides", [])), "versions": package_versions(), "git_commit": git_commit()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the resolved study config.")
    parser.add_argument("--study", required=True, help="the resolved study as JSON (Study.as_dict())")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    write_yaml_atomic(args.out, study_document(json.loads(args.study)))


if __name__ == "__main__":
    main()
