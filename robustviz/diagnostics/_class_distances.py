"""Per-anchor, per-class distance sums: the class x class distances behind R-DIV.

``S[i, c]`` is the sum of the distances from anchor ``i`` (its natural feature) to the
set members of class ``c`` (natural and, when given, adversarial features), the anchor's
own ``x_i`` and ``x'_i`` left out. :func:`_per_anchor` turns the sums into each anchor's
mean distance to its positives, its negatives and every class, from which
:func:`robustviz.diagnostics.divergence` builds ``d_a+``, ``d_a-``, R-DIV and its
``class_matrix``. Cosine sums go through a linear identity (O(N D C)); L2 sums through
blocks of anchors, so that the N x N distance matrix never exists at once.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from robustviz._utils import tqdm

_BLOCK_ELEMS = 1 << 21  # distance entries per block (8 MiB in float32)


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

