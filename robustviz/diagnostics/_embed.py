"""t-SNE / UMAP maps of clean and adversarial features in one embedding.

Clean and adversarial features are embedded together so their positions are comparable
(paper 001 Fig. 6: 1,000 clean + 100 adversarial points, prediction entropy as a third
axis; paper 004: UMAP with n_neighbors 12, min_dist 0.01, correlation metric, densMAP).
New points, e.g. adversarial examples at a larger eps, are placed into an existing map
with :meth:`EmbeddingResult.transform` (openTSNE's ``TSNEEmbedding.transform`` or UMAP's
``transform``) instead of re-fitting, which would give an unrelated map.
"""
from __future__ import annotations

import dataclasses
import importlib
import warnings
from typing import Any

import numpy as np

from robustviz._validate import check_choice, check_int, check_nonnegative, check_positive
from robustviz.diagnostics._checks import as_features, as_labels, as_probs

__all__ = ["EmbeddingResult", "embed", "entropy", "UMAP_PAPER004"]

#: UMAP settings of paper 004 (ANCRA), Fig. 5.
UMAP_PAPER004 = {"n_neighbors": 12, "min_dist": 0.01, "metric": "correlation", "densmap": True}


def entropy(probs) -> np.ndarray:
    """Shannon entropy (nats) of each row of class probabilities.

    Shape
    -----
    probs: (N, C) -> (N,)
    """
    p = as_probs(probs, len(probs), "probs")
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -(p * logp).sum(1)


