"""Figures of latent divergences: R-DIV vs eps (paper 001 Fig. 2c/4), d_a+/d_a- per model
(paper 001 Fig. 2a/5) and the class x class divergence heatmap."""
from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D

from robustviz.figures._common import colors_for, finish, named, new_axes, twin_accuracy_axis
from robustviz.figures._style import OKABE_ITO

__all__ = ["plot_rdiv_vs_eps", "plot_divergence_pairs", "plot_class_divergence"]


def _get(obj, key):
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


def plot_rdiv_vs_eps(sweep, ax=None, *, accuracy: bool = True, ci: bool = True,
                     eps_scale: float = 1.0, percent: bool = True, colors=None,
                     title: str | None = None, **kwargs):
    """Adversarial R-DIV (left axis) and robust accuracy (right axis) vs attack radius.

    Parameters
    ----------
    sweep : EpsSweep or dict
        From :func:`robustviz.diagnostics.rdiv_vs_eps` (or its ``to_dict()``): ``eps``,
        ``models``, ``rdiv`` (M, E), ``robust_acc`` (M, E), optional ``rdiv_ci``.
    ax : Axes, optional
    accuracy : bool
        Draw robust accuracy (dashed) on a twin axis.
    ci : bool
        Shade bootstrap intervals when present.
    eps_scale : float
        Multiply eps for display (``255`` shows eps in 1/255 units).
    percent : bool
    colors : sequence of str, optional
    title : str, optional
    **kwargs
        Passed to the R-DIV ``Axes.plot`` calls.

    Returns
    -------
    Figure

    References
    ----------
    Bui et al. (paper 001 of METHODS.md), Fig. 2c and Fig. 4.
    """
    eps = np.asarray(_get(sweep, "eps"), float) * eps_scale
    models = list(_get(sweep, "models"))
    rdiv = np.asarray(_get(sweep, "rdiv"), float).reshape(len(models), -1)
    acc = np.asarray(_get(sweep, "robust_acc"), float).reshape(len(models), -1)
    rci = _get(sweep, "rdiv_ci") if ci else None
    rci = None if rci is None else np.asarray(rci, float).reshape(len(models), -1, 2)
    fig, (ax,) = new_axes(ax)
    cols = colors_for(len(models), colors)
    ax2 = twin_accuracy_axis(ax) if accuracy else None
    for i, (name, c) in enumerate(zip(models, cols)):
        ax.plot(eps, rdiv[i], color=c, marker="o", label=name, **kwargs)
        if rci is not None and np.isfinite(rci[i]).all():
            ax.fill_between(eps, rci[i, :, 0], rci[i, :, 1], color=c, alpha=0.2, linewidth=0)
        if ax2 is not None:
            ax2.plot(eps, acc[i] * (100 if percent else 1), color=c, linestyle="--",
                     marker="s", markersize=3)
    ax.set_xlabel("attack radius $\\epsilon$" + (" (x 1/255)" if eps_scale == 255 else ""))
    ax.set_ylabel(r"adversarial R-DIV $d_a^+/d_a^-$")
    handles = [Line2D([], [], color=c, label=n) for n, c in zip(models, cols)]
    if ax2 is not None:
        ax2.set_ylabel("robust accuracy" + (" (%)" if percent else ""))
        handles += [Line2D([], [], color="0.3", linestyle="-", label="R-DIV"),
                    Line2D([], [], color="0.3", linestyle="--", label="robust acc.")]
    ax.legend(handles=handles, loc="best", frameon=True, framealpha=0.85, facecolor="white",
                  edgecolor="none")
    return finish(fig, ax, title)


def _is_div(obj) -> bool:
    return all(hasattr(obj, a) for a in ("d_pos", "d_neg", "rdiv"))


