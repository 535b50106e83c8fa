"""One validation layer for every public entry point.

Each check raises a single ``ValueError`` or ``TypeError`` that names the argument and
what was expected, before any heavy work starts.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Iterable, Sequence

import torch

__all__ = [
    "check_images",
    "check_labels",
    "check_batch",
    "check_positive",
    "check_nonnegative",
    "check_int",
    "check_choice",
    "check_layers",
    "check_nonempty",
    "check_probability",
    "check_model_dtype",
]


def check_images(x, name: str = "x", *, channels: int | None = None,
                 size: tuple[int, int] | None = None) -> torch.Tensor:
    """Images must be a finite floating tensor of shape (N, C, H, W) with values in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of images, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor in [0, 1], got dtype {x.dtype}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (batch of 0 images)")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channel(s) for this model, got {x.shape[1]} "
                         f"(shape {tuple(x.shape)})")
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        raise ValueError(f"{name} must be {size[0]}x{size[1]} images for this model, "
                         f"got {x.shape[-2]}x{x.shape[-1]}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must hold pixels in [0, 1] (normalisation is the model's first "
                         f"layer), got values in [{lo:.4g}, {hi:.4g}]")
    return x


def check_model_dtype(x: torch.Tensor, model, name: str = "x") -> torch.Tensor:
    """Images must have the dtype of the model's floating parameters: float64 images into a
    float32 model would otherwise fail deep inside torch."""
    params = getattr(model, "parameters", None)
    dtype = next((p.dtype for p in params() if p.is_floating_point()), None) if callable(params) else None
    if dtype is not None and isinstance(x, torch.Tensor) and x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but the model's parameters are {dtype}; convert the "
                        f"images first ({name}.to({dtype})) or the model (model.to({x.dtype}))")
    return x


def check_labels(y, n: int, name: str = "y", *, num_classes: int | None = None) -> torch.Tensor:
    """Labels must be an integer tensor of length ``n`` with values in [0, num_classes)."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer labels, got {type(y).__name__}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match the batch, got {tuple(y.shape)}")
    if n and int(y.min()) < 0:
        raise ValueError(f"{name} has negative labels (min {int(y.min())})")
    if num_classes is not None and n and int(y.max()) >= num_classes:
        raise ValueError(f"{name} has label {int(y.max())} but the model has only "
                         f"{num_classes} classes (expected labels in [0, {num_classes - 1}])")
    return y


def check_batch(x, y, *, channels: int | None = None, size=None,
                num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and their labels together."""
    check_images(x, "x", channels=channels, size=size)
    check_labels(y, x.shape[0], "y", num_classes=num_classes)
    return x, y


def _check_real(value, name):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def check_positive(value, name: str, *, upper: float | None = None) -> float:
    """A finite number > 0 (and <= upper when given)."""
    v = _check_real(value, name)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if upper is not None and v > upper:
        raise ValueError(f"{name} must be <= {upper}, got {value!r}")
    return v


def check_nonnegative(value, name: str, *, upper: float | None = None) -> float:
    """A finite number >= 0 (and <= upper when given)."""
    v = _check_real(value, name)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    if upper is not None and v > upper:
        raise ValueError(f"{name} must be <= {upper}, got {value!r}")
    return v


def check_probability(value, name: str) -> float:
    """A number in [0, 1]."""
    return check_nonnegative(value, name, upper=1.0)


def check_int(value, name: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer (not bool) in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if v < minimum or (maximum is not None and v > maximum):
        rng = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {rng}, got {v}")
    return v


def check_choice(value, name: str, choices: Iterable) -> object:
    """One of a fixed set of options."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_layers(layers: Sequence[str] | str, valid: Sequence[str], name: str = "layers") -> list[str]:
    """Layer names that exist; the error lists the valid ones."""
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise ValueError(f"{name} must name at least one layer; valid names: {list(valid)}")
    bad = [l for l in layers if l not in valid]
    if bad:
        raise ValueError(f"unknown layer name(s) {bad} in {name}; valid names: {list(valid)}")
    return layers


def check_nonempty(data, name: str = "dataset"):
    """A dataset or tensor with at least one item."""
    try:
        n = len(data)
    except TypeError:
        raise TypeError(f"{name} must be a sized collection (a Dataset or tensor), "
                        f"got {type(data).__name__}") from None
    if n == 0:
        raise ValueError(f"{name} is empty")
    return data
