"""DeepFool, batched over the whole batch."""
from __future__ import annotations

import dataclasses

import torch

from robustviz._validate import check_choice, check_int, check_nonnegative
from robustviz.attacks._base import Attack, _check_bool

__all__ = ["DeepFool"]

VARIANTS = ("paper", "torchattacks")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeepFool(Attack):
    r"""DeepFool (Moosavi-Dezfooli et al. 2016): an untargeted minimal-L2 attack by
    iterative linearisation of the decision boundaries.

    At each iteration, for every candidate class ``k != y`` with ``w_k = grad(f_k - f_y)``
    and ``g_k = f_k - f_y``, the linearised distance to the boundary is
    ``|g_k| / ||w_k||_2``; the closest class ``l`` gives the step
    ``r = |g_l| / ||w_l||^2 * w_l``. Steps accumulate into ``r_tot`` and the iterate is
    ``x + (1 + overshoot) * r_tot`` clamped to [0, 1]. An example stops as soon as it is
    misclassified; examples already misclassified at the start are returned unchanged.

    Batched: one backward pass per candidate class for the whole batch (never a loop
    over examples).

    Parameters
    ----------
    steps : int
        Maximum number of iterations (default 50).
    overshoot : float
        Default 0.02.
    candidates : int, optional
        Consider only the ``candidates`` highest-scoring wrong classes at the clean input
        (the original paper used 10); default: all other classes.
    variant : {"paper", "torchattacks"}
        ``"paper"`` (default): steps accumulate and the overshoot scales the total,
        ``x + (1 + overshoot) * r_tot`` (the authors' reference code).
        ``"torchattacks"``: the overshoot scales each step, taken from the current
        (clamped) iterate, ``x_{i+1} = clip(x_i + (1 + overshoot) * r_i)``. Where pixels
        sit at 0 or 1 the clamp eats part of every step; the paper variant still crosses
        the boundary after enough iterations, the per-step variant can stall short of it,
        so it reports higher accuracy. It exists to cross-check against torchattacks.
    box_aware : bool
        Default True: linearise the problem *with* the pixel box. Coordinates that sit at
        0 (or 1) and whose gradient points further out are left out of ``w`` (the step
        is the minimal one along the face of the box), and the accumulated perturbation
        is reset to what the clamp let through. Without it (``False``, the reference
        algorithm followed by a clamp) images with many saturated pixels (digits,
        Fashion-MNIST backgrounds) make DeepFool stall short of the boundary and
        overstate robustness. Where no pixel is at the box both are identical.
    bn_mode, bf16, seed
        See :class:`Attack` (DeepFool draws no random numbers).

    Notes
    -----
    The perturbation is unbounded (no eps): accuracy after DeepFool is near 0 by design;
    the size of the perturbations (``||x_adv - x||_2``) is the quantity of interest.
    For a linear binary classifier one iteration lands exactly on the boundary, so
    ``||x_adv - x||_2 / (1 + overshoot)`` is the distance ``|w.x + b| / ||w||_2``.

    Shape
    -----
    ``x``: (N, C, H, W); ``y``: (N,) true labels; returns (N, C, H, W).

    References
    ----------
    Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool
    deep neural networks", CVPR 2016.
    """

    steps: int = 50
    overshoot: float = 0.02
    candidates: int | None = None
    variant: str = "paper"
    box_aware: bool = True

    def _check(self):
        check_int(self.steps, "steps", minimum=1)
        check_nonnegative(self.overshoot, "overshoot")
        if self.candidates is not None:
            check_int(self.candidates, "candidates", minimum=1)
        check_choice(self.variant, "variant", VARIANTS)
        _check_bool(self.box_aware, "box_aware")

    def _attack(self, forward, x, y, generator):
        n = x.shape[0]
        with torch.no_grad():
            logits0 = forward(x).float()
        k = logits0.shape[1]
        if k < 2:
            raise ValueError("DeepFool needs a model with at least 2 classes")
        # candidate wrong classes per example, ordered by clean score
        order = logits0.scatter(1, y[:, None], float("-inf")).argsort(1, descending=True)
        n_c = k - 1 if self.candidates is None else min(self.candidates, k - 1)
        cand = order[:, :n_c]
        x_adv = x.clone()
        r_tot = torch.zeros_like(x)
        active = (logits0.argmax(1) == y).nonzero().squeeze(1)
        view = (-1,) + (1,) * (x.dim() - 1)
        for _ in range(self.steps):
            if active.numel() == 0:
                break
            xa = x_adv[active].requires_grad_(True)
            out = forward(xa)
            ya = y[active]
            still = out.detach().argmax(1) == ya
            if not bool(still.all()):
                active = active[still]
                if active.numel() == 0:
                    break
                # rebuild the graph on the remaining examples only
                xa = x_adv[active].requires_grad_(True)
                out = forward(xa)
                ya = y[active]
            f_y = out.gather(1, ya[:, None]).squeeze(1)
            if self.box_aware:
                cur = xa.detach()
                at_lo, at_hi = cur <= 0, cur >= 1
            ca = cand[active]
            best_dist = torch.full((active.numel(),), float("inf"), device=x.device)
            best_w = torch.zeros_like(xa)
            best_g = torch.zeros(active.numel(), device=x.device, dtype=out.dtype)
            for j in range(n_c):
                g = out.gather(1, ca[:, j:j + 1]).squeeze(1) - f_y
                (w,) = torch.autograd.grad(g.sum(), xa, retain_graph=j < n_c - 1)
                if self.box_aware:  # the step moves pixel i along sign(w_i)
                    w = w.masked_fill((at_lo & (w < 0)) | (at_hi & (w > 0)), 0.0)
                w_norm = torch.linalg.vector_norm(w.reshape(w.shape[0], -1), dim=1)
                dist = g.detach().abs() / w_norm.clamp_min(1e-30)
                dist = torch.where(w_norm > 0, dist, torch.full_like(dist, float("inf")))
                better = dist < best_dist
                if bool(better.any()):
                    best_dist = torch.where(better, dist, best_dist)
                    best_w = torch.where(better.reshape(view), w, best_w)
                    best_g = torch.where(better, g.detach(), best_g)
            found = torch.isfinite(best_dist)
            w_sq = (best_w.reshape(best_w.shape[0], -1) ** 2).sum(1).clamp_min(1e-30)
            coef = torch.where(found, best_g.abs() / w_sq, torch.zeros_like(w_sq))
            r = coef.to(x.dtype).reshape(view) * best_w.to(x.dtype)
            if self.variant == "paper":
                r_tot[active] += r
                x_adv[active] = (x[active] + (1.0 + self.overshoot) * r_tot[active]).clamp(0.0, 1.0)
                if self.box_aware:  # forget the part of r_tot the clamp cut off
                    r_tot[active] = (x_adv[active] - x[active]) / (1.0 + self.overshoot)
            else:
                x_adv[active] = (xa.detach() + (1.0 + self.overshoot) * r).clamp(0.0, 1.0)
        return x_adv
