"""Per-channel input normalisation as the first layer of every model."""
from __future__ import annotations

from numbers import Real
from typing import Sequence

import torch
from torch import nn

from robustviz._validate import check_positive

__all__ = ["Normalize", "channel_stats"]


def channel_stats(values, name: str, channels: int, *, positive: bool = False) -> tuple[float, ...]:
    """Turn a scalar or per-channel sequence into a tuple of ``channels`` floats.

    A scalar (or a length-1 sequence) is repeated over the channels. Raises a
    ``ValueError``/``TypeError`` naming ``name`` on a wrong length or a non-number.
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().flatten().tolist()
    elif hasattr(values, "tolist") and not isinstance(values, Real):  # numpy arrays
        values = values.tolist()
        values = values if isinstance(values, list) else [values]
    if isinstance(values, Real) and not isinstance(values, bool):
        values = [values]
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise TypeError(f"{name} must be a number or a sequence of {channels} numbers, got {values!r}")
    values = list(values)
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise ValueError(f"{name} must have 1 or {channels} value(s) (one per input channel), "
                         f"got {len(values)}")
    out = []
    for i, v in enumerate(values):
        if positive:
            out.append(check_positive(v, f"{name}[{i}]"))
        else:
            if isinstance(v, bool) or not isinstance(v, Real):
                raise TypeError(f"{name}[{i}] must be a number, got {v!r}")
            out.append(float(v))
    return tuple(out)


class Normalize(nn.Module):
    """Subtract a per-channel mean and divide by a per-channel standard deviation.

    Every robustviz model starts with this layer, so the model takes pixels in [0, 1] and
    attacks, budgets (``eps``) and figures all live in pixel space. ``mean`` and ``std`` are
    buffers: they follow ``.to(device)`` and are part of the ``state_dict`` (a checkpoint
    carries its own normalisation).

    Parameters
    ----------
    mean, std : float or sequence of float
        Per-channel statistics (a scalar is used for every channel). ``std`` must be > 0.
    channels : int, optional
        Number of channels; inferred from the longer of ``mean``/``std`` when omitted.

    Shape
    -----
    - Input: ``(N, C, H, W)`` with ``C`` equal to the number of channels.
    - Output: same shape, ``(x - mean[c]) / std[c]`` per channel ``c``.

    References
    ----------
    Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018
    (normalisation inside the model so perturbations are measured in pixel space).
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float], *,
                 channels: int | None = None):
        super().__init__()
        if channels is None:
            lens = [1 if isinstance(v, Real) else len(v) for v in (mean, std)]
            channels = max(lens)
        mean_t = channel_stats(mean, "mean", channels)
        std_t = channel_stats(std, "std", channels, positive=True)
        self.register_buffer("mean", torch.tensor(mean_t, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std_t, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        m = ", ".join(f"{v:.4g}" for v in self.mean.flatten().tolist())
        s = ", ".join(f"{v:.4g}" for v in self.std.flatten().tolist())
        return f"mean=({m}), std=({s})"
