"""Paper-quality figures from diagnostic results.

Every function is ``plot_x(result, ax=None, **style) -> Figure``: it draws a result, never
computes one, never shows and never saves (use :func:`save`). Without ``ax`` a new
pyplot-free Figure is returned, so nothing leaks into pyplot's figure registry::

    from robustviz import figures as rvf
    rvf.set_style("paper")                       # or "notebook", "slides"
    fig = rvf.plot_divergence_pairs({"NAT": res_nat, "AT": res_at})
    rvf.save(fig, "figures/divergences", formats=["pdf", "png"])   # atomic writes

Paper layout: ``rvf.figsize("single")`` / ``"double"`` give 3.3 in / 6.9 in wide figures;
``rvf.model_styles(names)`` gives one colour (seaborn's colour-blind palette) and one marker
per model: pass ``colors=`` / ``markers=`` to keep them the same in every figure. Tables
export with :func:`save_table` (CSV and LaTeX booktabs).

The returned :class:`Figure` is a matplotlib ``Figure`` with a ``_repr_png_``: a notebook
cell that ends with it shows the image once, with or without ``import matplotlib.pyplot``.
"""
from robustviz.figures._common import Figure
from robustviz.figures._divergence import (plot_class_divergence, plot_divergence_pairs,
                                           plot_rdiv_vs_eps)
from robustviz.figures._examples import plot_adversarial_examples
from robustviz.figures._embedding import plot_embedding, plot_embedding_entropy
from robustviz.figures._pairs import plot_pair_histograms
from robustviz.figures._robustness import (plot_certified_vs_empirical, plot_robustness_curve,
                                           plot_robustness_vs_eps, plot_robustness_vs_steps)
from robustviz.figures._style import (CONTEXTS, MARKERS, OKABE_ITO, PALETTE, WIDTHS, figsize,
                                      model_colors, model_styles, palette, save, set_style, style)
from robustviz.figures._tables import (binomial_ci, intervals_overlap, plot_topk_table,
                                       save_table, table_to_csv, table_to_latex,
                                       topk_table_cells)
from robustviz.figures._training import (plot_rdiv_training, plot_selection_counts,
                                         plot_training_curves)

__all__ = [
    "Figure", "set_style", "style", "save", "palette", "PALETTE", "OKABE_ITO", "CONTEXTS",
    "WIDTHS", "figsize", "MARKERS", "model_styles", "model_colors",
    "plot_rdiv_training", "plot_selection_counts", "plot_training_curves",
    "plot_adversarial_examples",
    "binomial_ci", "intervals_overlap", "table_to_csv", "table_to_latex", "save_table",
    "plot_rdiv_vs_eps", "plot_divergence_pairs", "plot_class_divergence",
    "plot_pair_histograms",
    "plot_embedding", "plot_embedding_entropy",
    "plot_robustness_curve", "plot_robustness_vs_eps", "plot_robustness_vs_steps",
    "plot_certified_vs_empirical",
    "plot_topk_table", "topk_table_cells",
    "plot_inversion", "plot_landscape_1d", "plot_landscape_contour", "plot_landscape_surface",
    "plot_corruptions", "plot_transfer_matrix",
    "legibility_problems", "DISPLAY_DPI", "MIN_FONT_PT", "MIN_TEXT_PX",
    "plot_attributions",
]
from robustviz.figures._attributions import plot_attributions  # noqa: E402
from robustviz.figures._corruptions import plot_corruptions, plot_transfer_matrix  # noqa: E402
from robustviz.figures._inversion import plot_inversion  # noqa: E402
from robustviz.figures._layout import (DISPLAY_DPI, MIN_FONT_PT, MIN_TEXT_PX,  # noqa: E402
                                       legibility_problems)
from robustviz.figures._landscape import (plot_landscape_1d, plot_landscape_contour,  # noqa: E402
                                          plot_landscape_surface)
