"""The views of the pretraining terms (:mod:`robustviz.defenses._pretrain`): clean views
of the step's batch drawn once per step and shared by every term of a defense (SimCLR
augmentations, frequency components, a crop + flip of ``x``), adversarial views crafted by
PGD on a term's own loss of the features, and a view's features in a BatchNorm branch.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["VIEWS", "step_views", "crop_flip"]

VIEWS = ("aug1", "aug2", "hfc", "lfc", "adv", "adv1", "adv2")
_ADV_START = {"adv": "x", "adv1": "aug1", "adv2": "aug2"}


# ------------------------------------------------------------------------------ views
def step_views(ctx, names, *, radius: float = 8.0, aug: dict | None = None) -> dict[str, torch.Tensor]:
    """The clean views ``names`` of the step's batch, drawn once per step (cached in
    ``ctx.cache``) from the step's generator. Shape ``(B, C, H, W)`` each."""
    from robustviz.data._views import frequency_split, simclr_augment

    cache = ctx.cache.setdefault("views", {"x": ctx.x})
    for name in names:
        if name in cache:
            continue
        if name in ("aug1", "aug2"):
            cache[name] = simclr_augment(ctx.x, generator=ctx.generator, **(aug or {}))
        elif name in ("hfc", "lfc"):
            lfc, hfc = frequency_split(ctx.x, radius)
            cache["lfc"], cache["hfc"] = lfc, hfc
        elif name == "x_cf":
            cache[name] = crop_flip(ctx.x, ctx.generator)
        elif name in ("hfc_cf", "lfc_cf"):
            lfc, hfc = frequency_split(step_views(ctx, ["x_cf"])["x_cf"], radius)
            cache["lfc_cf"], cache["hfc_cf"] = lfc, hfc
    return {n: cache[n] for n in names}


def crop_flip(x: torch.Tensor, generator, padding: int = 4) -> torch.Tensor:
    """``RandomCrop(H, padding) + RandomHorizontalFlip`` of each image (the CIFAR protocol;
    AdvCL's released code builds its adversarial and HFC views on it). Shape kept."""
    from robustviz.data._augment import hflip, random_crop

    return hflip(random_crop(x, padding, generator=generator), generator=generator)


def _embed(ctx, x: torch.Tensor, branch: str | None, layer: str, proj: nn.Module | None) -> torch.Tensor:
    """``proj(features[layer](x))`` in BatchNorm branch ``branch``, flattened, float32."""
    from robustviz.models._dual_bn import bn_branch

    with bn_branch(ctx.model, branch):
        z = ctx.forward(x, None, layers=[layer])[layer].flatten(1).float()
    return proj(z) if proj is not None else z


def _feature_attack(ctx, model, x_start, fn, *, layer, eps, step_size, steps, branch):
    """PGD ascending ``fn(features) -> scalar`` from ``x_start`` (uniform start, last
    iterate), in the step's BatchNorm mode and precision and in BatchNorm branch
    ``branch``. Labels are placeholders (the loss is label-free or closes over its own)."""
    from robustviz.attacks import PGD, FeatureLoss
    from robustviz.models._dual_bn import bn_branch

    n = x_start.shape[0]

    def objective(feats, _y):
        z = feats[layer]
        if z.shape[0] != n:
            raise RuntimeError("the contrastive attack needs all rows at every step")
        return fn(z.flatten(1).float())

    atk = PGD(eps=eps, step_size=step_size, steps=steps, random_start="uniform", keep="last",
              loss=FeatureLoss(objective, layers=(layer,)), bn_mode=ctx.attack_bn, bf16=ctx.bf16)
    placeholder = torch.zeros(n, dtype=torch.long, device=x_start.device)
    with bn_branch(model, branch):
        x_adv = atk(model, x_start.detach(), placeholder, generator=ctx.generator)
    ctx.attack_calls += 1
    return x_adv.detach()
