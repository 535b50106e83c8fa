"""Paper 000: a contrastive (alignment) loss in embedding space.

``L = CE(f(x'), y) + beta * d_emb(g(x'), g(x))`` with ``g`` a prefix of the network
(``"embedding1"`` .. ``"embedding5"`` of the ResNet-18 taps, or ``"logits"``) and ``x'``
from FGSM or PGD.

The paper's ``g`` is a ResNet-18 with the ImageNet stem, whose Embedding-1 is taken after
conv1-bn1-relu-**maxpool** (``resnet18_imagenet``'s ``embedding1``). The CIFAR ResNet-18
of this package (``resnet18``: a 3x3 stride-1 stem, no max-pool) has no such pooling, so
its ``embedding1`` is after conv1-bn1-relu at full resolution: 4x the spatial positions of
an ImageNet-stem tap on the same input, and a differently scaled distance. Results for
``embedding1`` on ``resnet18`` are therefore not the paper's Embedding-1; Embedding-2..5
follow the same stages in both.

Training setting of the paper: AdamW, lr 1e-5, weight decay 0.1; evaluation under FGSM,
PGD-20 and DeepFool (capped at 20 steps), Top-1/3/5.

References
----------
Zhang, "Contrastive loss in embedding space for adversarial robustness" (course project
report, paper 000 of this project).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from robustviz._validate import check_choice, check_nonnegative
from robustviz.defenses._base import Term, register

__all__ = ["EmbeddingDistance", "embedding_distance"]

LAYERS = ("embedding1", "embedding2", "embedding3", "embedding4", "embedding5", "logits")


def embedding_distance(a: torch.Tensor, b: torch.Tensor, distance: str = "euclidean") -> torch.Tensor:
    """Mean distance between paired embeddings.

    ``"euclidean"`` (paper): ``(1/B) sum_i ||a_i - b_i||_2`` over the flattened rows;
    ``"mse"`` (the released code): the mean over all elements of ``(a - b)^2``.
    Gradient flows into both arguments (zero where ``a_i == b_i``).

    Shape
    -----
    ``a``, ``b``: ``(B, ...)``, same shape; returns a scalar.
    """
    check_choice(distance, "distance", ["euclidean", "mse"])
    if a.shape != b.shape:
        raise ValueError(f"embeddings must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    diff = (a - b).reshape(a.shape[0], -1)
    if distance == "mse":
        return diff.pow(2).mean()
    return torch.linalg.vector_norm(diff, dim=1).mean()


@register
class EmbeddingDistance(Term):
    """Paper 000's loss: ``CE(f(x'), y) + beta * d_emb(g(x'), g(x))``.

    Parameters
    ----------
    layer : str
        ``"embedding1"`` .. ``"embedding5"`` (default 5: after layer4 + average pooling) or
        ``"logits"`` ("Output"). Any tap name of the model is accepted. On the CIFAR
        ``resnet18``, ``embedding1`` has no max-pool (the paper's Embedding-1 does; use
        ``resnet18_imagenet`` for the paper's tap).
    distance : {"euclidean", "mse"}
        Per-example Euclidean distance averaged over the batch (paper), or the mean squared
        difference over all elements (released code).
    beta : float
        Weight of the distance (paper ablation: 0.1 .. 7; default 6).
    attack : attack, optional
        Where ``x'`` comes from (FGSM or PGD). ``None``: the primary adversarial example of
        the defense this term is added to.
    ce : bool
        Include ``CE(f(x'), y)`` (default: the complete paper-000 loss). Set ``False`` to add
        only ``beta * d`` to a defense that already has an adversarial CE.

    Logs ``embedding`` (the term), ``emb_dist`` (unweighted distance) and ``ce_adv``.

    Notes
    -----
    Perturbations live in [0, 1] pixel space; the released code applied epsilon after
    normalisation (its 0.031 is about 2/255 here).
    """

    name = "embedding"
    options = {"layer": "embedding5", "distance": "euclidean", "beta": 6.0, "ce": True}
    attack_mode = "optional"

    def __init__(self, *, layer: str = "embedding5", distance: str = "euclidean", beta: float = 6.0,
                 attack=None, ce: bool = True):
        super().__init__()
        if not isinstance(layer, str):
            raise TypeError(f"layer must be a tap name such as 'embedding5', got {layer!r}")
        self.layer = layer
        self.distance = check_choice(distance, "distance", ["euclidean", "mse"])
        self.beta = check_nonnegative(beta, "beta")
        if attack is not None and not callable(attack):
            raise TypeError(f"attack must be an attack object, got {type(attack).__name__}")
        self.attack = attack
        if not isinstance(ce, bool):
            raise TypeError(f"ce must be True or False, got {ce!r}")
        self.ce = ce

    def layers(self):
        return {"logits", self.layer}

    def compute(self, ctx):
        who = "EmbeddingDistance"
        adv = ctx.adv(self.attack, who=who)
        clean = ctx.clean()
        dist = embedding_distance(adv[self.layer], clean[self.layer], self.distance)
        loss = self.beta * dist
        logs = {"emb_dist": dist}
        if self.ce:
            ce = F.cross_entropy(adv["logits"], ctx.y)
            loss = loss + ce
            logs["ce_adv"] = ce
            logs["acc_adv"] = (adv["logits"].detach().argmax(1) == ctx.y).float().mean()
        return loss, {self.name: loss, **logs}
