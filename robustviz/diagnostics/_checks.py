"""Input checks for feature matrices (private).

Labels, numbers and choices go through :mod:`robustviz._validate`; feature matrices
(which are not images, so ``check_images`` does not apply) are checked here, with the
same one-error-naming-the-argument convention.
"""
from __future__ import annotations

import numpy as np
import torch

from robustviz._validate import check_labels

__all__ = ["as_features", "as_labels", "as_probs"]


def as_features(z, name: str, *, n: int | None = None, like: torch.Tensor | None = None,
                min_rows: int = 1) -> torch.Tensor:
    """Return ``z`` as a finite floating tensor of shape (N, D).

    Accepts a tensor or a NumPy array; (N, ...) inputs with more than two dimensions are
    flattened to (N, D). With ``like``, the result is moved to its device and dtype and
    must have the same shape.
    """
    if isinstance(z, np.ndarray):
        z = torch.from_numpy(np.ascontiguousarray(z))
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array of features, "
                        f"got {type(z).__name__}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must be a floating-point feature matrix, got dtype {z.dtype}")
    if z.dim() < 2:
        raise ValueError(f"{name} must have shape (N, D) (one feature row per example), "
                         f"got shape {tuple(z.shape)}")
    z = z.detach()
    if z.dim() > 2:
        z = z.reshape(z.shape[0], -1)
    if z.shape[0] < min_rows:
        raise ValueError(f"{name} must hold at least {min_rows} rows, got {z.shape[0]}")
    if z.shape[1] == 0:
        raise ValueError(f"{name} has zero feature dimensions (shape {tuple(z.shape)})")
    if n is not None and z.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows to match the other inputs, "
                         f"got shape {tuple(z.shape)}")
    if like is not None:
        if z.shape != like.shape:
            raise ValueError(f"{name} must have the same shape as z_nat {tuple(like.shape)}, "
                             f"got {tuple(z.shape)}")
        z = z.to(device=like.device, dtype=like.dtype)
    if not torch.isfinite(z).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return z


def as_labels(y, n: int, name: str = "y", *, device=None) -> torch.Tensor:
    """Integer labels of length ``n`` (tensor, NumPy array or list), on ``device``."""
    if isinstance(y, (list, tuple)):
        y = np.asarray(y)
    if isinstance(y, np.ndarray):
        y = torch.from_numpy(np.ascontiguousarray(y))
    check_labels(y, n, name)
    y = y.long()
    return y if device is None else y.to(device)


def as_probs(p, n: int, name: str) -> np.ndarray:
    """Class probabilities (N, C): non-negative rows summing to one, as float64 NumPy."""
    if isinstance(p, torch.Tensor):
        p = p.detach().to("cpu", torch.float64).numpy()
    if not isinstance(p, np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array of class "
                        f"probabilities, got {type(p).__name__}")
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n}, num_classes), got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if p.min() < -1e-6 or not np.allclose(p.sum(1), 1.0, atol=1e-3):
        raise ValueError(f"{name} must hold probabilities (rows >= 0 summing to 1); these look "
                         f"like logits: pass logits.softmax(-1)")
    return np.clip(p, 0.0, 1.0)
