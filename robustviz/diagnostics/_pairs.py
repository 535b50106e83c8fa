"""Positive-pair and negative-pair distances (paper 004, Fig. 1 and Fig. 6).

A positive pair is an example and its adversarial example, ``(x, x')``; a negative pair is
an example and an example of another class (paper 004's "OE": by default a random
other-class example of the set, or any given negative such as one attacked toward x's
label). For each pair both the cosine similarity and the L2 distance of their latent
features are kept, and :meth:`PairDistances.histogram` gives the 20-bin density
histograms of the paper.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from robustviz._validate import check_choice, check_int
from robustviz.diagnostics._checks import as_features, as_labels

__all__ = ["PairDistances", "PairHistogram", "pair_distances"]


@dataclasses.dataclass(frozen=True, repr=False)
class PairHistogram:
    """Histograms of positive and negative pairs on shared bin edges.

    Attributes
    ----------
    metric : str
        ``"cosine"`` (cosine similarity) or ``"l2"`` (Euclidean distance).
    edges : ndarray of shape (bins + 1,)
    pos, neg : ndarray of shape (bins,)
        Densities (``density=True``: each integrates to 1) or counts.
    density : bool
    """

    metric: str
    edges: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    density: bool

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    @property
    def widths(self) -> np.ndarray:
        return np.diff(self.edges)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "edges": self.edges.tolist(), "pos": self.pos.tolist(),
                "neg": self.neg.tolist(), "density": self.density}

    def __repr__(self) -> str:
        return (f"PairHistogram(metric={self.metric!r}, bins={len(self.pos)}, "
                f"range=({self.edges[0]:.4g}, {self.edges[-1]:.4g}), density={self.density})")


@dataclasses.dataclass(frozen=True, repr=False)
class PairDistances:
    """Cosine similarities and L2 distances of positive and negative pairs (paper 004).

    Attributes
    ----------
    pos_cosine, pos_l2 : ndarray of shape (N,)
        Between ``f(x_i)`` and ``f(x'_i)``.
    neg_cosine, neg_l2 : ndarray of shape (N,)
        Between ``f(x_i)`` and its negative's feature.
    neg_index : ndarray of shape (N,)
        Row of the set used as negative of each anchor (-1 where ``z_neg`` was given).
    negatives : str
        ``"random"`` (a random other-class example of the set) or ``"given"``.
    """

    pos_cosine: np.ndarray
    pos_l2: np.ndarray
    neg_cosine: np.ndarray
    neg_l2: np.ndarray
    neg_index: np.ndarray
    negatives: str
    seed: int

    @property
    def n(self) -> int:
        return int(self.pos_cosine.shape[0])

    def histogram(self, metric: str = "cosine", *, bins: int = 20, density: bool = True,
                  range: tuple[float, float] | None = None) -> PairHistogram:
        """Histograms of the positive and negative pairs on the same ``bins`` edges.

        Parameters
        ----------
        metric : {"cosine", "l2"}
        bins : int
            Number of bins (paper 004: 20).
        density : bool
            Normalise each histogram to integrate to 1 (paper 004: frequency density).
        range : (float, float), optional
            Bin range; default covers both positive and negative values.
        """
        check_choice(metric, "metric", ("cosine", "l2"))
        bins = check_int(bins, "bins", minimum=1)
        pos = self.pos_cosine if metric == "cosine" else self.pos_l2
        neg = self.neg_cosine if metric == "cosine" else self.neg_l2
        if range is None:
            lo = float(min(pos.min(), neg.min()))
            hi = float(max(pos.max(), neg.max()))
            if hi <= lo:
                lo, hi = lo - 0.5, hi + 0.5
            range = (lo, hi)
        edges = np.histogram_bin_edges(np.concatenate([pos, neg]), bins=bins, range=range)
        hp, _ = np.histogram(pos, bins=edges, density=density)
        hn, _ = np.histogram(neg, bins=edges, density=density)
        return PairHistogram(metric=metric, edges=edges, pos=hp, neg=hn, density=bool(density))

    def summary(self) -> dict[str, float]:
        """Means and standard deviations of the four distributions."""
        out = {}
        for name in ("pos_cosine", "pos_l2", "neg_cosine", "neg_l2"):
            v = getattr(self, name)
            out[f"{name}_mean"] = float(v.mean())
            out[f"{name}_std"] = float(v.std())
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}

    def __repr__(self) -> str:
        s = self.summary()
        return (f"PairDistances(n={self.n}, negatives={self.negatives!r}, "
                f"cos PP {s['pos_cosine_mean']:.3f} / NP {s['neg_cosine_mean']:.3f}, "
                f"L2 PP {s['pos_l2_mean']:.3f} / NP {s['neg_l2_mean']:.3f})")


def _random_other_class(y: torch.Tensor, seed: int) -> torch.Tensor:
    """For each i a uniformly random j with y_j != y_i (vectorised, seeded)."""
    n = y.shape[0]
    g = torch.Generator().manual_seed(seed)
    yc = y.cpu()
    order = torch.argsort(yc, stable=True)
    C = int(yc.max()) + 1
    counts = torch.bincount(yc, minlength=C)
    start = torch.cumsum(counts, 0) - counts          # first position of each class in order
    others = n - counts[yc]                            # candidates per anchor
    r = (torch.rand(n, generator=g, dtype=torch.float64) * others).long()
    r = torch.minimum(r, others - 1)
    pos = torch.where(r < start[yc], r, r + counts[yc])  # skip the anchor's class block
    return order[pos].to(y.device)


def pair_distances(z_nat, z_adv, y, *, z_neg=None, y_neg=None, seed: int = 0) -> PairDistances:
    """Positive-pair and negative-pair cosine similarities and L2 distances.

    Parameters
    ----------
    z_nat : Tensor or ndarray
        Latent features of the natural examples (the anchors).
    z_adv : Tensor or ndarray
        Features of their adversarial examples (positive pairs ``(x_i, x'_i)``).
    y : Tensor or ndarray
        Labels of the anchors.
    z_neg : Tensor or ndarray, optional
        One negative per anchor, e.g. the feature of an other-class example attacked
        toward ``y_i`` (paper 004's OE). Default: a random other-class example of the set
        (its natural feature), drawn with ``seed``.
    y_neg : Tensor or ndarray, optional
        Labels of ``z_neg``; when given, every negative must have another label than its
        anchor.
    seed : int
        Seeds the choice of random negatives.

    Returns
    -------
    PairDistances

    Shape
    -----
    z_nat, z_adv, z_neg: (N, D); y, y_neg: (N,).

    References
    ----------
    Zhou et al., "Robust Representation Learning via Asymmetric Negative Contrast and Reverse
    Attention", arXiv:2310.03358, 2023, Fig. 1 and Fig. 6.
    """
    seed = check_int(seed, "seed", minimum=0)
    z_nat = as_features(z_nat, "z_nat", min_rows=2)
    n = z_nat.shape[0]
    z_adv = as_features(z_adv, "z_adv", like=z_nat)
    y = as_labels(y, n, "y", device=z_nat.device)
    if z_neg is None:
        if y_neg is not None:
            raise ValueError("y_neg is only used together with z_neg")
        if torch.unique(y).numel() < 2:
            raise ValueError("y must hold at least two classes to draw other-class negatives")
        idx = _random_other_class(y, seed)
        neg = z_nat[idx]
        neg_index = idx.cpu().numpy()
        kind = "random"
    else:
        neg = as_features(z_neg, "z_neg", like=z_nat)
        if y_neg is not None:
            y_neg = as_labels(y_neg, n, "y_neg", device=z_nat.device)
            same = (y_neg == y).nonzero().flatten()
            if same.numel():
                raise ValueError(f"y_neg must differ from y for every anchor (a negative is of "
                                 f"another class); rows {same[:5].tolist()} share the label")
        neg_index = np.full(n, -1, dtype=np.int64)
        kind = "given"

    def cos(a, b):
        return F.cosine_similarity(a.cpu().double(), b.cpu().double(), dim=1,
                                   eps=1e-12).numpy()

    def l2(a, b):
        return torch.linalg.vector_norm(a.cpu().double() - b.cpu().double(), dim=1).numpy()

    arrays = dict(pos_cosine=cos(z_nat, z_adv), pos_l2=l2(z_nat, z_adv),
                  neg_cosine=cos(z_nat, neg), neg_l2=l2(z_nat, neg), neg_index=neg_index)
    for a in arrays.values():
        a.setflags(write=False)
    return PairDistances(**arrays, negatives=kind, seed=seed)
