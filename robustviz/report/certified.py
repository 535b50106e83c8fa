"""The optional report section "certified": certified against empirical robustness, asked
for by name (``sections=[..., "certified"]``).

For every run, on the same few test images and at a few Linf radii up to the report's
``eps``: PGD accuracy (an upper bound on robust accuracy: the attack found nothing better)
and IBP and CROWN certified accuracy (lower bounds: nothing inside the box changes the
decision), drawn by :func:`robustviz.figures.plot_certified_vs_empirical` with the gap
between them, what nobody knows, shaded. CROWN took 1.7 to 2 s per image and radius for
the teaching zoo's TinyCNN on a loaded 2-core CPU (benchmarks/RESULTS.md), hence the few
images. Runs whose model is not a chain of layers the bounds support are named in the text
and skipped.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from robustviz.report import Context, Section

__all__ = ["section", "FRACTIONS", "N_IMAGES", "REFERENCES"]

#: The radii, as fractions of the report's eps.
FRACTIONS = (0.25, 0.5, 1.0)
#: Test images certified per run (the first ones of the report's test set).
N_IMAGES = 24

REFERENCES = (
    "S. Gowal, K. Dvijotham, R. Stanforth, R. Bunel, C. Qin, J. Uesato, R. Arandjelovic, "
    "T. Mann, P. Kohli. On the Effectiveness of Interval Bound Propagation for Training "
    "Verifiably Robust Models. arXiv:1810.12715, 2018.",
    "H. Zhang, T.-W. Weng, P.-Y. Chen, C.-J. Hsieh, L. Daniel. Efficient Neural Network "
    "Robustness Certification with General Activation Functions. NeurIPS, 2018.",
)


def section(ctx: Context) -> Section | None:
    """Certified vs empirical Linf accuracy per run (optional: ``sections=[..., "certified"]``)."""
    from robustviz import certify, figures
    from robustviz.report import ReportFigure, ReportTable, Section

    n = min(N_IMAGES, ctx.n)
    x, y = ctx.test.x[:n], ctx.test.y[:n]
    radii = [ctx.eps * f for f in FRACTIONS]
    figs, rows, text, skipped = [], [], [], []
    for name, run in ctx.runs.items():
        try:
            certify.chain(run.model, x[:1].to(next(run.model.parameters()).device))
        except (ValueError, TypeError) as err:
            skipped.append(f"{name} ({err})")
            continue
        res = certify.compare(run.model, (x, y), radii, methods=("ibp", "crown"),
                              attack_steps=ctx.steps, progress=False)
        (label, attack), = res["empirical"].items()
        best = [max(c) for c in zip(*res["certified"].values())]
        figs.append(ReportFigure(
            f"certified_{name}", figures.plot_certified_vs_empirical(
                res, title=f"{name}: Linf, {n} test images"),
            f"{name}: accuracy under {label} (solid, an upper bound) and IBP and CROWN "
            f"certified accuracy (dashed, lower bounds) against the Linf radius. The shaded "
            f"band is what no method here decides; a certificate that follows the attack "
            f"closes it."))
        rows += [[name, ctx.eps_text(e), f"{100 * a:.1f}",
                  *(f"{100 * c[i]:.1f}" for c in res["certified"].values()),
                  f"{100 * (a - b):.1f}"]
                 for i, (e, a, b) in enumerate(zip(radii, attack, best))]
        # the sentence: the largest radius where a certificate still holds for some image
        held = [i for i, b in enumerate(best) if b > 0]
        if held:
            i = held[-1]
            text.append(f"{name}: at radius {ctx.eps_text(radii[i])}, {label} leaves "
                        f"{100 * attack[i]:.1f}% of the {n} images correct and the best "
                        f"certificate proves {100 * best[i]:.1f}%; "
                        f"{100 * (attack[i] - best[i]):.1f} points are unknown"
                        + (f"; from radius {ctx.eps_text(radii[i + 1])} on nothing is certified."
                           if i + 1 < len(radii) else "."))
        else:
            text.append(f"{name}: no image is certified even at radius "
                        f"{ctx.eps_text(radii[0])}, where {label} leaves "
                        f"{100 * attack[0]:.1f}% of the {n} images correct.")
    if not figs and not skipped:
        return None
    if skipped:
        text.append("Not certified (bound propagation needs a chain of supported layers): "
                    + "; ".join(skipped) + ".")
    text.append(f"Radii are {', '.join(f'{f:g}' for f in FRACTIONS)} times the report's eps, "
                f"on the first {n} test images: CROWN runs a backward pass through "
                f"the network per layer, image and radius. With {n} images a percentage has a binomial standard "
                f"error of up to {50 / n ** 0.5:.0f} points.")
    text.extend(REFERENCES)
    methods = ["IBP", "CROWN"]
    tables = [ReportTable(
        "certified", ["model", "radius", "attack", *methods, "unknown"], rows,
        notes={"attack": "Accuracy under the report's PGD at this radius: an upper bound.",
               "IBP": "Certified by interval bound propagation (Gowal et al. 2018): a lower bound.",
               "CROWN": "Certified by linear relaxation (Zhang et al. 2018): a lower bound, "
                        "never below IBP's on these chains.",
               "unknown": "Attack minus the best certificate, in points: robust accuracy "
                          "lies somewhere in this gap."},
        caption="Certified against empirical accuracy (%)")] if rows else []
    return Section(title="Certified vs empirical robustness", text=text, figures=figs,
                   tables=tables)
