"""Attribution maps: one row per model (and image), the image then each method's clean and
adversarial map."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from robustviz.figures._common import Figure

__all__ = ["plot_attributions"]

_LABELS = {"saliency": "saliency", "integrated_gradients": "integr. grad.",
           "smoothgrad": "SmoothGrad"}


def _is_maps(obj) -> bool:
    return all(hasattr(obj, a) for a in ("maps", "x", "methods", "kinds", "pred"))


def _bare(a) -> None:
    a.set_xticks([])
    a.set_yticks([])
    a.grid(False)
    for sp in a.spines.values():
        sp.set_visible(False)


def plot_attributions(maps, ax=None, *, images: int | Sequence[int] = 0,
                      methods: Sequence[str] | None = None, models: Sequence[str] | None = None,
                      absolute: bool = False, classes: Sequence[str] | None = None,
                      quantile: float = 0.99, cmap: str | None = None,
                      title: str | None = None) -> Figure:
    """What each model looks at: rows are models (grouped by image), columns the image and,
    per method, its map on the clean and on the adversarial input.

    Signed maps use a diverging map centred on 0 (red: raising the class's logit, blue:
    lowering it); ``absolute=True`` draws ``|map|`` (summed over channels) on a sequential
    map. Every panel has its own scale (``quantile`` of its ``|values|`` is the colour
    limit): models' gradients differ in size by orders of magnitude, and what the figure
    compares is where a map puts its mass, not how large it is.

    Parameters
    ----------
    maps : AttributionMaps
        From :func:`robustviz.diagnostics.attribution_maps`.
    ax : None or sequence of Axes
        ``rows * columns`` axes in row-major order, or None for a new figure.
    images : int or sequence of int
        Which images (indices into ``maps.x``).
    methods, models : sequence of str, optional
        A subset and order (default: all, as computed).
    absolute : bool
    classes : sequence of str, optional
        Class names, to label the predictions under the maps.
    quantile : float
        In (0, 1]: the colour limit of a panel is this quantile of its ``|values|`` (0.99:
        a few extreme pixels do not wash out the rest).
    cmap : str, optional
        Default ``"RdBu_r"`` (signed) or ``"magma"`` (absolute).
    title : str, optional

    Returns
    -------
    Figure
    """
    if not _is_maps(maps):
        raise TypeError(f"maps must be an AttributionMaps (robustviz.diagnostics.attribution_maps), "
                        f"got {type(maps).__name__}")
    methods = tuple(maps.methods if methods is None else methods)
    models = tuple(maps.maps if models is None else models)
    for m in methods:
        if m not in maps.methods:
            raise ValueError(f"method {m!r} was not computed; the maps hold {list(maps.methods)}")
    for m in models:
        if m not in maps.maps:
            raise ValueError(f"model {m!r} is not in the maps; they hold {list(maps.maps)}")
    if not methods or not models:
        raise ValueError("methods and models must not be empty")
    images = [images] if isinstance(images, (int, np.integer)) else list(images)
    n = maps.x.shape[0]
    bad = [i for i in images if isinstance(i, bool) or not isinstance(i, (int, np.integer))
           or not -n <= int(i) < n]
    if not images or bad:
        raise ValueError(f"images must be indices into the {n} images, got {images}")
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile!r}")
    kinds = maps.kinds
    cmap = cmap or ("magma" if absolute else "RdBu_r")
    ncols = 1 + len(methods) * len(kinds)
    nrows = len(images) * len(models)
    if ax is None:
        fig = Figure(figsize=(1.25 * ncols + 0.4, 1.35 * nrows + 0.5), layout="constrained")
        axes = list(np.ravel(fig.subplots(nrows, ncols, squeeze=False)))
    else:
        axes = list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) != nrows * ncols:
            raise ValueError(f"ax must hold {nrows * ncols} Axes (rows x columns), got {len(axes)}")
        fig = axes[0].figure

    def name(c):
        c = int(c)
        return classes[c] if classes is not None and c < len(classes) else str(c)

    k = 0
    for r, (img, model) in enumerate((i, m) for i in images for m in models):
        x = maps.x[img].detach().cpu().numpy()
        a = axes[k]
        k += 1
        if x.shape[0] == 1:
            a.imshow(x[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            a.imshow(np.clip(np.transpose(x, (1, 2, 0)), 0, 1), interpolation="nearest")
        _bare(a)
        a.set_ylabel(model, fontsize="small")
        a.set_xlabel(f"label {name(maps.y[img])}", fontsize="x-small")
        if r == 0:
            a.set_title("image", fontsize="small")
        for meth in methods:
            for kind in kinds:
                m = maps.maps[model][meth][kind][img].detach().cpu().double().numpy()
                m = np.abs(m).sum(0) if absolute else m.sum(0)
                lim = float(np.quantile(np.abs(m), quantile)) or float(np.abs(m).max()) or 1.0
                a = axes[k]
                k += 1
                if absolute:
                    a.imshow(m, cmap=cmap, vmin=0, vmax=lim, interpolation="nearest")
                else:
                    a.imshow(m, cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
                _bare(a)
                a.set_xlabel(f"pred {name(maps.pred[model][kind][img])}", fontsize="x-small")
                if r == 0:
                    a.set_title(f"{_LABELS.get(meth, meth)}\n{kind}", fontsize="small")
    if title is not None:
        fig.suptitle(title)
    return fig
