"""Single-step attacks: FGSM and FGSM with a random start (fast adversarial training)."""
from __future__ import annotations

import dataclasses
from typing import Callable

from robustviz._validate import check_nonnegative
from robustviz.attacks._base import (Attack, _ascend, _check_bool, _check_loss, _check_step_size,
                                     _LossSetup, _step_default)
from robustviz.attacks.threat import Linf

__all__ = ["FGSM", "FGSMRS"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class FGSM(Attack):
    """Fast gradient sign method: ``x' = clip_[0,1](x + eps * sign(grad_x L(f(x), y)))``.

    Parameters
    ----------
    eps : float
        L-infinity radius (the step is exactly ``eps``).
    loss : {"ce", "cw"} or callable
        Loss to ascend (see :class:`PGD`).
    targeted : bool
        Descend the loss towards the target labels in ``y``.
    bn_mode, bf16, seed
        See :class:`Attack`.

    Notes
    -----
    Like PGD (``loss="ce"`` or ``"cw"``), the two points FGSM visits (x and the step) are
    both checked: if the clean input is misclassified and the step happens to make it
    correct, x is returned (it lies in the ball), so accuracy under FGSM never exceeds
    clean accuracy.

    Shape
    -----
    ``x``: (N, C, H, W); ``y``: (N,); returns (N, C, H, W).

    References
    ----------
    Goodfellow et al., "Explaining and Harnessing Adversarial Examples", ICLR 2015.
    """

    eps: float
    loss: str | Callable = "ce"
    targeted: bool = False

    def _check(self):
        check_nonnegative(self.eps, "eps")
        _check_bool(self.targeted, "targeted")
        _check_loss(self.loss, targeted=self.targeted, early_stop=False, bn_mode=self.bn_mode)

    def _attack(self, forward, x, y, generator):
        threat = Linf(self.eps)
        with _LossSetup(self.loss, self.targeted, forward, x, y) as (fwd, objective, fooled_fn):
            out = _ascend(fwd, x, x, threat=threat, steps=1, step_size=float(self.eps),
                          objective=objective, fooled_fn=fooled_fn, early_stop=False,
                          generator=generator)
        return out.x_adv


@dataclasses.dataclass(frozen=True, kw_only=True)
class FGSMRS(Attack):
    """FGSM from a uniform random start ("fast adversarial training", Wong et al. 2020).

    ``x0 = x + U(-eps, eps)``, then one signed step of ``step_size`` (default
    ``1.25 * eps``), projected back onto the eps-ball and [0, 1]. Meant for training:
    it returns its single step as is (no tracking of the start point).

    Parameters
    ----------
    eps : float
    step_size : float, optional
        Default ``1.25 * eps``.
    loss : {"ce", "cw", "kl"} or callable or FeatureLoss
    targeted : bool
    bn_mode, bf16, seed
        See :class:`Attack`.

    Shape
    -----
    ``x``: (N, C, H, W); ``y``: (N,); returns (N, C, H, W).

    References
    ----------
    Wong, Rice & Kolter, "Fast is better than free: Revisiting adversarial training",
    ICLR 2020.
    """

    eps: float
    step_size: float | None = None
    loss: str | Callable = "ce"
    targeted: bool = False

    def _check(self):
        check_nonnegative(self.eps, "eps")
        _check_step_size(self.step_size)
        _check_bool(self.targeted, "targeted")
        _check_loss(self.loss, targeted=self.targeted, early_stop=False, bn_mode=self.bn_mode)

    @property
    def effective_step_size(self) -> float:
        return _step_default(self.step_size, 1.25 * float(self.eps))

    def _attack(self, forward, x, y, generator):
        threat = Linf(self.eps)
        x0 = threat.random_start(x, "uniform", generator=generator)
        with _LossSetup(self.loss, self.targeted, forward, x, y) as (fwd, objective, _):
            out = _ascend(fwd, x, x0, threat=threat, steps=1, step_size=self.effective_step_size,
                          objective=objective, fooled_fn=None, early_stop=False,
                          generator=generator)
        return out.x_adv
