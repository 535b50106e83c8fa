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

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from robustviz._utils import model_device, model_mode
from robustviz._validate import check_choice, check_int, check_nonnegative, check_positive
from robustviz.defenses._base import Composite, Term, register
from robustviz.defenses._ntxent import nt_xent
from robustviz.defenses._supcon import HEADS, _init_linear, _make_head, feature_dim

__all__ = ["NTXent", "ViewSupCon", "PseudoLabelCE", "AdvCL", "ASCLPretrain", "ClusterFit",
           "cluster_fit", "VIEWS"]

VIEWS = ("aug1", "aug2", "hfc", "lfc", "adv", "adv1", "adv2")
_ADV_START = {"adv": "x", "adv1": "aug1", "adv2": "aug2"}
CLUSTERFIT_FILE = "clusterfit.safetensors"


# ------------------------------------------------------------------------------ views
def step_views(ctx, names, *, radius: float = 8.0, aug: dict | None = None) -> dict[str, torch.Tensor]:
    """The clean views ``names`` of the step's batch, drawn once per step (cached in
    ``ctx.cache``) from the step's generator. Shape ``(B, C, H, W)`` each."""
    from robustviz.data._views import frequency_split, simclr_augment

    cache = ctx.cache.setdefault("views", {"x": ctx.x})
    for name in names:
        if name in cache:
            continue
        if name in ("aug1", "aug2"):
            cache[name] = simclr_augment(ctx.x, generator=ctx.generator, **(aug or {}))
        elif name in ("hfc", "lfc"):
            lfc, hfc = frequency_split(ctx.x, radius)
            cache["lfc"], cache["hfc"] = lfc, hfc
        elif name == "x_cf":
            cache[name] = crop_flip(ctx.x, ctx.generator)
        elif name in ("hfc_cf", "lfc_cf"):
            lfc, hfc = frequency_split(step_views(ctx, ["x_cf"])["x_cf"], radius)
            cache["lfc_cf"], cache["hfc_cf"] = lfc, hfc
    return {n: cache[n] for n in names}


def crop_flip(x: torch.Tensor, generator, padding: int = 4) -> torch.Tensor:
    """``RandomCrop(H, padding) + RandomHorizontalFlip`` of each image (the CIFAR protocol;
    AdvCL's released code builds its adversarial and HFC views on it). Shape kept."""
    from robustviz.data._augment import hflip, random_crop

    return hflip(random_crop(x, padding, generator=generator), generator=generator)


def _embed(ctx, x: torch.Tensor, branch: str | None, layer: str, proj: nn.Module | None) -> torch.Tensor:
    """``proj(features[layer](x))`` in BatchNorm branch ``branch``, flattened, float32."""
    from robustviz.models._dual_bn import bn_branch

    with bn_branch(ctx.model, branch):
        z = ctx.forward(x, None, layers=[layer])[layer].flatten(1).float()
    return proj(z) if proj is not None else z


def _feature_attack(ctx, model, x_start, fn, *, layer, eps, step_size, steps, branch):
    """PGD ascending ``fn(features) -> scalar`` from ``x_start`` (uniform start, last
    iterate), in the step's BatchNorm mode and precision and in BatchNorm branch
    ``branch``. Labels are placeholders (the loss is label-free or closes over its own)."""
    from robustviz.attacks import PGD, FeatureLoss
    from robustviz.models._dual_bn import bn_branch

    n = x_start.shape[0]

    def objective(feats, _y):
        z = feats[layer]
        if z.shape[0] != n:
            raise RuntimeError("the contrastive attack needs all rows at every step")
        return fn(z.flatten(1).float())

    atk = PGD(eps=eps, step_size=step_size, steps=steps, random_start="uniform", keep="last",
              loss=FeatureLoss(objective, layers=(layer,)), bn_mode=ctx.attack_bn, bf16=ctx.bf16)
    placeholder = torch.zeros(n, dtype=torch.long, device=x_start.device)
    with bn_branch(model, branch):
        x_adv = atk(model, x_start.detach(), placeholder, generator=ctx.generator)
    ctx.attack_calls += 1
    return x_adv.detach()


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


