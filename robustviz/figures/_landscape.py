"""Loss landscape figures: 1-D curves, 2-D contours and 3-D surfaces on a shared scale."""
from __future__ import annotations

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from robustviz.figures._common import colors_for, finish, named, new_axes

__all__ = ["plot_landscape_1d", "plot_landscape_contour", "plot_landscape_surface"]

_LABELS = {"loss": "loss", "adv_loss": "adversarial loss", "accuracy": "accuracy",
           "adv_accuracy": "adversarial accuracy"}


def _is_landscape(obj) -> bool:
    return hasattr(obj, "coords") and hasattr(obj, "loss") and hasattr(obj, "values")


def _axis_labels(kind: str):
    return {"weights": ("direction 1 ($\\alpha$)", "direction 2 ($\\beta$)"),
            "interpolation": ("interpolation $\\alpha$ (0: first model, 1: second)", ""),
            "input": ("along sign($\\nabla_x L$) (pixels)", "random sign direction (pixels)"),
            }.get(kind, ("$\\alpha$", "$\\beta$"))


def plot_landscape_1d(results, ax=None, *, metrics=("loss", "adv_loss"), colors=None,
                      title: str | None = None, **kwargs) -> Figure:
    """1-D landscapes (random direction or interpolation), one colour per model.

    Parameters
    ----------
    results : Landscape or dict name -> Landscape
        1-D landscapes (:func:`robustviz.diagnostics.weight_landscape` with ``dims=1`` or
        :func:`~robustviz.diagnostics.interpolation_landscape`).
    ax : Axes, optional
    metrics : sequence of str
        Drawn per model: ``"loss"`` solid, ``"adv_loss"`` dashed (when computed),
        ``"accuracy"``/``"adv_accuracy"`` on a right-hand axis, dotted.
    colors : sequence of str, optional
    title : str, optional
    **kwargs
        Passed to ``Axes.plot``.

    Returns
    -------
    Figure
    """
    res = named(results, _is_landscape, "Landscape")
    for name, r in res.items():
        if r.dims != 1:
            raise ValueError(f"landscape {name!r} is {r.dims}-D; use plot_landscape_contour")
    fig, (ax,) = new_axes(ax)
    cols = colors_for(len(res), colors)
    acc_ax = None
    styles = {"loss": "-", "adv_loss": "--", "accuracy": ":", "adv_accuracy": "-."}
    for (name, r), col in zip(res.items(), cols):
        for m in metrics:
            if m not in styles:
                raise ValueError(f"unknown metric {m!r}; choose from {list(styles)}")
            v = getattr(r, m)
            if v is None:
                continue
            label = f"{name} {_LABELS[m]}".strip()
            if "accuracy" in m:
                if acc_ax is None:
                    from robustviz.figures._common import twin_accuracy_axis
                    acc_ax = twin_accuracy_axis(ax)
                    acc_ax.set_ylabel("accuracy (%)")
                    acc_ax.set_ylim(0, 100)
                acc_ax.plot(r.coords[0], 100 * v, color=col, ls=styles[m], label=label, **kwargs)
            else:
                ax.plot(r.coords[0], v, color=col, ls=styles[m], label=label, **kwargs)
    kind = next(iter(res.values())).kind
    ax.set_xlabel(_axis_labels(kind)[0])
    ax.set_ylabel("loss")
    if kind == "interpolation":
        for x0 in (0.0, 1.0):
            ax.axvline(x0, color="0.6", lw=0.6, zorder=0)
    handles, labels = ax.get_legend_handles_labels()
    if acc_ax is not None:
        h2, l2 = acc_ax.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if labels:
        ax.legend(handles, labels, loc="best")
    return finish(fig, ax, title)


def _shared_norm(res, metric, vmin, vmax):
    vals = np.concatenate([np.ravel(r.values(metric)) for r in res.values()])
    lo = float(np.nanmin(vals)) if vmin is None else float(vmin)
    hi = float(np.nanmax(vals)) if vmax is None else float(vmax)
    if hi <= lo:
        hi = lo + 1e-6
    return Normalize(lo, hi)


def _check_2d(res):
    for name, r in res.items():
        if r.dims != 2:
            raise ValueError(f"landscape {name!r} is 1-D; use plot_landscape_1d")


