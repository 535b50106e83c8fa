"""Figures of latent divergences: R-DIV vs eps (Fig. 2c/4), d_a+/d_a- per model (Fig. 2a/5)
of Bui, Le, Zhao, Montague, Camtepe, Phung, "Understanding and Achieving Efficient Robustness
with Adversarial Supervised Contrastive Learning", arXiv:2101.10027, 2021; and the class x
class divergence heatmap."""
from __future__ import annotations

import numpy as np

from robustviz.figures._common import colors_for, finish, markers_for, named, new_axes
from robustviz.figures._style import OKABE_ITO

__all__ = ["plot_rdiv_vs_eps", "plot_divergence_pairs", "plot_class_divergence", "eps_label"]


def _get(obj, key):
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


def eps_label(eps_scale: float = 1.0) -> str:
    """Axis label of the attack radius: pixel units, with "x 1/255" when scaled by 255."""
    return "attack radius $\\epsilon$" + (" (x 1/255)" if eps_scale == 255 else "")


def plot_rdiv_vs_eps(sweep, ax=None, *, accuracy: bool = True, ci: bool = True,
                     eps_scale: float = 1.0, percent: bool = True, colors=None, markers=None,
                     legend: bool = True, title: str | None = None, **kwargs):
    """Adversarial R-DIV (left panel) and robust accuracy (right panel) vs attack radius.

    Two panels instead of twin y-axes, so each quantity has its own scale and grid; one
    colour and one marker per model (pass the report's :func:`~robustviz.figures.
    model_styles` mapping to keep them the same in every figure); the legend sits outside
    the data, to the right.

    Parameters
    ----------
    sweep : EpsSweep or dict
        From :func:`robustviz.diagnostics.rdiv_vs_eps` (or its ``to_dict()``): ``eps``,
        ``models``, ``rdiv`` (M, E), ``robust_acc`` (M, E), optional ``rdiv_ci`` (M, E, 2).
    ax : Axes or sequence of two Axes, optional
        One Axes when ``accuracy=False``.
    accuracy : bool
        Draw the robust-accuracy panel.
    ci : bool
        Shade the R-DIV confidence intervals when present (jackknife or bootstrap).
    eps_scale : float
        Multiply eps for display (``255`` shows eps in 1/255 units).
    percent : bool
    colors : sequence or mapping name -> colour, optional
    markers : sequence or mapping name -> marker, optional
    legend : bool
    title : str, optional
        Figure title.
    **kwargs
        Passed to the ``Axes.plot`` calls.

    Returns
    -------
    Figure
        ``fig.axes``: the R-DIV panel, then (with ``accuracy``) the accuracy panel.

    References
    ----------
    Bui, Le, Zhao, Montague, Camtepe, Phung, "Understanding and Achieving Efficient
    Robustness with Adversarial Supervised Contrastive Learning", arXiv:2101.10027, 2021,
    Fig. 2c and Fig. 4.
    """
    eps = np.asarray(_get(sweep, "eps"), float) * eps_scale
    models = [str(m) for m in _get(sweep, "models")]
    rdiv = np.asarray(_get(sweep, "rdiv"), float).reshape(len(models), -1)
    acc = np.asarray(_get(sweep, "robust_acc"), float).reshape(len(models), -1)
    rci = _get(sweep, "rdiv_ci") if ci else None
    rci = None if rci is None else np.asarray(rci, float).reshape(len(models), -1, 2)
    from robustviz.figures._style import figsize

    size = None if ax is not None else figsize("double" if accuracy else "single",
                                                0.36 if accuracy else 0.72)
    fig, axes = new_axes(ax, ncols=2 if accuracy else 1, sharey=False, figsize=size)
    cols = colors_for(len(models), colors, models)
    marks = markers_for(models, markers)
    for i, (name, c, mk) in enumerate(zip(models, cols, marks)):
        axes[0].plot(eps, rdiv[i], color=c, marker=mk, label=name, **kwargs)
        if rci is not None and np.isfinite(rci[i]).all():
            axes[0].fill_between(eps, rci[i, :, 0], rci[i, :, 1], color=c, alpha=0.2,
                                 linewidth=0)
        if accuracy:
            axes[1].plot(eps, acc[i] * (100 if percent else 1), color=c, marker=mk,
                         label=name, **kwargs)
    for a in axes:
        a.set_xlabel(eps_label(eps_scale))
    axes[0].set_ylabel(r"adversarial R-DIV $d_a^+/d_a^-$")
    if accuracy:
        axes[1].set_ylabel("robust accuracy" + (" (%)" if percent else ""))
        axes[1].set_ylim(0, 100 if percent else 1)
    if legend and any(models):
        axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    if title is not None:
        fig.suptitle(title)
    return fig


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
        Confidence intervals (jackknife or bootstrap) as error bars when the results hold them.
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
    Bui et al., arXiv:2101.10027, 2021, Fig. 2a and Fig. 5.
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


def _class_matrix(result) -> np.ndarray:
    m = np.asarray(getattr(result, "class_matrix", result), float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"result must be a DivergenceResult or a square (C, C) matrix, got "
                         f"shape {m.shape}")
    return m


