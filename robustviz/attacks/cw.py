"""Carlini-Wagner L2 attack."""
from __future__ import annotations

import dataclasses
import math

import torch

from robustviz._validate import check_int, check_nonnegative, check_positive
from robustviz.attacks._base import Attack, _check_bool

__all__ = ["CW"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CW(Attack):
    r"""Carlini-Wagner L2 attack (2017).

    Optimises ``w`` with Adam (default betas 0.9, 0.999), where ``x' = (tanh(w) + 1) / 2`` (always in [0, 1]), to
    minimise ``||x' - x||_2^2 + c * max(f_y - max_{j != y} f_j + kappa, 0)`` (targeted:
    ``max(max_{j != t} f_j - f_t + kappa, 0)``). Per example the smallest successful
    perturbation seen is returned, and the original image where none succeeded. With
    ``binary_search_steps > 1`` the constant ``c`` is bisected per example (multiplied
    by 10 while no upper bound is known).

    Parameters
    ----------
    c : float
        Initial trade-off constant (default 1).
    kappa : float
        Confidence margin (default 0).
    steps : int
        Adam steps per search step (default 100).
    lr : float
        Adam learning rate (default 0.01).
    binary_search_steps : int
        Default 1 (a fixed ``c``; the paper uses 9 with 10,000 steps).
    targeted : bool
        ``y`` holds target labels.
    bn_mode, bf16, seed
        See :class:`Attack` (no random numbers are drawn).

    Shape
    -----
    ``x``: (N, C, H, W); ``y``: (N,); returns (N, C, H, W).

    References
    ----------
    Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017.
    """

    c: float = 1.0
    kappa: float = 0.0
    steps: int = 100
    lr: float = 0.01
    binary_search_steps: int = 1
    targeted: bool = False

    def _check(self):
        check_positive(self.c, "c")
        check_nonnegative(self.kappa, "kappa")
        check_int(self.steps, "steps", minimum=1)
        check_positive(self.lr, "lr")
        check_int(self.binary_search_steps, "binary_search_steps", minimum=1)
        _check_bool(self.targeted, "targeted")

    def _attack(self, forward, x, y, generator):
        n = x.shape[0]
        dev = x.device
        view = (-1,) + (1,) * (x.dim() - 1)
        w0 = torch.atanh((2.0 * x - 1.0).clamp(-1 + 1e-6, 1 - 1e-6))
        const = torch.full((n,), float(self.c), device=dev, dtype=x.dtype)
        lower = torch.zeros_like(const)
        upper = torch.full_like(const, math.inf)
        best_l2 = torch.full((n,), math.inf, device=dev, dtype=x.dtype)
        best = x.clone()
        onehot = None
        b1, b2, tiny = 0.9, 0.999, 1e-8   # Adam (Kingma & Ba 2015) defaults
        for _ in range(self.binary_search_steps):
            w = w0.clone().requires_grad_(True)
            m1 = torch.zeros_like(w0)
            m2 = torch.zeros_like(w0)
            success_any = torch.zeros(n, dtype=torch.bool, device=dev)
            for t in range(1, self.steps + 1):
                x_new = 0.5 * (torch.tanh(w) + 1.0)
                logits = forward(x_new)
                if onehot is None:
                    onehot = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, y[:, None], True)
                real = logits.masked_fill(~onehot, -math.inf).amax(1)
                other = logits.masked_fill(onehot, -math.inf).amax(1)
                margin = (other - real) if self.targeted else (real - other)
                f = (margin + self.kappa).clamp_min(0.0)
                l2 = ((x_new - x) ** 2).reshape(n, -1).sum(1)
                loss = (l2 + const * f).sum()
                (grad,) = torch.autograd.grad(loss, w)
                with torch.no_grad():
                    pred = logits.argmax(1)
                    ok = (pred == y) if self.targeted else (pred != y)
                    ok &= margin.detach() <= -self.kappa
                    improved = ok & (l2.detach() < best_l2)
                    best_l2 = torch.where(improved, l2.detach(), best_l2)
                    best = torch.where(improved.reshape(view), x_new.detach(), best)
                    success_any |= ok
                    # Adam step on w (written out: torch.optim's first step costs seconds
                    # of one-off imports, and the update is three elementwise lines)
                    m1.mul_(b1).add_(grad, alpha=1 - b1)
                    m2.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                    step = self.lr * (m1 / (1 - b1 ** t)) / ((m2 / (1 - b2 ** t)).sqrt() + tiny)
                    w.sub_(step)
            with torch.no_grad():
                upper = torch.where(success_any, torch.minimum(upper, const), upper)
                lower = torch.where(~success_any, torch.maximum(lower, const), lower)
                const = torch.where(torch.isfinite(upper), (lower + upper) / 2, const * 10)
        return best