def plot_landscape_contour(results, ax=None, *, metric: str = "loss", levels: int = 20,
                           vmin: float | None = None, vmax: float | None = None,
                           radius: float | None = None, cmap: str = "viridis",
                           title: str | None = None) -> Figure:
    """2-D contour maps, one panel per model, all on one colour scale with one colour bar.

    Parameters
    ----------
    results : Landscape or dict name -> Landscape
        2-D landscapes.
    ax : None or sequence of Axes
        One Axes per model, or None for a new figure.
    metric : {"loss", "adv_loss", "accuracy", "adv_accuracy"}
    levels : int
        Number of contour levels (shared by the panels).
    vmin, vmax : float, optional
        Colour scale limits (default: the range over all models).
    radius : float, optional
        Draw the circle of this radius (e.g. the one :meth:`Landscape.rise` averages over)
        and state the mean rise in each panel's title.
    cmap : str
    title : str, optional

    Returns
    -------
    Figure
    """
    res = named(results, _is_landscape, "Landscape")
    _check_2d(res)
    m = len(res)
    if ax is None:
        fig = Figure(figsize=(2.7 * m + 0.7, 2.6), layout="constrained")
        axes = list(np.ravel(fig.subplots(1, m, squeeze=False, sharex=True, sharey=True)))
    else:
        fig, axes = new_axes(ax, ncols=m)
    norm = _shared_norm(res, metric, vmin, vmax)
    lv = np.linspace(norm.vmin, norm.vmax, levels)
    cs = None
    for a, (name, r) in zip(axes, res.items()):
        A, B = np.meshgrid(r.coords[0], r.coords[1], indexing="ij")
        cs = a.contourf(A, B, r.values(metric), levels=lv, cmap=cmap, norm=norm, extend="both")
        a.contour(A, B, r.values(metric), levels=lv[::2], colors="k", linewidths=0.3, alpha=0.5)
        a.plot([0], [0], marker="+", color="w", ms=6)
        label = name
        if radius is not None:
            t = np.linspace(0, 2 * np.pi, 100)
            a.plot(radius * np.cos(t), radius * np.sin(t), color="w", lw=0.8, ls="--")
            label = f"{name}\nrise@{radius:g} = {r.rise(radius, metric):.3g}".strip()
        a.set_title(label)
        a.set_aspect("equal", adjustable="box")
        a.grid(False)
        xl, yl = _axis_labels(r.kind)
        a.set_xlabel(xl)
    axes[0].set_ylabel(_axis_labels(next(iter(res.values())).kind)[1])
    fig.colorbar(cs, ax=axes, label=_LABELS[metric], shrink=0.9)
    if title is not None:
        fig.suptitle(title)
    return fig


def plot_landscape_surface(results, ax=None, *, metric: str = "loss",
                           vmin: float | None = None, vmax: float | None = None,
                           cmap: str = "viridis", elev: float = 30, azim: float = -60,
                           title: str | None = None) -> Figure:
    """3-D surfaces, one panel per model, shared z range and colour scale.

    Parameters
    ----------
    results : Landscape or dict name -> Landscape
        2-D landscapes.
    ax : None or sequence of 3-D Axes
    metric, vmin, vmax, cmap, title
        As in :func:`plot_landscape_contour`.
    elev, azim : float
        View angles.

    Returns
    -------
    Figure
    """
    res = named(results, _is_landscape, "Landscape")
    _check_2d(res)
    m = len(res)
    if ax is None:
        fig = Figure(figsize=(2.6 * m + 0.6, 2.6), layout="constrained")
        axes = [fig.add_subplot(1, m, i + 1, projection="3d") for i in range(m)]
    else:
        fig, axes = new_axes(ax, ncols=m, projection="3d")
    norm = _shared_norm(res, metric, vmin, vmax)
    surf = None
    for a, (name, r) in zip(axes, res.items()):
        A, B = np.meshgrid(r.coords[0], r.coords[1], indexing="ij")
        surf = a.plot_surface(A, B, np.clip(r.values(metric), norm.vmin, norm.vmax), cmap=cmap,
                              norm=norm, linewidth=0, antialiased=True, rcount=60, ccount=60)
        a.set_zlim(norm.vmin, norm.vmax)
        a.view_init(elev=elev, azim=azim)
        a.set_title(name)
        a.set_xlabel("$\\alpha$")
        a.set_ylabel("$\\beta$")
    fig.colorbar(surf, ax=axes, label=_LABELS[metric], shrink=0.6)
    if title is not None:
        fig.suptitle(title)
    return fig
