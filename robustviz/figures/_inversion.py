"""Feature inversion maps: seeds as rows, neurons as columns, one panel per model."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from robustviz.figures._common import named

__all__ = ["plot_inversion"]


def _is_inversion(obj) -> bool:
    return hasattr(obj, "images") and hasattr(obj, "start") and hasattr(obj, "neurons")


def _as_grid(res) -> np.ndarray:
    """``(S, K, H, W, C)`` images of a result (representation inversion: one column)."""
    imgs = res.images.detach().cpu().numpy()
    if imgs.ndim == 4:  # representation inversion: (N, C, H, W) -> one row per image
        imgs = imgs[:, None]
    return np.transpose(imgs, (0, 1, 3, 4, 2))


def plot_inversion(results, ax=None, *, show_seeds: bool = True, cmap: str = "gray",
                   panel_width: float | None = None, title: str | None = None) -> Figure:
    """Feature inversion maps of one or more models on a shared layout.

    Parameters
    ----------
    results : InversionResult or dict name -> InversionResult
        From :func:`robustviz.diagnostics.feature_inversion` (or
        :func:`~robustviz.diagnostics.representation_inversion`: one image per row, with
        its target). All results must have the same number of seeds and neurons.
    ax : None or sequence of Axes
        ``M * S * (K + extra)`` axes in row-major order per model, or None for a new figure.
    show_seeds : bool
        Add a first column with the seed images (and, for representation inversion, a
        last column with the targets).
    cmap : str
        Colour map for 1-channel images.
    panel_width : float, optional
        Width of one model's panel in inches (default 0.55 in per column).
    title : str, optional

    Returns
    -------
    Figure
        One panel (subfigure) per model, titled with its name; rows are seeds, columns
        neurons (labelled with their index).
    """
    res = named(results, _is_inversion, "InversionResult")
    grids = {k: _as_grid(r) for k, r in res.items()}
    shapes = {g.shape[:2] for g in grids.values()}
    if len(shapes) != 1:
        raise ValueError(f"all results must have the same seeds x neurons layout, got {sorted(shapes)}")
    s_count, k_count = shapes.pop()
    first = next(iter(res.values()))
    rep = first.targets is not None
    extra = (1 + int(rep)) if show_seeds else 0
    ncols = k_count + extra
    m = len(res)
    need = m * s_count * ncols
    if ax is None:
        w = panel_width or 0.55 * ncols
        fig = Figure(figsize=(w * m + 0.2 * (m - 1), 0.55 * s_count + 0.45), layout="constrained")
        subs = np.atleast_1d(fig.subfigures(1, m, wspace=0.02))
        axes = [a for sf in subs for a in np.ravel(sf.subplots(s_count, ncols, squeeze=False))]
        for sf, name in zip(subs, res):
            if name:
                sf.suptitle(name, fontsize="medium")
    else:
        axes = list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) != need:
            raise ValueError(f"ax must hold {need} Axes (models x seeds x columns), got {len(axes)}")
        fig = axes[0].figure
    i = 0
    for name, r in res.items():
        g = grids[name]
        seeds = np.transpose(r.start.detach().cpu().numpy(), (0, 2, 3, 1))
        targets = (np.transpose(r.targets.detach().cpu().numpy(), (0, 2, 3, 1)) if rep else None)
        for s in range(s_count):
            row = ([seeds[s]] if show_seeds else []) + [g[s, k] for k in range(k_count)]
            if rep and show_seeds:
                row.append(targets[s])
            for j, img in enumerate(row):
                a = axes[i]
                i += 1
                if img.shape[-1] == 1:
                    a.imshow(img[..., 0], cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
                else:
                    a.imshow(np.clip(img, 0, 1), interpolation="nearest")
                a.set_xticks([])
                a.set_yticks([])
                a.grid(False)
                for sp in a.spines.values():
                    sp.set_visible(False)
                if s == 0:
                    if show_seeds and j == 0:
                        label = "start"
                    elif rep and show_seeds and j == len(row) - 1:
                        label = "target"
                    elif rep:
                        label = "inverted"
                    else:
                        label = str(r.neurons[j - (1 if show_seeds else 0)])
                    a.set_title(label, fontsize="small")
    if title is not None:
        fig.suptitle(title)
    return fig
