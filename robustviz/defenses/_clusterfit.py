"""ClusterFit pseudo-labels and AdvCL's pseudo-label adversarial cross-entropy term.

:func:`cluster_fit` runs K-means on the normalised features of a pretrained encoder for
several K and keeps the centres (:class:`ClusterFit`, cached in a run directory);
:class:`PseudoLabelCE` trains one linear head per K on the pseudo-labels of the
un-augmented images, under PGD on the same ensemble cross-entropy (paper 002).

References
----------
Yan et al., "ClusterFit: Improving Generalization of Visual Representations", CVPR 2020.
Fan et al., "When Does Contrastive Learning Preserve Adversarial Robustness from
Pretraining to Finetuning?" (AdvCL), NeurIPS 2021.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from robustviz._utils import model_device, model_mode
from robustviz._validate import check_int
from robustviz.defenses._base import Term, register
from robustviz.defenses._pretrain import _check_eps, _HeadMixin
from robustviz.defenses._pretrain_views import _embed, _feature_attack, step_views
from robustviz.defenses._supcon import _init_linear

__all__ = ["ClusterFit", "cluster_fit", "PseudoLabelCE"]

CLUSTERFIT_FILE = "clusterfit.safetensors"


# ---------------------------------------------------------------------------- ClusterFit
@dataclasses.dataclass
class ClusterFit:
    """K-means pseudo-labels of a pretrained encoder (ClusterFit), for several K.

    Attributes
    ----------
    ks : tuple of int
    centers : dict K -> Tensor ``(K, D)``
        Centres in the space of L2-normalised features.
    labels : dict K -> Tensor ``(N,)``
        The K-means labels of the fitting images (cached for the record).
    source : str
        Run directory of the encoder.
    layer : str
    seed : int
    encoder : nn.Module or None
        The encoder (loaded from ``source`` on :meth:`load`).
    """

    ks: tuple
    centers: dict
    labels: dict
    source: str
    layer: str = "penultimate"
    seed: int = 0
    encoder: nn.Module | None = None

    def assign(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Nearest-centre pseudo-label of each image for every K (the encoder in eval mode,
        no gradient). Shape ``(B, C, H, W)`` -> ``{K: (B,)}``."""
        if self.encoder is None:
            raise ValueError("this ClusterFit has no encoder: build it with cluster_fit() or load()")
        enc = self.encoder
        if model_device(enc) != x.device:
            enc.to(x.device)
            self.centers = {k: c.to(x.device) for k, c in self.centers.items()}
        feats = _normalised_features(enc, x, self.layer)
        return {k: torch.cdist(feats, self.centers[k].to(feats.dtype)).argmin(1) for k in self.ks}

    def save(self, path) -> Path:
        from robustviz import runs

        state = {"ks": list(self.ks), "source": self.source, "layer": self.layer, "seed": self.seed,
                 "centers": {str(k): self.centers[k].cpu() for k in self.ks},
                 "labels": {str(k): self.labels[k].cpu() for k in self.ks}}
        return runs.save_state(path, state)

    @classmethod
    def load(cls, path, *, device="cpu") -> "ClusterFit":
        from robustviz import runs

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no ClusterFit cache at {path}")
        st = runs.load_state(path)
        ks = tuple(int(k) for k in st["ks"])
        enc = runs.load_encoder(st["source"], device=device)
        return cls(ks=ks, centers={k: st["centers"][str(k)] for k in ks},
                   labels={k: st["labels"][str(k)] for k in ks}, source=st["source"], layer=st["layer"],
                   seed=int(st["seed"]), encoder=enc)


def _normalised_features(model, x, layer, batch_size: int = 1000) -> torch.Tensor:
    from robustviz.defenses._base import StepContext

    ctx = StepContext(model, x[:1], None, layers=[layer])
    out = []
    with model_mode(model, "eval"), torch.no_grad():
        for s in range(0, x.shape[0], batch_size):
            out.append(F.normalize(ctx.forward(x[s:s + batch_size], None, layers=[layer])[layer].flatten(1), dim=1))
    return torch.cat(out)


def cluster_fit(model: nn.Module, x: torch.Tensor, *, ks=(2, 10, 50, 100, 500), seed: int = 0,
                layer: str = "penultimate", source: str = "", n_init: int = 1) -> ClusterFit:
    """ClusterFit pseudo-labels: K-means (scikit-learn) on the L2-normalised ``layer``
    features of ``model`` for every K in ``ks``.

    Parameters
    ----------
    model : nn.Module
        The pretrained encoder (a classifier whose ``layer`` tap is the representation).
    x : Tensor
        Images in [0, 1], un-augmented.
    ks : sequence of int
        Cluster counts (AdvCL: 2, 10, 50, 100, 500).
    seed : int
        ``random_state`` of every K-means: the same seed gives the same labels.
    layer : str
    source : str
        Run directory of ``model`` (recorded; :meth:`ClusterFit.load` reloads it).
    n_init : int
        K-means restarts.

    Returns
    -------
    ClusterFit

    Shape
    -----
    ``x``: ``(N, C, H, W)``; ``labels[K]``: ``(N,)``; ``centers[K]``: ``(K, D)``.

    References
    ----------
    Yan et al., "ClusterFit: Improving Generalization of Visual Representations", CVPR 2020.
    """
    from sklearn.cluster import KMeans

    ks = tuple(check_int(k, "ks", minimum=2) for k in ks)
    if not ks:
        raise ValueError("ks must hold at least one cluster count")
    if max(ks) > x.shape[0]:
        raise ValueError(f"K = {max(ks)} clusters need at least that many images, got {x.shape[0]}")
    feats = _normalised_features(model, x, layer).double().cpu().numpy()
    centers, labels = {}, {}
    for k in ks:
        km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(feats)
        centers[k] = torch.as_tensor(km.cluster_centers_, dtype=torch.float32)
        labels[k] = torch.as_tensor(km.labels_, dtype=torch.long)
    return ClusterFit(ks=ks, centers=centers, labels=labels, source=str(source), layer=layer, seed=seed,
                      encoder=model)


