"""Checks of notebook 14 (what robust models look at)."""
from __future__ import annotations

import math

import torch

from robustviz.exercises import close, number, register


@register("14.1")
def completeness_gap(answer, *, model, x, y, steps=8) -> list[str]:
    """Mean over the images of |sum of integrated gradients - (f_y(x) - f_y(black))| with
    ``steps`` integration points."""
    from robustviz.diagnostics import attributions

    problems = number(answer, "the mean completeness gap", lo=0.0, hi=math.inf)
    if problems:
        return problems
    with torch.no_grad():
        diff = (model(x) - model(torch.zeros_like(x))).gather(1, y[:, None])[:, 0]
    total = attributions(model, x, y, method="integrated_gradients", steps=steps,
                         progress=False).flatten(1).sum(1)
    ref = float((total - diff).abs().mean())
    signed = float((total - diff).mean())
    value = float(answer)
    if abs(value - abs(signed)) < 1e-9 and abs(signed) < ref - 1e-6:
        return ["take the absolute gap of each image before averaging: signed gaps cancel"]
    return close(value, ref, max(1e-4, 0.05 * ref),
                 f"sum each image's integrated gradients (steps={steps}, black baseline) and "
                 f"compare with the logit of its label at x minus at the black image")


@register("14.2")
def untrained_alignment(answer, *, x, y, seed=0) -> list[str]:
    """Mean Spearman alignment with the edge map of an untrained TinyCNN's saliency."""
    from robustviz import models
    from robustviz.diagnostics import attribution_alignment, attributions

    problems = number(answer, "the mean alignment", lo=-1.0, hi=1.0)
    if problems:
        return problems
    net = models.build("tinycnn", num_classes=10, in_channels=x.shape[1],
                       input_size=tuple(x.shape[-2:]), seed=seed)
    ref = attribution_alignment(attributions(net, x, y, progress=False), x).mean
    return close(answer, ref, 0.02, "build the untrained TinyCNN with seed=SEED, take its "
                 "saliency for the labels y on x, and average attribution_alignment over "
                 "the images (Spearman, edge map: the defaults)")
