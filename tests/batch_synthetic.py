"""Synthetic runs of the batch-size question with a known exponent.

Each seed's best ``val_loss`` is a parabola in ``log10(rate)`` whose minimum sits at
``centre + exponent * log10(batch_size / 128)`` plus a per-seed shift, with a little noise:
the optimum follows ``best rate ∝ batch_size**exponent`` exactly, the seeds scatter around it.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import pandas as pd

#: The rate grid: 11 points over five decades (half a decade apart).
RATES = [float(f"{rate:.4g}") for rate in 10 ** np.linspace(-5, 0, 11)]


def synthetic_runs(
    exponent: float,
    *,
    sizes: Sequence[int] = (32, 64, 128, 256, 512),
    seeds: Sequence[int] = (0, 1, 2, 3),
    cells: Sequence[tuple[str, str]] = (("adam", "constant"),),
    centre: float = -2.5,
    seed_shift: float = 0.05,
    noise: float = 0.005,
    generator_seed: int = 1,
) -> Dict[int, pd.DataFrame]:
    """Each batch size's runs (the ``runs.csv`` columns the analysis reads)."""
    rng = np.random.default_rng(generator_seed)
    shifts = {seed: rng.normal(0, seed_shift) for seed in seeds}
    tables = {}
    for size in sizes:
        optimum = centre + exponent * np.log10(size / 128)
        rows = []
        for optimizer, schedule in cells:
            for seed in seeds:
                for lr in RATES:
                    loss = 0.3 * (np.log10(lr) - optimum - shifts[seed]) ** 2 + 0.2 + rng.normal(0, noise)
                    rows.append(
                        {"optimizer": optimizer, "schedule": schedule, "lr": lr, "seed": int(seed), "status": "ok",
                         "best_val_loss": float(loss), "best_val_accuracy": 0.9, "best_epoch": 3}
                    )  # fmt: skip
        tables[int(size)] = pd.DataFrame(rows)
    return tables
