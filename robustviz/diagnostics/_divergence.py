"""Absolute and relative latent divergences (paper 001, Section 2).

For an anchor ``x_i`` (its natural feature ``f(x_i)``), the positive set is
``X+_i = {x_j, x'_j : j != i, y_j = y_i}`` and the negative set
``X-_i = {x_j, x'_j : j != i, y_j != y_i}``, where ``x'`` is the adversarial example.
With ``d`` a distance between latent features,

    d_a+ = mean_i mean_{x in X+_i} d(f(x_i), f(x))      (absolute intra-class divergence)
    d_a- = mean_i mean_{x in X-_i} d(f(x_i), f(x))      (absolute inter-class divergence)
    R-DIV = d_a+ / d_a-                                  (relative divergence)

Two protocols: ``mode="exact"`` uses every pair of the whole set, computed in blocks of
anchors so that the N x N distance matrix never exists at once (this project's addition);
``mode="minibatch"`` reproduces the paper (sets restricted to a shuffled mini-batch of
``batch_size``, quantities averaged over batches).

Confidence intervals: a delete-a-group jackknife in exact mode (the per-anchor means
share pairs, so a bootstrap over anchors is too narrow), the percentile bootstrap over
batches in minibatch mode; see :mod:`robustviz.diagnostics._divergence_ci`. The class
sums behind every quantity are in :mod:`robustviz.diagnostics._class_distances`.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
import torch
from robustviz._utils import tqdm

from robustviz._validate import check_choice, check_int, check_positive
from robustviz.diagnostics._checks import as_features, as_labels
from robustviz.diagnostics._class_distances import _class_sums, _group_nanmean, _nanmean, _per_anchor
from robustviz.diagnostics._divergence_ci import _bootstrap, _group_sums_cosine, _groups, _jackknife

__all__ = ["DivergenceResult", "divergence"]


# --------------------------------------------------------------------------- result
@dataclasses.dataclass(frozen=True, repr=False)
class DivergenceResult:
    """Latent divergences of one set of features (paper 001, Section 2).

    Attributes
    ----------
    d_pos, d_neg : float
        Absolute intra-class divergence ``d_a+`` and inter-class divergence ``d_a-``.
    rdiv : float
        Relative divergence ``d_a+ / d_a-`` (lower: classes tighter relative to their
        separation).
    per_class_pos, per_class_neg, per_class_rdiv : ndarray of shape (C,)
        The same quantities over the anchors of each class (NaN for a class without
        anchors that have positives / negatives).
    class_matrix : ndarray of shape (C, C)
        ``class_matrix[a, b]``: mean over anchors of class ``a`` of their mean distance to
        the (natural and adversarial) examples of class ``b``; the diagonal equals
        ``per_class_pos``.
    ci, ci_pos, ci_neg : tuple of float or None
        Confidence intervals (level ``ci_level``) for ``rdiv``, ``d_pos`` and ``d_neg``:
        delete-a-group jackknife (exact mode) or percentile bootstrap over batches
        (minibatch mode); None when ``n_boot == 0``.
    ci_method : str or None
        ``"jackknife"``, ``"bootstrap"`` or None (no interval).
    jackknife_groups : int or None
        The jackknife's number of groups (None without a jackknife interval).
    mode, distance : str
        ``"exact"`` or ``"minibatch"``; ``"cosine"`` or ``"l2"``.
    adversarial : bool
        False for the clean-only variant (sets hold natural examples only).
    n, num_classes : int
        Number of anchors and of classes.
    batch_size, n_batches : int or None
        The minibatch protocol's batch size and number of batches used (None in exact mode).
    anchor_pos, anchor_neg : ndarray of shape (N,)
        Each anchor's mean distance to its positives / negatives (NaN where the set is empty),
        in minibatch mode computed within the anchor's batch.
    """

    d_pos: float
    d_neg: float
    rdiv: float
    per_class_pos: np.ndarray
    per_class_neg: np.ndarray
    per_class_rdiv: np.ndarray
    class_matrix: np.ndarray
    ci: tuple[float, float] | None
    ci_pos: tuple[float, float] | None
    ci_neg: tuple[float, float] | None
    ci_level: float
    mode: str
    distance: str
    adversarial: bool
    n: int
    num_classes: int
    batch_size: int | None
    n_batches: int | None
    n_boot: int
    seed: int
    anchor_pos: np.ndarray
    anchor_neg: np.ndarray
    ci_method: str | None = None
    jackknife_groups: int | None = None

    def to_dict(self, *, include_anchors: bool = False) -> dict[str, Any]:
        """JSON-ready dict (arrays as lists, NaN as None); per-anchor arrays only on request."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("anchor_pos", "anchor_neg") and not include_anchors:
                continue
            out[f.name] = _jsonable(getattr(self, f.name))
        return out

    def __repr__(self) -> str:
        ci = ""
        if self.ci is not None:
            ci = f" [{100 * self.ci_level:.0f}% CI {self.ci[0]:.4g}, {self.ci[1]:.4g}]"
        kind = "adversarial" if self.adversarial else "clean"
        bs = f", batch_size={self.batch_size}" if self.mode == "minibatch" else ""
        return (f"DivergenceResult(rdiv={self.rdiv:.4g}{ci}, d_pos={self.d_pos:.4g}, "
                f"d_neg={self.d_neg:.4g}, mode={self.mode!r}{bs}, distance={self.distance!r}, "
                f"{kind}, n={self.n}, num_classes={self.num_classes})")


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()] if v.ndim else _jsonable(v.item())
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    return v


