"""The examples section: adversarial examples as images, per model."""
from __future__ import annotations

from robustviz.report._context import Context
from robustviz.report._sections import ReportFigure, Section


def section(ctx: Context) -> Section:
    """Adversarial examples as images, per model."""
    from robustviz import figures

    figs = []
    for nm, run in ctx.runs.items():
        f = ctx.features(nm)
        k = 6
        x = ctx.test.x[:k]
        figs.append(ReportFigure(
            f"examples_{nm}",
            figures.plot_adversarial_examples(
                x, ctx.adversarial(nm)[:k], f.y[:k], pred=f.logits_nat[:k].argmax(1),
                pred_adv=f.logits_adv[:k].argmax(1), class_names=ctx.class_names, n=k,
                title=nm),
            f"{nm}: test images (top), the PGD perturbation scaled to its largest value "
            f"(middle; red brighter, blue darker) and the adversarial images with the "
            f"model's prediction (bottom, red when wrong). For a robust model the "
            f"perturbation shows object-shaped structure and fewer predictions turn red."))
    return Section(title="Adversarial examples", figures=figs)

