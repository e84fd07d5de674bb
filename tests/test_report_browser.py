"""The report in a real browser: headless Chromium through Playwright, on a desktop and a phone.

Built from synthetic tables and real PNG figures (drawn with matplotlib's Agg backend), the page
must show every image, log no console error, request nothing but ``file:``/``data:`` URLs, show
one recommended-rate row per optimizer × schedule, and fit a 390 px wide phone screen without
horizontal scrolling of the page itself (wide tables scroll inside their own wrapper).

Skipped only where ``/usr/bin/chromium`` is missing; CI installs it (and the ``playwright``
package, whose own browser download is never used).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pandas as pd
import pytest

from pipeline.report.build import build_report
from pipeline.report.confirm import confirmation_clause

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: install it (apt-get install chromium)")

OPTIMIZERS = ("adam", "momentum")
SCHEDULES = ("constant", "cosine", "warmup_cosine")
RATES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
FITS = ("good", "overfit", "underfit", "unstable", "good", "diverged")


def synthetic_tables() -> Tuple[pd.DataFrame, pd.DataFrame]:
    """runs.csv and best.csv of 2 optimizers × 3 schedules × 5 rates × 2 seeds, the top rate diverged."""
    runs_rows: List[Dict[str, Any]] = []
    best_rows: List[Dict[str, Any]] = []
    for index, (optimizer, schedule) in enumerate((o, s) for o in OPTIMIZERS for s in SCHEDULES):
        for lr in RATES:
            for seed in (0, 1):
                diverged = lr == 1.0
                loss = math.nan if diverged else 0.3 + 0.05 * abs(math.log10(lr) + 2) + 0.01 * seed + 0.02 * index
                runs_rows.append(
                    {
                        "optimizer": optimizer,
                        "schedule": schedule,
                        "lr": lr,
                        "seed": seed,
                        "status": "diverged" if diverged else "ok",
                        "best_val_loss": loss,
                        "best_epoch": 12,
                    }
                )
        group = pd.DataFrame(runs_rows[-2 * len(RATES) :]).query("lr == 1e-2")
        best_rows.append(
            {
                "optimizer": optimizer,
                "schedule": schedule,
                # The first pair wins at the grid's low edge, so an edge warning shows.
                "lr": 1e-4 if index == 0 else 1e-2,
                "best_val_loss_mean": float(group["best_val_loss"].mean()),
                "best_val_loss_std": float(group["best_val_loss"].std(ddof=1)),
                "best_val_accuracy_mean": 0.9 - 0.01 * index,
                "best_val_accuracy_std": 0.004,
                "seeds": 2,
                "diverged_fraction": 0.2,
                "at_edge": index == 0,
                "edge": "low" if index == 0 else "",
                "fit": FITS[index],
                "best_epoch_mean": 12.0,
            }
        )
    return pd.DataFrame(runs_rows), pd.DataFrame(best_rows)


def study() -> Dict[str, Any]:
    return {
        "study": {
            "name": "browser check",
            "seeds": [0, 1],
            "epochs": 20,
            # An explicit list: its edge advice is one long unbroken override, a test of wrapping.
            "grid": {"min": 1e-4, "max": 1.0, "points": 5, "values": list(RATES)},
        },
        "diagnosis": {"diverged_warning": 0.1, "early_best": 0.1, "late_best": 0.75},
        "rates": list(RATES),
        "command": "snakemake --cores all --config overrides=\"optimizer=[adam,momentum] schedule=[constant,cosine,warmup_cosine] study.grid.values=[0.0001,0.001,0.01,0.1,1.0]\"",
        "versions": {"python": "3.11", "tensorflow": "2.21.0", "pandas": "2.2.3"},
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
    }


def draw_png(path: Path, title: str) -> Path:
    """A small real figure, like the pipeline's (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(RATES, [0.6, 0.4, 0.3, 0.45, 0.9], marker="o")
    ax.set_xscale("log")
    ax.set(title=title, xlabel="learning rate", ylabel="best val_loss")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


VERDICTS = ("confirmed", "tie", "overturned")


