"""Defense machinery: loss terms that compose, the per-step context, the registry.

A defense is a loss object. Calling it on a model and a batch returns the scalar loss and a
dict of logged values::

    defense = PGDAT(attack=PGD(eps=0.1, step_size=0.02, steps=5)) + SupCon(tau=0.07) + VAT() * 2.0
    loss, logs = defense(model, x, y, attack_bn="eval", bf16=False, generator=g)

Within one call every term reads the same :class:`StepContext`: an adversarial example is
computed once per attack configuration, and the clean and adversarial forward passes run
once each, tapping the union of the layers all terms need. Terms that have no attack of
their own (``SupCon``, ``VAT``, ``EmbeddingDistance(attack=None)``, ``ANC`` with an
adversarial anchor) use the *primary* adversarial example: the one of the first term, in
addition order, that owns an attack.
"""
from __future__ import annotations

import dataclasses
import math
from numbers import Real
from typing import Any, Iterable

import torch
from torch import nn

from robustviz._utils import autocast
from robustviz._validate import check_batch, check_choice, check_nonnegative

__all__ = [
    "Term", "Composite", "StepContext", "build", "list_defenses", "register",
    "attack_config", "attack_from_config", "unwrap_model", "label_bound",
]

# set per call: BatchNorm mode and precision from the defense's arguments; training attacks
# return their last iterate (Madry et al.), unless they stop early per example
_ATTACK_RUNTIME_FIELDS = ("bn_mode", "bf16", "keep")


# --------------------------------------------------------------------------- models ----
def unwrap_model(model: nn.Module) -> nn.Module:
    """The module under DDP / DataParallel / ``torch.compile`` wrappers (``model`` itself
    when it is not wrapped)."""
    seen = 0
    while seen < 8:
        seen += 1
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(getattr(model, "_orig_mod"), nn.Module):
            model = model._orig_mod
        else:
            break
    return model


def _needs_labels(model: nn.Module) -> bool:
    return bool(getattr(unwrap_model(model), "needs_labels", False))


class _Bound(nn.Module):
    """``model`` seen as a function of the images alone: ``forward(x) = model(x, y)`` when the
    model takes labels (reverse attention), else ``model(x)``. Tap points are the wrapped
    model's, so :class:`robustviz.models.Features` works on it (also through DDP).

    Labels are bound by position, so a forward pass over a different number of rows (an
    attack's extra pass over a subset of the batch, such as PGD's final "still fooled?"
    check) cannot be matched to them: such a pass runs the model without labels (a
    reverse-attention model then uses its test-time class, the auxiliary prediction)."""

    needs_labels = False

    def __init__(self, model: nn.Module, y: torch.Tensor | None):
        super().__init__()
        self.net = model
        self._labels = y
        self._pass_labels = _needs_labels(model) and y is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pass_labels and x.shape[0] == self._labels.shape[0]:
            return self.net(x, self._labels)
        return self.net(x)

    def tap_points(self) -> dict:
        from robustviz.models import tap_points
        inner = unwrap_model(self.net)
        points = dict(tap_points(inner))
        for name, (module, kind) in list(points.items()):
            if module is inner and kind == "out":
                points[name] = (self, "out")
        return points

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in ("net", "_labels", "_pass_labels"):
                raise
            return getattr(unwrap_model(self._modules["net"]), name)


def label_bound(model: nn.Module, y: torch.Tensor | None) -> nn.Module:
    """``model`` itself, or (for a model with ``needs_labels``) a view whose forward takes
    only images and passes ``y`` as the labels: what attacks see during training."""
    return _Bound(model, y) if _needs_labels(model) else model


# -------------------------------------------------------------------------- attacks ----
def _attack_classes() -> dict[str, type]:
    from robustviz import attacks
    names = {"pgd": "PGD", "fgsm": "FGSM", "fgsm_rs": "FGSMRS", "mim": "MIM"}
    return {k: getattr(attacks, v) for k, v in names.items() if hasattr(attacks, v)}


