"""Tests of pipeline.report and its section modules (pipeline.report.*): table rows, fit
badges, edge warnings, the comparison sentence, the warnings and diverged sections, figure
order, provenance, escaping, self-containment, the LR range test section (only with
``--finder-table``) and the hyperparameter search section (only with ``--methods``)."""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path
from typing import Any, Dict, List

import pandas as pd
import pytest
from hpo_synthetic import all_trials, make_finder_vs_grid, make_grid_best, make_grid_runs

from pipeline.analysis.advice import study_warnings
from pipeline.analysis.methods import method_comparison
from pipeline.report.build import build_report, main
from pipeline.figures.registry import FIGURES
from pipeline.report.figures import caption_html
from pipeline.report.finder import finder_sentence, relative_text
from pipeline.analysis.diagnosis import FIT_COLORS, FIT_TEXT_COLORS
from pipeline.config.rates import rate_label
from pipeline.report.html import fit_badge
from pipeline.report.methods import methods_sentence
from pipeline.report.results import BEST_READ, edge_warning, schedule_comparison
from pipeline.tables import BEST, FINDER_VS_GRID, METHODS

NAN = math.nan
#: Enough of a PNG for the report, which embeds bytes without decoding them.
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00fake image body\xff"

CONFIG_TEXT = """\
study:
  name: demo
  seeds: [0, 1]
rates: [0.001, 0.01, 0.1]
command: snakemake --cores all --config overrides="optimizer=[adam,sgd] study.name=demo"
"""


def make_best(cosine: str = "cosine") -> pd.DataFrame:
    """best.csv: adam/constant on the low edge, sgd/cosine on the high edge."""
    rows: List[Dict[str, Any]] = [
        # optimizer, schedule, lr, loss mean, loss std, acc mean, acc std, seeds, diverged, at_edge, edge
        ("adam", "constant", 1e-3, 0.25, 0.0, 0.9, 0.01, 2, 1 / 6, True, "low"),
        ("adam", cosine, 1e-2, 0.125, 0.0, 0.95, 0.005, 2, 1 / 6, False, NAN),
        ("sgd", "constant", 3.162e-2, 0.5, 0.25, 0.8, 0.02, 2, 0.0, False, NAN),
        ("sgd", cosine, 1e-1, 0.75, 0.125, 0.7, 0.03, 1, 1 / 3, True, "high"),
    ]
    return pd.DataFrame(rows, columns=BEST_READ)


def make_runs(cosine: str = "cosine") -> pd.DataFrame:
    statuses = ["ok"] * 9 + ["diverged"] * 3
    return pd.DataFrame(
        {
            "optimizer": ["adam"] * 6 + ["sgd"] * 6,
            "schedule": (["constant"] * 3 + [cosine] * 3) * 2,
            "lr": [1e-3, 1e-2, 1e-1] * 4,
            "seed": [0] * 12,
            "status": statuses,
            "best_val_loss": [0.5] * 9 + [NAN] * 3,
        }
    )


def make_study() -> Dict[str, Any]:
    return {
        "study": {"name": "demo", "seeds": [0, 1]},
        "rates": [0.001, 0.01, 0.1],
        "command": 'snakemake --cores all --config overrides="optimizer=[adam,sgd] study.name=demo"',
    }


@pytest.fixture()
def figure_path(tmp_path: Path) -> Path:
    path = tmp_path / "lr_sensitivity.png"
    path.write_bytes(PNG)
    return path


