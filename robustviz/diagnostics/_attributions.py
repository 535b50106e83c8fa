"""Input attributions (saliency, integrated gradients, SmoothGrad) through captum, and how
well an attribution map lines up with the object.

Input gradients of adversarially trained models look like the object, those of a
standard model like noise (Tsipras et al., "Robustness May Be at Odds with Accuracy",
ICLR 2019; Santurkar et al., "Image Synthesis with a Single (Robust) Classifier",
NeurIPS 2019). :func:`attributions` computes the maps with captum (Kokhlikyan et al.,
"Captum: A unified and generic model interpretability library for PyTorch", arXiv
2009.07896, 2020); :func:`attribution_alignment` turns "looks like the object" into a
number: the per-image correlation of ``|attribution|`` with the image's edge map or its
object mask, averaged over images, with a bootstrap interval.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustviz._utils import frozen_params, model_device, model_mode, tqdm
from robustviz._validate import (check_choice, check_images, check_int, check_labels,
                                 check_model_dtype, check_nonnegative, check_positive)

__all__ = ["METHODS", "REFERENCES", "CORRELATIONS", "attributions", "edge_map", "object_mask",
           "attribution_alignment", "AttributionAlignment", "attribution_maps",
           "AttributionMaps"]

#: Attribution methods of :func:`attributions`.
METHODS = ("saliency", "integrated_gradients", "smoothgrad")
#: What :func:`attribution_alignment` compares a map with.
REFERENCES = ("edges", "mask")
#: Correlations over pixels.
CORRELATIONS = ("spearman", "pearson")


def _captum_attr():
    try:
        import captum.attr
    except ImportError as err:
        raise ImportError("attributions need captum: pip install 'robustviz[attributions]' "
                          "(or pip install 'captum>=0.7')") from err
    return captum.attr


def _check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _check_inputs(model, x, y):
    if callable(getattr(model, "check_input", None)):
        model.check_input(x, "x")
    else:
        check_images(x, "x")
    check_model_dtype(x, model, "x")
    if y is not None:
        check_labels(y, x.shape[0], "y", num_classes=getattr(model, "num_classes", None))


def _fork_rng(dev: torch.device):
    """A block whose draws from torch's global generators leave them as they were."""
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return torch.random.fork_rng(devices=[index])
    return torch.random.fork_rng(devices=[])


