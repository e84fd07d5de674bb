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
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

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


def _real(dtype: np.dtype) -> bool:
    """Features must be real numbers (booleans count as 0 and 1)."""
    return bool(np.issubdtype(dtype, np.bool_) or (np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating)))


def _open_npz(path: str) -> Any:
    """``np.load`` of a user's file, with the errors a user can act on (no pickled objects)."""
    import zipfile

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"dataset.path={path!r}: no such file (expected an .npz with {', '.join(ARRAY_KEYS)})")
    if not zipfile.is_zipfile(file):
        with file.open("rb") as handle:
            single = handle.read(6) == b"\x93NUMPY"
        what = "it holds one array (np.save)" if single else "not a zip of .npy arrays (np.savez writes one)"
        raise ValueError(f"dataset.path={path!r} is not a .npz archive: {what}; expected arrays {', '.join(ARRAY_KEYS)}")
    try:
        archive = np.load(file, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"dataset.path={path!r} is not a readable .npz archive ({error})") from error
    missing = [key for key in ARRAY_KEYS if key not in archive.files]
    if missing:
        archive.close()
        raise ValueError(f"dataset.path={path!r} lacks array(s) {missing}; it has {archive.files}")
    return archive


def npz_file(path: str) -> Arrays:
    """A user's own dataset: an ``.npz`` file with arrays x_train, y_train, x_val, y_val.

    Relative paths are taken from the directory Snakemake (or the run app) starts in.
    """
    with _open_npz(path) as archive:
        try:
            arrays = {key: archive[key] for key in ARRAY_KEYS}
        except ValueError as error:  # an object array: pickled data is refused
            raise ValueError(f"dataset.path={path!r} holds pickled (object) arrays: save plain numeric arrays ({error})") from error
        return _checked(arrays, source=f"dataset.path={path!r}")


#: A user's .npz up to this size is read in full at composition, so that its content (non-finite
#: features) is checked before any job; a larger one is checked by the dataset job.
CHECK_CONTENT_BYTES = 256 * 2**20


def check_npz_file(path: str) -> None:
    """The composition-time check of :func:`npz_file`: keys, lengths, shapes and dtypes read
    lazily from the archive's headers, the labels (small) read in full, and the features' content
    when the arrays take at most :data:`CHECK_CONTENT_BYTES`; raises ValueError naming the file
    and the array. The dataset job checks the content of a larger file."""
    source = f"dataset.path={path!r}"
    with _open_npz(path) as archive:
        shapes, dtypes = {}, {}
        for key in ARRAY_KEYS:
            with archive.zip.open(f"{key}.npy") as handle:
                version = np.lib.format.read_magic(handle)
                if version == (1, 0):
                    shapes[key], _, dtypes[key] = np.lib.format.read_array_header_1_0(handle)
                elif version == (2, 0):
                    shapes[key], _, dtypes[key] = np.lib.format.read_array_header_2_0(handle)
                else:  # a header format without a public reader: read the array
                    array = archive[key]
                    shapes[key], dtypes[key] = array.shape, array.dtype
            if dtypes[key].hasobject:
                raise ValueError(f"{source}: {key} holds pickled (object) data; save plain numeric arrays")
        for split in ("train", "val"):
            x_shape, y_shape = shapes[f"x_{split}"], shapes[f"y_{split}"]
            if len(x_shape) == 0 or len(y_shape) != 1 or x_shape[0] != y_shape[0]:
                raise ValueError(
                    f"{source}: x_{split} has shape {x_shape} and y_{split} {y_shape}; they need one row per "
                    "example and y a 1-D array of labels"
                )
            if not _real(dtypes[f"x_{split}"]):
                raise ValueError(f"{source}: x_{split} has dtype {dtypes[f'x_{split}']}; features must be real numbers")
        if shapes["x_train"][1:] != shapes["x_val"][1:]:
            raise ValueError(f"{source}: x_train rows {shapes['x_train'][1:]} differ from x_val rows {shapes['x_val'][1:]}")
        check_labels({key: archive[key] for key in ("y_train", "y_val")}, source)
        size = sum(int(np.prod(shapes[key])) * dtypes[key].itemsize for key in ARRAY_KEYS)
        if size <= CHECK_CONTENT_BYTES:
            # Small enough to read now: non-finite features stop the study before any job.
            _checked({key: archive[key] for key in ARRAY_KEYS}, source)


def _table_columns(path: str, key: str) -> List[str]:
    import pandas as pd

    if not Path(path).is_file():
        raise FileNotFoundError(f"dataset.{key}={path!r}: no such file (expected a CSV table with a header row)")
    try:
        return [str(column) for column in pd.read_csv(path, nrows=0).columns]
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"dataset.{key}={path!r} is not a CSV table with a header row ({error})") from error


