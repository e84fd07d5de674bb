"""Atomic file writes: an interrupted job never leaves a file that looks complete."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Union

PathLike = Union[str, Path]


def write_atomic(path: PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary_path)`` then rename the temporary file onto ``path``.

    The temporary file lives in the same folder (a rename within one file system is atomic)
    and starts with a dot, so globs for results never see it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    try:
        write(Path(temporary))
        # mkstemp creates the file private (0600); give it the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path: PathLike, text: str) -> None:
    write_atomic(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_json_atomic(path: PathLike, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n")


def write_yaml_atomic(path: PathLike, data: Any) -> None:
    import yaml

    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
