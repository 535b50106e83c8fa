"""N-FGSM: single-step adversarial training from a large noise start, without projection.

``x0 = clip_[0,1](x + eta)``, ``eta ~ U(-noise * eps, noise * eps)`` per pixel, then one
signed step ``x' = clip_[0,1](x0 + step_size * sign(grad_x CE(f(x0), y)))``. The result is
*not* projected back onto the eps-ball (its distance to ``x`` is up to
``(noise * eps + step_size)``): de Jorge et al. show that this larger, noisier
perturbation avoids the catastrophic overfitting of FGSM-RS at no extra cost.

References
----------
de Jorge, Bibi, Volpi, Sanyal, Torr, Rogez & Dokania, "Make Some Noise: Reliable and
Efficient Single-Step Adversarial Training", NeurIPS 2022.
Wong, Rice & Kolter, "Fast is better than free: Revisiting adversarial training", ICLR 2020.
"""
from __future__ import annotations

import dataclasses

import torch.nn.functional as F

from robustviz._validate import check_nonnegative, check_positive
from robustviz.attacks._base import Attack, _ascend, _LossSetup
from robustviz.attacks.threat import Linf
from robustviz.defenses._base import Term, register

__all__ = ["NFGSM", "NFGSMAT"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class NFGSM(Attack):
    """The N-FGSM training perturbation (de Jorge et al., NeurIPS 2022).

    Parameters
    ----------
    eps : float
        Nominal L-infinity radius of the threat model.
    noise : float
        Half-width of the uniform start, in units of ``eps`` (the paper's ``k = 2``).
    step_size : float, optional
        Size of the signed step; default ``eps`` (the paper's ``alpha = eps``).
    bn_mode, bf16, seed
        See :class:`robustviz.attacks.Attack`.

    Notes
    -----
    A training perturbation, not an evaluation attack: its points leave the eps-ball (only
    ``[0, 1]`` is enforced), so accuracy under it says nothing about robustness at eps.

    Shape
    -----
    ``x``: (N, C, H, W); ``y``: (N,); returns (N, C, H, W).
    """

    eps: float
    noise: float = 2.0
    step_size: float | None = None

    def _check(self):
        check_positive(self.eps, "eps")
        check_nonnegative(self.noise, "noise")
        if self.step_size is not None:
            check_positive(self.step_size, "step_size")

    @property
    def effective_step_size(self) -> float:
        return float(self.eps if self.step_size is None else self.step_size)

    def _attack(self, forward, x, y, generator):
        step = self.effective_step_size
        start = Linf(self.noise * self.eps)
        x0 = start.random_start(x, "uniform", generator=generator) if self.noise > 0 else x
        # a ball that holds every point the step can reach: the projection only clips to [0, 1]
        reach = Linf(self.noise * self.eps + step)
        with _LossSetup("ce", False, forward, x, y) as (fwd, objective, _):
            out = _ascend(fwd, x, x0, threat=reach, steps=1, step_size=step, objective=objective,
                          fooled_fn=None, early_stop=False, generator=generator)
        return out.x_adv


@register
class NFGSMAT(Term):
    """N-FGSM adversarial training: ``CE(f(x'), y)`` with ``x'`` from :class:`NFGSM`.

    Parameters
    ----------
    eps : float
        Radius of the threat model (default 8/255).
    noise : float
        Uniform start half-width in units of ``eps`` (default 2, the paper's).
    step_size : float, optional
        Signed step; default ``eps``.

    Logs ``nfgsm`` (the term) and ``acc_adv`` (accuracy on the training perturbation).

    Examples
    --------
    >>> defense = build({"name": "nfgsm", "eps": 0.1})          # doctest: +SKIP
    """

    name = "nfgsm"
    options = {"eps": 8 / 255, "noise": 2.0, "step_size": None}

    def __init__(self, *, eps: float = 8 / 255, noise: float = 2.0, step_size: float | None = None):
        super().__init__()
        self.attack = NFGSM(eps=eps, noise=noise, step_size=step_size)   # checks the values
        self.eps, self.noise, self.step_size = float(eps), float(noise), step_size

    def compute(self, ctx):
        adv = ctx.adv(self.attack)["logits"]
        ce = F.cross_entropy(adv, ctx.y)
        return ce, {self.name: ce, "acc_adv": (adv.detach().argmax(1) == ctx.y).float().mean()}
