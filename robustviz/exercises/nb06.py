"""Checks of notebook 06 (robust pretraining)."""
from __future__ import annotations

import torch

from robustviz.exercises import close, number, register


@register("06.1")
def hfc_energy(answer, *, x, radius) -> list[str]:
    """Fraction of the images' energy (sum of squares) in the high-frequency component."""
    from robustviz.data import frequency_split

    problems = number(answer, "the energy fraction")
    if problems:
        return problems
    lfc, hfc = frequency_split(x, radius=radius)
    total = float(x.pow(2).sum())
    ref = float(hfc.pow(2).sum()) / total
    a = float(answer)
    low = float(lfc.pow(2).sum()) / total
    l1 = float(hfc.abs().sum() / x.abs().sum())
    if abs(a - low) < 1e-4 and abs(low - ref) > 1e-3:
        return ["that is the low-frequency component's share: the exercise asks for the HFC's"]
    if abs(a - l1) < 1e-4 and abs(l1 - ref) > 1e-3:
        return ["that ratio uses absolute values; energy is the sum of *squared* pixel values"]
    return close(a, ref, 1e-3, "sum the squared HFC over all six images and divide by the sum of "
                 "the squared images, with frequency_split(x, radius=RADIUS)")


@register("06.2")
def ntxent_by_hand(answer, *, v1, v2, tau=0.5) -> list[str]:
    """NT-Xent of two views computed by hand."""
    from robustviz.defenses import nt_xent

    problems = number(answer, "the loss", lo=0.0, hi=1e6)
    if problems:
        return problems
    ref = float(nt_xent([v1, v2], tau=tau))
    a = float(answer)
    z = torch.cat([v1, v2])
    n = z.shape[0]
    pos = (torch.arange(n) + n // 2) % n

    def variant(sim, keep_self=False):
        if not keep_self:
            sim = sim.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
        return float((torch.logsumexp(sim, 1) - sim[torch.arange(n), pos]).mean())

    zn = torch.nn.functional.normalize(z, dim=1)
    mistakes = {
        "raw dot products: normalise each embedding first (cosine similarity)": variant(z @ z.T / tau),
        "no temperature: divide the similarities by tau": variant(zn @ zn.T),
        "the anchor itself is in the denominator: the sum runs over a != i": variant(zn @ zn.T / tau, True),
    }
    for hint, value in mistakes.items():
        if abs(a - value) < 1e-4 and abs(value - ref) > 1e-3:
            return [f"close to a known slip, {hint}"]
    return close(a, ref, 1e-4, "follow the formula of section 2: cosine similarities over tau, each "
                 "anchor's positive is the other view of its image, mean over all 2B anchors")


@register("06.3")
def head_lr_limit(answer, *, encoders, x, momentum=0.9, limit=400.0) -> list[str]:
    """Per encoder, the largest SGD lr a linear head on its features may use:
    ``limit * (1 - momentum) / E||z||^2``."""
    from robustviz.train import check_head_lr, head_input_scale

    names = list(encoders)
    if not isinstance(answer, dict) or set(answer) != set(names):
        got = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
        return [f"the answer should be a dict with one learning rate per encoder, keys {sorted(names)}, "
                f"got {got}"]
    out = []
    for name, enc in encoders.items():
        problems = number(answer[name], f"answer[{name!r}]", lo=0.0, hi=1e3)
        if problems:
            out += problems
            continue
        scale = head_input_scale(enc, x)
        ref = limit * (1 - momentum) / scale
        a = float(answer[name])
        if abs(a - limit / scale) < 1e-3 * (limit / scale) and momentum:
            out.append(f"answer[{name!r}] forgets the momentum: with momentum mu the step is "
                       f"1/(1 - mu) times larger, so the largest lr is that much smaller")
        elif check_head_lr(scale, a * (1 - 1e-6), momentum) is not None:
            out.append(f"answer[{name!r}] is above the limit: rv.train.check_head_lr warns at it")
        else:
            out += close(a, ref, 0.01 * ref, f"answer[{name!r}]: the lr at which "
                         f"lr * E||z||^2 / (1 - momentum) reaches the limit of 400")
    return out