def attributions(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
                 method: str = "saliency", absolute: bool = False, steps: int = 50,
                 baseline: float | torch.Tensor = 0.0, samples: int = 25,
                 noise: float = 0.15, seed: int = 0, batch_size: int = 1024,
                 progress: bool = True) -> torch.Tensor:
    """Attribution of the logit of class ``y`` to every input pixel.

    Parameters
    ----------
    model : nn.Module
        Maps images in [0, 1] to logits (normalisation is its first layer). Run in eval
        mode; its mode and its parameters' ``requires_grad`` flags are restored after.
    x : Tensor
        Images in [0, 1], ``(N, C, H, W)``.
    y : Tensor, optional
        The class whose logit is explained, ``(N,)``; None: the model's prediction on ``x``.
    method : {"saliency", "integrated_gradients", "smoothgrad"}
        ``"saliency"``: the input gradient of the logit (Simonyan, Vedaldi and Zisserman,
        "Deep Inside Convolutional Networks", ICLR workshop 2014), captum's ``Saliency``.
        ``"integrated_gradients"``: the path integral of the gradient from ``baseline`` to
        ``x`` times ``x - baseline`` (Sundararajan, Taly and Yan, "Axiomatic Attribution for
        Deep Networks", ICML 2017), captum's ``IntegratedGradients`` with ``steps``
        Gauss-Legendre points; its sum over pixels equals ``f_y(x) - f_y(baseline)`` up to
        the quadrature error (completeness). ``"smoothgrad"``: the gradient averaged over
        ``samples`` copies of ``x`` with Gaussian noise of standard deviation ``noise``
        (Smilkov et al., "SmoothGrad: removing noise by adding noise", arXiv 1706.03825,
        2017), captum's ``NoiseTunnel`` around ``Saliency``.
    absolute : bool
        Return ``|attribution|`` instead of the signed map (for SmoothGrad, the mean of the
        absolute gradients, as Smilkov et al. also show).
    steps : int
        Integration points of integrated gradients.
    baseline : float or Tensor
        Integrated gradients' starting image: a pixel value (0: black) or a tensor
        broadcastable to ``x``.
    samples : int
        Noisy copies per image for SmoothGrad.
    noise : float
        SmoothGrad's noise standard deviation in pixel units (Smilkov et al. recommend
        10-20% of the input range).
    seed : int
        Seeds SmoothGrad's noise (drawn per chunk of images, so the maps depend on
        ``batch_size``); torch's global generator is left as it was.
    batch_size : int
        Rows per forward pass: images for saliency, images times ``steps`` (or ``samples``)
        for the other two. Bounds the memory; the result does not depend on it (except
        SmoothGrad's noise draws).
    progress : bool
        A progress bar over the chunks.

    Returns
    -------
    Tensor
        The attributions, with the shape, dtype and device of ``x``.

    Shape
    -----
    ``x``: (N, C, H, W); ``y``: (N,); returns (N, C, H, W).
    """
    _check_model(model)
    check_choice(method, "method", METHODS)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of images, got {type(x).__name__}")
    _check_inputs(model, x, y)
    steps = check_int(steps, "steps", minimum=2)
    samples = check_int(samples, "samples", minimum=1)
    noise = check_nonnegative(noise, "noise")
    seed = check_int(seed, "seed", minimum=0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if isinstance(baseline, torch.Tensor):
        try:
            torch.broadcast_shapes(baseline.shape, x.shape)
        except RuntimeError as err:
            raise ValueError(f"baseline of shape {tuple(baseline.shape)} does not broadcast to "
                             f"x's shape {tuple(x.shape)}") from err
    elif isinstance(baseline, bool) or not isinstance(baseline, (int, float)):
        raise TypeError(f"baseline must be a number or a tensor, got {type(baseline).__name__}")

    cattr = _captum_attr()
    dev = model_device(model)
    per_image = {"saliency": 1, "integrated_gradients": steps, "smoothgrad": samples}[method]
    chunk = max(1, batch_size // per_image)
    out = torch.empty_like(x)
    with model_mode(model, "eval"), frozen_params(model):
        xd = x.detach().to(dev)
        if y is None:
            with torch.no_grad():
                yd = torch.cat([model(xd[i:i + chunk]).argmax(1) for i in range(0, len(xd), chunk)])
        else:
            yd = y.to(dev)
        base = baseline.to(dev, x.dtype).expand_as(xd) if isinstance(baseline, torch.Tensor) else None
        starts = range(0, xd.shape[0], chunk)
        for i in tqdm(starts, desc=f"attributions ({method})", unit="batch", leave=False,
                      disable=not progress or len(starts) < 2):
            # a leaf that requires grad, so captum does not warn that it had to set the flag
            xb, yb = xd[i:i + chunk].clone().requires_grad_(True), yd[i:i + chunk]
            if method == "saliency":
                a = cattr.Saliency(model).attribute(xb, target=yb, abs=absolute)
            elif method == "integrated_gradients":
                bb = base[i:i + chunk] if base is not None else float(baseline)
                a = cattr.IntegratedGradients(model).attribute(
                    xb, baselines=bb, target=yb, n_steps=steps, internal_batch_size=batch_size)
                if absolute:
                    a = a.abs()
            else:
                with _fork_rng(dev):
                    torch.manual_seed(seed + i)
                    a = cattr.NoiseTunnel(cattr.Saliency(model)).attribute(
                        xb, nt_type="smoothgrad", nt_samples=samples,
                        nt_samples_batch_size=chunk, stdevs=noise, target=yb, abs=absolute)
            out[i:i + chunk] = a.detach().to(out.device, out.dtype)
    return out


# --------------------------------------------------------------------------- references
_SOBEL = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])


