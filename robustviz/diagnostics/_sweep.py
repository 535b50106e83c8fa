"""R-DIV and robust accuracy as functions of the attack radius (paper 001, Fig. 2c / 4)."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from robustviz._utils import tqdm

from robustviz._validate import check_choice, check_int, check_nonnegative
from robustviz.diagnostics._divergence import DivergenceResult, divergence
from robustviz.diagnostics._features import as_images_labels, attacked_features

__all__ = ["EpsSweep", "rdiv_vs_eps", "attack_at_eps"]


@dataclasses.dataclass(frozen=True, repr=False)
class EpsSweep:
    """R-DIV, divergences and robust accuracy per model and attack radius.

    Attributes
    ----------
    eps : ndarray of shape (E,)
    models : tuple of str
        Model names, the row order of the arrays.
    rdiv, d_pos, d_neg : ndarray of shape (M, E)
        Adversarial R-DIV and its two absolute divergences (at eps = 0 the adversarial
        features are the clean ones).
    rdiv_clean : ndarray of shape (M,)
        Clean-only R-DIV of each model.
    robust_acc : ndarray of shape (M, E)
        Correct on both the clean and the adversarial input (at eps = 0: clean accuracy).
    clean_acc : ndarray of shape (M,)
    rdiv_ci : ndarray of shape (M, E, 2) or None
        Confidence interval of each R-DIV (when ``n_boot > 0``): delete-a-group jackknife in
        exact mode, bootstrap over batches in minibatch mode (see :func:`divergence`).
    results : dict
        ``{model: [DivergenceResult per eps]}`` (class matrices, per-class values).
    distance, mode, layer : str
    n : int
    attack : dict
        Description of the attack family.
    """

    eps: np.ndarray
    models: tuple
    rdiv: np.ndarray
    d_pos: np.ndarray
    d_neg: np.ndarray
    rdiv_clean: np.ndarray
    robust_acc: np.ndarray
    clean_acc: np.ndarray
    rdiv_ci: np.ndarray | None
    results: dict
    distance: str
    mode: str
    layer: str
    n: int
    attack: dict

    def row(self, model: str) -> dict[str, np.ndarray]:
        """The arrays of one model: ``{"eps", "rdiv", "d_pos", "d_neg", "robust_acc"}``."""
        if model not in self.models:
            raise ValueError(f"model must be one of {list(self.models)}, got {model!r}")
        i = self.models.index(model)
        return {"eps": self.eps, "rdiv": self.rdiv[i], "d_pos": self.d_pos[i],
                "d_neg": self.d_neg[i], "robust_acc": self.robust_acc[i]}

    def trend(self) -> dict[str, float]:
        """Spearman rank correlation of R-DIV with eps for each model (+1: R-DIV rises
        monotonically with eps, paper 001's observation)."""
        out = {}
        for i, name in enumerate(self.models):
            out[name] = _spearman(self.eps, self.rdiv[i])
        return out

    def to_dict(self) -> dict[str, Any]:
        def tl(a):
            return None if a is None else np.where(np.isfinite(a), a, np.nan).tolist()

        return {"eps": self.eps.tolist(), "models": list(self.models), "rdiv": tl(self.rdiv),
                "d_pos": tl(self.d_pos), "d_neg": tl(self.d_neg),
                "rdiv_clean": tl(self.rdiv_clean), "robust_acc": tl(self.robust_acc),
                "clean_acc": tl(self.clean_acc), "rdiv_ci": tl(self.rdiv_ci),
                "distance": self.distance, "mode": self.mode, "layer": self.layer,
                "n": self.n, "attack": self.attack}

    def __repr__(self) -> str:
        rows = ", ".join(f"{m}: {self.rdiv[i, 0]:.3g}->{self.rdiv[i, -1]:.3g}"
                         for i, m in enumerate(self.models))
        return (f"EpsSweep(eps {self.eps[0]:.3g}..{self.eps[-1]:.3g} ({len(self.eps)} points), "
                f"R-DIV {rows}, distance={self.distance!r}, mode={self.mode!r}, n={self.n})")


def _spearman(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2:
        return math.nan

    def rank(v):  # average ranks for ties
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        for u in np.unique(v):
            m = v == u
            r[m] = r[m].mean()
        return r

    ra, rb = rank(a[ok]), rank(b[ok])
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def attack_at_eps(attack, eps: float, *, scale_step: bool = True, step_size: float | None = None):
    """The attack ``attack`` with radius ``eps`` (None at eps = 0).

    A dataclass attack is copied with ``dataclasses.replace``. The step size: ``step_size``
    given, that fixed step at every radius (paper 001 Fig. 4: PGD-250 with step 2/255 for
    every eps); otherwise, with ``scale_step``, an explicit ``step_size`` of the attack is
    scaled by ``eps / attack.eps`` so the number of steps needed to cross the ball stays the
    same (a step size of None keeps its own eps-relative default); ``scale_step=False``
    keeps the attack's own step. A callable that is not a dataclass attack is a factory
    ``eps -> attack`` (``step_size`` is then an error: the factory decides).
    """
    check_nonnegative(eps, "eps")
    if step_size is not None:
        check_nonnegative(step_size, "step_size")
        if not step_size > 0:
            raise ValueError(f"step_size must be > 0, got {step_size!r}")
    if eps == 0:
        return None
    from robustviz.attacks import Adaptive
    if isinstance(attack, Adaptive):       # the wrapped attack carries the radius
        return dataclasses.replace(attack, attack=attack_at_eps(attack.attack, eps, scale_step=scale_step,
                                                                step_size=step_size))
    if dataclasses.is_dataclass(attack) and not isinstance(attack, type):
        names = {f.name for f in dataclasses.fields(attack)}
        if "eps" not in names:
            raise TypeError(f"attack {type(attack).__name__} has no eps field; pass a factory "
                            f"eps -> attack instead")
        changes: dict[str, Any] = {"eps": float(eps)}
        old = getattr(attack, "eps")
        size = getattr(attack, "step_size", None)
        if step_size is not None:
            if "step_size" not in names:
                raise TypeError(f"attack {type(attack).__name__} has no step_size field")
            changes["step_size"] = float(step_size)
        elif scale_step and size is not None and old:
            changes["step_size"] = float(size) * float(eps) / float(old)
        return dataclasses.replace(attack, **changes)
    if callable(attack):
        if step_size is not None:
            raise TypeError("step_size applies to a dataclass attack; a factory eps -> attack sets its own")
        return attack(eps)
    raise TypeError(f"attack must be a dataclass attack with an eps field (e.g. PGD) or a "
                    f"factory eps -> attack, got {type(attack).__name__}")


def rdiv_vs_eps(models: nn.Module | Mapping[str, nn.Module], data, attack,
                eps: Sequence[float], *, n: int | None = None, layer: str = "penultimate",
                distance: str = "cosine", mode: str = "exact", batch_size: int = 128,
                n_boot: int = 0, scale_step: bool = True, step_size: float | None = None,
                attack_batch_size: int = 256, seed: int = 0, progress: bool = False) -> EpsSweep:
    """Adversarial R-DIV and robust accuracy over attack radii, for one or several models.

    Parameters
    ----------
    models : nn.Module or mapping of str to nn.Module
        One model (named ``"model"``) or ``{name: model}``.
    data : Dataset or (Tensor, Tensor)
        Images in [0, 1] and labels; the first ``n`` are used (seeded random subset).
    attack : Attack or callable
        A template attack with an ``eps`` field (e.g. ``PGD(eps=0.1, steps=10)``),
        re-radiused at every eps by :func:`attack_at_eps`, or a factory
        ``eps -> attack``.
    eps : sequence of float
        Radii; 0 means the clean features (R-DIV of the set ``{x_j, x_j}``).
    n : int, optional
        Random subset size (seeded).
    layer, distance, mode, batch_size, n_boot
        See :func:`attacked_features` and :func:`divergence`.
    scale_step : bool
        Scale an explicit step size with eps (ignored when ``step_size`` is given).
    step_size : float, optional
        One fixed step size at every eps (paper 001 Fig. 4: PGD k = 250, step 2/255).
    attack_batch_size : int
    seed : int
        Subset, attack random starts (the same draws at every eps) and bootstrap.
    progress : bool

    Returns
    -------
    EpsSweep

    Shape
    -----
    data.x: (N, C, H, W); arrays of the result: (models, len(eps)).

    References
    ----------
    Bui et al., "Understanding and Achieving Efficient Robustness with Adversarial
    Supervised Contrastive Learning", arXiv:2101.10027, 2021, Fig. 2c and Fig. 4: R-DIV
    rises with eps, and less for adversarially trained models (observation O1).
    """
    if isinstance(models, nn.Module):
        models = {"model": models}
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models must be an nn.Module or a non-empty mapping name -> nn.Module")
    for name, m in models.items():
        if not isinstance(m, nn.Module):
            raise TypeError(f"models[{name!r}] must be an nn.Module, got {type(m).__name__}")
    eps = [check_nonnegative(e, "eps") for e in eps]
    if not eps:
        raise ValueError("eps must hold at least one radius")
    check_choice(distance, "distance", ("cosine", "l2"))
    check_choice(mode, "mode", ("exact", "minibatch"))
    n_boot = check_int(n_boot, "n_boot", minimum=0)
    seed = check_int(seed, "seed", minimum=0)
    x, y = as_images_labels(data, "data")
    if n is not None:
        n = check_int(n, "n", minimum=2)
        if n < x.shape[0]:
            idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
            idx = idx.sort().values
            x, y = x[idx.to(x.device)], y[idx.to(y.device)]
    attacks = [attack_at_eps(attack, e, scale_step=scale_step, step_size=step_size) for e in eps]
    desc = next((a.describe() if hasattr(a, "describe") else {"attack": repr(a)}
                 for a in attacks if a is not None), {})
    desc = {**desc, "step_rule": (f"fixed {step_size:g}" if step_size is not None
                                  else "scaled with eps" if scale_step else "the attack's own")}
    names = tuple(str(k) for k in models)
    M, E = len(names), len(eps)
    shape = (M, E)
    rdiv, d_pos, d_neg, racc = (np.full(shape, np.nan) for _ in range(4))
    cacc, rclean = np.full(M, np.nan), np.full(M, np.nan)
    ci = np.full((M, E, 2), np.nan) if n_boot else None
    results: dict[str, list[DivergenceResult]] = {}
    kw = dict(distance=distance, mode=mode, batch_size=batch_size, seed=seed)
    bar = tqdm(total=M * E, desc="R-DIV vs eps", disable=not progress, leave=False)
    for i, (name, model) in enumerate(models.items()):
        results[names[i]] = []
        for j, atk in enumerate(attacks):
            f = attacked_features(model, (x, y), atk, layer=layer,
                                  batch_size=attack_batch_size, seed=seed)
            if j == 0 or math.isnan(cacc[i]):
                cacc[i] = f.clean_acc
                rclean[i] = divergence(f.z_nat, None, f.y, n_boot=0, **kw).rdiv
            res = divergence(f.z_nat, f.z_adv, f.y, n_boot=n_boot, **kw)
            results[names[i]].append(res)
            rdiv[i, j], d_pos[i, j], d_neg[i, j] = res.rdiv, res.d_pos, res.d_neg
            racc[i, j] = f.robust_acc
            if ci is not None and res.ci is not None:
                ci[i, j] = res.ci
            bar.update(1)
    bar.close()
    for a in (rdiv, d_pos, d_neg, racc, cacc, rclean) + ((ci,) if ci is not None else ()):
        a.setflags(write=False)
    return EpsSweep(eps=np.asarray(eps, float), models=names, rdiv=rdiv, d_pos=d_pos,
                    d_neg=d_neg, rdiv_clean=rclean, robust_acc=racc, clean_acc=cacc,
                    rdiv_ci=ci, results=results, distance=distance, mode=mode, layer=layer,
                    n=int(y.shape[0]), attack=desc)
