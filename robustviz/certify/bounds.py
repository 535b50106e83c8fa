"""Certified Linf bounds on a network's outputs: interval bound propagation and CROWN.

For every image ``x`` and radius ``eps``, the outputs of the model on *every* point of the
box ``[max(x - eps, 0), min(x + eps, 1)]`` lie within the bounds computed here. A margin
``f_y - f_j`` whose lower bound is positive for every ``j != y`` is a certificate: no
attack at that radius can change the decision. Both methods are written from the papers:

- **IBP** (Gowal et al., "On the Effectiveness of Interval Bound Propagation for Training
  Verifiably Robust Models", arXiv:1810.12715, 2018): each layer maps a box to the smallest
  box holding its image (``center -> W center + b``, ``radius -> |W| radius``; monotone
  layers map the corners).
- **CROWN** (Zhang, Weng, Chen, Hsieh and Daniel, "Efficient Neural Network Robustness
  Certification with General Activation Functions", NeurIPS 2018): the bound is a linear
  function of the input, propagated backwards through the network; each ReLU whose input
  interval crosses 0 is replaced by two lines (the chord above, a line of slope 0 or 1
  below, whichever is tighter), and each max pooling by the input with the largest lower
  bound below and, unless that input dominates its window, the window's largest upper
  bound above.

Intermediate bounds (the input intervals of each ReLU and max pooling) come from IBP and,
where a layer has at most ``max_neurons`` units, from CROWN itself; the tighter of the two
is kept at every unit, and so is the tighter of IBP and CROWN at the output, so CROWN here
is never looser than IBP (the intersection of two sound bounds is sound).

The released auto_LiRPA (Xu et al., NeurIPS 2020) was checked first: its release on the
package index (0.3) requires torch < 1.13 and does not install beside this PyTorch.
"""
from __future__ import annotations

import dataclasses
import time

import torch
import torch.nn.functional as F
from torch import nn

from robustviz._utils import model_device, model_mode, tqdm
from robustviz.certify._chain import AFFINE, chain
from robustviz.models import Normalize

__all__ = ["interval_bounds", "crown_bounds", "margin_spec", "certify", "CertifyResult",
           "compare", "METHODS"]

METHODS = ("ibp", "crown")


