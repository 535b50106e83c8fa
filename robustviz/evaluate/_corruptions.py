"""Common corruptions (ImageNet-C / CIFAR-10-C style) for any data set of the package.

The 19 corruption types of Hendrycks & Dietterich (2019) - 15 standard ones and 4 extra
("validation") ones - at 5 severities, computed by the ``imagecorruptions`` package
(Michaelis et al. 2019), which implements them for images of any size. How each type is
applied depends on the images:

- pixel-wise types (noise, brightness, contrast, saturate, JPEG) run at the native size;
- spatial types (blurs, weather, elastic, pixelate) need images of at least 32 x 32: smaller
  images (at least ``min_side``, 16 by default; Fashion-MNIST's 28 x 28) are upsampled to
  32 x 32 (bilinear), corrupted and downsampled back (area averaging); below ``min_side``
  (scikit-learn digits, 8 x 8) they are *skipped*: a 4x upsampling would shrink their spatial
  scale by the same factor;
- 1-channel images are replicated to RGB, corrupted and turned back into one channel with
  the ITU-R BT.601 luma weights; ``saturate`` is skipped for them (a gray image has no
  saturation: the HSV saturation shift would tint it).

Every adaptation and every skip is printed (``verbose=True``) and recorded in the result.
The corruption parameters are the package's (ImageNet-C's); on 32-px images the higher
severities are harsher than the released CIFAR-10-C files, so compare models with one
another (mCE against a baseline model), not with published CIFAR-10-C numbers.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from robustviz._utils import model_device, model_mode
from robustviz._validate import check_images, check_int
from robustviz.evaluate._common import as_tensors, check_batch_size, check_model, fmt_pct

__all__ = ["CORRUPTIONS", "COMMON_CORRUPTIONS", "EXTRA_CORRUPTIONS", "SEVERITIES",
           "CorruptionResult", "corrupt", "corruption_plan", "corruption_accuracy"]

#: The 15 standard corruptions of ImageNet-C / CIFAR-10-C, in the paper's order.
COMMON_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression")
#: The 4 extra (validation) corruptions.
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
CORRUPTIONS = COMMON_CORRUPTIONS + EXTRA_CORRUPTIONS
SEVERITIES = (1, 2, 3, 4, 5)

_PIXELWISE = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "brightness",
              "contrast", "saturate", "jpeg_compression"}
_WORK_SIDE = 32
_LUMA = (0.299, 0.587, 0.114)


def _backend():
    try:
        import imagecorruptions
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "common corruptions need the optional package 'imagecorruptions' "
            "(install it with: pip install 'robustviz[corruptions]', which brings "
            f"imagecorruptions-imaug); import failed: {err}") from err
    return imagecorruptions.corruption_dict


def corruption_plan(shape: Sequence[int], *, min_side: int = 16) -> dict[str, tuple[str, str]]:
    """How each of the 19 types applies to images of ``shape`` ``(C, H, W)``.

    Returns
    -------
    dict
        name -> ``(how, reason)`` with ``how`` one of ``"native"``, ``"resized"``,
        ``"gray"`` (1-channel through RGB and back), ``"resized+gray"`` or ``"skipped"``;
        ``reason`` says why (empty for ``"native"``).
    """
    if len(shape) != 3:
        raise ValueError(f"shape must be (C, H, W), got {tuple(shape)}")
    c, h, w = (int(s) for s in shape)
    if c not in (1, 3):
        raise ValueError(f"common corruptions apply to 1- or 3-channel images, got {c} channels")
    min_side = check_int(min_side, "min_side", minimum=1)
    side = min(h, w)
    plan = {}
    for name in CORRUPTIONS:
        how, why = [], []
        if c == 1 and name == "saturate":
            plan[name] = ("skipped", "1-channel images have no colour saturation to change "
                                     "(the HSV saturation shift would tint a gray image)")
            continue
        if name not in _PIXELWISE and side < _WORK_SIDE:
            if side < min_side:
                plan[name] = ("skipped", f"{h}x{w} images are below min_side={min_side}: upsampling "
                                         f"to {_WORK_SIDE}x{_WORK_SIDE} would shrink this spatial "
                                         f"corruption {_WORK_SIDE / side:.0f}x")
                continue
            how.append("resized")
            why.append(f"spatial corruption defined for images >= {_WORK_SIDE} px: applied at "
                       f"{_WORK_SIDE}x{_WORK_SIDE} (bilinear up, area down)")
        if c == 1:
            how.append("gray")
            why.append("1-channel: replicated to RGB, corrupted, back to luma (BT.601)")
        plan[name] = ("+".join(how) or "native", "; ".join(why))
    return plan


def _seed_for(seed: int, *keys: int) -> int:
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])


def corrupt(x: torch.Tensor, corruption: str, severity: int, *, seed: int = 0,
            min_side: int = 16, offset: int = 0) -> torch.Tensor:
    """Apply one corruption at one severity to a batch of images.

    Parameters
    ----------
    x : Tensor
        Images ``(N, C, H, W)`` in [0, 1], ``C`` 1 or 3 (any device; the work is on the
        CPU, the result comes back on ``x``'s device).
    corruption : str
        One of :data:`CORRUPTIONS`.
    severity : int
        1 to 5.
    seed : int
        Seed of the corruption's randomness; image ``i`` uses its own stream
        ``(seed, type, severity, offset + i)``, so results do not depend on batching.
    min_side : int
        Smallest image side for spatial types (see :func:`corruption_plan`).
    offset : int
        Index of ``x[0]`` in the whole data set (for the per-image streams).

    Returns
    -------
    Tensor
        ``(N, C, H, W)`` float32 in [0, 1] (quantised to 1/255 like the package's output).

    Raises
    ------
    ValueError
        For a type that is skipped for these images, with the reason.

    Shape
    -----
    In and out ``(N, C, H, W)``.

    References
    ----------
    Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions
    and Perturbations", ICLR 2019. Michaelis et al., "Benchmarking Robustness in Object
    Detection: Autonomous Driving when Winter is Coming", 2019 (the imagecorruptions package).
    """
    check_images(x, "x")
    if corruption not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {corruption!r}; choose from {', '.join(CORRUPTIONS)}")
    severity = check_int(severity, "severity", minimum=1, maximum=5)
    offset = check_int(offset, "offset", minimum=0)
    how, reason = corruption_plan(tuple(x.shape[1:]), min_side=min_side)[corruption]
    if how == "skipped":
        raise ValueError(f"{corruption} is skipped for {tuple(x.shape[1:])} images: {reason}")
    fn = _backend()[corruption]
    import inspect

    from PIL import Image

    # impulse_noise and glass_blur draw from their own generators unless given a seed
    takes_seed = "seed" in inspect.signature(fn).parameters

    n, c, h, w = x.shape
    xs = x.detach().float().cpu()
    if "resized" in how:
        xs = F.interpolate(xs, size=(_WORK_SIDE, _WORK_SIDE), mode="bilinear", align_corners=False)
    rgb = xs.expand(-1, 3, -1, -1) if c == 1 else xs
    arr = (rgb.permute(0, 2, 3, 1).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
    kind = CORRUPTIONS.index(corruption)
    out = np.empty(arr.shape, dtype=np.float32)
    saved = np.random.get_state()
    try:
        for i in range(n):
            stream = _seed_for(seed, kind, severity, offset + i)
            np.random.seed(stream)
            kw = {"seed": stream} if takes_seed else {}
            with np.errstate(invalid="ignore", divide="ignore"):
                res = np.asarray(fn(Image.fromarray(arr[i]), severity, **kw), dtype=np.float32)
            if res.ndim == 2:
                res = np.repeat(res[..., None], 3, axis=2)
            bad = ~np.isfinite(res)
            if bad.any():
                # spatter's water mode divides by the largest drop; with no drop on a small
                # image that is 0/0: no drop means the image is unchanged
                res[bad] = arr[i][bad]
            out[i] = np.clip(np.round(res), 0, 255)  # uint8 semantics, as the package's corrupt()
    finally:
        np.random.set_state(saved)
    t = torch.from_numpy(out).permute(0, 3, 1, 2) / 255.0
    if c == 1:
        t = sum(wt * t[:, k:k + 1] for k, wt in enumerate(_LUMA))
    if "resized" in how:
        t = F.interpolate(t, size=(h, w), mode="area")
    return t.clamp(0.0, 1.0).contiguous().to(x.device)


@dataclasses.dataclass(frozen=True)
class CorruptionResult:
    """Accuracy of one or more models per corruption type and severity.

    Attributes
    ----------
    names : tuple of str
        Models.
    corruptions : tuple of str
        The types evaluated (skipped ones excluded).
    severities : tuple of int
    clean : dict
        model -> clean accuracy.
    accuracy : dict
        model -> {corruption -> tuple of accuracies per severity}.
    skipped : dict
        corruption -> reason, for types that cannot apply to these images.
    adapted : dict
        corruption -> how it was adapted (empty when applied as is).
    n : int
    seed : int
    """

    names: tuple
    corruptions: tuple
    severities: tuple
    clean: dict
    accuracy: dict
    skipped: dict
    adapted: dict
    n: int
    seed: int

    def mean_accuracy(self, model: str) -> float:
        """Mean accuracy over every evaluated type and severity."""
        vals = [a for c in self.corruptions for a in self.accuracy[model][c]]
        return float(np.mean(vals)) if vals else math.nan

    def corruption_errors(self, model: str, baseline: str, *, relative: bool = False) -> dict:
        """CE per type: ``sum_s E(model) / sum_s E(baseline)`` (relative: errors minus each
        model's clean error), Hendrycks & Dietterich (2019), eq. for CE and relative CE."""
        for m in (model, baseline):
            if m not in self.accuracy:
                raise ValueError(f"unknown model {m!r}; models: {list(self.names)}")
        out = {}
        for c in self.corruptions:
            em = np.array([1 - a for a in self.accuracy[model][c]])
            eb = np.array([1 - a for a in self.accuracy[baseline][c]])
            if relative:
                em, eb = em - (1 - self.clean[model]), eb - (1 - self.clean[baseline])
            den = eb.sum()
            out[c] = float(em.sum() / den) if den > 0 else math.nan
        return out

    def mce(self, model: str, baseline: str, *, relative: bool = False,
            subset: str = "common") -> float:
        """Mean corruption error over the 15 standard types (``subset="common"``, the
        paper's mCE), the extra ones (``"extra"``) or all evaluated ones (``"all"``); types
        skipped for these images are left out of the mean."""
        pool = {"common": COMMON_CORRUPTIONS, "extra": EXTRA_CORRUPTIONS, "all": CORRUPTIONS}
        if subset not in pool:
            raise ValueError(f"subset must be one of {list(pool)}, got {subset!r}")
        ce = self.corruption_errors(model, baseline, relative=relative)
        vals = [v for c, v in ce.items() if c in pool[subset] and not math.isnan(v)]
        return float(np.mean(vals)) if vals else math.nan

    def table(self, baseline: str | None = None) -> str:
        """Accuracy (%) per type (mean over severities) and per severity; mCE (%) against
        ``baseline`` (default: the first model)."""
        baseline = baseline or self.names[0]
        w = max(18, *(len(c) for c in self.corruptions))
        cw = max(8, *(len(s) for s in self.names))
        head = "corruption".ljust(w) + "".join(s.rjust(cw + 2) for s in self.names)
        lines = [f"common corruptions: accuracy (%) on {self.n} examples, mean over severities "
                 f"{list(self.severities)}", head]
        lines.append("clean".ljust(w) + "".join(fmt_pct(self.clean[s]).rjust(cw + 2) for s in self.names))
        for c in self.corruptions:
            lines.append(c.ljust(w) + "".join(
                fmt_pct(float(np.mean(self.accuracy[s][c]))).rjust(cw + 2) for s in self.names))
        lines.append("mean".ljust(w) + "".join(fmt_pct(self.mean_accuracy(s)).rjust(cw + 2)
                                               for s in self.names))
        for sev_i, sev in enumerate(self.severities):
            lines.append(f"severity {sev}".ljust(w) + "".join(
                fmt_pct(float(np.mean([self.accuracy[s][c][sev_i] for c in self.corruptions]))
                        ).rjust(cw + 2) for s in self.names))
        lines.append(f"mCE vs {baseline}".ljust(w) + "".join(
            fmt_pct(self.mce(s, baseline)).rjust(cw + 2) for s in self.names))
        lines.append(f"rel. mCE vs {baseline}".ljust(w) + "".join(
            fmt_pct(self.mce(s, baseline, relative=True)).rjust(cw + 2) for s in self.names))
        for c, why in self.skipped.items():
            lines.append(f"skipped {c}: {why}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"names": list(self.names), "corruptions": list(self.corruptions),
                "severities": list(self.severities), "clean": dict(self.clean),
                "accuracy": {m: {c: list(v) for c, v in d.items()} for m, d in self.accuracy.items()},
                "skipped": dict(self.skipped), "adapted": dict(self.adapted), "n": self.n,
                "seed": self.seed}

    def __str__(self) -> str:
        return self.table()


def _accuracy(model, x, y, batch_size) -> torch.Tensor:
    dev = model_device(model)
    ok = []
    with model_mode(model, "eval"), torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            ok.append((model(x[i:i + batch_size].to(dev)).argmax(1).cpu() == y[i:i + batch_size].cpu()))
    return torch.cat(ok)


def corruption_accuracy(models, data, *, corruptions: Sequence[str] | None = None,
                        severities: Sequence[int] = SEVERITIES, seed: int = 0,
                        min_side: int = 16, batch_size: int = 256, progress: bool = True,
                        verbose: bool = True) -> CorruptionResult:
    """Accuracy of models on corrupted copies of ``data``, per type and severity.

    Each corrupted set is computed once and evaluated by every model, so models are
    compared on the same images.

    Parameters
    ----------
    models : nn.Module or dict of str to nn.Module
    data : Dataset or (Tensor, Tensor)
        1- or 3-channel images in [0, 1].
    corruptions : sequence of str, optional
        Default: all 19 (:data:`CORRUPTIONS`); types that cannot apply to these images are
        skipped with the reason printed (``verbose``) and recorded in ``result.skipped``.
    severities : sequence of int
        Default 1..5.
    seed : int
    min_side : int
        See :func:`corruption_plan`.
    batch_size : int
    progress, verbose : bool

    Returns
    -------
    CorruptionResult
        ``result.table()``; ``result.mce(model, baseline)`` the mean corruption error.

    References
    ----------
    Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions
    and Perturbations", ICLR 2019.
    """
    if isinstance(models, nn.Module):
        models = {"model": models}
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models must be an nn.Module or a non-empty dict name -> nn.Module")
    for name, m in models.items():
        check_model(m, f"models[{name!r}]")
    first = next(iter(models.values()))
    x, y = as_tensors(data, first)
    batch_size = check_batch_size(batch_size)
    seed = check_int(seed, "seed", minimum=0)
    wanted = tuple(CORRUPTIONS if corruptions is None else corruptions)
    bad = [c for c in wanted if c not in CORRUPTIONS]
    if bad:
        raise ValueError(f"unknown corruptions {bad}; choose from {', '.join(CORRUPTIONS)}")
    sevs = tuple(check_int(s, "severity", minimum=1, maximum=5) for s in severities)
    if not sevs:
        raise ValueError("severities must name at least one of 1..5")
    _backend()
    plan = corruption_plan(tuple(x.shape[1:]), min_side=min_side)
    skipped = {c: plan[c][1] for c in wanted if plan[c][0] == "skipped"}
    adapted = {c: plan[c][1] for c in wanted if plan[c][0] not in ("skipped", "native")}
    if verbose:
        for c, why in skipped.items():
            print(f"corruptions: skipping {c}: {why}", file=sys.stderr)
        reasons = sorted(set(adapted.values()))
        for why in reasons:
            which = [c for c, r in adapted.items() if r == why]
            print(f"corruptions: adapting {', '.join(which)}: {why}", file=sys.stderr)
    run = [c for c in wanted if c not in skipped]
    xc, yc = x.cpu(), y.cpu()
    clean = {m: float(_accuracy(model, xc, yc, batch_size).float().mean()) for m, model in models.items()}
    acc = {m: {c: [] for c in run} for m in models}
    jobs = [(c, s) for c in run for s in sevs]
    for c, s in tqdm(jobs, disable=not progress, desc="corruptions", unit="set", leave=False):
        parts = [corrupt(xc[i:i + batch_size], c, s, seed=seed, min_side=min_side, offset=i)
                 for i in range(0, xc.shape[0], batch_size)]
        xk = torch.cat(parts)
        for m, model in models.items():
            acc[m][c].append(float(_accuracy(model, xk, yc, batch_size).float().mean()))
    return CorruptionResult(names=tuple(models), corruptions=tuple(run), severities=sevs,
                            clean=clean,
                            accuracy={m: {c: tuple(v) for c, v in d.items()} for m, d in acc.items()},
                            skipped=skipped, adapted=adapted, n=int(x.shape[0]), seed=seed)
