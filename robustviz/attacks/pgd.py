"""Projected gradient descent (PGD), L-infinity or L2, any loss, targeted or not."""
from __future__ import annotations

import dataclasses
from typing import Callable

from robustviz._validate import check_choice, check_int, check_nonnegative
from robustviz.attacks._base import (Attack, _ascend, _check_bool, _check_loss, _check_step_size,
                                     _LossSetup, _merge, _step_default)
from robustviz.attacks.threat import NORMS, RANDOM_STARTS, threat_model

__all__ = ["PGD"]

KEEP = ("fooling", "last")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PGD(Attack):
    r"""Projected gradient ascent on a loss inside a norm ball (Madry et al. 2018).

    ``x_{t+1} = Proj_{ball(x, eps) \cap [0,1]}(x_t + step_size * s(grad_x L(f(x_t), y)))``
    with ``s`` the sign (``norm="linf"``) or the L2-normalised gradient (``norm="l2"``).

    Parameters
    ----------
    eps : float
        Radius of the ball, in pixel units ([0, 1] images).
    step_size : float, optional
        Step length; default ``2.5 * eps / steps`` (Madry et al.).
    steps : int
        Number of gradient steps (0 returns the random start).
    norm : {"linf", "l2"}
    loss : {"ce", "kl", "cw"} or callable or FeatureLoss
        ``"ce"`` cross-entropy; ``"kl"`` ``KL(p(x) || p(x'))`` to the clean prediction,
        computed once at the start without gradient (the TRADES inner maximisation; use
        ``random_start="normal_small"``, since its gradient is zero at ``x' = x``);
        ``"cw"`` the margin ``max_{j != y} f_j - f_y`` (CW-Linf inside PGD);
        a callable ``loss(logits, y) -> (N,)`` per-example loss to ascend; or a
        :class:`FeatureLoss` on intermediate features.
    random_start : {"uniform", "normal_small", "none"}
        ``uniform`` in the ball (Madry, evaluations), ``normal_small`` x + 0.001 N(0, 1)
        (TRADES, MART), ``none`` start at x.
    targeted : bool
        When True, ``y`` holds target labels and the loss is *descended* towards them.
    restarts : int
        Independent random starts; per example the worst point is kept (a fooled point
        over a non-fooled one, else the higher loss).
    early_stop : bool
        Evaluation speed-up: an example is frozen at the first iterate that fools the
        model (untargeted: ``argmax != y``; targeted: ``argmax == y``) and dropped from the
        remaining forward/backward passes and restarts. It does not change which examples
        are fooled (see Notes), only the time. Only with ``loss="ce"`` or ``"cw"`` and
        ``bn_mode="eval"``. Top-1 only: stopped examples sit just past the boundary, so
        top-k accuracy for k > 1 is higher than without early stopping.
    keep : {"fooling", "last"}
        Which iterate comes back. ``"fooling"`` (evaluation, the default): with ``loss="ce"``
        or ``"cw"``, an example fooled at any iterate is returned fooled (see Notes).
        ``"last"``: the plain last iterate, as in Madry et al.'s training and in
        torchattacks; no tracking, no extra forward pass. The training defenses run their
        attacks with ``"last"``. ``early_stop`` needs ``"fooling"``.
    bn_mode, bf16, seed
        See :class:`Attack`.

    Notes
    -----
    With ``keep="fooling"`` and ``loss="ce"`` or ``"cw"`` every iterate's prediction is read from the forward
    pass the gradient needs anyway; an example fooled at any iterate is returned fooled
    (the final iterate if it still fools the model, else the first iterate that did). So
    robust accuracy counts an example as broken whenever PGD found a point that breaks
    it, with or without ``early_stop``. This costs one extra forward pass (no backward)
    over the fooled examples at the end. With ``"kl"``, a callable or a
    :class:`FeatureLoss` the final iterate is returned.

    Shape
    -----
    ``x``: (N, C, H, W) in [0, 1]; ``y``: (N,) int64; returns (N, C, H, W).

    References
    ----------
    Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.
    Zhang et al., "Theoretically Principled Trade-off between Robustness and Accuracy", ICML 2019.

    Examples
    --------
    >>> atk = PGD(eps=8/255, step_size=2/255, steps=10)
    >>> x_adv = atk(model, x, y)
    >>> trades = PGD(eps=8/255, step_size=2/255, steps=10, loss="kl", random_start="normal_small")
    """

    eps: float
    step_size: float | None = None
    steps: int = 10
    norm: str = "linf"
    loss: str | Callable = "ce"
    random_start: str = "uniform"
    targeted: bool = False
    restarts: int = 1
    early_stop: bool = False
    keep: str = "fooling"

    def _check(self):
        check_nonnegative(self.eps, "eps")
        _check_step_size(self.step_size)
        check_int(self.steps, "steps", minimum=0)
        check_choice(self.norm, "norm", NORMS)
        check_choice(self.random_start, "random_start", RANDOM_STARTS)
        _check_bool(self.targeted, "targeted")
        check_int(self.restarts, "restarts", minimum=1)
        _check_bool(self.early_stop, "early_stop")
        check_choice(self.keep, "keep", KEEP)
        if self.early_stop and self.keep != "fooling":
            raise ValueError("early_stop=True freezes each example at its first fooling iterate; "
                             "it needs keep='fooling', got keep='last'")
        _check_loss(self.loss, targeted=self.targeted, early_stop=self.early_stop,
                    bn_mode=self.bn_mode)
        if self.restarts > 1 and self.random_start == "none":
            raise ValueError("restarts > 1 needs a random start (random_start='uniform' or "
                             "'normal_small'); with 'none' every restart is the same")

    @property
    def effective_step_size(self) -> float:
        """The step size used: ``step_size`` or ``2.5 * eps / steps``."""
        return _step_default(self.step_size, 2.5 * float(self.eps) / max(self.steps, 1))

    def _attack(self, forward, x, y, generator):
        threat = threat_model(self.norm, self.eps)
        with _LossSetup(self.loss, self.targeted, forward, x, y) as (fwd, objective, fooled_fn):
            if self.keep == "last":
                fooled_fn = None
            best = None
            for _ in range(self.restarts):
                x0 = threat.random_start(x, self.random_start, generator=generator)
                rows = None
                if self.early_stop and best is not None:
                    rows = (~best.fooled).nonzero().squeeze(1)
                    if rows.numel() == 0:
                        break
                out = _ascend(fwd, x, x0, threat=threat, steps=self.steps,
                              step_size=self.effective_step_size, objective=objective,
                              fooled_fn=fooled_fn, early_stop=self.early_stop,
                              generator=generator, rows=rows,
                              score_fn=objective if self.restarts > 1 else None)
                best = _merge(best, out)
        return best.x_adv
