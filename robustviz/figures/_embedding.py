"""t-SNE / UMAP maps with adversarial points marked (misclassified ones apart), and the
prediction-entropy map (Bui et al., arXiv:2101.10027, 2021, Fig. 6)."""
from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D

from robustviz.figures._common import finish, new_axes

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
    else:
        # qualitative, colour-blind safe, no light/dark pairs (tab20's pairs suggest
        # related classes): seaborn's "colorblind" up to 10 classes, evenly spaced hues beyond
        import seaborn as sns

        n = len(classes)
        cols = sns.color_palette("colorblind" if n <= 10 else "husl", n).as_hex()
    return classes, dict(zip(classes.tolist(), cols))


def _name(c, class_names):
    if c < 0:
        return "unknown"
    return str(class_names[c]) if class_names is not None else str(c)


def _adv_correct(result, correct_adv):
    """Bool per adversarial point (True: still classified correctly), or None."""
    if correct_adv is None:
        return None
    adv = np.asarray(result.is_adv, bool)
    c = np.asarray(correct_adv, bool).reshape(-1)
    if c.shape[0] == adv.shape[0]:
        c = c[adv]
    if c.shape[0] != int(adv.sum()):
        raise ValueError(f"correct_adv must hold one flag per adversarial point ({int(adv.sum())}) "
                         f"or per point ({adv.shape[0]}), got {c.shape[0]}")
    return c


