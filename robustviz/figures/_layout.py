"""One layout rule for figures of many models, and a check of it at the size they are shown.

The rule, used by the faceted figures (class divergence, pair histograms, example grids):

- **Small multiples, one shared scale.** One panel per model, wrapped into a balanced grid
  (:func:`facet_shape`) so that each panel keeps the size its content needs instead of
  shrinking to ``width / n_models``; one colour scale (and one colour bar) for all panels.
- **Labels once, at a legible size.** Shared tick labels only on the outer panels, axis
  titles once for the whole figure, tick labels thinned when their rows are too close.
- **Numbers in cells only where they fit.** A cell gets its value written in it when the
  widest value fits the cell at :data:`MIN_FONT_PT` or more (:func:`cell_font`), measured on
  the drawn figure, not guessed.
- **Outlines, not translucent fills**, when distributions of several models share a panel.

:func:`legibility_problems` checks a figure the way the report shows it: drawn at
:data:`DISPLAY_DPI` (the report inlines its PNGs at that resolution, one figure pixel per page
pixel) and scaled down to the page column (:data:`DISPLAY_MAX_PX`) when wider; every text
must be at least :data:`MIN_TEXT_PX` high there and no two texts may overlap.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterable, Iterator

import numpy as np

from robustviz._validate import check_int, check_positive

__all__ = ["DISPLAY_DPI", "DISPLAY_MAX_PX", "MIN_FONT_PT", "MIN_TEXT_PX", "font_points",
           "text_size", "fit_font", "cell_font", "facet_shape", "columns_that_fit",
           "legibility_problems"]

#: Resolution (dots per inch) of the PNGs the HTML report inlines: shown one to one.
DISPLAY_DPI = 110
#: Width (px) of the report page's column (its CSS ``max-width``); wider images shrink to it.
DISPLAY_MAX_PX = 1100
#: Smallest font size (pt) a figure writes text in: about 9 px at :data:`DISPLAY_DPI`, and
#: the usual floor for print.
MIN_FONT_PT = 6.0
#: Smallest text height (the font size, px) :func:`legibility_problems` accepts on the page.
MIN_TEXT_PX = 9.0


def font_points(size) -> float:
    """A matplotlib font size (points or a name such as ``"small"``, relative to the current
    ``font.size``) in points."""
    from matplotlib.font_manager import FontProperties

    return float(FontProperties(size=size).get_size_in_points())


def text_size(text: str, size_pt: float) -> tuple[float, float]:
    """``(width, height)`` in points of one line of ``text`` at ``size_pt`` in the current
    font (the glyphs' extent, as matplotlib's renderers lay it out)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    w, h, d = TextToPath().get_text_width_height_descent(str(text), FontProperties(size=size_pt),
                                                          ismath=False)
    return float(w), float(max(h, size_pt))


def fit_font(texts: Iterable[str], width_in: float, height_in: float, *, max_pt: float,
             pad: float = 0.15) -> float:
    """The largest font size (pt, at most ``max_pt``) at which each of ``texts`` fits a box of
    ``width_in`` x ``height_in`` inches with a margin of ``pad`` (a fraction of the box) left
    free. Text extent is linear in the font size, so one measurement at 10 pt decides."""
    texts = [str(t) for t in texts if str(t)]
    if not texts:
        return float(max_pt)
    w10 = max(text_size(t, 10.0)[0] for t in texts)
    h10 = max(text_size(t, 10.0)[1] for t in texts) * 1.15          # line height
    room_w, room_h = (1 - pad) * 72.0 * width_in, (1 - pad) * 72.0 * height_in
    return float(min(max_pt, 10.0 * room_w / w10, 10.0 * room_h / h10))


def cell_font(texts: Iterable[str], width_in: float, height_in: float, *, max_pt: float,
              min_pt: float = MIN_FONT_PT, pad: float = 0.15) -> float | None:
    """Font size for values written in cells of ``width_in`` x ``height_in`` inches, or None
    when the widest value would need less than ``min_pt`` (leave the cells blank then: the
    colour carries the value, the colour bar reads it)."""
    size = fit_font(texts, width_in, height_in, max_pt=max_pt, pad=pad)
    return size if size >= min_pt else None


