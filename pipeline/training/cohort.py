"""A training job: the runs of one cohort (or one part of it), in one process.

A cohort is the set of runs that share optimizer, schedule, seed, model and data and differ
only in learning rate. Training them in one process pays TensorFlow's start-up (~4 s, ~650
MB) once. Runs already complete with the same configuration (same ``config_hash``) are
skipped, so a re-run job, or a grid extended by a few rates, only trains what is missing; a
run that was interrupted (job killed, node lost, SLURM requeue) resumes from its last
completed epoch (:mod:`pipeline.training.resume`).

The job ends by writing a manifest (the Snakemake output) listing its run folders. A spec
with ``"engine": "population"`` is a population part instead
(:func:`pipeline.training.population_job.train_population_job`): the runs of one optimizer across
schedules, seeds and rates, trained together as one compiled program.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping

from pipeline.config.schema import study_dir
from pipeline.io import write_json_atomic
from pipeline.training.device import add_device_arguments


def cohort_spec(study: Any, optimizer: str, schedule: str, seed: int, rates: List[float]) -> Dict[str, Any]:
    """What a training job needs, as plain JSON-able data (passed to the job as a parameter).

    A cohort job trains with the per-run engine: its runs' configs never carry the population
    engine's mark, whatever ``study.engine`` says."""
    base = study.run_config(optimizer, schedule, seed, rates[0])
    base["training"].pop("engine", None)
    return {
        "study_dir": study_dir(study.name),
        "optimizer": optimizer,
        "schedule": schedule,
        "seed": seed,
        "rates": list(rates),
        "deterministic": study.settings.deterministic,
        "base": base,
    }


def train_cohort(spec: Mapping[str, Any], data_file: Path, threads: int | None = None, gpus: int = 0) -> List[Dict[str, Any]]:
    """Train (or skip, when complete) every rate of a cohort spec; returns one entry per run."""
    from pipeline.config.rates import run_dir
    from pipeline.training.data import arrays_digest, load_npz
    from pipeline.training.device import configure_tensorflow
    from pipeline.training.resume import STATE_FILE
    from pipeline.training.run import is_complete, train_run

    device = configure_tensorflow(threads=threads, deterministic=spec["deterministic"], gpus=gpus)
    arrays = load_npz(data_file)
    digest = arrays_digest(arrays)
    entries = []
    for lr in spec["rates"]:
        run_config = json.loads(json.dumps(spec["base"]))
        run_config["dataset"]["digest"] = digest
        run_config["training"]["lr"] = float(lr)
        out_dir = run_dir(spec["study_dir"], spec["optimizer"], spec["schedule"], spec["seed"], lr)
        started = time.perf_counter()
        if is_complete(out_dir, run_config):
            # A job killed between summary.json and the state's removal leaves a state behind.
            (out_dir / STATE_FILE).unlink(missing_ok=True)
            status = json.loads((out_dir / "summary.json").read_text())["status"]
            print(f"{out_dir}: up to date ({status}), skipped", flush=True)
        else:
            status = train_run(run_config, arrays, out_dir, device, resumable=True, progress=True)["status"]
            print(f"{out_dir}: {status} in {time.perf_counter() - started:.1f} s", flush=True)
        entries.append({"lr": float(lr), "run_dir": str(out_dir), "status": status})
    return entries


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the runs of one training job: a cohort part or a population part.")
    parser.add_argument(
        "--spec", required=True, help="job spec as JSON (cohort_spec, or pipeline.training.population_job.population_spec)"
    )
    parser.add_argument("--data", required=True, type=Path, help="the study's dataset .npz")
    add_device_arguments(parser)
    parser.add_argument("--manifest", required=True, type=Path, help="output: the list of run folders")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)
    if spec.get("engine") == "population":
        from pipeline.training.population_job import train_population_job

        entries = train_population_job(spec, args.data, args.threads, args.gpus)
        write_json_atomic(args.manifest, {"optimizer": spec["optimizer"], "engine": "population", "runs": entries})
        return
    entries = train_cohort(spec, args.data, args.threads, args.gpus)
    write_json_atomic(args.manifest, {"optimizer": spec["optimizer"], "schedule": spec["schedule"], "seed": spec["seed"], "runs": entries})


if __name__ == "__main__":
    main()
