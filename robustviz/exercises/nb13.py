"""Checks of notebook 13 (what can be guaranteed: certificates against attacks)."""
from __future__ import annotations

import torch

from robustviz.exercises import close, per_model, register


@register("13.1")
def unknown_gap(answer, *, models, x, y, eps, seed=0) -> list[str]:
    """Per model, the share of images whose robustness at ``eps`` nobody here decides: PGD-20
    accuracy (an upper bound) minus IBP certified accuracy (a lower bound)."""
    from robustviz import attacks, certify, evaluate

    problems = per_model(answer, models, lo=-1.0)
    if problems:
        return problems
    out = []
    for name, m in models.items():
        pgd = evaluate.evaluate(m, (x, y), {"pgd": attacks.PGD(eps=eps, steps=20)}, topk=(1,),
                                seed=seed, progress=False).robust("pgd")
        ibp = certify.certify(m, (x, y), eps, method="ibp", progress=False).accuracy(eps)
        got = float(answer[name])
        if got < -1e-9:
            out.append(f"answer[{name!r}] is negative: a certified image cannot be broken by an "
                       f"attack, so subtract the certificate from the attack accuracy")
        elif abs(got - pgd) < 1e-9 and ibp > 0.02:
            out.append(f"answer[{name!r}] is the attack accuracy alone; subtract the IBP "
                       f"certified accuracy")
        else:
            out += close(got, pgd - ibp, 0.02, f"answer[{name!r}]: accuracy under "
                         f"PGD(eps=EPS_GAP, steps=20) scored with rv.evaluate.evaluate(..., "
                         f"seed=SEED), minus rv.certify.certify(..., method=\"ibp\") accuracy, "
                         f"on the images given")
    return out


@register("13.2")
def smoothing_radius(answer, *, result, sigma) -> list[str]:
    """Per image, Cohen et al.'s certified L2 radius ``sigma * Phi^-1(p_lower)``, 0 where the
    smoothed classifier abstains (``p_lower <= 1/2``)."""
    from scipy.stats import norm

    try:
        got = torch.as_tensor(answer, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError):
        return [f"the answer should be a tensor or list of numbers, got {type(answer).__name__}"]
    p = result.p_lower.double()
    if got.numel() != p.numel():
        return [f"the answer should hold one radius per image ({p.numel()}), got {got.numel()}"]
    if not torch.isfinite(got).all():
        return ["the answer holds inf or nan: where p_lower is 1 or 0, Phi^-1 is infinite; the "
                "lower confidence bound stays below 1"]
    raw = sigma * torch.as_tensor(norm.ppf(p.numpy()))
    ref = torch.where(p > 0.5, raw, torch.zeros_like(raw))
    if (got < -1e-9).any():
        return ["some radii are negative: where p_lower <= 1/2 the smoothed classifier "
                "abstains and certifies nothing (radius 0)"]
    if torch.allclose(got, ref / sigma, atol=1e-4) and sigma != 1:
        return ["the radii are Phi^-1(p_lower) alone: multiply by the noise level sigma"]
    bad = (got - ref).abs() > 1e-4
    if bad.any():
        i = int(bad.nonzero()[0])
        return [f"image {i}: got {float(got[i]):.4f}; the certified radius is sigma times the "
                f"standard normal quantile of p_lower (scipy.stats.norm.ppf), 0 when p_lower <= 1/2"]
    return []