def plot_divergence_pairs(results, ax=None, *, annotate: bool = True, errorbars: bool = True,
                          colors=None, title: str | None = None, **kwargs):
    """Grouped bars of ``d_a+`` (intra-class) and ``d_a-`` (inter-class) per model.

    Parameters
    ----------
    results : DivergenceResult or mapping name -> DivergenceResult or list of them
    ax : Axes, optional
    annotate : bool
        Write each model's R-DIV above its pair of bars.
    errorbars : bool
        Bootstrap intervals as error bars when the results hold them.
    colors : (str, str), optional
        Colours of the d_a+ and d_a- bars.
    title : str, optional
    **kwargs
        Passed to ``Axes.bar``.

    Returns
    -------
    Figure
        One axis holding two bar containers (d_a+, d_a-) with one bar per model.

    References
    ----------
    Bui et al. (paper 001 of METHODS.md), Fig. 2a and Fig. 5.
    """
    res = named(results, _is_div, "DivergenceResult")
    names = [k or "model" for k in res]
    fig, (ax,) = new_axes(ax)
    c_pos, c_neg = colors if colors is not None else (OKABE_ITO["blue"], OKABE_ITO["orange"])
    x = np.arange(len(res))
    w = 0.38
    pos = np.array([r.d_pos for r in res.values()])
    neg = np.array([r.d_neg for r in res.values()])

    def err(attr, centre):
        cis = [getattr(r, attr, None) for r in res.values()]
        if not errorbars or any(c is None for c in cis):
            return None
        lo = np.array([c[0] for c in cis])
        hi = np.array([c[1] for c in cis])
        return np.vstack([np.clip(centre - lo, 0, None), np.clip(hi - centre, 0, None)])

    ax.bar(x - w / 2, pos, w, color=c_pos, label=r"$d_a^+$ (intra-class)",
           yerr=err("ci_pos", pos), capsize=2, **kwargs)
    ax.bar(x + w / 2, neg, w, color=c_neg, label=r"$d_a^-$ (inter-class)",
           yerr=err("ci_neg", neg), capsize=2, **kwargs)
    if annotate:
        top = np.maximum(pos, neg)
        for xi, t, r in zip(x, top, res.values()):
            ax.annotate(f"R-DIV {r.rdiv:.3f}", (xi, t), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom",
                        fontsize="small")
        ax.set_ylim(0, float(top.max()) * 1.18 if top.max() > 0 else 1)
    ax.set_xticks(x, names)
    dist = {getattr(r, "distance", None) for r in res.values()}
    unit = {"cosine": "cosine distance", "l2": "L2 distance"}.get(dist.pop() if len(dist) == 1
                                                                   else None, "distance")
    ax.set_ylabel(f"mean {unit}")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    ax.grid(axis="x", visible=False)
    return finish(fig, ax, title)


def plot_class_divergence(result, ax=None, *, class_names=None, annotate: bool | None = None,
                          cmap: str = "viridis", colorbar: bool = True,
                          title: str | None = None, **kwargs):
    """Heatmap of the class x class mean latent distance.

    Parameters
    ----------
    result : DivergenceResult or ndarray of shape (C, C)
        ``class_matrix[a, b]``: mean over anchors of class ``a`` of their mean distance to
        the examples of class ``b`` (the diagonal is the per-class ``d_a+``).
    ax : Axes, optional
    class_names : sequence of str, optional
    annotate : bool, optional
        Write values in the cells (default: when C <= 12).
    cmap : str
    colorbar : bool
    title : str, optional
    **kwargs
        Passed to ``Axes.imshow``.

    Returns
    -------
    Figure
    """
    m = np.asarray(getattr(result, "class_matrix", result), float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"result must be a DivergenceResult or a square (C, C) matrix, got "
                         f"shape {m.shape}")
    C = m.shape[0]
    names = [str(i) for i in range(C)] if class_names is None else [str(c) for c in class_names]
    if len(names) != C:
        raise ValueError(f"class_names must have {C} entries, got {len(names)}")
    fig, (ax,) = new_axes(ax)
    im = ax.imshow(m, cmap=cmap, **kwargs)
    ax.set_xticks(np.arange(C), names, rotation=45 if max(map(len, names)) > 2 else 0,
                  ha="right" if max(map(len, names)) > 2 else "center")
    ax.set_yticks(np.arange(C), names)
    ax.set_xlabel("class of the set members")
    ax.set_ylabel("anchor class")
    ax.grid(False)
    if annotate if annotate is not None else C <= 12:
        finite = m[np.isfinite(m)]
        mid = 0.5 * (finite.min() + finite.max()) if finite.size else 0.0
        for i in range(C):
            for j in range(C):
                v = m[i, j]
                ax.text(j, i, "-" if not np.isfinite(v) else f"{v:.2f}", ha="center",
                        va="center", fontsize="x-small",
                        color="white" if np.isfinite(v) and v < mid else "black")
    if colorbar:
        dist = getattr(result, "distance", None)
        label = {"cosine": "mean cosine distance",
                 "l2": "mean L2 distance"}.get(dist, "mean distance")
        fig.colorbar(im, ax=ax, label=label)
    return finish(fig, ax, title)
