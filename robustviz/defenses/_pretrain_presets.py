"""The papers' pretraining objectives as named compositions of the pretraining terms:
:class:`AdvCL` (paper 002: multi-view NT-Xent plus the ClusterFit pseudo-label CE) and
:class:`ASCLPretrain` (paper 003: PGD-AT plus NT-Xent plus the supervised contrastive
loss over views). Each round-trips through ``config()`` / :func:`robustviz.defenses.build`
as one flat option dict.

References
----------
Fan et al., "When Does Contrastive Learning Preserve Adversarial Robustness from
Pretraining to Finetuning?" (AdvCL), NeurIPS 2021.
Paper 003: adversarial supervised contrastive pretraining (ASCL pretraining), Machine
Learning 2023.
"""
from __future__ import annotations

from robustviz._validate import check_nonnegative
from robustviz.defenses._base import Composite, register
from robustviz.defenses._clusterfit import PseudoLabelCE
from robustviz.defenses._pretrain import NTXent, ViewSupCon

__all__ = ["AdvCL", "ASCLPretrain"]


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
