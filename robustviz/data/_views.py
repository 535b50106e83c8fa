"""Views for contrastive pretraining, as batched tensor operations on the batch's device.

- :func:`simclr_augment`: the SimCLR augmentation (random resized crop, horizontal flip,
  colour jitter, random grayscale) drawn independently per image.
- :func:`frequency_split`, :func:`high_frequency`, :func:`low_frequency`: the high- and
  low-frequency components of an image by a hard threshold on the centred 2-D spectrum
  (AdvCL's HFC/LFC views).
- :func:`match_images`: resize and re-channel a data set for a transferred encoder.

One-channel images: brightness and contrast jitter apply; saturation, hue and grayscale
act on colour only and leave a one-channel image unchanged (a grayscale image is its own
grayscale version, and has no saturation or hue to shift).

References
----------
Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations"
(SimCLR), ICML 2020.
Fan et al., "When Does Contrastive Learning Preserve Adversarial Robustness from
Pretraining to Finetuning?" (AdvCL), NeurIPS 2021.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from robustviz._validate import check_images, check_int, check_nonnegative, check_probability
from robustviz.data._augment import as_generator

__all__ = ["simclr_augment", "frequency_split", "high_frequency", "low_frequency", "match_images"]

_GRAY = (0.299, 0.587, 0.114)


def _rand(n: int, generator: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device).to(device)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luma ``(N, 1, H, W)`` of RGB images (the images themselves for one channel)."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _resized_crop(x: torch.Tensor, scale: tuple[float, float], ratio: tuple[float, float],
                  generator: torch.Generator) -> torch.Tensor:
    """Per-image random crop of area fraction in ``scale`` and aspect ratio in ``ratio``,
    resized back to the full size (bilinear), by one ``grid_sample``."""
    n = x.shape[0]
    dev = x.device
    area = scale[0] + (scale[1] - scale[0]) * _rand(n, generator, dev)
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * _rand(n, generator, dev)
    r = torch.exp(log_r)
    # fractions of the side lengths; clipped to the image (torchvision retries, we clip)
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (1 - w) * (2 * _rand(n, generator, dev) - 1)   # centre offset in [-1 + w, 1 - w]
    cy = (1 - h) * (2 * _rand(n, generator, dev) - 1)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = w, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``factor * a + (1 - factor) * b`` clipped to [0, 1] (torchvision's blend)."""
    f = factor.view(-1, 1, 1, 1)
    return (f * a + (1 - f) * b).clamp(0, 1)


def _hue_shift(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the chroma of RGB images by ``2 pi shift`` in YIQ space (a smooth hue shift)."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          dtype=x.dtype, device=x.device)
    from_yiq = torch.linalg.inv(to_yiq)
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, x)
    ang = 2 * math.pi * shift.view(-1, 1, 1)
    c, s = torch.cos(ang), torch.sin(ang)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], c * i - s * q, s * i + c * q], 1)
    return torch.einsum("ij,njhw->nihw", from_yiq, yiq).clamp(0, 1)


