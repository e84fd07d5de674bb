"""Image folders (``dataset=images``): one subfolder per class, streamed from disk, never loaded
into memory.

The dataset job (:func:`image_folder`) lists the files, splits them (an explicit validation
folder, or a seeded stratified split), checks that every image can be read (naming the file
that cannot) and writes a *manifest* to the study's data file instead of arrays: the file paths,
their labels, the class names, the image settings and a content digest. A training job loads
the manifest (:func:`pipeline.training.data.load_npz`) and gets :class:`ImageFiles` in place of
``x_train`` and ``x_val``: an array-like of decoded images that reads only the rows it is
asked for. Both engines take their batches through :func:`gather_rows`, which decodes each
batch's files inside the TensorFlow program (``tf.io.decode_image``, a bilinear resize to
``image_size``, float32, times ``rescale``), so an epoch's batches are still the
``(seed, epoch)`` permutation of the examples and a resumed run sees the same batches.

The digest (:func:`folder_digest`): SHA-256 over every file's path relative to its folder and
its size, and over the content of every file when they take at most
:data:`FULL_DIGEST_BYTES` together; above that, over the content of a seeded sample of
:data:`DIGEST_SAMPLE` files (an edit of a file outside the sample that keeps its size goes
unseen: delete the study's data file to force a rebuild). It goes into every run's config, so
changed data retrains what it affects.

TensorFlow is imported inside the functions that decode; listing and checking a folder needs
only Pillow.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

#: The image files a class folder may hold (Keras' ``image_dataset_from_directory`` formats).
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
#: Colour modes and their channels (Keras' names).
COLOR_MODES: Dict[str, int] = {"grayscale": 1, "rgb": 3, "rgba": 4}
#: Files of a folder that together take at most this many bytes are hashed whole.
FULL_DIGEST_BYTES = 256 * 2**20
#: Above it, the content of this many files, drawn with a fixed seed, is hashed.
DIGEST_SAMPLE = 1024


def class_files(directory: str, key: str) -> Dict[str, List[str]]:
    """The image files of each class folder of ``directory``, sorted; raises ValueError naming
    the folder for a missing folder, fewer than two classes or an empty class."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset.{key}={directory!r}: no such folder (expected one subfolder per class)")
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if len(classes) < 2:
        raise ValueError(
            f"dataset.{key}={directory!r} holds {len(classes)} class folder(s) {classes}; a classifier needs at least two "
            "(one subfolder of images per class)"
        )
    files = {}
    for name in classes:
        found = sorted(
            str(Path(dirpath, filename).relative_to(root))
            for dirpath, _, filenames in os.walk(root / name)
            for filename in filenames
            if filename.lower().endswith(IMAGE_SUFFIXES)
        )
        if not found:
            raise ValueError(
                f"dataset.{key}={directory!r}: class folder {name!r} holds no image ({', '.join(IMAGE_SUFFIXES)})"
            )
        files[name] = found
    return files


def _check_settings(image_size: Sequence[int], color_mode: str, val_fraction: float) -> None:
    if len(image_size) != 2 or any(int(side) < 1 for side in image_size):
        raise ValueError(f"dataset.image_size={list(image_size)!r} must be [height, width], both >= 1")
    if color_mode not in COLOR_MODES:
        raise ValueError(f"dataset.color_mode={color_mode!r}: valid: {', '.join(COLOR_MODES)}")
    if not 0 < float(val_fraction) < 1:
        raise ValueError(f"dataset.val_fraction must be in (0, 1), got {val_fraction!r}")


def check_image_folder(
    directory: str,
    val_directory: Optional[str] = None,
    image_size: Sequence[int] = (64, 64),
    color_mode: str = "rgb",
    val_fraction: float = 0.2,
    **_: Any,
) -> None:
    """The composition-time check of :func:`image_folder`: the folders, their classes (at least
    two, none empty, the validation folder's among the training folder's) and the settings,
    from the folder listing alone."""
    _check_settings(image_size, color_mode, val_fraction)
    classes = class_files(directory, "directory")
    if val_directory is not None:
        unknown = sorted(set(class_files(val_directory, "val_directory")) - set(classes))
        if unknown:
            raise ValueError(
                f"dataset.val_directory={val_directory!r} has class folder(s) {unknown} that dataset.directory="
                f"{directory!r} lacks; its classes: {sorted(classes)}"
            )


