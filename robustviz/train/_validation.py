"""Validation during training: the fixed validation subset, the validation attack and its
radius, and clean and robust accuracy in eval mode (counts summed over DDP ranks)."""
from __future__ import annotations

import inspect
from typing import Callable

import torch
from torch import nn

from robustviz import runs
from robustviz._utils import autocast, model_device, model_mode
from robustviz.train import _ddp


def val_subset(val, size: int, seed: int):
    """The fixed validation subset: ``size`` images of ``val`` drawn with ``seed``, in their
    original order (all of ``val`` when it is no larger)."""
    if val is None or len(val) <= size:
        return val
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(val), generator=g)[:size].sort().values
    return val.subset(idx)


def resolve_eps(eps: float | None, model: nn.Module, defense=None, dataset: str | None = None) -> float:
    """``eps`` when given, else the defense's ``eps`` (from its ``config()``), else the data
    set's default (:func:`robustviz.runs.default_eps`)."""
    if eps is not None:
        return float(eps)
    cfg = defense.config() if hasattr(defense, "config") and callable(defense.config) else {}
    if isinstance(cfg, dict) and isinstance(cfg.get("eps"), (int, float)) and cfg["eps"] > 0:
        return float(cfg["eps"])
    return runs.default_eps(dataset, in_channels=getattr(model, "in_channels", 3))


def pgd20(model: nn.Module, eps: float, *, bf16: bool):
    """The default validation attack: Linf PGD, 20 steps of ``2.5 * eps / 20`` from a
    uniform random start (Madry et al. 2018), adaptive for a model with a surrogate."""
    from robustviz.attacks import PGD, Adaptive, surrogate_of

    pgd = PGD(eps=eps, step_size=2.5 * eps / 20, steps=20, random_start="uniform", bf16=bf16)
    # a model with a non-differentiable test path (reverse attention) is also attacked
    # through its differentiable surrogate, else PGD-20 reports masked gradients
    return Adaptive(attack=pgd) if surrogate_of(model) is not None else pgd


def accepts(fn: Callable, name: str) -> bool:
    """Whether ``fn`` takes a keyword argument ``name``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def accuracy(model: nn.Module, data, attack, *, seed: int, batch_size: int, bf16: bool,
             info: _ddp.DistInfo | None = None) -> dict:
    """Clean and robust (under ``attack``, when not ``None``) accuracy of ``model`` on the
    checked Dataset ``data``, in eval mode; the attack's random start comes from a generator
    seeded with ``seed``. Returns ``{"clean_acc", "robust_acc", "n"}``."""
    info = info or _ddp.DistInfo()
    device = model_device(model)
    x_all, y_all = data.x, data.y
    if info.active:  # each rank scores its share; counts are summed
        x_all = x_all.tensor_split(info.world_size)[info.rank]
        y_all = y_all.tensor_split(info.world_size)[info.rank]
    gen = torch.Generator(device=device).manual_seed(seed)
    pass_gen = attack is not None and accepts(attack, "generator")
    counts = torch.zeros(3, dtype=torch.float64, device=device)  # n, clean, robust
    with model_mode(model, "eval"):
        for start in range(0, x_all.shape[0], batch_size):
            x = x_all[start:start + batch_size].to(device)
            y = y_all[start:start + batch_size].to(device)
            with torch.no_grad(), autocast(device, bf16):
                clean = model(x).argmax(1) == y
            counts[0] += y.numel()
            counts[1] += clean.sum()
            if attack is not None:
                x_adv = attack(model, x, y, generator=gen) if pass_gen else attack(model, x, y)
                if not isinstance(x_adv, torch.Tensor) or x_adv.shape != x.shape:
                    raise ValueError(
                        f"the attack {getattr(attack, 'name', None) or type(attack).__name__} returned "
                        f"{tuple(x_adv.shape) if isinstance(x_adv, torch.Tensor) else type(x_adv).__name__} "
                        f"for a batch of shape {tuple(x.shape)}: an attack must return one "
                        f"adversarial image per input image, same shape")
                with torch.no_grad(), autocast(device, bf16):
                    counts[2] += (model(x_adv).argmax(1) == y).sum()
    counts = _ddp.all_reduce_sum(counts, info)
    n = int(counts[0].item())
    return {"clean_acc": float(counts[1] / n), "robust_acc": float(counts[2] / n) if attack is not None else None,
            "n": n}