def synthetic_confirmation(best: pd.DataFrame) -> pd.DataFrame:
    """confirm.csv of every cell on 2 fresh seeds, the verdicts in turn (the margin's sign agreeing)."""
    rows = []
    for index, row in best.reset_index(drop=True).iterrows():
        verdict = VERDICTS[index % 3]
        margin = {"confirmed": 0.05, "tie": 0.01, "overturned": -0.04}[verdict]
        low, high = (0.01, 0.09) if verdict == "confirmed" else (-0.03, 0.05) if verdict == "tie" else (-0.07, -0.01)
        rows.append(
            {
                "optimizer": row["optimizer"], "schedule": row["schedule"], "lr": row["lr"], "runner_up_lr": 1e-3,
                "estimate_lr": 4.2e-3 if index % 2 else math.nan, "seeds": 2, "grid_loss": row["best_val_loss_mean"],
                "lr_loss": row["best_val_loss_mean"] + 0.01, "runner_up_loss": row["best_val_loss_mean"] + 0.01 + margin,
                "estimate_loss": row["best_val_loss_mean"] if index % 2 else math.nan, "margin": margin, "margin_low": low,
                "margin_high": high, "verdict": verdict, "estimate_gain": 0.01 if index % 2 else math.nan,
                "estimate_gain_low": -0.02 if index % 2 else math.nan, "estimate_gain_high": 0.04 if index % 2 else math.nan,
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    runs, best = synthetic_tables()
    figures = {name: draw_png(folder / f"{name}.png", name) for name in ("lr_sensitivity", "fitting_map", "extra_figure")}
    path = folder / "report.html"
    page = build_report(
        runs, best, study(), figures, config_text="study:\n  name: browser check\n", confirm=synthetic_confirmation(best)
    )
    path.write_text(page, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # Chromium is there, so the check must run: say what is missing.
        pytest.fail('the Python package playwright is missing: pip install "playwright>=1.45,<2"')
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Visit:
    """One page load with everything the checks need recorded: console errors, page errors, requests."""

    def __init__(self, browser: Any, url: str, **context_options: Any) -> None:
        # Offline: a stray request to the network fails at once instead of waiting, and is recorded.
        self.context = browser.new_context(offline=True, **context_options)
        self.page = self.context.new_page()
        self.console_errors: List[str] = []
        self.page_errors: List[str] = []
        self.requests: List[str] = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.goto(url, wait_until="load")

    def _on_console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def close(self) -> None:
        self.context.close()


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_renders_on_a_desktop(browser: Any, report: Path, tmp_path: Path) -> None:
    visit = Visit(browser, report.as_uri(), viewport=DESKTOP)
    try:
        page = visit.page
        images = page.evaluate("Array.from(document.images, image => [image.complete, image.naturalWidth, image.alt])")
        assert len(images) == 3
        broken = [alt for complete, width, alt in images if not complete or width <= 0]
        assert broken == [], f"broken images: {broken}"

        # The page opens with the headline, above the first section.
        headline = page.locator("p#headline")
        assert headline.count() == 1 and "reached the lowest best val_loss" in headline.inner_text()
        assert headline.bounding_box()["y"] < page.locator("h2").first.bounding_box()["y"]
        # The winner (adam × constant, the lowest mean) was confirmed; its numbers are confirm.csv's.
        _, best = synthetic_tables()
        winner = synthetic_confirmation(best).iloc[0]
        assert confirmation_clause(winner) in headline.inner_text()
        assert "confirmed on 2 fresh seeds: the grid rate 1e-4 beat the runner-up 1e-3 by 0.05" in headline.inner_text()
        confirmation = page.locator("table#confirmation tbody tr")
        assert confirmation.count() == len(OPTIMIZERS) * len(SCHEDULES)
        assert page.locator("table#confirmation .fit-good").count() == 2  # the two confirmed cells' badges
        assert page.locator("table#recommended").count() == 1
        assert page.locator("table#recommended tbody tr").count() == len(OPTIMIZERS) * len(SCHEDULES)
        assert page.locator("table#recommended .fit-good").count() == 2
        badge = page.locator("table#recommended .fit-diverged").first
        assert badge.evaluate("element => getComputedStyle(element).backgroundColor") == "rgb(139, 26, 26)"
        assert page.locator("ul.warnings li").count() >= 2  # the edge and the diverged shares
        assert page.locator("table#diverged tbody tr").count() == len(OPTIMIZERS) * len(SCHEDULES)

        assert visit.console_errors == [] and visit.page_errors == []
        outside = [url for url in visit.requests if not url.startswith(("file:", "data:"))]
        assert outside == [], f"requests beyond file:/data: URLs: {outside}"

        screenshot = tmp_path / "report-desktop.png"
        page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.is_file() and is_png(screenshot) and screenshot.stat().st_size > 10_000
    finally:
        visit.close()


def test_report_fits_a_phone(browser: Any, report: Path, tmp_path: Path) -> None:
    visit = Visit(browser, report.as_uri(), viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        page = visit.page
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"] + 1, f"the page is {width} px wide on a {PHONE['width']} px phone"
        # Images shrink to the screen; tables keep their columns and scroll in their wrapper.
        image_widths = page.evaluate("Array.from(document.images, image => image.getBoundingClientRect().right)")
        assert max(image_widths) <= PHONE["width"] + 1
        wrapper = page.locator("div.scroll:has(table#recommended)")
        assert wrapper.evaluate("element => getComputedStyle(element).overflowX") == "auto"
        assert page.locator("table#recommended tbody tr").count() == len(OPTIMIZERS) * len(SCHEDULES)
        assert visit.console_errors == [] and visit.page_errors == []
        assert [url for url in visit.requests if not url.startswith(("file:", "data:"))] == []

        screenshot = tmp_path / "report-phone.png"
        page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.is_file() and is_png(screenshot) and screenshot.stat().st_size > 10_000
    finally:
        visit.close()
