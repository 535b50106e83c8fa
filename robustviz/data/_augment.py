"""Batch augmentation as pure tensor functions (no PIL, no DataLoader workers).

Random numbers are drawn from the generator passed in, on the generator's device, and
then moved to the batch's device, so the same seed gives the same augmented batch on CPU
and on a GPU. Both functions keep shape, dtype and the [0, 1] range (padding is zeros).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from robustviz._validate import check_images, check_int, check_probability

__all__ = ["random_crop", "hflip", "as_generator"]


def as_generator(generator, name: str = "generator") -> torch.Generator:
    """A ``torch.Generator`` as given, or a new CPU one seeded with an int."""
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        seed = check_int(generator, name, minimum=0)
        return torch.Generator().manual_seed(seed)
    raise TypeError(f"{name} must be a torch.Generator or an int seed, got {generator!r} "
                    f"(no global random state is used)")


def _random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator,
                            device=generator.device).to(x.device)
    if padding == 0:
        return x.clone()
    xp = F.pad(x, (padding, padding, padding, padding))
    rows = offsets[:, :1] + torch.arange(h, device=x.device)          # (N, H)
    cols = offsets[:, 1:] + torch.arange(w, device=x.device)          # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = xp[batch, :, rows[:, :, None], cols[:, None, :]]          # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def _hflip(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=generator, device=generator.device).to(x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_crop(x: torch.Tensor, padding: int, *, generator) -> torch.Tensor:
    """Zero-pad each image by ``padding`` pixels and crop back to its size at a random offset.

    Equivalent to translating every image by an independent random shift
    ``(dy, dx)`` in ``[-padding, padding]^2``, filling the uncovered border with 0 (the
    standard CIFAR augmentation ``RandomCrop(32, padding=4)``).

    Parameters
    ----------
    x : torch.Tensor
        Images in [0, 1].
    padding : int
        Border width, >= 0; 0 returns a copy.
    generator : torch.Generator or int
        Source of the offsets (an int seeds a new CPU generator).

    Returns
    -------
    torch.Tensor
        Cropped images, same shape, dtype and device as ``x``.

    Shape
    -----
    x: (N, C, H, W) -> (N, C, H, W)
    """
    check_images(x, "x")
    padding = check_int(padding, "padding", minimum=0)
    return _random_crop(x, padding, as_generator(generator))


def hflip(x: torch.Tensor, *, p: float = 0.5, generator) -> torch.Tensor:
    """Mirror each image left-right with probability ``p`` (independently per image).

    Parameters
    ----------
    x : torch.Tensor
        Images in [0, 1].
    p : float
        Flip probability in [0, 1].
    generator : torch.Generator or int
        Source of the coin flips.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``x``; a flipped image has ``out[..., w] ==
        x[..., W - 1 - w]``.

    Shape
    -----
    x: (N, C, H, W) -> (N, C, H, W)
    """
    check_images(x, "x")
    p = check_probability(p, "p")
    return _hflip(x, p, as_generator(generator))
