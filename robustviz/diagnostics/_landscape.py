"""Loss landscapes in weight space (Li et al. 2018), between two checkpoints, and in input space.

The weights are never touched: every grid point runs the model through
:func:`torch.func.functional_call` with the shifted parameters, so the model's own tensors
(and its BatchNorm running statistics, used in eval mode) stay bit-for-bit as they were.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from tqdm.auto import tqdm

from robustviz._utils import model_device, model_mode
from robustviz._validate import check_choice, check_int, check_positive

__all__ = ["Landscape", "random_directions", "weight_landscape", "interpolation_landscape",
           "input_landscape", "IGNORE"]

IGNORE = ("biasbn", "none")
_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


@dataclasses.dataclass(frozen=True)
class Landscape:
    """Loss and accuracy on a 1-D or 2-D grid.

    Attributes
    ----------
    kind : str
        ``"weights"`` (random directions), ``"interpolation"`` (between two models) or
        ``"input"`` (pixel space).
    coords : tuple of ndarray
        ``(alphas,)`` or ``(alphas, betas)``: the grid coordinates (direction multiples;
        for ``"interpolation"`` the mixing weight of the second model; for ``"input"``
        pixel units along sign(grad_x) and a random sign direction).
    loss, accuracy : ndarray
        Clean mean loss and top-1 accuracy, shape ``(A,)`` or ``(A, B)``.
    adv_loss, adv_accuracy : ndarray or None
        The same on adversarial examples recomputed at every grid point.
    n : int
        Number of examples.
    options : dict

    Shape
    -----
    ``loss[i, j]`` is the value at ``(coords[0][i], coords[1][j])``.
    """

    kind: str
    coords: tuple
    loss: np.ndarray
    accuracy: np.ndarray
    n: int
    options: dict
    adv_loss: np.ndarray | None = None
    adv_accuracy: np.ndarray | None = None

    @property
    def dims(self) -> int:
        return len(self.coords)

    def values(self, metric: str = "loss") -> np.ndarray:
        """The grid of ``"loss"``, ``"accuracy"``, ``"adv_loss"`` or ``"adv_accuracy"``."""
        check_choice(metric, "metric", ("loss", "accuracy", "adv_loss", "adv_accuracy"))
        out = getattr(self, metric)
        if out is None:
            raise ValueError(f"this landscape has no {metric!r} (computed without an attack)")
        return out

    def at(self, point: Sequence[float], metric: str = "loss") -> float:
        """The value at a point of the grid's coordinates (linear/bilinear interpolation)."""
        v = self.values(metric)
        if self.dims == 1:
            return float(np.interp(float(point[0]) if np.ndim(point) else float(point),
                                   self.coords[0], v))
        return float(_bilinear(self.coords[0], self.coords[1], v,
                               np.array([point[0]]), np.array([point[1]]))[0])

    def center(self, metric: str = "loss") -> float:
        """The value at the origin (the model itself)."""
        return self.at([0.0] * self.dims, metric)

    def rise(self, radius: float = 0.5, metric: str = "loss", n_angles: int = 64) -> float:
        """Mean rise of ``metric`` over the circle (2-D) or the two points (1-D) at distance
        ``radius`` from the origin, relative to the origin: a flatness measure (smaller is
        flatter)."""
        radius = check_positive(radius, "radius")
        if self.dims == 1:
            vals = [self.at([-radius], metric), self.at([radius], metric)]
        else:
            t = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
            vals = _bilinear(self.coords[0], self.coords[1], self.values(metric),
                             radius * np.cos(t), radius * np.sin(t))
        return float(np.mean(vals) - self.center(metric))

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "n": self.n, "options": dict(self.options),
               "alphas": np.asarray(self.coords[0]), "loss": self.loss, "accuracy": self.accuracy}
        if self.dims == 2:
            out["betas"] = np.asarray(self.coords[1])
        if self.adv_loss is not None:
            out["adv_loss"], out["adv_accuracy"] = self.adv_loss, self.adv_accuracy
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """Only the arrays (for ``np.savez``)."""
        return {k: v for k, v in self.to_dict().items() if isinstance(v, np.ndarray)}


