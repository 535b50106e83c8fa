"""Figures of latent divergences: R-DIV vs eps (Fig. 2c/4), d_a+/d_a- per model (Fig. 2a/5)
of Bui, Le, Zhao, Montague, Camtepe, Phung, "Understanding and Achieving Efficient Robustness
with Adversarial Supervised Contrastive Learning", arXiv:2101.10027, 2021; and the class x
class divergence heatmap."""
from __future__ import annotations

import numpy as np

from robustviz.figures._common import colors_for, finish, markers_for, named, new_axes
from robustviz.figures._layout import (MIN_FONT_PT, cell_font, columns_that_fit, facet_shape,
                                       fit_font, font_points, text_size)
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


#: Fraction of a heatmap cell left free around its value: neighbouring values stay apart.
_CELL_PAD = 0.25
#: Smallest heatmap panel (in) worth drawing: below it the colour pattern is no longer seen.
_MIN_PANEL_IN = 1.2


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

    Many models follow the layout rule of :mod:`robustviz.figures._layout`: the panels wrap
    into a balanced grid (five models: 2 x 3) so each keeps cells large enough for its
    labels; class names label only the outer panels (rotated when wider than a cell, every
    k-th when rows are too close for one line each); the axis titles are written once for
    the figure; values are written in the cells only when they fit at a legible size.

    Parameters
    ----------
    result : DivergenceResult, ndarray (C, C), or mapping name -> either
        ``class_matrix[a, b]``: mean over anchors of class ``a`` of their mean distance to
        the examples of class ``b`` (the diagonal is the per-class ``d_a+``). Several
        models give one faceted figure whose colours compare across panels.
    ax : Axes or sequence of Axes (one per model), optional
    class_names : sequence of str, optional
    annotate : bool, optional
        Write values in the cells, with ``digits`` decimals and no leading zero (``.23``).
        Default: when the widest value fits the drawn cells at
        :data:`~robustviz.figures._layout.MIN_FONT_PT` or more; ``True`` writes them at the
        size that fits, however small; ``False`` never.
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
    import matplotlib as mpl
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
    labels = {k: np.vectorize(lambda v: _short(v, digits))(m) for k, m in mats.items()}
    values = sorted({s for lab in labels.values() for s in lab.ravel()}, key=len)[-8:]  # widest
    tick_pt = font_points(mpl.rcParams["xtick.labelsize"])
    title_pt = font_points(mpl.rcParams["axes.titlesize"])
    line_in = 1.3 * tick_pt / 72                      # one tick label's line
    name_in = max(text_size(n, tick_pt)[0] for n in names) / 72
    if ax is None:
        if width is not None:
            fw = figsize(width)[0]
        else:  # the style's width for one model (a paper column, a notebook cell), >= 6.9 in more
            base = float(mpl.rcParams["figure.figsize"][0])
            fw = base if M == 1 else max(figsize("double")[0], base)
        # a cell holds one tick label's line (and, when asked, its value at a legible size)
        cell_in = line_in
        if annotate:
            cell_in = max(cell_in, _cell_need(values, MIN_FONT_PT))
        left = name_in + 0.45                               # class names and the axis title
        right = 0.8 if colorbar else 0.1
        avail = fw - left - right
        # the panel's want: every class its own label line; where not even the full width
        # gives that (CIFAR-100), labels are thinned and the panel takes the smallest
        # useful size instead
        want = max(C * cell_in, _MIN_PANEL_IN) if C * cell_in <= avail else _MIN_PANEL_IN
        cols = columns_that_fit(M, avail, want + 0.15)
        rows, cols = facet_shape(M, cols)
        panel = min(avail / cols - 0.15, 4.5)
        cell_in = panel / C
        rotate = name_in > 0.9 * cell_in
        xtick_in = (name_in if rotate else line_in) + 0.1
        fsize = (fw, rows * (panel + title_pt * 1.6 / 72) + xtick_in + 0.35
                 + (0.3 if title else 0))
        fig, grid = new_axes(None, nrows=rows, ncols=cols, figsize=fsize)
        # empty slots at the end of the first row: every column ends in a panel, so class
        # names along the bottom row label every column and no row needs a gap for them
        holes = rows * cols - M
        slots = [i if i < cols - holes else i + holes for i in range(M)]
        for k in set(range(rows * cols)) - set(slots):
            grid[k].remove()
        axes = [grid[k] for k in slots]
    else:
        fig, axes = new_axes(ax, ncols=M, name="ax")
        rows, cols, slots = 1, M, list(range(M))
        pos = axes[0].get_position()
        cell_in = min(pos.width * fig.get_figwidth(), pos.height * fig.get_figheight()) / C
        rotate = name_in > 0.9 * cell_in
    every = max(1, int(np.ceil(line_in / cell_in)))         # rows too close: every k-th label
    ticks = np.arange(0, C, every)
    finite = np.concatenate([m[np.isfinite(m)] for m in mats.values()])
    lo = float(finite.min()) if vmin is None and finite.size else (vmin if vmin is not None else 0.0)
    hi = float(finite.max()) if vmax is None and finite.size else (vmax if vmax is not None else 1.0)
    own = ax is None and M > 1                              # axis titles once, for the figure
    title_size = min(title_pt, max(MIN_FONT_PT, fit_font([n for n in mats if n], cell_in * C, 1.0,
                                                         max_pt=title_pt, pad=0.05)))
    for i, ((nm, m), a) in enumerate(zip(mats.items(), axes)):
        sns.heatmap(m, ax=a, cmap=cmap, vmin=lo, vmax=hi, cbar=False, square=True,
                    annot=False, xticklabels=False, yticklabels=False, linewidths=0, **kwargs)
        first_col = slots[i] % cols == 0
        bottom = slots[i] >= (rows - 1) * cols
        a.set_yticks(ticks + 0.5, [names[t] for t in ticks] if first_col else [])
        a.set_xticks(ticks + 0.5, [names[t] for t in ticks] if bottom else [])
        a.tick_params(axis="x", labelrotation=90 if rotate else 0)
        a.tick_params(axis="y", labelrotation=0)
        a.grid(False)                                       # the style's grid would cross cells
        if not own:
            if bottom:
                a.set_xlabel("class of the set members")
            if first_col:
                a.set_ylabel("anchor class")
        if nm:
            a.set_title(nm, fontsize=title_size)
    if own:
        fig.supxlabel("class of the set members", fontsize=mpl.rcParams["axes.labelsize"])
        fig.supylabel("anchor class", fontsize=mpl.rcParams["axes.labelsize"])
    if colorbar:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        dist = {getattr(r, "distance", None) for r in res.values()}
        dist = dist.pop() if len(dist) == 1 else None
        label = {"cosine": "mean cosine distance",
                 "l2": "mean L2 distance"}.get(dist, "mean distance")
        sm = ScalarMappable(norm=Normalize(lo, hi), cmap=cmap)
        fig.colorbar(sm, ax=axes, label=label, shrink=0.8 if rows == 1 else 0.6)
    if title is not None:
        fig.suptitle(title)
    if annotate is not False:
        _annotate_cells(fig, axes, mats, labels, values, tick_pt, force=bool(annotate))
    return fig


