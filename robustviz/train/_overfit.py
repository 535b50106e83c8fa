"""Catastrophic-overfitting guard for single-step adversarial training.

Fast adversarial training (FGSM with a random start) can collapse within a few steps: the
model becomes robust to the single-step attack it trains on while its accuracy under a
multi-step attack falls to about zero (Wong, Rice & Kolter, "Fast is better than free:
Revisiting adversarial training", ICLR 2020, Sec. 5; de Jorge et al., "Make Some Noise:
Reliable and Efficient Single-Step Adversarial Training", NeurIPS 2022). The signature is
on a held-out batch: PGD accuracy collapses while FGSM accuracy rises.
:func:`detect_collapse` applies that rule to a history; :class:`OverfitGuard` is the
Trainer callback that measures it after every epoch, and on a collapse puts the best
epoch's weights back into the model, writes an event into ``metrics.jsonl`` and stops the
run with :class:`CatastrophicOverfitting`.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from torch import nn

from robustviz._validate import check_int, check_positive

__all__ = ["CatastrophicOverfitting", "Collapse", "OverfitGuard", "detect_collapse", "BEST_WEIGHTS"]

# written into the run directory at a collapse: the weights of the best epoch before it
BEST_WEIGHTS = "guard_best.safetensors"


class CatastrophicOverfitting(RuntimeError):
    """A run stopped by :class:`OverfitGuard`; the model holds the best epoch's weights.

    Attributes
    ----------
    collapse : Collapse
    """

    def __init__(self, collapse: "Collapse"):
        self.collapse = collapse
        c = collapse
        super().__init__(
            f"catastrophic overfitting at epoch {c.epoch}: PGD accuracy on the held-out batch fell "
            f"from {100 * c.best_pgd_acc:.1f}% (epoch {c.best_epoch}) to {100 * c.pgd_acc:.1f}% while "
            f"FGSM accuracy rose from {100 * c.best_fgsm_acc:.1f}% to {100 * c.fgsm_acc:.1f}%; the "
            f"model holds the weights of epoch {c.best_epoch}")


@dataclasses.dataclass(frozen=True)
class Collapse:
    """Where a history collapsed: ``epoch`` (as numbered in the history) and the accuracies
    there and at the best epoch before it."""

    epoch: int
    best_epoch: int
    pgd_acc: float
    fgsm_acc: float
    best_pgd_acc: float
    best_fgsm_acc: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_acc(values, name: str) -> list[float]:
    out = [float(v) for v in values]
    for v in out:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must hold accuracies in [0, 1], got {v}")
    return out


def detect_collapse(pgd_acc: Sequence[float], fgsm_acc: Sequence[float], *, drop: float = 0.2,
                    rise: float = 0.0, epochs: Sequence[int] | None = None) -> Collapse | None:
    """The first point of a history where PGD accuracy collapsed while FGSM accuracy rose.

    Point ``t`` collapses when, with ``b`` the point before ``t`` with the highest PGD
    accuracy (the earliest on ties), ``pgd_acc[b] - pgd_acc[t] >= drop`` and
    ``fgsm_acc[t] - fgsm_acc[b] >= rise``. A model that merely gets worse (both fall) does
    not collapse; catastrophic overfitting makes the single-step attack *weaker* as the
    multi-step one gets stronger.

    Parameters
    ----------
    pgd_acc, fgsm_acc : sequence of float
        Accuracies in [0, 1] under PGD and FGSM on the same held-out batch, one per check.
    drop : float
        Absolute fall of PGD accuracy from its best that counts as a collapse (default 0.2).
    rise : float
        Least rise of FGSM accuracy over its value at the best PGD point (default 0: not lower).
    epochs : sequence of int, optional
        Labels of the points (default 1, 2, ...).

    Returns
    -------
    Collapse or None
    """
    pgd = _check_acc(pgd_acc, "pgd_acc")
    fgsm = _check_acc(fgsm_acc, "fgsm_acc")
    if len(pgd) != len(fgsm):
        raise ValueError(f"pgd_acc and fgsm_acc must have the same length, got {len(pgd)} and {len(fgsm)}")
    check_positive(drop, "drop")
    if not isinstance(rise, (int, float)) or isinstance(rise, bool):
        raise TypeError(f"rise must be a number, got {rise!r}")
    labels = list(range(1, len(pgd) + 1)) if epochs is None else [int(e) for e in epochs]
    if len(labels) != len(pgd):
        raise ValueError(f"epochs must have one label per point ({len(pgd)}), got {len(labels)}")
    best = None
    for t in range(len(pgd)):
        if best is not None and pgd[best] - pgd[t] >= drop and fgsm[t] - fgsm[best] >= rise:
            return Collapse(epoch=labels[t], best_epoch=labels[best], pgd_acc=pgd[t], fgsm_acc=fgsm[t],
                            best_pgd_acc=pgd[best], best_fgsm_acc=fgsm[best])
        if best is None or pgd[t] > pgd[best]:
            best = t
    return None


class OverfitGuard:
    """Trainer callback: stop a run at catastrophic overfitting, keeping its best epoch.

    After every epoch it scores a fixed held-out batch clean, under FGSM and under PGD
    (eval mode, seeded random start), keeps a copy of the weights with the best PGD
    accuracy so far, and applies :func:`detect_collapse` to the history. On a collapse it
    loads the best weights back into the model and, with a run directory, writes them to
    ``guard_best.safetensors`` and appends a ``{"kind": "event", "event":
    "catastrophic_overfitting", ...}`` line to ``metrics.jsonl``; then it raises
    :class:`CatastrophicOverfitting`. The Trainer has not checkpointed the collapsed epoch:
    the run's own checkpoint stays at the epoch before it.

    Parameters
    ----------
    data : Dataset or (Tensor, Tensor)
        Held-out images in [0, 1] and labels (not the training images, nor the images of
        the final evaluation).
    eps : float
        L-infinity radius of both attacks.
    n : int
        Size of the held-out batch (the first ``n`` of ``data``); default 256.
    steps : int
        PGD steps (step ``2.5 * eps / steps``, uniform random start); default 10.
    drop, rise : float
        See :func:`detect_collapse`.
    seed : int
        Seed of PGD's random start (the same start every epoch).

    Returns (per call)
    ------------------
    dict
        ``{"guard_clean_acc", "guard_fgsm_acc", "guard_pgd_acc"}``, added to the epoch's record.

    Attributes
    ----------
    history_ : list of dict
        One record per check (``epoch`` and the three accuracies).
    best_epoch_ : int or None
    collapse_ : Collapse or None
    """

    def __init__(self, data, *, eps: float, n: int = 256, steps: int = 10, drop: float = 0.2,
                 rise: float = 0.0, seed: int = 0):
        x, y = (data.x, data.y) if hasattr(data, "x") and hasattr(data, "y") else data
        n = check_int(n, "n", minimum=1)
        if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)) or x.shape[0] != y.shape[0]:
            raise TypeError("data must be a Dataset or a pair (images, labels) of tensors of equal length")
        if x.shape[0] < n:
            raise ValueError(f"data holds {x.shape[0]} images, fewer than n={n}")
        self.x, self.y = x[:n], y[:n]
        self.eps = check_positive(eps, "eps")
        self.steps = check_int(steps, "steps", minimum=1)
        self.drop = check_positive(drop, "drop")
        self.rise = float(rise)
        self.seed = check_int(seed, "seed", minimum=0)
        self.history_: list[dict] = []
        self.best_epoch_: int | None = None
        self.collapse_: Collapse | None = None
        self._best_state: dict | None = None

    def _accuracies(self, model: nn.Module) -> dict:
        from robustviz._utils import model_device, model_mode
        from robustviz.attacks import FGSM, PGD

        dev = model_device(model)
        x, y = self.x.to(dev), self.y.to(dev)
        pgd = PGD(eps=self.eps, step_size=2.5 * self.eps / self.steps, steps=self.steps, random_start="uniform")
        gen = torch.Generator(device=dev).manual_seed(self.seed)
        with model_mode(model, "eval"):
            with torch.no_grad():
                clean = (model(x).argmax(1) == y).float().mean().item()
            x_fgsm = FGSM(eps=self.eps)(model, x, y)
            x_pgd = pgd(model, x, y, generator=gen)
            with torch.no_grad():
                fgsm = (model(x_fgsm).argmax(1) == y).float().mean().item()
                robust = (model(x_pgd).argmax(1) == y).float().mean().item()
        return {"guard_clean_acc": clean, "guard_fgsm_acc": fgsm, "guard_pgd_acc": robust}

    def __call__(self, *, model: nn.Module, epoch: int, run_dir=None) -> dict:
        acc = self._accuracies(model)
        self.history_.append({"epoch": int(epoch), **acc})
        collapse = detect_collapse([h["guard_pgd_acc"] for h in self.history_],
                                   [h["guard_fgsm_acc"] for h in self.history_], drop=self.drop,
                                   rise=self.rise, epochs=[h["epoch"] for h in self.history_])
        if collapse is not None and collapse.epoch == int(epoch):
            self.collapse_ = collapse
            if self._best_state is not None:
                model.load_state_dict(self._best_state)
            if run_dir is not None:
                from pathlib import Path

                from robustviz import runs
                runs.save_weights(Path(run_dir) / BEST_WEIGHTS, model,
                                  metadata={"epoch": str(collapse.best_epoch)})
                runs.append_metrics(run_dir, {"kind": "event", "event": "catastrophic_overfitting",
                                              "weights": BEST_WEIGHTS, **collapse.to_dict()})
            raise CatastrophicOverfitting(collapse)
        if self.best_epoch_ is None or acc["guard_pgd_acc"] > max(
                h["guard_pgd_acc"] for h in self.history_[:-1]):
            self.best_epoch_ = int(epoch)
            self._best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return acc