# ----------------------------------------------------------------------------- the term
@register
class PseudoLabelCE(_HeadMixin, Term):
    """AdvCL's ClusterFit term: ``mean_K CE(head_K(f(x + delta_ce)), pseudo_K(x))``.

    ``pseudo_K(x)`` is the nearest K-means centre (fitted by :func:`cluster_fit` on the
    normalised features of a pretrained encoder, cached in a run directory) of that
    encoder's normalised features of the un-augmented image, i.e. the K-means label of
    the training image. ``delta_ce`` is PGD ascending the same ensemble CE. One linear
    head per K on the ``layer`` features, trained with the model.

    Parameters
    ----------
    clusterfit : str
        Path of a ``clusterfit.safetensors`` written by :meth:`ClusterFit.save` (it names
        the encoder's run directory).
    layer : str
    eps, step_size, steps
        The PGD of ``delta_ce``.
    branch : str
        BatchNorm branch of the adversarial CE (``"adv_ce"``).
    head_seed : int
    x_crop_flip : bool
        Start ``delta_ce`` from the step's ``RandomCrop(padding 4) + flip`` of ``x`` (AdvCL's
        released code); the pseudo-label stays that of the un-augmented image (the released
        code's labels are per training image).
    """

    name = "clusterfit_ce"
    options = {"clusterfit": None, "layer": "penultimate", "eps": 8 / 255, "step_size": 2 / 255,
               "steps": 5, "branch": "adv_ce", "head_seed": 0, "x_crop_flip": False}
    uses_labels = False

    def __init__(self, *, clusterfit: str | None = None, layer: str = "penultimate", eps: float = 8 / 255,
                 step_size: float = 2 / 255, steps: int = 5, branch: str = "adv_ce", head_seed: int = 0,
                 x_crop_flip: bool = False):
        super().__init__()
        if not isinstance(clusterfit, (str, Path)):
            raise TypeError("clusterfit must be the path of a clusterfit.safetensors written by "
                            f"robustviz.defenses.cluster_fit(...).save(path), got {clusterfit!r}")
        self.clusterfit = str(clusterfit)
        self.layer = layer
        self.eps, self.step_size, self.steps = _check_eps(eps, step_size, steps)
        self.branch = str(branch)
        self.head_seed = check_int(head_seed, "head_seed", minimum=0)
        if not isinstance(x_crop_flip, bool):
            raise TypeError(f"x_crop_flip must be True or False, got {x_crop_flip!r}")
        self.x_crop_flip = x_crop_flip
        fit = ClusterFit.load(self.clusterfit)
        self.__dict__["_fit"] = fit            # not a submodule: not trained, not checkpointed
        self.ks = tuple(fit.ks)
        self.heads = nn.ModuleDict()
        self._prepared = False

    def prepare(self, model, x=None, *, generator=None):
        if self._prepared:
            return self
        dim = self._feature_dim(model, x)
        g = torch.Generator().manual_seed(self.head_seed)
        dev = model_device(model)
        for k in self.ks:
            head = nn.Linear(dim, k)
            _init_linear(head, g)
            self.heads[str(k)] = head.to(dev)
        self._prepared = True
        return self

    def compute(self, ctx):
        fit = self.__dict__["_fit"]
        pseudo = fit.assign(ctx.x)                        # {K: (B,)}
        heads = [(self.heads[str(k)], pseudo[k]) for k in self.ks]

        def ens(feat, reduce=True):
            return sum(F.cross_entropy(h(feat), t) for h, t in heads) / len(heads)

        x_adv = step_views(ctx, ["x_cf"])["x_cf"] if self.x_crop_flip else ctx.x
        if self.eps > 0 and self.steps > 0:
            x_adv = _feature_attack(ctx, ctx.model, x_adv, ens, layer=self.layer, eps=self.eps,
                                    step_size=self.step_size, steps=self.steps, branch=self.branch)
        z = _embed(ctx, x_adv, self.branch, self.layer, None)
        loss = ens(z)
        acc = sum((h(z).detach().argmax(1) == t).float().mean() for h, t in heads) / len(heads)
        return loss, {self.name: loss, "pseudo_acc_adv": acc}
