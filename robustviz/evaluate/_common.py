"""Shared plumbing of the evaluation functions: data, seeds, batched accuracy."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import nn

from robustviz._validate import check_images, check_int, check_labels, check_model_dtype, check_nonempty


def as_tensors(data, model: nn.Module | None = None, name: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` from a :class:`robustviz.data.Dataset` (anything with tensor ``x`` and
    ``y``) or a pair of tensors, validated once."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    elif isinstance(getattr(data, "x", None), torch.Tensor) and isinstance(getattr(data, "y", None), torch.Tensor):
        x, y = data.x, data.y
    else:
        raise TypeError(f"{name} must be a robustviz.data.Dataset or a pair (x, y) of tensors, "
                        f"got {type(data).__name__}")
    check_nonempty(x, f"{name}")
    if model is not None and callable(getattr(model, "check_input", None)):
        model.check_input(x, f"{name} images")
    else:
        check_images(x, f"{name} images", channels=getattr(model, "in_channels", None),
                     size=getattr(model, "input_size", None))
    check_labels(y, x.shape[0], f"{name} labels", num_classes=getattr(model, "num_classes", None))
    if model is not None:
        check_model_dtype(x, model, f"{name} images")
    return x, y


def check_model(model, name: str = "model") -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def stream_seed(seed: int, *keys: int) -> int:
    """An independent 63-bit seed for the stream ``(seed, *keys)``."""
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(2, np.uint64)[0] >> 1)


def generator(device: torch.device, seed: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def batches(n: int, batch_size: int) -> Iterator[slice]:
    for i in range(0, n, batch_size):
        yield slice(i, min(i + batch_size, n))


def check_batch_size(batch_size) -> int:
    return check_int(batch_size, "batch_size", minimum=1)


def topk_correct(logits: torch.Tensor, y: torch.Tensor, topk: tuple[int, ...]) -> torch.Tensor:
    """(N, len(topk)) bool: the label is among the k highest logits."""
    kmax = max(topk)
    top = logits.topk(kmax, dim=1).indices
    hit = top == y[:, None]
    return torch.stack([hit[:, :k].any(1) for k in topk], dim=1)


def fmt_pct(v: float) -> str:
    """A fraction as a percentage, the one way robustviz prints them: one decimal
    (n = 1000 test images resolve 0.1 points), padded to 5 characters."""
    return f"{100.0 * v:5.1f}"
