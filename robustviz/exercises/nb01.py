"""Checks of notebook 01 (attacks)."""
from __future__ import annotations

import torch

from robustviz.exercises import close, number, per_model, register


def _robust(model, x, y, attack, seed) -> float:
    from robustviz import evaluate

    return evaluate.evaluate(model, (x, y), {"a": attack}, topk=(1,), seed=seed,
                             progress=False).robust("a")


@register("01.1")
def cw_loss_pgd(answer, *, model, x, y, eps, seed=0) -> list[str]:
    """Robust top-1 accuracy of the robust model under PGD-10 on the C&W margin loss."""
    from robustviz import attacks

    problems = number(answer, "the robust accuracy")
    if problems:
        return problems
    ref = _robust(model, x, y, attacks.PGD(eps=eps, steps=10, loss="cw"), seed)
    ce = _robust(model, x, y, attacks.PGD(eps=eps, steps=10), seed)
    if abs(float(answer) - ce) < 1e-9 and abs(ref - ce) > 0.02:
        return ["that is the accuracy under cross-entropy PGD: pass loss=\"cw\""]
    return close(answer, ref, 0.02, "attack the robust model with PGD(eps=EPS, steps=10, "
                 "loss=\"cw\") on the images given, scored with rv.evaluate.evaluate(..., seed=SEED)")


@register("01.2")
def l2_drop(answer, *, models, x, y, seed=0) -> list[str]:
    """Per model, the drop of top-1 accuracy (clean minus robust) under L2 PGD-10, eps 1.5."""
    from robustviz import attacks, evaluate

    problems = per_model(answer, models)
    if problems:
        return problems
    out = []
    for name, m in models.items():
        r = evaluate.evaluate(m, (x, y), {"l2": attacks.PGD(eps=1.5, norm="l2", steps=10)},
                              topk=(1,), seed=seed, progress=False)
        drop = r.clean[1] - r.robust("l2")
        if abs(float(answer[name]) - r.robust("l2")) < 1e-9 and abs(drop - r.robust("l2")) > 0.02:
            out.append(f"answer[{name!r}] is the robust accuracy; the exercise asks for the drop "
                       f"from the clean accuracy")
        else:
            out += close(answer[name], drop, 0.02, f"answer[{name!r}]: clean top-1 minus top-1 "
                         f"under PGD(eps=1.5, norm=\"l2\", steps=10) on the images given")
    return out


@register("01.3")
def targeted_success(answer, *, models, x, y, eps, target=0, seed=0) -> list[str]:
    """Per model, the success rate of a targeted PGD-10 towards ``target``, counted over
    the images whose true class is not the target."""
    from robustviz import attacks

    problems = per_model(answer, models)
    if problems:
        return problems
    out = []
    keep = y != target
    for name, m in models.items():
        torch.manual_seed(seed)
        x_t = attacks.PGD(eps=eps, steps=10, targeted=True, seed=seed)(m, x, torch.full_like(y, target))
        with torch.no_grad():
            hit = m(x_t).argmax(1) == target
        ref = float(hit[keep].float().mean())
        naive = float(hit.float().mean())
        if abs(float(answer[name]) - naive) < 1e-9 and abs(naive - ref) > 1e-9:
            out.append(f"answer[{name!r}] counts images whose true class already is the target: "
                       f"an attack cannot take credit for those, leave them out")
        else:
            out += close(answer[name], ref, 0.03, f"answer[{name!r}]: the fraction of the images "
                         f"not of the target class that PGD(eps=EPS, steps=10, targeted=True) "
                         f"sends to class {target}")
    return out
