"""Training for certificates: Gaussian data augmentation (the base classifier of randomized
smoothing) and interval bound propagation training.

References
----------
Cohen, Rosenfeld & Kolter, "Certified Adversarial Robustness via Randomized Smoothing",
ICML 2019 (Gaussian data augmentation: train the base classifier on ``x + sigma * noise``
with the sigma the smoothed classifier will use).
Gowal et al., "On the Effectiveness of Interval Bound Propagation for Training Verifiably
Robust Models", arXiv:1810.12715, 2018 (IBP training: a mix of the clean cross-entropy and
the cross-entropy of the worst-case logits over the Linf box, with eps and the mix ramped).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from robustviz._validate import _check_real, check_int, check_nonnegative, check_positive
from robustviz.defenses._base import Term, register, unwrap_model

__all__ = ["GaussianAugment", "IBPTraining", "ibp_worst_logits"]


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.detach().argmax(1) == y).float().mean()


@register
class GaussianAugment(Term):
    """Gaussian data augmentation (Cohen et al., ICML 2019): ``CE(f(x + sigma * n), y)``,
    ``n ~ N(0, I)`` drawn from the step's generator, one draw per pixel and step.

    The base classifier of :class:`robustviz.certify.Smooth` certifies an L2 radius only as
    far as it classifies noisy images well; training it under the same ``sigma`` is the
    paper's recipe. The noisy image is not clipped to [0, 1] (as in the paper and in
    :class:`~robustviz.certify.Smooth`). ``sigma = 0`` is natural training.

    Parameters
    ----------
    sigma : float
        Standard deviation of the noise in pixel units (>= 0; the paper's 0.12, 0.25, 0.5 and
        1.0 on CIFAR-10 and ImageNet).

    Logs ``gaussian_aug`` (the term) and ``acc_noisy``. Compose with a clean term to keep
    clean accuracy: ``NAT() + GaussianAugment(sigma=0.25)``.
    """

    name = "gaussian_aug"
    options = {"sigma": 0.25}

    def __init__(self, *, sigma: float = 0.25):
        super().__init__()
        self.sigma = check_nonnegative(sigma, "sigma")

    def noisy(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """``x + sigma * n`` with ``n`` drawn from ``generator`` (on its device, then moved
        to ``x``'s). Shape: that of ``x``."""
        if self.sigma == 0:
            return x
        dev = generator.device if generator is not None else x.device
        noise = torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype)
        return x + self.sigma * noise.to(x.device)

    def compute(self, ctx):
        logits = ctx.forward(self.noisy(ctx.x, ctx.generator), ctx.y, layers=())["logits"]
        ce = F.cross_entropy(logits, ctx.y)
        return ce, {self.name: ce, "acc_noisy": _accuracy(logits, ctx.y)}


