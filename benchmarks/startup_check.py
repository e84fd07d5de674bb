"""Benchmark: what the workflow's start-up check of run folders costs each `snakemake` start.

Each start reads every run folder its training jobs' manifests list
(:func:`pipeline.training.folders.check_study`: ``summary.json`` parsed, ``history.csv``'s header
and length) and the aggregate checks them again with the config's hash
(:func:`pipeline.training.folders.check_run_folders`). This writes ``--runs`` run folders of
``--epochs`` epochs each (the size of the default study's with its batch-size question and
confirmation: 648 + 99 runs, 30 epochs) in the format training writes, and times both checks
against what every start already pays: composing the study (:func:`compose_study`), as ratios.

    python benchmarks/startup_check.py [--runs 747] [--epochs 30] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.config.compose import compose_study  # noqa: E402
from pipeline.config.rates import run_dir  # noqa: E402
from pipeline.config.schema import config_hash  # noqa: E402
from pipeline.io import write_json_atomic, write_yaml_atomic  # noqa: E402
from pipeline.tables import HISTORY_COLUMNS  # noqa: E402
from pipeline.training.folders import check_run_folders, check_study, manifest_entries  # noqa: E402


def write_study(study_dir: Path, runs: int, epochs: int, per_manifest: int = 54) -> None:
    """``runs`` run folders as training writes them, listed by manifests of ``per_manifest`` runs."""
    study = compose_study()
    entries = []
    for index in range(runs):
        lr, seed = 10 ** (-4 + 4 * (index % 27) / 26), index // 27
        config = study.run_config("adam", "constant", seed, lr)
        folder = run_dir(study_dir, "adam", "constant", seed, lr)
        folder.mkdir(parents=True)
        lines = [",".join(HISTORY_COLUMNS)] + [f"{epoch},{lr!r},0.5,0.8,0.6,0.75,0.21" for epoch in range(1, epochs + 1)]
        (folder / "history.csv").write_text("\r\n".join(lines) + "\r\n")
        write_yaml_atomic(folder / "config.yaml", config)
        summary = {"optimizer": "adam", "schedule": "constant", "lr": lr, "seed": seed, "status": "ok", "best_val_loss": 0.6,
                   "epochs_run": epochs, "config_hash": config_hash(config)}  # fmt: skip
        write_json_atomic(folder / "summary.json", summary)
        entries.append({"schedule": "constant", "seed": seed, "lr": lr, "run_dir": str(folder), "status": "ok"})
    for part, start in enumerate(range(0, runs, per_manifest)):
        manifest = study_dir / "populations" / "adam" / f"part{part}.json"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps({"optimizer": "adam", "runs": entries[start : start + per_manifest]}))


def best_of(function: Callable[[], object], repeats: int) -> float:
    times: List[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=747)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        study_dir = Path("results") / "bench"
        write_study(study_dir, args.runs, args.epochs)
        manifests = sorted(study_dir.glob("populations/*/part*.json"))
        compose = best_of(lambda: compose_study(), args.repeats)
        start_up = best_of(lambda: check_study(study_dir), args.repeats)
        aggregate = best_of(lambda: check_run_folders([entry for manifest in manifests for entry in manifest_entries(manifest)]), args.repeats)
        assert not check_study(study_dir).findings
    print(f"{args.runs} run folders of {args.epochs} epochs, median of {args.repeats}:")
    print(f"  composing the study (every start pays it): {compose * 1000:.0f} ms")
    print(f"  the start-up check (check_study):          {start_up * 1000:.0f} ms ({start_up / compose:.2f}x the composition, {start_up / args.runs * 1e6:.0f} us per run)")
    print(f"  the aggregate's check (config hashes too): {aggregate * 1000:.0f} ms ({aggregate / compose:.2f}x, {aggregate / args.runs * 1e6:.0f} us per run)")


if __name__ == "__main__":
    main()
