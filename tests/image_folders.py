"""Small real image folders, made offline: scikit-learn's digits upscaled to 32×32 PNGs, one
subfolder per class, and the same pixels as arrays (what the folder decodes to)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np


def digit_images(count: int = 300, size: int = 32, rgb: bool = False) -> tuple:
    """``count`` digits as uint8 images of ``size``×``size`` (nearest-neighbour upscaling of the
    8×8 originals, 0-255), and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images[:count] * (255 / 16)).round().astype(np.uint8)
    factor = size // 8
    images = np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)
    if rgb:
        images = np.stack([images, 255 - images, images // 2], axis=-1)
    return images, digits.target[:count].astype(np.int64)


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray, names: Optional[Sequence[str]] = None) -> Dict[str, int]:
    """Write one PNG per image under ``root/<class name>/``; returns the files per class."""
    from PIL import Image

    names = list(names) if names is not None else [f"digit{label}" for label in range(int(labels.max()) + 1)]
    counts: Dict[str, int] = {}
    for index, (image, label) in enumerate(zip(images, labels)):
        folder = root / names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index:05d}.png")
        counts[names[int(label)]] = counts.get(names[int(label)], 0) + 1
    return counts