# --------------------------------------------------------------------------- IBP
def _ibp_layer(m: nn.Module, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(m, (nn.ReLU, nn.MaxPool2d)):       # monotone: map the corners
        return m(lo), m(hi)
    if isinstance(m, (nn.Flatten, nn.Identity, nn.Dropout)):
        return m(lo), m(hi)
    mid, rad = (hi + lo) / 2, (hi - lo) / 2
    if isinstance(m, nn.Linear):
        out_mid, out_rad = m(mid), F.linear(rad, m.weight.abs())
    elif isinstance(m, nn.Conv2d):
        out_mid = m(mid)
        out_rad = F.conv2d(rad, m.weight.abs(), None, m.stride, m.padding, m.dilation, m.groups)
    elif isinstance(m, Normalize):
        out_mid, out_rad = m(mid), rad / m.std
    elif isinstance(m, nn.AvgPool2d):
        out_mid, out_rad = m(mid), m(rad)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        scale = (m.weight if m.weight is not None else torch.ones_like(m.running_var)) \
            / torch.sqrt(m.running_var + m.eps)
        shape = (1, -1) + (1,) * (mid.dim() - 2)
        out_mid, out_rad = m(mid), rad * scale.abs().view(shape)
    else:  # pragma: no cover - chain() refuses other layers
        raise TypeError(type(m).__name__)
    return out_mid - out_rad, out_mid + out_rad


def _box(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    return (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)


def _ibp_all(layers, lo, hi) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Bounds of the input of every layer, then of the output (len(layers) + 1 pairs)."""
    out = [(lo, hi)]
    for m in layers:
        lo, hi = _ibp_layer(m, lo, hi)
        out.append((lo, hi))
    return out


# --------------------------------------------------------------------------- CROWN
def _affine_back(m: nn.Module, A: torch.Tensor, in_shape) -> tuple[torch.Tensor, torch.Tensor]:
    """``A @ W`` and ``A @ b`` for the affine layer ``m(z) = W z + b``, by one
    vector-Jacobian product on a batch of zeros. ``A``: (N, S, *out_shape)."""
    n, s = A.shape[:2]
    z = torch.zeros((n * s, *in_shape), dtype=A.dtype, device=A.device, requires_grad=True)
    with torch.enable_grad():
        out = m(z)
        (grad,) = torch.autograd.grad(out, z, A.reshape(n * s, *out.shape[1:]))
    bias = (A.reshape(n * s, -1) * out.detach().reshape(n * s, -1)).sum(1).view(n, s)
    return grad.view(n, s, *in_shape), bias


def _relu_relax(lo, hi):
    """Slopes and intercept of the upper line, slope of the lower line (CROWN's adaptive
    choice: 1 where the interval is more positive than negative, else 0)."""
    unstable = (lo < 0) & (hi > 0)
    active = lo >= 0
    denom = torch.where(unstable, hi - lo, torch.ones_like(hi))
    up_slope = torch.where(unstable, hi / denom, active.to(hi.dtype))
    up_icpt = torch.where(unstable, -lo * hi / denom, torch.zeros_like(hi))
    low_slope = torch.where(unstable, (hi > -lo).to(hi.dtype), active.to(hi.dtype))
    return up_slope, up_icpt, low_slope


def _pool_relax(m: nn.MaxPool2d, lo, hi):
    """Max pooling's relaxation: the index of the largest lower bound per window, whether
    that input dominates the window (its lower bound >= every other upper bound), and the
    constant upper bound where it does not."""
    k = m.kernel_size
    lmax, idx = F.max_pool2d(lo, k, return_indices=True)
    umax = F.max_pool2d(hi, k)
    masked = hi.flatten(2).scatter(2, idx.flatten(2), float("-inf")).view_as(hi)
    u_other = F.max_pool2d(masked, k)
    dom = lmax >= u_other
    return idx, dom, torch.where(dom, torch.zeros_like(umax), umax)


def _unpool(m: nn.MaxPool2d, A, idx, in_shape):
    n, s = A.shape[:2]
    c, ho, wo = A.shape[2:]
    i = idx.unsqueeze(1).expand(n, s, c, ho, wo).reshape(n * s, c, ho, wo)
    out = F.max_unpool2d(A.reshape(n * s, c, ho, wo), i, m.kernel_size, output_size=in_shape[-2:])
    return out.view(n, s, *in_shape)


def _backward(layers, bounds, A: torch.Tensor, lo_in, hi_in) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper bounds of ``A @ f(x)`` over the input box, where ``f`` is the chain
    ``layers`` and ``bounds[i]`` holds the input bounds of ``layers[i]``. ``A``: (N, S, *out)."""
    a_up, a_lo = A, A
    n, s = A.shape[:2]
    b_up = torch.zeros(n, s, dtype=A.dtype, device=A.device)
    b_lo = torch.zeros_like(b_up)

    def tsum(t):
        return t.flatten(2).sum(-1)

    for i in range(len(layers) - 1, -1, -1):
        m = layers[i]
        lo, hi = bounds[i]
        in_shape = lo.shape[1:]
        if isinstance(m, AFFINE):
            a_up, c = _affine_back(m, a_up, in_shape)
            b_up = b_up + c
            a_lo, c = _affine_back(m, a_lo, in_shape)
            b_lo = b_lo + c
        elif isinstance(m, nn.ReLU):
            su, tu, sl = (t.unsqueeze(1) for t in _relu_relax(lo, hi))
            p, q = a_up.clamp(min=0), a_up.clamp(max=0)
            b_up = b_up + tsum(p * tu)
            a_up = p * su + q * sl
            p, q = a_lo.clamp(min=0), a_lo.clamp(max=0)
            b_lo = b_lo + tsum(q * tu)
            a_lo = p * sl + q * su
        elif isinstance(m, nn.MaxPool2d):
            idx, dom, cu = _pool_relax(m, lo, hi)
            dom, cu = dom.unsqueeze(1).to(A.dtype), cu.unsqueeze(1)
            p, q = a_up.clamp(min=0), a_up.clamp(max=0)
            b_up = b_up + tsum(p * cu)
            a_up = _unpool(m, p * dom + q, idx, in_shape)
            p, q = a_lo.clamp(min=0), a_lo.clamp(max=0)
            b_lo = b_lo + tsum(q * cu)
            a_lo = _unpool(m, p + q * dom, idx, in_shape)
        else:  # pragma: no cover
            raise TypeError(type(m).__name__)
    xl, xu = lo_in.unsqueeze(1), hi_in.unsqueeze(1)
    upper = tsum(a_up.clamp(min=0) * xu + a_up.clamp(max=0) * xl) + b_up
    lower = tsum(a_lo.clamp(min=0) * xl + a_lo.clamp(max=0) * xu) + b_lo
    return lower, upper


def _identity_spec(lo: torch.Tensor) -> torch.Tensor:
    n, units = lo.shape[0], lo[0].numel()
    eye = torch.eye(units, dtype=lo.dtype, device=lo.device)
    return eye.unsqueeze(0).expand(n, units, units).reshape(n, units, *lo.shape[1:])


def _crown_all(layers, lo, hi, max_neurons: int):
    """Input bounds of every layer (as :func:`_ibp_all`), tightened by CROWN at the inputs of
    the nonlinear layers that have at most ``max_neurons`` units."""
    bounds = _ibp_all(layers, lo, hi)
    for i, m in enumerate(layers):
        if not isinstance(m, (nn.ReLU, nn.MaxPool2d)) or i == 0:
            continue
        l_i, u_i = bounds[i]
        if l_i[0].numel() > max_neurons:
            continue
        cl, cu = _backward(layers[:i], bounds, _identity_spec(l_i), lo, hi)
        l_new = torch.maximum(l_i, cl.view_as(l_i))
        u_new = torch.minimum(u_i, cu.view_as(u_i))
        bounds[i] = (l_new, u_new)
        # later layers' IBP bounds start from the tighter interval
        rest = _ibp_all(layers[i:], l_new, u_new)
        for j, b in enumerate(rest[1:], start=i + 1):
            bounds[j] = (torch.maximum(bounds[j][0], b[0]), torch.minimum(bounds[j][1], b[1]))
    return bounds


# --------------------------------------------------------------------------- public
def margin_spec(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The rows ``e_y - e_j`` for every ``j != y``: (N, K - 1, K). A positive lower bound on
    all of them certifies the label ``y``."""
    n = y.shape[0]
    eye = torch.eye(num_classes, device=y.device)
    rows = eye[y].unsqueeze(1) - eye.unsqueeze(0)                # (N, K, K)
    keep = ~torch.eye(num_classes, dtype=torch.bool, device=y.device)[y]
    return rows[keep].view(n, num_classes - 1, num_classes)


def _spec_interval(spec, lo, hi) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds of ``spec @ z`` for ``z`` in the box [lo, hi]. ``spec``: (N, S, K)."""
    mid = torch.einsum("nsk,nk->ns", spec, (hi + lo) / 2)
    rad = torch.einsum("nsk,nk->ns", spec.abs(), (hi - lo) / 2)
    return mid - rad, mid + rad


def _check(x, eps):
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise TypeError("x must be a batch of images (N, C, H, W) in [0, 1]")
    if not (isinstance(eps, (int, float)) and eps >= 0):
        raise ValueError(f"eps must be a number >= 0 (Linf, pixel scale), got {eps!r}")


def interval_bounds(model: nn.Module, x: torch.Tensor, eps: float,
                    spec: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """IBP lower and upper bounds of ``model``'s logits (or of ``spec @ logits``) over the
    Linf box of radius ``eps`` around each image, clipped to [0, 1].

    Shape
    -----
    ``x``: (N, C, H, W); ``spec``: (N, S, K); returns two (N, K) or (N, S) tensors.
    """
    _check(x, eps)
    layers = chain(model, x)
    with model_mode(model, "eval"), torch.no_grad():
        lo, hi = _box(x, eps)
        lo, hi = _ibp_all(layers, lo, hi)[-1]
        return (lo, hi) if spec is None else _spec_interval(spec, lo, hi)


def crown_bounds(model: nn.Module, x: torch.Tensor, eps: float,
                 spec: torch.Tensor | None = None, *, max_neurons: int = 256
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """CROWN lower and upper bounds of ``model``'s logits (or of ``spec @ logits``) over the
    Linf box of radius ``eps`` around each image, never looser than :func:`interval_bounds`.

    ``max_neurons`` bounds the layers whose intermediate bounds CROWN tightens (a layer
    with more units keeps its IBP bounds: on TinyCNN the fully connected layer is tightened,
    the convolutions are not, which keeps the memory at a few hundred MB per 16 images).

    Shape
    -----
    ``x``: (N, C, H, W); ``spec``: (N, S, K); returns two (N, K) or (N, S) tensors.
    """
    _check(x, eps)
    layers = chain(model, x)
    with model_mode(model, "eval"), torch.no_grad():
        lo, hi = _box(x, eps)
        bounds = _crown_all(layers, lo, hi, max_neurons)
        out_lo, out_hi = bounds[-1]
        A = _identity_spec(out_lo) if spec is None else spec.to(out_lo.dtype)
        cl, cu = _backward(layers, bounds, A, lo, hi)
        if spec is None:
            return torch.maximum(cl, out_lo), torch.minimum(cu, out_hi)
        il, iu = _spec_interval(spec, out_lo, out_hi)
        return torch.maximum(cl, il), torch.minimum(cu, iu)


@dataclasses.dataclass(frozen=True)
class CertifyResult:
    """Certified Linf accuracy at each radius.

    Attributes
    ----------
    method : str
        ``"ibp"`` or ``"crown"``.
    eps : tuple of float
    certified : dict of float to Tensor
        Per radius, (N,) bool: the label is certified (correct and no class can overtake it
        anywhere in the box).
    clean : Tensor
        (N,) bool top-1 correctness.
    seconds : dict of float to float
    """

    method: str
    eps: tuple
    certified: dict
    clean: torch.Tensor
    seconds: dict

    def accuracy(self, eps: float) -> float:
        return float(self.certified[eps].float().mean())

    def to_dict(self) -> dict:
        return {"method": self.method, "n": int(self.clean.numel()),
                "clean": float(self.clean.float().mean()),
                "certified": {f"{e:g}": self.accuracy(e) for e in self.eps},
                "seconds": {f"{e:g}": round(s, 2) for e, s in self.seconds.items()}}


def certify(model: nn.Module, data, eps, *, method: str = "crown", batch_size: int = 16,
            max_neurons: int = 256, progress: bool = True) -> CertifyResult:
    """Certified Linf accuracy of ``model`` on ``data`` at one or several radii.

    Parameters
    ----------
    model : nn.Module
        A chain of supported layers (:func:`robustviz.certify._chain.chain`): TinyCNN,
        SmallCNN, ``nn.Sequential`` models.
    data : Dataset or (Tensor, Tensor)
    eps : float or sequence of float
        Linf radii in pixel scale.
    method : {"crown", "ibp"}
    batch_size : int
        Images per bound computation (CROWN's memory grows with it).

    Returns
    -------
    CertifyResult
    """
    from robustviz.evaluate._common import as_tensors, batches

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    radii = (float(eps),) if isinstance(eps, (int, float)) else tuple(float(e) for e in eps)
    for e in radii:
        _check(torch.zeros(1, 1), e)
    x, y = as_tensors(data)
    dev = model_device(model)
    certified = {e: [] for e in radii}
    clean = []
    seconds = {e: 0.0 for e in radii}
    with model_mode(model, "eval"):
        for sl in tqdm(list(batches(len(y), batch_size)), disable=not progress,
                       desc=f"certify ({method})", unit="batch", leave=False):
            xb, yb = x[sl].to(dev), y[sl].to(dev)
            with torch.no_grad():
                logits = model(xb)
            ok = logits.argmax(1) == yb
            clean.append(ok.cpu())
            spec = margin_spec(yb, logits.shape[1])
            for e in radii:
                t0 = time.perf_counter()
                fn = interval_bounds if method == "ibp" else crown_bounds
                kw = {} if method == "ibp" else {"max_neurons": max_neurons}
                lower, _ = fn(model, xb, e, spec, **kw)
                certified[e].append((ok & (lower > 0).all(1)).cpu())
                seconds[e] += time.perf_counter() - t0
    return CertifyResult(method=method, eps=radii,
                         certified={e: torch.cat(v) for e, v in certified.items()},
                         clean=torch.cat(clean), seconds=seconds)


def compare(model: nn.Module, data, eps, *, methods=("ibp", "crown"), attack_steps: int = 20,
            restarts: int = 1, batch_size: int = 16, progress: bool = True) -> dict:
    """Attack accuracy (PGD, an upper bound) and certified accuracy (each method, a lower
    bound) at every radius, on the same images: the input of
    :func:`robustviz.figures.plot_certified_vs_empirical`.

    Returns
    -------
    dict
        ``{"eps": [...], "empirical": {"PGD-k": [...]}, "certified": {"IBP": [...],
        "CROWN": [...]}, "n": N, "seconds": {...}}``, accuracies in [0, 1].
    """
    from robustviz import attacks, evaluate
    from robustviz.evaluate._common import as_tensors

    radii = [float(eps)] if isinstance(eps, (int, float)) else [float(e) for e in eps]
    x, y = as_tensors(data)
    t0 = time.perf_counter()
    pgd = []
    for e in radii:
        if e == 0:
            res = evaluate.evaluate(model, (x, y), None, topk=(1,), progress=False)
            pgd.append(res.clean[1])
            continue
        atk = attacks.PGD(eps=e, step_size=2.5 * e / attack_steps, steps=attack_steps,
                          restarts=restarts)
        pgd.append(evaluate.evaluate(model, (x, y), {"pgd": atk}, topk=(1,),
                                     progress=False).robust("pgd"))
    seconds = {"attack": time.perf_counter() - t0}
    label = f"PGD-{attack_steps}" + (f" x{restarts}" if restarts > 1 else "")
    out = {"eps": radii, "empirical": {label: pgd}, "certified": {}, "n": int(len(y))}
    for method in methods:
        r = certify(model, (x, y), radii, method=method, batch_size=batch_size, progress=progress)
        out["certified"][method.upper()] = [r.accuracy(e) for e in radii]
        seconds[method] = sum(r.seconds.values())
    out["seconds"] = seconds
    return out
