"""The report's HTML building blocks: the page's CSS, escaping, tables, fit badges, rates.

Every section of the study report (:mod:`pipeline.report`) is built from these, so the page
escapes every piece of study text the same way (:func:`_e`, quotes included, since option
names come from user-editable YAML), puts every table in the same horizontal scroller
(:func:`_table`) and spells every grid rate as run paths do
(:func:`pipeline.config.rates.rate_label`). The names with a leading underscore are shared by
the report's modules only.
"""

from __future__ import annotations

import html
import math
from typing import Any, Sequence

from pipeline.analysis.diagnosis import FIT_COLORS, FIT_TEXT_COLORS
from pipeline.values import is_finite


_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1f2328; background: #fff; }
main { max-width: 64rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.6rem; margin: 0.5rem 0 1rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 0.75rem; border-bottom: 1px solid #d0d7de; }
/* Overrides and rate lists are long unbroken tokens: break them rather than widen the page. */
h1, h2, p, li, figcaption { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; font-size: 0.9rem; min-width: 100%; }
th, td { padding: 0.35rem 0.6rem; border-bottom: 1px solid #d0d7de; text-align: left;
         white-space: nowrap; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
/* The edge note wraps (the warnings section has the details), so the table fits a desktop. */
td.warn { color: #9a6700; background: #fff8c5; white-space: normal; min-width: 7rem; }
img { max-width: 100%; height: auto; display: block; }
figure { margin: 1rem 0; }
figcaption { font-size: 0.9rem; color: #57606a; margin-top: 0.4rem; }
pre { background: #f6f8fa; padding: 0.75rem; overflow-x: auto; font-size: 0.85rem;
      white-space: pre; border-radius: 6px; }
/* The command wraps on screen but copies as the one line it is. */
pre.command { white-space: pre-wrap; overflow-wrap: anywhere; }
ul.findings li, ul.warnings li { margin-bottom: 0.4rem; }
p.headline { font-size: 1.1rem; font-weight: 600; max-width: 60rem; }
ul.warnings { padding-left: 1.2rem; }
.kind { font-weight: 600; color: #9a6700; }
code, .docutils.literal { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em; }
.fit { display: inline-block; padding: 0 0.55em; border-radius: 1em; color: #fff; font-weight: 600;
       font-size: 0.8rem; line-height: 1.6; }
.fit-none { background: #8c959f; }
@media (max-width: 40rem) {
  main { padding: 0.75rem; }
  table { font-size: 0.85rem; }
  th, td { padding: 0.3rem 0.4rem; }
}
"""

#: One background colour per fit label (the badge classes ``fit-<label>``), the fitting map's.
_FIT_CSS = "".join(
    f".fit-{label} {{ background: {colour}; color: {FIT_TEXT_COLORS[label]}; }}\n" for label, colour in FIT_COLORS.items()
)


def _e(value: object) -> str:
    """HTML-escape any value's text, quotes included (it may land in an attribute)."""
    return html.escape(str(value), quote=True)


def _mean_std(mean: Any, std: Any, fmt: str) -> str:
    if not is_finite(mean):
        return "n/a"
    text = format(float(mean), fmt)
    if is_finite(std):
        text += " ± " + format(float(std), fmt)
    return text


def _table(header: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]], table_id: str = "") -> str:
    """An HTML table in a horizontal scroller; cells are ``(escaped HTML, css class)``.

    The scroller lets a wide table scroll on its own on a phone instead of widening the page.
    """
    head = "".join(f"<th>{_e(name)}</th>" for name in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>" for text, cls in row) + "</tr>"
        for row in rows
    )
    attribute = f' id="{_e(table_id)}"' if table_id else ""
    return f'<div class="scroll"><table{attribute}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def fit_badge(label: Any) -> str:
    """The fit label as a coloured badge (HTML); a missing or unknown label is a grey "n/a"/its text."""
    if label is None or (isinstance(label, float) and math.isnan(label)) or str(label).strip() == "":
        return '<span class="fit fit-none">n/a</span>'
    text = str(label).strip()
    css = f"fit-{text}" if text in FIT_COLORS else "fit-none"
    return f'<span class="fit {css}">{_e(text)}</span>'
