"""Threat models: the L-infinity and L2 balls intersected with the pixel box [0, 1].

All the geometry of the iterative attacks lives here, once: projection onto the ball,
the steepest-ascent step of the norm, and random starting points. Every function is
batched (one call for the whole batch, per-example norms) and keeps pixels in [0, 1].

References
----------
Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018
(projected gradient ascent, uniform random start).
Zhang et al., "Theoretically Principled Trade-off between Robustness and Accuracy" (TRADES),
ICML 2019 (the ``normal_small`` start, 0.001 * N(0, 1)).
"""
from __future__ import annotations

import dataclasses
import math

import torch

from robustviz._validate import check_choice, check_nonnegative

__all__ = ["ThreatModel", "Linf", "L2", "threat_model", "NORMS", "RANDOM_STARTS"]

NORMS = ("linf", "l2")
RANDOM_STARTS = ("uniform", "normal_small", "none")
_SMALL_STD = 0.001


def _flat_norm(t: torch.Tensor, p: float) -> torch.Tensor:
    """Per-example norm of a batch, shape (N,)."""
    return torch.linalg.vector_norm(t.reshape(t.shape[0], -1), ord=p, dim=1)


def _per_example(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape (N,) to (N, 1, 1, ...) to broadcast against ``like``."""
    return v.reshape((-1,) + (1,) * (like.dim() - 1))


def _draw(kind: str, shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Random numbers from ``generator`` (on its own device), moved to ``like``'s device/dtype."""
    dev = generator.device if generator is not None else like.device
    fn = torch.rand if kind == "rand" else torch.randn
    out = fn(shape, generator=generator, device=dev, dtype=like.dtype)
    return out.to(like.device)


@dataclasses.dataclass(frozen=True)
class ThreatModel:
    """Base class: a norm ball of radius ``eps`` around the clean input, inside [0, 1]."""

    eps: float
    name = "base"

    def __post_init__(self):
        check_nonnegative(self.eps, "eps")

    # --- the three operations -------------------------------------------------------
    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Closest point (Linf) or radial shrink (L2) of ``x_adv`` into the ball around ``x``,
        then clamped to [0, 1]. Shape: ``x_adv``, ``x``: (N, ...); returns (N, ...)."""
        raise NotImplementedError

    def step(self, x_adv: torch.Tensor, grad: torch.Tensor, step_size: float, *,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """One steepest-ascent step of length ``step_size`` in this norm along ``grad``
        (not projected). Shape: (N, ...)."""
        raise NotImplementedError

    def random_start(self, x: torch.Tensor, kind: str = "uniform", *,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """A starting point in the ball and in [0, 1]: ``"uniform"`` in the ball, ``"normal_small"``
        x + 0.001 N(0, 1) (projected), ``"none"`` x itself (a copy). Shape: (N, ...)."""
        check_choice(kind, "random_start", RANDOM_STARTS)
        if kind == "none" or self.eps == 0:
            return x.detach().clone()
        if kind == "normal_small":
            noise = _SMALL_STD * _draw("randn", x.shape, x, generator)
            return self.project(x.detach() + noise, x)
        return self.project(x.detach() + self._uniform(x, generator), x)

    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        """Per-example norm of a perturbation, shape (N,)."""
        raise NotImplementedError

    def contains(self, x_adv: torch.Tensor, x: torch.Tensor, *, atol: float = 1e-6) -> torch.Tensor:
        """Per-example bool (N,): ``x_adv`` is in the ball (up to ``atol``) and in [0, 1]."""
        in_box = ((x_adv >= -atol) & (x_adv <= 1 + atol)).reshape(x.shape[0], -1).all(1)
        return in_box & (self.norm(x_adv - x) <= self.eps + atol)

    def _uniform(self, x, generator):
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Linf(ThreatModel):
    """The L-infinity ball ``||x' - x||_inf <= eps``.

    Projection clamps each pixel to ``[max(x - eps, 0), min(x + eps, 1)]``; the step is
    ``step_size * sign(grad)``; the uniform start draws each pixel from U(-eps, eps).

    Shape
    -----
    ``x``, ``x_adv``, ``grad``: (N, C, H, W) (any (N, ...) works).
    """

    name = "linf"

    def project(self, x_adv, x):
        lo = (x - self.eps).clamp_(min=0.0)
        hi = (x + self.eps).clamp_(max=1.0)
        return torch.minimum(torch.maximum(x_adv, lo), hi)

    def step(self, x_adv, grad, step_size, *, generator=None):
        return x_adv + step_size * grad.sign()

    def norm(self, delta):
        return _flat_norm(delta, math.inf)

    def _uniform(self, x, generator):
        return (2.0 * _draw("rand", x.shape, x, generator) - 1.0) * self.eps


@dataclasses.dataclass(frozen=True)
class L2(ThreatModel):
    """The L2 ball ``||x' - x||_2 <= eps`` (per example, over all C*H*W pixels).

    Projection rescales ``delta`` to norm ``eps`` when it is longer, then clamps to
    [0, 1] (clamping towards ``x`` never increases the norm); the step is
    ``step_size * grad / ||grad||_2`` and rows whose gradient is exactly zero step in a
    random unit direction (drawn from ``generator``); the uniform start is uniform in the
    ball (Gaussian direction, radius ``eps * U^(1/d)``).
    """

    name = "l2"

    def project(self, x_adv, x):
        delta = x_adv - x
        n = self.norm(delta)
        factor = torch.where(n > self.eps, self.eps / n.clamp_min(1e-30), torch.ones_like(n))
        return (x + delta * _per_example(factor, delta)).clamp_(0.0, 1.0)

    def step(self, x_adv, grad, step_size, *, generator=None):
        n = self.norm(grad)
        zero = n == 0
        if bool(zero.any()):
            grad = grad.clone()
            idx = zero.nonzero().squeeze(1)
            rnd = _draw("randn", (idx.numel(),) + tuple(grad.shape[1:]), grad, generator)
            grad[idx] = rnd
            n = self.norm(grad)
        return x_adv + step_size * grad / _per_example(n, grad)

    def norm(self, delta):
        return _flat_norm(delta, 2)

    def _uniform(self, x, generator):
        d = x[0].numel()
        direction = _draw("randn", x.shape, x, generator)
        direction = direction / _per_example(self.norm(direction).clamp_min(1e-30), x)
        radius = self.eps * _draw("rand", (x.shape[0],), x, generator) ** (1.0 / d)
        return direction * _per_example(radius, x)


def threat_model(norm: str, eps: float) -> ThreatModel:
    """``Linf(eps)`` for ``norm="linf"``, ``L2(eps)`` for ``norm="l2"``."""
    check_choice(norm, "norm", NORMS)
    check_nonnegative(eps, "eps")
    return Linf(eps) if norm == "linf" else L2(eps)
