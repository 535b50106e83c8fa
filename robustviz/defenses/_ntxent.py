"""Multi-view NT-Xent (SimCLR's normalised-temperature cross-entropy) as one use of the
supervised contrastive loss: instance identities play the part of the class labels.

For ``V`` views of ``B`` images stacked into ``M = V * B`` rows, anchor ``i`` has as
positives the other views of the same image and as denominator every other row:

``L = (1/M) sum_i -(1/|P_i|) sum_{p in P_i} log( exp(s_ip / tau) / sum_{a != i} exp(s_ia / tau) )``

with ``s`` the cosine similarity. With two views this is exactly the NT-Xent of Chen et al.
(2020); with more views it is the multi-view form AdvCL uses. The computation is
:func:`robustviz.defenses.supcon_loss` (one implementation shared with paper 001's SupCon).

References
----------
Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations"
(SimCLR), ICML 2020.
Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020.
Fan et al., "When Does Contrastive Learning Preserve Adversarial Robustness from
Pretraining to Finetuning?" (AdvCL), NeurIPS 2021.
"""
from __future__ import annotations

from typing import Sequence

import torch

from robustviz._validate import check_positive
from robustviz.defenses._supcon import supcon_loss

__all__ = ["nt_xent", "contrastive_masks"]


def contrastive_masks(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive (same id, not self) and negative (different id) masks of ``M`` rows.

    ``ids`` are instance indices (NT-Xent) or class labels (SupCon, Global selection).

    Shape
    -----
    ``ids``: ``(M,)``; returns two ``(M, M)`` bool tensors.
    """
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1:
        raise TypeError("ids must be a 1-D tensor")
    same = ids[:, None] == ids[None, :]
    eye = torch.eye(ids.shape[0], dtype=torch.bool, device=ids.device)
    return same & ~eye, ~same


def nt_xent(views: torch.Tensor | Sequence[torch.Tensor], *, tau: float = 0.5,
            ids: torch.Tensor | None = None, base_tau: float | None = None) -> torch.Tensor:
    """Multi-view NT-Xent with cosine similarity and temperature ``tau``.

    Parameters
    ----------
    views : Tensor ``(V, B, D)`` or sequence of ``V`` tensors ``(B, D)``
        Embeddings; row ``b`` of every view comes from image ``b``.
    tau : float
        Temperature (SimCLR and AdvCL: 0.5).
    ids : Tensor ``(B,)``, optional
        Identities of the ``B`` images: default ``arange(B)`` (each image its own class:
        NT-Xent). Class labels here turn it into SupCon over the views (same class =
        positive).
    base_tau : float, optional
        Multiply the loss by ``tau / base_tau``. ``None`` (default) is the papers'
        formula. AdvCL's released code computes its NT-Xent with a SupCon implementation
        whose base temperature 0.07 rescales the loss by 0.5 / 0.07 (about 7.1): give
        ``base_tau=0.07`` to reproduce that weighting against the other terms.

    Returns
    -------
    Tensor
        Scalar; invariant to the scale of each embedding (cosine similarity).

    Shape
    -----
    ``views``: ``(V, B, D)``; returns ``()``.
    """
    z = torch.stack(list(views)) if not isinstance(views, torch.Tensor) else views
    if z.dim() != 3 or z.shape[0] < 2:
        raise ValueError(f"views must have shape (V >= 2, B, D), got {tuple(z.shape)}")
    tau = check_positive(tau, "tau")
    v, b, d = z.shape
    if ids is None:
        ids = torch.arange(b, device=z.device)
    elif ids.shape != (b,):
        raise ValueError(f"ids must have shape ({b},), got {tuple(ids.shape)}")
    pos, neg = contrastive_masks(ids.repeat(v))
    loss = supcon_loss(z.reshape(v * b, d), pos, neg, tau=tau, similarity="cosine")
    if base_tau is not None:
        loss = loss * (tau / check_positive(base_tau, "base_tau"))
    return loss
