"""Worst case per example over several attacks, run one after the other.

Robust accuracy against an ensemble is the fraction of examples that *no* attack of the
ensemble breaks: the pointwise worst case, not an average over attacks (Croce & Hein,
ICML 2020; Carlini et al., "On Evaluating Adversarial Robustness", 2019). Running the
attacks in sequence, each only on the examples the earlier ones left correctly classified,
gives that number at the cost of the survivors only. :class:`WorstOf` does it for
robustviz attacks; :class:`~robustviz.attacks.AutoAttack` uses the same engine.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import torch

from robustviz.attacks._base import Attack, AttackOutput

__all__ = ["WorstOf"]


def run_sequence(forward, x: torch.Tensor, y: torch.Tensor,
                 steps: Sequence[tuple[str, Callable]]) -> AttackOutput:
    """Run ``steps`` (``(name, fn)`` with ``fn(x_sub, y_sub) -> x_adv_sub``) one after the
    other, each on the examples that the clean input and every earlier step left
    correctly classified; keep for each example the first point that fools the model.

    Misclassified clean examples are not attacked (``by = -1``, ``x_adv = x``).

    Shape
    -----
    ``x``: (N, C, H, W); ``y``: (N,); returns an :class:`AttackOutput` whose ``by`` is (N,).
    """
    from robustviz._utils import inner_progress_enabled, progress_mode, tqdm

    n = x.shape[0]
    with torch.no_grad():
        robust = forward(x).argmax(1) == y
    x_adv = x.clone()
    by = torch.full((n,), -1, dtype=torch.long, device=x.device)
    # inside evaluate(progress=True): one line per stage with what is left to attack
    bar = tqdm(total=len(steps), disable=not inner_progress_enabled() or len(steps) < 2,
               desc="  stages", unit="stage", leave=progress_mode() != "bar")
    for j, (name, fn) in enumerate(steps):
        idx = robust.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        bar.set_postfix_str(f"{name} on {idx.numel()} of {n} still robust")
        xa = fn(x[idx], y[idx]).to(device=x.device, dtype=x.dtype)
        with torch.no_grad():
            fooled = forward(xa).argmax(1) != y[idx]
        hit = idx[fooled]
        x_adv[hit] = xa[fooled]
        by[hit] = j
        robust[hit] = False
        bar.update(1)
    bar.close()
    return AttackOutput(x_adv=x_adv, by=by, components=tuple(name for name, _ in steps))


def _radius(atk: Attack) -> tuple[str, float] | None:
    eps = getattr(atk, "eps", None)
    if eps is None:
        return None
    return str(getattr(atk, "norm", "linf")).lower(), float(eps)


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorstOf(Attack):
    """Per-example worst case over a list of eps-bounded attacks with one threat model.

    The attacks run in the order given, each on the examples that are still correctly
    classified; an example counts as robust only if every attack leaves it correct. Put
    the cheap, strong attacks first (PGD with restarts), the expensive ones last.
    :meth:`~robustviz.attacks.Attack.run` says which attack broke each example, and
    :func:`robustviz.evaluate.evaluate` tabulates it (``result.breakdown``).

    Parameters
    ----------
    attacks : sequence of Attack
        Untargeted, eps-bounded attacks (``PGD``, ``FGSM``, ``MIM``, ``AutoAttack``,
        ``Adaptive(...)``, ...) sharing one norm and one eps. Mixed norms or radii,
        targeted attacks and minimal-perturbation attacks (C&W, DeepFool: no eps) are
        refused: a worst case over different threat models means nothing.
    names : sequence of str, optional
        Display names of the attacks (default: ``"PGD-20 x5"``-like names built from
        their options).
    bf16, seed
        See :class:`Attack`; ``bf16`` applies to the check of which examples are fooled
        (each attack keeps its own ``bf16``). The call's generator is passed on to every
        attack in turn.

    Examples
    --------
    >>> worst = WorstOf(attacks=[PGD(eps=0.1, steps=20, restarts=5),
    ...                          PGD(eps=0.1, steps=20, loss="cw"), AutoAttack(eps=0.1)])
    >>> out = worst.run(model, x, y)          # out.by: which attack broke each example

    References
    ----------
    Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020. Carlini et al., "On Evaluating
    Adversarial Robustness", arXiv:1902.06705, 2019.
    """

    attacks: tuple = ()
    names: tuple | None = None

    def _check(self):
        atks = tuple(self.attacks) if not isinstance(self.attacks, Attack) else (self.attacks,)
        object.__setattr__(self, "attacks", atks)
        if not atks:
            raise ValueError("WorstOf needs at least one attack")
        for i, a in enumerate(atks):
            if not isinstance(a, Attack):
                raise TypeError(f"attacks[{i}] must be a robustviz Attack, got {type(a).__name__}")
            if getattr(a, "targeted", False) or getattr(getattr(a, "attack", None), "targeted", False):
                raise ValueError(f"attacks[{i}] ({a.name}) is targeted: its labels are targets, "
                                 f"not the true classes a worst case is taken over")
        radii = [_radius(a) for a in atks]
        if any(r is None for r in radii):
            bad = [a.name for a, r in zip(atks, radii) if r is None]
            raise ValueError(f"WorstOf takes eps-bounded attacks; {bad} search for the smallest "
                             f"perturbation (no eps): score them with evaluate(..., eps=...)")
        if len({r[0] for r in radii}) > 1 or \
                max(r[1] for r in radii) - min(r[1] for r in radii) > 1e-12:
            raise ValueError("the attacks of a WorstOf must share one threat model; got "
                             + ", ".join(f"{a.name} {r[0]} eps={r[1]:g}" for a, r in zip(atks, radii)))
        if self.names is not None:
            names = tuple(self.names)
            if len(names) != len(atks) or len(set(names)) != len(names) or \
                    not all(isinstance(s, str) and s for s in names):
                raise ValueError(f"names must give one distinct non-empty name per attack, "
                                 f"got {self.names!r}")
            object.__setattr__(self, "names", names)

    @property
    def eps(self) -> float:
        return _radius(self.attacks[0])[1]

    @property
    def norm(self) -> str:
        return _radius(self.attacks[0])[0]

    def component_names(self) -> tuple[str, ...]:
        if self.names is not None:
            return self.names
        out = [attack_label(a) for a in self.attacks]
        seen: dict[str, int] = {}
        for i, s in enumerate(out):       # make repeated names distinct: "PGD-20 (2)"
            seen[s] = seen.get(s, 0) + 1
            if seen[s] > 1:
                out[i] = f"{s} ({seen[s]})"
        return tuple(out)

    def describe(self) -> dict:
        return {"attack": self.name, "eps": self.eps, "norm": self.norm,
                "components": [dict(a.describe(), label=nm)
                               for a, nm in zip(self.attacks, self.component_names())],
                "seed": self.seed, "bf16": self.bf16}

    def _attack(self, forward, x, y, generator):
        model = forward.model

        def step(atk):
            return lambda xs, ys: atk(model, xs, ys, generator=generator)
        return run_sequence(forward, x, y, [(nm, step(a)) for nm, a in
                                            zip(self.component_names(), self.attacks)])


def attack_label(atk: Attack) -> str:
    """A short human name of an attack with its budget: ``PGD-20``, ``PGD-20 x5``,
    ``PGD-20 (CW loss)``, ``FGSM``, ``AutoAttack standard``, ``Adaptive(PGD-20)``."""
    inner = getattr(atk, "attack", None)
    if isinstance(inner, Attack):
        return f"Adaptive({attack_label(inner)})"
    name = atk.name
    if name == "AutoAttack":
        return f"AutoAttack {atk.version}"
    steps = getattr(atk, "steps", None)
    label = name if steps is None or name in ("FGSM", "FGSMRS") else f"{name}-{steps}"
    restarts = getattr(atk, "restarts", 1)
    if isinstance(restarts, int) and restarts > 1:
        label += f" x{restarts}"
    loss = getattr(atk, "loss", "ce")
    if isinstance(loss, str) and loss != "ce":
        label += f" ({loss.upper()} loss)"
    return label
