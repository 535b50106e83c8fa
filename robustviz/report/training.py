"""The training section: curves per epoch and the contrastive selection counts."""
from __future__ import annotations

from robustviz.report._context import Context
from robustviz.report._sections import ReportFigure, Section


def section(ctx: Context) -> Section | None:
    """Loss, clean and robust accuracy (and R-DIV when recorded) per epoch."""
    from robustviz import diagnostics, figures

    recs = {nm: r.metrics for nm, r in ctx.runs.items()
            if any(m.get("kind") == "epoch" for m in r.metrics)}
    figs = []
    if recs:
        figs.append(ReportFigure(
            "training_curves",
            figures.plot_training_curves(recs, colors=ctx.styles, markers=ctx.styles),
            "Training loss, validation accuracy (clean solid, robust dashed) and, where "
            "recorded, R-DIV per epoch. Look for robust accuracy still rising at the last "
            "epoch (train longer) or falling while clean accuracy rises (robust "
            "overfitting)."))
    sel = {}
    for nm, r in ctx.runs.items():
        try:
            sel[nm] = diagnostics.selection_stats(r.metrics, name=nm)
        except ValueError:
            pass  # this run logged no positives/negatives (not a SupCon defense)
    if sel:
        figs.append(ReportFigure(
            "selection_counts", figures.plot_selection_counts(
                sel, colors=figures.model_colors(list(sel))),
            "Mean positives and negatives per anchor of the supervised contrastive term "
            "(Bui et al. 2021, Fig. 3). Local selection keeps far fewer negatives than "
            "global selection; a count falling to zero starves the contrastive loss."))
    if not figs:
        return None
    return Section(title="Training", figures=figs)