# ----------------------------------------------------------------------------- presets
class _PresetComposite(Composite):
    """A named composite whose config is its own flat option dict."""

    preset_options: dict = {}

    def config(self):
        out = {"name": self.name}
        for k in self.preset_options:
            v = getattr(self, k)
            out[k] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_config(cls, spec):
        spec = dict(spec)
        unknown = sorted(set(spec) - set(cls.preset_options))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for defense {cls.name!r}; valid: "
                             f"{list(cls.preset_options)}")
        return cls(**spec)


@register
class AdvCL(_PresetComposite):
    """AdvCL (Fan et al. 2021): 4-view NT-Xent over ``t1(x), t2(x), x + delta, x_HFC`` with
    ``delta`` from PGD on that loss, plus ``lambda_ce`` times the ClusterFit pseudo-label
    adversarial CE.

    Parameters
    ----------
    tau : float
        0.5.
    base_tau : float or None
        ``None`` (default): the paper's loss. 0.07: the released code's scaling of the
        contrastive term by 0.5 / 0.07 (about 7.1) relative to the CE term.
    lambda_ce : float
        Weight of the pseudo-label CE (0.2).
    hfc : bool
        Include the HFC view (the paper's ablation drops it).
    clusterfit : str or None
        Path of the ClusterFit cache; ``None`` drops the CE term (the paper's ablation).
    eps, step_size, steps : float, float, int
        PGD of both adversarial views (8/255, 2/255, 5).
    radius : float
        HFC threshold (8).
    head, head_dim : str, int
        Projection head of the NT-Xent (2-layer MLP to 128).
    crop_scale, jitter
        SimCLR augmentation (see :class:`NTXent`).
    view_batches : {"per_view", "joint"}
        ``"per_view"`` (default): ``t1(x)``, ``t2(x)`` and ``x_HFC`` each go through the model
        alone, with their own BatchNorm batch statistics (the released code); ``"joint"``: one
        batch of all clean views.
    x_crop_flip : bool
        Build ``x + delta``, ``x + delta_ce`` and ``x_HFC`` on a ``RandomCrop(padding 4) +
        flip`` of ``x`` (the released code; the paper is silent). Default False.

    Notes
    -----
    Two adversarial examples per step: ``x + delta`` ascends the NT-Xent (the contrastive
    view) and ``x + delta_ce`` ascends the pseudo-label CE (run through the ``"adv_ce"``
    BatchNorm branch), as the paper's eq. 10 maximises ``delta_ce`` inside the CE term
    only. The released code runs one PGD on the joint loss for both, which under sign-PGD
    is the same: ``x + delta`` reaches only the contrastive term and ``x + delta_ce`` only
    the CE term. With ``base_tau=None`` the NT-Xent is the paper's; the released code's
    SupCon base temperature 0.07 multiplies it by 0.5 / 0.07 = 7.14 (``base_tau=0.07``), so
    with ``lambda_ce=0.2`` the CE term weighs about 7.1 times less against the contrastive
    term there than in the paper's formula.
    """

    name = "advcl"
    preset_options = {"tau": 0.5, "base_tau": None, "lambda_ce": 0.2, "hfc": True, "clusterfit": None,
                      "eps": 8 / 255, "step_size": 2 / 255, "steps": 5, "radius": 8.0, "head": "mlp",
                      "head_dim": 128, "crop_scale": (0.2, 1.0), "jitter": (0.4, 0.4, 0.4, 0.1),
                      "view_batches": "per_view", "x_crop_flip": False}

    def __init__(self, *, tau=0.5, base_tau=None, lambda_ce=0.2, hfc=True, clusterfit=None, eps=8 / 255,
                 step_size=2 / 255, steps=5, radius=8.0, head="mlp", head_dim=128, crop_scale=(0.2, 1.0),
                 jitter=(0.4, 0.4, 0.4, 0.1), view_batches="per_view", x_crop_flip=False):
        if not isinstance(hfc, bool):
            raise TypeError(f"hfc must be True or False, got {hfc!r}")
        lambda_ce = check_nonnegative(lambda_ce, "lambda_ce")
        views = ("aug1", "aug2", "adv") + (("hfc",) if hfc else ())
        parts = [(NTXent(views=views, tau=tau, base_tau=base_tau, head=head, head_dim=head_dim, eps=eps,
                         step_size=step_size, steps=steps, radius=radius, crop_scale=crop_scale,
                         jitter=jitter, view_batches=view_batches, x_crop_flip=x_crop_flip), 1.0)]
        if clusterfit is not None:
            parts.append((PseudoLabelCE(clusterfit=clusterfit, eps=eps, step_size=step_size, steps=steps,
                                        x_crop_flip=x_crop_flip), lambda_ce))
        super().__init__(parts)
        self.tau, self.base_tau, self.lambda_ce, self.hfc = tau, base_tau, lambda_ce, hfc
        self.clusterfit = None if clusterfit is None else str(clusterfit)
        self.eps, self.step_size, self.steps, self.radius = eps, step_size, steps, radius
        self.head, self.head_dim = head, head_dim
        self.crop_scale, self.jitter = tuple(crop_scale), tuple(jitter)
        self.view_batches, self.x_crop_flip = view_batches, x_crop_flip


