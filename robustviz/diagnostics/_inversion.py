"""Feature inversion maps and representation inversion by gradient steps in pixel space.

A feature inversion map (FIM) shows what a unit of a network responds to: starting from a
seed image (or noise) the pixels are moved by gradient *ascent* on one coordinate of a
tapped representation, kept in [0, 1]. Robust models give perceptually aligned maps
(Engstrom et al. 2019; Fan et al. 2021, AdvCL, Fig. 4). Every (neuron, seed) pair is one
row of a single batch, so the whole map is one optimisation.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from robustviz._utils import frozen_params, model_device, model_mode
from robustviz._validate import (check_choice, check_images, check_int, check_nonnegative,
                                 check_positive)
from robustviz.models import Features

__all__ = ["InversionResult", "feature_inversion", "representation_inversion", "STEP_NORMS",
           "PENALTIES"]

STEP_NORMS = ("linf", "l2", "none")
PENALTIES = ("none", "tv", "l2")


@dataclasses.dataclass(frozen=True)
class InversionResult:
    """Images found by feature or representation inversion.

    Attributes
    ----------
    images : Tensor
        Feature inversion: ``(S, K, C, H, W)``, seed ``s`` (row) optimised for neuron ``k``
        (column). Representation inversion: ``(N, C, H, W)``.
    start : Tensor
        The starting images, ``(S, C, H, W)`` (or ``(N, C, H, W)``).
    objective : Tensor
        The objective before the penalty at every step, ``(steps + 1, S, K)`` (feature
        inversion: the target activation, to be maximised) or ``(steps + 1, N)``
        (representation inversion: the relative distance, to be minimised).
    layer : str
    neurons : tuple
        The optimised coordinates (feature inversion), empty for representation inversion.
    targets : Tensor or None
        Representation inversion: the target images ``(N, C, H, W)``.
    options : dict
        Hyperparameters of the run.
    """

    images: torch.Tensor
    start: torch.Tensor
    objective: torch.Tensor
    layer: str
    neurons: tuple
    options: dict
    targets: torch.Tensor | None = None

    @property
    def kind(self) -> str:
        return "representation" if self.targets is not None else "feature"

    def to_dict(self) -> dict:
        """Arrays as NumPy (for ``np.savez``) and options as plain values."""
        out = {"kind": self.kind, "layer": self.layer, "neurons": [list(n) if isinstance(n, tuple)
                                                                    else n for n in self.neurons],
               "images": self.images.numpy(), "start": self.start.numpy(),
               "objective": self.objective.numpy(), "options": dict(self.options)}
        if self.targets is not None:
            out["targets"] = self.targets.numpy()
        return out


# ----------------------------------------------------------------------------- helpers
def _check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _image_shape(model: nn.Module, like: torch.Tensor | None) -> tuple[int, int, int]:
    if like is not None:
        return tuple(like.shape[1:])
    c, size = getattr(model, "in_channels", None), getattr(model, "input_size", None)
    if c is None or size is None:
        raise ValueError("seeds given as a count need a model with in_channels and input_size; "
                         "pass seed images (S, C, H, W) instead")
    return (int(c), int(size[0]), int(size[1]))


def _seeds(model, seeds, generator: torch.Generator, dev, dtype) -> torch.Tensor:
    """Seed images ``(S, C, H, W)`` on ``dev``: the given tensor, or ``S`` noise images
    0.5 + U(-0.1, 0.1) drawn from ``generator`` (on the CPU, so the same on every device)."""
    if isinstance(seeds, torch.Tensor):
        if callable(getattr(model, "check_input", None)):
            model.check_input(seeds, "seeds")
        else:
            check_images(seeds, "seeds")
        return seeds.detach().to(dev, dtype)
    s = check_int(seeds, "seeds", minimum=1)
    shape = _image_shape(model, None)
    noise = torch.rand((s, *shape), generator=generator, dtype=torch.float32)
    return (0.4 + 0.2 * noise).to(dev, dtype)


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation per image, mean absolute neighbour difference, ``(B,)``."""
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