def _chain_layers(model, x):
    from robustviz._utils import model_mode
    from robustviz.certify import chain

    with model_mode(model, "eval"):
        layers = chain(model, x.detach())
    bn = [type(m).__name__ for m in layers if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    if bn:
        raise ValueError(f"IBP training bounds each layer with fixed weights; {', '.join(bn)} "
                         f"normalises by the batch in training mode: use a model without "
                         f"batch norm (TinyCNN)")
    return layers


def ibp_worst_logits(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, layers=None) -> torch.Tensor:
    """The worst-case logits of IBP training (Gowal et al. 2018): ``z_j`` is an upper bound
    of ``f_j(x') - f_y(x')`` over the Linf box of radius ``eps`` around ``x`` (clipped to
    [0, 1]), ``z_y = 0``. Differentiable in the model's weights.

    The specification ``f_j - f_y`` is folded into the last linear layer before its bound is
    taken (the paper's elision), which is tighter than bounding the logits first.

    Shape
    -----
    ``x``: (N, C, H, W); ``y``: (N,); returns (N, K).
    """
    from robustviz.certify.bounds import _box, _ibp_all

    check_nonnegative(eps, "eps")
    layers = _chain_layers(model, x) if layers is None else layers
    last = layers[-1]
    if not isinstance(last, torch.nn.Linear):
        raise ValueError(f"IBP training needs a model whose last layer is nn.Linear, got "
                         f"{type(last).__name__}")
    lo, hi = _box(x, eps)
    lo, hi = _ibp_all(layers[:-1], lo, hi)[-1]
    mid, rad = (hi + lo) / 2, (hi - lo) / 2
    w, b = last.weight, last.bias
    # rows w_j - w_y: the margin f_j - f_y as one linear map of the last hidden layer
    dw = w.unsqueeze(0) - w[y].unsqueeze(1)                        # (N, K, H)
    upper = torch.einsum("nkh,nh->nk", dw, mid) + torch.einsum("nkh,nh->nk", dw.abs(), rad)
    if b is not None:
        upper = upper + (b.unsqueeze(0) - b[y].unsqueeze(1))
    return upper


@register
class IBPTraining(Term):
    """Interval bound propagation training (Gowal et al. 2018):
    ``kappa_t CE(f(x), y) + (1 - kappa_t) CE(z(x, eps_t), y)`` with ``z`` the worst-case
    logits of :func:`ibp_worst_logits`.

    The schedule counts the term's training steps (calls with the model in training mode,
    a buffer saved with the defense, so a resumed run continues it): for ``warmup_steps``
    steps ``eps_t = 0`` and ``kappa_t = 1`` (natural training); over the next
    ``ramp_steps`` steps ``eps_t`` rises linearly to ``eps`` and ``kappa_t`` falls linearly
    to ``kappa``; then both stay. The paper trains at a larger ``eps`` than it certifies
    (1.1 to 1.5 times on CIFAR-10).

    Parameters
    ----------
    eps : float
        Linf radius in pixel units at the end of the ramp.
    kappa : float
        Final weight of the clean cross-entropy, in [0, 1] (the paper's 0.5).
    warmup_steps, ramp_steps : int

    Logs ``ibp`` (the term), ``ce_clean``, ``ce_ibp``, ``ibp_eps``, ``ibp_kappa``,
    ``acc_clean`` and ``acc_verified`` (the fraction with every worst-case logit below 0:
    certified at ``eps_t`` by IBP).
    """

    name = "ibp"
    options = {"eps": 0.1, "kappa": 0.5, "warmup_steps": 0, "ramp_steps": 1000}

    def __init__(self, *, eps: float = 0.1, kappa: float = 0.5, warmup_steps: int = 0,
                 ramp_steps: int = 1000):
        super().__init__()
        self.eps = check_nonnegative(eps, "eps", upper=1.0)
        self.kappa = check_nonnegative(kappa, "kappa", upper=1.0)
        self.warmup_steps = check_int(warmup_steps, "warmup_steps")
        self.ramp_steps = check_int(ramp_steps, "ramp_steps")
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self._layers = None

    def schedule(self, step: int) -> tuple[float, float]:
        """``(eps_t, kappa_t)`` at training step ``step`` (0-based)."""
        _check_real(step, "step")
        if self.ramp_steps == 0:
            t = 1.0 if step >= self.warmup_steps else 0.0
        else:
            t = min(max((step - self.warmup_steps) / self.ramp_steps, 0.0), 1.0)
        return t * self.eps, 1.0 - t * (1.0 - self.kappa)

    def compute(self, ctx):
        model = unwrap_model(ctx.model)
        training = model.training
        eps_t, kappa_t = self.schedule(int(self.steps_done))
        if self._layers is None or self._layers[0] is not model:
            self._layers = (model, _chain_layers(model, ctx.x))
        clean = ctx.clean()["logits"]
        ce = F.cross_entropy(clean, ctx.y)
        worst = ibp_worst_logits(model, ctx.x, ctx.y, eps_t, layers=self._layers[1])
        ce_ibp = F.cross_entropy(worst, ctx.y)
        loss = kappa_t * ce + (1 - kappa_t) * ce_ibp
        if training:
            self.steps_done += 1
        verified = (worst.detach().scatter(1, ctx.y[:, None], -math.inf) < 0).all(1)
        return loss, {self.name: loss, "ce_clean": ce, "ce_ibp": ce_ibp, "ibp_eps": eps_t,
                      "ibp_kappa": kappa_t, "acc_clean": _accuracy(clean, ctx.y),
                      "acc_verified": verified.float().mean()}
