"""Baseline defenses: natural training, PGD-AT, fast FGSM-RS AT, TRADES, MART.

Each is a :class:`~robustviz.defenses.Term`; they compose with the contrastive terms.

References
----------
Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.
Wong, Rice & Kolter, "Fast is better than free: Revisiting adversarial training", ICLR 2020.
Zhang et al., "Theoretically Principled Trade-off between Robustness and Accuracy", ICML 2019.
Wang et al., "Improving Adversarial Robustness Requires Revisiting Misclassified Examples"
(MART), ICLR 2020.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from robustviz._validate import check_choice, check_nonnegative
from robustviz.defenses._base import Term, register

__all__ = ["NAT", "PGDAT", "FGSMRSAT", "TRADES", "MART", "kl_rows", "trades_kl", "mart_loss"]

_CIFAR_EPS = 8 / 255


def _check_attack(attack, name="attack"):
    if attack is not None and not callable(attack):
        raise TypeError(f"{name} must be an attack object called as attack(model, x, y) "
                        f"(e.g. robustviz.attacks.PGD(...)), got {type(attack).__name__}")
    return attack


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.detach().argmax(1) == y).float().mean()


def kl_rows(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Per-row ``KL(p || q)`` with ``p = softmax(logits_p)``, ``q = softmax(logits_q)``;
    gradient flows through both arguments.

    Shape
    -----
    ``logits_p``, ``logits_q``: ``(B, K)``; returns ``(B,)``.
    """
    logp = F.log_softmax(logits_p, dim=1)
    logq = F.log_softmax(logits_q, dim=1)
    return (logp.exp() * (logp - logq)).sum(1)


def trades_kl(logits_clean: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    """TRADES' robust term ``(1/B) sum_i KL(p(x_i) || p(x'_i))`` (gradient through both).

    Shape
    -----
    ``(B, K)`` each; returns a scalar.
    """
    return kl_rows(logits_clean, logits_adv).mean()


def mart_loss(logits_clean: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor, beta: float
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """MART: ``CE(f', y) + NLL(log(1.0001 - p' + 1e-12), y2)
    + beta (1/B) sum_i KL(p_i || p'_i) (1.0000001 - p_y(x_i))``, ``y2 = argmax_{j != y} p'_j``.

    Returns the loss and its parts ``{"ce_adv", "mart_margin", "mart_kl"}`` (``mart_kl``
    unweighted by beta).

    Shape
    -----
    ``logits_clean``, ``logits_adv``: ``(B, K)``; ``y``: ``(B,)``.
    """
    p_adv = F.softmax(logits_adv, dim=1)
    ce_adv = F.cross_entropy(logits_adv, y)
    masked = p_adv.detach().clone()
    masked.scatter_(1, y[:, None], -1.0)
    y2 = masked.argmax(1)
    margin = F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), y2)
    p_true = F.softmax(logits_clean, dim=1).gather(1, y[:, None]).squeeze(1)
    kl = (kl_rows(logits_clean, logits_adv) * (1.0000001 - p_true)).mean()
    return ce_adv + margin + beta * kl, {"ce_adv": ce_adv, "mart_margin": margin, "mart_kl": kl}


def _pgd(**kw):
    from robustviz.attacks import PGD
    return PGD(**kw)


@register
class NAT(Term):
    """Natural training: ``CE(f(x), y)``. Logs ``nat`` and ``acc_clean``."""

    name = "nat"

    def compute(self, ctx):
        logits = ctx.clean()["logits"]
        ce = F.cross_entropy(logits, ctx.y)
        return ce, {"nat": ce, "acc_clean": _accuracy(logits, ctx.y)}


class _AttackTerm(Term):
    attack_mode = "own"

    def _set_attack(self, attack):
        _check_attack(attack)
        self.attack = self.default_attack() if attack is None else attack


@register
class PGDAT(_AttackTerm):
    """Madry PGD adversarial training: ``CE(f(x'), y)``, ``x'`` from PGD-k on CE.

    Parameters
    ----------
    attack : attack, optional
        Default ``PGD(eps=8/255, step_size=2/255, steps=10, random_start="uniform")``.
    clean_ce : bool
        Add ``CE(f(x), y)``: paper 001's ``L_AT`` (its eq. 4).

    Logs ``pgd_at`` (the term), ``ce_adv``, ``acc_adv`` (and ``ce_clean``, ``acc_clean``).
    """

    name = "pgd_at"
    options = {"clean_ce": False}

    def __init__(self, *, attack=None, clean_ce: bool = False):
        super().__init__()
        if not isinstance(clean_ce, bool):
            raise TypeError(f"clean_ce must be True or False, got {clean_ce!r}")
        self.clean_ce = clean_ce
        self._set_attack(attack)

    def default_attack(self):
        return _pgd(eps=_CIFAR_EPS, step_size=2 / 255, steps=10, random_start="uniform")

    def compute(self, ctx):
        adv = ctx.adv(self.attack)["logits"]
        ce_adv = F.cross_entropy(adv, ctx.y)
        logs = {"ce_adv": ce_adv, "acc_adv": _accuracy(adv, ctx.y)}
        loss = ce_adv
        if self.clean_ce:
            clean = ctx.clean()["logits"]
            ce = F.cross_entropy(clean, ctx.y)
            loss = loss + ce
            logs.update(ce_clean=ce, acc_clean=_accuracy(clean, ctx.y))
        return loss, {self.name: loss, **logs}


