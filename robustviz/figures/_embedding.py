"""t-SNE / UMAP maps with adversarial points marked, and the 3-D entropy view (paper 001
Fig. 6)."""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.lines import Line2D

from robustviz.figures._common import finish, new_axes
from robustviz.figures._style import palette

__all__ = ["plot_embedding", "plot_embedding_entropy"]


def _check(result):
    for a in ("coords", "labels", "is_adv"):
        if not hasattr(result, a):
            raise TypeError(f"result must be an EmbeddingResult (from robustviz.diagnostics."
                            f"embed), got {type(result).__name__}")
    if result.coords.shape[1] < 2:
        raise ValueError("the embedding needs at least 2 dimensions to plot")


def _class_colors(labels: np.ndarray, colors):
    classes = np.unique(labels)
    if colors is not None:
        cols = list(colors)
        if len(cols) < len(classes):
            raise ValueError(f"colors must hold one colour per class ({len(classes)})")
    elif len(classes) <= 8:
        cols = palette(len(classes))
    else:
        cmap = colormaps["tab20" if len(classes) <= 20 else "turbo"]
        cols = [cmap(i / max(1, len(classes) - 1)) if len(classes) > 20 else cmap(i)
                for i in range(len(classes))]
    return classes, dict(zip(classes.tolist(), cols))


def _name(c, class_names):
    if c < 0:
        return "unknown"
    return str(class_names[c]) if class_names is not None else str(c)


def plot_embedding(result, ax=None, *, class_names=None, colors=None, size: float = 6.0,
                   adv_size: float = 28.0, adv_marker: str = "X", legend: bool = True,
                   title: str | None = None, **kwargs):
    """Scatter of a clean + adversarial map: clean points by class, adversarial points
    as larger black-edged markers in their class colour.

    Parameters
    ----------
    result : EmbeddingResult
        From :func:`robustviz.diagnostics.embed` (possibly ``concat``-ed with
        ``transform`` results).
    ax : Axes, optional
    class_names : sequence of str, optional
    colors : sequence, optional
        One colour per class (default: Okabe-Ito up to 8 classes, tab20 up to 20).
    size, adv_size : float
        Marker areas of clean and adversarial points.
    adv_marker : str
    legend : bool
    title : str, optional
    **kwargs
        Passed to the clean points' ``Axes.scatter`` calls.

    Returns
    -------
    Figure
        One scatter collection per class of clean points, plus one for the adversarial
        points when there are any.

    References
    ----------
    Bui et al. (paper 001 of METHODS.md), Fig. 6; Zhou et al. (paper 004), UMAP figures.
    """
    _check(result)
    fig, (ax,) = new_axes(ax)
    xy = result.coords[:, :2]
    labels = np.asarray(result.labels)
    adv = np.asarray(result.is_adv, bool)
    classes, cmap = _class_colors(labels, colors)
    for c in classes:
        m = (labels == c) & ~adv
        if m.any():
            ax.scatter(xy[m, 0], xy[m, 1], s=size, color=cmap[c], alpha=0.7, linewidths=0,
                       label=_name(int(c), class_names), **kwargs)
    if adv.any():
        ax.scatter(xy[adv, 0], xy[adv, 1], s=adv_size, marker=adv_marker,
                   c=[cmap[c] for c in labels[adv].tolist()], edgecolors="black",
                   linewidths=0.6, label="adversarial", zorder=3)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    method = {"tsne": "t-SNE", "umap": "UMAP"}.get(getattr(result, "method", ""), "map")
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")
    if legend:
        handles = [Line2D([], [], linestyle="", marker="o", color=cmap[c],
                          label=_name(int(c), class_names)) for c in classes]
        if adv.any():
            handles.append(Line2D([], [], linestyle="", marker=adv_marker, color="0.6",
                                  markeredgecolor="black", label="adversarial"))
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5),
                  fontsize="small", markerscale=1.0)
    return finish(fig, ax, title)


def plot_embedding_entropy(result, ax=None, *, class_names=None, colors=None,
                           size: float = 6.0, adv_size: float = 28.0, elev: float = 22.0,
                           azim: float = -60.0, title: str | None = None, **kwargs):
    """3-D view: the 2-D map on the floor, prediction entropy as height.

    Adversarial points of a non-robust model sit high (uncertain) between the clusters;
    paper 001 Fig. 6 uses this view.

    Parameters
    ----------
    result : EmbeddingResult
        Fitted with ``probs`` (and ``probs_adv``) so it holds ``entropy``.
    ax : 3-D Axes, optional
    class_names, colors, size, adv_size
        As in :func:`plot_embedding`.
    elev, azim : float
        View angles.
    title : str, optional
    **kwargs
        Passed to the clean points' ``scatter`` calls.

    Returns
    -------
    Figure
    """
    _check(result)
    if getattr(result, "entropy", None) is None:
        raise ValueError("result has no entropy: call embed(..., probs=, probs_adv=)")
    fig, (ax,) = new_axes(ax, projection="3d")
    xy = result.coords[:, :2]
    h = np.asarray(result.entropy, float)
    labels = np.asarray(result.labels)
    adv = np.asarray(result.is_adv, bool)
    classes, cmap = _class_colors(labels, colors)
    for c in classes:
        m = (labels == c) & ~adv
        if m.any():
            ax.scatter(xy[m, 0], xy[m, 1], h[m], s=size, color=cmap[c], alpha=0.6,
                       linewidths=0, label=_name(int(c), class_names), **kwargs)
    if adv.any():
        ax.scatter(xy[adv, 0], xy[adv, 1], h[adv], s=adv_size, marker="X",
                   c=[cmap[c] for c in labels[adv].tolist()], edgecolors="black",
                   linewidths=0.6, label="adversarial", depthshade=False)
    ax.view_init(elev=elev, azim=azim)
    ax.set_xticks([])
    ax.set_yticks([])
    method = {"tsne": "t-SNE", "umap": "UMAP"}.get(getattr(result, "method", ""), "map")
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")
    ax.set_zlabel("prediction entropy (nats)")
    return finish(fig, ax, title)