@dataclasses.dataclass(frozen=True, repr=False)
class EmbeddingResult:
    """A 2-D (or k-D) map of clean and adversarial features.

    Attributes
    ----------
    coords : ndarray of shape (M, k)
        Map coordinates; clean points first, then adversarial ones (see ``is_adv``).
    labels : ndarray of shape (M,)
        True class of each point.
    is_adv : ndarray of bool, shape (M,)
        True for adversarial points.
    entropy : ndarray of shape (M,) or None
        Prediction entropy (nats) of each point, when probabilities were given.
    method : str
        ``"tsne"`` or ``"umap"``.
    backend : str
        ``"opentsne"``, ``"sklearn"`` or ``"umap-learn"``.
    params : dict
        The settings the map was fitted with.
    """

    coords: np.ndarray
    labels: np.ndarray
    is_adv: np.ndarray
    entropy: np.ndarray | None
    method: str
    backend: str
    params: dict
    model: Any = dataclasses.field(default=None, compare=False)

    @property
    def n(self) -> int:
        return int(self.coords.shape[0])

    @property
    def n_adv(self) -> int:
        return int(self.is_adv.sum())

    @property
    def n_clean(self) -> int:
        return self.n - self.n_adv

    @property
    def can_transform(self) -> bool:
        """Whether :meth:`transform` can place new points into this map."""
        return self.model is not None and not (self.method == "umap" and
                                               self.params.get("densmap"))

    def transform(self, z, y=None, *, probs=None, is_adv: bool = True) -> "EmbeddingResult":
        """Place new feature rows into this map without moving the existing points.

        Parameters
        ----------
        z : Tensor or ndarray
            Features from the same layer (and model) as the fitted ones.
        y : Tensor or ndarray, optional
            Their labels (default -1, unknown).
        probs : Tensor or ndarray, optional
            Their predicted class probabilities, for the entropy axis.
        is_adv : bool
            Mark the new points as adversarial (default) or clean.

        Returns
        -------
        EmbeddingResult
            Only the new points, sharing this map (combine with :meth:`concat`).

        Shape
        -----
        z: (M, D) with the fitted D; y: (M,); probs: (M, C).
        """
        if self.model is None:
            raise NotImplementedError(
                "this map was fitted with scikit-learn's TSNE, which cannot place new points; "
                "install openTSNE (pip install 'robustviz[embed]') and call embed() again")
        if self.method == "umap" and self.params.get("densmap"):
            raise NotImplementedError(
                "umap-learn cannot place new points into a densMAP embedding; fit the map "
                "with densmap=False to use transform()")
        zt = as_features(z, "z")
        d = self.params.get("n_features")
        if d is not None and zt.shape[1] != d:
            raise ValueError(f"z must have {d} features like the fitted ones, got {zt.shape[1]}")
        m = zt.shape[0]
        labels = (np.full(m, -1, dtype=np.int64) if y is None
                  else as_labels(y, m, "y").cpu().numpy())
        ent = None if probs is None else entropy(as_probs(probs, m, "probs"))
        x = zt.to("cpu").double().numpy()
        if self.method == "tsne":
            # openTSNE's transform re-centres the reference map in place; undo that so the
            # fitted coordinates and the new ones stay in one frame
            ref = self.model
            shift = (np.max(ref, axis=0) + np.min(ref, axis=0)) / 2
            try:
                coords = np.array(ref.transform(x), dtype=np.float64) + np.asarray(shift)
            finally:
                ref += shift - (np.max(ref, axis=0) + np.min(ref, axis=0)) / 2
        else:
            coords = np.array(self.model.transform(x.astype(np.float32)), dtype=np.float64)
        return dataclasses.replace(self, coords=coords, labels=labels,
                                   is_adv=np.full(m, bool(is_adv)), entropy=ent)

    def concat(self, *others: "EmbeddingResult") -> "EmbeddingResult":
        """This map's points followed by those of ``others`` (e.g. from :meth:`transform`)."""
        parts = (self,) + others
        ents = [p.entropy for p in parts]
        ent = None if any(e is None for e in ents) else np.concatenate(ents)
        return dataclasses.replace(
            self, coords=np.concatenate([p.coords for p in parts]),
            labels=np.concatenate([p.labels for p in parts]),
            is_adv=np.concatenate([p.is_adv for p in parts]), entropy=ent)

    def cluster_of(self, points: "EmbeddingResult | None" = None, *, k: int = 10) -> np.ndarray:
        """The class whose cluster each point lies in, read off this map.

        A point's cluster is the majority true class of its ``k`` nearest clean points of
        this map (Euclidean distance in map coordinates; a tie goes to the smallest class,
        as in scikit-learn's ``KNeighborsClassifier``).

        Parameters
        ----------
        points : EmbeddingResult, optional
            Points placed into this map (e.g. by :meth:`transform`); default this map's own
            adversarial points.
        k : int
            Clean neighbours that vote (default 10).

        Returns
        -------
        ndarray of int64, shape (M,)
            One class per point.
        """
        pts = self._points(points)
        clean = ~self.is_adv
        ref, ref_y = self.coords[clean], self.labels[clean]
        if len(ref_y) == 0:
            raise ValueError("this map holds no clean points to define the clusters")
        k = check_int(k, "k", minimum=1, maximum=len(ref_y))
        if pts.coords.shape[1] != ref.shape[1]:
            raise ValueError(f"points must have {ref.shape[1]} map dimensions, got {pts.coords.shape[1]}")
        n_cls = int(ref_y.max()) + 1
        out = np.empty(pts.n, dtype=np.int64)
        for lo in range(0, pts.n, 1024):      # (1024, N) distances at a time
            d = ((pts.coords[lo:lo + 1024, None, :] - ref[None]) ** 2).sum(-1)
            near = np.argpartition(d, k - 1, axis=1)[:, :k]
            votes = np.zeros((len(d), n_cls), dtype=np.int64)
            np.add.at(votes, (np.arange(len(d))[:, None], ref_y[near]), 1)
            out[lo:lo + 1024] = votes.argmax(1)   # argmax takes the first, i.e. smallest, class of a tie
        return out

    def own_cluster_share(self, points: "EmbeddingResult | None" = None, *, k: int = 10) -> float:
        """The share of points (default: this map's adversarial ones) that lie in their own
        true class's cluster (see :meth:`cluster_of`): 1.0 when an attack moves no point out
        of its class's region of the map."""
        pts = self._points(points)
        if pts.n == 0:
            raise ValueError("no points to score: the map holds no adversarial points")
        if (pts.labels < 0).any():
            raise ValueError("every point needs its true label (transform(z, y) with y given)")
        return float((self.cluster_of(pts, k=k) == pts.labels).mean())

    def _points(self, points) -> "EmbeddingResult":
        if points is None:
            return dataclasses.replace(self, coords=self.coords[self.is_adv], labels=self.labels[self.is_adv],
                                       is_adv=self.is_adv[self.is_adv], entropy=None)
        if not isinstance(points, EmbeddingResult):
            raise TypeError(f"points must be an EmbeddingResult (from transform()), got {type(points).__name__}")
        return points

    def to_dict(self) -> dict[str, Any]:
        return {"coords": self.coords.tolist(), "labels": self.labels.tolist(),
                "is_adv": self.is_adv.tolist(),
                "entropy": None if self.entropy is None else self.entropy.tolist(),
                "method": self.method, "backend": self.backend, "params": dict(self.params)}

    def __repr__(self) -> str:
        ent = ", entropy" if self.entropy is not None else ""
        return (f"EmbeddingResult(method={self.method!r}, backend={self.backend!r}, "
                f"n_clean={self.n_clean}, n_adv={self.n_adv}, dims={self.coords.shape[1]}{ent})")


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def embed(z_nat, z_adv=None, y=None, *, y_adv=None, probs=None, probs_adv=None,
          method: str = "tsne", preset: str | None = None, n_components: int = 2,
          perplexity: float = 30.0, n_iter: int = 500, early_exaggeration_iter: int = 250,
          n_neighbors: int = 15,
          min_dist: float = 0.1, metric: str = "euclidean", densmap: bool = False,
          backend: str = "auto", n_jobs: int = -1, seed: int | None = 0,
          verbose: bool = False) -> EmbeddingResult:
    """Embed clean and adversarial features together with t-SNE or UMAP.

    Parameters
    ----------
    z_nat : Tensor or ndarray
        Clean features.
    z_adv : Tensor or ndarray, optional
        Adversarial features (any number of rows, e.g. 100 next to 1,000 clean ones).
    y : Tensor or ndarray
        Labels of the clean points.
    y_adv : Tensor or ndarray, optional
        Labels of the adversarial points (default ``y`` when ``z_adv`` has as many rows).
    probs, probs_adv : Tensor or ndarray, optional
        Predicted class probabilities of the clean / adversarial points; the map then holds
        each point's prediction entropy (paper 001 Fig. 6's third axis). Give both when
        ``z_adv`` is given.
    method : {"tsne", "umap"}
    preset : {None, "zhou2023"}
        ``"zhou2023"``: the UMAP setting of Zhou et al. (arXiv:2310.03358, 2023):
        n_neighbors 12, min_dist 0.01, correlation metric and densMAP; overrides those four
        arguments (``"paper004"`` is the same, the name it had first). densMAP maps cannot
        ``transform`` new points (umap-learn limitation).
    n_components : int
        Map dimensions (2 for the figures).
    perplexity, n_iter : float, int
        t-SNE perplexity (clipped to (M - 1) / 3 for small sets) and optimisation iterations
        (after the early-exaggeration phase).
    early_exaggeration_iter : int
        Iterations of the early-exaggeration phase (openTSNE; scikit-learn fixes 250).
    n_neighbors, min_dist, densmap : int, float, bool
        UMAP settings.
    metric : str
        Distance of the input space (t-SNE and UMAP).
    backend : {"auto", "opentsne", "sklearn"}
        t-SNE implementation. ``"auto"``: openTSNE (multithreaded, supports ``transform``)
        when installed, else scikit-learn with a warning.
    n_jobs : int
        Threads for openTSNE / scikit-learn (-1: as many as PyTorch's intra-op pool,
        ``torch.get_num_threads()``, which is all cores unless ``OMP_NUM_THREADS`` or
        ``torch.set_num_threads`` lowered it, so one setting governs both). UMAP runs single-threaded
        when ``seed`` is set (umap-learn's rule for reproducibility).
    seed : int or None
        Random state of the embedding (same seed, same map on CPU with n_jobs=1).
    verbose : bool

    Returns
    -------
    EmbeddingResult

    Shape
    -----
    z_nat: (N, D); z_adv: (M, D); y: (N,); y_adv: (M,); probs: (N, C); probs_adv: (M, C).

    References
    ----------
    Bui et al. (paper 001), Fig. 6; Zhou et al., ANCRA (paper 004), UMAP figures;
    Policar et al., openTSNE (transform of new points).
    """
    check_choice(method, "method", ("tsne", "umap"))
    check_choice(preset, "preset", (None, "zhou2023", "paper004"))
    check_choice(backend, "backend", ("auto", "opentsne", "sklearn"))
    n_components = check_int(n_components, "n_components", minimum=1)
    check_positive(perplexity, "perplexity")
    n_iter = check_int(n_iter, "n_iter", minimum=1)
    early_exaggeration_iter = check_int(early_exaggeration_iter, "early_exaggeration_iter")
    n_neighbors = check_int(n_neighbors, "n_neighbors", minimum=2)
    check_nonnegative(min_dist, "min_dist")
    n_jobs = check_int(n_jobs, "n_jobs", minimum=-1)
    if n_jobs == 0:
        raise ValueError("n_jobs must be -1 (all cores) or >= 1, got 0")
    if n_jobs == -1:
        import torch

        n_jobs = max(1, torch.get_num_threads())
    if seed is not None:
        seed = check_int(seed, "seed", minimum=0)
    if preset is not None and method != "umap":
        raise ValueError(f"preset={preset!r} is a UMAP setting; use method='umap'")
    if preset in ("zhou2023", "paper004"):
        n_neighbors, min_dist = UMAP_PAPER004["n_neighbors"], UMAP_PAPER004["min_dist"]
        metric, densmap = UMAP_PAPER004["metric"], UMAP_PAPER004["densmap"]

    zn = as_features(z_nat, "z_nat", min_rows=2)
    if y is None:
        raise TypeError("embed() needs the labels y of the clean points")
    labels = as_labels(y, zn.shape[0], "y").cpu().numpy()
    parts = [zn.to("cpu").double().numpy()]
    is_adv = [np.zeros(zn.shape[0], dtype=bool)]
    lab = [labels]
    if z_adv is not None:
        za = as_features(z_adv, "z_adv")
        if za.shape[1] != zn.shape[1]:
            raise ValueError(f"z_adv must have {zn.shape[1]} features like z_nat, "
                             f"got {za.shape[1]}")
        if y_adv is None:
            if za.shape[0] != zn.shape[0]:
                raise ValueError("z_adv has another number of rows than z_nat: give y_adv")
            y_adv = y
        lab.append(as_labels(y_adv, za.shape[0], "y_adv").cpu().numpy())
        parts.append(za.to("cpu").double().numpy())
        is_adv.append(np.ones(za.shape[0], dtype=bool))
    elif y_adv is not None or probs_adv is not None:
        raise ValueError("y_adv / probs_adv need z_adv")
    ent = None
    if probs is not None:
        ents = [entropy(as_probs(probs, zn.shape[0], "probs"))]
        if z_adv is not None:
            if probs_adv is None:
                raise ValueError("probs is given but probs_adv is not: give both (or neither) "
                                 "so every point has an entropy")
            ents.append(entropy(as_probs(probs_adv, parts[1].shape[0], "probs_adv")))
        ent = np.concatenate(ents)
    elif probs_adv is not None:
        raise ValueError("probs_adv is given but probs is not: give both (or neither)")
    x = np.concatenate(parts)
    m = x.shape[0]
    if m < 5:
        raise ValueError(f"need at least 5 points to embed, got {m}")

    params: dict[str, Any] = {"n_components": n_components, "metric": metric, "seed": seed,
                              "n_features": int(x.shape[1])}
    model = None
    if method == "tsne":
        perp = float(min(perplexity, max(1.0, (m - 1) / 3.0)))
        params.update(perplexity=perp, n_iter=n_iter,
                      early_exaggeration_iter=early_exaggeration_iter)
        ot = _import("openTSNE") if backend in ("auto", "opentsne") else None
        if ot is None and backend == "opentsne":
            raise ImportError("backend='opentsne' needs openTSNE: pip install 'robustviz[embed]'")
        if ot is not None:
            used = "opentsne"
            tsne = ot.TSNE(n_components=n_components, perplexity=perp, n_iter=n_iter,
                           early_exaggeration_iter=early_exaggeration_iter, metric=metric,
                           n_jobs=n_jobs, random_state=seed, verbose=verbose,
                           negative_gradient_method="auto" if n_components <= 2 else "bh")
            model = tsne.fit(x)
            coords = np.array(model, dtype=np.float64)  # a copy: openTSNE may edit its map
        else:
            if backend == "auto":
                warnings.warn("openTSNE is not installed; using scikit-learn's TSNE (slower, and "
                              "the map cannot transform new points). pip install "
                              "'robustviz[embed]'", RuntimeWarning, stacklevel=2)
            from sklearn.manifold import TSNE

            used = "sklearn"
            tsne = TSNE(n_components=n_components, perplexity=perp,
                        max_iter=max(250, n_iter + 250), metric=metric, init="pca",
                        random_state=seed, n_jobs=n_jobs, verbose=int(verbose),
                        method="barnes_hut" if n_components <= 3 else "exact")
            coords = np.array(tsne.fit_transform(x), dtype=np.float64)
    else:
        if backend == "sklearn":
            raise ValueError("backend='sklearn' applies to t-SNE only")
        umap = _import("umap")
        if umap is None:
            raise ImportError("method='umap' needs umap-learn: pip install 'robustviz[embed]'")
        used = "umap-learn"
        nn = int(min(n_neighbors, m - 1))
        params.update(n_neighbors=nn, min_dist=float(min_dist), densmap=bool(densmap))
        with warnings.catch_warnings():
            # umap-learn warns that a fixed random_state disables parallelism: by design here
            warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
            model = umap.UMAP(n_components=n_components, n_neighbors=nn, min_dist=float(min_dist),
                              metric=metric, densmap=bool(densmap), random_state=seed,
                              transform_seed=seed if seed is not None else 42,
                              n_jobs=1 if seed is not None else n_jobs, verbose=verbose)
            coords = np.asarray(model.fit_transform(x.astype(np.float32)), dtype=np.float64)
    return EmbeddingResult(coords=coords, labels=np.concatenate(lab),
                           is_adv=np.concatenate(is_adv), entropy=ent, method=method,
                           backend=used, params=params, model=model)
