"""The per-step context of a defense: what one training step computes once and every
term shares (:class:`StepContext`): adversarial examples, one per attack configuration
(the attack cache), and the clean and adversarial forward passes, tapping the union of
the layers the terms need; with the model views attacks see (:func:`label_bound`,
:func:`unwrap_model`) and the attack as the call sets it (BatchNorm mode, precision)."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import torch
from torch import nn

from robustviz._utils import autocast


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
