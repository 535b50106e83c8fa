"""Multi-targeted PGD: a targeted PGD towards every other class; robust only if all fail."""
from __future__ import annotations

import dataclasses

import torch

from robustviz._validate import check_choice, check_int, check_nonnegative
from robustviz.attacks._base import (Attack, _ascend, _check_bool, _check_step_size, _merge,
                                     _step_default)
from robustviz.attacks._losses import cross_entropy
from robustviz.attacks.threat import NORMS, RANDOM_STARTS, threat_model

__all__ = ["MultiTargetedPGD"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultiTargetedPGD(Attack):
    """Multi-targeted PGD ("mPGD" in ASCL, from ADR): for each class ``t != y`` run a
    targeted PGD that descends ``CE(f(x'), t)``; an example is robust only if it stays
    correctly classified under every target.

    Targets are tried in the order of the clean logits (most likely wrong class first).
    Per example the first point that is misclassified (any wrong class counts) is
    returned; for an example no target broke, the point with the highest cross-entropy
    of the true label.

    Parameters
    ----------
    eps : float
    step_size : float, optional
        Default ``2.5 * eps / steps``.
    steps : int
        Steps per target (default 10).
    norm : {"linf", "l2"}
    random_start : {"uniform", "normal_small", "none"}
        A fresh start per target.
    num_targets : int, optional
        Try only the ``num_targets`` most likely wrong classes (default: all K - 1).
    early_stop : bool
        Skip examples already fooled (by an earlier target or iterate); changes only
        the running time.
    bn_mode, bf16, seed
        See :class:`Attack`.

    Shape
    -----
    ``x``: (N, C, H, W); ``y``: (N,) true labels; returns (N, C, H, W).

    References
    ----------
    Gowal et al., "An Alternative Surrogate Loss for PGD-based Adversarial Testing", 2019.
    Bui et al., "Understanding and Achieving Efficient Robustness with Adversarial
    Supervised Contrastive Learning" (ASCL), 2021.
    """

    eps: float
    step_size: float | None = None
    steps: int = 10
    norm: str = "linf"
    random_start: str = "uniform"
    num_targets: int | None = None
    early_stop: bool = False

    def _check(self):
        check_nonnegative(self.eps, "eps")
        _check_step_size(self.step_size)
        check_int(self.steps, "steps", minimum=0)
        check_choice(self.norm, "norm", NORMS)
        check_choice(self.random_start, "random_start", RANDOM_STARTS)
        if self.num_targets is not None:
            check_int(self.num_targets, "num_targets", minimum=1)
        _check_bool(self.early_stop, "early_stop")
        if self.early_stop and self.bn_mode == "train":
            raise ValueError("early_stop=True cannot be combined with bn_mode='train': "
                             "dropping examples would change the batch statistics")

    @property
    def effective_step_size(self) -> float:
        return _step_default(self.step_size, 2.5 * float(self.eps) / max(self.steps, 1))

    def _attack(self, forward, x, y, generator):
        threat = threat_model(self.norm, self.eps)
        with torch.no_grad():
            logits = forward(x)
        k = logits.shape[1]
        if k < 2:
            raise ValueError("MultiTargetedPGD needs a model with at least 2 classes")
        order = logits.detach().float().scatter(1, y[:, None], float("-inf")).argsort(1, descending=True)
        n_t = k - 1 if self.num_targets is None else min(self.num_targets, k - 1)

        def fooled_fn(out, idx):
            return out.argmax(1) != (y if idx is None else y[idx])

        def score_fn(out, idx):
            return cross_entropy(out, y if idx is None else y[idx])

        best = None
        for j in range(n_t):
            target = order[:, j].contiguous()

            def objective(out, idx, target=target):
                return -cross_entropy(out, target if idx is None else target[idx])

            x0 = threat.random_start(x, self.random_start, generator=generator)
            rows = None
            if self.early_stop and best is not None:
                rows = (~best.fooled).nonzero().squeeze(1)
                if rows.numel() == 0:
                    break
            out = _ascend(forward, x, x0, threat=threat, steps=self.steps,
                          step_size=self.effective_step_size, objective=objective,
                          fooled_fn=fooled_fn, early_stop=self.early_stop, generator=generator,
                          rows=rows, score_fn=score_fn)
            best = _merge(best, out)
        return best.x_adv
