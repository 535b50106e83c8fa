"""The pairs section: cosine similarity and L2 distance of positive and negative pairs."""
from __future__ import annotations

from robustviz.report._context import Context
from robustviz.report._sections import ReportFigure, Section


def section(ctx: Context) -> Section:
    from robustviz import figures

    return Section(title="Pair distances", figures=[ReportFigure(
        "pair_histograms", figures.plot_pair_histograms({nm: ctx.pairs(nm) for nm in ctx.runs}),
        "Distributions of cosine similarity and L2 distance between clean features of "
        "positive (same-class) and negative (different-class) pairs. Well-separated "
        "histograms mean the features keep classes apart; overlapping ones mean they "
        "do not.")])

