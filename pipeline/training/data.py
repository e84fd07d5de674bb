"""Datasets: builders selected by ``dataset._target_`` and the study's cached ``.npz`` file.

A builder returns a dict with ``x_train``, ``y_train``, ``x_val``, ``y_val`` (NumPy arrays;
integer class labels). The workflow calls it once per study and saves the arrays to
``results/<study>/data/<dataset>.npz``; every training job reads that file. A user's own
data plugs in through :func:`npz_file` (or any function of theirs with the same return).

Nothing here downloads: MNIST-1D is generated offline by the ``mnist1d`` package and the
digits ship with scikit-learn.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, Mapping, Union

import numpy as np

from pipeline.io import write_atomic

ARRAY_KEYS = ("x_train", "y_train", "x_val", "y_val")
Arrays = Dict[str, np.ndarray]


def mnist1d(num_samples: int = 5000, train_split: float = 0.8, seed: int = 42) -> Arrays:
    """MNIST-1D generated offline (``mnist1d.data.make_dataset``), never downloaded.

    Args:
        num_samples: examples generated in all (train + validation); the generator makes
            ``num_samples // 10`` per class, so use a multiple of 10.
        train_split: fraction used for training; the rest is the validation set.
        seed: the generator's seed (the dataset is a function of its settings).
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = int(num_samples)
    args.train_split = float(train_split)
    args.seed = int(seed)
    data = make_dataset(args)
    return _checked(
        {"x_train": data["x"], "y_train": data["y"], "x_val": data["x_test"], "y_val": data["y_test"]},
        source="mnist1d",
    )


def digits(val_fraction: float = 0.2, seed: int = 0) -> Arrays:
    """scikit-learn's bundled 8x8 digits, flattened to 64 features in [0, 1], stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < val_fraction < 1:
        raise ValueError(f"dataset.val_fraction must be in (0, 1), got {val_fraction!r}")
    bunch = load_digits()
    x = bunch.data.astype(np.float32) / 16.0
    x_train, x_val, y_train, y_val = train_test_split(
        x, bunch.target, test_size=val_fraction, random_state=seed, stratify=bunch.target
    )
    return _checked({"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val}, source="digits")


def npz_file(path: str) -> Arrays:
    """A user's own dataset: an ``.npz`` file with arrays x_train, y_train, x_val, y_val.

    Relative paths are taken from the directory Snakemake (or the run app) starts in.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"dataset.path={path!r}: no such file (expected an .npz with {', '.join(ARRAY_KEYS)})")
    with np.load(file) as archive:
        missing = [key for key in ARRAY_KEYS if key not in archive.files]
        if missing:
            raise ValueError(f"dataset.path={path!r} lacks array(s) {missing}; it has {archive.files}")
        return _checked({key: archive[key] for key in ARRAY_KEYS}, source=str(path))


def _checked(arrays: Mapping[str, Any], source: str) -> Arrays:
    out = {key: np.asarray(arrays[key]) for key in ARRAY_KEYS}
    out["x_train"] = out["x_train"].astype(np.float32)
    out["x_val"] = out["x_val"].astype(np.float32)
    for split in ("train", "val"):
        x, y = out[f"x_{split}"], out[f"y_{split}"]
        if len(x) != len(y):
            raise ValueError(f"{source}: x_{split} has {len(x)} rows but y_{split} has {len(y)}")
        if len(x) == 0:
            raise ValueError(f"{source}: the {split} split is empty")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{source}: y_{split} must be a 1-D array of integer class labels, got {y.dtype} {y.shape}")
        out[f"y_{split}"] = y.astype(np.int64)
    if out["x_train"].shape[1:] != out["x_val"].shape[1:]:
        raise ValueError(f"{source}: x_train rows {out['x_train'].shape[1:]} differ from x_val rows {out['x_val'].shape[1:]}")
    return out


def build_dataset(options: Mapping[str, Any]) -> Arrays:
    """Call the dataset option's ``_target_`` with its keyword arguments."""
    from hydra.utils import instantiate

    config = {key: value for key, value in options.items() if key != "name"}
    return _checked(instantiate(config, _convert_="all"), source=str(options.get("_target_")))


def save_npz(arrays: Mapping[str, np.ndarray], path: Union[str, Path]) -> None:
    """Write the arrays atomically (temporary file in the same folder, then rename)."""

    def write(temporary: Path) -> None:
        # Through a file handle: given a path, np.savez would append ".npz" to a name without it.
        with temporary.open("wb") as handle:
            np.savez(handle, **arrays)

    write_atomic(path, write)


def load_npz(path: Union[str, Path]) -> Arrays:
    with np.load(path) as archive:
        return _checked({key: archive[key] for key in ARRAY_KEYS}, source=str(path))


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """A short content hash of the four arrays. It goes into each run's configuration (and so
    its ``config_hash``): data that changed under the same options means retraining."""
    import hashlib

    digest = hashlib.sha256()
    for key in ARRAY_KEYS:
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def num_classes(arrays: Mapping[str, np.ndarray]) -> int:
    return int(max(arrays["y_train"].max(), arrays["y_val"].max())) + 1


def main(argv: list[str] | None = None) -> None:
    """``python -m pipeline.training.data --options '<dataset option as JSON>' --out <file>.npz``"""
    import json

    parser = argparse.ArgumentParser(description="Prepare a study's dataset file once.")
    parser.add_argument("--options", required=True, help="the validated dataset option, as JSON")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    options = json.loads(args.options)
    arrays = build_dataset(options)
    save_npz(arrays, args.out)
    print(
        f"dataset {options.get('name')}: {len(arrays['x_train'])} train, {len(arrays['x_val'])} val, "
        f"input shape {arrays['x_train'].shape[1:]}, {num_classes(arrays)} classes -> {args.out}"
    )


if __name__ == "__main__":
    main()
