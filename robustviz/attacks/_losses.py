"""Attack objectives: per-example losses that an attack ascends.

Every loss here returns one value per example, shape (N,), so that restarts can keep the
worst point per example. ``FeatureLoss`` wraps a user function of intermediate features.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["cross_entropy", "cw_margin", "kl_to_clean", "FeatureLoss", "LOSSES"]

LOSSES = ("ce", "kl", "cw")


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy ``-log softmax(logits)[y]``.

    Shape
    -----
    ``logits``: (N, K); ``y``: (N,); returns (N,).
    """
    return F.cross_entropy(logits, y, reduction="none")


def cw_margin(logits: torch.Tensor, y: torch.Tensor, kappa: float = math.inf) -> torch.Tensor:
    """Carlini-Wagner margin to ascend: ``min(max_{j != y} f_j - f_y, kappa)``.

    Positive exactly when the example is misclassified. ``kappa`` caps the margin (the
    confidence of C&W 2017; ``inf`` leaves it uncapped, the usual choice inside PGD).

    Shape
    -----
    ``logits``: (N, K); ``y``: (N,); returns (N,).

    References
    ----------
    Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017.
    """
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    margin = other - true
    return margin if math.isinf(kappa) else margin.clamp(max=kappa)


def kl_to_clean(logits: torch.Tensor, p_clean: torch.Tensor) -> torch.Tensor:
    """Per-example ``KL(p_clean || softmax(logits))`` (the TRADES inner maximisation).

    Shape
    -----
    ``logits``: (N, K); ``p_clean``: (N, K) probabilities of the clean input; returns (N,).
    """
    return F.kl_div(F.log_softmax(logits, dim=1), p_clean, reduction="none").sum(1)


@dataclasses.dataclass(frozen=True)
class FeatureLoss:
    """A loss on intermediate features, for ``PGD(loss=FeatureLoss(...))``.

    The attack taps ``layers`` of the model with :class:`robustviz.models.Features` and
    ascends ``fn(feats, y)``; ``feats`` maps each layer name to its tensor for the current
    adversarial batch (``"logits"`` is the model output). With ``with_clean=True`` the
    features of the clean input are computed once, without gradient, at the start of the
    attack and passed as a third argument: ``fn(feats, y, clean_feats)``.

    ``fn`` returns a per-example loss of shape (N,) (needed for ``restarts > 1``) or a
    scalar. Label-free attacks (contrastive pretraining) may pass any integer ``y``; it is
    only handed to ``fn``. Early stopping is not available (there is no notion of
    "fooled").

    Parameters
    ----------
    fn : callable
        ``fn(feats: dict[str, Tensor], y: Tensor[, clean: dict[str, Tensor]]) -> Tensor``.
    layers : sequence of str
        Tap names (see ``model.layer_names``), default ``("penultimate",)``.
    with_clean : bool
        Also pass the clean features.

    Examples
    --------
    Push the penultimate features of x' away from those of x (cosine distance):

    >>> def away(feats, y, clean):
    ...     z, z0 = feats["penultimate"], clean["penultimate"]
    ...     return 1 - torch.nn.functional.cosine_similarity(z, z0, dim=1)
    >>> atk = PGD(eps=0.1, steps=10, loss=FeatureLoss(away, with_clean=True),
    ...           random_start="normal_small")
    """

    fn: Callable
    layers: Sequence[str] = ("penultimate",)
    with_clean: bool = False

    def __post_init__(self):
        if not callable(self.fn):
            raise TypeError(f"FeatureLoss fn must be callable, got {type(self.fn).__name__}")
        layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)
        if not layers or not all(isinstance(l, str) for l in layers):
            raise ValueError(f"FeatureLoss layers must be a non-empty sequence of layer names, "
                             f"got {self.layers!r}")
        object.__setattr__(self, "layers", layers)
        if not isinstance(self.with_clean, bool):
            raise TypeError(f"FeatureLoss with_clean must be a bool, got {self.with_clean!r}")