def facet_shape(n: int, max_cols: int) -> tuple[int, int]:
    """``(rows, cols)`` of a balanced grid for ``n`` panels with at most ``max_cols`` columns:
    as few rows as ``max_cols`` allows, then as few columns as those rows need (five panels
    and room for four give 2 x 3, not 2 x 4 with three empty slots)."""
    n = check_int(n, "n", minimum=1)
    max_cols = max(1, min(int(max_cols), n))
    rows = math.ceil(n / max_cols)
    return rows, math.ceil(n / rows)


def columns_that_fit(n: int, available_in: float, panel_in: float) -> int:
    """How many panels of ``panel_in`` inches fit side by side in ``available_in`` inches
    (at least one, at most ``n``)."""
    check_positive(panel_in, "panel_in")
    return int(max(1, min(n, math.floor(available_in / panel_in + 1e-9))))


@contextlib.contextmanager
def _recording_drawn_texts() -> Iterator[list]:
    """Record every :class:`~matplotlib.text.Text` drawn inside the block (only those:
    the tick labels of ticks outside the view, empty offset texts and hidden artists are
    never drawn, so they are never checked)."""
    from matplotlib.text import Text

    drawn: list = []
    original = Text.draw

    def draw(self, renderer):
        original(self, renderer)
        if self.get_visible() and self.get_text().strip():
            drawn.append(self)

    Text.draw = draw
    try:
        yield drawn
    finally:
        Text.draw = original


def legibility_problems(fig, *, dpi: float = DISPLAY_DPI, max_width_px: float = DISPLAY_MAX_PX,
                        min_text_px: float = MIN_TEXT_PX, overlap_px: float = 1.0) -> list[str]:
    """What makes ``fig`` hard to read at the size the report shows it; empty when nothing.

    The figure is drawn at ``dpi`` and, when its tight bounding box is wider than
    ``max_width_px``, scaled down to that width (as the page does). Reported: each text whose
    font is under ``min_text_px`` pixels high there, and each pair of texts whose boxes
    overlap by more than ``overlap_px`` pixels both ways (tick labels running into each
    other, an axis title over its neighbour's, a number spilling into the next cell).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : float
        Pixels per inch of the displayed image (the report's :data:`DISPLAY_DPI`).
    max_width_px : float
        Width of the page column the image shrinks to.
    min_text_px : float
    overlap_px : float

    Returns
    -------
    list of str
        One line per problem, naming the texts.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    check_positive(dpi, "dpi")
    old_dpi = fig.get_dpi()
    old_canvas = fig.canvas
    try:
        fig.set_dpi(dpi)
        canvas = FigureCanvasAgg(fig)
        with _recording_drawn_texts() as drawn:
            canvas.draw()
        renderer = canvas.get_renderer()
        width_px = fig.get_tightbbox(renderer).width * dpi
        scale = min(1.0, max_width_px / width_px) if width_px > 0 else 1.0
        problems = []
        boxes, texts = [], []
        for t in drawn:
            px = t.get_fontsize() * dpi / 72.0 * scale
            if px < min_text_px - 1e-6:
                problems.append(f"text {t.get_text()!r} is {px:.1f} px high at display size "
                                f"(minimum {min_text_px:g})")
            bb = t.get_window_extent(renderer)
            if bb.width > 0 and bb.height > 0:
                boxes.append((bb.x0, bb.y0, bb.x1, bb.y1))
                texts.append(t)
        if boxes:
            b = np.asarray(boxes) * scale
            ox = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
            oy = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
            hit = np.triu((ox > overlap_px) & (oy > overlap_px), k=1)
            for i, j in zip(*np.nonzero(hit)):
                problems.append(f"texts {texts[i].get_text()!r} and {texts[j].get_text()!r} "
                                f"overlap by {ox[i, j]:.0f} x {oy[i, j]:.0f} px")
        return problems
    finally:
        fig.set_dpi(old_dpi)
        fig.set_canvas(old_canvas)
