"""Paper 004: ANCRA, asymmetric negative contrast and reverse attention.

- Negatives ("other-class examples", OEs): for each anchor a sample of another class from the
  batch, attacked with targeted PGD toward the anchor's label.
- ANC: where the anchor's and the negative's predicted classes agree (``h = h_o``),
  ``alpha * sqrt(sg(p_h) * p^o_h) + (1 - alpha) * sqrt(p_h * sg(p^o_h))``, averaged over
  the batch (``sg``: stop-gradient). With ``alpha = 1`` only the negative is pushed.
- Reverse attention: a model wrapper (:class:`robustviz.models._reverse_attention.ReverseAttention`)
  whose auxiliary logits get the same loss as the main logits, ``L_AT + zeta * L_ANC``
  (the paper's Algorithm 1 / eq. 4: the ANC term too, on the auxiliary probabilities of the
  same anchors and negatives), with weight ``gamma`` (:class:`AuxHead`).
- Total: ``base + zeta * ANC + gamma * (base + zeta * ANC)(aux logits)`` on top of PGD-AT,
  TRADES or MART. ``aux_anc=False`` gives the auxiliary head the base loss alone.

References
----------
Zhou et al., "Robust Representation Learning via Asymmetric Negative Contrast and Reverse
Attention" (ANCRA), arXiv:2310.03358, 2023.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from robustviz._validate import check_choice, check_int, check_nonnegative, check_positive, check_probability
from robustviz.defenses._base import (Composite, Term, _needs_labels, _runtime_attack, build,
                                      label_bound, register, unwrap_model)
from robustviz.defenses._baselines import NAT
from robustviz.defenses._supcon import _Preset

__all__ = ["ANC", "AuxHead", "ANCRA", "anc_value", "pick_negatives", "STRATEGIES"]

STRATEGIES = ("random", "soft", "hard")
ANCHORS = ("clean", "adv")


def anc_value(p_anchor: torch.Tensor, p_negative: torch.Tensor, alpha: float = 1.0,
              valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric negative contrast of paired probability vectors.

    For each pair with the same predicted class ``h = argmax p = argmax p^o``:
    ``alpha * sqrt(sg(p_h) * p^o_h) + (1 - alpha) * sqrt(p_h * sg(p^o_h))``; pairs whose
    predictions differ (or with ``valid`` False) give 0. Returns the mean over all ``B``
    pairs and the mask of contributing pairs.

    Shape
    -----
    ``p_anchor``, ``p_negative``: ``(B, K)`` probabilities; ``valid``: ``(B,)`` bool;
    returns a scalar and ``(B,)`` bool.
    """
    h = p_anchor.detach().argmax(1)
    mask = h == p_negative.detach().argmax(1)
    if valid is not None:
        mask = mask & valid
    ph = p_anchor.gather(1, h[:, None]).squeeze(1)
    poh = p_negative.gather(1, h[:, None]).squeeze(1)
    # Clamp inside the square roots: a pair the mask excludes may hold a probability that
    # underflows to 0, whose sqrt has an infinite derivative, and torch.where would turn
    # 0 * inf into NaN gradients. Included pairs agree on h, so p_h >= 1/C there and the
    # clamp never changes their value.
    tiny = torch.finfo(ph.dtype).tiny
    value = (alpha * torch.sqrt((ph.detach() * poh).clamp_min(tiny))
             + (1 - alpha) * torch.sqrt((ph * poh.detach()).clamp_min(tiny)))
    value = torch.where(mask, value, torch.zeros_like(value))
    return value.mean(), mask


