"""Clean and adversarial features of a model on a fixed set (the extraction step).

The diagnostics themselves are pure functions on tensors; this module is the one place
that runs a model: it attacks a set of images, then extracts the chosen layer's features
and the logits for the clean and the adversarial images with
:func:`robustviz.models.extract`.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from robustviz._utils import model_device, model_mode
from robustviz._validate import check_batch, check_images, check_int, check_labels, check_nonempty

__all__ = ["AttackedFeatures", "attacked_features", "as_images_labels"]


def as_images_labels(data, name: str = "data", model: nn.Module | None = None):
    """``(x, y)`` from a Dataset (tensor ``x`` and ``y``) or a pair of tensors, validated."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    elif isinstance(getattr(data, "x", None), torch.Tensor) and \
            isinstance(getattr(data, "y", None), torch.Tensor):
        x, y = data.x, data.y
    else:
        raise TypeError(f"{name} must be a robustviz.data.Dataset or a pair (x, y) of tensors, "
                        f"got {type(data).__name__}")
    check_nonempty(x, name)
    if model is not None and callable(getattr(model, "check_input", None)):
        model.check_input(x, f"{name} images")
        check_labels(y, x.shape[0], f"{name} labels",
                     num_classes=getattr(model, "num_classes", None))
    else:
        check_batch(x, y, channels=getattr(model, "in_channels", None),
                    size=getattr(model, "input_size", None),
                    num_classes=getattr(model, "num_classes", None))
    return x, y


@dataclasses.dataclass(frozen=True, repr=False)
class AttackedFeatures:
    """Features and logits of clean and adversarial images (CPU, float32).

    Attributes
    ----------
    z_nat, z_adv : Tensor of shape (N, D)
        Features of the chosen layer (``z_adv`` equals ``z_nat`` when no attack ran).
    y : Tensor of shape (N,)
    logits_nat, logits_adv : Tensor of shape (N, C)
    x_adv : Tensor of shape (N, C, H, W) or None
        The adversarial images, when ``keep_images=True``.
    layer : str
    """

    z_nat: torch.Tensor
    z_adv: torch.Tensor
    y: torch.Tensor
    logits_nat: torch.Tensor
    logits_adv: torch.Tensor
    x_adv: torch.Tensor | None
    layer: str

    @property
    def probs_nat(self) -> torch.Tensor:
        return self.logits_nat.softmax(-1)

    @property
    def probs_adv(self) -> torch.Tensor:
        return self.logits_adv.softmax(-1)

    @property
    def clean_correct(self) -> torch.Tensor:
        return self.logits_nat.argmax(1) == self.y

    @property
    def robust_correct(self) -> torch.Tensor:
        """Correct on both the clean and the adversarial input (the clean input is a point
        of the threat ball), as in :mod:`robustviz.evaluate`."""
        return self.clean_correct & (self.logits_adv.argmax(1) == self.y)

    @property
    def clean_acc(self) -> float:
        return float(self.clean_correct.float().mean())

    @property
    def robust_acc(self) -> float:
        return float(self.robust_correct.float().mean())

    def __repr__(self) -> str:
        return (f"AttackedFeatures(n={self.y.shape[0]}, layer={self.layer!r}, "
                f"dim={self.z_nat.shape[1]}, clean_acc={self.clean_acc:.3f}, "
                f"robust_acc={self.robust_acc:.3f})")


def attacked_features(model: nn.Module, data, attack=None, *, layer: str = "penultimate",
                      batch_size: int = 256, seed: int = 0, keep_images: bool = False,
                      x_adv: torch.Tensor | None = None, progress: bool = False) -> AttackedFeatures:
    """Attack ``data`` and extract clean and adversarial features and logits.

    Parameters
    ----------
    model : nn.Module
        A classifier built by :func:`robustviz.models.build` (pixels in [0, 1]).
    data : Dataset or (Tensor, Tensor)
        Images and labels.
    attack : Attack or callable or None
        ``x_adv = attack(model, x, y)``; a :class:`robustviz.attacks.Attack` gets a
        generator seeded with ``seed`` (same seed, same adversarial examples). None: no
        attack (``z_adv`` is ``z_nat``, e.g. eps = 0).
    layer : str
        Feature tap (default ``"penultimate"``, the latent space of paper 001).
    batch_size : int
        Batch size of the attack and of the extraction.
    seed : int
    keep_images : bool
        Keep the adversarial images in the result.
    x_adv : Tensor of shape (N, C, H, W), optional
        Adversarial images already crafted for ``data`` (e.g. ``EvalResult.adv[name]``
        from ``evaluate(..., keep_adv=True)``), used instead of running ``attack`` (which
        must then be None).
    progress : bool

    Returns
    -------
    AttackedFeatures

    Shape
    -----
    data.x: (N, C, H, W) in [0, 1]; returns z_nat, z_adv: (N, D); logits: (N, num_classes).

    Notes
    -----
    The model is in eval mode throughout (the attack itself may switch to its
    ``bn_mode``); every module's mode is restored afterwards. Autograd is enabled for the
    attack even when the caller runs under ``torch.no_grad()``.
    """
    from robustviz.models import extract  # models sit below diagnostics

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    x, y = as_images_labels(data, "data", model)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    if attack is not None and not callable(attack):
        raise TypeError(f"attack must be an Attack or a callable atk(model, x, y), got "
                        f"{type(attack).__name__}")
    if x_adv is not None:
        if attack is not None:
            raise ValueError("give either attack or precomputed x_adv, not both")
        check_images(x_adv, "x_adv")
        if x_adv.shape != x.shape:
            raise ValueError(f"x_adv must have the images' shape {tuple(x.shape)}, got {tuple(x_adv.shape)}")
    layers = [layer] if layer == "logits" else [layer, "logits"]
    dev = model_device(model)
    clean = extract(model, x, layers, batch_size=batch_size, progress=progress)
    if x_adv is None and attack is None:
        adv, x_adv = clean, (x.detach().cpu() if keep_images else None)
    else:
        if x_adv is not None:
            xa = x_adv.detach().cpu().to(x.dtype)
        else:
            xa = _run_attack(attack, model, x, y, batch_size, seed, dev)
        adv = extract(model, xa, layers, batch_size=batch_size, progress=progress)
        x_adv = xa if keep_images else None
    flat = lambda t: t.reshape(t.shape[0], -1).float()  # noqa: E731
    return AttackedFeatures(z_nat=flat(clean[layer]), z_adv=flat(adv[layer]),
                            y=y.detach().cpu().long(), logits_nat=clean["logits"].float(),
                            logits_adv=adv["logits"].float(), x_adv=x_adv, layer=layer)


def _run_attack(attack, model, x, y, batch_size: int, seed: int, dev) -> torch.Tensor:
    """Adversarial images of ``x`` (CPU), batch by batch, in eval mode; a robustviz
    Attack gets a generator seeded with ``seed``."""
    try:
        from robustviz.attacks import Attack
    except ImportError:  # pragma: no cover - attacks is part of the package
        Attack = ()
    gen = torch.Generator(device=dev).manual_seed(seed)
    parts = []
    with model_mode(model, "eval"), torch.enable_grad():
        for s in range(0, x.shape[0], batch_size):
            xb, yb = x[s:s + batch_size].to(dev), y[s:s + batch_size].to(dev)
            xa = attack(model, xb, yb, generator=gen) if isinstance(attack, Attack) else attack(model, xb, yb)
            parts.append(xa.detach().cpu())
    return torch.cat(parts)
