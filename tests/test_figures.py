"""Tests of pipeline.figures.sensitivity: the table exactly, the drawing structurally, its CLI.

The other figures are tested in ``test_figures_<module>.py``, the CLI of all in
``test_figures_cli.py``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List

import pandas as pd
import pytest
from matplotlib.lines import Line2D

from pipeline.figures.cli import main
from pipeline.figures.sensitivity import SENSITIVITY_COLUMNS, draw_lr_sensitivity, lr_sensitivity_table

NAN = math.nan
L1, L2, L3 = 1e-3, 1e-2, 1e-1

#: (optimizer, schedule, lr) -> [(status, best_val_loss) for seed 0, seed 1]. Losses are
#: dyadic fractions so that hand-computed means are exact.
CELLS: Dict[tuple[str, str, float], List[tuple[str, float]]] = {
    ("adam", "constant", L1): [("ok", 0.5), ("ok", 1.0)],
    ("adam", "constant", L2): [("ok", 0.25), ("ok", 0.25)],
    # Both seeds diverged, one in epoch 1 (NaN loss), one later (finite loss).
    ("adam", "constant", L3): [("diverged", NAN), ("diverged", 2.0)],
    ("adam", "cosine", L1): [("ok", 0.75), ("ok", 0.25)],
    # A diverged run's finite best loss must not pull the mean down.
    ("adam", "cosine", L2): [("ok", 0.125), ("diverged", 0.0625)],
    ("adam", "cosine", L3): [("ok", 1.5), ("ok", 2.5)],
    ("sgd", "constant", L1): [("ok", 1.0), ("ok", 1.0)],
    ("sgd", "constant", L2): [("ok", 0.5), ("ok", 0.5)],
    ("sgd", "constant", L3): [("ok", 0.25), ("ok", 0.75)],
    ("sgd", "cosine", L1): [("ok", 2.0), ("ok", 2.0)],
    ("sgd", "cosine", L2): [("ok", 1.0), ("ok", 0.5)],
    ("sgd", "cosine", L3): [("diverged", NAN), ("diverged", NAN)],
}


def make_runs(cells: Dict[tuple[str, str, float], List[tuple[str, float]]] = CELLS) -> pd.DataFrame:
    """A runs.csv-like frame, rows deliberately not in sorted order."""
    rows: List[Dict[str, Any]] = []
    for (optimizer, schedule, lr), seeds in reversed(list(cells.items())):
        for seed, (status, loss) in enumerate(seeds):
            rows.append(
                {
                    "optimizer": optimizer,
                    "schedule": schedule,
                    "lr": lr,
                    "seed": seed,
                    "status": status,
                    "best_val_loss": loss,
                    "best_val_accuracy": 0.5,
                    "best_epoch": 1,
                    "diverged_epoch": 2 if status == "diverged" else NAN,
                    "run_dir": f"runs/{optimizer}/{schedule}/{seed}/{lr}",
                }
            )
    return pd.DataFrame(rows)


#: The table computed by hand: (optimizer, schedule, lr, mean, std, runs, diverged).
EXPECTED = [
    ("adam", "constant", L1, 0.75, math.sqrt(0.125), 2, 0),
    ("adam", "constant", L2, 0.25, 0.0, 2, 0),
    ("adam", "constant", L3, NAN, NAN, 2, 2),
    ("adam", "cosine", L1, 0.5, math.sqrt(0.125), 2, 0),
    ("adam", "cosine", L2, 0.125, 0.0, 2, 1),
    ("adam", "cosine", L3, 2.0, math.sqrt(0.5), 2, 0),
    ("sgd", "constant", L1, 1.0, 0.0, 2, 0),
    ("sgd", "constant", L2, 0.5, 0.0, 2, 0),
    ("sgd", "constant", L3, 0.5, math.sqrt(0.125), 2, 0),
    ("sgd", "cosine", L1, 2.0, 0.0, 2, 0),
    ("sgd", "cosine", L2, 0.75, math.sqrt(0.125), 2, 0),
    ("sgd", "cosine", L3, NAN, NAN, 2, 2),
]


def test_sensitivity_table_exact_values() -> None:
    table = lr_sensitivity_table(make_runs())
    assert list(table.columns) == list(SENSITIVITY_COLUMNS)
    assert list(table.index) == list(range(len(EXPECTED)))
    assert len(table) == len(EXPECTED)
    for row, (optimizer, schedule, lr, mean, std, runs, diverged) in zip(table.itertuples(index=False), EXPECTED):
        assert (row.optimizer, row.schedule, row.lr) == (optimizer, schedule, lr)
        assert (row.runs, row.diverged) == (runs, diverged)
        if math.isnan(mean):
            assert math.isnan(row.val_loss_mean) and math.isnan(row.val_loss_std)
        else:
            assert row.val_loss_mean == mean
            # A sqrt may differ from pandas' in the last bit; anything more is a wrong formula.
            assert row.val_loss_std == pytest.approx(std, rel=1e-15, abs=0)


def test_sensitivity_table_accuracy_columns() -> None:
    runs = make_runs()
    # Seed 1 of the all-ok adam/constant L1 cell gets a better accuracy; the diverged seed of
    # adam/cosine L2 a perfect one, which must not count.
    adam_constant = (runs["optimizer"] == "adam") & (runs["schedule"] == "constant")
    adam_cosine = (runs["optimizer"] == "adam") & (runs["schedule"] == "cosine")
    runs.loc[adam_constant & (runs["lr"] == L1) & (runs["seed"] == 1), "best_val_accuracy"] = 0.75
    runs.loc[adam_cosine & (runs["status"] == "diverged"), "best_val_accuracy"] = 1.0
    table = lr_sensitivity_table(runs)
    assert table["val_accuracy_mean"].iloc[0] == 0.625
    assert table["val_accuracy_std"].iloc[0] == pytest.approx(math.sqrt(0.03125), rel=1e-15, abs=0)
    assert (table["val_accuracy_mean"].iloc[4], table["val_accuracy_std"].iloc[4]) == (0.5, 0.0)
    # All-diverged cells: NaN accuracy, kept.
    assert table["val_accuracy_mean"].isna().tolist() == [math.isnan(row[3]) for row in EXPECTED]


def test_sensitivity_table_count_dtypes_are_integers() -> None:
    table = lr_sensitivity_table(make_runs())
    assert pd.api.types.is_integer_dtype(table["runs"])
    assert pd.api.types.is_integer_dtype(table["diverged"])
    assert table["runs"].sum() == 24
    assert table["diverged"].sum() == 5


def test_sensitivity_table_keeps_all_diverged_cells() -> None:
    table = lr_sensitivity_table(make_runs())
    all_diverged = table[table["diverged"] == table["runs"]]
    assert list(zip(all_diverged["optimizer"], all_diverged["schedule"], all_diverged["lr"])) == [
        ("adam", "constant", L3),
        ("sgd", "cosine", L3),
    ]


def test_sensitivity_table_single_seed_and_non_finite_ok_run() -> None:
    # An ok run with an infinite loss does not count; one remaining seed has std 0, not NaN.
    runs = make_runs({("adam", "constant", L1): [("ok", 0.5), ("ok", math.inf)], ("adam", "constant", L2): [("ok", 0.25)]})
    table = lr_sensitivity_table(runs)
    assert table["val_loss_mean"].tolist() == [0.5, 0.25]
    assert table["val_loss_std"].tolist() == [0.0, 0.0]
    assert table["runs"].tolist() == [2, 1]
    assert table["diverged"].tolist() == [0, 0]


def test_sensitivity_table_names_missing_columns() -> None:
    with pytest.raises(ValueError, match="status"):
        lr_sensitivity_table(make_runs().drop(columns=["status"]))


def _diverged_lines(ax: Any) -> List[Line2D]:
    return [line for line in ax.get_lines() if line.get_marker() == "x"]


def test_draw_sensitivity_structure() -> None:
    figure = draw_lr_sensitivity(lr_sensitivity_table(make_runs()))
    all_axes = figure.get_axes()
    # Two rows of a panel per optimizer: best val_loss on top, best val_accuracy below.
    assert len(all_axes) == 4
    axes, below = all_axes[:2], all_axes[2:]
    assert [ax.get_title() for ax in axes] == ["adam", "sgd"]
    assert all(ax.get_xscale() == "log" for ax in all_axes)
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    assert below[0].get_shared_y_axes().joined(below[0], below[1])
    assert not axes[0].get_shared_y_axes().joined(axes[0], below[0])
    assert "val_accuracy" in below[0].get_ylabel()
    # Diverged runs are marked in the accuracy row too.
    assert sorted(float(x) for line in _diverged_lines(below[0]) for x in line.get_xdata()) == [L2, L3]
    # One curve per schedule per panel.
    for ax in all_axes:
        assert sorted(line.get_label() for line in ax.get_lines() if line.get_marker() == "o") == ["constant", "cosine"]
    # adam: constant diverged twice at L3, cosine once at L2; sgd: cosine twice at L3.
    assert sorted(float(x) for line in _diverged_lines(axes[0]) for x in line.get_xdata()) == [L2, L3]
    assert [float(x) for line in _diverged_lines(axes[1]) for x in line.get_xdata()] == [L3]
    # Counts above one are written next to the mark.
    assert sorted(text.get_text() for text in axes[0].texts) == ["2"]
    assert sorted(text.get_text() for text in axes[1].texts) == ["2"]
    legend_labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend_labels == ["constant", "cosine", "diverged (count)"]
    assert below[0].get_xlabel() == "learning rate"  # on the bottom row
    assert "val_loss" in axes[0].get_ylabel()


def test_draw_sensitivity_panel_with_only_diverged_runs() -> None:
    cells = {
        ("adam", "constant", L1): [("ok", 0.5), ("ok", 1.0)],
        ("lion", "constant", L1): [("diverged", NAN), ("diverged", 3.0)],
        ("lion", "constant", L2): [("diverged", NAN)],
    }
    figure = draw_lr_sensitivity(lr_sensitivity_table(make_runs(cells)))
    axes = figure.get_axes()
    assert len(axes) == 4  # loss row, then accuracy row
    assert [ax.get_title() for ax in axes[:2]] == ["adam", "lion"]
    assert [float(x) for line in _diverged_lines(axes[3]) for x in line.get_xdata()] == [L1, L2]
    assert [float(x) for line in _diverged_lines(axes[1]) for x in line.get_xdata()] == [L1, L2]
    assert [text.get_text() for text in axes[1].texts] == ["2"]
    figure.canvas.draw()  # renders without error despite an all-NaN panel
    low, high = axes[1].get_xlim()
    assert low < L1 and high > L2


def test_cli_writes_png_and_table(tmp_path: Path) -> None:
    runs_path = tmp_path / "runs.csv"
    make_runs().to_csv(runs_path, index=False)
    out = tmp_path / "figures" / "lr_sensitivity.png"
    main(["lr_sensitivity", "--runs", str(runs_path), "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = pd.read_csv(tmp_path / "figures" / "lr_sensitivity.csv")
    pd.testing.assert_frame_equal(written, lr_sensitivity_table(make_runs()), check_dtype=False)
    # The atomic write leaves nothing but its two outputs behind.
    assert sorted(path.name for path in out.parent.iterdir()) == ["lr_sensitivity.csv", "lr_sensitivity.png"]


def test_cli_requires_arguments() -> None:
    with pytest.raises(SystemExit):
        main(["lr_sensitivity", "--runs", "runs.csv"])
