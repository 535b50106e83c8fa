"""Momentum iterative method (MI-FGSM)."""
from __future__ import annotations

import dataclasses
from typing import Callable

from robustviz._validate import check_choice, check_int, check_nonnegative
from robustviz.attacks._base import (Attack, _ascend, _check_bool, _check_loss, _check_step_size,
                                     _LossSetup, _step_default)
from robustviz.attacks.threat import NORMS, RANDOM_STARTS, threat_model

__all__ = ["MIM"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class MIM(Attack):
    r"""Momentum iterative attack (Dong et al. 2018).

    ``g_{t+1} = decay * g_t + grad_t / mean|grad_t|`` (L1-normalised per example), then a
    step of ``step_size`` along ``g_{t+1}`` in the norm (sign for Linf), projected onto the
    ball and [0, 1].

    Parameters
    ----------
    eps : float
    steps : int
        Default 10.
    step_size : float, optional
        Default ``eps / steps`` (the paper's choice).
    decay : float
        Momentum factor mu, default 1.0.
    norm : {"linf", "l2"}
    loss : {"ce", "cw"} or callable
        See :class:`PGD`.
    targeted : bool
    random_start : {"none", "uniform", "normal_small"}
        Default ``"none"`` as in the paper.
    early_stop : bool
        As in :class:`PGD`: changes only the running time.
    bn_mode, bf16, seed
        See :class:`Attack`.

    Notes
    -----
    Returned points follow :class:`PGD`'s rule: an example fooled at any iterate comes
    back fooled.

    Shape
    -----
    ``x``: (N, C, H, W); ``y``: (N,); returns (N, C, H, W).

    References
    ----------
    Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018.
    """

    eps: float
    steps: int = 10
    step_size: float | None = None
    decay: float = 1.0
    norm: str = "linf"
    loss: str | Callable = "ce"
    targeted: bool = False
    random_start: str = "none"
    early_stop: bool = False

    def _check(self):
        check_nonnegative(self.eps, "eps")
        check_int(self.steps, "steps", minimum=0)
        _check_step_size(self.step_size)
        check_nonnegative(self.decay, "decay")
        check_choice(self.norm, "norm", NORMS)
        _check_bool(self.targeted, "targeted")
        check_choice(self.random_start, "random_start", RANDOM_STARTS)
        _check_bool(self.early_stop, "early_stop")
        _check_loss(self.loss, targeted=self.targeted, early_stop=self.early_stop,
                    bn_mode=self.bn_mode)

    @property
    def effective_step_size(self) -> float:
        return _step_default(self.step_size, float(self.eps) / max(self.steps, 1))

    def _attack(self, forward, x, y, generator):
        threat = threat_model(self.norm, self.eps)
        x0 = threat.random_start(x, self.random_start, generator=generator)
        with _LossSetup(self.loss, self.targeted, forward, x, y) as (fwd, objective, fooled_fn):
            out = _ascend(fwd, x, x0, threat=threat, steps=self.steps,
                          step_size=self.effective_step_size, objective=objective,
                          fooled_fn=fooled_fn, early_stop=self.early_stop,
                          generator=generator, decay=float(self.decay))
        return out.x_adv
