"""Tables: top-k accuracy drawn as a figure (Top-1/3/5 under FGSM, PGD, DeepFool, as in
Zhang's embedding-space contrastive study), export to CSV and LaTeX (booktabs), and the
binomial interval of an accuracy."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from robustviz.figures._common import new_axes
from robustviz.figures._style import OKABE_ITO

__all__ = ["plot_topk_table", "topk_table_cells", "binomial_ci", "intervals_overlap",
           "table_to_csv", "table_to_latex", "save_table"]


def binomial_ci(p: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of an accuracy ``p`` measured on ``n`` examples.

    Unlike the normal approximation it stays inside [0, 1] and is sound for small ``n``
    and for ``p`` near 0 or 1.

    Parameters
    ----------
    p : float
        Observed fraction in [0, 1].
    n : int
        Number of examples (> 0).
    level : float
        Coverage (0.95: z = 1.96).

    Returns
    -------
    (low, high) : float

    References
    ----------
    Wilson, "Probable Inference, the Law of Succession, and Statistical Inference",
    Journal of the American Statistical Association, 1927.
    """
    from statistics import NormalDist

    n = int(n)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two closed intervals share a point."""
    return a[0] <= b[1] and b[0] <= a[1]


def _rows(header, rows):
    header = [str(h) for h in header]
    rows = [["" if v is None else str(v) for v in r] for r in rows]
    bad = [i for i, r in enumerate(rows) if len(r) != len(header)]
    if bad:
        raise ValueError(f"rows {bad} do not have {len(header)} cells")
    return header, rows


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(s: str) -> str:
    """A cell that a spreadsheet would read as a formula (it starts with ``= + - @``, a tab
    or a carriage return) gets a leading apostrophe; numbers (``-0.5``, ``+1e-3``) and the
    placeholder ``-`` are left as they are."""
    if not s.startswith(_FORMULA_START) or s == "-":
        return s
    try:
        float(s)
        return s
    except ValueError:
        return "'" + s


def table_to_csv(header, rows) -> str:
    """A table (header + rows of cells) as CSV text (RFC 4180 quoting).

    Cells are guarded against spreadsheet formula injection: a text cell starting with
    ``= + - @`` (a run name such as ``=HYPERLINK(...)``) is written with a leading
    apostrophe, so a spreadsheet shows it as text instead of evaluating it.
    """
    import csv
    import io

    header, rows = _rows(header, rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([_csv_cell(c) for c in header])
    w.writerows([[_csv_cell(c) for c in r] for r in rows])
    return buf.getvalue()


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
        "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}"}


def _tex(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def table_to_latex(header, rows, *, caption: str | None = None, label: str | None = None,
                   align: str | None = None) -> str:
    """A table as a LaTeX ``tabular`` with booktabs rules (``\\usepackage{booktabs}``).

    Cells are escaped (``%``, ``_``, ``&`` ...). ``align`` defaults to ``l`` for the first
    column and ``r`` for the others; with ``caption`` or ``label`` the tabular is wrapped in
    a ``table`` environment.
    """
    header, rows = _rows(header, rows)
    align = align or ("l" + "r" * (len(header) - 1))
    lines = [f"\\begin{{tabular}}{{{align}}}", "\\toprule",
             " & ".join(_tex(h) for h in header) + r" \\", "\\midrule"]
    lines += [" & ".join(_tex(c) for c in r) + r" \\" for r in rows]
    lines += ["\\bottomrule", "\\end{tabular}"]
    if caption is not None or label is not None:
        inner = ["\\begin{table}", "\\centering"]
        if caption is not None:
            inner.append(f"\\caption{{{_tex(caption)}}}")
        if label is not None:
            inner.append(f"\\label{{{label}}}")
        lines = inner + lines + ["\\end{table}"]
    return "\n".join(lines) + "\n"


def save_table(header, rows, path, *, caption: str | None = None) -> list:
    """Write ``path.csv`` and ``path.tex`` (booktabs), each atomically; return the paths."""
    from pathlib import Path

    from robustviz.runs import atomic_write_text

    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".csv", ".tex") else path
    return [atomic_write_text(stem.with_suffix(".csv"), table_to_csv(header, rows)),
            atomic_write_text(stem.with_suffix(".tex"),
                              table_to_latex(header, rows, caption=caption))]


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


_CHAR_IN = 0.072   # inches per character of an 8 pt bold label (DejaVu Sans: about 0.067), with a margin


def plot_topk_table(results, ax=None, *, k=(1, 3, 5), attacks=None, percent: bool = True,
                    digits: int = 1, highlight: bool = True, n: int | None = None,
                    title: str | None = None, **kwargs):
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
        Bold the best value of every column (of single values or means); with ``n``, only
        where its 95% binomial interval (:func:`binomial_ci`) does not overlap the
        runner-up's, i.e. where the difference is not within sampling noise.
    n : int, optional
        Number of test examples behind each accuracy.
    title : str, optional
    **kwargs
        Passed to ``Axes.table``.

    Returns
    -------
    Figure
        One axis (axis off) holding one ``Table`` with a header row and a row-label column.

    References
    ----------
    Zhang, contrastive loss in embedding space (course project), tables of Top-1/3/5
    accuracy.
    """
    columns, rows, cells = topk_table_cells(results, k=k, attacks=attacks, percent=percent,
                                            digits=digits)
    # each column as wide as its longest text (header or value) at 8 pt, so that long
    # headers such as "PGD-20 (model only) top-1" stay inside their cell
    col_in = [max(0.6, 0.2 + _CHAR_IN * max(len(str(t)) for t in [h, *(r[j] for r in cells)]))
              for j, h in enumerate(columns)]
    label_in = 0.2 + _CHAR_IN * max((len(str(r)) for r in rows), default=0)
    width = label_in + sum(col_in) + 0.2
    fig, (ax,) = new_axes(ax, figsize=None if ax is not None else (width, 0.35 * (len(rows) + 2)))
    ax.axis("off")
    ax_in = ax.get_position().width * fig.get_figwidth()
    kwargs.setdefault("colWidths", [w / ax_in for w in col_in])
    kwargs.setdefault("rowLoc", "right")
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
            order = np.argsort(vals)[::-1]
            best = int(order[0])
            clear = True
            if n is not None and np.isfinite(vals[int(order[1])]):
                sc = 100.0 if percent else 1.0
                ci = [binomial_ci(min(max(vals[i] / sc, 0.0), 1.0), n) for i in order[:2]]
                clear = not intervals_overlap(ci[0], ci[1])
            if np.isfinite(vals[best]) and clear:
                table[best + 1, j].set_text_props(weight="bold", color=OKABE_ITO["blue"])
    if title is not None:
        ax.set_title(title)
    return fig
