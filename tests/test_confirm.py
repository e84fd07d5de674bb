"""The confirmation on fresh seeds: the plan (what is retrained), the paired interval and the
verdicts on synthetic run folders built to confirm, tie and overturn, the fair method ranking,
and what the report and the warnings say with it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.analysis.aggregate import best_rates
from pipeline.analysis.confirm import (
    comparison_loss,
    confirm_plan,
    main as confirm_main,
    paired_interval,
    plan_members,
    plan_optimizers,
    verdict,
)
from pipeline.analysis.methods import with_fresh_seeds
from pipeline.tables import BEST, CONFIRM, METHODS, RUNS, Verdict
from factories import write_run

RATES = [1e-3, 3.162e-3, 1e-2, 3.162e-2, 1e-1]


def grid_runs(cells: dict) -> pd.DataFrame:
    """A runs.csv from ``{(optimizer, schedule): {lr: [best_val_loss per seed]}}`` (NaN = diverged)."""
    rows = []
    for (optimizer, schedule), rates in cells.items():
        for lr, losses in rates.items():
            for seed, loss in enumerate(losses):
                rows.append(
                    {
                        "optimizer": optimizer, "schedule": schedule, "lr": lr, "seed": seed,
                        "status": "diverged" if math.isnan(loss) else "ok", "best_val_loss": loss,
                        "best_val_accuracy": 0.5, "best_epoch": 3, "final_val_loss": loss, "initial_loss": 2.3,
                    }
                )  # fmt: skip
    return pd.DataFrame(rows)


#: adam × cosine: best 1e-2, runner-up 3.162e-3, a curved bracket (an estimate);
#: adam × constant: best 1e-3 on the edge (no estimate), runner-up 3.162e-3;
#: momentum × cosine: best 1e-1 (edge), 3.162e-2 runner-up; every rate of momentum × constant diverged.
CELLS = {
    ("adam", "cosine"): {1e-3: [1.0, 1.02], 3.162e-3: [0.8, 0.82], 1e-2: [0.7, 0.71], 3.162e-2: [0.9, 0.88], 1e-1: [1.5, 1.6]},
    ("adam", "constant"): {1e-3: [0.6, 0.61], 3.162e-3: [0.65, 0.66], 1e-2: [0.9, 0.91]},
    ("momentum", "cosine"): {1e-2: [1.2, 1.1], 3.162e-2: [0.95, 0.9], 1e-1: [0.85, 0.86]},
    ("momentum", "constant"): {1e-2: [math.nan, math.nan], 1e-1: [math.nan, math.nan]},
}


@pytest.fixture
def grid() -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = grid_runs(CELLS)
    return runs, best_rates(runs)


# --------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------


def test_the_plan_retrains_winner_runner_up_and_estimate_of_every_cell_with_a_finite_loss(grid) -> None:
    runs, best = grid
    plan = confirm_plan(runs, best, [1000, 1001, 1002])
    cells = {(cell["optimizer"], cell["schedule"]): cell for cell in plan["cells"]}
    assert list(cells) == [("adam", "constant"), ("adam", "cosine"), ("momentum", "cosine")]  # every rate diverged: left out
    estimate = float(best[(best["optimizer"] == "adam") & (best["schedule"] == "cosine")]["lr_estimate"].iloc[0])
    assert math.isfinite(estimate)
    assert cells[("adam", "cosine")] == {
        "optimizer": "adam", "schedule": "cosine", "lr": 1e-2, "runner_up_lr": 3.162e-3,
        "estimate_lr": float(f"{estimate:.2e}"),  # three significant digits, as the report shows it
    }  # fmt: skip
    assert cells[("adam", "constant")]["estimate_lr"] is None  # edge: no estimate to retrain
    assert cells[("momentum", "cosine")]["runner_up_lr"] == 3.162e-2
    # Every distinct rate once, on every seed.
    assert plan_optimizers(plan) == ["adam", "momentum"]
    members = plan_members(plan, "adam")
    assert len(members) == 3 * (2 + 3) and sorted({seed for _, seed, _ in members}) == [1000, 1001, 1002]
    assert json.loads(json.dumps(plan)) == plan


def test_cells_best_confirms_only_the_best_schedule_of_each_optimizer(grid) -> None:
    runs, best = grid
    plan = confirm_plan(runs, best, [7, 8], cells="best")
    assert [(cell["optimizer"], cell["schedule"]) for cell in plan["cells"]] == [("adam", "constant"), ("momentum", "cosine")]


def test_method_choices_join_the_plan_and_a_shared_rate_is_trained_once(grid) -> None:
    runs, best = grid
    methods = pd.DataFrame(
        [
            {"method": "grid", "optimizer": "adam", "schedule": "constant", "lr": 1e-3},
            {"method": "tpe", "optimizer": "adam", "schedule": "cosine", "lr": 0.0071234},
            {"method": "finder_valley", "optimizer": "", "schedule": "", "lr": math.nan},  # chose nothing
        ]
    )
    plan = confirm_plan(runs, best, [5, 6], methods=methods)
    assert [method["method"] for method in plan["methods"]] == ["grid", "tpe"]
    rates = [(member["optimizer"], member["schedule"], member["lr"]) for member in plan["members"]]
    assert len(rates) == len(set(rates))
    assert ("adam", "cosine", 0.0071234) in rates and rates.count(("adam", "constant", 1e-3)) == 1


# --------------------------------------------------------------------------------------
# The interval and the verdict
# --------------------------------------------------------------------------------------


def test_paired_interval_by_hand_and_against_scipys_paired_t_test() -> None:
    mean, low, high = paired_interval([1.0, 2.0, 3.0])
    half = 4.302653 / math.sqrt(3)  # t(0.975, 2) from a t table × sd 1 / sqrt(3)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half), rel=1e-6)
    rng = np.random.default_rng(3)
    first, second = rng.normal(1.0, 0.1, 5), rng.normal(1.05, 0.1, 5)
    reference = stats.ttest_rel(first, second).confidence_interval(0.95)
    _, low, high = paired_interval((first - second).tolist())
    assert (low, high) == pytest.approx((reference.low, reference.high), rel=1e-12)


def test_paired_interval_edge_cases() -> None:
    assert paired_interval([0.25]) == (0.25, *(pytest.approx(math.nan, nan_ok=True),) * 2)
    assert all(math.isnan(value) for value in paired_interval([]))
    assert paired_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)  # no spread: a zero-width interval
    assert paired_interval([1.0, math.nan, 2.0])[0] == 1.5  # a missing pair is left out


def test_verdict_from_the_interval() -> None:
    assert verdict(0.01, 0.2) == Verdict.CONFIRMED
    assert verdict(-0.2, -0.01) == Verdict.OVERTURNED
    assert verdict(-0.1, 0.1) == Verdict.TIE
    assert verdict(0.0, 0.1) == Verdict.TIE  # touching 0 is not above it
    assert verdict(math.nan, math.nan) == Verdict.TIE


def test_a_diverged_run_counts_at_its_untrained_loss() -> None:
    runs = pd.DataFrame(
        {"status": ["ok", "diverged", "ok"], "best_val_loss": [0.5, 0.4, math.nan], "initial_loss": [2.3, 2.4, 2.5]}
    )
    assert comparison_loss(runs).tolist() == [0.5, 2.4, 2.5]


# --------------------------------------------------------------------------------------
# Verdicts from synthetic run folders
# --------------------------------------------------------------------------------------


def history(best: float) -> list[dict]:
    """Four epochs whose lowest val_loss is ``best`` (at epoch 3)."""
    return [
        {"epoch": epoch, "lr": 0.01, "loss": 1.0, "accuracy": 0.5, "val_loss": value, "val_accuracy": 0.5, "seconds": 0.1}
        for epoch, value in zip(range(1, 5), [best + 0.3, best + 0.1, best, best + 0.05])
    ]


#: Fresh-seed losses (three seeds) per cell: (recommended, runner-up, estimate).
FRESH = {
    # The runner-up loses on every seed by 0.1 ± 0.01: confirmed.
    ("adam", "cosine"): ([0.70, 0.72, 0.71], [0.80, 0.83, 0.81], [0.69, 0.70, 0.70]),
    # The runner-up wins on every seed by about 0.05: overturned.
    ("adam", "constant"): ([0.60, 0.62, 0.61], [0.55, 0.57, 0.555], None),
    # Either way round seed by seed: a tie.
    ("momentum", "cosine"): ([0.85, 0.90, 0.88], [0.90, 0.86, 0.87], None),
}


def write_fresh_runs(study: Path, plan: dict) -> list[Path]:
    """The confirmation's run folders with the FRESH losses, and one manifest per optimizer."""
    manifests = []
    for optimizer in plan_optimizers(plan):
        entries = []
        for cell in plan["cells"]:
            if cell["optimizer"] != optimizer:
                continue
            losses = FRESH[(optimizer, cell["schedule"])]
            for rate, values in zip((cell["lr"], cell["runner_up_lr"], cell["estimate_lr"]), losses):
                if rate is None or values is None:
                    continue
                for seed, value in zip(plan["seeds"], values):
                    folder = write_run(
                        study / "confirm", optimizer, cell["schedule"], seed, rate, history(value),
                        initial_loss=2.3, steps=40, seconds=1.0, device="CPU",
                    )  # fmt: skip
                    entries.append({"run_dir": str(folder)})
        manifest = study / "confirm" / "populations" / optimizer / "part0.json"
        manifest.parent.mkdir(parents=True)
        manifest.write_text(json.dumps({"runs": entries}))
        manifests.append(manifest)
    return manifests