def _jitter(x: torch.Tensor, strength: tuple[float, float, float, float],
            generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation, hue in a random order per batch (torchvision draws
    the order per image; one order per batch keeps it a few tensor ops)."""
    n, dev = x.shape[0], x.device
    b, c, s, h = strength
    order = torch.randperm(4, generator=generator, device=generator.device).tolist()
    for k in order:
        if k == 0 and b > 0:
            x = (x * (1 - b + 2 * b * _rand(n, generator, dev)).view(-1, 1, 1, 1)).clamp(0, 1)
        elif k == 1 and c > 0:
            mean = _gray(x).mean((1, 2, 3), keepdim=True)
            x = _blend(x, mean.expand_as(x), 1 - c + 2 * c * _rand(n, generator, dev))
        elif k == 2 and s > 0 and x.shape[1] == 3:
            x = _blend(x, _gray(x).expand_as(x), 1 - s + 2 * s * _rand(n, generator, dev))
        elif k == 3 and h > 0 and x.shape[1] == 3:
            x = _hue_shift(x, (2 * _rand(n, generator, dev) - 1) * h)
    return x


def simclr_augment(x: torch.Tensor, *, generator, crop_scale=(0.2, 1.0), crop_ratio=(3 / 4, 4 / 3),
                   flip: float = 0.5, jitter=(0.4, 0.4, 0.4, 0.1), jitter_p: float = 0.8,
                   gray_p: float = 0.2) -> torch.Tensor:
    """SimCLR augmentation of a batch, drawn independently per image.

    Random resized crop (area fraction in ``crop_scale``, aspect ratio in ``crop_ratio``,
    bilinear resize back to ``H x W``), horizontal flip with probability ``flip``, colour
    jitter ``(brightness, contrast, saturation, hue)`` applied with probability
    ``jitter_p``, and grayscale with probability ``gray_p``. AdvCL's CIFAR setting is the
    default: crop scale (0.2, 1), jitter (0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale p 0.2.

    On one-channel images saturation, hue and grayscale do nothing (see the module notes);
    brightness and contrast apply.

    Parameters
    ----------
    x : Tensor
        Images in [0, 1].
    generator : torch.Generator or int
        Source of every random draw (on the generator's device, moved to ``x``'s), so the
        same seed gives the same views on CPU and GPU.
    crop_scale, crop_ratio : tuple of float
    flip, jitter_p, gray_p : float
        Probabilities.
    jitter : tuple of 4 floats
        Strengths; 0 switches one off.

    Returns
    -------
    Tensor
        Augmented images in [0, 1], same shape, dtype and device as ``x``.

    Shape
    -----
    ``x``: (N, C, H, W) -> (N, C, H, W).

    References
    ----------
    Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
    ICML 2020.
    """
    check_images(x, "x")
    generator = as_generator(generator)
    lo, hi = (float(v) for v in crop_scale)
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale!r}")
    rlo, rhi = (float(v) for v in crop_ratio)
    if not 0 < rlo <= rhi:
        raise ValueError(f"crop_ratio must satisfy 0 < low <= high, got {crop_ratio!r}")
    flip, jitter_p, gray_p = (check_probability(v, n) for v, n in
                              ((flip, "flip"), (jitter_p, "jitter_p"), (gray_p, "gray_p")))
    if len(tuple(jitter)) != 4:
        raise ValueError(f"jitter must be (brightness, contrast, saturation, hue), got {jitter!r}")
    jitter = tuple(check_nonnegative(v, "jitter") for v in jitter)
    if jitter[3] > 0.5:
        raise ValueError(f"hue jitter must be <= 0.5, got {jitter[3]}")
    n, dev = x.shape[0], x.device
    out = _resized_crop(x, (lo, hi), (rlo, rhi), generator)
    do_flip = _rand(n, generator, dev) < flip
    out = torch.where(do_flip.view(-1, 1, 1, 1), out.flip(-1), out)
    if jitter_p > 0 and any(jitter):
        do = (_rand(n, generator, dev) < jitter_p).view(-1, 1, 1, 1)
        out = torch.where(do, _jitter(out, jitter, generator), out)
    if gray_p > 0 and x.shape[1] == 3:
        do = (_rand(n, generator, dev) < gray_p).view(-1, 1, 1, 1)
        out = torch.where(do, _gray(out).expand_as(out), out)
    return out.clamp(0, 1).to(x.dtype).contiguous()


def _high_mask(h: int, w: int, radius: float, device) -> torch.Tensor:
    """True where the centred (``fftshift``-ed) frequency is at distance >= ``radius``."""
    cy, cx = h // 2, w // 2
    yy = torch.arange(h, device=device).view(-1, 1) - cy
    xx = torch.arange(w, device=device).view(1, -1) - cx
    return (yy ** 2 + xx ** 2).double().sqrt() >= radius


def frequency_split(x: torch.Tensor, radius: float = 8.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Low- and high-frequency components of each channel (AdvCL's LFC and HFC).

    ``F = fftshift(fft2(x))`` per channel; the HFC keeps the frequencies at distance
    ``>= radius`` from the centre (hard threshold), the LFC the others, and each goes back
    by ``real(ifft2(ifftshift(.)))``. The two sum to ``x`` (up to float rounding); they are
    not clipped, so they may leave [0, 1] (the HFC has mean near 0). Feed
    ``x_hfc.clamp(0, 1)`` to a model that checks its input range.

    Parameters
    ----------
    x : Tensor
        Images.
    radius : float
        The threshold ``r`` in frequency-index units (AdvCL: 8 on 32x32 images).

    Returns
    -------
    lfc, hfc : Tensor
        Same shape, dtype and device as ``x``.

    Shape
    -----
    ``x``: (N, C, H, W); each output (N, C, H, W).

    References
    ----------
    Fan et al., "When Does Contrastive Learning Preserve Adversarial Robustness from
    Pretraining to Finetuning?", NeurIPS 2021 (Section 4, high-frequency view).
    Wang et al., "High-frequency Component Helps Explain the Generalization of
    Convolutional Neural Networks", CVPR 2020.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise TypeError("x must be a floating tensor of shape (N, C, H, W)")
    radius = check_nonnegative(radius, "radius")
    h, w = x.shape[-2:]
    spec = torch.fft.fftshift(torch.fft.fft2(x.double()), dim=(-2, -1))
    high = _high_mask(h, w, radius, x.device)
    hfc = torch.fft.ifft2(torch.fft.ifftshift(spec * high, dim=(-2, -1))).real
    lfc = torch.fft.ifft2(torch.fft.ifftshift(spec * ~high, dim=(-2, -1))).real
    return lfc.to(x.dtype), hfc.to(x.dtype)


def high_frequency(x: torch.Tensor, radius: float = 8.0) -> torch.Tensor:
    """The HFC of :func:`frequency_split` (not clipped). Shape (N, C, H, W)."""
    return frequency_split(x, radius)[1]


def low_frequency(x: torch.Tensor, radius: float = 8.0) -> torch.Tensor:
    """The LFC of :func:`frequency_split` (not clipped). Shape (N, C, H, W)."""
    return frequency_split(x, radius)[0]


def match_images(dataset, *, channels: int, size: tuple[int, int] | None):
    """The data set with its images re-channelled and resized for another encoder
    (cross-dataset transfer: digits 8x8 <-> Fashion-MNIST 28x28, STL-10 96x96 -> 32x32).

    One channel to three repeats the channel; three to one takes the luma. Resizing is
    bilinear with antialiasing. ``mean``/``std`` are recomputed from the new images. The
    data set itself is returned when nothing changes.

    Shape
    -----
    ``dataset.x``: (N, C, H, W) -> (N, channels, *size).
    """
    from robustviz.data._dataset import Dataset

    check_int(channels, "channels", minimum=1)
    x = dataset.x
    c = x.shape[1]
    if c != channels:
        if c == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif c == 3 and channels == 1:
            x = _gray(x)
        else:
            raise ValueError(f"cannot map {c}-channel images to {channels} channels")
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True,
                          align_corners=False).clamp(0, 1)
    if x is dataset.x:
        return dataset
    return Dataset(x.contiguous(), dataset.y, list(dataset.classes), name=dataset.name,
                   split=dataset.split, source=dataset.source)