# --------------------------------------------------------------------------- public
def _warn_if_degenerate(z_nat: torch.Tensor, z_adv: torch.Tensor | None, distance: str) -> None:
    """Warn when every distance is the same (all rows equal) or cosine is undefined (zero rows):
    R-DIV is then 1.0 or NaN and says nothing about the latent space."""
    sets = [z.reshape(z.shape[0], -1) for z in (z_nat, z_adv) if z is not None]
    rows = sum(f.shape[0] for f in sets)
    zero = sum(int((f == 0).all(1).sum()) for f in sets)
    if all(bool((f == sets[0][:1]).all()) for f in sets):
        why = "all feature rows are identical" + (" (all zero)" if zero == rows else "")
    elif distance == "cosine" and zero:
        why = f"{zero} of {rows} feature rows are all zero (cosine distance 1 to everything)"
    else:
        return
    warnings.warn(f"degenerate features: {why}; R-DIV is not informative (dead layer or "
                  f"collapsed model?)", UserWarning, stacklevel=3)


#: Largest label count inferred from ``y`` without ``num_classes`` when the labels used are
#: far fewer (a stray label of 10**9 must not allocate a 10**9 x 10**9 matrix).
_MAX_IMPLICIT_CLASSES = 1000


def _l2_safe(z_nat: torch.Tensor, z_adv: torch.Tensor | None):
    """Features whose squared L2 norms overflow their dtype (float32: rows of norm above
    about 1.8e19) are computed in float64; beyond float64's range they are refused, instead
    of returning NaN (inf - inf) silently."""
    big = max(float(z.abs().max()) for z in (z_nat, z_adv) if z is not None)
    sq = big * big * z_nat.shape[1] * 4.0      # bound on |a|^2 + |b|^2 + 2 |<a, b>|
    if sq < torch.finfo(z_nat.dtype).max:
        return z_nat, z_adv
    if not sq < torch.finfo(torch.float64).max:
        raise ValueError(f"features up to {big:.3g} in absolute value: their squared L2 "
                         f"distances overflow even float64; rescale the features (or use "
                         f"distance='cosine', which is scale-free)")
    return z_nat.double(), None if z_adv is None else z_adv.double()


