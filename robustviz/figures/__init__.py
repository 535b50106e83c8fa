"""Paper-quality figures from diagnostic results.

Every function is ``plot_x(result, ax=None, **style) -> Figure``: it draws a result, never
computes one, never shows and never saves (use :func:`save`). Without ``ax`` a new
pyplot-free Figure is returned, so nothing leaks into pyplot's figure registry::

    from robustviz import figures as rvf
    rvf.set_style("paper")                       # or "notebook", "slides"
    fig = rvf.plot_divergence_pairs({"NAT": res_nat, "AT": res_at})
    rvf.save(fig, "figures/divergences.pdf")     # pdf / svg / png, written atomically

The returned :class:`Figure` is a matplotlib ``Figure`` with a ``_repr_png_``: a notebook
cell that ends with it shows the image once, with or without ``import matplotlib.pyplot``.
"""
from robustviz.figures._common import Figure
from robustviz.figures._divergence import (plot_class_divergence, plot_divergence_pairs,
                                           plot_rdiv_vs_eps)
from robustviz.figures._embedding import plot_embedding, plot_embedding_entropy
from robustviz.figures._pairs import plot_pair_histograms
from robustviz.figures._robustness import (plot_robustness_curve, plot_robustness_vs_eps,
                                           plot_robustness_vs_steps)
from robustviz.figures._style import CONTEXTS, OKABE_ITO, PALETTE, palette, save, set_style, style
from robustviz.figures._tables import plot_topk_table, topk_table_cells
from robustviz.figures._training import plot_rdiv_training, plot_selection_counts

__all__ = [
    "Figure", "set_style", "style", "save", "palette", "PALETTE", "OKABE_ITO", "CONTEXTS",
    "plot_rdiv_training", "plot_selection_counts",
    "plot_rdiv_vs_eps", "plot_divergence_pairs", "plot_class_divergence",
    "plot_pair_histograms",
    "plot_embedding", "plot_embedding_entropy",
    "plot_robustness_curve", "plot_robustness_vs_eps", "plot_robustness_vs_steps",
    "plot_topk_table", "topk_table_cells",
]