def _is_matrix_like(obj) -> bool:
    return hasattr(obj, "class_matrix") or (isinstance(obj, np.ndarray) and obj.ndim == 2)


def _short(v: float, digits: int) -> str:
    """``0.23`` -> ``.23``: the leading zero carries nothing and widens every cell."""
    if not np.isfinite(v):
        return "-"
    s = f"{v:.{digits}f}"
    return s[1:] if s.startswith("0.") else ("-" + s[2:] if s.startswith("-0.") else s)


def plot_class_divergence(result, ax=None, *, class_names=None, annotate: bool | None = None,
                          digits: int = 2, cmap: str = "viridis", colorbar: bool = True,
                          vmin: float | None = None, vmax: float | None = None,
                          width: str | float | None = None, title: str | None = None,
                          **kwargs):
    """Heatmaps of the class x class mean latent distance, one panel per model, one colour
    scale and one colour bar shared by all panels (seaborn ``heatmap``).

    Parameters
    ----------
    result : DivergenceResult, ndarray (C, C), or mapping name -> either
        ``class_matrix[a, b]``: mean over anchors of class ``a`` of their mean distance to
        the examples of class ``b`` (the diagonal is the per-class ``d_a+``). Several
        models give one faceted figure whose colours compare across panels.
    ax : Axes or sequence of Axes (one per model), optional
    class_names : sequence of str, optional
    annotate : bool, optional
        Write values in the cells (default: when C <= 12), with ``digits`` decimals and no
        leading zero (``.23``) so the labels fit.
    digits : int
    cmap : str
    colorbar : bool
        One colour bar for all panels.
    vmin, vmax : float, optional
        Colour limits (default: the range over all panels).
    width : {"single", "double"} or float, optional
        Figure width of a new figure (default: single column for one model, double for more).
    title : str, optional
        Figure title (panels are titled with the model names).
    **kwargs
        Passed to ``seaborn.heatmap``.

    Returns
    -------
    Figure
        One heatmap (a ``QuadMesh``) per model, then the colour bar axis.
    """
    import seaborn as sns

    from robustviz.figures._style import figsize

    res = named(result, _is_matrix_like, "DivergenceResult or (C, C) matrix")
    mats = {k: _class_matrix(v) for k, v in res.items()}
    C = next(iter(mats.values())).shape[0]
    if any(m.shape != (C, C) for m in mats.values()):
        raise ValueError("every model's class matrix must have the same shape")
    names = [str(i) for i in range(C)] if class_names is None else [str(c) for c in class_names]
    if len(names) != C:
        raise ValueError(f"class_names must have {C} entries, got {len(names)}")
    M = len(mats)
    import matplotlib as mpl

    if width is not None:
        fw = figsize(width)[0]
    else:  # the style's width for one model (a paper column, a notebook cell), >= 6.9 in more
        base = float(mpl.rcParams["figure.figsize"][0])
        fw = base if M == 1 else max(figsize("double")[0], base)
    panel = min(fw / M, 4.5)
    fsize = None if ax is not None else (fw, panel * 1.05 + 0.4)
    fig, axes = new_axes(ax, ncols=M, figsize=fsize, name="ax")
    finite = np.concatenate([m[np.isfinite(m)] for m in mats.values()])
    lo = float(finite.min()) if vmin is None and finite.size else (vmin if vmin is not None else 0.0)
    hi = float(finite.max()) if vmax is None and finite.size else (vmax if vmax is not None else 1.0)
    show = annotate if annotate is not None else C <= 12
    # cell labels sized to the cells (".23" is about 2 font sizes wide) so they never overlap
    cell_pt = 72.0 * (fsize[0] / M if fsize else 3.3) * 0.7 / C
    cell_font = float(np.clip(cell_pt * 0.32, 3.0, 9.0))
    rotate = max(map(len, names)) > 2
    for i, ((nm, m), a) in enumerate(zip(mats.items(), axes)):
        labels = np.vectorize(lambda v: _short(v, digits))(m) if show else False
        sns.heatmap(m, ax=a, cmap=cmap, vmin=lo, vmax=hi, cbar=False, square=True,
                    annot=labels, fmt="", annot_kws={"fontsize": cell_font},
                    xticklabels=names, yticklabels=names if i == 0 else False,
                    linewidths=0, **kwargs)
        a.tick_params(axis="x", labelrotation=45 if rotate else 0)
        if rotate:
            for t in a.get_xticklabels():
                t.set_horizontalalignment("right")
        a.tick_params(axis="y", labelrotation=0)
        a.set_xlabel("class of the set members")
        if i == 0:
            a.set_ylabel("anchor class")
        if nm:
            a.set_title(nm)
    if colorbar:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        dist = {getattr(r, "distance", None) for r in res.values()}
        dist = dist.pop() if len(dist) == 1 else None
        label = {"cosine": "mean cosine distance",
                 "l2": "mean L2 distance"}.get(dist, "mean distance")
        sm = ScalarMappable(norm=Normalize(lo, hi), cmap=cmap)
        fig.colorbar(sm, ax=axes, label=label, shrink=0.8)
    if title is not None:
        fig.suptitle(title)
    return fig