def _bilinear(a: np.ndarray, b: np.ndarray, v: np.ndarray, pa: np.ndarray, pb: np.ndarray):
    a, b = np.asarray(a, float), np.asarray(b, float)
    if pa.min() < a[0] - 1e-12 or pa.max() > a[-1] + 1e-12 or pb.min() < b[0] - 1e-12 \
            or pb.max() > b[-1] + 1e-12:
        raise ValueError(f"points outside the grid [{a[0]}, {a[-1]}] x [{b[0]}, {b[-1]}]")
    i = np.clip(np.searchsorted(a, pa) - 1, 0, len(a) - 2)
    j = np.clip(np.searchsorted(b, pb) - 1, 0, len(b) - 2)
    ta = (pa - a[i]) / (a[i + 1] - a[i])
    tb = (pb - b[j]) / (b[j + 1] - b[j])
    return ((1 - ta) * (1 - tb) * v[i, j] + ta * (1 - tb) * v[i + 1, j]
            + (1 - ta) * tb * v[i, j + 1] + ta * tb * v[i + 1, j + 1])


# ----------------------------------------------------------------------------- plumbing
def _check_model(model, name="model") -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _data(data, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated ``(x, y)`` on the model's device, images in channels-last layout (faster
    convolutions on CPUs and GPUs; the values are the same)."""
    from robustviz.evaluate._common import as_tensors

    x, y = as_tensors(data, model)
    dev = model_device(model)
    return _channels_last(x.to(dev)), y.to(dev)


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    """``t`` with channels-last strides. ``contiguous(memory_format=...)`` keeps a 1-channel
    NCHW tensor as it is (it already counts as channels-last), and convolutions then give
    NCHW outputs whose max-pooling is about 12x slower on a CPU; ``clone`` sets the strides."""
    if t.dim() != 4:
        return t
    want = torch.empty_like(t, memory_format=torch.channels_last).stride()
    return t if t.stride() == want else t.clone(memory_format=torch.channels_last)


def _grid(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size < 2 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a 1-D sequence of at least 2 finite numbers")
    if np.any(np.diff(arr) <= 0):
        raise ValueError(f"{name} must be strictly increasing")
    return arr


class _AtPoint(nn.Module):
    """The model run with other parameters (and buffers) through ``functional_call``;
    it looks like the model to the attacks (same ``num_classes``, ``check_input``...)."""

    def __init__(self, model: nn.Module, state: dict[str, torch.Tensor]):
        super().__init__()
        self.model = model
        self.state = state
        for attr in ("num_classes", "in_channels", "input_size"):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))
        if callable(getattr(model, "check_input", None)):
            self.check_input = model.check_input

    def forward(self, x):
        return functional_call(self.model, self.state, (x,))


def _default_loss(logits, y):
    return F.cross_entropy(logits.float(), y, reduction="none")


def _check_attack(attack):
    if attack is None:
        return None
    from robustviz.attacks import Attack

    if not isinstance(attack, Attack):
        raise TypeError(f"attack must be a robustviz Attack, got {type(attack).__name__}")
    if getattr(attack, "bn_mode", "eval") != "eval":
        raise ValueError("landscapes use the trained BatchNorm statistics (eval mode); pass an "
                         "attack with bn_mode='eval'")
    return attack


def _evaluate(run: nn.Module, x, y, *, attack, loss_fn, batch_size: int, seed: int,
              perturb: Callable | None = None):
    """(loss, accuracy, adv_loss, adv_accuracy) of ``run`` over ``(x, y)`` in batches;
    ``perturb(x, rows)`` moves the clean inputs first (input-space landscapes)."""
    n = x.shape[0]
    tot = [0.0, 0, 0.0, 0]
    for i in range(0, n, batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        if perturb is not None:
            xb = perturb(xb, slice(i, i + batch_size))
        with torch.no_grad():
            out = run(xb)
            tot[0] += float(loss_fn(out, yb).double().sum())
            tot[1] += int((out.argmax(1) == yb).sum())
        if attack is not None:
            gen = torch.Generator(device=xb.device)
            gen.manual_seed(seed)
            x_adv = attack(run, xb, yb, generator=gen)
            with torch.no_grad():
                out = run(x_adv)
                tot[2] += float(loss_fn(out, yb).double().sum())
                tot[3] += int((out.argmax(1) == yb).sum())
    return tot[0] / n, tot[1] / n, tot[2] / n, tot[3] / n


def _run_grid(run_at: Callable, points: list, shape: tuple, *, attack, desc: str,
              progress: bool, **kw):
    """Evaluate every grid point; ``run_at(point) -> (module, perturb)``."""
    res = np.zeros((4, len(points)))
    for k, p in enumerate(tqdm(points, disable=not progress, desc=desc, unit="point",
                               leave=False)):
        run, perturb = run_at(p)
        res[:, k] = _evaluate(run, attack=attack, perturb=perturb, **kw)
    res = res.reshape(4, *shape)
    adv = attack is not None
    return res[0], res[1], (res[2] if adv else None), (res[3] if adv else None)


def _norm_params(model: nn.Module) -> set[str]:
    out = set()
    for mname, mod in model.named_modules():
        if isinstance(mod, _NORM_TYPES):
            for pname, _ in mod.named_parameters(recurse=False):
                out.add(f"{mname}.{pname}" if mname else pname)
    return out


# ----------------------------------------------------------------------------- public
def random_directions(model: nn.Module, n: int = 2, *, seed: int = 0,
                      ignore: str = "biasbn") -> list[dict[str, torch.Tensor]]:
    """Filter-normalised random Gaussian directions in weight space (Li et al. 2018).

    Each direction has, for every parameter, a tensor drawn from N(0, 1) whose filters
    (slices along the first dimension: output channels of a convolution, rows of a linear
    layer) are rescaled to the norm of the matching filter of the weights:
    ``d_i <- d_i / ||d_i|| * ||w_i||``.

    Parameters
    ----------
    model : nn.Module
    n : int
        Number of directions (1 or 2 for the landscapes).
    seed : int
        Seed of a CPU generator (the same directions on every device).
    ignore : {"biasbn", "none"}
        ``"biasbn"`` (default, as in the paper): biases, other 1-D parameters and the
        parameters of normalisation layers get a zero direction. ``"none"``: they are
        perturbed too, each tensor normalised as one filter.

    Returns
    -------
    list of dict
        ``n`` dicts parameter name -> direction tensor (on the parameter's device and
        dtype).

    References
    ----------
    Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss Landscape of Neural Nets",
    NeurIPS 2018.
    """
    _check_model(model)
    n = check_int(n, "n", minimum=1)
    check_choice(ignore, "ignore", IGNORE)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    norm_params = _norm_params(model)
    out = []
    for _ in range(n):
        d = {}
        for name, p in model.named_parameters():
            w = p.detach()
            r = torch.randn(tuple(w.shape), generator=gen, dtype=torch.float32)
            if w.dim() <= 1 or name in norm_params:
                if ignore == "biasbn":
                    d[name] = torch.zeros_like(w)
                    continue
                scale = w.float().norm().cpu() / r.norm().clamp_min(1e-12)
                d[name] = (r * scale).to(w.device, w.dtype)
                continue
            wf = w.float().cpu().reshape(w.shape[0], -1)
            rf = r.reshape(w.shape[0], -1)
            rf = rf * (wf.norm(dim=1) / rf.norm(dim=1).clamp_min(1e-12))[:, None]
            d[name] = rf.reshape(w.shape).to(w.device, w.dtype)
        out.append(d)
    return out


def _check_directions(model, directions, dims):
    names = [n for n, _ in model.named_parameters()]
    if not isinstance(directions, Sequence) or len(directions) != dims:
        raise ValueError(f"directions must be a list of {dims} dicts name -> tensor")
    for d in directions:
        if not isinstance(d, Mapping):
            raise TypeError("each direction must be a dict parameter name -> tensor")
        unknown = set(d) - set(names)
        if unknown:
            raise ValueError(f"directions name unknown parameters: {sorted(unknown)[:5]}")
    return directions


def weight_landscape(model: nn.Module, data, *, dims: int = 2, alphas=None, betas=None,
                     directions=None, seed: int = 0, ignore: str = "biasbn", attack=None,
                     loss_fn: Callable | None = None, batch_size: int = 128,
                     progress: bool = True) -> Landscape:
    """Loss, accuracy (and adversarial loss and accuracy) at ``theta + a d1 (+ b d2)``.

    Parameters
    ----------
    model : nn.Module
        Classifier on pixels in [0, 1]; evaluated in eval mode (BatchNorm with its trained
        running statistics). Its weights are never modified (``functional_call``) and its
        train/eval flags are restored.
    data : Dataset or (Tensor, Tensor)
    dims : {1, 2}
    alphas, betas : sequence of float, optional
        Grid coordinates along the directions; default ``linspace(-1, 1, 21)``.
    directions : list of dict, optional
        ``dims`` directions (:func:`random_directions`); default drawn from ``seed`` with
        ``ignore``.
    seed : int
        Seed of the directions and of the attack's random start (the same at every point).
    ignore : {"biasbn", "none"}
    attack : Attack, optional
        Any :mod:`robustviz.attacks` attack (``bn_mode="eval"``): ``x'`` is recomputed
        against the shifted model at every grid point.
    loss_fn : callable, optional
        ``loss_fn(logits, y) -> (N,)`` per-example loss; default cross-entropy.
    batch_size : int
        Examples per forward pass (default 128: small batches stay in cache, the whole
        grid runs faster than with one large batch).
    progress : bool

    Returns
    -------
    Landscape

    Shape
    -----
    ``loss``: ``(len(alphas),)`` or ``(len(alphas), len(betas))``.

    References
    ----------
    Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss Landscape of Neural Nets",
    NeurIPS 2018. Fan et al., AdvCL, NeurIPS 2021 (adversarial loss landscape).
    """
    _check_model(model)
    dims = check_choice(dims, "dims", (1, 2))
    alphas = _grid(np.linspace(-1, 1, 21) if alphas is None else alphas, "alphas")
    betas = _grid(np.linspace(-1, 1, 21) if betas is None else betas, "betas") if dims == 2 else None
    if directions is None:
        directions = random_directions(model, dims, seed=seed, ignore=ignore)
    directions = _check_directions(model, directions, dims)
    attack = _check_attack(attack)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    x, y = _data(data, model)
    base = {n: _channels_last(p.detach()) for n, p in model.named_parameters()}
    directions = [{n: _channels_last(t) for n, t in d.items()} for d in directions]
    zeros = {n: None for n in base}

    def run_at(point):
        state = {}
        for name, w in base.items():
            shifted = w
            for coef, d in zip(point, directions):
                t = d.get(name, zeros[name])
                if t is not None and coef != 0.0:
                    shifted = shifted + coef * t
            state[name] = shifted
        return _AtPoint(model, state), None

    points = [(a,) for a in alphas] if dims == 1 else [(a, b) for a in alphas for b in betas]
    shape = (len(alphas),) if dims == 1 else (len(alphas), len(betas))
    with model_mode(model, "eval"):
        loss, acc, aloss, aacc = _run_grid(run_at, points, shape, attack=attack, x=x, y=y,
                                           loss_fn=loss_fn or _default_loss,
                                           batch_size=batch_size, seed=seed,
                                           desc="weight landscape", progress=progress)
    coords = (alphas,) if dims == 1 else (alphas, betas)
    options = {"ignore": ignore, "seed": seed, "normalisation": "filter",
               "attack": attack.describe() if attack is not None else None}
    return Landscape(kind="weights", coords=coords, loss=loss, accuracy=acc, adv_loss=aloss,
                     adv_accuracy=aacc, n=int(x.shape[0]), options=options)


def interpolation_landscape(model_a: nn.Module, model_b: nn.Module, data, *, alphas=None,
                            attack=None, loss_fn: Callable | None = None, seed: int = 0,
                            batch_size: int = 128, progress: bool = True) -> Landscape:
    """Loss and accuracy along ``(1 - a) theta_A + a theta_B`` (e.g. NAT -> PGD-AT).

    Every floating parameter and buffer (BatchNorm running statistics too) is
    interpolated; integer buffers come from ``model_a``. At ``a = 0`` and ``a = 1`` the
    values are exactly those of each model.

    Parameters
    ----------
    model_a, model_b : nn.Module
        Two models of the same architecture (same state names and shapes).
    data : Dataset or (Tensor, Tensor)
    alphas : sequence of float, optional
        Default ``linspace(-0.5, 1.5, 21)``.
    attack, loss_fn, seed, batch_size, progress
        As in :func:`weight_landscape`.

    Returns
    -------
    Landscape
        ``kind="interpolation"``, 1-D.

    References
    ----------
    Goodfellow, Vinyals, Saxe, "Qualitatively characterizing neural network optimization
    problems", ICLR 2015; Li et al., NeurIPS 2018 (Section 3).
    """
    _check_model(model_a, "model_a")
    _check_model(model_b, "model_b")
    sa, sb = model_a.state_dict(), model_b.state_dict()
    if list(sa) != list(sb) or any(sa[k].shape != sb[k].shape for k in sa):
        raise ValueError("model_a and model_b must have the same architecture (state names and shapes)")
    alphas = _grid(np.linspace(-0.5, 1.5, 21) if alphas is None else alphas, "alphas")
    attack = _check_attack(attack)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    x, y = _data(data, model_a)
    dev = model_device(model_a)
    sa = {k: _channels_last(v.detach()) for k, v in sa.items()}
    sb = {k: _channels_last(v.detach().to(dev)) for k, v in sb.items()}

    def run_at(point):
        a = float(point[0])
        state = {k: ((1.0 - a) * sa[k] + a * sb[k]) if sa[k].is_floating_point() else sa[k]
                 for k in sa}
        return _AtPoint(model_a, state), None

    with model_mode(model_a, "eval"):
        loss, acc, aloss, aacc = _run_grid(run_at, [(a,) for a in alphas], (len(alphas),),
                                           attack=attack, x=x, y=y,
                                           loss_fn=loss_fn or _default_loss,
                                           batch_size=batch_size, seed=seed,
                                           desc="interpolation", progress=progress)
    options = {"seed": seed, "attack": attack.describe() if attack is not None else None}
    return Landscape(kind="interpolation", coords=(alphas,), loss=loss, accuracy=acc,
                     adv_loss=aloss, adv_accuracy=aacc, n=int(x.shape[0]), options=options)


def input_landscape(model: nn.Module, data, *, alphas=None, betas=None, seed: int = 0,
                    clamp: bool = True, loss_fn: Callable | None = None,
                    batch_size: int = 128, progress: bool = True) -> Landscape:
    """Loss around the inputs: ``L(x + a sign(grad_x L(x)) + b r)`` averaged over the data,
    ``r`` a random sign direction per input (paper 003, Fig. 4).

    Parameters
    ----------
    model : nn.Module
    data : Dataset or (Tensor, Tensor)
    alphas, betas : sequence of float, optional
        Pixel-unit coordinates along the gradient sign and the random sign;
        default ``linspace(-0.25, 0.25, 21)``.
    seed : int
        Seed of the random sign direction.
    clamp : bool
        Clip the moved inputs to [0, 1] (default).
    loss_fn, batch_size, progress
        As in :func:`weight_landscape`.

    Returns
    -------
    Landscape
        ``kind="input"``, 2-D.

    References
    ----------
    Moosavi-Dezfooli et al., "Robustness via curvature regularization, and vice versa",
    CVPR 2019 (input-space loss surfaces); paper 003 (ASCL pretraining, Machine Learning
    2023), Fig. 4.
    """
    _check_model(model)
    alphas = _grid(np.linspace(-0.25, 0.25, 21) if alphas is None else alphas, "alphas")
    betas = _grid(np.linspace(-0.25, 0.25, 21) if betas is None else betas, "betas")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    loss_fn = loss_fn or _default_loss
    x, y = _data(data, model)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    r = (torch.randint(0, 2, tuple(x.shape), generator=gen) * 2 - 1).to(x.device, x.dtype)
    with model_mode(model, "eval"):
        grads = []
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size].clone().requires_grad_(True)
            with torch.enable_grad():
                (g,) = torch.autograd.grad(loss_fn(model(xb), y[i:i + batch_size]).sum(), xb)
            grads.append(g.sign())
        s = torch.cat(grads)

        def run_at(point):
            a, b = point

            def perturb(xb, rows):
                moved = xb + a * s[rows] + b * r[rows]
                return moved.clamp(0, 1) if clamp else moved
            return model, perturb

        points = [(a, b) for a in alphas for b in betas]
        loss, acc, _, _ = _run_grid(run_at, points, (len(alphas), len(betas)), attack=None,
                                    x=x, y=y, loss_fn=loss_fn, batch_size=batch_size,
                                    seed=seed, desc="input landscape", progress=progress)
    return Landscape(kind="input", coords=(alphas, betas), loss=loss, accuracy=acc,
                     n=int(x.shape[0]), options={"seed": seed, "clamp": clamp})