def pick_negatives(y: torch.Tensor, pred: torch.Tensor, strategy: str = "random", *,
                   generator: torch.Generator | None = None, fallback: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One negative index per anchor from the batch: a sample of another class, uniformly at
    random among the candidates of ``strategy`` (paper 004's Table IX ablation).

    - ``"random"``: any sample with ``y_j != y_i``;
    - ``"soft"``: and ``pred_j == pred_i``;
    - ``"hard"``: and ``pred_j == y_i``.

    ``"soft"``/``"hard"`` often find no candidate (the paper reports failure for at least
    60% of the anchors at batch 128 on CIFAR-10). Such an anchor gets no negative
    (``valid`` False: it adds 0 to ANC) unless ``fallback`` asks for a random other-class
    sample instead; either way ``found`` says which anchors had a candidate.

    Parameters
    ----------
    y, pred : Tensor of int64
        Labels and predicted classes of the batch.
    strategy : {"random", "soft", "hard"}
    generator : torch.Generator, optional
        Source of the random choice.
    fallback : bool
        Give anchors without a candidate a random other-class sample.

    Returns
    -------
    index : Tensor of int64
        The negative of each anchor (meaningless where ``valid`` is False).
    valid : Tensor of bool
        The anchor has a negative.
    found : Tensor of bool
        The strategy found a candidate for the anchor.

    Shape
    -----
    ``y``, ``pred``: ``(B,)``; every output ``(B,)``.
    """
    check_choice(strategy, "strategy", STRATEGIES)
    if not isinstance(fallback, bool):
        raise TypeError(f"fallback must be True or False, got {fallback!r}")
    other = y[None, :] != y[:, None]
    cand = other
    if strategy == "soft":
        cand = other & (pred[None, :] == pred[:, None])
    elif strategy == "hard":
        cand = other & (pred[None, :] == y[:, None])
    found = cand.any(1)
    if fallback:
        cand = torch.where(found[:, None], cand, other)
    valid = cand.any(1)
    dev = generator.device if generator is not None else y.device
    scores = torch.rand(cand.shape, generator=generator, device=dev).to(y.device)
    scores = scores.masked_fill(~cand, -1.0)
    return scores.argmax(1), valid, found


@register
class ANC(Term):
    """ANCRA's asymmetric negative contrast (without its weight ``zeta``).

    Parameters
    ----------
    alpha : float in [0, 1]
        Share of the gradient on the negative (1: only the negative's probability is pushed
        down, the anchor's is a constant).
    strategy : {"random", "soft", "hard"}
        How the other-class sample is picked (:func:`pick_negatives`). With ``"soft"`` and
        ``"hard"`` an anchor without a candidate gets no negative (it adds 0) unless
        ``fallback``; the share of such anchors is logged as ``anc_no_candidate``.
    neg_attack : bool, optional
        Attack the picked sample with targeted PGD toward the anchor's label (the paper's
        adversarial OEs); ``False`` uses the clean sample. Default: on for ``"random"`` (the
        paper's main method), off for ``"soft"``/``"hard"`` (the ablation's selected
        negatives are used as they are; pass ``True`` to attack them). The "random" strategy
        of the paper's ablation is ``strategy="random", neg_attack=False``.
    fallback : bool
        ``"soft"``/``"hard"``: give an anchor without a candidate a random other-class
        sample (off: no silent change of strategy).
    anchor : {"clean", "adv"}
        The anchor's probabilities: the clean example (the paper's exclusion criterion: natural
        features keep away from other classes) or the primary adversarial example.
    neg_eps, neg_step_size, neg_steps :
        The targeted PGD (Linf, start ``+0.001 N(0, 1)``): 8/255, 0.007, 10.

    Logs ``anc`` (the term), ``anc_active`` (fraction of pairs whose predictions agree) and
    ``anc_no_candidate`` (fraction of anchors the strategy found no candidate for).

    Notes
    -----
    Predictions used to pick ``"soft"``/``"hard"`` negatives come from the step's clean
    forward pass (train mode). A reverse-attention model sees each negative with its own
    label.
    """

    name = "anc"
    options = {"alpha": 1.0, "strategy": "random", "neg_attack": None, "fallback": False,
               "anchor": "clean", "neg_eps": 8 / 255, "neg_step_size": 0.007, "neg_steps": 10}

    def __init__(self, *, alpha: float = 1.0, strategy: str = "random", neg_attack: bool | None = None,
                 fallback: bool = False, anchor: str = "clean", neg_eps: float = 8 / 255,
                 neg_step_size: float = 0.007, neg_steps: int = 10):
        super().__init__()
        self.alpha = check_probability(alpha, "alpha")
        self.strategy = check_choice(strategy, "strategy", STRATEGIES)
        if neg_attack is None:
            neg_attack = self.strategy == "random"
        if not isinstance(neg_attack, bool):
            raise TypeError(f"neg_attack must be True, False or None (by strategy), got {neg_attack!r}")
        if not isinstance(fallback, bool):
            raise TypeError(f"fallback must be True or False, got {fallback!r}")
        self.neg_attack, self.fallback = neg_attack, fallback
        self.anchor = check_choice(anchor, "anchor", ANCHORS)
        self.neg_eps = check_nonnegative(neg_eps, "neg_eps")
        self.neg_step_size = check_positive(neg_step_size, "neg_step_size")
        self.neg_steps = check_int(neg_steps, "neg_steps", minimum=1)

    def negative_attack(self):
        """The targeted PGD that turns picked samples into adversarial negatives."""
        from robustviz.attacks import PGD
        return PGD(eps=self.neg_eps, step_size=self.neg_step_size, steps=self.neg_steps,
                   random_start="normal_small", targeted=True, loss="ce")

    def primary_attack(self):
        return None

    def negatives(self, ctx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_neg, y_neg, valid)`` for the step, computed once and cached on ``ctx``
        (also ``found``, the anchors the strategy had a candidate for, under
        ``ctx.cache[key + ":found"]``)."""
        key = (f"anc_negatives:{self.strategy}:{self.fallback}:{self.neg_attack}:{self.neg_eps}:"
               f"{self.neg_step_size}:{self.neg_steps}")
        if key not in ctx.cache:
            pred = ctx.root.clean()["logits"].detach().argmax(1)   # the main head, also in a view
            idx, valid, found = pick_negatives(ctx.y, pred, self.strategy, generator=ctx.generator,
                                               fallback=self.fallback)
            x_neg, y_neg = ctx.x[idx].detach(), ctx.y[idx]
            if self.neg_attack:
                atk = _runtime_attack(self.negative_attack(), ctx.attack_bn, ctx.bf16)
                x_neg = atk(label_bound(ctx.model, y_neg), x_neg, ctx.y, generator=ctx.generator).detach()
                ctx.attack_calls += 1
            ctx.cache[key] = (x_neg, y_neg, valid)
            ctx.cache[key + ":found"] = found
        return ctx.cache[key]

    def _found(self, ctx) -> torch.Tensor:
        key = (f"anc_negatives:{self.strategy}:{self.fallback}:{self.neg_attack}:{self.neg_eps}:"
               f"{self.neg_step_size}:{self.neg_steps}")
        return ctx.cache[key + ":found"]

    def compute(self, ctx):
        if self.anchor == "clean":
            anchor_logits = ctx.clean()["logits"]
        else:
            anchor_logits = ctx.adv(who="ANC(anchor='adv')")["logits"]
        x_neg, y_neg, valid = self.negatives(ctx)
        neg_logits = ctx.forward(x_neg, y_neg, layers=["logits"])["logits"]
        p, po = F.softmax(anchor_logits, dim=1), F.softmax(neg_logits, dim=1)
        value, mask = anc_value(p, po, self.alpha, valid)
        return value, {self.name: value, "anc_active": mask.float().mean(),
                       "anc_no_candidate": 1.0 - self._found(ctx).float().mean()}


@register
class AuxHead(Term):
    """A term evaluated again on a reverse-attention model's auxiliary logits.

    ``AuxHead(TRADES(...))`` is TRADES computed with ``aux_logits`` in place of ``logits``
    (same adversarial example, same forward passes). Needs a model with
    ``needs_labels = True`` that exposes an ``"aux_logits"`` tap
    (:class:`~robustviz.models._reverse_attention.ReverseAttention`).

    Parameters
    ----------
    term : Term, dict or str
        The loss to repeat (a spec is passed to :func:`build`); default NAT.
    attack : {"shared", "own"}
        ``"shared"`` (the paper): the term reuses the adversarial example crafted for the
        main logits, which in training see the true label through the reverse attention,
        so the auxiliary head trains on examples that were never aimed at it. ``"own"``:
        the term's attack is run again against the auxiliary logits (one more attack per
        step), so the head that decides the class at test time is trained adversarially.

    reduce : {"mean", "sum"}
        How the values on several auxiliary heads combine: ``"mean"`` (default; the authors'
        released ResNet-18 code divides the sum over the blocks of ``layer4`` by their
        number) or ``"sum"``. One head (penultimate placement): the same.

    The loss is repeated on every auxiliary head of the model (its ``aux_heads``): one for
    reverse attention on the penultimate features, one per block of ``layer4`` with
    ``placement="blocks"`` (the paper's ResNet-18).

    Logs ``aux`` (the term's value on the auxiliary head, combined over heads) and the term's
    own logs with an ``aux_`` prefix (``aux1_``, ``aux2_`` ... with several heads).
    """

    name = "aux_head"
    options = {"term": None, "attack": "shared", "reduce": "mean"}

    def __init__(self, term=None, attack: str = "shared", reduce: str = "mean"):
        super().__init__()
        self.term = NAT() if term is None else build(term)
        self.attack = check_choice(attack, "attack", ("shared", "own"))
        self.reduce = check_choice(reduce, "reduce", ("mean", "sum"))
        self.heads: tuple[str, ...] = ("aux_logits",)   # set from the model at the first call

    def layers(self):
        return self.term.required_layers() | set(self.heads)

    def required_layers(self):
        return self.layers()

    def primary_attack(self):
        return self.term.primary_attack()

    def _maybe_prepare(self, model, x):
        if not _needs_labels(model):
            raise ValueError("the auxiliary-head loss (ANCRA's gamma term) needs a reverse-attention "
                             "model (model.needs_labels = True with an 'aux_logits' tap): wrap it with "
                             "ReverseAttention(model) from robustviz.models._reverse_attention; or set "
                             "gamma=0 to train with ANC alone")
        self.heads = tuple(getattr(unwrap_model(model), "aux_heads", ("aux_logits",)))
        self.term._maybe_prepare(model, x)

    def prepare(self, model, x=None, *, generator=None):
        self.term.prepare(model, x, generator=generator)
        return self

    def compute(self, ctx):
        total, out = None, {}
        for i, head in enumerate(self.heads):
            value, logs = self.term.compute(ctx.view(head, own_attack=self.attack == "own"))
            total = value if total is None else total + value
            tag = "aux" if len(self.heads) == 1 else f"aux{i + 1}"
            out.update({tag: value, **{f"{tag}_{k}": v for k, v in logs.items()}})
        if self.reduce == "mean" and len(self.heads) > 1:
            total = total / len(self.heads)
        return total, {"aux": total, **out}

    def config(self):
        return {"name": self.name, "term": self.term.config(), "attack": self.attack, "reduce": self.reduce}

    @classmethod
    def from_config(cls, spec):
        spec = dict(spec)
        term = spec.pop("term", None)
        attack = spec.pop("attack", "shared")
        reduce = spec.pop("reduce", "mean")
        if spec:
            raise ValueError(f"unknown option(s) {sorted(spec)} for defense 'aux_head'; valid: "
                             "['attack', 'reduce', 'term']")
        return cls(term, attack=attack, reduce=reduce)


@register
class ANCRA(_Preset):
    """Paper 004's total loss (Algorithm 1, eq. 4):
    ``base + zeta * ANC + gamma * (base + zeta * ANC)(aux logits)``.

    Parameters
    ----------
    base : {"trades", "pgd_at", "mart"} or Term
        TRADES-ANCRA (default), PGD-AT-ANCRA, MART-ANCRA.
    zeta : float
        Weight of ANC (3).
    gamma : float
        Weight of the loss on the reverse-attention model's auxiliary logits (2);
        ``gamma > 0`` needs a reverse-attention model, ``0`` trains ANC alone.
    aux_anc : bool
        ``True`` (the paper, Algorithm 1 / eq. 4): the auxiliary logits get the same loss as
        the main ones, ``base + zeta * ANC`` (ANC on the auxiliary probabilities of the same
        anchors and negatives). ``False``: the base loss alone on them.
    aux_attack : {"shared", "own"}
        :class:`AuxHead`'s ``attack``: ``"shared"`` (the paper) or ``"own"`` (the auxiliary
        head, which decides the class at test time, gets adversarial examples aimed at it).
    aux_reduce : {"mean", "sum"}
        :class:`AuxHead`'s ``reduce`` over several auxiliary heads (``placement="blocks"``):
        ``"mean"`` as the authors' released code.
    alpha, strategy, neg_attack, fallback, anchor, neg_eps, neg_step_size, neg_steps
        :class:`ANC` options (``neg_attack`` defaults to on for ``"random"``, off for
        ``"soft"``/``"hard"``).
    **base_kwargs
        Options of the base (``beta``, ``attack``...). TRADES' base attacks with CE here as in
        the released code is available as ``trades_attack="ce"``; the default stays the KL
        attack of the TRADES paper.

    Logs the base's values, ``anc``, ``anc_active``, ``anc_no_candidate``, ``aux`` (the auxiliary head's whole loss,
    the value ``gamma`` multiplies) and its parts with an ``aux_`` prefix (``aux_trades``,
    ``aux_anc``, ``aux_anc_active``).
    """

    name = "ancra"
    bases = ("trades", "pgd_at", "mart")
    preset_options = {"zeta": 3.0, "gamma": 2.0, "aux_attack": "shared", "aux_anc": True, "aux_reduce": "mean",
                      "alpha": 1.0,
                      "strategy": "random", "neg_attack": None, "fallback": False, "anchor": "clean",
                      "neg_eps": 8 / 255, "neg_step_size": 0.007, "neg_steps": 10}

    def __init__(self, *, base="trades", zeta: float = 3.0, gamma: float = 2.0, aux_attack: str = "shared",
                 aux_anc: bool = True, aux_reduce: str = "mean", alpha: float = 1.0, strategy: str = "random",
                 neg_attack: bool | None = None, fallback: bool = False, anchor: str = "clean",
                 neg_eps: float = 8 / 255, neg_step_size: float = 0.007, neg_steps: int = 10,
                 **base_kwargs):
        zeta = check_nonnegative(zeta, "zeta")
        gamma = check_nonnegative(gamma, "gamma")
        base_term = self._make_base(base, base_kwargs)
        anc = ANC(alpha=alpha, strategy=strategy, neg_attack=neg_attack, fallback=fallback, anchor=anchor,
                  neg_eps=neg_eps, neg_step_size=neg_step_size, neg_steps=neg_steps)
        parts = [(base_term, 1.0), (anc, zeta)]
        if not isinstance(aux_anc, bool):
            raise TypeError(f"aux_anc must be True or False, got {aux_anc!r}")
        if gamma > 0:
            aux_term = Composite([(base_term, 1.0), (anc, zeta)]) if aux_anc and zeta > 0 else base_term
            parts.append((AuxHead(aux_term, attack=aux_attack, reduce=aux_reduce), gamma))
        else:
            check_choice(aux_attack, "aux_attack", ("shared", "own"))
            check_choice(aux_reduce, "aux_reduce", ("mean", "sum"))
        super().__init__(parts)
        self.zeta, self.gamma, self.aux_attack, self.aux_anc = zeta, gamma, aux_attack, aux_anc
        self.aux_reduce = aux_reduce
        for k in ("alpha", "strategy", "neg_attack", "fallback", "anchor", "neg_eps", "neg_step_size",
                  "neg_steps"):
            setattr(self, k, getattr(anc, k))

    @property
    def base(self) -> Term:
        return self.terms[0]

    @property
    def anc(self) -> ANC:
        return self.terms[1]