def _feature_columns(columns: Sequence[str], label: str, features: Optional[Sequence[str]], key: str, path: str) -> List[str]:
    if label not in columns:
        raise ValueError(f"dataset.label={label!r} is no column of dataset.{key}={path!r}; its columns: {list(columns)}")
    if features is None:
        return [column for column in columns if column != label]
    missing = [column for column in features if column not in columns]
    if missing:
        raise ValueError(f"dataset.features names {missing}, no column(s) of dataset.{key}={path!r}; its columns: {list(columns)}")
    if label in features:
        raise ValueError(f"dataset.features holds the label column {label!r}")
    return list(features)


def check_csv_table(path: str, label: str, val_path: Optional[str] = None, features: Optional[Sequence[str]] = None, **_: Any) -> None:
    """The composition-time check of :func:`csv_table`: the files exist and their header rows
    hold the label and feature columns (read from the header alone); the dataset job checks the
    content."""
    if not isinstance(label, str) or not label:
        raise ValueError(f"dataset.label must name the label column, got {label!r}")
    columns = _feature_columns(_table_columns(path, "path"), label, features, "path", path)
    if val_path is not None:
        _feature_columns(_table_columns(val_path, "val_path"), label, columns, "val_path", val_path)


def _read_table(path: str, label: str, columns: Sequence[str], key: str) -> tuple:
    """One table's features (float32) and raw labels, every feature column numeric and finite."""
    import pandas as pd

    table = pd.read_csv(path)
    source = f"dataset.{key}={path!r}"
    if table.empty:
        raise ValueError(f"{source}: the table has no rows")
    text = [column for column in columns if not pd.api.types.is_numeric_dtype(table[column])]  # booleans are 0 and 1
    if text:
        raise ValueError(
            f"{source}: feature column(s) {text} are not numeric (e.g. {table[text[0]].iloc[0]!r}); encode them as "
            "numbers, or leave them out with dataset.features=[...]"
        )
    values = table[list(columns)].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        counts = {column: int(count) for column, count in zip(columns, bad.sum(axis=0)) if count}
        raise ValueError(f"{source}: non-finite values (empty, NaN or inf) in feature column(s) {counts}; clean or impute them first")
    labels = table[label]
    if labels.isna().any():
        raise ValueError(f"{source}: {int(labels.isna().sum())} row(s) have no label in column {label!r}")
    return values.astype(np.float32), labels.to_numpy()


def split_rows(labels: np.ndarray, val_fraction: float, seed: int) -> tuple:
    """The training and validation rows of a seeded split (scikit-learn's ``train_test_split``),
    stratified by label where it can be: every class has two rows or more and each side has
    room for every class; otherwise a plain seeded split."""
    from sklearn.model_selection import train_test_split

    if not 0 < val_fraction < 1:
        raise ValueError(f"dataset.val_fraction must be in (0, 1), got {val_fraction!r}")
    rows = np.arange(len(labels))
    _, counts = np.unique(np.asarray(labels).astype(str), return_counts=True)
    val_count = int(np.ceil(val_fraction * len(rows)))
    fits = counts.min() >= 2 and min(val_count, len(rows) - val_count) >= len(counts)
    train_rows, val_rows = train_test_split(rows, test_size=val_fraction, random_state=seed, stratify=labels if fits else None)
    return train_rows, val_rows


def _integral(labels: np.ndarray) -> np.ndarray:
    """Float labels that are whole numbers (pandas reads ``1.0``) as integers; others as they are."""
    if labels.dtype.kind == "f" and np.isfinite(labels).all() and (labels == np.round(labels)).all():
        return labels.astype(np.int64)
    return labels


