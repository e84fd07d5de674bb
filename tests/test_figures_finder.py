"""Tests of the ``finder_curves`` figure: its table (exact), its y range, its drawing and CLI.

Data from :mod:`figures_synthetic`: adam has two seeds (one ends at +inf, one stops early at
NaN), a steep suggestion over 2 seeds and a valley from 1 seed, no minimum; sgd is flat
and has no suggestion at all.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List

import numpy as np
import pandas as pd
import pytest
from figures_synthetic import FINDER_LRS, make_finder, make_suggestions
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pipeline.figures.cli import main
from pipeline.figures.finder import (
    FINDER_CURVES_COLUMNS,
    KIND_STYLES,
    draw_finder_curves,
    finder_curves_table,
    finder_y_range,
)

INF = math.inf


def make_table() -> pd.DataFrame:
    # Files in the "wrong" order: the table sorts them.
    finder = pd.concat([make_finder("sgd"), make_finder("adam")], ignore_index=True)
    return finder_curves_table(finder, [make_suggestions("sgd"), make_suggestions("adam")])


def visible_panels(figure: Figure) -> List[Axes]:
    return [ax for ax in figure.axes if ax.axison]


def lines(ax: Axes, gid: str) -> list:
    return [line for line in ax.get_lines() if line.get_gid() == gid]


# --------------------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------------------


def test_table_layout() -> None:
    table = make_table()
    assert list(table.columns) == list(FINDER_CURVES_COLUMNS)
    keys = list(zip(table["optimizer"], table["kind"]))
    assert keys == (
        [("adam", "curve")] * 18
        + [("adam", "valley"), ("adam", "slide"), ("adam", "minimum"), ("adam", "steep")]
        + [("sgd", "curve")] * 10
        + [("sgd", "valley"), ("sgd", "slide"), ("sgd", "minimum"), ("sgd", "steep")]
    )
    curves = table[table["kind"] == "curve"]
    assert curves["seed"].tolist() == [0] * 10 + [1] * 8 + [0] * 10
    assert curves["step"].tolist() == list(range(10)) + list(range(8)) + list(range(10))
    assert curves["lr"].tolist() == list(FINDER_LRS) + list(FINDER_LRS[:8]) + list(FINDER_LRS)
    # Curve rows carry no summary; suggestion rows no seed or step.
    assert curves[["lr_min", "lr_max"]].isna().all().all() and curves["seeds"].isna().all() and curves["reason"].isna().all()
    marks = table[table["kind"] != "curve"]
    assert marks["seed"].isna().all() and marks["step"].isna().all()
    assert marks[["loss", "smooth_loss"]].isna().all().all()


def test_table_keeps_non_finite_end_points() -> None:
    table = make_table()
    adam0 = table[(table["kind"] == "curve") & (table["optimizer"] == "adam") & (table["seed"] == 0)]
    assert adam0["loss"].tolist()[-2:] == [4.0, INF] and adam0["smooth_loss"].tolist()[-1] == INF
    adam1 = table[(table["kind"] == "curve") & (table["optimizer"] == "adam") & (table["seed"] == 1)]
    assert math.isnan(adam1["loss"].iloc[-1]) and math.isnan(adam1["smooth_loss"].iloc[-1])
    assert adam1["loss"].iloc[-2] == 8.0


def test_table_suggestion_rows() -> None:
    marks = make_table().query("kind != 'curve'")
    rows = [
        (o, k, lr, low, high, int(n), reason)
        for o, k, lr, low, high, n, reason in marks[["optimizer", "kind", "lr", "lr_min", "lr_max", "seeds", "reason"]].itertuples(index=False)
    ]
    nan_row = [(o, k, n, r) for o, k, lr, low, high, n, r in rows if math.isnan(lr)]
    assert [row for row in rows if not math.isnan(row[2])] == [
        ("adam", "valley", 3e-4, 3e-4, 3e-4, 1, "too short"),
        ("adam", "steep", 2e-4, 1e-4, 4e-4, 2, "too short"),
    ]
    # Every kind keeps its row, NaN when no seed gave it, with the seeds' reason.
    assert nan_row == [
        ("adam", "slide", 0, "too short"),
        ("adam", "minimum", 0, "too short"),
        ("sgd", "valley", 0, "flat"),
        ("sgd", "slide", 0, "flat"),
        ("sgd", "minimum", 0, "flat"),
        ("sgd", "steep", 0, "flat"),
    ]
    assert all(math.isnan(low) and math.isnan(high) for _, _, lr, low, high, _, _ in rows if math.isnan(lr))


def test_table_reasons_are_distinct_and_sorted() -> None:
    suggestion = make_suggestions("adam")
    suggestion["per_seed"]["2"] = {"reason": "flat"}
    suggestion["per_seed"]["3"] = {"reason": "too short"}
    table = finder_curves_table(make_finder("adam"), [suggestion])
    assert set(table.loc[table["kind"] != "curve", "reason"]) == {"flat, too short"}


def test_table_without_suggestions_or_curves() -> None:
    only_curves = finder_curves_table(make_finder("adam"), [])
    assert set(only_curves["kind"]) == {"curve"} and len(only_curves) == 18
    empty = pd.DataFrame(columns=["optimizer", "seed", "step", "lr", "loss", "smooth_loss"])
    only_marks = finder_curves_table(empty, [make_suggestions("sgd")])
    assert only_marks["kind"].tolist() == ["valley", "slide", "minimum", "steep"]


def test_table_requires_the_finder_columns() -> None:
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['smooth_loss'\]"):
        finder_curves_table(make_finder("adam").drop(columns="smooth_loss"), [])


# --------------------------------------------------------------------------------------
# y range
# --------------------------------------------------------------------------------------


def test_y_range_stops_before_the_blow_up() -> None:
    curves = make_table().query("kind == 'curve' and optimizer == 'adam'")
    # Finite losses span 0.25..8; the first 10% of each seed (1 step) peaks at 2.5 -> top 3.75.
    assert finder_y_range(curves) == (0.25 - 0.05 * 3.5, 3.75 + 0.05 * 3.5)


def test_y_range_of_a_curve_that_never_climbs_is_its_own() -> None:
    curves = pd.DataFrame({"seed": [0] * 20, "step": range(20), "loss": np.linspace(3.0, 1.0, 20), "smooth_loss": np.linspace(3.0, 1.0, 20)})
    assert finder_y_range(curves) == (1.0 - 0.1, 3.0 + 0.1)


def test_y_range_early_share_rounds_up() -> None:
    # 20 steps: the first 2 count, so the 4.0 at step 1 sets the cap (6.0), not 3.0 at step 0.
    smooth = [3.0, 4.0] + [1.0] * 17 + [100.0]
    curves = pd.DataFrame({"seed": [0] * 20, "step": range(20), "loss": smooth, "smooth_loss": smooth})
    assert finder_y_range(curves) == (1.0 - 0.25, 6.0 + 0.25)


def test_y_range_flat_and_empty() -> None:
    flat = make_table().query("kind == 'curve' and optimizer == 'sgd'")
    assert finder_y_range(flat) == (1.5, 2.5)
    nothing = pd.DataFrame({"seed": [0], "step": [0], "loss": [math.nan], "smooth_loss": [INF]})
    assert finder_y_range(nothing) == (0.0, 1.0)


# --------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------


def test_draw_panels_axes_and_curves() -> None:
    table = make_table()
    figure = draw_finder_curves(table)
    adam, sgd = visible_panels(figure)
    assert [adam.get_title(), sgd.get_title()] == ["adam", "sgd"]
    assert adam.get_xscale() == sgd.get_xscale() == "log"
    assert adam.get_xlabel() == "learning rate" and adam.get_ylabel() == "training loss per batch"
    # One smoothed and one faint raw line per seed.
    assert len(lines(adam, "smooth")) == len(lines(adam, "raw")) == 2
    assert len(lines(sgd, "smooth")) == len(lines(sgd, "raw")) == 1
    assert all(line.get_alpha() == 0.25 for line in lines(adam, "raw"))
    smooth0 = lines(adam, "smooth")[0]
    assert list(smooth0.get_xdata()) == list(FINDER_LRS)
    # The inf end point is not drawn as a value (it is marked instead).
    assert np.isnan(smooth0.get_ydata()[-1]) and smooth0.get_ydata()[0] == 2.0


def test_draw_marks_non_finite_end_points_at_the_top() -> None:
    figure = draw_finder_curves(make_table())
    adam, sgd = visible_panels(figure)
    marks = lines(adam, "nonfinite")
    assert [list(line.get_xdata()) for line in marks] == [[FINDER_LRS[9]], [FINDER_LRS[7]]]
    heights = [line.get_ydata()[0] for line in marks]
    assert heights[0] > heights[1]  # one height per seed, in axes coordinates
    assert lines(sgd, "nonfinite") == []
    # The data ends below the markers' strip: the top is stretched above the clipped range.
    low, high = finder_y_range(make_table().query("kind == 'curve' and optimizer == 'adam'"))
    assert adam.get_ylim()[0] == low and adam.get_ylim()[1] > high
    assert sgd.get_ylim() == (1.5, 2.5)


def test_draw_suggestions_as_vertical_lines() -> None:
    figure = draw_finder_curves(make_table())
    adam, sgd = visible_panels(figure)
    steep, valley = lines(adam, "suggestion-steep"), lines(adam, "suggestion-valley")
    assert len(steep) == len(valley) == 1 and lines(adam, "suggestion-minimum") == lines(adam, "suggestion-slide") == []
    assert list(steep[0].get_xdata()) == [2e-4, 2e-4] and list(valley[0].get_xdata()) == [3e-4, 3e-4]
    assert (steep[0].get_color(), steep[0].get_linestyle()) == (KIND_STYLES["steep"][0], "--")
    assert (valley[0].get_color(), valley[0].get_linestyle()) == (KIND_STYLES["valley"][0], "-.")
    # The seeds' range is shaded where it is a range (valley came from one seed: no span).
    spans = [patch for patch in adam.patches if patch.get_gid()]
    assert [patch.get_gid() for patch in spans] == ["span-steep"]
    box = spans[0].get_bbox()  # x in data coordinates (y in axes coordinates)
    assert box.x0 == 1e-4 and box.x1 == pytest.approx(4e-4, rel=1e-12)
    legend = [text.get_text() for text in adam.get_legend().get_texts()]
    assert legend == ["valley 3e-4 (1 seed)", "steep 2e-4 (1e-4–4e-4, 2 seeds)"]
    # No suggestion: no line, no legend, and the reason in the panel.
    assert not any(line.get_gid().startswith("suggestion-") for line in sgd.get_lines() if line.get_gid())
    assert sgd.get_legend() is None
    assert [text.get_text() for text in sgd.texts if text.get_gid() == "no-suggestion"] == ["no suggestion: flat"]


def test_draw_figure_legend() -> None:
    figure = draw_finder_curves(make_table())
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == [
        "seed 0",
        "seed 1",
        "smoothed loss",
        "raw batch loss",
        "valley (mean over seeds)",
        "steep (mean over seeds)",
        "non-finite loss (test stopped)",
    ]


def test_draw_wraps_many_optimizers() -> None:
    frames, suggestions = [], []
    for name in ("a", "b", "c", "d"):
        frames.append(make_finder("adam").assign(optimizer=name))
        suggestions.append({**make_suggestions("adam"), "optimizer": name})
    figure = draw_finder_curves(finder_curves_table(pd.concat(frames), suggestions))
    assert [ax.get_title() for ax in visible_panels(figure)] == ["a", "b", "c", "d"]
    assert len(figure.axes) == 6  # 2 rows of 3, the last two switched off


def test_draw_empty_table() -> None:
    empty = pd.DataFrame(columns=["optimizer", "seed", "step", "lr", "loss", "smooth_loss"])
    figure = draw_finder_curves(finder_curves_table(empty, []))
    assert len(figure.axes) == 1


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def write_inputs(root: Path) -> tuple[list[str], list[str]]:
    curves, suggestions = [], []
    for optimizer in ("adam", "sgd"):
        folder = root / "finder" / optimizer
        folder.mkdir(parents=True)
        make_finder(optimizer).to_csv(folder / "finder.csv", index=False)
        (folder / "suggestions.json").write_text(json.dumps(make_suggestions(optimizer)))
        curves.append(str(folder / "finder.csv"))
        suggestions.append(str(folder / "suggestions.json"))
    return curves, suggestions


def test_cli_writes_png_and_table(tmp_path: Path) -> None:
    curves, suggestions = write_inputs(tmp_path)
    out = tmp_path / "figures" / "finder_curves.png"
    main(["finder_curves", "--finder", *curves, "--suggestions", *suggestions, "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = pd.read_csv(out.with_suffix(".csv"))
    pd.testing.assert_frame_equal(written, make_table(), check_dtype=False)
    # inf survives the CSV round trip (a blow-up stays a blow-up).
    assert INF in written["loss"].tolist()
    assert sorted(path.name for path in out.parent.iterdir()) == ["finder_curves.csv", "finder_curves.png"]


def test_a_validation_loss_range_test_is_labelled_as_one() -> None:
    """finder.loss=val (recorded in suggestions.json's settings): the table says what each curve
    measured, and the figure labels its axis, title and legend by it."""
    suggestions = [make_suggestions("adam"), make_suggestions("sgd")]
    for suggestion in suggestions:
        suggestion["settings"]["loss"] = "val"
    table = finder_curves_table(pd.concat([make_finder("adam"), make_finder("sgd")], ignore_index=True), suggestions)
    assert set(table["measured"]) == {"val"}
    assert set(make_table()["measured"]) == {"train"}  # older files without the key: the training loss
    figure = draw_finder_curves(table)
    adam, _ = visible_panels(figure)
    assert adam.get_ylabel() == "validation loss" and "validation loss" in figure.get_suptitle()
    assert "raw validation loss" in [text.get_text() for text in figure.legends[0].get_texts()]