def recommended_rows(page: str) -> List[str]:
    """The body rows of the first table on the page (the recommendations)."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr>(.*?)</tr>", body)


def cells(row: str) -> List[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", row)


def test_one_row_per_optimizer_and_schedule(figure_path: Path) -> None:
    page = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path})
    rows = [cells(row) for row in recommended_rows(page)]
    assert [row[:3] for row in rows] == [
        ["adam", "constant", "1e-3"],
        ["adam", "cosine", "1e-2"],
        ["sgd", "constant", "3.162e-2"],
        ["sgd", "cosine", "1e-1"],
    ]
    assert rows[0][4:8] == ["0.2500 ± 0.0000", "0.9000 ± 0.0100", "2", "16.7%"]
    assert rows[2][4:8] == ["0.5000 ± 0.2500", "0.8000 ± 0.0200", "2", "0.0%"]
    assert '<table id="recommended">' in page


def test_edge_warning_only_on_edge_rows(figure_path: Path) -> None:
    page = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path})
    warnings = [cells(row)[8] for row in recommended_rows(page)]
    assert warnings == [
        "at the low edge of the grid: widen it downwards",
        "",
        "",
        "at the high edge of the grid: widen it upwards",
    ]
    table = page.split('<table id="recommended">', 1)[1].split("</table>", 1)[0]
    assert table.count("widen it") == 2


def test_edge_warning() -> None:
    assert edge_warning(True, "low") == "at the low edge of the grid: widen it downwards"
    assert edge_warning(True, "high") == "at the high edge of the grid: widen it upwards"
    assert edge_warning(True, "") == "at an edge of the grid: widen it"
    assert edge_warning(False, "high") == edge_warning(False, "") == ""


def test_edge_columns_come_typed_from_best_csv(tmp_path: Path) -> None:
    # best.csv spells the flag True/False and leaves the side empty inside the grid.
    path = tmp_path / "best.csv"
    path.write_text(
        ",".join(BEST.columns) + "\n"
        + "adam,cosine,0.001,0.5,0.0,0.75,0.0,1,0.0,True,low,good,2.0\n"
        + "sgd,cosine,0.01,0.5,0.0,0.75,0.0,1,0.0,False,,good,2.0\n",
        encoding="utf-8",
    )  # fmt: skip
    best = BEST.read(path)
    assert list(best["at_edge"]) == [True, False] and list(best["edge"]) == ["low", ""]
    assert [edge_warning(row.at_edge, row.edge) for row in best.itertuples()] == [
        "at the low edge of the grid: widen it downwards",
        "",
    ]


def test_sentence_names_winner_and_margin(figure_path: Path) -> None:
    best = make_best()
    adam = "adam: cosine (at lr 1e-2) got the lowest best val_loss, 0.125, beating the runner-up constant (0.25) by 0.125 (50.0% lower)."
    sgd = "sgd: constant (at lr 3.162e-2) got the lowest best val_loss, 0.5, beating the runner-up cosine (0.75) by 0.25 (33.3% lower)."
    assert schedule_comparison(best, "adam") == adam
    assert schedule_comparison(best, "sgd") == sgd
    page = build_report(make_runs(), best, make_study(), {"lr_sensitivity": figure_path})
    assert f"<li>{adam}</li>" in page and f"<li>{sgd}</li>" in page


def test_sentence_without_runner_up() -> None:
    best = make_best()
    only = best[(best["optimizer"] == "adam") & (best["schedule"] == "constant")]
    assert schedule_comparison(only, "adam") == (
        "adam: constant (at lr 1e-3) got the lowest best val_loss, 0.25; it is the only schedule studied."
    )
    nan_loss = best.copy()
    nan_loss.loc[0, "best_val_loss_mean"] = NAN
    assert schedule_comparison(nan_loss, "adam").endswith("; no other schedule reached a finite loss.")


def test_page_is_self_contained(figure_path: Path) -> None:
    page = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path})
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, flags=re.IGNORECASE)
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert sources == ["data:image/png;base64," + base64.b64encode(PNG).decode("ascii")]
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "max-width: 100%" in page and "overflow-x: auto" in page


def test_page_order_and_contents(figure_path: Path) -> None:
    page = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path})
    assert "<h1>Learning-rate study: demo</h1>" in page
    order = [
        "<h1>",
        "Recommended learning rates",
        "<li>adam:",
        '<h2 id="warnings">Warnings</h2>',
        "<h2>Learning-rate sensitivity</h2>",
        "<figcaption>",
        "<h2>Diverged runs per schedule</h2>",
        "<h2>Study settings</h2>",
        "<h2>Reproduce</h2>",
    ]
    positions = [page.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert "<p>12 runs: 9 ok, 3 diverged.</p>" in page
    command = "snakemake --cores all --config overrides=&quot;optimizer=[adam,sgd] study.name=demo&quot;"
    assert f'<pre class="command"><code>{command}</code></pre>' in page


def test_html_escaping(figure_path: Path) -> None:
    evil = "<b>cos</b>"
    study = make_study()
    study["study"]["name"] = "a & <i>b</i>"
    page = build_report(make_runs(evil), make_best(evil), study, {"lr_sensitivity": figure_path})
    assert "<b>" not in page and "<i>" not in page
    assert "&lt;b&gt;cos&lt;/b&gt;" in page
    assert "<h1>Learning-rate study: a &amp; &lt;i&gt;b&lt;/i&gt;</h1>" in page
    assert "adam: &lt;b&gt;cos&lt;/b&gt; (at lr 1e-2) got the lowest" in page


def test_rate_label() -> None:
    assert [rate_label(value) for value in (1e-4, 3.162e-4, 1.0, 0.1)] == ["1e-4", "3.162e-4", "1e0", "1e-1"]


def test_cli_writes_report(tmp_path: Path, figure_path: Path) -> None:
    runs_path, best_path, config_path = tmp_path / "runs.csv", tmp_path / "best.csv", tmp_path / "config.yaml"
    make_runs().to_csv(runs_path, index=False)
    make_best().to_csv(best_path, index=False)
    config_path.write_text(CONFIG_TEXT, encoding="utf-8")
    out = tmp_path / "out" / "report.html"
    main(
        [
            "--runs", str(runs_path),
            "--best", str(best_path),
            "--config", str(config_path),
            "--figure", f"lr_sensitivity={figure_path}",
            "--out", str(out),
        ]
    )  # fmt: skip
    page = out.read_text(encoding="utf-8")
    # The config file is shown verbatim (escaped), not re-dumped.
    assert "<pre>" + CONFIG_TEXT.replace('"', "&quot;") + "</pre>" in page
    # CSV round trip: at_edge/edge read back from text still give the right warnings.
    assert [cells(row)[8] for row in recommended_rows(page)] == [
        "at the low edge of the grid: widen it downwards",
        "",
        "",
        "at the high edge of the grid: widen it upwards",
    ]
    assert sorted(path.name for path in out.parent.iterdir()) == ["report.html"]


def test_cli_rejects_malformed_figure(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--runs", "r.csv", "--best", "b.csv", "--config", "c.yaml", "--figure", "no-equals-sign", "--out", "x.html"])


# --------------------------------------------------------------------------------------
# Fit badges, warnings, figures, the diverged table, provenance
# --------------------------------------------------------------------------------------


def full_study() -> Dict[str, Any]:
    """A config.yaml mapping as pipeline.config.studyfile writes it (grid, epochs, diagnosis, provenance)."""
    return {
        "study": {"name": "demo", "seeds": [0, 1], "epochs": 10, "grid": {"min": 1e-3, "max": 1e-1, "points": 3, "values": None}},
        "diagnosis": {"diverged_warning": 0.3, "early_best": 0.1, "late_best": 0.75},
        "rates": [0.001, 0.01, 0.1],
        "command": "snakemake --cores all",
        "versions": {"python": "3.11.9", "tensorflow": "2.21.0"},
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
    }


def clean_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """One optimizer × schedule, three rates, two seeds, the middle rate best: no warning."""
    runs = pd.DataFrame(
        {
            "optimizer": ["adam"] * 6,
            "schedule": ["cosine"] * 6,
            "lr": [1e-3, 1e-3, 1e-2, 1e-2, 1e-1, 1e-1],
            "seed": [0, 1] * 3,
            "status": ["ok"] * 6,
            "best_val_loss": [0.5, 0.5, 0.25, 0.25, 0.75, 0.75],
            "best_epoch": [5] * 6,
        }
    )
    best = pd.DataFrame(
        [("adam", "cosine", 1e-2, 0.25, 0.0, 0.9, 0.0, 2, 0.0, False, "", "good", 5.0)],
        columns=[*make_best().columns, "fit", "best_epoch_mean"],
    )
    return runs, best


def test_fit_badges_in_the_recommended_table(figure_path: Path) -> None:
    best = make_best()
    best["fit"] = ["good", "overfit", NAN, "diverged"]
    page = build_report(make_runs(), best, make_study(), {"lr_sensitivity": figure_path})
    assert [cells(row)[3] for row in recommended_rows(page)] == [
        '<span class="fit fit-good">good</span>',
        '<span class="fit fit-overfit">overfit</span>',
        '<span class="fit fit-none">n/a</span>',
        '<span class="fit fit-diverged">diverged</span>',
    ]
    for label, colour in FIT_COLORS.items():
        assert f".fit-{label} {{ background: {colour}; color: {FIT_TEXT_COLORS[label]}; }}" in page


def test_fit_badge_colours_and_unknown_labels() -> None:
    from pipeline.figures import fitting

    # The badges wear the fitting map's colours, text colours included: one set, in diagnosis.
    assert fitting.FIT_COLORS is FIT_COLORS and fitting.FIT_TEXT_COLORS is FIT_TEXT_COLORS
    # The page's CSS spelling: white on the dark colours, black on the light ones.
    assert set(FIT_TEXT_COLORS.values()) == {"#fff", "#000"} and set(FIT_TEXT_COLORS) == set(FIT_COLORS)
    assert fit_badge("unstable") == '<span class="fit fit-unstable">unstable</span>'
    assert fit_badge('"><i>x</i>') == '<span class="fit fit-none">&quot;&gt;&lt;i&gt;x&lt;/i&gt;</span>'
    assert fit_badge(None) == fit_badge("") == '<span class="fit fit-none">n/a</span>'


def test_without_fit_column_badges_say_n_a(figure_path: Path) -> None:
    page = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path})
    assert {cells(row)[3] for row in recommended_rows(page)} == {'<span class="fit fit-none">n/a</span>'}


def warnings_section(page: str) -> str:
    return re.split(r"<h2|<section", page.split('<h2 id="warnings">Warnings</h2>', 1)[1], maxsplit=1)[0]


def test_warnings_section_lists_study_warnings(figure_path: Path) -> None:
    runs, best, study = make_runs(), make_best(), full_study()
    expected = study_warnings(runs, best, study)
    # adam × constant and sgd × cosine sit on the grid's edges; every sgd × cosine run diverged.
    assert [(item.optimizer, item.schedule, item.kind) for item in expected] == [
        ("adam", "constant", "edge"),
        ("sgd", "cosine", "edge"),
        ("sgd", "cosine", "diverged"),
    ]
    section = warnings_section(build_report(runs, best, study, {"lr_sensitivity": figure_path}))
    items = re.findall(r'<li class="warning-(\w+)"><span class="kind">([^<]*)</span> (.*?)</li>', section)
    assert [(kind, label) for kind, label, _ in items] == [("edge", "grid edge:"), ("edge", "grid edge:"), ("diverged", "diverged:")]
    assert [text for _, _, text in items] == [html.escape(item.message) for item in expected]
    assert "adam × constant: best rate 1e-3 is the grid&#x27;s smallest; widen it downwards by a decade: study.grid.min=1e-4 study.grid.points=4" in section
    assert "No warnings." not in section


def test_no_warnings(figure_path: Path) -> None:
    runs, best = clean_tables()
    page = build_report(runs, best, full_study(), {"lr_sensitivity": figure_path})
    assert warnings_section(page).strip() == '<p class="no-warnings">No warnings.</p>'


def test_diverged_table(figure_path: Path) -> None:
    page = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path})
    table = page.split('<table id="diverged">', 1)[1].split("</table>", 1)[0]
    rows = [cells(row) for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1])]
    assert rows == [
        ["adam", "constant", "3", "0", "0.0%", "none"],
        ["adam", "cosine", "3", "0", "0.0%", "none"],
        ["sgd", "constant", "3", "0", "0.0%", "none"],
        ["sgd", "cosine", "3", "3", "100.0%", "1e-3"],
    ]


def test_figures_in_registry_order_with_their_captions(tmp_path: Path) -> None:
    names = ["cost_to_target", "mystery", *reversed(list(FIGURES))]
    figures: Dict[str, Path] = {}
    for name in dict.fromkeys(names):
        figures[name] = tmp_path / f"{name}.png"
        figures[name].write_bytes(PNG)
    page = build_report(make_runs(), make_best(), make_study(), figures)
    headings = re.findall(r'<section id="figure-([^"]+)"><h2>([^<]*)</h2>', page)
    assert headings == [(name, FIGURES[name].title) for name in FIGURES] + [("mystery", "mystery")]
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page, flags=re.DOTALL)
    assert captions == [caption_html(name) for name in FIGURES]  # the unknown figure has none
    assert page.count("<img ") == len(FIGURES) + 1


def test_captions_are_the_registry_rst_rendered() -> None:
    # The same text as Snakemake's report: inline markup rendered, nothing escaped twice.
    fitting = caption_html("fitting_map")
    assert fitting.startswith("<p>Fitting diagnosis of every grid cell:") and fitting.endswith("</p>")
    assert "<strong>D</strong> diverged" in fitting
    assert '<span class="docutils literal">fitting_map.csv</span>' in fitting
    assert "``" not in fitting and "**" not in fitting
    for name in FIGURES:
        assert caption_html(name).startswith("<p>"), name


def test_provenance(figure_path: Path) -> None:
    page = build_report(make_runs(), make_best(), full_study(), {"lr_sensitivity": figure_path})
    versions = page.split('<table id="versions">', 1)[1].split("</table>", 1)[0]
    assert [cells(row) for row in re.findall(r"<tr>(.*?)</tr>", versions.split("<tbody>", 1)[1])] == [
        ["python", "3.11.9"],
        ["tensorflow", "2.21.0"],
    ]
    assert '<code id="git-commit">0123456789abcdef0123456789abcdef01234567</code>' in page
    positions = [page.index(marker) for marker in ("<h2>Study settings</h2>", "<h2>Package versions</h2>", "git-commit", "<h2>Reproduce</h2>")]
    assert positions == sorted(positions)
    bare = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path})
    assert "<h2>Package versions</h2>" not in bare and "Git commit: not recorded" in bare


def test_escaping_in_new_sections(tmp_path: Path) -> None:
    evil = '<b>"cos"</b>'
    study = full_study()
    study["versions"] = {"<pkg>": "<1.0>"}
    study["git_commit"] = "<sha>"
    figure = tmp_path / "x.png"
    figure.write_bytes(PNG)
    best = make_best(evil)
    best["fit"] = ["<script>", "good", "good", "good"]
    page = build_report(make_runs(evil), best, study, {'<fig name="x">': figure})
    assert "<b>" not in page and "<script" not in page and "<pkg>" not in page and "<sha>" not in page
    assert "sgd × &lt;b&gt;&quot;cos&quot;&lt;/b&gt;: 100% of runs diverged" in page
    assert '<td>&lt;b&gt;&quot;cos&quot;&lt;/b&gt;</td><td class="num">3</td>' in page  # the diverged table
    assert '<section id="figure-&lt;fig name=&quot;x&quot;&gt;"><h2>&lt;fig name=&quot;x&quot;&gt;</h2>' in page
    assert '<span class="fit fit-none">&lt;script&gt;</span>' in page


# --------------------------------------------------------------------------------------
# LR range test section (--finder-table)
# --------------------------------------------------------------------------------------


def make_finder_table(optimizer: str = "adam") -> pd.DataFrame:
    """finder_vs_grid.csv: adam over two schedules (valley wins), sgd with a tie and a miss."""
    rows = [
        # optimizer, schedule, kind, lr, min, max, seeds, best lr, ratio, nearest, its loss, diverged, best loss, relative
        (optimizer, "constant", "steep", 2e-3, 1e-3, 4e-3, 2, 1e-2, 0.2, 1e-3, 0.625, 0, 0.25, 2.5),
        (optimizer, "constant", "valley", 8e-2, 8e-2, 8e-2, 1, 1e-2, 8.0, 1e-1, 0.5, 1, 0.25, 2.0),
        (optimizer, "constant", "minimum", NAN, NAN, NAN, 0, 1e-2, NAN, NAN, NAN, NAN, 0.25, NAN),
        (optimizer, "cosine", "steep", 2e-3, 1e-3, 4e-3, 2, 1e-1, 0.02, 1e-3, 0.5, 0, 0.25, 2.0),
        (optimizer, "cosine", "valley", 8e-2, 8e-2, 8e-2, 1, 1e-1, 0.8, 1e-1, 0.25, 0, 0.25, 1.0),
        (optimizer, "cosine", "minimum", NAN, NAN, NAN, 0, 1e-1, NAN, NAN, NAN, NAN, 0.25, NAN),
        ("sgd", "constant", "steep", 3.1622776601683794e-2, 1e-2, 1e-1, 3, 1e-1, 0.31622776601683794, 1e-2, 1.07, 0, 1.0, 1.07),
        ("sgd", "constant", "valley", 1e-1, 1e-1, 1e-1, 1, 1e-1, 1.0, 1e-1, 1.0, 0, 1.0, 1.0),
        ("sgd", "constant", "minimum", 0.5, 0.5, 0.5, 1, 1e-1, 5.0, 1e-1, 1.0, 0, 1.0, 1.0),
    ]
    return pd.DataFrame(rows, columns=FINDER_VS_GRID.columns)


def finder_section(page: str) -> str:
    return page.split('<section id="lr-range-test">', 1)[1].split("</section>", 1)[0]


def test_finder_section_only_with_the_table(tmp_path: Path, figure_path: Path) -> None:
    finder_png = tmp_path / "finder_curves.png"
    finder_png.write_bytes(PNG + b"finder")
    figures = {"lr_sensitivity": figure_path, "finder_curves": finder_png}
    without = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path})
    assert "LR range test</h2>" not in without and "lr-range-test" not in without
    assert without == build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path}, finder=None)
    # Without the table the range-test figure is just one more figure.
    plain = build_report(make_runs(), make_best(), make_study(), figures)
    assert '<section id="figure-finder_curves"><h2>LR range test curves</h2>' in plain and "lr-range-test" not in plain

    page = build_report(make_runs(), make_best(), make_study(), figures, finder=make_finder_table())
    order = ["<h2>Learning-rate sensitivity</h2>", '<section id="lr-range-test"><h2>LR range test</h2>',
             '<figure id="figure-finder_curves">', '<table id="finder-vs-grid">', "<h2>Diverged runs per schedule</h2>"]  # fmt: skip
    positions = [page.index(marker) for marker in order]
    assert positions == sorted(positions)
    # The figure moves into the section (once), with its caption.
    assert page.count("<img ") == 2 and 'id="figure-finder_curves"><h2>' not in page
    section = finder_section(page)
    assert base64.b64encode(PNG + b"finder").decode("ascii") in section
    assert f"<figcaption>{caption_html('finder_curves')}</figcaption>" in section
    assert "How far to trust the finder on your problem" in section


def test_finder_section_without_its_figure(figure_path: Path) -> None:
    page = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path}, finder=make_finder_table())
    section = finder_section(page)
    assert "<img " not in section and '<table id="finder-vs-grid">' in section


def finder_rows(page: str) -> List[List[str]]:
    table = page.split('<table id="finder-vs-grid">', 1)[1].split("</table>", 1)[0]
    return [cells(row) for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1])]


def test_finder_table_rows(figure_path: Path) -> None:
    page = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path}, finder=make_finder_table())
    assert finder_rows(page) == [
        ["adam", "constant", "steep", "2e-3 (1e-3–4e-3, 2 seeds)", "1e-2", "0.2×", "1e-3", "2.50×"],
        ["adam", "constant", "valley", "8e-2 (1 seed)", "1e-2", "8×", "1e-1", "2.00× (1 seed diverged there)"],
        ["adam", "constant", "minimum", "none", "1e-2", "n/a", "n/a", "no suggestion"],
        ["adam", "cosine", "steep", "2e-3 (1e-3–4e-3, 2 seeds)", "1e-1", "0.02×", "1e-3", "2.00×"],
        ["adam", "cosine", "valley", "8e-2 (1 seed)", "1e-1", "0.8×", "1e-1", "1.00× (the grid&#x27;s best)"],
        ["adam", "cosine", "minimum", "none", "1e-1", "n/a", "n/a", "no suggestion"],
        ["sgd", "constant", "steep", "3.16e-2 (1e-2–1e-1, 3 seeds)", "1e-1", "0.32×", "1e-2", "1.07×"],
        ["sgd", "constant", "valley", "1e-1 (1 seed)", "1e-1", "1×", "1e-1", "1.00× (the grid&#x27;s best)"],
        ["sgd", "constant", "minimum", "5e-1 (1 seed)", "1e-1", "5×", "1e-1", "1.00× (the grid&#x27;s best)"],
    ]


def test_finder_sentences(figure_path: Path) -> None:
    finder = make_finder_table()
    adam = (
        "adam: the valley suggestion came closest to the grid's best on average: 1.50× its best validation "
        "loss over 2 schedules (steep 2.25×, minimum: none)."
    )
    sgd = (
        "sgd: the valley and minimum suggestions came equally close to the grid's best on average: 1.00× its "
        "best validation loss over 1 schedule (steep 1.07×)."
    )
    assert finder_sentence(finder, "adam") == adam
    assert finder_sentence(finder, "sgd") == sgd
    nothing = finder.assign(relative_val_loss=NAN)
    assert finder_sentence(nothing, "sgd") == "sgd: no suggestion of the range test could be compared with the grid."
    section = finder_section(build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path}, finder=finder))
    assert f"<li>{html.escape(adam)}</li>" in section and f"<li>{html.escape(sgd)}</li>" in section


def test_relative_text() -> None:
    row = make_finder_table().iloc[1].to_dict()
    assert relative_text(row) == "2.00× (1 seed diverged there)"
    assert relative_text({**row, "nearest_diverged": 2}) == "2.00× (2 seeds diverged there)"
    assert relative_text({**row, "relative_val_loss": NAN, "nearest_diverged": 2}) == "n/a (2 seeds diverged there)"
    del row["nearest_diverged"]  # an older table without the column
    assert relative_text(row) == "2.00×"


def test_finder_section_with_nothing_to_compare(figure_path: Path) -> None:
    empty = make_finder_table().iloc[0:0]
    section = finder_section(build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path}, finder=empty))
    assert "nothing to compare" in section and "<table" not in section


def test_finder_section_escaping(figure_path: Path) -> None:
    evil = '<b>"adam"</b>'
    page = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path}, finder=make_finder_table(evil))
    section = finder_section(page)
    assert "<b>" not in section
    assert finder_rows(page)[0][0] == "&lt;b&gt;&quot;adam&quot;&lt;/b&gt;"
    assert "<li>&lt;b&gt;&quot;adam&quot;&lt;/b&gt;: the valley suggestion" in section


def test_cli_finder_table(tmp_path: Path, figure_path: Path) -> None:
    runs_path, best_path, config_path = tmp_path / "runs.csv", tmp_path / "best.csv", tmp_path / "config.yaml"
    finder_path, finder_png = tmp_path / "finder_vs_grid.csv", tmp_path / "finder_curves.png"
    make_runs().to_csv(runs_path, index=False)
    make_best().to_csv(best_path, index=False)
    make_finder_table().to_csv(finder_path, index=False)
    config_path.write_text(CONFIG_TEXT, encoding="utf-8")
    finder_png.write_bytes(PNG)
    out = tmp_path / "out" / "report.html"
    argv = ["--runs", str(runs_path), "--best", str(best_path), "--config", str(config_path),
            "--figure", f"lr_sensitivity={figure_path}", "--figure", f"finder_curves={finder_png}", "--out", str(out)]  # fmt: skip
    main(argv)
    assert "lr-range-test" not in out.read_text(encoding="utf-8")
    main([*argv, "--finder-table", str(finder_path)])
    page = out.read_text(encoding="utf-8")
    # The CSV round trip (NaN suggestions, nearest_diverged as float) reads the same.
    assert finder_rows(page) == finder_rows(
        build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path}, finder=make_finder_table())
    )
    assert '<figure id="figure-finder_curves">' in finder_section(page)
    assert sorted(path.name for path in out.parent.iterdir()) == ["report.html"]


# --------------------------------------------------------------------------------------
# Hyperparameter search section (--methods)
# --------------------------------------------------------------------------------------


def make_methods() -> pd.DataFrame:
    """methods.csv of the synthetic study of :mod:`hpo_synthetic` (its values: tests/test_methods.py)."""
    return method_comparison(make_grid_runs(), make_grid_best(), all_trials(), make_finder_vs_grid())


def hpo_section(page: str) -> str:
    return page.split('<section id="hyperparameter-search">', 1)[1].split("</section>", 1)[0]


def method_rows(page: str) -> List[List[str]]:
    table = page.split('<table id="method-comparison">', 1)[1].split("</table>", 1)[0]
    return [cells(row) for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1])]


@pytest.fixture()
def hpo_figures(tmp_path: Path, figure_path: Path) -> Dict[str, Path]:
    figures = {"lr_sensitivity": figure_path}
    for name in ("hpo_history", "hpo_trials"):
        figures[name] = tmp_path / f"{name}.png"
        figures[name].write_bytes(PNG + name.encode())
    return figures


def test_hpo_section_only_with_methods(hpo_figures: Dict[str, Path], figure_path: Path) -> None:
    plain = build_report(make_runs(), make_best(), make_study(), hpo_figures)
    assert "hyperparameter-search" not in plain and "method-comparison" not in plain
    assert plain == build_report(make_runs(), make_best(), make_study(), hpo_figures, methods=None)
    # Without the table the search figures are ordinary figures, with their headings.
    for name in ("hpo_history", "hpo_trials"):
        assert f'<section id="figure-{name}"><h2>{FIGURES[name].title}</h2>' in plain

    page = build_report(make_runs(), make_best(), make_study(), hpo_figures, finder=make_finder_table(), methods=make_methods())
    order = ["<h2>Learning-rate sensitivity</h2>", '<section id="lr-range-test">',
             '<section id="hyperparameter-search"><h2>Hyperparameter search</h2>', '<figure id="figure-hpo_history">',
             '<figure id="figure-hpo_trials">', '<table id="method-comparison">', "<h2>Diverged runs per schedule</h2>"]  # fmt: skip
    positions = [page.index(marker) for marker in order]
    assert positions == sorted(positions)
    # The two figures move into the section, once each, with their captions.
    assert page.count("<img ") == 3 and 'id="figure-hpo_history"><h2>' not in page
    section = hpo_section(page)
    for name in ("hpo_history", "hpo_trials"):
        assert base64.b64encode(PNG + name.encode()).decode("ascii") in section
        assert f"<figcaption>{caption_html(name)}</figcaption>" in section
    # The rest of the page is the page without the section.
    without = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path}, finder=make_finder_table())
    start = page.index('<section id="hyperparameter-search">')
    end = page.index("</section>", start) + len("</section>\n")
    assert page[:start] + page[end:] == without


def test_hpo_section_without_its_figures(figure_path: Path) -> None:
    page = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path}, methods=make_methods())
    section = hpo_section(page)
    assert "<img " not in section and '<table id="method-comparison">' in section


def test_method_table_rows(figure_path: Path) -> None:
    page = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path}, methods=make_methods())
    assert method_rows(page) == [
        ["grid", "0.5000", "1e-2", "adam × cosine", "14", "52", "28.0", "24 epochs, 14.0 s"],
        ["finder_valley", "0.5000", "1e-2", "adam × cosine", "4", "16", "8.0", "8 epochs, 4.0 s"],
        ["finder_minimum", "0.5000", "1e-1", "adam × cosine", "2", "6", "3.2", "4 epochs, 1.8 s"],
        ["finder_steep", "0.7500", "1e-3", "adam × cosine", "4", "16", "10.0", "never"],
        ["random", "0.5078", "2e-2", "adam × cosine", "5", "13", "8.2", "never"],
        ["tpe_median", "0.4922", "1.5e-2", "adam × cosine", "6", "17", "9.8", "11 epochs, 6.5 s"],
    ]
    header = page.split('<table id="method-comparison">', 1)[1].split("</thead>", 1)[0]
    assert re.findall(r"<th>(.*?)</th>", header) == [
        "method", "best val_loss", "rate", "optimizer × schedule", "trainings", "epochs", "seconds",
        "compute to within 1% of the grid&#x27;s best",
    ]  # fmt: skip


def test_method_table_with_the_fresh_seeds(figure_path: Path) -> None:
    """With the confirmation, each method's choice retrained on the fresh seeds: two more
    columns and the sentence naming the method whose choice did best there."""
    from pipeline.report.methods import fresh_sentence

    methods = make_methods()
    methods["fresh_val_loss"] = [0.52, 0.61, 0.52, 0.55, 0.58, math.nan]
    methods["fresh_val_loss_std"] = [0.01, 0.02, 0.01, 0.03, 0.02, math.nan]
    methods["fresh_seeds"] = [3, 3, 3, 3, 3, 0]
    methods["fresh_rank"] = pd.array([1, 5, 1, 3, 4, None], dtype="Int64")
    page = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path}, methods=methods)
    rows = method_rows(page)
    assert [row[-2:] for row in rows] == [
        ["0.5200 ± 0.0100", "1"], ["0.6100 ± 0.0200", "5"], ["0.5200 ± 0.0100", "1"], ["0.5500 ± 0.0300", "3"],
        ["0.5800 ± 0.0200", "4"], ["n/a", "n/a"],
    ]  # fmt: skip
    expected = (
        "Retrained on 3 fresh seeds (the fair test: each method's best single result above is the lowest of its own "
        "noisy runs), grid and finder_minimum chose best: mean best val_loss 0.5200."
    )
    assert fresh_sentence(METHODS.typed(methods)) == expected
    assert html.escape(expected) in page
    assert fresh_sentence(make_methods()) == ""


def test_methods_sentence(figure_path: Path) -> None:
    methods = make_methods()
    finder = (
        "finder_minimum came within 1% of the grid's best validation loss (0.5000) with the least compute: 4 epochs "
        "of training (1.8 s), counting the grid runs that confirm the suggestion but not the range test itself; "
        "the grid took 24 epochs (14.0 s)."
    )
    assert methods_sentence(methods) == finder
    section = hpo_section(
        build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path}, methods=methods)
    )
    assert f'<ul class="findings"><li>{html.escape(finder)}</li></ul>' in section
    searches = methods[~methods["method"].str.startswith("finder_")]
    assert methods_sentence(searches) == (
        "tpe_median came within 1% of the grid's best validation loss (0.5000) with the least compute: 11 epochs "
        "of training (6.5 s); the grid took 24 epochs (14.0 s)."
    )
    assert methods_sentence(methods[methods["method"] == "grid"]) == (
        "The grid itself came within 1% of the grid's best validation loss (0.5000) with the least compute: "
        "24 epochs of training (14.0 s)."
    )
    # Equal epochs and seconds: named together. Equal epochs: fewer seconds wins.
    tie = searches.copy()
    tie.loc[tie["method"] == "random", ["reached", "epochs_to_within_1pct", "seconds_to_within_1pct"]] = [True, 11.0, 6.5]
    assert methods_sentence(tie).startswith("random and tpe_median came equally within 1% of")
    tie.loc[tie["method"] == "random", "seconds_to_within_1pct"] = 7.0
    assert methods_sentence(tie).startswith("tpe_median came within 1%")
    assert methods_sentence(methods.assign(reached=False)) == (
        "No method came within 1% of the grid's best validation loss (0.5000)."
    )


def test_hpo_section_escaping(figure_path: Path) -> None:
    evil = '<b>"tpe"</b>'
    methods = make_methods()
    methods.loc[methods["method"] == "tpe_median", ["method", "optimizer"]] = [evil, "<i>adam</i>"]
    methods.loc[methods["method"].str.startswith("finder_"), "reached"] = False  # so that tpe wins
    page = build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path}, methods=methods)
    section = hpo_section(page)
    assert "<b>" not in section and "<i>" not in section
    assert method_rows(page)[-1][:4] == [
        "&lt;b&gt;&quot;tpe&quot;&lt;/b&gt;", "0.4922", "1.5e-2", "&lt;i&gt;adam&lt;/i&gt; × cosine"
    ]
    assert "<li>&lt;b&gt;&quot;tpe&quot;&lt;/b&gt; came within 1% of the grid&#x27;s best" in section


def test_hpo_section_with_nothing_to_compare(figure_path: Path) -> None:
    empty = make_methods().iloc[0:0]
    section = hpo_section(build_report(make_runs(), make_best(), make_study(), {"lr_sensitivity": figure_path}, methods=empty))
    assert "No method to compare" in section and "<table" not in section


def test_cli_methods(tmp_path: Path, hpo_figures: Dict[str, Path]) -> None:
    runs_path, best_path, config_path = tmp_path / "runs.csv", tmp_path / "best.csv", tmp_path / "config.yaml"
    methods_path = tmp_path / "methods.csv"
    make_runs().to_csv(runs_path, index=False)
    make_best().to_csv(best_path, index=False)
    make_methods().to_csv(methods_path, index=False)
    config_path.write_text(CONFIG_TEXT, encoding="utf-8")
    out = tmp_path / "out" / "report.html"
    argv = ["--runs", str(runs_path), "--best", str(best_path), "--config", str(config_path), "--out", str(out)]
    for name, path in hpo_figures.items():
        argv += ["--figure", f"{name}={path}"]
    main(argv)
    assert "hyperparameter-search" not in out.read_text(encoding="utf-8")
    main([*argv, "--methods", str(methods_path)])
    page = out.read_text(encoding="utf-8")
    # The CSV round trip (NaN costs, booleans) reads the same as the table itself.
    direct = build_report(make_runs(), make_best(), make_study(), hpo_figures, methods=make_methods())
    assert method_rows(page) == method_rows(direct) and hpo_section(page) == hpo_section(direct)
    assert '<figure id="figure-hpo_trials">' in hpo_section(page)
    assert sorted(path.name for path in out.parent.iterdir()) == ["report.html"]


def test_the_report_opens_with_one_headline_whose_every_number_is_in_best_csv(figure_path: Path) -> None:
    from pipeline.config.rates import rate_label, short_rate
    from pipeline.report.results import headline

    best = make_best()
    # adam/cosine wins (0.125) with an estimate between grid points; sgd's best (constant,
    # 0.5) has none, for a reason.
    best = best.assign(
        lr_estimate=[NAN, 7.1e-3, NAN, NAN], lr_low=[NAN, 5.2e-3, NAN, NAN], lr_high=[NAN, 9.0e-3, NAN, NAN],
        estimate_note=["edge", "", "flat", "edge"],
    )
    sentence = headline(best)
    assert sentence == (
        "adam with the cosine schedule at lr ≈ 7.1e-3 (5.2e-3–9e-3) reached the lowest best val_loss, 0.125; "
        "sgd did best with constant at the grid rate 3.162e-2 (no estimate between grid points: flat), "
        "4.5× the winner's rate, best val_loss 0.5."
    )
    # Every number in it is a value of best.csv as the report spells it, or the ratio of two.
    allowed = set()
    for _, row in best.iterrows():
        allowed |= {rate_label(row["lr"]), f"{row['best_val_loss_mean']:.4g}"}
        allowed |= {short_rate(row[key]) for key in ("lr_estimate", "lr_low", "lr_high") if not math.isnan(row[key])}
    rates = {("adam", "cosine"): 7.1e-3, ("sgd", "constant"): 3.162e-2}
    allowed.add(f"{rates[('sgd', 'constant')] / rates[('adam', 'cosine')]:.2g}")
    numbers = re.findall(r"\d+(?:\.\d+)?(?:e-?\d+)?", sentence)
    assert numbers and set(numbers) <= allowed, set(numbers) - allowed
    page = build_report(make_runs(), best, make_study(), {"lr_sensitivity": figure_path})
    first = page.split("<h1>", 1)[1]
    assert first.index('<p class="headline" id="headline">') < first.index("<h2>")
    assert html.escape(sentence) in page
    # No finite loss anywhere: the headline says so instead of naming a rate.
    assert headline(best.assign(best_val_loss_mean=NAN)).startswith("No optimizer and schedule reached a finite best val_loss")


def test_the_most_and_least_forgiving_schedule_per_optimizer(figure_path: Path) -> None:
    from pipeline.report.results import sensitivity_sentence

    best = make_best().assign(lr_sensitivity=[0.25, 0.5, NAN, 0.125])
    assert sensitivity_sentence(best, "adam") == (
        "adam: the most forgiving schedule is constant (LR sensitivity 0.25; the least, cosine, 0.5)."
    )
    assert sensitivity_sentence(best, "sgd") == "sgd: the most forgiving schedule is cosine (LR sensitivity 0.125)."
    assert sensitivity_sentence(make_best(), "adam") == ""  # an older best.csv: no sentence
    page = build_report(make_runs(), best, make_study(), {"lr_sensitivity": figure_path})
    assert "adam: the most forgiving schedule is constant" in page
    assert [cells(row)[10] for row in recommended_rows(page)] == ["0.25", "0.5", "n/a", "0.125"]
