"""Shared helpers of the figure functions (private): axes creation and input shapes."""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import matplotlib.figure
import numpy as np
from matplotlib.axes import Axes

from robustviz.figures._style import palette


class Figure(matplotlib.figure.Figure):
    """A pyplot-free :class:`matplotlib.figure.Figure` that shows itself in Jupyter.

    A plain ``Figure`` built without pyplot has no display hook, so a fresh Jupyter kernel
    prints ``<Figure size 640x480 with 1 Axes>``. This subclass adds ``_repr_png_``, which
    IPython's display formatter calls when the figure is a cell's result or is passed to
    ``IPython.display.display``: the figure is shown once, as a PNG at its own dpi.

    Nothing is registered with pyplot: if pyplot's inline backend is active it registers a
    PNG printer for every ``Figure``, which IPython then uses *instead of* this method (a
    type printer wins over ``_repr_png_``), so the image still appears exactly once; and
    since the figure is not in pyplot's registry, the inline backend's end-of-cell flush
    does not show it a second time.
    """

    def _repr_png_(self) -> bytes | None:
        if not self.axes:                       # nothing drawn: let IPython print the text
            return None
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi="figure", bbox_inches="tight")
        return buf.getvalue()


def new_axes(ax=None, *, nrows: int = 1, ncols: int = 1, figsize=None, projection=None,
             sharey: bool = False, name: str = "ax"):
    """``(fig, axes)``: the given axes (one Axes or a sequence of ``nrows * ncols``) or a new
    pyplot-free :class:`~matplotlib.figure.Figure` (never shown, never registered)."""
    need = nrows * ncols
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        kw = {} if projection is None else {"subplot_kw": {"projection": projection}}
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey, **kw)
        return fig, list(axes.ravel())
    axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) != need or not all(isinstance(a, Axes) for a in axes):
        raise ValueError(f"{name} must be {'an Axes' if need == 1 else f'{need} Axes'} "
                         f"(or None for a new figure), got {ax!r}")
    if projection == "3d" and getattr(axes[0], "name", "") != "3d":
        raise ValueError(f"{name} must be a 3-D Axes (projection='3d')")
    return axes[0].figure, axes


def named(results, is_one: Callable[[Any], bool], what: str) -> dict[str, Any]:
    """Normalise one result, a mapping ``name -> result`` or a sequence into a dict.

    A single result gets the name ``""`` (no legend entry).
    """
    if is_one(results):
        return {"": results}
    if isinstance(results, Mapping):
        out = {str(k): v for k, v in results.items()}
    elif isinstance(results, Sequence) and not isinstance(results, (str, bytes)):
        out = {str(getattr(r, "name", i)): r for i, r in enumerate(results)}
    else:
        raise TypeError(f"expected a {what}, a mapping name -> {what}, or a list of them; got "
                        f"{type(results).__name__}")
    if not out:
        raise ValueError(f"no {what} to plot")
    bad = [k for k, v in out.items() if not is_one(v)]
    if bad:
        raise TypeError(f"entries {bad} are not a {what} (got {type(out[bad[0]]).__name__})")
    return out


def colors_for(n: int, colors, names: Sequence[str] | None = None) -> list[str]:
    """``n`` colours: the palette, the given sequence, or a mapping ``name -> colour``
    (e.g. :func:`robustviz.figures.model_colors`) looked up by ``names``."""
    if colors is None:
        return palette(n)
    if isinstance(colors, Mapping):
        if names is None:
            raise TypeError("a mapping of colours needs the model names")
        missing = [nm for nm in names if nm not in colors]
        if missing:
            raise ValueError(f"colors has no entry for {missing}")
        return [c["color"] if isinstance(c, Mapping) else c for c in (colors[nm] for nm in names)]
    colors = list(colors)
    if len(colors) < n:
        raise ValueError(f"colors must hold at least {n} colours, got {len(colors)}")
    return colors


def markers_for(names: Sequence[str], markers) -> list[str]:
    """One marker per name: from a mapping ``name -> marker`` / ``name -> {"marker": m}``,
    a sequence, or :data:`robustviz.figures.MARKERS` in order."""
    from robustviz.figures._style import MARKERS

    if markers is None:
        return [MARKERS[i % len(MARKERS)] for i in range(len(names))]
    if isinstance(markers, Mapping):
        return [m["marker"] if isinstance(m, Mapping) else m
                for m in (markers[nm] for nm in names)]
    markers = list(markers)
    if len(markers) < len(names):
        raise ValueError(f"markers must hold at least {len(names)} entries")
    return markers[:len(names)]


def finish(fig: Figure, ax: Axes, title: str | None) -> Figure:
    if title is not None:
        ax.set_title(title)
    return fig


def twin_accuracy_axis(ax):
    """A right-hand twin axis for accuracy, drawn *below* ``ax`` so the main axis's legend
    and lines stay on top."""
    ax2 = ax.twinx()
    ax2.grid(False)
    ax2.spines["right"].set_visible(True)
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    return ax2


def integer_ticks(ax, axis: str = "x"):
    from matplotlib.ticker import MaxNLocator

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))
