"""Adversarial examples as images: the clean input, the perturbation (scaled to be
visible) and the adversarial input, with the model's predictions."""
from __future__ import annotations

import numpy as np

from collections.abc import Mapping

from robustviz._validate import check_choice
from robustviz.figures._common import new_axes
from robustviz.figures._layout import MIN_FONT_PT, fit_font, font_points

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


_WRONG, _RIGHT = "#D55E00", "black"


def plot_adversarial_examples(x, x_adv, y=None, *, pred=None, pred_adv=None, class_names=None,
                              n: int = 6, ax=None, title: str | None = None,
                              show: str = "perturbation"):
    """Clean images, perturbations and adversarial images with the predictions.

    For one model: columns of (clean x, x' - x scaled to its largest magnitude, adversarial
    x'). For several models (``x_adv`` a mapping ``name -> x'``): one grid, the clean images
    once on top and then **one row per model** showing its perturbation (or its adversarial
    image, ``show="adversarial"``) on one scale shared by all models, titled with the
    model's prediction on x'.

    Parameters
    ----------
    x : Tensor or ndarray of shape (N, C, H, W)
        Clean images in [0, 1] (C = 1 or 3); the first ``n`` are drawn.
    x_adv : Tensor or ndarray of shape (N, C, H, W), or mapping name -> one
        Adversarial images (one model), or one set per model (one row each).
    y : (N,) int, optional
        True labels (in the clean image's title).
    pred, pred_adv : (N,) int or mapping name -> (N,) int, optional
        The model's predictions on ``x`` and ``x_adv`` (per model, like ``x_adv``); a wrong
        prediction is printed in red. With several models the row label counts the
        right predictions among the ``n`` shown, clean -> adversarial.
    class_names : sequence of str, optional
    n : int
        Number of examples (columns).
    ax : sequence of Axes, optional
        One model: ``3 * n`` Axes (row-major: x row, difference row, x' row); several:
        ``(1 + models) * n`` (clean row, then one row per model).
    title : str, optional
        Figure title (e.g. the model's name).
    show : {"perturbation", "adversarial"}
        Several models: what each model's row shows.

    Returns
    -------
    Figure
        One model: 3 x n image axes; the middle row shows ``0.5 + (x' - x) / (2 max|x' -
        x|)`` (grey = unchanged; for one channel a diverging map, blue = darker, red =
        brighter) and its ylabel gives the scale. Several models: (1 + models) x n image
        axes, then (grey images, perturbations shown) the perturbation's colour bar.

    Shape
    -----
    x, x_adv: (N, C, H, W); y, pred, pred_adv: (N,).
    """
    if isinstance(x_adv, Mapping):
        return _plot_model_rows(x, x_adv, y, pred=pred, pred_adv=pred_adv,
                                class_names=class_names, n=n, ax=ax, title=title, show=show)
    for k, v in (("pred", pred), ("pred_adv", pred_adv)):
        if isinstance(v, Mapping):
            raise TypeError(f"{k} is a mapping per model but x_adv is one set of images; pass "
                            f"x_adv as a mapping name -> images too")
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
    label_pt = _label_font(fig, axes[0], [f"-> {name(c)}" for c in _shown(y, pred, pred_adv)])
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
            a0.set_title("\n".join(parts), fontsize=label_pt, color=_WRONG if wrong else _RIGHT)
        if pred_adv is not None:
            wrong = y is not None and pred_adv[j] != y[j]
            a2.set_title(f"-> {name(pred_adv[j])}", fontsize=label_pt,
                         color=_WRONG if wrong else _RIGHT)
    axes[0].set_ylabel("x", fontsize="small")
    axes[n].set_ylabel(f"x'-x\n(+/-{scale:.3g})", fontsize="small")
    axes[2 * n].set_ylabel("x'", fontsize="small")
    if title is not None:
        fig.suptitle(title)
    return fig


def _shown(*labels):
    """The distinct class indices among the given label arrays (None skipped)."""
    return sorted({int(c) for a in labels if a is not None for c in np.ravel(a)})


def _label_font(fig, ax, texts) -> float:
    """The style's small font, or smaller (never under the legible minimum) where the widest
    of ``texts`` would not fit the width of one image."""
    small = font_points("small")
    w_in = ax.get_position().width * fig.get_figwidth()
    return max(MIN_FONT_PT, fit_font(texts, w_in, 1.0, max_pt=small, pad=0.05))