def _attack_key(attack) -> str:
    for key, cls in _attack_classes().items():
        if type(attack) is cls:
            return key
    raise ValueError(f"cannot write {type(attack).__name__} into a defense config; config() "
                     f"supports the attacks {sorted(_attack_classes())}")


def _jsonable(v) -> bool:
    if v is None or isinstance(v, (bool, int, str)):
        return True
    return isinstance(v, float) and math.isfinite(v)


def attack_config(attack, *, prefix: str = "", fixed: Iterable[str] = ()) -> dict:
    """Flat JSON-able description of a training attack: ``{"attack": "pgd", "eps": ...}``.

    Fields set per call (``bn_mode``, ``bf16``) and those in ``fixed`` (chosen by the term,
    such as TRADES' loss) are left out. Raises ``ValueError`` for a field that JSON cannot
    hold (a callable loss)."""
    if attack is None:
        return {}
    out = {f"{prefix}attack": _attack_key(attack)}
    for f in dataclasses.fields(attack):
        if f.name in _ATTACK_RUNTIME_FIELDS or f.name in fixed or not f.init:
            continue
        value = getattr(attack, f.name)
        if isinstance(value, tuple):
            value = list(value)
        if not (_jsonable(value) or (isinstance(value, list) and all(map(_jsonable, value)))):
            raise ValueError(f"attack field {f.name}={value!r} cannot be written into a config "
                             f"(only numbers, strings, booleans and None)")
        out[prefix + f.name] = value
    return out


def attack_fields(kind: str) -> list[str]:
    """Field names a config may give for an attack of kind ``kind`` (``"pgd"``...)."""
    cls = _attack_classes()[kind]
    return [f.name for f in dataclasses.fields(cls) if f.init and f.name not in _ATTACK_RUNTIME_FIELDS]


def attack_from_config(spec: dict, default, *, prefix: str = "", fixed: dict | None = None):
    """Build an attack from the flat keys of ``spec`` (removing them), on top of ``default``.

    ``spec["attack"]`` names the kind (``"pgd"``, ``"fgsm"``, ``"fgsm_rs"``); the other keys
    are fields of that dataclass. With no attack key at all, returns ``default`` (which may be
    ``None``: no attack). Fields missing from ``spec`` keep ``default``'s values when the kind
    is the same as ``default``'s."""
    classes = _attack_classes()
    kind = spec.pop(prefix + "attack", None)
    all_fields = {f for k in classes for f in attack_fields(k)}
    given = {k[len(prefix):]: spec.pop(k) for k in list(spec)
             if k.startswith(prefix) and k[len(prefix):] in all_fields}
    if kind is None and not given:
        return default if not fixed or default is None else dataclasses.replace(default, **fixed)
    if kind is None:
        kind = _attack_key(default) if default is not None else "pgd"
    check_choice(kind, prefix + "attack", sorted(classes))
    valid = attack_fields(kind)
    bad = sorted(set(given) - set(valid))
    if bad:
        raise ValueError(f"unknown option(s) {[prefix + b for b in bad]} for attack {kind!r}; "
                         f"valid: {[prefix + v for v in valid]}")
    if default is not None and _attack_key(default) == kind:
        atk = dataclasses.replace(default, **given, **(fixed or {}))
    else:
        base = {}
        if default is not None:   # carry over the shared fields of another default kind
            base = {f: getattr(default, f) for f in valid if hasattr(default, f)
                    and f in ("eps", "norm")}
        fixed_ok = {k: v for k, v in (fixed or {}).items() if k in valid}
        atk = classes[kind](**{**base, **given, **fixed_ok})
    return atk


