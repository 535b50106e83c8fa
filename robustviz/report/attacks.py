"""The attacks section: top-3/5 accuracy and the size and cost of each attack's
perturbations."""
from __future__ import annotations

from robustviz.report._context import Context
from robustviz.report._format import pct
from robustviz.report._sections import ReportTable, Section


def section(ctx: Context) -> Section:
    """Top-3/5 accuracy and the size and cost of each attack's perturbations."""
    header = ["run", "attack", "top-3 %", "top-5 %", "L2 median", "Linf median", "seconds"]
    rows = []
    for nm in ctx.runs:
        ev = ctx.evaluation(nm)
        for k, acc in ev.accuracy.items():
            pert = ev.perturbation.get(k)
            label = {"clean": "clean", "fgsm": "FGSM", ctx.pgd_name: f"PGD-{ctx.steps}"}.get(k, k)
            rows.append([nm, label, *[pct(acc[t]) if t in acc else "-" for t in (3, 5)],
                         "-" if pert is None else f"{pert['l2_median']:.3f}",
                         "-" if pert is None else f"{pert['linf_median']:.3f}",
                         f"{ev.seconds.get(k, float('nan')):.1f}"])
    notes = {
        "top-3 %": "The true class is among the model's three highest scores (clean and "
                   "attacked input); the top-1 numbers are in the summary.",
        "top-5 %": "The same with the five highest scores; a large gap to top-1 means the "
                   "attack moves the true class down only a little.",
        "L2 median": "Median Euclidean norm of x' - x over the test images (pixel scale); "
                     "an eps-bounded attack uses most of its budget, so this is close to "
                     "eps * sqrt(pixels) for FGSM.",
        "Linf median": f"Median largest per-pixel change; it cannot exceed eps "
                       f"{ctx.eps_text()}, and a value well below eps means the attack "
                       f"stopped early.",
        "seconds": "Wall-clock time of the attack over all test images on this machine.",
    }
    return Section(title="Attacks in detail", tables=[ReportTable(
        "attacks", header, rows, notes, caption="Top-k accuracy and perturbation size per "
        "attack.")])

