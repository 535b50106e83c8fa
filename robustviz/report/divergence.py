"""The divergence section: R-DIV and accuracy vs eps, d_a+/d_a- per model, and the
class x class distances."""
from __future__ import annotations

from robustviz.report._context import Context
from robustviz.report._format import interval_name
from robustviz.report._sections import ReportFigure, Section


def section(ctx: Context) -> Section:
    """R-DIV and accuracy vs eps, d_a+/d_a- per model, class x class distances."""
    from robustviz import figures

    sweep = ctx.sweep()
    divs = {nm: ctx.divergence(nm) for nm in ctx.runs}
    differ = sweep.n != ctx.n or ctx.sweep_steps != ctx.steps
    how = (f" The sweep uses {sweep.n} test images and PGD-{ctx.sweep_steps} (step "
           f"2.5 eps/{ctx.sweep_steps}), not the table's {ctx.n} and PGD-{ctx.steps}."
           if differ else "")
    figs = [
        ReportFigure("rdiv_vs_eps", figures.plot_rdiv_vs_eps(
            sweep, colors=ctx.styles, markers=ctx.styles),
            f"Adversarial R-DIV (left, shaded: 95% "
            f"{interval_name(r for rs in sweep.results.values() for r in rs)}) and robust accuracy "
            f"(right) as the attack radius grows, eps on the pixel scale (the table's eps "
            f"is {ctx.eps_text()}).{how} A robust model keeps R-DIV low and accuracy high "
            f"over a wider range of eps; R-DIV rising together with falling accuracy shows "
            f"features leaving their class."),
        ReportFigure("divergence_pairs", figures.plot_divergence_pairs(divs),
                     "Mean distance from clean anchors to their own class (d_a+, blue) and "
                     "to other classes (d_a-, orange) with 95% intervals, R-DIV above. Look "
                     "for a short blue bar next to a tall orange one."),
        ReportFigure("class_divergence", figures.plot_class_divergence(
            divs, class_names=ctx.class_names),
            "Mean cosine distance from anchors of each class (rows) to the members of each "
            "class (columns), one shared colour scale across models. A dark diagonal on a "
            "bright background means well-separated classes; bright off-diagonal cells "
            "name the class pairs the attack confuses."),
    ]
    return Section(title="Latent divergence", figures=figs, text=[
        "R-DIV (Bui et al. 2021) compares how far a clean feature is from same-class clean "
        "and adversarial features (d_a+) with how far it is from other classes (d_a-). "
        "Lower R-DIV is better: the attack does not move examples out of their class in "
        "feature space."])