def plot_embedding(result, ax=None, *, class_names=None, colors=None, size: float = 6.0,
                   adv_size: float = 28.0, adv_marker: str = "X", correct_adv=None,
                   legend: bool = True, title: str | None = None, **kwargs):
    """Scatter of a clean + adversarial map: clean points by class, adversarial points
    as larger black-edged markers in their true class's colour; with ``correct_adv`` the
    misclassified adversarial points (the attack succeeded) are filled crosses and the
    ones still classified correctly hollow circles.

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
    correct_adv : array of bool, optional
        Per adversarial point (or per point), whether the model still classifies it
        correctly (e.g. ``probs_adv.argmax(1) == y``).
    legend : bool
    title : str, optional
    **kwargs
        Passed to the clean points' ``Axes.scatter`` calls.

    Returns
    -------
    Figure
        One scatter collection per class of clean points, then one for the adversarial
        points (misclassified ones only when ``correct_adv`` is given, followed by one for
        the correctly classified ones).

    References
    ----------
    Bui et al., "Understanding and Achieving Efficient Robustness with Adversarial
    Supervised Contrastive Learning", arXiv:2101.10027, 2021, Fig. 6.
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
    ok = _adv_correct(result, correct_adv)
    if adv.any():
        pts, lab = xy[adv], labels[adv]
        wrong = np.ones(len(lab), bool) if ok is None else ~ok
        ax.scatter(pts[wrong, 0], pts[wrong, 1], s=adv_size, marker=adv_marker,
                   c=[cmap[c] for c in lab[wrong].tolist()], edgecolors="black",
                   linewidths=0.6, label="adversarial" if ok is None else "adversarial, misclassified",
                   zorder=3)
        if ok is not None and ok.any():
            ax.scatter(pts[ok, 0], pts[ok, 1], s=adv_size, marker="o", facecolors="none",
                       edgecolors=[cmap[c] for c in lab[ok].tolist()], linewidths=1.0,
                       label="adversarial, still correct", zorder=3)
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
                                  markeredgecolor="black",
                                  label="adversarial" if ok is None else "adv., misclassified"))
            if ok is not None and ok.any():
                handles.append(Line2D([], [], linestyle="", marker="o", color="0.4",
                                      markerfacecolor="none", label="adv., still correct"))
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5),
                  fontsize="small", markerscale=1.0)
    return finish(fig, ax, title)


def plot_embedding_entropy(result, ax=None, *, view: str = "map", cmap: str = "magma_r",
                           size: float = 8.0, adv_size: float = 30.0, colorbar: bool = True,
                           vmax: float | None = None, elev: float = 22.0, azim: float = -60.0,
                           title: str | None = None, **kwargs):
    """Prediction entropy over the 2-D map: every point coloured by its entropy, with a
    colour bar; adversarial points as black-edged crosses.

    Adversarial points of a non-robust model are uncertain (high entropy) and sit between
    the clusters; a robust model keeps them confident, inside their class's cluster.

    Parameters
    ----------
    result : EmbeddingResult
        Fitted with ``probs`` (and ``probs_adv``) so it holds ``entropy``.
    ax : Axes (3-D Axes for ``view="3d"``), optional
    view : {"map", "3d"}
        ``"map"``: the 2-D map coloured by entropy (default); ``"3d"``: entropy as height.
    cmap : str
        Colour map of the entropy (dark = uncertain with the default).
    size, adv_size : float
        Marker areas of clean and adversarial points.
    colorbar : bool
    vmax : float, optional
        Upper colour limit (default: ``log C``, the largest entropy over C classes, so maps
        of several models share one scale).
    elev, azim : float
        View angles of ``view="3d"``.
    title : str, optional
    **kwargs
        Passed to the clean points' ``scatter`` call.

    Returns
    -------
    Figure
        ``view="map"``: one axis with two scatter collections (clean, adversarial) whose
        colours are the entropies, and the colour bar's axis.

    References
    ----------
    Bui et al., "Understanding and Achieving Efficient Robustness with Adversarial
    Supervised Contrastive Learning", arXiv:2101.10027, 2021, Fig. 6 (3-D view).
    """
    from robustviz._validate import check_choice

    _check(result)
    check_choice(view, "view", ("map", "3d"))
    if getattr(result, "entropy", None) is None:
        raise ValueError("result has no entropy: call embed(..., probs=, probs_adv=)")
    fig, (ax,) = new_axes(ax, projection="3d" if view == "3d" else None)
    xy = result.coords[:, :2]
    h = np.asarray(result.entropy, float)
    labels = np.asarray(result.labels)
    adv = np.asarray(result.is_adv, bool)
    n_cls = max(int(labels.max()) + 1 if labels.size else 2, 2)
    top = float(vmax) if vmax is not None else float(np.log(n_cls))
    method = {"tsne": "t-SNE", "umap": "UMAP"}.get(getattr(result, "method", ""), "map")
    if view == "3d":
        ax.scatter(xy[~adv, 0], xy[~adv, 1], h[~adv], s=size, c=h[~adv], cmap=cmap, vmin=0,
                   vmax=top, alpha=0.7, linewidths=0, **kwargs)
        sc = ax.scatter(xy[adv, 0], xy[adv, 1], h[adv], s=adv_size, marker="X", c=h[adv],
                        cmap=cmap, vmin=0, vmax=top, edgecolors="black", linewidths=0.6,
                        depthshade=False)
        ax.view_init(elev=elev, azim=azim)
        ax.set_zlabel("prediction entropy (nats)")
    else:
        sc = ax.scatter(xy[~adv, 0], xy[~adv, 1], s=size, c=h[~adv], cmap=cmap, vmin=0,
                        vmax=top, linewidths=0, alpha=0.8, label="clean", **kwargs)
        ax.scatter(xy[adv, 0], xy[adv, 1], s=adv_size, marker="X", c=h[adv], cmap=cmap,
                   vmin=0, vmax=top, edgecolors="black", linewidths=0.6, label="adversarial",
                   zorder=3)
        ax.grid(False)
        if adv.any():
            ax.legend(handles=[Line2D([], [], linestyle="", marker="o", color="0.5",
                                      label="clean"),
                               Line2D([], [], linestyle="", marker="X", color="0.5",
                                      markeredgecolor="black", label="adversarial")],
                      loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
        if colorbar:
            fig.colorbar(sc, ax=ax, label="prediction entropy (nats)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")
    return finish(fig, ax, title)