def _cell_need(texts, size_pt: float) -> float:
    """The cell side (in) that holds each of ``texts`` at ``size_pt`` with
    :data:`_CELL_PAD` of it free."""
    return size_pt / fit_font(texts, 1.0, 1.0, max_pt=1e9, pad=_CELL_PAD)   # 1 in holds this


def _annotate_cells(fig, axes, mats, labels, widest, max_pt, *, force):
    """Write each matrix value in its cell, sized to the cells as laid out, in a colour that
    reads on the cell's colour; nothing when the values would need less than the minimum
    legible size (unless ``force``)."""
    from seaborn.utils import relative_luminance

    C = next(iter(mats.values())).shape[0]
    fig.draw_without_rendering()                            # lay out: cells have their size
    w_in, h_in = fig.get_size_inches()
    cell_w = min(a.get_position().width * w_in for a in axes) / C
    cell_h = min(a.get_position().height * h_in for a in axes) / C
    size = fit_font(widest, cell_w, cell_h, max_pt=max_pt, pad=_CELL_PAD) if force else \
        cell_font(widest, cell_w, cell_h, max_pt=max_pt, pad=_CELL_PAD)
    if size is None:
        return
    for a, m, lab in zip(axes, mats.values(), labels.values()):
        mesh = a.collections[0]
        mesh.update_scalarmappable()
        colours = mesh.get_facecolors()
        for k, (r, c) in enumerate(np.ndindex(C, C)):
            if not np.isfinite(m[r, c]):
                continue                                    # masked: no colour, no number
            ink = ".15" if relative_luminance(colours[k]) > 0.408 else "w"
            a.text(c + 0.5, r + 0.5, lab[r, c], ha="center", va="center", color=ink,
                   fontsize=size)
