"""The examples section: adversarial examples as images, per model."""
from __future__ import annotations

from robustviz.report._context import Context
from robustviz.report._sections import ReportFigure, Section


def section(ctx: Context) -> Section:
    """Adversarial examples as images: one grid, a row per model."""
    from robustviz import figures

    k = 6
    x = ctx.test.x[:k]
    names = list(ctx.runs)
    if len(names) == 1:
        nm = names[0]
        f = ctx.features(nm)
        fig = figures.plot_adversarial_examples(
            x, ctx.adversarial(nm)[:k], f.y[:k], pred=f.logits_nat[:k].argmax(1),
            pred_adv=f.logits_adv[:k].argmax(1), class_names=ctx.class_names, n=k, title=nm)
        caption = (f"{nm}: test images (top), the PGD perturbation scaled to its largest value "
                   f"(middle; red brighter, blue darker) and the adversarial images with the "
                   f"model's prediction (bottom, red when wrong).")
        return Section(title="Adversarial examples", figures=[ReportFigure(f"examples_{nm}", fig,
                                                                           caption)])
    feats = {nm: ctx.features(nm) for nm in names}
    fig = figures.plot_adversarial_examples(
        x, {nm: ctx.adversarial(nm)[:k] for nm in names}, feats[names[0]].y[:k],
        pred={nm: f.logits_nat[:k].argmax(1) for nm, f in feats.items()},
        pred_adv={nm: f.logits_adv[:k].argmax(1) for nm, f in feats.items()},
        class_names=ctx.class_names, n=k)
    caption = ("The same test images (top) and, one row per model, its PGD perturbation on one "
               "scale shared by all models (red brighter, blue darker), titled with the "
               "model's prediction on the adversarial image (red when wrong); each row's label "
               "counts the right predictions among these images, clean -> adversarial. Rows, top to "
               f"bottom: {', '.join(names)}. The fewer titles turn red in a row, the fewer of "
               "these images the attack moved across that model's boundary.")
    figs = [ReportFigure("examples", fig, caption)]
    return Section(title="Adversarial examples", figures=figs)

