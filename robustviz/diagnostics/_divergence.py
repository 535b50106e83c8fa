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

Confidence intervals. In exact mode the per-anchor means share pairs (the distance
``d(x_i, x_j)`` enters both anchor ``i``'s and anchor ``j``'s mean), so they are not
independent and a bootstrap over anchors is too narrow (in a simulation with 10 Gaussian
classes and N = 300 its "95%" intervals covered the true R-DIV about 78% of the time). The
interval is therefore a delete-a-group jackknife: the points are split at random into ``G``
groups, R-DIV is recomputed with each group removed (as anchors *and* as set members), and
``theta +- t_{G-1} * se_jack`` with ``se_jack^2 = (G - 1)/G * sum_g (theta_(g) - mean)^2``
(Efron & Stein 1981; Shao & Tu, "The Jackknife and Bootstrap", 1995, Sec. 5.2). All ``G``
recomputations come from one pass over the pairs (sums split by group; for the cosine
distance through the same linear identity as the class sums, O(N D G)). In minibatch
mode the batches hold disjoint points, so their means are independent and the percentile
bootstrap over batches is kept.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from robustviz._utils import tqdm

from robustviz._validate import check_choice, check_int, check_positive
from robustviz.diagnostics._checks import as_features, as_labels

__all__ = ["DivergenceResult", "divergence"]

_BLOCK_ELEMS = 1 << 21  # distance entries per block (8 MiB in float32)


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


