"""Robustness curves (accuracy vs eps, vs PGD steps) and the reusable adversarial sweep."""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, Sequence

import torch
from torch import nn
from robustviz._utils import tqdm

from robustviz._utils import model_device, model_mode
from robustviz._validate import check_choice, check_int, check_nonnegative
from robustviz.attacks import PGD, Attack
from robustviz.evaluate._common import (as_tensors, batches, check_batch_size, check_model,
                                        fmt_pct, generator, stream_seed, topk_correct)

__all__ = ["SweepPoint", "Curve", "adversarial_sweep", "accuracy_vs_eps", "accuracy_vs_steps",
           "DEFAULT_EPS", "DEFAULT_STEPS"]

DEFAULT_EPS = tuple(i / 255 for i in range(0, 33, 4))
DEFAULT_STEPS = (0, 1, 2, 5, 10, 20, 50, 100)


@dataclasses.dataclass(frozen=True, eq=False)
class SweepPoint:
    """One point of :func:`adversarial_sweep`.

    Attributes
    ----------
    value : float
        The swept value (eps, steps, ...).
    attack : Attack or None
        The attack used (None: the clean inputs).
    x_adv : Tensor
        (N, C, H, W) adversarial images on the CPU, in data order.
    y : Tensor
        (N,) labels.
    correct : Tensor
        (N,) bool: correct on both the clean and the adversarial input.
    accuracy : float
        the fraction of ``correct``.
    """

    value: float
    attack: Attack | None
    x_adv: torch.Tensor
    y: torch.Tensor
    correct: torch.Tensor
    accuracy: float


@dataclasses.dataclass(frozen=True)
class Curve:
    """Robust (top-1) accuracy as a function of one attack parameter.

    Attributes
    ----------
    parameter : str
        ``"eps"`` or ``"steps"`` (or a custom name).
    values : tuple of float
    accuracy : tuple of float
        Fractions in [0, 1], one per value.
    n : int
        Number of examples.
    attack : dict
        Description of the attack family (the attack at the last non-clean value).
    """

    parameter: str
    values: tuple
    accuracy: tuple
    n: int
    attack: dict

    def to_dict(self) -> dict:
        return {"parameter": self.parameter, "values": list(self.values),
                "accuracy": list(self.accuracy), "n": self.n, "attack": self.attack}

    def table(self) -> str:
        lines = [f"accuracy (%) vs {self.parameter} on {self.n} examples",
                 f"{self.parameter:>10}  accuracy"]
        for v, a in zip(self.values, self.accuracy):
            vs = f"{v:.4g}" if isinstance(v, float) else str(v)
            lines.append(f"{vs:>10}  {fmt_pct(a)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def adversarial_sweep(model: nn.Module, data, attack_factory: Callable[[float], Attack | None],
                      values: Sequence[float], *, batch_size: int = 256, seed: int = 0,
                      progress: bool = True) -> Iterator[SweepPoint]:
    """Attack the whole data set once per value, yielding each point as it is done.

    The eps-sweep building block of the robustness curves, reusable wherever the
    adversarial examples themselves are needed (e.g. R-DIV vs eps in the diagnostics)::

        for p in adversarial_sweep(model, test, lambda e: PGD(eps=e, steps=20), eps_list):
            feats = extract(model, p.x_adv, ["penultimate"])

    Parameters
    ----------
    model : nn.Module
    data : Dataset or (Tensor, Tensor)
    attack_factory : callable
        ``value -> Attack``, or ``None`` for "no attack" (the clean inputs are yielded,
        e.g. at eps = 0).
    values : sequence of float
    batch_size : int
    seed : int
        Every value uses a generator seeded from ``seed`` alone (common random numbers:
        the random starts are the same draws at every value, which smooths curves).
    progress : bool

    Yields
    ------
    SweepPoint

    Shape
    -----
    ``data.x``: (N, C, H, W); each ``point.x_adv``: (N, C, H, W) on the CPU.
    """
    check_model(model)
    x, y = as_tensors(data, model)
    if not callable(attack_factory):
        raise TypeError(f"attack_factory must be a callable value -> Attack, got "
                        f"{type(attack_factory).__name__}")
    values = list(values)
    if not values:
        raise ValueError("values must hold at least one value")
    batch_size = check_batch_size(batch_size)
    check_int(seed, "seed", minimum=0)
    dev = model_device(model)
    n = x.shape[0]
    with model_mode(model, "eval"), torch.no_grad():
        clean_ok = torch.cat([topk_correct(model(x[sl].to(dev)), y[sl].to(dev), (1,))[:, 0].cpu()
                              for sl in batches(n, batch_size)])
    for value in tqdm(values, disable=not progress, desc="sweep", unit="point", leave=False):
        atk = attack_factory(value)
        if atk is not None and not isinstance(atk, Attack):
            raise TypeError(f"attack_factory({value!r}) must return an Attack or None, got "
                            f"{type(atk).__name__}")
        if atk is None:
            yield SweepPoint(value=value, attack=None, x_adv=x.detach().cpu(), y=y.cpu(),
                             correct=clean_ok.clone(), accuracy=clean_ok.sum().item() / n)
            continue
        g = generator(dev, stream_seed(seed))
        xs, oks = [], []
        for sl in batches(n, batch_size):
            xb, yb = x[sl].to(dev), y[sl].to(dev)
            x_adv = atk(model, xb, yb, generator=g)
            with model_mode(model, "eval"), torch.no_grad():
                ok = model(x_adv).argmax(1) == yb
            xs.append(x_adv.cpu())
            oks.append(ok.cpu())
        ok = torch.cat(oks) & clean_ok
        yield SweepPoint(value=value, attack=atk, x_adv=torch.cat(xs), y=y.cpu(), correct=ok,
                         accuracy=ok.sum().item() / n)


