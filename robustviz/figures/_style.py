"""One style for every figure: contexts, a colour-blind-safe palette, vector export."""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Iterator, Sequence

import matplotlib as mpl
from cycler import cycler

from robustviz._validate import check_choice, check_positive

__all__ = ["OKABE_ITO", "PALETTE", "palette", "set_style", "style", "save", "CONTEXTS",
           "WIDTHS", "figsize", "MARKERS", "model_styles", "model_colors"]

#: Okabe & Ito (2008) colour-blind-safe palette, by name.
OKABE_ITO = {
    "blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
    "sky": "#56B4E9", "purple": "#CC79A7", "yellow": "#F0E442", "black": "#000000",
}
#: The palette in the order figures use it (yellow last: weak on white).
PALETTE = tuple(OKABE_ITO[k] for k in ("blue", "orange", "green", "vermillion", "sky",
                                        "purple", "black", "yellow"))

# Font sizes (pt) and default figure width (in) per context.
CONTEXTS = {
    "paper": {"font": 8.0, "width": 3.4, "line": 1.2, "marker": 3.5},      # one column
    "notebook": {"font": 11.0, "width": 6.4, "line": 1.8, "marker": 5.0},
    "slides": {"font": 16.0, "width": 10.0, "line": 2.6, "marker": 7.0},
}


#: Figure widths (inches) of a single and a double column of a two-column paper.
WIDTHS = {"single": 3.3, "double": 6.9}

#: One marker per model, in the order of :func:`model_styles` (distinct in grey-scale print).
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


def figsize(width: str | float = "single", aspect: float = 0.72) -> tuple[float, float]:
    """``(width, height)`` in inches: ``"single"`` (3.3 in), ``"double"`` (6.9 in) or a
    number of inches, and height = ``aspect`` * width."""
    if isinstance(width, str):
        check_choice(width, "width", tuple(WIDTHS))
        w = WIDTHS[width]
    else:
        w = float(width)
        check_positive(w, "width")
    check_positive(aspect, "aspect")
    return (w, w * aspect)


def _colorblind() -> list[str]:
    """seaborn's "colorblind" palette (10 colours) as hex, Okabe-Ito without seaborn."""
    try:
        import seaborn as sns
    except ImportError:  # pragma: no cover - seaborn is a dependency
        return list(PALETTE)
    return list(sns.color_palette("colorblind").as_hex())


def model_styles(names) -> dict[str, dict]:
    """One colour and one marker per model, the same in every figure of a report.

    Parameters
    ----------
    names : sequence of str
        The models in display order; the i-th gets the i-th colour of seaborn's
        colour-blind palette and the i-th of :data:`MARKERS` (both cycled).

    Returns
    -------
    dict
        ``name -> {"color": hex, "marker": str}``; pass ``colors=model_colors(names)`` (or the
        mapping itself) to the ``plot_*`` functions.
    """
    names = [str(n) for n in names]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be distinct, got {names}")
    cols = _colorblind()
    return {n: {"color": cols[i % len(cols)], "marker": MARKERS[i % len(MARKERS)]}
            for i, n in enumerate(names)}


def model_colors(names) -> dict[str, str]:
    """``name -> colour`` of :func:`model_styles`."""
    return {n: st["color"] for n, st in model_styles(names).items()}


def palette(n: int | None = None) -> list[str]:
    """``n`` colours of :data:`PALETTE` (cycled when ``n`` is larger; all 8 by default).

    For more than eight classes (e.g. CIFAR-100) use a continuous map instead.
    """
    if n is None:
        return list(PALETTE)
    return [PALETTE[i % len(PALETTE)] for i in range(int(n))]


def _rc(context: str) -> dict:
    c = CONTEXTS[context]
    f = c["font"]
    return {
        "font.size": f, "axes.titlesize": f + 1, "axes.labelsize": f,
        "xtick.labelsize": f - 1, "ytick.labelsize": f - 1, "legend.fontsize": f - 1,
        "legend.title_fontsize": f - 1, "figure.titlesize": f + 2,
        "figure.figsize": (c["width"], c["width"] * 0.72),
        "figure.dpi": 100 if context != "paper" else 150,
        "lines.linewidth": c["line"], "lines.markersize": c["marker"],
        "axes.prop_cycle": cycler(color=list(PALETTE)),
        "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5,
        "legend.frameon": False,
        "image.cmap": "viridis",
        "savefig.dpi": 300, "savefig.bbox": "tight", "savefig.pad_inches": 0.02,
        "pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none",  # editable text
    }


def set_style(context: str = "paper") -> dict:
    """Apply the robustviz style to matplotlib's global settings.

    Parameters
    ----------
    context : {"paper", "notebook", "slides"}
        Font sizes and figure width: one paper column (3.4 in, 8 pt), a notebook cell,
        or a slide.

    Returns
    -------
    dict
        The rcParams that were set (pass to ``matplotlib.rc_context`` to reuse).
    """
    check_choice(context, "context", tuple(CONTEXTS))
    rc = _rc(context)
    mpl.rcParams.update(rc)
    return rc


@contextlib.contextmanager
def style(context: str = "paper") -> Iterator[dict]:
    """The robustviz style for a block only (global settings restored after)."""
    check_choice(context, "context", tuple(CONTEXTS))
    rc = _rc(context)
    with mpl.rc_context(rc):
        yield rc


_FORMATS = ("pdf", "svg", "png")


def literal_text_where_math_fails(fig) -> int:
    """Show as plain text every label of ``fig`` that matplotlib would parse as mathtext
    but cannot (a run folder named ``run $\\foo{$`` as a title or legend entry), instead of
    failing the whole save; return how many were changed. The figures' own math labels
    (``$\\epsilon$``) parse and are left alone."""
    from matplotlib.mathtext import MathTextParser
    from matplotlib.text import Text

    parser, changed = MathTextParser("path"), 0
    for t in fig.findobj(Text):
        s = t.get_text()
        dollars = s.count("$") - s.count(r"\$")
        if not (dollars > 0 and dollars % 2 == 0) or not t.get_parse_math():
            continue
        try:
            parser.parse(s)
        except ValueError:
            t.set_parse_math(False)
            changed += 1
    return changed


def save(fig, path: str | os.PathLike, *, formats: Sequence[str] | None = None,
         dpi: float = 300) -> list[Path]:
    """Write a figure to PDF, SVG and/or PNG, each file atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or PathLike
        Target file. Its suffix picks the format (``.pdf``, ``.svg``, ``.png``); without a
        suffix, or with ``formats``, one file per format is written next to it
        (``path.with_suffix("." + fmt)``).
    formats : sequence of {"pdf", "svg", "png"}, optional
    dpi : float
        Resolution of raster output (PNG, and images embedded in vector files).

    Returns
    -------
    list of Path
        The files written.
    """
    from matplotlib.figure import Figure

    from robustviz.runs import atomic_write_bytes

    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    check_positive(dpi, "dpi")
    path = Path(path)
    if formats is None:
        suffix = path.suffix.lower().lstrip(".")
        if suffix:
            check_choice(suffix, "path suffix", _FORMATS)
            formats = [suffix]
        else:
            formats = ["pdf"]
    else:
        formats = [check_choice(str(f).lower().lstrip("."), "formats", _FORMATS) for f in formats]
        if not formats:
            raise ValueError("formats must name at least one of pdf, svg, png")
    literal_text_where_math_fails(fig)
    out = []
    for fmt in formats:
        target = path.with_suffix("." + fmt) if (len(formats) > 1 or not path.suffix) else path
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
        out.append(atomic_write_bytes(target, buf.getvalue()))
    return out
