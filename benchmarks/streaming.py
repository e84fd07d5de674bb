"""Benchmark: training on an image folder streamed from disk (``dataset=images``).

Two measurements, each a training job (``python -m pipeline.training``, the population engine,
one Adam run of the default MLP, constant rate) in a fresh process:

1. **Memory.** A folder larger than ``--gigabytes`` GB on disk (random-noise PNGs of
   ``--size``×``--size`` RGB, which PNG cannot compress; made once under ``--dir``) is listed by
   the dataset job into a manifest, then one job trains ``--epochs`` epochs on it. Its peak
   resident memory (``getrusage`` of the finished child, ``ru_maxrss``) is printed against the
   folder's size: streamed, it stays far below the data.
2. **Time.** On the first ``--subset`` images of the same folder, the time per epoch streamed
   (decoding each batch's files) against the same pixels held in memory (an ``.npz`` of
   arrays), as a ratio; epochs after the first (which traces the programs), median.

    python benchmarks/streaming.py [--dir /tmp/lrstudy-streaming] [--gigabytes 2.1] [--size 128] [--subset 2000]

The folder is kept between runs (delete ``--dir`` to regenerate it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CLASSES = 10


def _write_images(arguments: tuple) -> int:
    from PIL import Image

    folder, start, stop, size = arguments
    written = 0
    for index in range(start, stop):
        rng = np.random.default_rng(index)
        path = Path(folder) / f"class{index % CLASSES}" / f"{index:06d}.png"
        Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)).save(path, compress_level=1)
        written += path.stat().st_size
    return written


def make_folder(folder: Path, gigabytes: float, size: int) -> int:
    """A folder of noise PNGs taking more than ``gigabytes`` GB; returns its size in bytes."""
    done = folder / "complete.json"
    if done.exists():
        return int(json.loads(done.read_text())["bytes"])
    for label in range(CLASSES):
        (folder / f"class{label}").mkdir(parents=True, exist_ok=True)
    per_image = size * size * 3 + 1000  # noise does not compress: raw size plus headers
    count = int(gigabytes * 2**30 / per_image) + 1
    chunks = [(str(folder), start, min(start + 500, count), size) for start in range(0, count, 500)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        total = sum(pool.map(_write_images, chunks))
    done.write_text(json.dumps({"bytes": total, "images": count, "size": size}))
    return total


def run_job(arguments: List[str]) -> Dict[str, float]:
    """Run a command in a child process; its wall time is not needed, its peak memory is."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run([sys.executable, *arguments], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(arguments[:3])} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: a new maximum is this child's.
    return {"peak_mb": max(after, before) / 1024, "new_peak": after > before}


def study_for(directory: Path, size: int, epochs: int, name: str):
    from pipeline.config.compose import compose_study

    return compose_study(
        f"dataset=images dataset.directory={directory} dataset.image_size=[{size},{size}] dataset.name={name} "
        f"optimizer=[adam] schedule=[constant] study.epochs={epochs} study.seeds=[0] study.name=streaming"
    )


def train(study, data_file: Path, out: Path) -> Path:
    """One training job on ``data_file``; returns the run folder."""
    from pipeline.training.population_job import population_spec

    spec = population_spec(study, "adam", [["constant", 0, 1e-3]], root=str(out))
    run_job(["-m", "pipeline.training", "--spec", json.dumps(spec), "--data", str(data_file), "--threads", "2",
             "--manifest", str(out / "manifest.json")])  # fmt: skip
    return Path(json.loads((out / "manifest.json").read_text())["runs"][0]["run_dir"])


def epoch_seconds(run: Path) -> float:
    import pandas as pd

    seconds = pd.read_csv(run / "history.csv")["seconds"].tolist()
    return statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "lrstudy-streaming")
    parser.add_argument("--gigabytes", type=float, default=2.1)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--subset-epochs", type=int, default=4)
    args = parser.parse_args()

    folder = args.dir / "images"
    total = make_folder(folder, args.gigabytes, args.size)
    work = Path(tempfile.mkdtemp(prefix="streaming-", dir=args.dir))

    # 1. Memory: the whole folder, streamed.
    study = study_for(folder, args.size, args.epochs, "noise")
    manifest = work / "noise.npz"
    run_job(["-m", "pipeline.training.data", "--options", json.dumps(study.dataset), "--out", str(manifest)])
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    run = train(study, manifest, work / "whole")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    with np.load(manifest) as listed:
        images = len(listed["paths_train"]) + len(listed["paths_val"])
    print(f"folder: {images} images, {total / 2**30:.2f} GB on disk ({total / 2**20 / max(images, 1):.3f} MB each)")
    note = "" if peak * 1024 > before else f" (no new maximum: at most {peak:.0f} MB)"
    print(f"streamed training job: peak resident memory {peak:.0f} MB{note}, {epoch_seconds(run):.1f} s per epoch")

    # 2. Time: a subset streamed against the same pixels in memory.
    subset = work / "subset"
    for label in range(CLASSES):
        (subset / f"class{label}").mkdir(parents=True)
    files = sorted(folder.rglob("*.png"), key=lambda path: path.name)[: args.subset]  # every class
    for path in files:
        (subset / path.parent.name / path.name).symlink_to(path)
    small = study_for(subset, args.size, args.subset_epochs, "subset")
    small_manifest = work / "subset.npz"
    run_job(["-m", "pipeline.training.data", "--options", json.dumps(small.dataset), "--out", str(small_manifest)])
    from PIL import Image

    with np.load(small_manifest) as listed:
        arrays = {}
        for split in ("train", "val"):
            pixels = [np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) for path in listed[f"paths_{split}"]]
            arrays[f"x_{split}"] = np.stack(pixels) * np.float32(1 / 255)
            arrays[f"y_{split}"] = listed[f"y_{split}"]
    held = work / "subset_arrays.npz"
    np.savez(held, **arrays)
    streamed_run, held_run = train(small, small_manifest, work / "streamed"), train(small, held, work / "held")
    streamed, in_memory = epoch_seconds(streamed_run), epoch_seconds(held_run)
    print(
        f"{len(files)} images, {args.subset_epochs} epochs: streamed {streamed:.2f} s per epoch, in memory "
        f"{in_memory:.2f} s per epoch: streamed/in-memory = {streamed / in_memory:.2f}x"
    )


if __name__ == "__main__":
    main()
