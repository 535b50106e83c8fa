"""Learning-rate schedules as pure functions of the optimisation step.

The trainer sets every parameter group's learning rate from :class:`Schedule` before each
step, so a schedule's whole state is the step counter: resuming a run needs nothing else.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from robustviz._validate import check_choice, check_int, check_nonnegative, check_positive

__all__ = ["Schedule", "resolve_milestones", "SCHEDULES"]

SCHEDULES = ("piecewise", "cosine", "constant")


def resolve_milestones(milestones: Sequence[float], epochs: int) -> tuple[float, ...]:
    """Milestones in epochs.

    Values that all lie strictly between 0 and 1 are fractions of ``epochs``
    (``(0.5, 0.75)`` of 100 epochs -> ``(50.0, 75.0)``); otherwise they are epochs already
    (``(75, 90)``). The result is sorted.
    """
    if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
        raise TypeError(f"milestones must be a sequence of numbers, got {milestones!r}")
    values = [check_positive(m, "milestones") for m in milestones]
    if values and all(0 < v < 1 for v in values):
        values = [v * epochs for v in values]
    return tuple(sorted(values))


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Learning rate at optimisation step ``s`` (0-based), ``lr = schedule(s)``.

    With ``t = s / steps_per_epoch`` the (fractional) epoch of the step and ``w`` the
    warm-up length in epochs:

    - warm-up: ``lr * (s + 1) / (w * steps_per_epoch)`` while ``s + 1 < w * steps_per_epoch``,
      a linear ramp that reaches ``lr`` at the end of the warm-up;
    - ``"constant"``: ``lr``;
    - ``"piecewise"``: ``lr * gamma ** k`` with ``k`` the number of milestones ``<= t``
      (decays happen at epoch boundaries when the milestones are whole epochs);
    - ``"cosine"``: ``min_lr + (lr - min_lr) * (1 + cos(pi * u)) / 2`` with
      ``u = (t - w) / (epochs - w)`` the progress after the warm-up.

    Parameters
    ----------
    kind : {"piecewise", "cosine", "constant"}
    lr : float
        Peak learning rate.
    epochs : int
        Length of the run.
    steps_per_epoch : int
    milestones : sequence of float
        Epochs (or fractions of ``epochs``, see :func:`resolve_milestones`) of the
        piecewise decays.
    gamma : float
        Piecewise decay factor (0.1 in the papers).
    warmup_epochs : float
        Linear warm-up length in epochs (0 for none).
    min_lr : float
        Floor of the cosine schedule.
    """

    kind: str = "piecewise"
    lr: float = 0.1
    epochs: int = 1
    steps_per_epoch: int = 1
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    min_lr: float = 0.0

    def __post_init__(self):
        check_choice(self.kind, "schedule", SCHEDULES)
        check_positive(self.lr, "lr")
        check_int(self.epochs, "epochs", minimum=1)
        check_int(self.steps_per_epoch, "steps_per_epoch", minimum=1)
        check_positive(self.gamma, "gamma")
        check_nonnegative(self.warmup_epochs, "warmup_epochs")
        check_nonnegative(self.min_lr, "min_lr")
        if self.warmup_epochs >= self.epochs and self.kind == "cosine":
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be shorter than "
                             f"epochs ({self.epochs}) for the cosine schedule")
        object.__setattr__(self, "milestones", resolve_milestones(self.milestones, self.epochs))

    def __call__(self, step: int) -> float:
        s = check_int(step, "step", minimum=0)
        t = s / self.steps_per_epoch
        warm_steps = self.warmup_epochs * self.steps_per_epoch
        if self.kind == "constant":
            lr = self.lr
        elif self.kind == "piecewise":
            lr = self.lr * self.gamma ** sum(1 for m in self.milestones if m <= t + 1e-9)
        else:
            u = min(max((t - self.warmup_epochs) / (self.epochs - self.warmup_epochs), 0.0), 1.0)
            lr = self.min_lr + (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * u)) / 2.0
        if warm_steps > 0 and s + 1 < warm_steps:
            lr = lr * (s + 1) / warm_steps
        return float(lr)