def divergence(z_nat, z_adv, y, *, distance: str = "cosine", mode: str = "exact",
               batch_size: int = 128, shuffle: bool = True, n_boot: int = 1000,
               ci_level: float = 0.95, seed: int = 0, num_classes: int | None = None,
               block_size: int | None = None, jackknife_groups: int = 20,
               progress: bool = False) -> DivergenceResult:
    """Absolute divergences ``d_a+``, ``d_a-`` and the relative divergence R-DIV.

    Parameters
    ----------
    z_nat : Tensor or ndarray
        Latent features of the natural examples (the anchors).
    z_adv : Tensor or ndarray or None
        Features of the adversarial examples, row ``i`` belonging to ``x_i``; None gives the
        clean-only variant (sets ``{x_j}`` instead of ``{x_j, x'_j}``).
    y : Tensor or ndarray
        Integer class labels.
    distance : {"cosine", "l2"}
        ``1 - cos(u, v)`` (paper 001) or the Euclidean distance.
    mode : {"exact", "minibatch"}
        ``"exact"``: all pairs of the whole set, in blocks (never an N x N matrix).
        ``"minibatch"``: the paper's protocol, sets restricted to each mini-batch of
        ``batch_size`` (seeded shuffle), ``d_a+`` and ``d_a-`` averaged over batches.
    batch_size : int
        Mini-batch size of the minibatch protocol (paper: 128). Ignored in exact mode.
    shuffle : bool
        Minibatch mode: shuffle with ``seed`` before batching (False: consecutive rows).
    n_boot : int
        0: no confidence intervals. Otherwise, minibatch mode: percentile bootstrap with
        ``n_boot`` resamples of the batches' means (independent units). Exact mode: the
        interval is a delete-a-group jackknife over ``jackknife_groups`` random groups of
        points (the anchors' means share pairs, so resampling them would be too narrow);
        ``n_boot`` only switches it on.
    ci_level : float
        Confidence level of the intervals.
    seed : int
        Seeds the minibatch shuffle and the bootstrap.
    num_classes : int, optional
        Number of classes (default ``max(y) + 1``).
    block_size : int, optional
        Anchors per block in exact mode (default: about 2M distances per block).
    jackknife_groups : int
        Exact mode's jackknife groups ``G`` (>= 2; the interval uses Student's t with
        ``G - 1`` degrees of freedom). The class sums are split by group in the same pass,
        so the interval costs about ``G`` times the class-sum columns, not ``G`` passes.
    progress : bool
        Show a progress bar over blocks.

    Returns
    -------
    DivergenceResult
        ``rdiv == d_pos / d_neg``; anchors without positives (a class with one example)
        or negatives are left out of the means.

    Shape
    -----
    z_nat, z_adv: (N, D) (higher-rank features are flattened); y: (N,). Distances are
    computed on the device and in the dtype of ``z_nat`` and accumulated in float64.

    Notes
    -----
    Exact cosine mode never forms pairwise distances: for unit rows ``u``, the sum of
    ``1 - <u_i, u_j>`` over a class is ``n_c - <u_i, sum_j u_j>``, so all per-class sums
    cost O(N D C) (about 0.5 s at 10,000 x 512 on two cores). L2 has no such identity and
    goes through blocks of anchors x all set members, O(N^2 D) time and O(block x N)
    memory. Both agree with scikit-learn's ``pairwise_distances`` to ~1e-9 (see
    ``benchmarks/diagnostics.py``).

    References
    ----------
    Bui et al., "Understanding and Achieving Efficient Robustness with Adversarial
    Supervised Contrastive Learning", arXiv:2101.10027, 2021, Section 2.
    Efron and Stein, "The Jackknife Estimate of Variance", Annals of Statistics 1981;
    Shao and Tu, "The Jackknife and Bootstrap", Springer 1995 (delete-a-group jackknife).

    Examples
    --------
    >>> res = divergence(z_nat, z_adv, y)                 # doctest: +SKIP
    >>> res.rdiv, res.d_pos, res.d_neg, res.ci            # doctest: +SKIP
    """
    check_choice(distance, "distance", ("cosine", "l2"))
    check_choice(mode, "mode", ("exact", "minibatch"))
    batch_size = check_int(batch_size, "batch_size", minimum=2)
    n_boot = check_int(n_boot, "n_boot", minimum=0)
    check_positive(ci_level, "ci_level")
    if not ci_level < 1:
        raise ValueError(f"ci_level must be in (0, 1), got {ci_level!r}")
    seed = check_int(seed, "seed", minimum=0)
    if block_size is not None:
        block_size = check_int(block_size, "block_size", minimum=1)
    jackknife_groups = check_int(jackknife_groups, "jackknife_groups", minimum=2)
    z_nat = as_features(z_nat, "z_nat", min_rows=2)
    n = z_nat.shape[0]
    if z_adv is not None:
        z_adv = as_features(z_adv, "z_adv", like=z_nat)
    y = as_labels(y, n, "y", device=z_nat.device)
    _warn_if_degenerate(z_nat, z_adv, distance)
    if distance == "l2":
        z_nat, z_adv = _l2_safe(z_nat, z_adv)
    C = int(y.max()) + 1
    if num_classes is not None:
        num_classes = check_int(num_classes, "num_classes", minimum=2)
        if num_classes < C:
            raise ValueError(f"num_classes={num_classes} but y holds label {C - 1}")
        C = num_classes
    else:
        distinct = int(torch.unique(y).numel())
        if C > max(_MAX_IMPLICIT_CLASSES, 10 * distinct):
            raise ValueError(f"y holds label {C - 1} but only {distinct} distinct labels: "
                             f"{C} classes would need a {C} x {C} class matrix "
                             f"({8 * C * C / 2 ** 30:.3g} GiB); pass num_classes (the data set's "
                             f"number of classes) if the labels are right")
    y_np = y.cpu().numpy()
    counts = np.bincount(y_np, minlength=C)
    if (counts > 0).sum() < 2:
        raise ValueError("y must hold at least two classes (negatives are examples of another "
                         "class)")
    if counts.max() < 2:
        raise ValueError("y has no class with two examples, so no anchor has a positive")
    n_sets = 1 if z_adv is None else 2

    jack = None
    if mode == "exact":
        G = min(jackknife_groups, n)
        if n_boot > 0 and G >= 2:   # class sums split by group: one pass gives every deletion
            group = _groups(n, G, seed)
            group_t = torch.as_tensor(group, device=y.device)
            if distance == "cosine":   # linear identity: O(N D G) for the group parts
                S = _class_sums(z_nat, z_adv, y, C, distance, block_size, progress)
                P, T = _group_sums_cosine(z_nat, z_adv, y, group_t, G, C)
            else:                      # one blocked pass with the class sums split by group
                S_g = _class_sums(z_nat, z_adv, group_t * C + y, G * C, distance, block_size,
                                  progress).reshape(n, G, C)
                S = S_g.sum(1)
                P = S_g[np.arange(n), :, y_np]
                T = S_g.sum(2)
            jack = _jackknife(S, P, T, y_np, group, C, n_sets, ci_level)
        else:
            S = _class_sums(z_nat, z_adv, y, C, distance, block_size, progress)
        pos, neg, per_class = _per_anchor(S, y_np, C, n_sets)
        d_pos, d_neg = float(_nanmean(pos)), float(_nanmean(neg))
        units_pos, units_neg = pos, neg
        used_bs, n_batches = None, None
    else:
        if shuffle:
            g = torch.Generator().manual_seed(seed)
            order = torch.randperm(n, generator=g).to(z_nat.device)
        else:
            order = torch.arange(n, device=z_nat.device)
        pos = np.full(n, np.nan)
        neg = np.full(n, np.nan)
        per_class = np.full((n, C), np.nan)
        b_pos, b_neg = [], []
        batches = list(torch.split(order, batch_size))
        for idx in tqdm(batches, desc="divergence", disable=not progress, leave=False):
            if idx.numel() < 2:
                continue
            yb = y[idx]
            Sb = _class_sums(z_nat[idx], None if z_adv is None else z_adv[idx], yb, C,
                             distance, block_size)
            p, q, pc = _per_anchor(Sb, yb.cpu().numpy(), C, n_sets)
            ii = idx.cpu().numpy()
            pos[ii], neg[ii], per_class[ii] = p, q, pc
            b_pos.append(_nanmean(p))
            b_neg.append(_nanmean(q))
        units_pos, units_neg = np.asarray(b_pos, float), np.asarray(b_neg, float)
        d_pos, d_neg = float(_nanmean(units_pos)), float(_nanmean(units_neg))
        used_bs, n_batches = batch_size, int(len(b_pos))
        if math.isnan(d_pos) or math.isnan(d_neg):
            raise ValueError(f"no mini-batch of batch_size={batch_size} holds both a positive "
                             f"and a negative for any anchor; use a larger batch_size")

    per_class_pos = _group_nanmean(pos, y_np, C).reshape(C)
    per_class_neg = _group_nanmean(neg, y_np, C).reshape(C)
    class_matrix = _group_nanmean(per_class, y_np, C).reshape(C, C)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class_rdiv = per_class_pos / per_class_neg
    rdiv = d_pos / d_neg if d_neg > 0 else math.nan

    if jack is not None:
        ci, ci_pos, ci_neg = jack
    elif mode == "minibatch" and n_boot > 0 and np.isfinite(units_pos).sum() >= 2:
        ci, ci_pos, ci_neg = _bootstrap(units_pos, units_neg, n_boot, ci_level, seed)
    else:  # not asked for, or a single batch: nothing to resample
        ci = ci_pos = ci_neg = None

    arrays = [per_class_pos, per_class_neg, per_class_rdiv, class_matrix, pos, neg]
    for a in arrays:
        a.setflags(write=False)
    return DivergenceResult(
        d_pos=d_pos, d_neg=d_neg, rdiv=float(rdiv),
        per_class_pos=per_class_pos, per_class_neg=per_class_neg,
        per_class_rdiv=per_class_rdiv, class_matrix=class_matrix,
        ci=ci, ci_pos=ci_pos, ci_neg=ci_neg, ci_level=float(ci_level),
        mode=mode, distance=distance, adversarial=z_adv is not None, n=n, num_classes=C,
        batch_size=used_bs, n_batches=n_batches, n_boot=n_boot, seed=seed,
        anchor_pos=pos, anchor_neg=neg,
        ci_method=None if ci is None else ("jackknife" if jack is not None else "bootstrap"),
        jackknife_groups=G if jack is not None else None,
    )
