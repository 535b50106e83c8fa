"""Checks of a model's outputs before they are reported."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["check_finite_logits"]


@torch.no_grad()
def check_finite_logits(model: nn.Module, x: torch.Tensor, *, name: str, batch_size: int = 256) -> None:
    """Raise a ``ValueError`` naming the model when its logits on ``x`` hold NaN or inf.

    A model with NaN weights predicts class 0 for every input and scores chance accuracy
    (10% on ten balanced classes) without any error: such a number is not a result.

    Parameters
    ----------
    model : nn.Module
    x : Tensor
        A few inputs (the first ``batch_size`` are used).
    name : str
        What the error calls the model (its run directory).

    Shape
    -----
    x : (N, C, H, W)
    """
    from robustviz._utils import model_mode

    with model_mode(model, "eval"):
        dev = next((p.device for p in model.parameters()), x.device)
        logits = model(x[:batch_size].to(dev))
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    if not torch.isfinite(logits).all():
        bad = int((~torch.isfinite(logits)).any(1).sum()) if logits.dim() > 1 else -1
        raise ValueError(f"model {name} gives NaN or infinite logits ({bad} of {len(logits)} "
                         f"inputs checked): its weights are broken (training diverged?), so its "
                         f"accuracy would not be a result")
