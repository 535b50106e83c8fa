"""Checks of notebook 05 (feature geometry)."""
from __future__ import annotations

import torch

from robustviz.exercises import close, per_model, register


def _attacks(eps, adaptive: bool) -> dict:
    from robustviz import attacks

    two = {"ce": attacks.PGD(eps=eps, steps=10), "cw": attacks.PGD(eps=eps, steps=10, loss="cw")}
    return {k: attacks.Adaptive(attack=a) for k, a in two.items()} if adaptive else two


@register("05.1")
def worst_case_ranking(answer, *, models, x, y, eps, seed=0) -> list[str]:
    """Per model, the per-image worst case over adaptive PGD-10 on the cross-entropy and
    on the C&W margin."""
    from robustviz import attacks, evaluate

    problems = per_model(answer, models)
    if problems:
        return problems
    out = []
    tol = 0.011  # one image in 100, for seeds that differ from the notebook's
    for name, m in models.items():
        a = float(answer[name])
        r = evaluate.evaluate(m, (x, y), _attacks(eps, True), topk=(1,), seed=seed, progress=False)
        ref = r.worst_case().accuracy
        if abs(a - ref) <= tol:
            continue
        if attacks.surrogate_of(m) is not None:
            plain = evaluate.evaluate(m, (x, y), _attacks(eps, False), topk=(1,), seed=seed,
                                      progress=False)
            if abs(a - plain.worst_case().accuracy) <= tol or \
                    any(abs(a - plain.robust(k)) <= tol for k in ("ce", "cw")):
                out.append(f"answer[{name!r}]: this model's test-time path is not "
                           f"differentiable, so plain PGD overstates its robustness; wrap both "
                           f"attacks in rv.attacks.Adaptive")
                continue
        if abs(a - min(r.robust("ce"), r.robust("cw"))) <= tol:
            out.append(f"answer[{name!r}] is the lower of the two accuracies; the worst case is "
                       f"per image (an image counts only if neither attack fools the model): "
                       f"result.worst_case().accuracy")
        elif any(abs(a - r.robust(k)) <= tol for k in ("ce", "cw")):
            out.append(f"answer[{name!r}] is the accuracy under one attack only: evaluate both "
                       f"and take the per-image worst case")
        else:
            out += close(a, ref, tol, f"answer[{name!r}]: evaluate both adaptive attacks on the "
                         f"images given with seed=SEED and read worst_case().accuracy")
    return out


def _nearest_other_class(f, exclude_self: bool) -> float:
    sim = torch.nn.functional.normalize(f.z_adv.float(), dim=1) @ \
        torch.nn.functional.normalize(f.z_nat.float(), dim=1).T
    if exclude_self:
        sim.fill_diagonal_(-2.0)
    return float((f.y[sim.argmax(1)] != f.y).float().mean())


@register("05.2")
def nearest_clean_neighbour(answer, *, feats) -> list[str]:
    """Per model, the fraction of adversarial features whose nearest clean feature (cosine,
    own clean version excluded) belongs to another class."""
    problems = per_model(answer, feats)
    if problems:
        return problems
    out = []
    tol = 1.5 / max(len(f.y) for f in feats.values())
    for name, f in feats.items():
        a, ref = float(answer[name]), _nearest_other_class(f, True)
        if abs(a - ref) <= tol:
            continue
        with_self = _nearest_other_class(f, False)
        if abs(a - with_self) <= tol and abs(with_self - ref) > tol:
            out.append(f"answer[{name!r}] lets an adversarial feature find its own clean "
                       f"version: leave the diagonal out of the search")
        else:
            out += close(a, ref, tol, f"answer[{name!r}]: normalise both feature sets, take "
                         f"cosine similarities of f.z_adv against f.z_nat, exclude each "
                         f"image's own clean version, and compare the neighbour's label with y")
    return out