def _penalty(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "tv":
        return _total_variation(x)
    if kind == "l2":
        return x.flatten(1).pow(2).mean(1)
    return x.new_zeros(x.shape[0])


def _step(x: torch.Tensor, g: torch.Tensor, step_size: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return x + step_size * g.sign()
    if norm == "l2":
        n = g.flatten(1).norm(dim=1).clamp_min(1e-12)
        return x + step_size * g / n.view(-1, *([1] * (g.dim() - 1)))
    return x + step_size * g


def _project(x: torch.Tensor, x0: torch.Tensor, eps: float | None, norm: str) -> torch.Tensor:
    """Into the ``eps`` ball around ``x0`` (L2 renorm for ``norm="l2"``, else an Linf clamp),
    then into [0, 1]."""
    if eps is not None:
        d = x - x0
        if norm == "l2":
            n = d.flatten(1).norm(dim=1).clamp_min(1e-12)
            d = d * (eps / n).clamp(max=1.0).view(-1, *([1] * (d.dim() - 1)))
        else:
            d = d.clamp(-eps, eps)
        x = x0 + d
    return x.clamp(0.0, 1.0)


def _shifts(steps: int, jitter: int, seed: int) -> list[tuple[int, int]]:
    """One random (dy, dx) roll per step from its own stream of ``seed`` (independent of the
    noise seeds), drawn up front so every chunk and every pair sees the same ones."""
    if jitter == 0:
        return [(0, 0)] * steps
    stream = int(np.random.SeedSequence([seed, 1]).generate_state(1, np.uint64)[0] >> 1)
    d = torch.randint(-jitter, jitter + 1, (steps, 2), generator=torch.Generator().manual_seed(stream))
    return [(int(a), int(b)) for a, b in d]


def _optimise(objective, x0: torch.Tensor, *, steps: int, step_size: float, norm: str,
              ascent: bool, jitter_shifts, penalty: str, penalty_weight: float,
              eps: float | None, progress: bool, desc: str):
    """Projected gradient steps on ``objective(x) -> (B,)`` for a whole batch at once.

    The objective of every row depends only on that row (eval-mode model), so rows are
    independent and batching gives the same images as one row at a time.
    Returns ``(x, trace)`` with ``trace`` of shape ``(steps + 1, B)``.
    """
    sign = 1.0 if ascent else -1.0
    x = x0.clone()
    trace = []
    for t in tqdm(range(steps + 1), disable=not progress, desc=desc, unit="step", leave=False):
        x.requires_grad_(True)
        dy, dx = jitter_shifts[t] if t < steps else (0, 0)
        xin = torch.roll(x, shifts=(dy, dx), dims=(-2, -1)) if (dy or dx) else x
        value = objective(xin)
        if t == steps:
            trace.append(value.detach())
            break
        trace.append(objective(x).detach() if (dy or dx) else value.detach())
        total = sign * value - penalty_weight * _penalty(x, penalty) if penalty != "none" \
            else sign * value
        (g,) = torch.autograd.grad(total.sum(), x)
        with torch.no_grad():
            x = _project(_step(x.detach(), g, step_size, norm), x0, eps, norm)
    return x.detach(), torch.stack(trace).cpu()


def _normalise_neurons(neurons, shape: tuple[int, ...], layer: str) -> list[tuple]:
    """Each neuron as a full index into one sample's activation, or a channel ``(c,)``."""
    if isinstance(neurons, (int, np.integer)):
        neurons = [neurons]
    if isinstance(neurons, torch.Tensor):
        neurons = neurons.tolist()
    if not isinstance(neurons, Sequence) or isinstance(neurons, str) or len(neurons) == 0:
        raise TypeError(f"neurons must be a non-empty list of ints (channels or units) or index "
                        f"tuples, got {neurons!r}")
    out = []
    for n in neurons:
        idx = (int(n),) if isinstance(n, (int, np.integer)) else tuple(int(i) for i in n)
        if len(idx) > len(shape):
            raise ValueError(f"neuron {n!r} has {len(idx)} indices but layer {layer!r} has "
                             f"{len(shape)} dimensions per sample (shape {shape})")
        for i, s in zip(idx, shape):
            if not 0 <= i < s:
                raise ValueError(f"neuron {n!r} is out of range for layer {layer!r} of shape {shape}")
        out.append(idx)
    return out


def _selector(rows_neurons: list[tuple]):
    """``select(act) -> (B,)``: for row ``b`` the activation at ``rows_neurons[b]``, averaged
    over the trailing dimensions the index does not fix (a channel's mean over space).
    Rows are grouped by index length and gathered with one advanced-indexing call each."""
    groups: dict[int, list[int]] = {}
    for b, idx in enumerate(rows_neurons):
        groups.setdefault(len(idx), []).append(b)
    plans = []
    for length, rows in groups.items():
        cols = [torch.tensor([rows_neurons[b][d] for b in rows]) for d in range(length)]
        plans.append((torch.tensor(rows), cols))

    def select(act: torch.Tensor) -> torch.Tensor:
        out = act.new_zeros(act.shape[0], dtype=torch.float32)
        for rows, cols in plans:
            r = rows.to(act.device)
            v = act[(r, *(c.to(act.device) for c in cols))].float()
            v = v.flatten(1).mean(1) if v.dim() > 1 else v
            out = out.index_put((r,), v) if len(plans) > 1 else v
        return out
    return select


def _check_options(steps, step_size, norm, jitter, penalty, penalty_weight, eps, batch_size):
    steps = check_int(steps, "steps", minimum=1)
    step_size = check_positive(step_size, "step_size")
    check_choice(norm, "norm", STEP_NORMS)
    jitter = check_int(jitter, "jitter", minimum=0)
    check_choice(penalty, "penalty", PENALTIES)
    penalty_weight = check_nonnegative(penalty_weight, "penalty_weight")
    if eps is not None:
        eps = check_positive(eps, "eps")
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", minimum=1)
    return steps, step_size, jitter, penalty_weight, eps, batch_size


# ----------------------------------------------------------------------------- public
def feature_inversion(model: nn.Module, layer: str, neurons, seeds=6, *, steps: int = 64,
                      step_size: float = 0.02, norm: str = "linf", jitter: int = 0,
                      penalty: str = "none", penalty_weight: float = 0.0,
                      eps: float | None = None, seed: int = 0, batch_size: int | None = None,
                      progress: bool = False) -> InversionResult:
    """Feature inversion maps: maximise chosen coordinates of a tapped layer from seed images.

    Each (seed, neuron) pair is one row of ONE batch: ``x <- clip_[0,1](x + step)``, the
    step being ``step_size * sign(g)`` (``norm="linf"``), ``step_size * g / ||g||_2``
    (``"l2"``) or ``step_size * g`` (``"none"``), with ``g`` the gradient of the target
    activation minus ``penalty_weight`` times a total-variation or L2 penalty. With
    ``jitter`` the input is rolled by a random shift of up to that many pixels at every
    step (transformation robustness).

    Parameters
    ----------
    model : nn.Module
        Any classifier; runs in eval mode. Its mode and every parameter's
        ``requires_grad`` are restored afterwards.
    layer : str
        A tap name (:class:`robustviz.models.Features`): ``"conv2"``, ``"penultimate"``,
        ``"logits"``, ...
    neurons : int or sequence
        Coordinates to maximise: an int is a unit of a flat layer or a whole channel of a
        spatial layer (mean over its positions); a tuple is a full index ``(c, i, j)``.
    seeds : int or Tensor
        Seed images ``(S, C, H, W)`` in [0, 1], or a count of noise seeds
        (0.5 + U(-0.1, 0.1) drawn from ``seed``).
    steps, step_size, norm
        The gradient ascent (see above).
    jitter : int
        Maximum random roll in pixels per step (0: none).
    penalty : {"none", "tv", "l2"}
    penalty_weight : float
    eps : float, optional
        Keep ``x`` within this Linf (L2 for ``norm="l2"``) distance of its seed, as in the FIM of AdvCL
        (``x = argmax_delta f(x0 + delta)_i``); default: unconstrained (only [0, 1]).
    seed : int
        Seed of the noise seeds and of the jitter.
    batch_size : int, optional
        Rows per chunk (default: all ``S * K`` rows in one batch; 1 gives the per-pair
        loop, used by the benchmark). Results do not depend on it.
    progress : bool

    Returns
    -------
    InversionResult
        ``images`` ``(S, K, C, H, W)`` in [0, 1], on the CPU; ``objective``
        ``(steps + 1, S, K)`` the target activation along the way.

    Shape
    -----
    ``seeds``: ``(S, C, H, W)``; ``images``: ``(S, K, C, H, W)`` with ``K = len(neurons)``.

    References
    ----------
    Engstrom, Ilyas, Santurkar, Tsipras, Tran, Madry, "Adversarial Robustness as a Prior
    for Learned Representations", arXiv:1906.00945, 2019 (Section 4, feature visualisation).
    Fan, Liu, Chen, Zhang, Gan, Hong, "When Does Contrastive Learning Preserve Adversarial
    Robustness from Pretraining to Finetuning?", NeurIPS 2021 (feature inversion maps).
    Mordvintsev, Olah, Tyka, "Inceptionism", 2015 (jitter; total-variation penalty).
    """
    _check_model(model)
    steps, step_size, jitter, penalty_weight, eps, batch_size = _check_options(
        steps, step_size, norm, jitter, penalty, penalty_weight, eps, batch_size)
    dev = model_device(model)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    x_seeds = _seeds(model, seeds, gen, dev, torch.float32)
    shifts = _shifts(steps, jitter, seed)
    s_count = x_seeds.shape[0]
    with model_mode(model, "eval"), frozen_params(model), Features(model, layer) as tap:
        with torch.no_grad():
            shape = tuple(tap(x_seeds[:1])[layer].shape[1:])
        idx = _normalise_neurons(neurons, shape, layer)
        k_count = len(idx)
        x0 = x_seeds[:, None].expand(s_count, k_count, *x_seeds.shape[1:]).reshape(
            s_count * k_count, *x_seeds.shape[1:])
        row_neurons = [idx[r % k_count] for r in range(s_count * k_count)]
        chunk = batch_size or x0.shape[0]
        imgs, traces = [], []
        with torch.enable_grad():
            for i in range(0, x0.shape[0], chunk):
                select = _selector(row_neurons[i:i + chunk])

                def objective(x, select=select):
                    return select(tap(x)[layer])

                x, tr = _optimise(objective, x0[i:i + chunk], steps=steps, step_size=step_size,
                                  norm=norm, ascent=True, jitter_shifts=shifts, penalty=penalty,
                                  penalty_weight=penalty_weight, eps=eps,
                                  progress=progress and chunk == x0.shape[0],
                                  desc="feature inversion")
                imgs.append(x.cpu())
                traces.append(tr)
    images = torch.cat(imgs).reshape(s_count, k_count, *x_seeds.shape[1:])
    trace = torch.cat(traces, dim=1).reshape(steps + 1, s_count, k_count)
    options = {"steps": steps, "step_size": step_size, "norm": norm, "jitter": jitter,
               "penalty": penalty, "penalty_weight": penalty_weight, "eps": eps, "seed": seed}
    return InversionResult(images=images, start=x_seeds.cpu(), objective=trace, layer=layer,
                           neurons=tuple(i[0] if len(i) == 1 else i for i in idx),
                           options=options)


def representation_inversion(model: nn.Module, targets: torch.Tensor, starts=None, *,
                             layer: str = "penultimate", steps: int = 200,
                             step_size: float = 0.1, norm: str = "l2", jitter: int = 0,
                             penalty: str = "none", penalty_weight: float = 0.0,
                             eps: float | None = None, seed: int = 0,
                             progress: bool = False) -> InversionResult:
    """Representation inversion: find ``x`` whose representation matches a target image's.

    Minimises the relative distance ``||R(x) - R(x_t)||_2 / ||R(x_t)||_2`` of the tapped
    representation ``R`` by normalised gradient descent in pixel space, ``x`` kept in
    [0, 1], starting from other images or noise. For robust models the result looks like
    the target; for standard models it stays close to its start (Engstrom et al. 2019).

    Parameters
    ----------
    model : nn.Module
    targets : Tensor
        Target images ``(N, C, H, W)`` in [0, 1].
    starts : Tensor, optional
        Starting images ``(N, C, H, W)``; default noise 0.5 + U(-0.1, 0.1) from ``seed``.
    layer : str
        Tap of the representation (default ``"penultimate"``).
    steps, step_size, norm, jitter, penalty, penalty_weight, eps, seed, progress
        As in :func:`feature_inversion` (default: L2-normalised steps, as in the paper).

    Returns
    -------
    InversionResult
        ``images`` ``(N, C, H, W)``; ``objective`` ``(steps + 1, N)`` the relative distance.

    Shape
    -----
    ``targets``, ``starts`` and ``images``: ``(N, C, H, W)``.

    References
    ----------
    Engstrom, Ilyas, Santurkar, Tsipras, Tran, Madry, "Adversarial Robustness as a Prior
    for Learned Representations", arXiv:1906.00945, 2019 (Section 3, representation inversion).
    """
    _check_model(model)
    steps, step_size, jitter, penalty_weight, eps, _ = _check_options(
        steps, step_size, norm, jitter, penalty, penalty_weight, eps, None)
    if callable(getattr(model, "check_input", None)):
        model.check_input(targets, "targets")
    else:
        check_images(targets, "targets")
    dev = model_device(model)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    targets = targets.detach().to(dev, torch.float32)
    if starts is None:
        noise = torch.rand(tuple(targets.shape), generator=gen)
        starts = (0.4 + 0.2 * noise).to(dev)
    else:
        check_images(starts, "starts")
        if starts.shape != targets.shape:
            raise ValueError(f"starts must have the shape of targets {tuple(targets.shape)}, "
                             f"got {tuple(starts.shape)}")
        starts = starts.detach().to(dev, torch.float32)
    shifts = _shifts(steps, jitter, seed)
    with model_mode(model, "eval"), frozen_params(model), Features(model, layer) as tap:
        with torch.no_grad():
            ref = tap(targets)[layer].float().flatten(1)
        ref_norm = ref.norm(dim=1).clamp_min(1e-12)

        def objective(x):
            r = tap(x)[layer].float().flatten(1)
            return (r - ref).norm(dim=1) / ref_norm

        with torch.enable_grad():
            x, trace = _optimise(objective, starts, steps=steps, step_size=step_size, norm=norm,
                                 ascent=False, jitter_shifts=shifts, penalty=penalty,
                                 penalty_weight=penalty_weight, eps=eps, progress=progress,
                                 desc="representation inversion")
    options = {"steps": steps, "step_size": step_size, "norm": norm, "jitter": jitter,
               "penalty": penalty, "penalty_weight": penalty_weight, "eps": eps, "seed": seed}
    return InversionResult(images=x.cpu(), start=starts.cpu(), objective=trace, layer=layer,
                           neurons=(), options=options, targets=targets.cpu())
