"""Adversarial examples as images: the clean input, the perturbation (scaled to be
visible) and the adversarial input, with the model's predictions."""
from __future__ import annotations

import numpy as np

from robustviz.figures._common import new_axes

__all__ = ["plot_adversarial_examples"]


def _np(a, name):
    if hasattr(a, "detach"):
        a = a.detach().float().cpu().numpy()
    a = np.asarray(a, float)
    if a.ndim == 3:                              # (N, H, W): grey images
        a = a[:, None]
    if a.ndim != 4 or a.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have shape (N, C, H, W) with C in (1, 3), got {a.shape}")
    return a


def _labels(a, n, name):
    if a is None:
        return None
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a).reshape(-1)
    if a.shape[0] < n:
        raise ValueError(f"{name} must hold at least {n} labels, got {a.shape[0]}")
    return a[:n].astype(int)


def plot_adversarial_examples(x, x_adv, y=None, *, pred=None, pred_adv=None, class_names=None,
                              n: int = 6, ax=None, title: str | None = None):
    """Columns of (clean x, x' - x scaled to its largest magnitude, adversarial x').

    Parameters
    ----------
    x, x_adv : Tensor or ndarray of shape (N, C, H, W)
        Images in [0, 1] (C = 1 or 3); the first ``n`` are drawn.
    y : (N,) int, optional
        True labels (in the clean image's title).
    pred, pred_adv : (N,) int, optional
        The model's predictions on ``x`` and ``x_adv``; a wrong prediction is printed in red.
    class_names : sequence of str, optional
    n : int
        Number of examples (columns).
    ax : sequence of 3 * n Axes (row-major: x row, difference row, x' row), optional
    title : str, optional
        Figure title (e.g. the model's name).

    Returns
    -------
    Figure
        3 x n image axes; the middle row shows ``0.5 + (x' - x) / (2 max|x' - x|)`` (grey
        = unchanged; for one channel a diverging map, blue = darker, red = brighter) and
        its ylabel gives the scale.

    Shape
    -----
    x, x_adv: (N, C, H, W); y, pred, pred_adv: (N,).
    """
    x, xa = _np(x, "x"), _np(x_adv, "x_adv")
    if x.shape != xa.shape:
        raise ValueError(f"x and x_adv must have the same shape, got {x.shape} and {xa.shape}")
    n = int(min(n, x.shape[0]))
    if n < 1:
        raise ValueError("need at least one example")
    y, pred, pred_adv = (_labels(v, n, k) for v, k in ((y, "y"), (pred, "pred"),
                                                          (pred_adv, "pred_adv")))
    name = (lambda c: str(class_names[c]) if class_names is not None else str(c))
    size = None if ax is not None else (min(1.1 * n, 6.9), 3.6)
    fig, axes = new_axes(ax, nrows=3, ncols=n, figsize=size, name="ax")
    d = xa[:n] - x[:n]
    scale = float(np.abs(d).max()) or 1.0
    grey = x.shape[1] == 1
    for j in range(n):
        a0, a1, a2 = axes[j], axes[n + j], axes[2 * n + j]
        img = (lambda t: t[0] if grey else np.transpose(t, (1, 2, 0)))
        a0.imshow(img(x[j]), cmap="gray" if grey else None, vmin=0, vmax=1)
        if grey:
            a1.imshow(d[j, 0], cmap="RdBu_r", vmin=-scale, vmax=scale)
        else:
            a1.imshow(np.clip(0.5 + img(d[j]) / (2 * scale), 0, 1))
        a2.imshow(img(xa[j]), cmap="gray" if grey else None, vmin=0, vmax=1)
        for a in (a0, a1, a2):
            a.set_xticks([])
            a.set_yticks([])
            a.grid(False)
        parts = []
        if y is not None:
            parts.append(name(y[j]))
        if pred is not None:
            parts.append(f"-> {name(pred[j])}")
        if parts:
            wrong = pred is not None and y is not None and pred[j] != y[j]
            a0.set_title("\n".join(parts), fontsize="x-small",
                         color="#D55E00" if wrong else "black")
        if pred_adv is not None:
            wrong = y is not None and pred_adv[j] != y[j]
            a2.set_title(f"-> {name(pred_adv[j])}", fontsize="x-small",
                         color="#D55E00" if wrong else "black")
    axes[0].set_ylabel("x", fontsize="small")
    axes[n].set_ylabel(f"x'-x\n(+/-{scale:.3g})", fontsize="small")
    axes[2 * n].set_ylabel("x'", fontsize="small")
    if title is not None:
        fig.suptitle(title)
    return fig