@register
class ASCLPretrain(_PresetComposite):
    """Paper 003's pretraining objective:
    ``L_AT + lambda1 * L_CL(x~_i + delta_i, x~_j + delta_j) + lambda2 * L_ASCL(x~_i, x + delta_ASCL)``.

    ``L_AT``: PGD-AT cross-entropy on ``x'`` (label-based PGD on CE; ``clean_ce`` adds the
    clean CE). ``L_CL``: NT-Xent over the two augmented views, both attacked by PGD on
    ``L_CL`` (label-free; the paper's eq. 5 perturbs both, ``cl_adv_views=1`` attacks only
    the second, the shorthand ``L_CL(x~_i, x~_j + delta_CL)``). ``L_ASCL``: supervised contrastive loss over
    an augmented view and the adversarial un-augmented image, attacked by PGD on
    ``L_ASCL`` with the labels (label-based). Separate BatchNorm for the branches works
    best in the paper: convert the model with :func:`robustviz.models.separate_bn`.

    Parameters
    ----------
    lambda1, lambda2 : float
        0.5 and 0.2.
    tau : float
        Temperature of both contrastive terms (0.5).
    eps, step_size, steps
        All three attacks.
    clean_ce : bool
    head, head_dim, crop_scale, jitter
        As :class:`NTXent` (one projection head per contrastive term).
    cl_adv_views : {2, 1}
        How many of ``L_CL``'s two augmented views are attacked (2: eq. 5).
    """

    name = "ascl_pretrain"
    preset_options = {"lambda1": 0.5, "lambda2": 0.2, "tau": 0.5, "eps": 8 / 255, "step_size": 2 / 255,
                      "steps": 5, "clean_ce": False, "head": "mlp", "head_dim": 128,
                      "crop_scale": (0.2, 1.0), "jitter": (0.4, 0.4, 0.4, 0.1), "cl_adv_views": 2}

    def __init__(self, *, lambda1=0.5, lambda2=0.2, tau=0.5, eps=8 / 255, step_size=2 / 255, steps=5,
                 clean_ce=False, head="mlp", head_dim=128, crop_scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1),
                 cl_adv_views=2):
        from robustviz.attacks import PGD
        from robustviz.defenses._baselines import PGDAT

        lambda1 = check_nonnegative(lambda1, "lambda1")
        lambda2 = check_nonnegative(lambda2, "lambda2")
        kw = dict(tau=tau, head=head, head_dim=head_dim, eps=eps, step_size=step_size, steps=steps,
                  crop_scale=crop_scale, jitter=jitter)
        at = PGDAT(attack=PGD(eps=eps, step_size=step_size, steps=steps, random_start="uniform"),
                   clean_ce=clean_ce)
        if cl_adv_views not in (1, 2) or isinstance(cl_adv_views, bool):
            raise ValueError(f"cl_adv_views must be 1 or 2, got {cl_adv_views!r}")
        cl_views = ("adv1", "adv2") if cl_adv_views == 2 else ("aug1", "adv2")
        super().__init__([(at, 1.0), (NTXent(views=cl_views, **kw), lambda1),
                          (ViewSupCon(views=("aug1", "adv"), head_seed=1, **kw), lambda2)])
        self.lambda1, self.lambda2, self.tau, self.clean_ce = lambda1, lambda2, tau, clean_ce
        self.cl_adv_views = cl_adv_views
        self.eps, self.step_size, self.steps = eps, step_size, steps
        self.head, self.head_dim = head, head_dim
        self.crop_scale, self.jitter = tuple(crop_scale), tuple(jitter)


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
