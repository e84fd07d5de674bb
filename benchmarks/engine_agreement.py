"""How two finished studies' answers agree: the population engine's against the per-run engine's.

Reads each study folder's tables (``runs.csv`` with fit labels, ``best.csv``, ``curves.csv``,
as the aggregate rule writes them) and prints what the population engine promises to keep
(``pipeline/training/population.py``): the recommended rate of every optimizer × schedule, the
largest relative difference of the first-epoch losses at rates that did not diverge in either
study, the share of runs with the same status and fit label, the share of epoch rows that are
bit-identical, and every run whose status or fit label differs.

    snakemake --cores all                                      # results/default
    git worktree add ../per_run && (cd ../per_run && snakemake --cores all --config overrides="study.engine=per_run")
    python benchmarks/engine_agreement.py results/default ../per_run/results/default

``benchmarks/population.py`` prints the same figures for the runs it trains itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict

import pandas as pd

RUN_KEYS = ["optimizer", "schedule", "seed", "lr"]
CURVE_COLUMNS = ["current_lr", "loss", "accuracy", "val_loss", "val_accuracy"]


def report(runs: Dict[str, pd.DataFrame], curves: Dict[str, pd.DataFrame], best: Dict[str, pd.DataFrame]) -> None:
    """Print the agreement of two studies' tables, keyed by their names (``population`` first)."""
    (first, second) = list(runs)
    keys = [key for key in RUN_KEYS if key in runs[first].columns]
    merged = runs[first].merge(runs[second], on=keys, suffixes=(f"_{first}", f"_{second}"))
    print(f"{len(merged)} runs in both ({len(runs[first])} / {len(runs[second])})")

    group = [key for key in ("optimizer", "schedule") if key in best[first].columns]
    picks = best[first].merge(best[second], on=group, suffixes=(f"_{first}", f"_{second}"))
    same = picks[f"lr_{first}"] == picks[f"lr_{second}"]
    print(f"recommended rate identical: {int(same.sum())} of {len(picks)} {' x '.join(group)}")
    for row in picks[~same].itertuples(index=False):
        print(f"  differs: {' '.join(str(getattr(row, key)) for key in group)}: "
              f"{getattr(row, f'lr_{first}')} / {getattr(row, f'lr_{second}')}")  # fmt: skip

    ok = merged[(merged[f"status_{first}"] == "ok") & (merged[f"status_{second}"] == "ok")][keys]
    rows = curves[first].merge(curves[second], on=[*keys, "epoch"], suffixes=(f"_{first}", f"_{second}"))
    epoch_one = rows[rows["epoch"] == 1].merge(ok, on=keys)
    relative = (epoch_one[f"loss_{first}"] - epoch_one[f"loss_{second}"]).abs() / epoch_one[f"loss_{second}"].abs()
    print(f"first-epoch loss, largest relative difference over {len(epoch_one)} runs that did not diverge: {relative.max():.2e}")
    identical = pd.concat([rows[f"{column}_{first}"].eq(rows[f"{column}_{second}"]) for column in CURVE_COLUMNS], axis=1)
    print(f"epoch rows bit-identical: {identical.all(axis=1).mean():.1%} of {len(rows)}")

    same_status = merged[f"status_{first}"] == merged[f"status_{second}"]
    same_fit = merged[f"fit_{first}"] == merged[f"fit_{second}"]
    print(f"status equal: {same_status.mean():.1%}; fit labels equal: {same_fit.mean():.1%} of {len(merged)} runs")
    for row in merged[~same_status | ~same_fit].itertuples(index=False):
        print(f"  differs: {' '.join(f'{key} {getattr(row, key)}' for key in keys)}: "
              f"fit {getattr(row, f'fit_{first}')} / {getattr(row, f'fit_{second}')}, "
              f"status {getattr(row, f'status_{first}')} / {getattr(row, f'status_{second}')}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("population", type=Path, help="a study folder trained by the population engine")
    parser.add_argument("per_run", type=Path, help="the same study trained by the per-run engine")
    args = parser.parse_args()
    folders = {"population": args.population, "per_run": args.per_run}
    tables = {name: {table: pd.read_csv(folder / f"{table}.csv") for table in ("runs", "curves", "best")} for name, folder in folders.items()}
    report(*({name: tables[name][table] for name in folders} for table in ("runs", "curves", "best")))


if __name__ == "__main__":
    main()
