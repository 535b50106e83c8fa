"""Defense machinery: loss terms that compose, and the registry.

A defense is a loss object. Calling it on a model and a batch returns the scalar loss and a
dict of logged values::

    defense = PGDAT(attack=PGD(eps=0.1, step_size=0.02, steps=5)) + SupCon(tau=0.07) + VAT() * 2.0
    loss, logs = defense(model, x, y, attack_bn="eval", bf16=False, generator=g)

Within one call every term reads the same :class:`~robustviz.defenses._context.StepContext`
(``_context.py``): an adversarial example is computed once per attack configuration, and
the clean and adversarial forward passes run once each, tapping the union of the layers
all terms need. Terms that have no attack of their own (``SupCon``, ``VAT``,
``EmbeddingDistance(attack=None)``, ``ANC`` with an adversarial anchor) use the *primary*
adversarial example: the one of the first term, in addition order, that owns an attack.
How a term writes its attack into its config is ``_attack_config.py``.

This module holds the algebra of terms (:class:`Term`, ``+``, ``*``, :class:`Composite`,
``config``/``from_config``) and the registry (:func:`register`, :func:`build`). A new
term is a new file under ``robustviz/defenses/`` whose class is decorated with
:func:`register` and imported in ``robustviz/defenses/__init__.py``.
"""
from __future__ import annotations

from numbers import Real
from typing import Any

import torch
from torch import nn

from robustviz._validate import check_batch, check_choice, check_nonnegative
# the step context and the attack configs, importable from here as before
from robustviz.defenses._attack_config import (_attack_classes, _attack_key, attack_config,  # noqa: F401
                                               attack_fields, attack_from_config)
from robustviz.defenses._context import (StepContext, _needs_labels, _runtime_attack,  # noqa: F401
                                         label_bound, unwrap_model)

__all__ = [
    "Term", "Composite", "StepContext", "build", "list_defenses", "register",
    "attack_config", "attack_from_config", "unwrap_model", "label_bound",
]


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
