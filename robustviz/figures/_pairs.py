"""Positive- and negative-pair histograms, methods overlaid (paper 004 Figs. 1 and 6)."""
from __future__ import annotations

import matplotlib as mpl
import numpy as np

from robustviz._validate import check_choice, check_int
from robustviz.figures._common import colors_for, named, new_axes

__all__ = ["plot_pair_histograms"]

_XLABEL = {"cosine": "cosine similarity", "l2": "L2 distance"}
_KINDS = (("pos", "positive pairs (x, x')"), ("neg", "negative pairs (x, other class)"))


def _is_pairs(obj) -> bool:
    return callable(getattr(obj, "histogram", None)) and hasattr(obj, "pos_cosine")


def _panel_edges(values: list[np.ndarray], bins: int) -> np.ndarray:
    """``bins`` equal bins over the range of all the panel's values (every method's)."""
    allv = np.concatenate([np.asarray(v, float).ravel() for v in values])
    allv = allv[np.isfinite(allv)]
    if allv.size == 0:
        raise ValueError("no finite pair values to histogram")
    lo, hi = float(allv.min()), float(allv.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.histogram_bin_edges(allv, bins=bins, range=(lo, hi))


#: Line styles of the overlaid outlines, one per method (cycled): where two methods' bars
#: coincide, the dashes of each still show (and tell them apart in grey-scale print).
LINESTYLES = ("-", "--", ":", "-.", (0, (6, 1.5, 1, 1.5, 1, 1.5)))


def plot_pair_histograms(results, ax=None, *, metrics=("cosine", "l2"), bins: int = 20,
                         density: bool = True, colors=None, alpha: float = 0.4,
                         fill: bool | None = None, title: str | None = None, **kwargs):
    """Histograms of positive pairs ``(x, x')`` and negative pairs (``x`` and an example of
    another class), in separate panels, the methods overlaid in each panel as step outlines.

    One row per metric, two columns: positive pairs, negative pairs. Each panel has its own
    ``bins`` equal bins over the range of that panel's values (all methods together, so the
    overlaid methods share edges): positive-pair cosine similarity of a robust model sits in
    a narrow band (about 0.85-0.99) that would fall into one to three bins if it shared edges
    with the negative pairs.

    Parameters
    ----------
    results : PairDistances or mapping name -> PairDistances or list of them
        From :func:`robustviz.diagnostics.pair_distances`; one entry per method.
    ax : sequence of Axes, optional
        ``2 * len(metrics)`` axes in row-major order (positive, negative per metric).
    metrics : sequence of {"cosine", "l2"}
    bins : int
        Bins per panel (paper 004: 20).
    density : bool
        Frequency density (each method's histogram integrates to 1), as in paper 004.
    colors : sequence of str or mapping name -> colour, optional
        One colour per method (default: the house palette; pass the report's
        :func:`~robustviz.figures.model_styles` to match its other figures).
    alpha : float
        Opacity of filled histograms.
    fill : bool, optional
        Fill under each histogram (default: only for a single method). Several methods are
        drawn as step outlines of their own colour and line style: translucent fills of
        three or more methods mix into colours that belong to none of them.
    title : str, optional
        Figure title.
    **kwargs
        Passed to ``Axes.stairs``.

    Returns
    -------
    Figure
        Each panel holds one step patch per method, labelled with its name; one legend for
        the figure, above the panels.

    References
    ----------
    Zhou et al., "Robust Representation Learning via Asymmetric Negative Contrast and
    Reverse Attention" (ANCRA), arXiv:2310.03358, 2023, Fig. 1 and Fig. 6.
    """
    res = named(results, _is_pairs, "PairDistances")
    metrics = [check_choice(m, "metrics", ("cosine", "l2")) for m in metrics]
    if not metrics:
        raise ValueError("metrics must name at least one of 'cosine', 'l2'")
    bins = check_int(bins, "bins", minimum=1)
    names = list(res)
    cols = colors_for(len(res), colors, names)
    fill = len(res) == 1 if fill is None else bool(fill)
    styles = [LINESTYLES[i % len(LINESTYLES)] for i in range(len(res))]
    fig, axes = new_axes(ax, nrows=len(metrics), ncols=2,
                         figsize=None if ax is not None else (6.0, 2.3 * len(metrics)))
    for r, metric in enumerate(metrics):
        for c, (kind, label) in enumerate(_KINDS):
            a = axes[2 * r + c]
            values = [getattr(p, f"{kind}_{metric}") for p in res.values()]
            edges = _panel_edges(values, bins)
            for name, v, color, ls in zip(names, values, cols, styles):
                h, _ = np.histogram(np.asarray(v, float), bins=edges, density=density)
                look = ({"fill": True, "alpha": alpha, "color": color} if fill else
                        {"fill": False, "edgecolor": color, "linestyle": ls,
                         "linewidth": 1.4 * float(mpl.rcParams["lines.linewidth"]) / 1.2})
                a.stairs(h, edges, label=name or None, **{**look, **kwargs})
            a.set_xlabel(_XLABEL[metric])
            if c == 0:
                a.set_ylabel("density" if density else "count")
            if r == 0:
                a.set_title(label)
    if any(res):
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        handles = [Patch(color=c, alpha=alpha, label=n) if fill else
                   Line2D([], [], color=c, linestyle=ls, label=n)
                   for n, c, ls in zip(names, cols, styles)]
        if ax is None:      # one legend for the figure, above the panels, out of the data
            fig.legend(handles=handles, loc="outside upper center", ncol=min(len(res), 5))
        else:
            axes[0].legend(handles=handles, loc="best")
    if title is not None:
        fig.suptitle(title)
    return fig