def _runtime_attack(attack, attack_bn: str, bf16: bool):
    """The attack with the call's BatchNorm mode and precision (when it has those fields),
    returning its last iterate (``keep="last"``) unless it stops early per example."""
    if not dataclasses.is_dataclass(attack):
        return attack
    names = {f.name for f in dataclasses.fields(attack)}
    change = {}
    if "bn_mode" in names:
        change["bn_mode"] = attack_bn
    if "bf16" in names:
        change["bf16"] = bool(bf16)
    if "keep" in names and not getattr(attack, "early_stop", False):
        change["keep"] = "last"
    return dataclasses.replace(attack, **change) if change else attack


def _run_attack(attack, model, x, y, generator):
    x_adv = attack(model, x, y, generator=generator)
    return x_adv.detach()


# -------------------------------------------------------------------------- context ----
class StepContext:
    """Everything one training step computes once and the terms share.

    Created by a defense's ``__call__``; terms read from it inside :meth:`Term.compute`.

    Attributes
    ----------
    model : nn.Module
        The model being trained (in train mode).
    x, y : Tensor
        The clean batch ``(B, C, H, W)`` and its labels ``(B,)``.
    layers : tuple of str
        The layers tapped on every forward pass (always ``"logits"``).
    primary_attack : attack or None
        The attack whose adversarial example terms without their own attack use.
    attack_calls : int
        How many attacks ran so far in this step (cache misses).
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, layers: Iterable[str],
                 primary_attack=None, attack_bn: str = "eval", bf16: bool = False,
                 generator: torch.Generator | None = None):
        self.model, self.x, self.y = model, x, y
        self.layers = tuple(dict.fromkeys(["logits", *layers]))
        self.primary_attack = primary_attack
        self.attack_bn, self.bf16, self.generator = attack_bn, bool(bf16), generator
        self.attack_calls = 0
        self._adv: dict[str, torch.Tensor] = {}
        self._out: dict[str, dict[str, torch.Tensor]] = {}
        self.cache: dict[str, Any] = {}   # free space for terms (e.g. negatives)

    @property
    def root(self) -> "StepContext":
        """The context itself (a head view's ``root`` is the context it views)."""
        return self

    # adversarial examples --------------------------------------------------------------
    def _key(self, attack) -> str:
        return repr(attack) if dataclasses.is_dataclass(attack) else f"{type(attack).__name__}@{id(attack)}"

    def resolve(self, attack=None, *, who: str = "this term"):
        """``attack`` or, when ``None``, the primary attack (a clear error if there is none)."""
        if attack is not None:
            return attack
        if self.primary_attack is None:
            raise ValueError(f"{who} needs an adversarial example, but no attack is set: give it "
                             f"attack=... or add it to a defense that has one "
                             f"(e.g. PGDAT(attack=PGD(...)) + {who})")
        return self.primary_attack

    def x_adv(self, attack=None, *, who: str = "this term", head: str = "logits") -> torch.Tensor:
        """Adversarial example of ``attack`` (default: the primary one), computed once per
        step per attack configuration. ``head`` other than ``"logits"`` crafts it against
        that tapped output instead (e.g. ``"aux_logits"``). Shape ``(B, C, H, W)``, detached."""
        attack = _runtime_attack(self.resolve(attack, who=who), self.attack_bn, self.bf16)
        key = self._key(attack) + ("" if head == "logits" else f"@{head}")
        if key not in self._adv:
            net = label_bound(self.model, self.y)
            if head != "logits":
                net = _HeadNet(net, head)
            self._adv[key] = _run_attack(attack, net, self.x, self.y, self.generator)
            self.attack_calls += 1
        return self._adv[key]

    # forward passes ----------------------------------------------------------------------
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, *,
                layers: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """One uncached forward pass of ``x`` (labels ``y`` for a reverse-attention model) in the
        model's current mode, under the step's autocast, tapping ``layers`` (default: the
        context's). Outputs are float32."""
        layers = self.layers if layers is None else tuple(dict.fromkeys(["logits", *layers]))
        net = _Bound(self.model, y)
        with autocast(self.x.device, enabled=self.bf16):
            if layers == ("logits",):
                out = {"logits": net(x)}
            else:
                from robustviz.models import Features
                with Features(net, list(layers)) as tap:
                    out = tap(x)
        return {k: (v.float() if v.is_floating_point() else v) for k, v in out.items()}

    def clean(self) -> dict[str, torch.Tensor]:
        """Tapped outputs of the clean batch (``"logits"`` and the other layers), computed once."""
        if "clean" not in self._out:
            self._out["clean"] = self.forward(self.x, self.y)
        return self._out["clean"]

    def adv(self, attack=None, *, who: str = "this term", head: str = "logits") -> dict[str, torch.Tensor]:
        """Tapped outputs of the adversarial batch of ``attack`` (default: primary; crafted
        against ``head``, see :meth:`x_adv`), computed once."""
        x_adv = self.x_adv(attack, who=who, head=head)
        key = "adv:" + self._key(_runtime_attack(self.resolve(attack, who=who), self.attack_bn, self.bf16))
        key += "" if head == "logits" else f"@{head}"
        if key not in self._out:
            self._out[key] = self.forward(x_adv, self.y)
        return self._out[key]

    def view(self, head: str, *, own_attack: bool = False) -> "StepContext":
        """The same context with ``outputs["logits"]`` replaced by ``outputs[head]``
        (``"aux_logits"``: the reverse-attention model's auxiliary head). With
        ``own_attack`` the adversarial examples of the view are crafted against ``head``
        rather than shared with the main logits."""
        return _HeadView(self, head, own_attack=own_attack)


class _HeadNet(nn.Module):
    """``forward(x)`` = the tapped output ``head`` of ``net`` (what a head's own attack sees)."""

    def __init__(self, net: nn.Module, head: str):
        super().__init__()
        self.net, self.head = net, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from robustviz.models import Features
        with Features(self.net, [self.head]) as tap:
            return tap(x)[self.head]


class _HeadView:
    """A :class:`StepContext` seen through another logits head (shares every cache)."""

    def __init__(self, ctx: StepContext, head: str, own_attack: bool = False):
        self._ctx, self._head, self._own = ctx, head, own_attack

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def x_adv(self, attack=None, *, who: str = "this term", head: str | None = None):
        return self._ctx.x_adv(attack, who=who, head=head or (self._head if self._own else "logits"))

    def _swap(self, out: dict) -> dict:
        if self._head not in out:
            raise ValueError(f"the model gives no {self._head!r} output (layers: {sorted(out)})")
        return {**out, "logits": out[self._head]}

    def clean(self):
        return self._swap(self._ctx.clean())

    def adv(self, attack=None, *, who: str = "this term", head: str | None = None):
        return self._swap(self._ctx.adv(attack, who=who,
                                        head=head or (self._head if self._own else "logits")))

    def forward(self, x, y=None, *, layers=None):
        layers = self._ctx.layers if layers is None else layers
        return self._swap(self._ctx.forward(x, y, layers=[*layers, self._head]))

    def view(self, head, *, own_attack: bool = False):
        return _HeadView(self._ctx, head, own_attack=own_attack)


# ---------------------------------------------------------------------------- terms ----
def _check_call(model, x, y, attack_bn, bf16, generator):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inner = unwrap_model(model)
    check_batch(x, y, channels=getattr(inner, "in_channels", None),
                size=getattr(inner, "input_size", None),
                num_classes=getattr(inner, "num_classes", None))
    check_choice(attack_bn, "attack_bn", ["eval", "train"])
    if not isinstance(bf16, bool):
        raise TypeError(f"bf16 must be True or False, got {bf16!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def _check_weight(w) -> float:
    if isinstance(w, torch.Tensor) or isinstance(w, bool) or not isinstance(w, Real):
        raise TypeError(f"a defense term can only be multiplied by a number (its weight), got {w!r}")
    return check_nonnegative(w, "weight")


class Term(nn.Module):
    """Base class of every defense and loss term.

    Subclasses set ``name`` (the registry name), ``options`` (constructor keyword -> default:
    what :meth:`config` writes), ``attack_mode`` (``"own"``: always has an attack, with a
    default; ``"optional"``: ``None`` means the shared primary adversarial example; ``"none"``)
    and implement :meth:`compute`. Terms are ``nn.Module`` s so that trainable pieces (SupCon's
    projection head) are found by ``defense.parameters()`` and saved by ``state_dict()``.

    Composition: ``a + b`` sums terms, ``a * w`` (or ``w * a``) weights one; both return a
    :class:`Composite`.
    """

    name: str = "term"
    options: dict[str, Any] = {}
    attack_mode: str = "none"
    fixed_attack_fields: tuple[str, ...] = ()
    attack = None

    # ---- what subclasses provide ----
    def compute(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The term's value (a scalar with grad) and its logs (name -> scalar tensor)."""
        raise NotImplementedError

    def layers(self) -> set[str]:
        """Tap names the term needs on the clean and adversarial forward passes."""
        return {"logits"}

    def default_attack(self):
        """The attack a term with ``attack_mode="own"`` uses when given none."""
        return None

    def prepare(self, model: nn.Module, x: torch.Tensor | None = None, *,
                generator: torch.Generator | None = None) -> "Term":
        """Create trainable pieces that depend on the model (SupCon's projection head).
        Call it before building the optimizer; a no-op for most terms. Returns ``self``."""
        return self

    # ---- primary attack and layers of a whole defense ----
    def primary_attack(self):
        return self.attack

    def required_layers(self) -> set[str]:
        return set(self.layers())

    # ---- the call ----
    def forward(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, attack_bn: str = "eval",
                bf16: bool = False, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss and logs of one training step.

        Parameters
        ----------
        model : nn.Module
            The model being trained, normally in train mode. A model with
            ``needs_labels = True`` (reverse attention) gets the labels in every forward pass
            and in the training attacks.
        x : Tensor
            Clean images in [0, 1].
        y : Tensor
            Integer labels.
        attack_bn : {"eval", "train"}
            BatchNorm mode during the training attacks (restored afterwards).
        bf16 : bool
            bf16 autocast for the forward passes and attacks; the losses are float32.
        generator : torch.Generator, optional
            Source of every random draw of the step (attack starts, negative sampling).
            ``None``: the defense's own generator, seeded 0 at its first use.

        Returns
        -------
        loss : Tensor
            Scalar with grad: the weighted sum of the terms.
        logs : dict of str -> float
            ``"loss"`` and each named term's unweighted value, plus diagnostics.

        Shape
        -----
        ``x``: ``(B, C, H, W)``; ``y``: ``(B,)``.
        """
        _check_call(model, x, y, attack_bn, bf16, generator)
        if generator is None:
            generator = self._own_generator(x.device)
        self._maybe_prepare(model, x)   # first: a term may learn its layers from the model
        ctx = StepContext(model, x, y, layers=self.required_layers(), primary_attack=self.primary_attack(),
                          attack_bn=attack_bn, bf16=bf16, generator=generator)
        loss, logs = self.compute(ctx)
        return loss, _to_floats({"loss": loss, **logs})

    def _own_generator(self, device) -> torch.Generator:
        g = self.__dict__.get("_generator")
        if g is None:
            g = torch.Generator()
            g.manual_seed(0)
            self.__dict__["_generator"] = g
        return g

    def _maybe_prepare(self, model, x):
        pass

    # ---- composition ----
    def _parts(self) -> list[tuple["Term", float]]:
        return [(self, 1.0)]

    def __add__(self, other):
        if not isinstance(other, Term):
            if isinstance(other, Real) and not isinstance(other, bool) and other == 0:
                return Composite(self._parts())
            raise TypeError(f"a defense term can only be added to another term, got "
                            f"{type(other).__name__}")
        return Composite(self._parts() + other._parts())

    def __radd__(self, other):
        if isinstance(other, Real) and not isinstance(other, bool) and other == 0:   # sum([...])
            return Composite(self._parts())
        raise TypeError(f"a defense term can only be added to another term, got {type(other).__name__}")

    def __mul__(self, w):
        w = _check_weight(w)
        return Composite([(t, tw * w) for t, tw in self._parts()])

    __rmul__ = __mul__

    # ---- config ----
    def config(self) -> dict:
        """A JSON-able dict that :func:`build` turns back into an equal defense."""
        out = {"name": self.name}
        for key in self.options:
            value = getattr(self, key)
            out[key] = list(value) if isinstance(value, tuple) else value
        if self.attack_mode != "none":
            out.update(attack_config(self.attack, fixed=self.fixed_attack_fields))
        return out

    @classmethod
    def from_config(cls, spec: dict) -> "Term":
        """Build from a config dict without ``"name"``/``"weight"``/``"terms"``."""
        spec = dict(spec)
        kw = {}
        if cls.attack_mode != "none":
            default = cls(**{k: spec[k] for k in cls.options if k in spec}).default_attack() \
                if cls.attack_mode == "own" else (cls._optional_default() if _has_attack_keys(spec) else None)
            kw["attack"] = attack_from_config(spec, default)
            steps = getattr(kw["attack"], "steps", None)
            if isinstance(steps, int) and steps < 1:
                raise ValueError(f"defense {cls.name!r} with steps={steps}: its attack would take "
                                 f"no step and train on random-start noise, not on adversarial "
                                 f"examples; use steps >= 1 (single-step training: fgsm_rs)")
        unknown = sorted(set(spec) - set(cls.options))
        if unknown:
            valid = list(cls.options)
            if cls.attack_mode != "none":
                kind = _attack_key(kw["attack"]) if kw.get("attack") is not None else "pgd"
                valid += ["attack"] + attack_fields(kind)
            raise ValueError(f"unknown option(s) {unknown} for defense {cls.name!r}; valid: {valid}")
        kw.update({k: spec[k] for k in cls.options if k in spec})
        return cls(**kw)

    @classmethod
    def _optional_default(cls):
        from robustviz.attacks import PGD
        return PGD(eps=8 / 255, step_size=2 / 255, steps=10, random_start="uniform")

    def extra_repr(self) -> str:
        cfg = self.config() if self._config_ok() else {}
        return ", ".join(f"{k}={v!r}" for k, v in cfg.items() if k != "name")

    def _config_ok(self) -> bool:
        try:
            self.config()
            return True
        except ValueError:
            return False


def _has_attack_keys(spec: dict) -> bool:
    if "attack" in spec:
        return True
    try:
        classes = _attack_classes()
    except ImportError:
        return False
    fields = {f for k in classes for f in attack_fields(k)}
    return any(k in fields for k in spec)


def _to_floats(logs: dict) -> dict[str, float]:
    keys = list(logs)
    vals = [v.detach().float().reshape(()) if isinstance(v, torch.Tensor) else torch.tensor(float(v))
            for v in logs.values()]
    if not vals:
        return {}
    devs = {v.device for v in vals}
    if len(devs) == 1:
        floats = torch.stack(vals).tolist()      # one device sync for all logs
    else:
        floats = [float(v) for v in vals]
    return dict(zip(keys, floats))


def _merge_logs(into: dict, logs: dict) -> None:
    for k, v in logs.items():
        key, i = k, 2
        while key in into:
            key = f"{k}_{i}"
            i += 1
        into[key] = v


class Composite(Term):
    """A weighted sum of terms: ``loss = sum_k w_k * term_k``; logs merge (a repeated name
    gets a ``_2``, ``_3`` ... suffix), each term logged unweighted.

    The first part that owns an attack sets the primary adversarial example for the parts
    that have none. ``config()`` writes the first part as the base spec and the others under
    ``"terms"`` with their ``"weight"``.
    """

    name = "composite"

    def __init__(self, parts: list[tuple[Term, float]]):
        super().__init__()
        if not parts:
            raise ValueError("a composite defense needs at least one term")
        self.terms = nn.ModuleList([t for t, _ in parts])
        self.weights = [float(w) for _, w in parts]

    def _parts(self):
        if type(self) is Composite:
            return list(zip(self.terms, self.weights))
        return [(self, 1.0)]

    def primary_attack(self):
        for t in self.terms:
            atk = t.primary_attack()
            if atk is not None:
                return atk
        return None

    def required_layers(self):
        out = set()
        for t in self.terms:
            out |= t.required_layers()
        return out

    def prepare(self, model, x=None, *, generator=None):
        for t in self.terms:
            t.prepare(model, x, generator=generator)
        return self

    def _maybe_prepare(self, model, x):
        for t in self.terms:
            t._maybe_prepare(model, x)

    def compute(self, ctx):
        total = None
        logs: dict[str, torch.Tensor] = {}
        for t, w in zip(self.terms, self.weights):
            value, tlogs = t.compute(ctx)
            total = value * w if total is None else total + value * w
            _merge_logs(logs, tlogs)
        return total, logs

    def config(self):
        cfgs = [(t.config(), w) for t, w in zip(self.terms, self.weights)]
        base, w0 = cfgs[0]
        out = dict(base)
        if w0 != 1.0:
            out["weight"] = w0
        extra = list(out.pop("terms", []))
        out["terms"] = extra + [{**c, "weight": w} for c, w in cfgs[1:]]
        if not out["terms"]:
            del out["terms"]
        return out

    def extra_repr(self):
        return f"weights={self.weights}"


# ------------------------------------------------------------------------- registry ----
_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator adding a :class:`Term` subclass to :func:`build` under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"defense name {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def list_defenses() -> list[str]:
    """Names :func:`build` accepts (defenses, presets and terms)."""
    return list(_REGISTRY)


def build(spec) -> Term:
    """Build a defense from a name or a config dict.

    Parameters
    ----------
    spec : str, dict or Term
        ``"trades"``; or ``{"name": "trades", "beta": 6, "eps": 0.1, "step_size": 0.02,
        "steps": 5}``; optionally ``"weight"`` and ``"terms"``: a list of further specs, each
        with its own ``"weight"``, added to the base. Attack options are flat keys
        (``"attack"``: ``"pgd"`` | ``"fgsm"`` | ``"fgsm_rs"``, and that attack's fields).
        A :class:`Term` is returned as it is.

    Returns
    -------
    Term
        ``build(d.config())`` gives a defense with the same config as ``d``.
    """
    if isinstance(spec, Term):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict):
        raise TypeError(f"spec must be a defense name, a dict or a defense, got {type(spec).__name__}")
    spec = dict(spec)
    if "name" not in spec:
        raise ValueError(f"a defense spec needs a 'name'; valid names: {list_defenses()}")
    name = spec.pop("name")
    check_choice(name, "name", list_defenses())
    terms = spec.pop("terms", [])
    if not isinstance(terms, (list, tuple)):
        raise TypeError(f"'terms' must be a list of defense specs, got {type(terms).__name__}")
    weight = _check_weight(spec.pop("weight", 1.0))
    defense = _REGISTRY[name].from_config(spec)
    if weight != 1.0 or terms:
        defense = defense * weight
    for t in terms:
        if not isinstance(t, dict):
            raise TypeError(f"each entry of 'terms' must be a dict spec, got {type(t).__name__}")
        t = dict(t)
        w = _check_weight(t.pop("weight", 1.0))
        defense = defense + build(t) * w
    return defense
