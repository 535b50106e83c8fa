"""Checks of notebook 00 (the tour)."""
from __future__ import annotations

from robustviz.exercises import close, number, register


def _keys(answer, names, what: str) -> list[str]:
    if not isinstance(answer, dict) or set(answer) != set(names):
        got = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
        return [f"the answer should be a dict with one {what} per key, keys {sorted(names)}, "
                f"got {got}"]
    return []


@register("00.1")
def fgsm_vs_pgd(answer, *, model, x, y, eps, seed=0) -> list[str]:
    """The natural model's robust accuracy under FGSM and under PGD-10 (attacked_features)."""
    from robustviz import attacks, diagnostics

    problems = _keys(answer, ("FGSM", "PGD-10"), "robust accuracy")
    if problems:
        return problems
    problems = [p for k in ("FGSM", "PGD-10") for p in number(answer[k], f"answer[{k!r}]")]
    if problems:
        return problems
    ref = {"FGSM": attacks.FGSM(eps=eps), "PGD-10": attacks.PGD(eps=eps, steps=10)}
    ref = {k: diagnostics.attacked_features(model, (x, y), atk, seed=seed).robust_acc
           for k, atk in ref.items()}
    if (abs(float(answer["FGSM"]) - ref["PGD-10"]) < 1e-9 and abs(float(answer["PGD-10"]) - ref["FGSM"]) < 1e-9
            and abs(ref["FGSM"] - ref["PGD-10"]) > 0.02):
        return ["the two numbers are swapped: the key names the attack that produced the accuracy"]
    clean = diagnostics.attacked_features(model, (x, y), None, seed=seed).clean_acc
    out = []
    for k in ("FGSM", "PGD-10"):
        if abs(float(answer[k]) - clean) < 1e-9 and abs(clean - ref[k]) > 0.02:
            out.append(f"answer[{k!r}] is the clean accuracy: attack the images first")
        elif abs(float(answer[k]) - (1 - ref[k])) < 1e-9 and abs(ref[k] - 0.5) > 0.02:
            out.append(f"answer[{k!r}] looks like the attack's success rate; the exercise asks "
                       f"for the accuracy that remains")
        else:
            out += close(answer[k], ref[k], 0.02, f"answer[{k!r}]: robust_acc of "
                         f"attacked_features(model, (x, y), attack, seed=SEED) on the first 100 "
                         f"test images, eps=EPS" + ("" if k == "FGSM" else ", steps=10"))
    return out


@register("00.2")
def rdiv_at_twice_eps(answer, *, explorer, eps) -> list[str]:
    """R-DIV of each explorer model under PGD at ``eps`` (twice the notebook's radius)."""
    names = explorer.model_names
    problems = _keys(answer, names, "R-DIV")
    if problems:
        return problems
    problems = [p for k in names for p in number(answer[k], f"answer[{k!r}]", 0.0, 10.0)]
    if problems:
        return problems
    state = {k: getattr(explorer, k) for k in ("model", "eps", "attack", "steps", "layer")}
    out = []
    try:
        for name in names:
            given = float(answer[name])
            ref = explorer.set(model=name, eps=eps, attack="PGD", layer="penultimate")
            if abs(given - ref.rdiv) <= 1e-3:
                continue
            if abs(given - ref.robust_acc) < 1e-9:
                out.append(f"answer[{name!r}] is the robust accuracy; the exercise asks for R-DIV")
                continue
            if any(abs(given - explorer.set(eps=e).rdiv) < 1e-9 for e in {state["eps"], eps / 2} - {eps}):
                out.append(f"answer[{name!r}] is R-DIV at another radius; set eps to twice EPS")
                continue
            out += close(given, ref.rdiv, 1e-3, f"answer[{name!r}]: the .rdiv of "
                         f"explorer.set(model={name!r}, eps=2 * EPS) (PGD, penultimate layer)")
    finally:
        explorer.set(**state)
    return out
