"""Robust contrastive pretraining as loss terms: SimCLR, adversarial SimCLR, AdvCL
(paper 002) and ASCL pretraining (paper 003), run by the one Trainer.

A term here builds its views from the step's clean batch ``ctx.x`` (the loader gives
un-augmented images): ``"aug1"``, ``"aug2"`` (two SimCLR augmentations), ``"hfc"``/``"lfc"``
(frequency components of ``x``), and adversarial views crafted by PGD on the term's own
contrastive loss through the attack core's custom-loss path
(:class:`robustviz.attacks.FeatureLoss`): ``"adv"`` starts from the un-augmented ``x``
(AdvCL), ``"adv1"``/``"adv2"`` from ``"aug1"``/``"aug2"`` (adversarial SimCLR, both views
attacked). Augmented views are drawn once per step and shared by every term of a defense.
With ``x_crop_flip`` the image the ``"adv"``, ``"hfc"``/``"lfc"`` views and the ClusterFit
attack start from is ``RandomCrop(padding 4) + flip`` of ``x`` (AdvCL's released code; one
draw per step shared by the terms); the SimCLR views are still drawn from ``x``.

Label-free terms (:class:`NTXent`) never read the labels the Trainer passes; a data set
without labels trains with any placeholder labels (zeros).

With a model converted by :func:`robustviz.models.separate_bn`, clean views run through the
``"clean"`` BatchNorm branch, contrastive adversarial views through ``"adv_cl"`` and the
pseudo-label CE through ``"adv_ce"``; supervised terms (PGD-AT) use the model's default
branch (``"adv_ce"``).

The views are built in :mod:`robustviz.defenses._pretrain_views`; the ClusterFit
pseudo-labels and their term in :mod:`robustviz.defenses._clusterfit`; the named
compositions (:class:`AdvCL`, :class:`ASCLPretrain`) in
:mod:`robustviz.defenses._pretrain_presets`.

References
----------
Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations"
(SimCLR), ICML 2020.
Jiang et al., "Robust Pre-Training by Adversarial Contrastive Learning" (ACL), NeurIPS 2020;
Kim et al., "Adversarial Self-Supervised Contrastive Learning" (RoCL), NeurIPS 2020.
Fan et al., "When Does Contrastive Learning Preserve Adversarial Robustness from
Pretraining to Finetuning?" (AdvCL), NeurIPS 2021.
Paper 003: adversarial supervised contrastive pretraining (ASCL pretraining), Machine
Learning 2023.
Yan et al., "ClusterFit: Improving Generalization of Visual Representations", CVPR 2020.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustviz._utils import model_device
from robustviz._validate import check_choice, check_int, check_nonnegative, check_positive
from robustviz.defenses._base import Term, register
from robustviz.defenses._ntxent import nt_xent
from robustviz.defenses._pretrain_views import VIEWS, _ADV_START, _embed, _feature_attack, step_views
from robustviz.defenses._supcon import HEADS, _make_head, feature_dim

__all__ = ["NTXent", "ViewSupCon"]


class _HeadMixin:
    """A projection head on the ``layer`` features, built in :meth:`prepare`."""

    def _feature_dim(self, model, x):
        return feature_dim(model, x, self.layer, what="the heads")

    def _maybe_prepare(self, model, x):
        if not self._prepared:
            self.prepare(model, x)


def _check_eps(eps, step_size, steps):
    eps = check_nonnegative(eps, "eps", upper=1.0)
    step_size = check_positive(step_size, "step_size")
    steps = check_int(steps, "steps", minimum=0)
    return eps, step_size, steps


# ------------------------------------------------------------------------------ terms
@register
class NTXent(_HeadMixin, Term):
    """Multi-view NT-Xent over views of the batch, adversarial views crafted on the same
    loss (label-free). SimCLR: ``views=("aug1", "aug2")``; AdvCL's contrastive part:
    ``("aug1", "aug2", "adv", "hfc")``; adversarial SimCLR: ``("adv1", "adv2")``.

    Parameters
    ----------
    views : sequence of str
        At least two of ``aug1, aug2, hfc, lfc, adv, adv1, adv2`` (see the module notes).
    tau : float
        Temperature (0.5).
    base_tau : float or None
        ``None``: the paper's loss; a number rescales it by ``tau / base_tau`` (AdvCL's code:
        0.07, a factor 0.5 / 0.07), see :func:`robustviz.defenses.nt_xent`.
    head : {"none", "linear", "mlp", "mlp_bn"}
        Projection head (SimCLR: a 2-layer MLP) to ``head_dim``; trained with the model,
        thrown away at finetuning. ``"mlp_bn"``: Linear - BatchNorm1d - ReLU - Linear (AdvCL's
        released code).
    head_dim, head_seed : int
    layer : str
        The encoder's output tap (``"penultimate"``).
    eps, step_size, steps : float, float, int
        Linf PGD of the adversarial views (uniform start, last iterate), ascending this
        term's loss with the clean views held fixed.
    radius : float
        HFC/LFC threshold (AdvCL: 8).
    crop_scale : tuple of float
        SimCLR crop area range.
    jitter : tuple of 4 floats
        Colour jitter strengths (brightness, contrast, saturation, hue); applied with
        probability 0.8, grayscale with 0.2 (SimCLR).
    clean_branch, adv_branch : str
        BatchNorm branches of the clean and adversarial views (separate-BN models only).
    view_batches : {"joint", "per_view"}
        ``"joint"``: the clean views go through the model as one batch (one set of BatchNorm
        batch statistics, as SimCLR's code); ``"per_view"``: one forward pass per view, each
        normalised with its own batch statistics (AdvCL's released code; the HFC view's
        statistics differ a lot from natural images'). Several adversarial views are attacked
        together either way.
    x_crop_flip : bool
        Build the ``"adv"``, ``"hfc"`` and ``"lfc"`` views on ``RandomCrop(padding 4) + flip``
        of ``x`` instead of ``x`` itself (AdvCL's released code).

    Logs the term under its name, and ``pos_sim`` (mean cosine similarity of the first two
    views of the same image).
    """

    name = "ntxent"
    options = {"views": ("aug1", "aug2"), "tau": 0.5, "base_tau": None, "head": "mlp", "head_dim": 128,
               "head_seed": 0, "layer": "penultimate", "eps": 8 / 255, "step_size": 2 / 255, "steps": 5,
               "radius": 8.0, "crop_scale": (0.2, 1.0), "jitter": (0.4, 0.4, 0.4, 0.1),
               "clean_branch": "clean", "adv_branch": "adv_cl", "view_batches": "joint", "x_crop_flip": False}
    uses_labels = False

    def __init__(self, *, views=("aug1", "aug2"), tau: float = 0.5, base_tau: float | None = None,
                 head: str = "mlp", head_dim: int = 128, head_seed: int = 0, layer: str = "penultimate",
                 eps: float = 8 / 255, step_size: float = 2 / 255, steps: int = 5, radius: float = 8.0,
                 crop_scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), clean_branch: str = "clean",
                 adv_branch: str = "adv_cl", view_batches: str = "joint", x_crop_flip: bool = False):
        super().__init__()
        views = tuple(views)
        if len(views) < 2 or len(set(views)) != len(views):
            raise ValueError(f"views must name at least two distinct views, got {views!r}")
        for v in views:
            check_choice(v, "views", VIEWS)
        self.views = views
        self.tau = check_positive(tau, "tau")
        self.base_tau = None if base_tau is None else check_positive(base_tau, "base_tau")
        self.head = check_choice(head, "head", HEADS)
        self.head_dim = check_int(head_dim, "head_dim", minimum=1)
        self.head_seed = check_int(head_seed, "head_seed", minimum=0)
        if not isinstance(layer, str):
            raise TypeError(f"layer must be a tap name, got {layer!r}")
        self.layer = layer
        self.eps, self.step_size, self.steps = _check_eps(eps, step_size, steps)
        self.radius = check_nonnegative(radius, "radius")
        self.crop_scale = tuple(float(v) for v in crop_scale)
        self.jitter = tuple(float(v) for v in jitter)
        self.clean_branch, self.adv_branch = str(clean_branch), str(adv_branch)
        self.view_batches = check_choice(view_batches, "view_batches", ("joint", "per_view"))
        if not isinstance(x_crop_flip, bool):
            raise TypeError(f"x_crop_flip must be True or False, got {x_crop_flip!r}")
        self.x_crop_flip = x_crop_flip
        self.projection: nn.Module | None = None
        self._prepared = head == "none"

    def layers(self):
        return {"logits"}

    def prepare(self, model, x=None, *, generator=None):
        """Build the projection head on the model's device (idempotent)."""
        if self._prepared:
            return self
        dim = self._feature_dim(model, x)
        self.projection = _make_head(self.head, dim, self.head_dim, self.head_seed).to(model_device(model))
        self._prepared = True
        return self

    def _ids(self, ctx, b: int) -> torch.Tensor:
        return torch.arange(b, device=ctx.x.device)

    def compute(self, ctx):
        b = ctx.x.shape[0]
        clean_names = [v for v in self.views if v not in _ADV_START]
        adv_names = [v for v in self.views if v in _ADV_START]
        # where each view is read from: with x_crop_flip, x and its frequency views come from
        # the step's crop+flip of x (drawn once, shared with the ClusterFit term)
        src = {v: (f"{v}_cf" if self.x_crop_flip and v in ("hfc", "lfc") else v) for v in clean_names}
        x_name = "x_cf" if self.x_crop_flip else "x"
        start = {a: (x_name if _ADV_START[a] == "x" else _ADV_START[a]) for a in adv_names}
        need = set(src.values()) | set(start.values()) - {"x"}
        views = step_views(ctx, sorted(need), radius=self.radius,
                           aug={"crop_scale": self.crop_scale, "jitter": self.jitter})
        views["x"] = ctx.x
        z: dict[str, torch.Tensor] = {}
        if clean_names and self.view_batches == "per_view":   # each view its own batch statistics
            for v in clean_names:
                z[v] = _embed(ctx, views[src[v]], self.clean_branch, self.layer, self.projection)
        elif clean_names:
            zc = _embed(ctx, torch.cat([views[src[v]] for v in clean_names]), self.clean_branch, self.layer,
                        self.projection)
            z.update(zip(clean_names, zc.split(b)))
        ids = self._ids(ctx, b)
        if adv_names:
            if self.eps == 0 or self.steps == 0:
                x_adv = torch.cat([views[start[a]] for a in adv_names])
            else:
                const = {k: v.detach() for k, v in z.items()}
                proj = self.projection

                def fn(feat):
                    za = proj(feat) if proj is not None else feat
                    parts = dict(const)
                    parts.update(zip(adv_names, za.split(b)))
                    return nt_xent([parts[v] for v in self.views], tau=self.tau, ids=ids)

                x_adv = _feature_attack(ctx, ctx.model, torch.cat([views[start[a]] for a in adv_names]),
                                        fn, layer=self.layer, eps=self.eps, step_size=self.step_size,
                                        steps=self.steps, branch=self.adv_branch)
            za = _embed(ctx, x_adv, self.adv_branch, self.layer, self.projection)
            z.update(zip(adv_names, za.split(b)))
        loss = nt_xent([z[v] for v in self.views], tau=self.tau, ids=ids, base_tau=self.base_tau)
        first, second = z[self.views[0]], z[self.views[1]]
        pos_sim = F.cosine_similarity(first.detach(), second.detach(), dim=1).mean()
        return loss, {self.name: loss, f"{self.name}_pos_sim": pos_sim}

    def config(self):
        out = super().config()
        for k in ("crop_scale", "jitter", "views"):
            out[k] = list(out[k])
        return out


@register
class ViewSupCon(NTXent):
    """Supervised contrastive loss over views (same class = positive, every other row in
    the denominator), adversarial views crafted on this loss with the labels
    (label-based attack): paper 003's ``L_ASCL`` with ``views=("aug1", "adv")``.
    Options as :class:`NTXent` (temperature default 0.5)."""

    name = "view_supcon"
    uses_labels = True

    def _ids(self, ctx, b):
        return ctx.y

