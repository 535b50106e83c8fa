"""Paper 001: adversarial supervised contrastive learning (ASCL) with local selection.

``L = L_AT + lambda_SCL * L_SCL + lambda_VAT * L_VAT`` where ``L_SCL`` is a supervised
contrastive loss over the ``2B`` vectors ``H = [z(x); z(x')]`` with the positive/negative
selections Global, Hard-LS, Soft-LS and Leaked-LS, and ``L_VAT = KL(p(x) || p(x'))``.

``L_SCL`` is reduced as the paper's eq. 3 writes it,
``L_SCL = (1/N) sum_i (L_i^scl + L_i^a,scl)``: the natural and the adversarial anchor's
losses of each sample are *summed*, then averaged over the ``N`` samples, which is twice the
mean over the ``2N`` anchors (``reduction="pair_sum"``, the default). The mean over all
anchors of the common SupCon code (Khosla et al.) is ``reduction="anchor_mean"``; with it
``lambda_SCL = 1`` acts as the paper's 0.5.

References
----------
Bui et al., "Understanding and Achieving Efficient Robustness with Adversarial Supervised
Contrastive Learning" (ASCL), arXiv:2101.10027, 2021.
Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from robustviz._utils import model_device
from robustviz._validate import check_choice, check_int, check_nonnegative, check_positive
from robustviz.defenses._base import Composite, Term, register, unwrap_model
from robustviz.defenses._baselines import kl_rows

__all__ = ["SupCon", "VAT", "ASCL", "supcon_masks", "supcon_loss", "similarity_matrix",
           "SELECTIONS", "HEADS", "REDUCTIONS"]

SELECTIONS = ("global", "hard", "soft", "leaked")
REDUCTIONS = ("pair_sum", "anchor_mean")
HEADS = ("none", "linear", "mlp", "mlp_bn")
SIMILARITIES = ("cosine", "lp")


def supcon_masks(labels: torch.Tensor, preds: torch.Tensor, selection: str = "global"
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative masks of the ``2B`` anchors of ``[z(x); z(x')]``.

    Row ``i`` is an anchor, column ``j`` a candidate (never ``j == i``); row ``i`` and row
    ``i + B`` are the clean and adversarial versions of the same input.

    - ``"global"``: positives = same label; negatives = different label.
    - ``"hard"`` (Hard-LS): negatives only if ``pred_j == y_i``.
    - ``"soft"`` (Soft-LS): negatives only if ``pred_j == pred_i``.
    - ``"leaked"`` (Leaked-LS): positives only if same label and ``pred_j == pred_i``, the
      anchor's own other view always kept; negatives only if different label and
      ``pred_j == pred_i``.

    Parameters
    ----------
    labels : Tensor
        ``[y; y]``.
    preds : Tensor
        Argmax prediction of each row's own input (clean rows: ``f(x)``, adversarial rows:
        ``f(x')``).
    selection : {"global", "hard", "soft", "leaked"}

    Returns
    -------
    pos, neg : Tensor of bool

    Shape
    -----
    ``labels``, ``preds``: ``(2B,)``; ``pos``, ``neg``: ``(2B, 2B)``.
    """
    check_choice(selection, "selection", SELECTIONS)
    n2 = labels.shape[0]
    if n2 % 2 or preds.shape != labels.shape:
        raise ValueError(f"labels and preds must both have shape (2B,), got {tuple(labels.shape)} "
                         f"and {tuple(preds.shape)}")
    idx = torch.arange(n2, device=labels.device)
    not_self = idx[:, None] != idx[None, :]
    partner = idx[None, :] == (idx[:, None] + n2 // 2) % n2
    same = labels[:, None] == labels[None, :]
    pred_agree = preds[None, :] == preds[:, None]
    pos = same & not_self
    neg = ~same
    if selection == "hard":
        neg = neg & (preds[None, :] == labels[:, None])
    elif selection == "soft":
        neg = neg & pred_agree
    elif selection == "leaked":
        pos = (pos & pred_agree) | partner
        neg = neg & pred_agree
    return pos, neg


def similarity_matrix(h: torch.Tensor, similarity: str = "cosine", p: float = 2.0) -> torch.Tensor:
    """Pairwise similarity: cosine, or ``-||h_i - h_j||_p``.

    Shape
    -----
    ``h``: ``(M, D)``; returns ``(M, M)``.
    """
    check_choice(similarity, "similarity", SIMILARITIES)
    if similarity == "cosine":
        hn = F.normalize(h, dim=1)
        return hn @ hn.t()
    return -torch.cdist(h, h, p=p, compute_mode="donot_use_mm_for_euclid_dist")


def supcon_loss(h: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, *, tau: float = 0.07,
                similarity: str = "cosine", p: float = 2.0, reduction: str = "anchor_mean") -> torch.Tensor:
    """Supervised contrastive loss with explicit positive and negative sets.

    Per anchor ``i``: ``L_i = -(1/|P_i|) sum_{q in P_i} log( exp(s_iq/tau) / sum_{a in P_i u N_i}
    exp(s_ia/tau) )``; anchors without positives contribute 0.

    Parameters
    ----------
    h : Tensor
        One vector per anchor.
    pos, neg : Tensor of bool
        Positive and negative candidates of each anchor (row) among the rows.
    tau : float
        Temperature.
    similarity : {"cosine", "lp"}
        See :func:`similarity_matrix`.
    p : float
        Order of the Lp distance.
    reduction : {"anchor_mean", "pair_sum"}
        ``"anchor_mean"``: ``(1/M) sum_i L_i`` over all ``M`` anchors (Khosla et al.'s code).
        ``"pair_sum"``: the rows are ``[z(x); z(x')]`` (``M = 2N``) and the loss is paper
        001's eq. 3, ``(1/N) sum_i (L_i + L_{i+N})``: the natural and adversarial anchor of
        each sample summed, averaged over the samples (twice ``"anchor_mean"``).

    Returns
    -------
    Tensor
        Scalar.

    Shape
    -----
    ``h``: ``(M, D)``; ``pos``, ``neg``: ``(M, M)`` bool; returns a scalar.

    References
    ----------
    Bui et al., "Understanding and Achieving Efficient Robustness with Adversarial Supervised
    Contrastive Learning", 2021, eq. 3. Khosla et al., "Supervised Contrastive Learning",
    NeurIPS 2020.
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    m = h.shape[0]
    if reduction == "pair_sum" and m % 2:
        raise ValueError(f"reduction='pair_sum' needs the 2N rows [z(x); z(x')], got {m} rows")
    s = similarity_matrix(h, similarity, p) / tau
    keep = pos | neg
    empty = ~keep.any(1, keepdim=True)
    masked = s.masked_fill(~keep, float("-inf"))
    masked = torch.where(empty, torch.zeros_like(s), masked)   # finite logsumexp, no NaN grads
    log_z = torch.logsumexp(masked, dim=1, keepdim=True)
    log_prob = torch.where(pos, s - log_z, torch.zeros_like(s))
    n_pos = pos.sum(1)
    per_anchor = -log_prob.sum(1) / n_pos.clamp(min=1)
    if reduction == "pair_sum":
        return per_anchor.sum() / (m // 2)
    return per_anchor.mean()


def _init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    """PyTorch's default Linear init, drawn from ``generator``."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1 / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.bias.copy_((torch.rand(layer.bias.shape, generator=generator) * 2 - 1) * bound)


def _make_head(kind: str, in_dim: int, out_dim: int, seed: int) -> nn.Module:
    g = torch.Generator()
    g.manual_seed(seed)
    if kind == "linear":
        layers = [nn.Linear(in_dim, out_dim)]
        head = layers[0]
    elif kind == "mlp_bn":   # AdvCL's released head: Linear - BatchNorm1d - ReLU - Linear
        layers = [nn.Linear(in_dim, in_dim), nn.Linear(in_dim, out_dim)]
        head = nn.Sequential(layers[0], nn.BatchNorm1d(in_dim), nn.ReLU(), layers[1])
    else:
        layers = [nn.Linear(in_dim, in_dim), nn.Linear(in_dim, out_dim)]
        head = nn.Sequential(layers[0], nn.ReLU(), layers[1])
    for layer in layers:
        _init_linear(layer, g)
    return head


def _check_optional_attack(attack):
    if attack is not None and not callable(attack):
        raise TypeError(f"attack must be an attack object, got {type(attack).__name__}")
    return attack


def feature_dim(model, x, layer: str, *, what: str = "a head") -> int:
    """Size of the flattened ``layer`` features of ``model``: the classifier's input size for
    ``"penultimate"`` of a model with a linear ``classifier``, otherwise measured on two
    images of the sample batch ``x`` (eval mode, no gradients)."""
    inner = unwrap_model(model)
    clf = getattr(inner, "classifier", None)
    if layer == "penultimate" and isinstance(clf, nn.Linear):
        return clf.in_features
    if x is None:
        raise ValueError(f"prepare() needs a sample batch x to size {what} on layer {layer!r}")
    from robustviz._utils import model_mode
    from robustviz.defenses._base import StepContext
    ctx = StepContext(model, x[:2], None, layers=[layer])
    with model_mode(model, "eval"), torch.no_grad():
        return ctx.forward(x[:2], None)[layer].flatten(1).shape[1]


@register
class SupCon(Term):
    """Supervised contrastive term of paper 001 over ``H = [z(x); z(x')]``.

    Parameters
    ----------
    selection : {"global", "hard", "soft", "leaked"}
        Which positives and negatives each anchor keeps (see :func:`supcon_masks`).
    tau : float
        Temperature (paper 0.07; released default 0.2).
    similarity : {"cosine", "lp"}
        Cosine similarity, or minus the Lp distance (``p``).
    p : float
        Order of the Lp distance.
    head : {"none", "linear", "mlp"}
        Projection head on ``z``: none (paper main), ``Linear(d, head_dim)`` (best in the
        paper's Table 6), or ``Linear(d, d) - ReLU - Linear(d, head_dim)``. Its parameters
        are trainable: call :meth:`prepare` before building the optimizer and add
        ``defense.parameters()`` to it.
    head_dim : int
        Output size of the head (128).
    head_seed : int
        Seed of the head's initialisation.
    layer : str
        The tap whose features are contrasted (``"penultimate"``); flattened per example.
    reduction : {"pair_sum", "anchor_mean"}
        ``"pair_sum"`` (paper 001 eq. 3, default): ``(1/N) sum_i (L_i^scl + L_i^a,scl)``, the
        natural and adversarial anchor's losses summed per sample; ``"anchor_mean"``: the
        mean over the ``2N`` anchors (half the paper's value). See :func:`supcon_loss`.
    attack : attack, optional
        Where ``x'`` comes from; ``None``: the primary adversarial example.

    Logs ``supcon``, ``pos_per_anchor`` and ``neg_per_anchor`` (means over the ``2B`` anchors).
    """

    name = "supcon"
    options = {"selection": "global", "tau": 0.07, "similarity": "cosine", "p": 2.0, "head": "none",
               "head_dim": 128, "head_seed": 0, "layer": "penultimate", "reduction": "pair_sum"}
    attack_mode = "optional"

    def __init__(self, *, selection: str = "global", tau: float = 0.07, similarity: str = "cosine",
                 p: float = 2.0, head: str = "none", head_dim: int = 128, head_seed: int = 0,
                 layer: str = "penultimate", reduction: str = "pair_sum", attack=None):
        super().__init__()
        self.selection = check_choice(selection, "selection", SELECTIONS)
        self.tau = check_positive(tau, "tau")
        self.similarity = check_choice(similarity, "similarity", SIMILARITIES)
        self.p = check_positive(p, "p")
        self.head = check_choice(head, "head", HEADS)
        self.head_dim = check_int(head_dim, "head_dim", minimum=1)
        self.head_seed = check_int(head_seed, "head_seed", minimum=0)
        if not isinstance(layer, str):
            raise TypeError(f"layer must be a tap name, got {layer!r}")
        self.layer = layer
        self.reduction = check_choice(reduction, "reduction", REDUCTIONS)
        self.attack = _check_optional_attack(attack)
        self.projection: nn.Module | None = None

    def layers(self):
        return {"logits", self.layer}

    def _feature_dim(self, model, x):
        return feature_dim(model, x, self.layer, what="the projection head")

    def prepare(self, model, x=None, *, generator=None):
        """Build the projection head (``head`` != ``"none"``) on the model's device; idempotent."""
        if self.head == "none" or self.projection is not None:
            return self
        dim = self._feature_dim(model, x)
        self.projection = _make_head(self.head, dim, self.head_dim, self.head_seed).to(model_device(model))
        return self

    def _maybe_prepare(self, model, x):
        if self.head != "none" and self.projection is None:
            warnings.warn("SupCon's projection head was built at the first call; call "
                          "defense.prepare(model, x) before creating the optimizer and add "
                          "defense.parameters() to it, or the head is never trained", stacklevel=4)
            self.prepare(model, x)

    def compute(self, ctx):
        who = "SupCon"
        clean, adv = ctx.clean(), ctx.adv(self.attack, who=who)
        z = torch.cat([clean[self.layer], adv[self.layer]]).flatten(1).float()
        if self.projection is not None:
            z = self.projection(z)
        labels = torch.cat([ctx.y, ctx.y])
        preds = torch.cat([clean["logits"], adv["logits"]]).detach().argmax(1)
        pos, neg = supcon_masks(labels, preds, self.selection)
        loss = supcon_loss(z, pos, neg, tau=self.tau, similarity=self.similarity, p=self.p,
                           reduction=self.reduction)
        return loss, {self.name: loss, "pos_per_anchor": pos.sum(1).float().mean(),
                      "neg_per_anchor": neg.sum(1).float().mean()}


@register
class VAT(Term):
    """``KL(p(x) || p(x'))`` averaged over the batch (paper 001's ``L_VAT``); gradient flows
    through both distributions.

    Parameters
    ----------
    attack : attack, optional
        Where ``x'`` comes from; ``None``: the primary adversarial example.
    """

    name = "vat"
    attack_mode = "optional"

    def __init__(self, *, attack=None):
        super().__init__()
        self.attack = _check_optional_attack(attack)

    def compute(self, ctx):
        kl = kl_rows(ctx.clean()["logits"], ctx.adv(self.attack, who="VAT")["logits"]).mean()
        return kl, {self.name: kl}


def _split(spec: dict, keys) -> tuple[dict, dict]:
    mine = {k: spec.pop(k) for k in list(spec) if k in keys}
    return mine, spec


class _Preset(Composite):
    """A named composite whose config is the preset's own flat spec."""

    bases: tuple[str, ...] = ()
    preset_options: dict = {}
    base_defaults: dict = {}

    def _make_base(self, base, base_kwargs):
        from robustviz.defenses._base import _REGISTRY
        if isinstance(base, Term):
            if base_kwargs:
                raise TypeError(f"options {sorted(base_kwargs)} are for a base given by name; "
                                f"the base {base.name!r} was given as an object")
            check_choice(base.name, "base", list(self.bases))
            return base
        check_choice(base, "base", list(self.bases))
        kw = {**self.base_defaults.get(base, {}), **base_kwargs}
        return _REGISTRY[base](**kw)

    def config(self):
        base_cfg = self.base.config()
        base_name = base_cfg.pop("name")
        clash = sorted(set(base_cfg) & (set(self.preset_options) | {"base", "name"}))
        if clash:   # a flat spec could not tell whose option it is
            raise ValueError(f"options {clash} of the base {base_name!r} clash with {self.name!r}'s own")
        out = {"name": self.name, "base": base_name, **base_cfg}
        for k in self.preset_options:
            out[k] = getattr(self, k)
        return out

    @classmethod
    def from_config(cls, spec):
        from robustviz.defenses._base import build
        spec = dict(spec)
        base = spec.pop("base", next(iter(cls.bases)))
        check_choice(base, "base", list(cls.bases))
        mine, rest = _split(spec, cls.preset_options)
        base_spec = {**cls.base_defaults.get(base, {}), **rest, "name": base}
        return cls(base=build(base_spec), **mine)


@register
class ASCL(_Preset):
    """Paper 001's total loss (eq. 6): ``L_AT + lambda_scl * SupCon + lambda_vat * VAT``.

    Parameters
    ----------
    base : {"pgd_at", "trades"} or Term
        ``L_AT``: PGD-AT with the clean CE added (paper eq. 4; ``clean_ce=False`` gives the
        released default run) or TRADES.
    lambda_scl, lambda_vat : float
        Weights (1 and 2).
    selection, tau, similarity, p, head, head_dim, head_seed, layer
        :class:`SupCon` options (``selection="leaked"`` is Leaked-ASCL).
    reduction : {"pair_sum", "anchor_mean"}
        :class:`SupCon`'s reduction: ``"pair_sum"`` is the paper's eq. 3 (default);
        ``"anchor_mean"`` halves the contrastive term (the common SupCon code's mean).
    **base_kwargs
        Options of the base (``attack=PGD(...)``, ``beta``, ``clean_ce``...).
    """

    name = "ascl"
    bases = ("pgd_at", "trades")
    preset_options = {"lambda_scl": 1.0, "lambda_vat": 2.0, "selection": "global", "tau": 0.07,
                      "similarity": "cosine", "p": 2.0, "head": "none", "head_dim": 128,
                      "head_seed": 0, "layer": "penultimate", "reduction": "pair_sum"}
    base_defaults = {"pgd_at": {"clean_ce": True}}

    def __init__(self, *, base="pgd_at", lambda_scl: float = 1.0, lambda_vat: float = 2.0,
                 selection: str = "global", tau: float = 0.07, similarity: str = "cosine",
                 p: float = 2.0, head: str = "none", head_dim: int = 128, head_seed: int = 0,
                 layer: str = "penultimate", reduction: str = "pair_sum", **base_kwargs):
        lambda_scl = check_nonnegative(lambda_scl, "lambda_scl")
        lambda_vat = check_nonnegative(lambda_vat, "lambda_vat")
        base_term = self._make_base(base, base_kwargs)
        supcon = SupCon(selection=selection, tau=tau, similarity=similarity, p=p, head=head,
                        head_dim=head_dim, head_seed=head_seed, layer=layer, reduction=reduction)
        super().__init__([(base_term, 1.0), (supcon, lambda_scl), (VAT(), lambda_vat)])
        self.lambda_scl, self.lambda_vat = lambda_scl, lambda_vat
        for k in ("selection", "tau", "similarity", "p", "head", "head_dim", "head_seed", "layer",
                  "reduction"):
            setattr(self, k, getattr(supcon, k))

    @property
    def base(self) -> Term:
        return self.terms[0]

    @property
    def supcon(self) -> SupCon:
        return self.terms[1]
