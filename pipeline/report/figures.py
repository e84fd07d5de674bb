"""The report's figures: their titles, captions and order (from the figure registry), and their embedding.

Each figure is embedded in the page as a base64 data URI, so the report needs no file beside
it. Titles, captions and the reading order are those of :data:`pipeline.figures.registry.FIGURES`;
each caption is the registry's reStructuredText, rendered by docutils as Snakemake's report
renders the same file. The LR range test, the hyperparameter search and the batch-size sections
show their own figures (:data:`FINDER_FIGURE`, :data:`HPO_FIGURES`, :data:`BATCH_FIGURE`) inside them with :func:`_section_figure`;
the others are shown in registry order with :func:`_figure_html`, and figures of other names
after them, titled by their name.

Reading the registry imports neither matplotlib nor any figure module.
"""

from __future__ import annotations

import base64
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Mapping

from docutils.core import publish_parts
from docutils.writers.html5_polyglot import Writer as Html5Writer

from pipeline.figures.registry import BATCH_FIGURE, FIGURES, FINDER_FIGURE, HPO_FIGURES
from pipeline.report.html import _e

__all__ = ["BATCH_FIGURE", "FINDER_FIGURE", "HPO_FIGURES", "caption_html"]

#: docutils settings for a caption: no user configuration files, and a malformed caption
#: (a docutils warning) raises instead of printing an error box into the page.
_DOCUTILS_SETTINGS = {"_disable_config": True, "halt_level": 2, "report_level": 2}


@lru_cache(maxsize=None)
def caption_html(name: str) -> str:
    """The caption of registered figure ``name`` as an HTML fragment (one or more ``<p>``)."""
    rst = FIGURES[name].caption
    return publish_parts(rst, writer=Html5Writer(), settings_overrides=_DOCUTILS_SETTINGS)["body"].strip()


_MIME_TYPES: Dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}


def _image_data_uri(path: Path) -> str:
    mime = _MIME_TYPES.get(path.suffix.lower())
    if mime is None:
        raise ValueError(f"cannot embed figure {path}: unknown image type {path.suffix!r} (know {sorted(_MIME_TYPES)})")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _ordered_figures(figures: Mapping[str, Path]) -> List[tuple[str, Path]]:
    """Registered figures in registry order (the reading order), then the rest as given."""
    known = [(name, figures[name]) for name in FIGURES if name in figures]
    return known + [(name, path) for name, path in figures.items() if name not in FIGURES]


def _figure_html(name: str, path: Path) -> str:
    """A figure in a section of its own; an unregistered one is titled by its name, uncaptioned."""
    heading = FIGURES[name].title if name in FIGURES else name
    return (
        f'<section id="figure-{_e(name)}"><h2>{_e(heading)}</h2>'
        f'<figure><img src="{_image_data_uri(Path(path))}" alt="{_e(heading)}">'
        + (f"<figcaption>{caption_html(name)}</figcaption>" if name in FIGURES else "")
        + "</figure></section>"
    )


def _section_figure(name: str, path: Path) -> str:
    """A registered figure inside a section of its own (the range test, the searches), with its caption."""
    heading = FIGURES[name].title
    return (
        f'<figure id="figure-{_e(name)}"><img src="{_image_data_uri(Path(path))}" alt="{_e(heading)}">'
        f"<figcaption>{caption_html(name)}</figcaption></figure>"
    )
