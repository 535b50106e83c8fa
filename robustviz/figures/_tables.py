"""Accuracy tables rendered as figures (paper 000's Top-1/3/5 under FGSM, PGD, DeepFool)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from robustviz.figures._common import new_axes
from robustviz.figures._style import OKABE_ITO

__all__ = ["plot_topk_table", "topk_table_cells"]


def _accuracy_dict(obj, name):
    acc = getattr(obj, "accuracy", None)
    if isinstance(acc, Mapping):  # robustviz.evaluate.EvalResult
        return acc
    if isinstance(obj, Mapping):
        return obj
    raise TypeError(f"{name!r} must be an EvalResult or a dict attack -> {{k: accuracy}}, got "
                    f"{type(obj).__name__}")


def _fmt(v, percent: bool, digits: int) -> str:
    s = 100.0 if percent else 1.0
    if v is None:
        return "-"
    if isinstance(v, Sequence) and not isinstance(v, str):
        a = np.asarray(v, float) * s
        if a.size == 0:
            return "-"
        if a.size == 1:
            return f"{a[0]:.{digits}f}"
        return f"{a.mean():.{digits}f} ({a.std(ddof=1):.{digits}f})"  # mean (std) over seeds
    return f"{float(v) * s:.{digits}f}"


def topk_table_cells(results, *, k=(1, 3, 5), attacks=None, percent: bool = True,
                     digits: int = 1):
    """Header rows, row labels and cell strings of a top-k accuracy table.

    Parameters
    ----------
    results : EvalResult or mapping model -> (EvalResult or dict)
        ``{model: {attack: {k: accuracy}}}`` (``EvalResult.accuracy`` has this form;
        ``"clean"`` is one of the attacks). An accuracy may be a list of per-seed values,
        shown as ``mean (std)``.
    k : sequence of int
    attacks : sequence of str, optional
        Column groups in order (default: those of the first model, in its order).
    percent, digits

    Returns
    -------
    (columns, rows, cells) : list of str, list of str, list of list of str
    """
    if hasattr(results, "accuracy") and isinstance(getattr(results, "accuracy"), Mapping):
        results = {"model": results}
    if not isinstance(results, Mapping) or not results:
        raise TypeError("results must be an EvalResult or a non-empty mapping model -> "
                        "EvalResult or {attack: {k: accuracy}}")
    accs = {str(m): _accuracy_dict(r, m) for m, r in results.items()}
    k = [int(v) for v in k]
    if not k:
        raise ValueError("k must hold at least one value")
    if attacks is None:
        attacks = list(next(iter(accs.values())).keys())
    attacks = [str(a) for a in attacks]
    columns = [f"{a} top-{kk}" for a in attacks for kk in k]
    rows, cells = list(accs), []
    for m, acc in accs.items():
        row = []
        for a in attacks:
            d = acc.get(a, {})
            for kk in k:
                v = d.get(kk, d.get(str(kk))) if isinstance(d, Mapping) else None
                row.append(_fmt(v, percent, digits))
        cells.append(row)
    return columns, rows, cells


def plot_topk_table(results, ax=None, *, k=(1, 3, 5), attacks=None, percent: bool = True,
                    digits: int = 1, highlight: bool = True, title: str | None = None,
                    **kwargs):
    """A top-k accuracy table (models x attack/top-k) drawn as a figure.

    Parameters
    ----------
    results : EvalResult or mapping model -> (EvalResult or dict)
        See :func:`topk_table_cells`.
    ax : Axes, optional
    k : sequence of int
        Paper 000 reports top-1/3/5.
    attacks : sequence of str, optional
        Column groups, e.g. ``["clean", "fgsm", "pgd20", "deepfool"]``.
    percent : bool
    digits : int
    highlight : bool
        Bold the best value of every column (of single values or means).
    title : str, optional
    **kwargs
        Passed to ``Axes.table``.

    Returns
    -------
    Figure
        One axis (axis off) holding one ``Table`` with a header row and a row-label column.

    References
    ----------
    Zhang, contrastive loss in embedding space (paper 000 of METHODS.md), tables of
    Top-1/3/5 accuracy.
    """
    columns, rows, cells = topk_table_cells(results, k=k, attacks=attacks, percent=percent,
                                            digits=digits)
    width = 0.9 + 0.75 * len(columns)
    fig, (ax,) = new_axes(ax, figsize=None if ax is not None else (width, 0.35 * (len(rows) + 2)))
    ax.axis("off")
    table = ax.table(cellText=cells, rowLabels=rows, colLabels=columns, loc="center",
                     cellLoc="center", **kwargs)
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.0, 1.3)
    for (r, c), cell in table.get_celld().items():
        cell.set_edgecolor("0.8")
        if r == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#EAF2F8")
    if highlight and len(rows) > 1:
        for j in range(len(columns)):
            vals = []
            for i in range(len(rows)):
                try:
                    vals.append(float(cells[i][j].split(" ")[0]))
                except ValueError:
                    vals.append(-np.inf)
            best = int(np.argmax(vals))
            if np.isfinite(vals[best]):
                table[best + 1, j].set_text_props(weight="bold", color=OKABE_ITO["blue"])
    if title is not None:
        ax.set_title(title)
    return fig