def listing_digest(directory: str, val_directory: Optional[str] = None, **_: Any) -> str:
    """A cheap digest of the folders' listing (paths, sizes, modification times): a rule
    parameter, so that Snakemake reruns the dataset job when a file is added, removed or written."""
    digest = hashlib.sha256()
    for folder in (directory, val_directory):
        if folder is None or not Path(folder).is_dir():
            continue
        for dirpath, _, filenames in sorted(os.walk(folder)):
            for filename in sorted(filenames):
                stat = os.stat(Path(dirpath, filename))
                digest.update(f"{Path(dirpath, filename)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def folder_digest(paths: Sequence[str]) -> str:
    """The content digest of the image files (see the module doc)."""
    sizes = [os.path.getsize(path) for path in paths]
    digest = hashlib.sha256()
    for path, size in zip(paths, sizes):
        digest.update(f"{path}:{size}\n".encode())
    hashed = range(len(paths))
    if sum(sizes) > FULL_DIGEST_BYTES:
        hashed = sorted(np.random.default_rng(0).choice(len(paths), size=min(DIGEST_SAMPLE, len(paths)), replace=False))
    for index in hashed:
        digest.update(Path(paths[index]).read_bytes())
    return digest.hexdigest()[:16]


def _unreadable(paths: Sequence[str]) -> None:
    """Raise ValueError naming the first file Pillow cannot read as an image."""
    from PIL import Image, UnidentifiedImageError

    for path in paths:
        try:
            with Image.open(path) as image:
                image.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise ValueError(f"dataset: {path} is not a readable image ({type(error).__name__}: {error})") from error


def image_folder(
    directory: str,
    val_directory: Optional[str] = None,
    image_size: Sequence[int] = (64, 64),
    color_mode: str = "rgb",
    rescale: Optional[float] = 1 / 255,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> Dict[str, Any]:
    """The manifest of an image folder (see the module doc), as the arrays to save.

    Args:
        directory: One subfolder per class (names sorted: class 0 is the first), images at
            any depth below it.
        val_directory: A validation folder of the same layout; without it, a seeded split of
            ``directory`` stratified by class (``val_fraction``, ``seed``).
        image_size: ``[height, width]`` every image is resized to (bilinear).
        color_mode: ``grayscale``, ``rgb`` or ``rgba``: the channels decoded.
        rescale: Each pixel value (0-255) times this (default 1/255: values in [0, 1]);
            ``null`` keeps 0-255 (for models that rescale themselves, e.g. MobileNetV3's
            ``include_preprocessing``).
    """
    from pipeline.training.data import split_rows

    check_image_folder(directory, val_directory, image_size, color_mode, val_fraction)
    classes = class_files(directory, "directory")
    names = list(classes)

    def listed(folder: str, files: Mapping[str, List[str]]) -> Tuple[np.ndarray, np.ndarray]:
        paths = [str(Path(folder) / relative) for name in names for relative in files.get(name, [])]
        labels = [number for number, name in enumerate(names) for _ in files.get(name, [])]
        return np.array(paths), np.array(labels, dtype=np.int64)

    paths, labels = listed(directory, classes)
    if val_directory is not None:
        (paths_train, y_train), (paths_val, y_val) = (paths, labels), listed(val_directory, class_files(val_directory, "val_directory"))
    else:
        train_rows, val_rows = split_rows(labels, float(val_fraction), int(seed))
        paths_train, paths_val, y_train, y_val = paths[train_rows], paths[val_rows], labels[train_rows], labels[val_rows]
    _unreadable([*paths_train, *paths_val])
    everything = sorted([*paths_train, *paths_val])
    settings = {"image_size": [int(side) for side in image_size], "color_mode": color_mode, "rescale": rescale}
    return {
        "paths_train": np.asarray(paths_train),
        "y_train": np.asarray(y_train, dtype=np.int64),
        "paths_val": np.asarray(paths_val),
        "y_val": np.asarray(y_val, dtype=np.int64),
        "classes": np.array(names),
        "settings": np.array(json.dumps(settings)),
        "digest": np.array(folder_digest(everything)),
    }


image_folder.composition_check = check_image_folder  # type: ignore[attr-defined]


class ImageFiles:
    """Images on disk as a read-only array of shape ``(count, height, width, channels)``,
    float32: indexing decodes only the rows asked for (NumPy-style: an int, a slice or an
    array of indices)."""

    def __init__(self, paths: Sequence[str], image_size: Sequence[int], color_mode: str, rescale: Optional[float]) -> None:
        self.paths = np.asarray(paths)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.channels = COLOR_MODES[color_mode]
        self.rescale = None if rescale is None else float(rescale)
        self.shape = (len(self.paths), *self.image_size, self.channels)
        self.dtype = np.dtype(np.float32)
        self.ndim = 4
        self._paths_tensor: Any = None

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, path: Any) -> Any:
        """One image as a float32 tensor, from its path (a string tensor): TensorFlow ops only,
        so that it runs inside a traced program."""
        import tensorflow as tf

        image = tf.io.decode_image(tf.io.read_file(path), channels=self.channels, expand_animations=False)
        image = tf.image.resize(image, self.image_size, method="bilinear")
        image.set_shape((*self.image_size, self.channels))
        return image * self.rescale if self.rescale is not None else image

    def gather(self, rows: Any) -> Any:
        """The decoded images of ``rows`` (an int64 tensor of indices), as one batch tensor."""
        import tensorflow as tf

        if self._paths_tensor is None:
            # Made eagerly, outside any program being traced, so every program can capture it.
            with tf.init_scope(), tf.device("/CPU:0"):
                self._paths_tensor = tf.constant(self.paths)
        return tf.map_fn(
            self.decode,
            tf.gather(self._paths_tensor, rows),
            fn_output_signature=tf.TensorSpec((*self.image_size, self.channels), tf.float32),
        )

    def __getitem__(self, index: Any) -> np.ndarray:
        rows = np.arange(len(self.paths))[index]
        if np.ndim(rows) == 0:
            return self[np.array([rows])][0]
        if len(rows) == 0:
            return np.zeros((0, *self.shape[1:]), np.float32)
        return np.asarray(self.gather(np.asarray(rows, dtype=np.int64)))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(
            "image files are streamed, not loaded into memory: index the rows you need (files[rows]) instead of "
            "converting the whole set to an array"
        )


def load_manifest(archive: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """The training data of a manifest: :class:`ImageFiles` for ``x_train`` and ``x_val``, the
    labels, and the manifest's ``digest`` and ``classes``."""
    settings = json.loads(str(archive["settings"]))
    files = {
        split: ImageFiles(archive[f"paths_{split}"], settings["image_size"], settings["color_mode"], settings["rescale"])
        for split in ("train", "val")
    }
    return {
        "x_train": files["train"],
        "y_train": np.asarray(archive["y_train"], dtype=np.int64),
        "x_val": files["val"],
        "y_val": np.asarray(archive["y_val"], dtype=np.int64),
        "digest": str(archive["digest"]),
        "classes": [str(name) for name in archive["classes"]],
    }


def gather_rows(x: Any, rows: Any, constant: Any = None) -> Any:
    """A batch of ``x`` by row indices inside a traced program: decoded files for
    :class:`ImageFiles`, ``tf.gather`` of ``constant`` (the arrays as a tensor) otherwise."""
    import tensorflow as tf

    if isinstance(x, ImageFiles):
        return x.gather(rows)
    return tf.gather(constant, rows)


def is_streamed(x: Any) -> bool:
    """Whether training data is streamed from files rather than held as an array."""
    return isinstance(x, ImageFiles)
