"""The summary section: clean, FGSM, PGD (and AutoAttack) accuracy with intervals,
the per-example worst case, R-DIV, and the evaluation card."""
from __future__ import annotations

from robustviz.report._context import Context
from robustviz.report._format import best_cells, defense_name, interval_name, pct, pct_ci
from robustviz.report._sections import ReportTable, Section


def section(ctx: Context) -> Section:
    """Clean, FGSM and PGD accuracy with binomial intervals, and R-DIV with its interval
    (jackknife in exact mode, bootstrap in minibatch mode), one row per run."""
    aa = "autoattack" in ctx.attacks
    aa_col = f"AutoAttack {ctx.autoattack} %" if aa else None
    header = ["run", "defense", "clean %", "FGSM %", f"PGD-{ctx.steps} %",
              *([aa_col] if aa else []), "worst case %", "R-DIV", "d_a+", "d_a-"]
    keys = ["clean", "fgsm", ctx.pgd_name, *(["autoattack"] if aa else []), "worst"]
    rows, acc = [], {k: [] for k in keys}
    divs = {nm: ctx.divergence(nm) for nm in ctx.runs}
    spread = []
    for nm, run in ctx.runs.items():
        ev, div = ctx.evaluation(nm), divs[nm]
        a = {k: ev.accuracy[k][1] for k in keys if k != "worst"}
        a["worst"] = ev.worst_case().accuracy
        for k in acc:
            acc[k].append(a[k])
        rd = f"{div.rdiv:.3f}"
        if div.ci is not None:
            rd += f" [{div.ci[0]:.3f}, {div.ci[1]:.3f}]"
        rows.append([nm, defense_name(run.config), *[pct_ci(a[k], ev.n) for k in keys], rd,
                     f"{div.d_pos:.3f}", f"{div.d_neg:.3f}"])
        for k, sp in ev.spread.items():
            spread.append(f"{nm}, {_attack_col(ctx, k)}: mean {pct(sp['mean'])}%, range "
                          f"{pct(sp['min'])}-{pct(sp['max'])}% over attack seeds "
                          f"{sp['seeds']}; {pct(sp['worst'])}% when an example counts as "
                          f"broken if any seed broke it.")
    bold = set()
    for col, k in enumerate(keys, start=2):
        bold |= best_cells(acc[k], ctx.n, col)
    worst_of = ", ".join(_attack_col(ctx, k) for k in keys[1:-1])
    notes = {
        "run": "The run directory's name.",
        "defense": "The training objective (nat: plain cross-entropy on clean images).",
        "clean %": "Top-1 accuracy on unperturbed test images, with its 95% Wilson interval "
                   "in brackets; intervals that overlap mean the difference is within "
                   "sampling noise at this n.",
        "FGSM %": f"Top-1 accuracy under one signed-gradient step of size eps "
                  f"{ctx.eps_text()} (Goodfellow et al. 2015); a model far above its PGD "
                  f"number here is weak against the stronger attack, not robust.",
        f"PGD-{ctx.steps} %": f"Top-1 accuracy under {ctx.pgd_label}, random start "
                              f"(Madry et al. 2018): the robust accuracy to compare; higher "
                              f"is better, and it can never exceed the clean accuracy.",
        **({aa_col: f"Top-1 accuracy under AutoAttack {ctx.autoattack} (Croce & Hein 2020) "
                    f"at its authors' settings: "
                    + ctx.attacks["autoattack"].attack.backend().split(": ", 1)[-1]
                    + "; each attack runs on the examples the earlier ones left correct."}
           if aa else {}),
        "worst case %": f"The headline robust accuracy: an example counts as robust only if it is "
                        f"correct on the clean image and under every attack that ran "
                        f"({worst_of}); the per-example worst case, never above any single "
                        f"attack's column.",
        "R-DIV": f"d_a+ / d_a- with its 95% {interval_name(divs.values())} (Bui et al. "
                 "2021): how close "
                 "adversarial features stay to their own class relative to other classes; "
                 "lower is better (adversarial examples stay with their class).",
        "d_a+": "Mean cosine distance from a clean anchor to same-class clean and "
                "adversarial features; lower means a tighter class.",
        "d_a-": "Mean cosine distance from a clean anchor to other-class features; higher "
                "means classes are further apart.",
    }
    text = [f"{len(ctx.runs)} run(s) evaluated on the same {ctx.n} {ctx.dname} test "
            f"images, L-infinity radius eps {ctx.eps_text()} (pixels in [0, 1]). Bold marks "
            f"the best value of a column only where its interval does not overlap the "
            f"runner-up's."]
    if any(ctx.adaptive.values()):
        text.append("Models whose test-time prediction is not differentiable (reverse "
                    "attention, Zhou et al. 2023) are attacked on the model and on its "
                    "differentiable surrogate, and the worst case per example is reported "
                    "(an adaptive attack, Athalye et al. 2018); PGD on the model alone would "
                    "report masked gradients.")
    text += spread
    first = ctx.evaluation(next(iter(ctx.runs)))
    card = first.card()
    return Section(title="Summary", text=text, tables=[
        ReportTable("evaluation_card", ["item", "value"], _card_rows(ctx, card), {},
                    caption="Evaluation card: how the numbers below were obtained."),
        ReportTable("summary", header, rows, notes,
                    caption="Accuracy (%) and latent divergence per run.", bold=bold)])


def _attack_col(ctx: Context, key: str) -> str:
    return {"fgsm": "FGSM", ctx.pgd_name: f"PGD-{ctx.steps}",
            "autoattack": f"AutoAttack {ctx.autoattack}"}.get(key, key)


def _card_rows(ctx: Context, card: dict) -> list:
    """The evaluation card as (item, value) rows: threat model, attacks with their budgets,
    backend and versions, examples and how they were chosen, seeds, intervals, device."""
    rows = [["threat model", f"L-infinity ball of radius eps {ctx.eps_text()} on pixels in [0, 1]"]]
    for k, a in card["attacks"].items():
        inner = a.get("wrapped", {})
        what = {"fgsm": "one signed-gradient step of size eps",
                ctx.pgd_name: f"{ctx.pgd_label}, uniform random start, 1 restart"}.get(
            k, inner.get("backend") or a.get("backend") or a.get("type", k))
        surrogate = " (and on the differentiable surrogate of reverse-attention models, " \
                    "worst case per example)" if any(ctx.adaptive.values()) else ""
        rows.append([f"attack: {_attack_col(ctx, k)}", f"{what}{surrogate}; {a['precision']}"])
    rows.append(["worst case", "per example over all attacks above (the 'worst case %' column)"])
    rows.append(["examples", f"{card['n']} {ctx.dname} test images: {card.get('selection', '?')}"])
    rows.append(["attack seeds", ", ".join(map(str, card.get("seeds", [ctx.seed])))
                 + ("" if ctx.seeds > 1 else " (one seed: pass seeds=k for the spread)")])
    rows.append(["intervals", "95% Wilson score interval per accuracy; R-DIV: "
                 + interval_name([ctx.divergence(nm) for nm in ctx.runs])])
    versions = card.get("versions", {})
    rows.append(["backend", ", ".join(f"{k} {v}" for k, v in versions.items())])
    rows.append(["device", card.get("device", "?")])
    return rows