@register
class FGSMRSAT(_AttackTerm):
    """Fast adversarial training (Wong et al. 2020): ``CE(f(x'), y)`` with ``x'`` from FGSM with
    a uniform random start and step ``1.25 * eps``.

    Parameters
    ----------
    attack : attack, optional
        Default ``FGSMRS(eps=8/255)``.
    """

    name = "fgsm_rs"

    def __init__(self, *, attack=None):
        super().__init__()
        self._set_attack(attack)

    def default_attack(self):
        from robustviz.attacks import FGSMRS
        return FGSMRS(eps=_CIFAR_EPS)

    def compute(self, ctx):
        adv = ctx.adv(self.attack)["logits"]
        ce = F.cross_entropy(adv, ctx.y)
        return ce, {self.name: ce, "acc_adv": _accuracy(adv, ctx.y)}


@register
class TRADES(_AttackTerm):
    """TRADES: ``CE(f(x), y) + beta * (1/B) sum_i KL(p(x_i) || p(x'_i))``.

    ``x'`` from sign-PGD ascending that KL from ``x + 0.001 N(0, 1)``; the gradient of the
    training KL flows through both arguments.

    Parameters
    ----------
    beta : float
        6 for CIFAR, 1 for MNIST (default 6).
    attack : attack, optional
        Default ``PGD(eps=8/255, step_size=0.007, steps=10, random_start="normal_small")``;
        its ``loss`` is set by ``trades_attack``.
    trades_attack : {"kl", "ce"}
        The inner maximisation: KL to the clean prediction (TRADES), or CE (ANCRA's code).

    Logs ``trades``, ``ce_clean``, ``kl`` (unweighted), ``acc_clean``, ``acc_adv``.
    """

    name = "trades"
    options = {"beta": 6.0, "trades_attack": "kl"}
    fixed_attack_fields = ("loss",)

    def __init__(self, *, beta: float = 6.0, attack=None, trades_attack: str = "kl"):
        super().__init__()
        self.beta = check_nonnegative(beta, "beta")
        self.trades_attack = check_choice(trades_attack, "trades_attack", ["kl", "ce"])
        self._set_attack(attack)
        if dataclasses.is_dataclass(self.attack) and hasattr(self.attack, "loss"):
            self.attack = dataclasses.replace(self.attack, loss=self.trades_attack)

    def default_attack(self):
        return _pgd(eps=_CIFAR_EPS, step_size=0.007, steps=10, random_start="normal_small",
                    loss=getattr(self, "trades_attack", "kl"))

    def compute(self, ctx):
        clean = ctx.clean()["logits"]
        adv = ctx.adv(self.attack)["logits"]
        ce = F.cross_entropy(clean, ctx.y)
        kl = trades_kl(clean, adv)
        loss = ce + self.beta * kl
        return loss, {self.name: loss, "ce_clean": ce, "kl": kl,
                      "acc_clean": _accuracy(clean, ctx.y), "acc_adv": _accuracy(adv, ctx.y)}


@register
class MART(_AttackTerm):
    """MART (Wang et al. 2020), see :func:`mart_loss`; ``x'`` from PGD on CE.

    Parameters
    ----------
    beta : float
        Weight of the misclassification-aware KL (default 6; the paper uses 5-6).
    attack : attack, optional
        Default ``PGD(eps=8/255, step_size=0.007, steps=10, random_start="normal_small")``.
    """

    name = "mart"
    options = {"beta": 6.0}

    def __init__(self, *, beta: float = 6.0, attack=None):
        super().__init__()
        self.beta = check_nonnegative(beta, "beta")
        self._set_attack(attack)

    def default_attack(self):
        return _pgd(eps=_CIFAR_EPS, step_size=0.007, steps=10, random_start="normal_small")

    def compute(self, ctx):
        clean = ctx.clean()["logits"]
        adv = ctx.adv(self.attack)["logits"]
        loss, parts = mart_loss(clean, adv, ctx.y, self.beta)
        return loss, {self.name: loss, **parts, "acc_clean": _accuracy(clean, ctx.y),
                      "acc_adv": _accuracy(adv, ctx.y)}
