"""How well each LR range test suggestion rule guides to the grid's best rate, on a finished study.

For every suggestion rule, over the study's optimizer × schedule cells: the mean of
``relative_val_loss`` (the grid's mean best val_loss at the grid rate nearest the suggestion,
relative to the grid's best; 1.00 = the rule found the grid's answer), the cells whose nearest
rate had a diverged seed, and the mean distance in decades between the suggestion and the grid's
best rate. Two blocks: the study's own ``finder_vs_grid.csv`` (the rules of the version that ran
it), and the suggestions recomputed from its ``finder/<optimizer>/finder.csv`` curves with the
rules of this checkout (:func:`pipeline.finder.suggest.suggest`), so that a study run with an
earlier version compares both sets of rules on the same curves.

    snakemake --cores all
    python benchmarks/finder_rules.py results/default
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.analysis.finder_vs_grid import finder_vs_grid
from pipeline.config.schema import FinderConfig
from pipeline.finder.suggest import suggest, summarise_suggestions
from pipeline.tables import BEST, FINDER, FINDER_VS_GRID, RUNS


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per suggestion rule: mean relative val_loss, cells with a diverged nearest rate, decades off."""
    return table.groupby("suggestion", sort=False).agg(
        cells=("relative_val_loss", "size"),
        relative_val_loss=("relative_val_loss", "mean"),
        nearest_diverged=("nearest_diverged", lambda counts: int((counts.fillna(0) > 0).sum())),
        decades_off=("ratio", lambda ratios: float(np.nanmean(np.abs(np.log10(ratios.astype(float)))))),
    )


def recomputed(study: Path) -> pd.DataFrame:
    """finder_vs_grid with every seed's suggestions recomputed by this checkout's rules."""
    suggestions = []
    for path in sorted(study.glob("finder/*/suggestions.json")):
        document = json.loads(path.read_text())
        settings = FinderConfig(**{key: value for key, value in document["settings"].items() if key in FinderConfig.__dataclass_fields__})
        curves = FINDER.read(path.parent / "finder.csv")
        per_seed = {
            str(seed): suggest(curve["lr"].to_numpy(), curve["smooth_loss"].to_numpy(), settings)
            for seed, curve in curves.groupby("seed")
        }
        suggestions.append({"optimizer": document["optimizer"], "per_seed": per_seed, "summary": summarise_suggestions(per_seed)})
    return finder_vs_grid(suggestions, RUNS.read(study / "runs.csv"), BEST.read(study / "best.csv"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="a finished study's folder, e.g. results/default")
    args = parser.parse_args()
    pd.set_option("display.width", 120)
    print("the study's own finder_vs_grid.csv (the rules that ran it):")
    print(summary(FINDER_VS_GRID.read(args.study / "finder_vs_grid.csv")).round(4).to_string())
    print("\nrecomputed from its finder.csv curves with this checkout's rules:")
    print(summary(recomputed(args.study)).round(4).to_string())


if __name__ == "__main__":
    main()
