"""Positive/negative pair histograms for several models side by side (paper 004 Fig. 1/6)."""
from __future__ import annotations

from robustviz._validate import check_choice
from robustviz.figures._common import named, new_axes
from robustviz.figures._style import OKABE_ITO

__all__ = ["plot_pair_histograms"]

_XLABEL = {"cosine": "cosine similarity", "l2": "L2 distance"}


def _is_pairs(obj) -> bool:
    return callable(getattr(obj, "histogram", None)) and hasattr(obj, "pos_cosine")


def plot_pair_histograms(results, ax=None, *, metrics=("cosine", "l2"), bins: int = 20,
                         density: bool = True, shared_range: bool = False, colors=None,
                         title: str | None = None, **kwargs):
    """Histograms of positive pairs (x, x') and negative pairs (x, other-class example).

    One column per model, one row per metric.

    Parameters
    ----------
    results : PairDistances or mapping name -> PairDistances or list of them
        From :func:`robustviz.diagnostics.pair_distances`.
    ax : sequence of Axes, optional
        ``len(metrics) * n_models`` axes in row-major order.
    metrics : sequence of {"cosine", "l2"}
    bins : int
        Paper 004 uses 20.
    density : bool
        Frequency density (each histogram integrates to 1), as in paper 004.
    shared_range : bool
        The same bin range for every model of a row (directly comparable panels; off by
        default because L2 scales differ between models).
    colors : (str, str), optional
        Colours of the positive and negative pairs.
    title : str, optional
        Figure title.
    **kwargs
        Passed to ``Axes.stairs``.

    Returns
    -------
    Figure
        Each panel holds two filled step patches (PP, NP).

    References
    ----------
    Zhou et al., ANCRA (paper 004 of METHODS.md), Fig. 1 and Fig. 6.
    """
    res = named(results, _is_pairs, "PairDistances")
    metrics = [check_choice(m, "metrics", ("cosine", "l2")) for m in metrics]
    if not metrics:
        raise ValueError("metrics must name at least one of 'cosine', 'l2'")
    c_pos, c_neg = colors if colors is not None else (OKABE_ITO["blue"], OKABE_ITO["vermillion"])
    nc = len(res)
    fig, axes = new_axes(ax, nrows=len(metrics), ncols=nc,
                         figsize=None if ax is not None else (2.6 * nc + 0.6, 2.2 * len(metrics)))
    for r, metric in enumerate(metrics):
        rng = None
        if shared_range:
            lo = min(min(getattr(p, f"pos_{metric}").min(), getattr(p, f"neg_{metric}").min())
                     for p in res.values())
            hi = max(max(getattr(p, f"pos_{metric}").max(), getattr(p, f"neg_{metric}").max())
                     for p in res.values())
            rng = (float(lo), float(hi)) if hi > lo else None
        for c, (name, p) in enumerate(res.items()):
            a = axes[r * nc + c]
            h = p.histogram(metric, bins=bins, density=density, range=rng)
            a.stairs(h.pos, h.edges, fill=True, alpha=0.55, color=c_pos, label="positive pairs",
                     **kwargs)
            a.stairs(h.neg, h.edges, fill=True, alpha=0.55, color=c_neg, label="negative pairs",
                     **kwargs)
            a.set_xlabel(_XLABEL[metric])
            if c == 0:
                a.set_ylabel("density" if density else "count")
            if r == 0 and name:
                a.set_title(name)
    axes[nc - 1].legend(loc="best")
    if title is not None:
        fig.suptitle(title)
    return fig