def _per_model(v, names, what, n):
    if v is None:
        return {nm: None for nm in names}
    if not isinstance(v, Mapping):
        raise TypeError(f"with x_adv a mapping name -> images, {what} must be a mapping "
                        f"name -> labels (or None), got {type(v).__name__}")
    missing = [nm for nm in names if nm not in v]
    if missing:
        raise ValueError(f"{what} has no entry for {missing}")
    return {nm: _labels(v[nm], n, f"{what}[{nm!r}]") for nm in names}


def _plot_model_rows(x, x_adv, y, *, pred, pred_adv, class_names, n, ax, title, show):
    """One grid: the clean images on top, one row per model below (see
    :func:`plot_adversarial_examples`)."""
    check_choice(show, "show", ("perturbation", "adversarial"))
    names = [str(k) for k in x_adv]
    if not names:
        raise ValueError("x_adv holds no model")
    x = _np(x, "x")
    advs = {str(k): _np(v, f"x_adv[{k!r}]") for k, v in x_adv.items()}
    for nm, xa in advs.items():
        if xa.shape != x.shape:
            raise ValueError(f"x and x_adv[{nm!r}] must have the same shape, got {x.shape} "
                             f"and {xa.shape}")
    n = int(min(n, x.shape[0]))
    if n < 1:
        raise ValueError("need at least one example")
    y = _labels(y, n, "y")
    preds = _per_model(pred, names, "pred", n)
    preds_adv = _per_model(pred_adv, names, "pred_adv", n)
    name = (lambda c: str(class_names[c]) if class_names is not None else str(c))
    M, grey = len(names), x.shape[1] == 1
    diffs = {nm: xa[:n] - x[:n] for nm, xa in advs.items()}
    scale = max(float(np.abs(d).max()) for d in diffs.values()) or 1.0   # one for all rows
    bar = show == "perturbation" and grey
    size = None
    if ax is None:
        w = min(0.95 * n + 1.0 + (0.6 if bar else 0.0), 6.9)
        img = (w - 1.0 - (0.6 if bar else 0.0)) / n
        size = (w, (M + 1) * (img + 0.22) + (0.3 if title else 0.0))
    fig, axes = new_axes(ax, nrows=M + 1, ncols=n, figsize=size, name="ax")
    label_pt = _label_font(fig, axes[0], [name(c) for c in
                                          _shown(y, *preds.values(), *preds_adv.values())])
    pic = (lambda t: t[0] if grey else np.transpose(t, (1, 2, 0)))
    for j in range(n):
        a = axes[j]
        a.imshow(pic(x[j]), cmap="gray" if grey else None, vmin=0, vmax=1)
        if y is not None:
            a.set_title(name(y[j]), fontsize=label_pt)
    for i, nm in enumerate(names, start=1):
        for j in range(n):
            a = axes[i * n + j]
            if show == "adversarial":
                a.imshow(pic(advs[nm][j]), cmap="gray" if grey else None, vmin=0, vmax=1)
            elif grey:
                a.imshow(diffs[nm][j, 0], cmap="RdBu_r", vmin=-scale, vmax=scale)
            else:
                a.imshow(np.clip(0.5 + pic(diffs[nm][j]) / (2 * scale), 0, 1))
            pa = preds_adv[nm]
            if pa is not None:
                wrong = y is not None and pa[j] != y[j]
                a.set_title(name(pa[j]), fontsize=label_pt, color=_WRONG if wrong else _RIGHT)
        right = [f"{int((p == y).sum())}/{n}" if p is not None and y is not None else "?"
                 for p in (preds[nm], preds_adv[nm])]
        row = nm if right == ["?", "?"] else f"{nm}\nright {right[0]} -> {right[1]}"
        axes[i * n].set_ylabel(row, fontsize=label_pt)
    for a in axes:
        a.set_xticks([])
        a.set_yticks([])
        a.grid(False)
    axes[0].set_ylabel("clean x", fontsize=label_pt)
    if bar:
        fig.colorbar(axes[n].images[0], ax=axes[n:], shrink=0.5, label="x' - x",
                     ticks=[-scale, 0, scale], format="%.3g")
    if title is not None:
        fig.suptitle(title)
    return fig