def _curve(model, data, factory, values, parameter, batch_size, seed, progress) -> Curve:
    accs, desc, n = [], {}, None
    for p in adversarial_sweep(model, data, factory, values, batch_size=batch_size, seed=seed,
                               progress=progress):
        accs.append(p.accuracy)
        n = p.correct.shape[0]
        if p.attack is not None:
            desc = p.attack.describe()
    return Curve(parameter=parameter, values=tuple(values), accuracy=tuple(accs), n=n, attack=desc)


def accuracy_vs_eps(model: nn.Module, data, *, eps: Sequence[float] | None = None,
                    attack: Callable[[float], Attack] | None = None, norm: str = "linf",
                    steps: int = 20, batch_size: int = 256, seed: int = 0,
                    progress: bool = True) -> Curve:
    """Robust accuracy vs attack radius, one full pass per eps.

    Parameters
    ----------
    model : nn.Module
    data : Dataset or (Tensor, Tensor)
    eps : sequence of float, optional
        Default ``0, 4/255, ..., 32/255`` (9 points). ``eps = 0`` is clean accuracy.
    attack : callable, optional
        ``eps -> Attack``; default ``PGD(eps=e, steps=steps, norm=norm)`` (step size
        ``2.5 * eps / steps``, uniform start, early stopping, which does not change
        the accuracy).
    norm : {"linf", "l2"}
        For the default attack.
    steps : int
        For the default attack.
    batch_size, seed, progress
        See :func:`adversarial_sweep`.

    Returns
    -------
    Curve

    References
    ----------
    Carlini et al., "On Evaluating Adversarial Robustness", 2019 (report accuracy over a
    range of eps).
    """
    check_choice(norm, "norm", ("linf", "l2"))
    check_int(steps, "steps", minimum=1)
    values = list(DEFAULT_EPS if eps is None else eps)
    for e in values:
        check_nonnegative(e, "eps")
    if attack is None:
        def attack(e):
            return PGD(eps=e, steps=steps, norm=norm, early_stop=True)
    elif not callable(attack):
        raise TypeError("attack must be a callable eps -> Attack")
    factory = attack

    def make(e):
        return None if e == 0 else factory(e)

    return _curve(model, data, make, values, "eps", batch_size, seed, progress)


def accuracy_vs_steps(model: nn.Module, data, *, steps: Sequence[int] = DEFAULT_STEPS,
                      eps: float = 8 / 255, step_size: float | None = None, norm: str = "linf",
                      random_start: str = "uniform", batch_size: int = 256, seed: int = 0,
                      progress: bool = True) -> Curve:
    """Robust accuracy vs the number of PGD steps, one full pass per value.

    The step size is the same at every point (default ``eps / 4``, i.e. 2/255 at
    8/255), so the curve shows what more iterations buy; ``steps = 0`` is the clean
    accuracy. Robust models' accuracy should level off; a curve that goes *up* with
    more steps signals gradient masking.

    Parameters
    ----------
    model, data
    steps : sequence of int
        Default ``(0, 1, 2, 5, 10, 20, 50, 100)``.
    eps : float
    step_size : float, optional
    norm : {"linf", "l2"}
    random_start : {"uniform", "normal_small", "none"}
    batch_size, seed, progress
        See :func:`adversarial_sweep`.

    Returns
    -------
    Curve
    """
    check_nonnegative(eps, "eps")
    values = [check_int(s, "steps", minimum=0) for s in steps]
    size = eps / 4 if step_size is None else step_size

    def make(s):
        if s == 0 or eps == 0:
            return None
        return PGD(eps=eps, steps=s, step_size=size, norm=norm, random_start=random_start,
                   early_stop=True)

    return _curve(model, data, make, values, "steps", batch_size, seed, progress)