def csv_table(
    path: str,
    label: str,
    val_path: Optional[str] = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    features: Optional[Sequence[str]] = None,
    standardize: bool = True,
) -> Arrays:
    """A user's table: a CSV file with a header row, one row per example.

    Args:
        path: The table (the training table when ``val_path`` is given).
        label: The label column: integer class indices in ``[0, classes)``, or class names
            (text), numbered in sorted order (the dataset log prints the numbering).
        val_path: A validation table with the same columns; without it, a split of ``path``.
        val_fraction: The validation share of the seeded split (stratified by label where every
            class has at least two rows).
        seed: The split's seed.
        features: The feature columns; default every column but the label. Each must be
            numeric and finite: text columns are refused by name (encode them first).
        standardize: Scale each feature to mean 0 and standard deviation 1 with the training
            split's statistics alone (a constant column is only centred), so that nothing of the
            validation split leaks into training.
    """
    check_csv_table(path, label, val_path, features)
    columns = _feature_columns(_table_columns(path, "path"), label, features, "path", path)
    x, y = _read_table(path, label, columns, "path")
    if val_path is not None:
        x_val, y_val = _read_table(val_path, label, columns, "val_path")
        x_train, y_train = x, y
    else:
        train_rows, val_rows = split_rows(y, val_fraction, seed)
        x_train, x_val, y_train, y_val = x[train_rows], x[val_rows], y[train_rows], y[val_rows]
    y_train, y_val = _integral(y_train), _integral(y_val)
    if y_train.dtype.kind in "OUS" or y_val.dtype.kind in "OUS":
        names = sorted({str(value) for value in y_train})
        unknown = sorted({str(value) for value in y_val} - set(names))
        if unknown:
            raise ValueError(f"dataset.label={label!r}: validation class(es) {unknown} never occur in training; its classes: {names}")
        index = {name: number for number, name in enumerate(names)}
        y_train = np.array([index[str(value)] for value in y_train], dtype=np.int64)
        y_val = np.array([index[str(value)] for value in y_val], dtype=np.int64)
        print(f"dataset.label={label!r}: classes {', '.join(f'{number}={name}' for name, number in index.items())}")
    if standardize:
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std = np.where(std > 0, std, 1.0).astype(np.float32)
        x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    source = f"dataset.path={path!r}" + (f" and dataset.val_path={val_path!r}" if val_path else "")
    return _checked({"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val}, source=source)


def dataset_files(options: Mapping[str, Any]) -> List[str]:
    """The user's files a file dataset reads (``path``, ``val_path``): the dataset rule's inputs,
    so that a changed file rebuilds the data (and its digest retrains what it affects)."""
    if str(options.get("_target_")) not in FILE_DATASETS:
        return []
    return [str(options[key]) for key in ("path", "val_path") if options.get(key) is not None]


def check_labels(labels: Mapping[str, np.ndarray], source: str) -> int:
    """Labels must be integers in ``[0, classes)`` with at least two classes in training;
    returns the number of classes (``max + 1``). Raises ValueError naming the array, how many
    labels are wrong and the first of them."""
    for key, values in labels.items():
        values = np.asarray(values)
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
            raise ValueError(
                f"{source}: {key} must be a 1-D array of integer class labels in [0, classes), got {values.dtype} {values.shape}"
            )
        if len(values) == 0:
            raise ValueError(f"{source}: {key} is empty: the {key.removeprefix('y_')} split has no examples")
        negative = values < 0
        if negative.any():
            raise ValueError(
                f"{source}: {key} holds {int(negative.sum())} negative label(s) (the first: {int(values[negative][0])}); "
                "labels must be integer class indices in [0, classes)"
            )
    train = np.asarray(labels["y_train"]).astype(np.int64)
    classes = int(max(int(np.asarray(values).max()) for values in labels.values())) + 1
    if len(np.unique(train)) < 2:
        raise ValueError(f"{source}: y_train holds a single class ({int(train[0])}); a classifier needs at least two")
    return classes


def _checked(arrays: Mapping[str, Any], source: str) -> Arrays:
    out = {key: np.asarray(arrays[key]) for key in ARRAY_KEYS}
    for split in ("train", "val"):
        x, y = out[f"x_{split}"], out[f"y_{split}"]
        if len(x) != len(y):
            raise ValueError(f"{source}: x_{split} has {len(x)} rows but y_{split} has {len(y)}")
        if len(x) == 0:
            raise ValueError(f"{source}: the {split} split is empty")
        if not _real(x.dtype):
            raise ValueError(f"{source}: x_{split} has dtype {x.dtype}; features must be real numbers")
        features = x.astype(np.float32)
        finite = np.isfinite(features)
        if not finite.all():
            flat = finite.reshape(len(features), -1)
            rows = int((~flat.all(axis=1)).sum())
            columns = np.flatnonzero(~flat.all(axis=0))
            where = f"feature column(s) {columns[:5].tolist()}{' ...' if len(columns) > 5 else ''}"
            raise ValueError(
                f"{source}: x_{split} holds {int((~finite).sum())} non-finite value(s) (NaN or inf) in {rows} row(s), "
                f"{where}; clean or impute them first"
            )
        out[f"x_{split}"] = features
    check_labels({"y_train": out["y_train"], "y_val": out["y_val"]}, source)
    for split in ("train", "val"):
        out[f"y_{split}"] = out[f"y_{split}"].astype(np.int64)
    if out["x_train"].shape[1:] != out["x_val"].shape[1:]:
        raise ValueError(f"{source}: x_train rows {out['x_train'].shape[1:]} differ from x_val rows {out['x_val'].shape[1:]}")
    return out


# Each file dataset's cheap check (headers, lazy loads), which the study's validation runs before
# any job (pipeline.config.validation reads a builder's ``composition_check``).
npz_file.composition_check = check_npz_file  # type: ignore[attr-defined]
csv_table.composition_check = check_csv_table  # type: ignore[attr-defined]


def dataset_listing(options: Mapping[str, Any]) -> str:
    """For an image folder, a cheap digest of its listing (a parameter of the dataset rule, so
    that an added, removed or rewritten file rebuilds the manifest); "" for other datasets."""
    if str(options.get("_target_")) != "pipeline.training.images.image_folder":
        return ""
    from pipeline.training.images import listing_digest

    return listing_digest(**{key: value for key, value in options.items() if key not in ("_target_", "name")})


#: The builders that read a user's files (``path``, ``val_path``).
FILE_DATASETS = ("pipeline.training.data.npz_file", "pipeline.training.data.csv_table")


def build_dataset(options: Mapping[str, Any]) -> Arrays:
    """Call the dataset option's ``_target_`` with its keyword arguments."""
    from hydra.utils import instantiate

    config = {key: value for key, value in options.items() if key != "name"}
    built = instantiate(config, _convert_="all")
    if "paths_train" in built or "pipeline" in built:  # a manifest (an image folder, a user pipeline): no arrays
        return built
    return _checked(built, source=str(options.get("_target_")))


def save_npz(arrays: Mapping[str, np.ndarray], path: Union[str, Path]) -> None:
    """Write the arrays atomically (temporary file in the same folder, then rename)."""

    def write(temporary: Path) -> None:
        # Through a file handle: given a path, np.savez would append ".npz" to a name without it.
        with temporary.open("wb") as handle:
            np.savez(handle, **arrays)

    write_atomic(path, write)


def load_npz(path: Union[str, Path]) -> Arrays:
    """The study's data file: the four arrays, or, for an image folder's manifest, the labels
    and :class:`~pipeline.training.images.ImageFiles` that stream the images
    (:func:`pipeline.training.images.load_manifest`)."""
    with np.load(path) as archive:
        if "paths_train" in archive.files or "pipeline" in archive.files:
            return loaded({key: archive[key] for key in archive.files})
        return _checked({key: archive[key] for key in ARRAY_KEYS}, source=str(path))


def loaded(built: Mapping[str, Any]) -> Arrays:
    """What a training job trains on, from what the dataset's builder returned: the arrays as
    they are; an image folder's manifest as :class:`~pipeline.training.images.ImageFiles`; a
    user pipeline's manifest as :class:`~pipeline.training.pipelines.PipelineData`."""
    if "paths_train" in built:
        from pipeline.training.images import load_manifest

        return load_manifest(built)
    if "pipeline" in built:
        from pipeline.training.pipelines import load_pipeline

        return load_pipeline(built)
    return dict(built)


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """A short content hash of the four arrays. It goes into each run's configuration (and so
    its ``config_hash``): data that changed under the same options means retraining."""
    import hashlib

    if "digest" in arrays:  # streamed data: the digest its manifest was written with
        return str(arrays["digest"])
    digest = hashlib.sha256()
    for key in ARRAY_KEYS:
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def num_classes(arrays: Mapping[str, Any]) -> int:
    if arrays.get("num_classes") is not None:  # a user's pipeline: counted by the dataset job
        return int(arrays["num_classes"])
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
    if "pipeline" in arrays:
        print(
            f"dataset {options.get('name')}: a user pipeline, {int(arrays['count_train'])} train, {int(arrays['count_val'])} val "
            f"examples of shape {tuple(arrays['input_shape'].tolist())}, {int(arrays['num_classes'])} classes, streamed in its "
            f"own order, digest {arrays['digest']} -> {args.out}"
        )
        return
    if "paths_train" in arrays:
        print(
            f"dataset {options.get('name')}: {len(arrays['paths_train'])} train, {len(arrays['paths_val'])} val images, "
            f"{len(arrays['classes'])} classes ({', '.join(map(str, arrays['classes']))}), streamed from disk, "
            f"digest {arrays['digest']} -> {args.out}"
        )
        return
    print(
        f"dataset {options.get('name')}: {len(arrays['x_train'])} train, {len(arrays['x_val'])} val, "
        f"input shape {arrays['x_train'].shape[1:]}, {num_classes(arrays)} classes -> {args.out}"
    )


if __name__ == "__main__":
    main()