def _gray(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    check_images(x, name)
    return x.detach().mean(1)


def edge_map(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of each image's channel mean (zero padding at the border).

    Sobel's 3x3 operator (Sobel and Feldman, 1968; Gonzalez and Woods, "Digital Image
    Processing") estimates the intensity gradient; its magnitude is large on the object's
    outline and inner edges.

    Shape
    -----
    ``x``: (N, C, H, W) in [0, 1]; returns (N, H, W).
    """
    g = _gray(x)[:, None]
    kx = _SOBEL.to(g.device, g.dtype)[None, None]
    gx = F.conv2d(g, kx, padding=1)
    gy = F.conv2d(g, kx.transpose(-1, -2), padding=1)
    return torch.hypot(gx, gy)[:, 0]


def object_mask(x: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """The object's pixels: channel mean above ``threshold`` (right for objects on a black
    background, such as Fashion-MNIST and MNIST).

    Shape
    -----
    ``x``: (N, C, H, W) in [0, 1]; returns a bool tensor (N, H, W).
    """
    threshold = check_nonnegative(threshold, "threshold", upper=1.0)
    return _gray(x) > threshold


# --------------------------------------------------------------------------- alignment
@dataclasses.dataclass(frozen=True, repr=False)
class AttributionAlignment:
    """Per-image correlation of ``|attribution|`` with a reference map, and its mean.

    Attributes
    ----------
    per_image : ndarray
        ``(N,)`` correlations; NaN where one of the two maps is constant (no correlation
        defined), left out of the mean.
    mean : float
        Mean over the images with a correlation.
    ci : tuple of float
        Percentile bootstrap interval of the mean over images (``(nan, nan)`` when
        ``n_boot`` is 0 or fewer than two images count).
    n : int
        Images in the mean.
    reference : str
        ``"edges"`` (Sobel magnitude) or ``"mask"`` (object mask).
    correlation : str
        ``"spearman"`` or ``"pearson"``.
    level : float
    options : dict
    """

    per_image: np.ndarray
    mean: float
    ci: tuple
    n: int
    reference: str
    correlation: str
    level: float
    options: dict

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["per_image"] = self.per_image.tolist()
        d["ci"] = list(self.ci)
        return d

    def __repr__(self) -> str:
        return (f"AttributionAlignment({self.correlation} with {self.reference}: "
                f"{self.mean:.3f} [{self.ci[0]:.3f}, {self.ci[1]:.3f}] at {self.level:.0%}, "
                f"n={self.n})")


def _row_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (NaN where a row
    is constant)."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(1) / den
    r[~(den > 0)] = np.nan
    return np.clip(r, -1.0, 1.0)


def _bootstrap_mean(values: np.ndarray, n_boot: int, level: float, seed: int) -> tuple:
    if n_boot == 0 or values.size < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (float(lo), float(hi))


def attribution_alignment(attr: torch.Tensor, x: torch.Tensor, *, reference: str = "edges",
                          correlation: str = "spearman", threshold: float = 0.1,
                          n_boot: int = 2000, level: float = 0.95,
                          seed: int = 0) -> AttributionAlignment:
    """How well attribution maps line up with the object: the correlation over pixels of
    ``|attr|`` (summed over channels) with the image's edge map or object mask, per image,
    averaged over images, with a percentile bootstrap interval over images.

    A map that follows the object scores near its best (1 for a map equal to the edge
    map); a map of noise scores near 0.

    Parameters
    ----------
    attr : Tensor
        Attribution maps, ``(N, C, H, W)`` (e.g. from :func:`attributions`).
    x : Tensor
        The images the reference is computed from, in [0, 1], same shape. For maps of
        adversarial inputs pass the clean images: the object is what the map is compared
        with.
    reference : {"edges", "mask"}
        :func:`edge_map` (Sobel magnitude) or :func:`object_mask` (pixels above
        ``threshold``; its correlation with a map is the point-biserial one).
    correlation : {"spearman", "pearson"}
        Spearman's rank correlation (ties get their average rank) or Pearson's.
    threshold : float
        The object mask's threshold.
    n_boot : int
        Bootstrap resamples of the images (0: no interval).
    level : float
        Interval level in (0, 1).
    seed : int
        Seeds the bootstrap.

    Returns
    -------
    AttributionAlignment

    Shape
    -----
    ``attr``, ``x``: (N, C, H, W).
    """
    if not isinstance(attr, torch.Tensor):
        raise TypeError(f"attr must be a torch.Tensor of attribution maps, got {type(attr).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of images, got {type(x).__name__}")
    if attr.dim() != 4 or attr.shape != x.shape:
        raise ValueError(f"attr must have the images' shape (N, C, H, W) = {tuple(x.shape)}, "
                         f"got {tuple(attr.shape)}")
    if not attr.is_floating_point() or not torch.isfinite(attr).all():
        raise ValueError("attr must be a finite floating-point tensor")
    check_choice(reference, "reference", REFERENCES)
    check_choice(correlation, "correlation", CORRELATIONS)
    n_boot = check_int(n_boot, "n_boot", minimum=0)
    level = check_positive(level, "level", upper=1.0)
    if level >= 1.0:
        raise ValueError(f"level must be < 1, got {level!r}")
    seed = check_int(seed, "seed", minimum=0)
    ref = edge_map(x) if reference == "edges" else object_mask(x, threshold).to(x.dtype)
    a = attr.detach().abs().sum(1).flatten(1).double().cpu().numpy()
    r = ref.flatten(1).double().cpu().numpy()
    if correlation == "spearman":
        from scipy.stats import rankdata

        a, r = rankdata(a, axis=1), rankdata(r, axis=1)
    per = _row_correlation(a, r)
    ok = per[np.isfinite(per)]
    mean = float(ok.mean()) if ok.size else math.nan
    return AttributionAlignment(per_image=per, mean=mean, ci=_bootstrap_mean(ok, n_boot, level, seed),
                                n=int(ok.size), reference=reference, correlation=correlation,
                                level=level, options={"threshold": float(threshold),
                                                      "n_boot": n_boot, "seed": seed})


# --------------------------------------------------------------------------- maps for figures
@dataclasses.dataclass(frozen=True, repr=False)
class AttributionMaps:
    """Attribution maps of several models on the same images, clean and adversarial; what
    :func:`robustviz.figures.plot_attributions` draws.

    Attributes
    ----------
    x : Tensor
        The clean images, ``(N, C, H, W)``.
    y : Tensor
        The explained classes (the labels), ``(N,)``.
    x_adv : dict
        ``model -> (N, C, H, W)`` adversarial images made against that model (empty when
        no attack was given).
    maps : dict
        ``model -> method -> {"clean": (N, C, H, W), "adv": (N, C, H, W)}`` (no ``"adv"``
        without an attack).
    pred : dict
        ``model -> {"clean": (N,), "adv": (N,)}`` predicted classes.
    methods : tuple of str
    options : dict
        Options of :func:`attributions` and the attack's name.
    """

    x: torch.Tensor
    y: torch.Tensor
    x_adv: dict
    maps: dict
    pred: dict
    methods: tuple
    options: dict

    @property
    def models(self) -> tuple:
        return tuple(self.maps)

    @property
    def kinds(self) -> tuple:
        return ("clean", "adv") if self.x_adv else ("clean",)

    def get(self, model: str, method: str, kind: str = "clean") -> torch.Tensor:
        """The maps of one model, method and input kind (``"clean"`` or ``"adv"``)."""
        check_choice(model, "model", self.models)
        check_choice(method, "method", self.methods)
        check_choice(kind, "kind", self.kinds)
        return self.maps[model][method][kind]

    def alignment(self, model: str, method: str, kind: str = "clean",
                  **options) -> AttributionAlignment:
        """:func:`attribution_alignment` of one model's maps with the clean images."""
        return attribution_alignment(self.get(model, method, kind), self.x, **options)

    def to_dict(self) -> dict:
        """Arrays as NumPy and options as plain values."""
        return {"x": self.x.numpy(), "y": self.y.numpy(), "methods": list(self.methods),
                "x_adv": {k: v.numpy() for k, v in self.x_adv.items()},
                "maps": {m: {meth: {k: t.numpy() for k, t in d.items()} for meth, d in md.items()}
                         for m, md in self.maps.items()},
                "pred": {m: {k: t.numpy() for k, t in d.items()} for m, d in self.pred.items()},
                "options": dict(self.options)}

    def __repr__(self) -> str:
        return (f"AttributionMaps(models={list(self.models)}, methods={list(self.methods)}, "
                f"kinds={list(self.kinds)}, images={tuple(self.x.shape)})")


def attribution_maps(models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor, *,
                     attack=None, methods: Sequence[str] | str = ("saliency",),
                     progress: bool = False, **options) -> AttributionMaps:
    """Attribution maps of every model for the clean images and, with ``attack``, for
    adversarial images made against that model; the class explained is always the label.

    Parameters
    ----------
    models : dict name -> nn.Module
    x : Tensor
        Images in [0, 1], ``(N, C, H, W)``.
    y : Tensor
        Labels ``(N,)``: the class whose logit is explained, on clean and adversarial inputs.
    attack : callable, optional
        ``attack(model, x, y) -> x_adv`` (any :mod:`robustviz.attacks` attack).
    methods : str or sequence of str
        Of :data:`METHODS`.
    progress : bool
    **options
        Passed to :func:`attributions` (``steps``, ``samples``, ``noise``, ``seed``,
        ``absolute``, ``baseline``, ``batch_size``).

    Returns
    -------
    AttributionMaps
        Tensors on the CPU.
    """
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models must be a non-empty dict name -> nn.Module")
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    if not methods:
        raise ValueError(f"methods must name at least one of {list(METHODS)}")
    for m in methods:
        check_choice(m, "method", METHODS)
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods must be distinct, got {list(methods)}")
    if attack is not None and not callable(attack):
        raise TypeError(f"attack must be callable as attack(model, x, y), got {type(attack).__name__}")
    bad = [k for k, v in models.items() if not isinstance(v, nn.Module)]
    if bad:
        raise TypeError(f"models {bad} are not torch.nn.Module")
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor of labels, got {type(y).__name__}")
    x_adv, maps, pred = {}, {}, {}
    for name, model in models.items():
        model_name = str(name)
        _check_inputs(model, x, y)
        inputs = {"clean": x}
        if attack is not None:
            inputs["adv"] = attack(model, x, y).detach()
            x_adv[model_name] = inputs["adv"].cpu()
        with model_mode(model, "eval"), torch.no_grad():
            dev = model_device(model)
            pred[model_name] = {k: model(v.to(dev)).argmax(1).cpu() for k, v in inputs.items()}
        maps[model_name] = {
            meth: {k: attributions(model, v, y, method=meth, progress=progress, **options).cpu()
                   for k, v in inputs.items()}
            for meth in methods}
    opts = {k: v for k, v in options.items() if not isinstance(v, torch.Tensor)}
    opts["attack"] = None if attack is None else repr(attack)
    return AttributionMaps(x=x.detach().cpu(), y=y.detach().cpu(), x_adv=x_adv, maps=maps,
                           pred=pred, methods=methods, options=opts)