@pytest.fixture
def confirmed(grid, tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """confirm.csv and confirm/runs.csv of the synthetic study, through the command line."""
    runs, best = grid
    study = tmp_path / "results" / "synthetic"
    study.mkdir(parents=True)
    BEST.write(best, study / "best.csv")
    plan = confirm_plan(runs, best, [1000, 1001, 1002])
    (study / "plan.json").write_text(json.dumps(plan))
    manifests = write_fresh_runs(study, plan)
    confirm_main(
        ["table", "--plan", str(study / "plan.json"), "--manifests", *map(str, manifests), "--best", str(study / "best.csv"),
         "--runs-out", str(study / "confirm" / "runs.csv"), "--out", str(study / "confirm.csv")]
    )  # fmt: skip
    return CONFIRM.read(study / "confirm.csv"), RUNS.read(study / "confirm" / "runs.csv")


def test_verdicts_on_run_folders_built_to_confirm_overturn_and_tie(confirmed, grid) -> None:
    table, fresh = confirmed
    _, best = grid
    assert list(table.columns) == CONFIRM.columns
    rows = {(row["optimizer"], row["schedule"]): row for _, row in table.iterrows()}
    assert {cell: str(row["verdict"]) for cell, row in rows.items()} == {
        ("adam", "cosine"): "confirmed",
        ("adam", "constant"): "overturned",
        ("momentum", "cosine"): "tie",
    }
    for cell, row in rows.items():
        chosen, runner, estimate = (np.array(values) if values is not None else None for values in FRESH[cell])
        differences = runner - chosen
        reference = stats.ttest_rel(runner, chosen).confidence_interval(0.95)
        assert row["seeds"] == 3
        assert row["lr_loss"] == pytest.approx(chosen.mean(), rel=1e-12)
        assert row["runner_up_loss"] == pytest.approx(runner.mean(), rel=1e-12)
        assert row["margin"] == pytest.approx(differences.mean(), rel=1e-9)
        assert (row["margin_low"], row["margin_high"]) == pytest.approx((reference.low, reference.high), rel=1e-9)
        grid_row = best[(best["optimizer"] == cell[0]) & (best["schedule"] == cell[1])].iloc[0]
        assert row["grid_loss"] == grid_row["best_val_loss_mean"] and row["lr"] == grid_row["lr"]
        if estimate is None:
            assert math.isnan(row["estimate_lr"]) and math.isnan(row["estimate_gain"])
        else:
            assert row["estimate_loss"] == pytest.approx(estimate.mean(), rel=1e-12)
            assert row["estimate_gain"] == pytest.approx((chosen - estimate).mean(), rel=1e-9)
            assert row["estimate_gain_low"] < row["estimate_gain"] < row["estimate_gain_high"]
    assert len(fresh) == 3 * 3 + 2 * 3 + 2 * 3 and set(fresh["seed"]) == {1000, 1001, 1002}


def test_no_runner_up_and_an_empty_plan() -> None:
    runs = grid_runs({("adam", "constant"): {1e-2: [0.5, 0.6]}})
    plan = confirm_plan(runs, best_rates(runs), [3, 4])
    assert plan["cells"][0]["runner_up_lr"] is None
    from pipeline.analysis.confirm import confirm_table

    fresh = grid_runs({("adam", "constant"): {1e-2: [0.55, 0.65]}}).assign(seed=[3, 4])
    table = confirm_table(plan, fresh, best_rates(runs))
    assert table["verdict"].tolist() == [Verdict.NO_RUNNER_UP] and table["lr_loss"].iloc[0] == pytest.approx(0.6)
    diverged = grid_runs({("adam", "constant"): {1e-2: [math.nan, math.nan]}})
    empty = confirm_plan(diverged, best_rates(diverged), [3, 4])
    assert empty["cells"] == [] and empty["members"] == []
    assert confirm_table(empty, fresh.iloc[:0], best_rates(diverged)).empty


# --------------------------------------------------------------------------------------
# The fair method comparison
# --------------------------------------------------------------------------------------


def test_methods_ranked_on_the_fresh_seeds(confirmed) -> None:
    _, fresh = confirmed
    methods = pd.DataFrame(
        [
            # The grid's single best looks better than the search's, but on fresh seeds it is not.
            {"method": "grid", "best_val_loss": 0.55, "lr": 1e-3, "optimizer": "adam", "schedule": "constant"},
            {"method": "tpe", "best_val_loss": 0.6, "lr": 1e-2, "optimizer": "adam", "schedule": "cosine"},
            {"method": "random", "best_val_loss": 0.65, "lr": 1e-2, "optimizer": "adam", "schedule": "cosine"},
            {"method": "finder_valley", "best_val_loss": math.nan, "lr": math.nan, "optimizer": "", "schedule": ""},
        ]
    )
    for column in METHODS.required:
        if column not in methods:
            methods[column] = 0
    table = with_fresh_seeds(METHODS.typed(methods[METHODS.required]), fresh)
    assert list(table.columns) == METHODS.columns
    assert table["fresh_val_loss"].iloc[0] == pytest.approx(np.mean([0.60, 0.62, 0.61]))
    assert table["fresh_val_loss"].iloc[1] == pytest.approx(np.mean([0.70, 0.72, 0.71]))
    assert table["fresh_val_loss_std"].iloc[0] == pytest.approx(np.std([0.60, 0.62, 0.61], ddof=1))
    assert table["fresh_seeds"].tolist() == [3, 3, 3, 0]
    assert table["fresh_rank"].tolist()[:3] == [1, 2, 2] and pd.isna(table["fresh_rank"].iloc[3])


# --------------------------------------------------------------------------------------
# The report and the warnings
# --------------------------------------------------------------------------------------


def test_the_headline_gives_the_winners_verdict_with_its_numbers(confirmed, grid) -> None:
    from pipeline.config.rates import rate_label
    from pipeline.report.results import headline

    table, _ = confirmed
    _, best = grid
    text = headline(best, table)
    winner = table[(table["optimizer"] == "adam") & (table["schedule"] == "constant")].iloc[0]  # lowest grid mean
    # Overturned: the runner-up beat the grid rate by -margin, the interval mirrored.
    expected = (
        f"overturned on 3 fresh seeds: the runner-up {rate_label(winner['runner_up_lr'])} beat the grid rate "
        f"{rate_label(winner['lr'])} by {-winner['margin']:.3g} (95% interval {-winner['margin_high']:.3g} to "
        f"{-winner['margin_low']:.3g}): prefer the runner-up"
    )
    assert expected in text, text
    assert "momentum did best with cosine" in text and "(tie on 3 fresh seeds)" in text
    assert headline(best) == headline(best, None) and "fresh" not in headline(best)


def test_seeds_disagree_points_at_the_verdict(confirmed) -> None:
    from pipeline.analysis.advice import study_warnings

    table, _ = confirmed
    runs = grid_runs({("momentum", "cosine"): {1e-2: [1.2, 1.1], 3.162e-2: [0.95, 0.9], 1e-1: [0.6, 1.15]}})
    best = best_rates(runs)
    study = {"study": {"seeds": [0, 1], "epochs": 4}}
    plain = [warning.message for warning in study_warnings(runs, best, study) if warning.kind == "seeds_disagree"]
    assert len(plain) == 1 and "add seeds: study.seeds=[0,1,2,3]" in plain[0]
    settled = [warning.message for warning in study_warnings(runs, best, study, table) if warning.kind == "seeds_disagree"]
    row = table[(table["optimizer"] == "momentum") & (table["schedule"] == "cosine")].iloc[0]
    assert len(settled) == 1 and "add seeds" not in settled[0]
    assert f"the confirmation on 3 fresh seeds settles it: tie (margin {row['margin']:.3g}" in settled[0]


def test_the_report_has_the_confirmation_section(confirmed, grid) -> None:
    from pipeline.report.build import build_report

    table, _ = confirmed
    runs, best = grid
    page = build_report(runs, best, {"study": {"name": "synthetic", "seeds": [0, 1], "epochs": 4}}, {}, confirm=table)
    section = page.split('<section id="confirmation-section">')[1].split("</section>")[0]
    assert section.count("<tr>") == 1 + len(table)
    for word in ("confirmed", "overturned", "tie"):
        assert f">{word}</span>" in section
    assert page.index('id="headline"') < page.index("confirmation-section") < page.index('id="warnings"')
    assert "confirmation-section" not in build_report(runs, best, {"study": {"name": "s"}}, {})
