"""Adaptive evaluation of models whose test-time path is not differentiable."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from robustviz._utils import model_mode
from robustviz.attacks._base import (Attack, AttackOutput, _check_generator, _check_inputs, _check_model,
                                     kept_buffers)

__all__ = ["Adaptive", "surrogate_of"]


def surrogate_of(model: nn.Module) -> nn.Module | None:
    """The differentiable stand-in a model offers for attacks (``model.surrogate()``), or
    ``None`` when its forward pass is already what an attack should differentiate."""
    make = getattr(model, "surrogate", None)
    return make() if callable(make) else None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Adaptive(Attack):
    r"""Run ``attack`` on the model and on its differentiable surrogate; keep, per example,
    the point that fools the model.

    Some defenses take a non-differentiable decision at test time (ANCRA's reverse
    attention picks the class of an argmax; Zhou et al., arXiv:2310.03358), so a gradient attack
    on ``model(x)`` sees that decision as a constant and can report robustness that is
    only masked gradients (Athalye et al. 2018). Such models define ``surrogate()``, a
    module with the same weights whose forward pass replaces the hard decision by a
    differentiable one (for reverse attention: the softmax-weighted mixture of class
    weight rows). ``Adaptive`` crafts ``x1 = attack(model, x, y)`` and
    ``x2 = attack(model.surrogate(), x, y)`` and returns ``x2`` where it fools ``model``
    and ``x1`` does not, else ``x1``; robust accuracy is then the per-example worst case
    of the two. For a model without ``surrogate()`` it is exactly ``attack``.

    Parameters
    ----------
    attack : Attack
        Any robustviz attack (``PGD``, ``MIM``, ...). Its own ``bn_mode``, ``bf16`` and
        ``seed`` apply; those of ``Adaptive`` are unused.
    targeted : bool
        Set when ``attack`` is targeted (``y`` holds targets): "fools" means
        ``argmax == y``.

    Examples
    --------
    >>> atk = Adaptive(attack=PGD(eps=0.1, steps=20))
    >>> x_adv = atk(ancra_model, x, y)         # worst of PGD on the model and on its surrogate

    References
    ----------
    Athalye, Carlini, Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML 2018.
    """

    attack: Attack
    targeted: bool = False

    def _check(self):
        if not isinstance(self.attack, Attack):
            raise TypeError(f"attack must be a robustviz attack (e.g. PGD(...)), got "
                            f"{type(self.attack).__name__}")
        if isinstance(self.attack, Adaptive):
            raise TypeError("attack is already Adaptive")
        if not isinstance(self.targeted, bool):
            raise TypeError(f"targeted must be True or False, got {self.targeted!r}")

    @property
    def eps(self):
        """The wrapped attack's radius (``None`` for unbounded attacks such as C&W)."""
        return getattr(self.attack, "eps", None)

    @property
    def norm(self):
        return getattr(self.attack, "norm", "linf")

    @property
    def name(self) -> str:
        return f"Adaptive({self.attack.name})"

    def describe(self) -> dict:
        return {"attack": self.name, "wrapped": self.attack.describe(), "targeted": self.targeted}

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
            generator: torch.Generator | None = None) -> AttackOutput:
        _check_model(model)
        _check_inputs(model, x, y)
        _check_generator(generator)
        if generator is None:
            generator = torch.Generator(device=x.device).manual_seed(self.attack.seed)
        o1 = self.attack.run(model, x, y, generator=generator)
        sur = surrogate_of(model)
        if sur is None:
            return o1
        o2 = self.attack.run(sur, x, y, generator=generator)
        x1, x2 = o1.x_adv, o2.x_adv
        # every submodule's flag and every buffer come back as they were (not just the root's)
        with model_mode(model, "eval"), kept_buffers(model), torch.no_grad():
            p1, p2 = model(x1).argmax(1), model(x2).argmax(1)
        f1, f2 = (p1 == y, p2 == y) if self.targeted else (p1 != y, p2 != y)
        take = f2 & ~f1
        x_adv = torch.where(take.reshape((-1,) + (1,) * (x.dim() - 1)), x2, x1)
        if o1.by is None or o2.by is None:
            return AttackOutput(x_adv=x_adv)
        # which component broke the example, on the model or (offset) on the surrogate
        k = len(o1.components)
        none = torch.full_like(o1.by, -1)
        by = torch.where(f1, o1.by, none)
        by = torch.where(take, torch.where(o2.by >= 0, o2.by + k, none), by)
        comps = o1.components + tuple(f"{c} (surrogate)" for c in o2.components)
        return AttackOutput(x_adv=x_adv, by=by, components=comps)