# --------------------------------------------------------------------------- kernels
def _prepare(z: torch.Tensor, distance: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rows ready for one matmul: unit rows for cosine, (rows, squared norms) for L2."""
    if distance == "cosine":
        return F.normalize(z, dim=1), None
    return z, (z * z).sum(1)


def _dist_block(a, a_sq, b, b_sq, distance: str) -> torch.Tensor:
    """Distances between rows of ``a`` (m, D) and ``b`` (n, D) as an (m, n) block."""
    g = a @ b.T  # the one (m, n) allocation; everything after is in place
    if distance == "cosine":
        return g.neg_().add_(1.0).clamp_(0.0, 2.0)
    return g.mul_(-2.0).add_(a_sq[:, None]).add_(b_sq[None, :]).clamp_(min=0.0).sqrt_()


def _class_sums(z_nat: torch.Tensor, z_adv: torch.Tensor | None, y: torch.Tensor, C: int,
                distance: str, block_rows: int | None, progress: bool = False, *,
                blocked: bool | None = None) -> np.ndarray:
    """``S[i, c]`` = sum over j != i with y_j = c of d(z_nat_i, z_nat_j) + d(z_nat_i, z_adv_j).

    ``y`` may be any column index in ``[0, C)`` (the jackknife passes ``group * C + label``
    to get the sums split by group in the same pass).

    L2 (and cosine with ``blocked=True``): anchors are processed in blocks of rows; each
    block's distances to every set member are reduced to per-class sums by one matmul
    with the (N, C) one-hot label matrix, so memory is O(block_rows * N), never O(N^2).

    Cosine by default: the cosine distance ``1 - <u_i, u_j>`` of unit rows is linear in
    ``u_j``, so a class sum is ``count_c - <u_i, sum_{j in c} u_j>`` exactly; this costs
    O(N * D * C) instead of O(N^2 * D) and is done in float64. The anchor's own terms
    (j = i) are then subtracted.

    Shape
    -----
    z_nat, z_adv: (N, D); y: (N,); returns S as float64 NumPy (N, C).
    """
    if blocked is None:
        blocked = distance != "cosine"
    if not blocked:
        if distance != "cosine":
            raise ValueError("the linear class-sum identity holds only for the cosine distance")
        return _class_sums_cosine_linear(z_nat, z_adv, y, C)
    n = z_nat.shape[0]
    sets = [_prepare(z_nat, distance)]
    if z_adv is not None:
        sets.append(_prepare(z_adv, distance))
    anchors, anchors_sq = sets[0]
    onehot = F.one_hot(y, C).to(z_nat.dtype)
    if block_rows is None:
        block_rows = max(1, min(n, _BLOCK_ELEMS // max(n, 1)))
    out = torch.empty(n, C, dtype=torch.float64)  # on the CPU (float64 is not on every device)
    starts = range(0, n, block_rows)
    for s in tqdm(starts, desc="divergence", disable=not progress, leave=False):
        e = min(n, s + block_rows)
        rows = torch.arange(e - s, device=z_nat.device)
        a = anchors[s:e]
        a_sq = None if anchors_sq is None else anchors_sq[s:e]
        acc = None
        for b, b_sq in sets:
            d = _dist_block(a, a_sq, b, b_sq, distance)
            d[rows, rows + s] = 0.0  # j != i: the anchor's own x_i and x'_i are excluded
            part = d @ onehot
            acc = part if acc is None else acc + part
        out[s:e] = acc.cpu().to(torch.float64)
    return out.numpy()


def _class_sums_cosine_linear(z_nat, z_adv, y, C: int) -> np.ndarray:
    """Cosine class sums through class sums of unit vectors (see :func:`_class_sums`).

    Computed in float64 (float32 on devices without float64, e.g. Apple MPS): the class
    sum ``count - <u_i, sum u_j>`` subtracts nearly equal numbers when classes are tight.
    """
    dt = torch.float32 if z_nat.device.type == "mps" else torch.float64

    def unit(z):  # one copy in dt, normalised in place (as F.normalize, eps 1e-12)
        v = z.to(dt, copy=True)
        v /= torch.linalg.vector_norm(v, dim=1, keepdim=True).clamp_min_(1e-12)
        return v

    def rowdot(a, b):  # (N,) row-wise inner products without an (N, D) temporary
        return (a.unsqueeze(1) @ b.unsqueeze(2)).reshape(-1)

    onehot = F.one_hot(y, C).to(dt)
    u = unit(z_nat)
    sums = onehot.T @ u                                     # (C, D) class sums of unit rows
    own = 1.0 - rowdot(u, u)                                # the anchor's own x_i ...
    n_sets = 1
    if z_adv is not None:
        v = unit(z_adv)
        sums += onehot.T @ v
        own += 1.0 - rowdot(u, v)                           # ... and x'_i
        del v
        n_sets = 2
    count = onehot.sum(0) * n_sets                          # (C,)
    S = count[None, :] - u @ sums.T                         # all j, including j = i
    rows = torch.arange(u.shape[0], device=u.device)
    S[rows, y] -= own
    return S.cpu().double().numpy()


def _per_anchor(S: np.ndarray, y: np.ndarray, C: int, n_sets: int, class_n: np.ndarray | None = None):
    """Per-anchor positive/negative means and per-anchor per-class means from class sums
    (``class_n``: the class sizes of the set, default those of ``y``)."""
    n = y.shape[0]
    if class_n is None:
        class_n = np.bincount(y, minlength=C)
    class_n = np.asarray(class_n, dtype=np.float64)
    cnt = np.broadcast_to(n_sets * class_n, (n, C)).copy()
    idx = np.arange(n)
    cnt[idx, y] -= n_sets
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(cnt > 0, S / np.where(cnt > 0, cnt, 1.0), np.nan)
        pos_cnt = cnt[idx, y]
        pos = np.where(pos_cnt > 0, S[idx, y] / np.maximum(pos_cnt, 1.0), np.nan)
        neg_cnt = cnt.sum(1) - pos_cnt
        neg_sum = S.sum(1) - S[idx, y]
        neg = np.where(neg_cnt > 0, neg_sum / np.maximum(neg_cnt, 1.0), np.nan)
    return pos, neg, per_class


def _nanmean(a: np.ndarray, axis=None):
    """Mean over non-NaN entries (NaN where there are none), without warnings."""
    ok = ~np.isnan(a)
    s = np.where(ok, a, 0.0).sum(axis)
    c = ok.sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def _group_nanmean(values: np.ndarray, groups: np.ndarray, G: int) -> np.ndarray:
    """Mean of ``values`` (N,) or (N, K) within each group (NaN entries ignored)."""
    values = values.reshape(values.shape[0], -1)
    ok = ~np.isnan(values)
    s = np.zeros((G, values.shape[1]))
    c = np.zeros((G, values.shape[1]))
    np.add.at(s, groups, np.where(ok, values, 0.0))
    np.add.at(c, groups, ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan).squeeze()


def _bootstrap(pos: np.ndarray, neg: np.ndarray, n_boot: int, level: float, seed: int):
    """Percentile CIs of mean(pos), mean(neg) and their ratio over resampled units."""
    rng = np.random.default_rng(seed)
    m = pos.shape[0]
    chunk = max(1, 4_000_000 // max(m, 1))
    has_nan = bool(np.isnan(pos).any() or np.isnan(neg).any())
    mean = _nanmean if has_nan else (lambda a, axis: a.mean(axis))
    bp, bn = [], []
    done = 0
    while done < n_boot:
        k = min(chunk, n_boot - done)
        idx = rng.integers(0, m, size=(k, m), dtype=np.int32 if m < 2**31 else np.int64)
        bp.append(mean(pos[idx], axis=1))
        bn.append(mean(neg[idx], axis=1))
        done += k
    bp, bn = np.concatenate(bp), np.concatenate(bn)
    with np.errstate(invalid="ignore", divide="ignore"):
        br = bp / bn
    q = [(1 - level) / 2, 1 - (1 - level) / 2]

    def ci(v):
        v = v[np.isfinite(v)]
        if v.size == 0:
            return (math.nan, math.nan)
        lo, hi = np.quantile(v, q)
        return (float(lo), float(hi))

    return ci(br), ci(bp), ci(bn)


def _t_quantile(level: float, df: int) -> float:
    """``t`` with ``P(|T| <= t) = level`` for Student's t with integer ``df`` degrees of
    freedom: bisection on the closed-form distribution function (Abramowitz and Stegun,
    26.7.3-4), without SciPy's import cost."""
    def inside(theta: float) -> float:   # P(|T| <= sqrt(df) tan(theta))
        s, c2 = math.sin(theta), math.cos(theta) ** 2
        term = total = 1.0
        if df % 2:
            for k in range(1, (df - 1) // 2):
                term *= (2 * k) / (2 * k + 1) * c2
                total += term
            return 2 / math.pi * (theta + s * math.cos(theta) * total) if df > 1 else 2 * theta / math.pi
        for k in range(1, df // 2):
            term *= (2 * k - 1) / (2 * k) * c2
            total += term
        return s * total

    lo, hi = 0.0, math.pi / 2
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if inside(mid) < level else (lo, mid)
    return math.sqrt(df) * math.tan(0.5 * (lo + hi))


def _group_sums_cosine(z_nat, z_adv, y: torch.Tensor, group: torch.Tensor, G: int, C: int):
    """Exact cosine mode's per-group parts of each anchor's positive and total sums.

    ``P[i, g]``: sum over set members j != i of group g with y_j = y_i of
    ``d(z_i, z_j) + d(z_i, z'_j)``; ``T[i, g]``: the same over all classes. By the linear
    identity of :func:`_class_sums_cosine_linear` both cost O(N D G), not O(N^2 D).

    Shape
    -----
    z_nat, z_adv: (N, D); y, group: (N,); returns P, T as float64 NumPy (N, G).
    """
    dt = torch.float32 if z_nat.device.type == "mps" else torch.float64

    def unit(z):
        v = z.to(dt, copy=True)
        v /= torch.linalg.vector_norm(v, dim=1, keepdim=True).clamp_min_(1e-12)
        return v

    u = unit(z_nat)
    members = u if z_adv is None else u + unit(z_adv)               # sum of a member's vectors
    n_sets = 1 if z_adv is None else 2
    own = n_sets - (u * members).sum(1)                            # the anchor's own terms
    gc = group * C + y
    sums = torch.zeros(G * C, u.shape[1], dtype=dt, device=u.device).index_add_(0, gc, members)
    counts = torch.bincount(gc, minlength=G * C).to(dt).reshape(G, C) * n_sets
    sums = sums.reshape(G, C, -1)
    T = counts.sum(1)[None, :] - u @ sums.sum(1).T                 # (N, G)
    P = torch.empty_like(T)
    for c in range(C):                                             # anchors of class c vs its sums
        rows = (y == c).nonzero().squeeze(1)
        if rows.numel():
            P[rows] = counts[:, c][None, :] - u[rows] @ sums[:, c].T
    rows = torch.arange(u.shape[0], device=u.device)
    T[rows, group] -= own
    P[rows, group] -= own
    return P.cpu().double().numpy(), T.cpu().double().numpy()


def _jackknife(S: np.ndarray, P: np.ndarray, T: np.ndarray, y: np.ndarray, group: np.ndarray,
               C: int, n_sets: int, level: float):
    """Delete-a-group jackknife intervals of R-DIV, ``d_a+`` and ``d_a-`` (exact mode).

    Removing group ``g`` removes its anchors and, from every other anchor's sums, the
    parts that group contributed: ``P[i, g]`` of the positive sum, ``T[i, g]`` of the total.

    Shape
    -----
    S: (N, C) class sums of the whole set; P, T: (N, G); y, group: (N,). Returns three
    (low, high) tuples.
    """
    G = P.shape[1]
    idx = np.arange(y.shape[0])
    pos_all, tot_all = S[idx, y], S.sum(1)
    class_n = np.bincount(y, minlength=C)
    stats = []
    for g in range(G):
        keep = group != g
        cn = (class_n - np.bincount(y[~keep], minlength=C)).astype(np.float64)
        yk = y[keep]
        pos_cnt = n_sets * (cn[yk] - 1)
        neg_cnt = n_sets * (cn.sum() - cn[yk])
        pos_sum = pos_all[keep] - P[keep, g]
        neg_sum = tot_all[keep] - T[keep, g] - pos_sum
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(pos_cnt > 0, pos_sum / np.maximum(pos_cnt, 1.0), np.nan)
            q = np.where(neg_cnt > 0, neg_sum / np.maximum(neg_cnt, 1.0), np.nan)
        dp, dn = float(_nanmean(p)), float(_nanmean(q))
        stats.append((dp / dn if dn > 0 else math.nan, dp, dn))
    stats = np.asarray(stats)                              # (G, 3): rdiv, d_pos, d_neg
    full_p, full_q, _ = _per_anchor(S, y, C, n_sets)
    dp, dn = float(_nanmean(full_p)), float(_nanmean(full_q))
    full = np.array([dp / dn if dn > 0 else math.nan, dp, dn])
    tq = _t_quantile(level, G - 1)
    cis = []
    for k in range(3):
        v = stats[:, k]
        v = v[np.isfinite(v)]
        if v.size < 2 or not math.isfinite(full[k]):
            cis.append((math.nan, math.nan))
            continue
        se = math.sqrt((v.size - 1) / v.size * float(((v - v.mean()) ** 2).sum()))
        cis.append((float(full[k] - tq * se), float(full[k] + tq * se)))
    return tuple(cis)


def _groups(n: int, G: int, seed: int) -> np.ndarray:
    """A seeded random split of ``n`` points into ``G`` groups of sizes differing by <= 1."""
    perm = np.random.default_rng(seed).permutation(n)
    group = np.empty(n, dtype=np.int64)
    group[perm] = np.arange(n) % G
    return group


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
