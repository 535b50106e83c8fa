"""Positives and negatives per anchor over training (paper 001, Fig. 3).

The contrastive defenses log, per training step or per epoch, the mean number of
positives and negatives each anchor kept after its selection rule (Global, Hard-LS,
Soft-LS, Leaked-LS). This module reads those records back from a run's
``metrics.jsonl`` (records of kind ``"train_step"`` or ``"epoch"`` holding
``"pos_per_anchor"`` and ``"neg_per_anchor"``, or the trainer's epoch means
``"train_pos_per_anchor"`` and ``"train_neg_per_anchor"``) into a small result for
:func:`robustviz.figures.plot_selection_counts`.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from robustviz.runs import read_metrics

__all__ = ["SelectionStats", "selection_stats"]

_KEYS = ("pos_per_anchor", "neg_per_anchor")
_PREFIXES = ("", "train_")


@dataclasses.dataclass(frozen=True, repr=False)
class SelectionStats:
    """Mean positives and negatives per anchor along training.

    Attributes
    ----------
    x : ndarray of shape (T,)
        Epochs (``x_label == "epoch"``) or global steps (``"step"``).
    pos, neg : ndarray of shape (T,)
        Mean number of positives / negatives per anchor at each x.
    x_label : str
    source : str
        ``"epoch"`` (epoch records), ``"train_step"`` (steps, averaged per epoch when
        ``per_epoch``) or ``"records"``.
    name : str
        Run name (the run directory's name) for legends.
    """

    x: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    x_label: str
    source: str
    name: str

    @property
    def final(self) -> tuple[float, float]:
        """(positives, negatives) per anchor at the last point."""
        return float(self.pos[-1]), float(self.neg[-1])

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x.tolist(), "pos": self.pos.tolist(), "neg": self.neg.tolist(),
                "x_label": self.x_label, "source": self.source, "name": self.name}

    def __repr__(self) -> str:
        p, q = self.final
        return (f"SelectionStats(name={self.name!r}, points={len(self.x)} {self.x_label}s, "
                f"final pos/anchor={p:.3g}, neg/anchor={q:.3g})")


def _pair(r: dict) -> tuple[float, float] | None:
    """(positives, negatives) per anchor of a record, under either key style."""
    for p in _PREFIXES:
        v = [r.get(p + k) for k in _KEYS]
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            return float(v[0]), float(v[1])
    return None


def selection_stats(run, *, per_epoch: bool = True, name: str | None = None) -> SelectionStats:
    """Positives/negatives per anchor over training, read from a run's metrics.

    Parameters
    ----------
    run : str or PathLike or list of dict
        A run directory (its ``metrics.jsonl`` is read with
        :func:`robustviz.runs.read_metrics`) or the metric records themselves.
    per_epoch : bool
        With only ``"train_step"`` records: average them per epoch (records need an
        ``"epoch"`` key) or keep every step (x = ``"step"`` key, else record order).
        ``"epoch"`` records, when present, are used as they are.
    name : str, optional
        Label for legends (default: the run directory's name).

    Returns
    -------
    SelectionStats

    References
    ----------
    Bui et al., "Understanding and Achieving Efficient Robustness with Adversarial Supervised
    Contrastive Learning", arXiv:2101.10027, 2021, Fig. 3 (Global about 26.4 / 228.6 positives /
    negatives per anchor at batch 128).
    """
    if isinstance(run, (str, os.PathLike)):
        path = Path(run)
        if not path.is_dir():
            raise FileNotFoundError(f"run must be a run directory, {path} does not exist")
        records = read_metrics(path)
        name = name if name is not None else path.name
    elif isinstance(run, Iterable) and not isinstance(run, (bytes, dict)):
        records = list(run)
        if not all(isinstance(r, dict) for r in records):
            raise TypeError("run must be a run directory or a list of metric records (dicts)")
        name = name if name is not None else "run"
    else:
        raise TypeError(f"run must be a run directory or a list of metric records, "
                        f"got {type(run).__name__}")

    epochs = [r for r in records if r.get("kind") == "epoch" and _pair(r)]
    steps = [r for r in records if r.get("kind") == "train_step" and _pair(r)]
    if epochs:
        x = np.array([r.get("epoch", i) for i, r in enumerate(epochs)], dtype=float)
        pos = np.array([_pair(r)[0] for r in epochs], dtype=float)
        neg = np.array([_pair(r)[1] for r in epochs], dtype=float)
        x_label, source = "epoch", "epoch"
    elif steps:
        source = "train_step"
        if per_epoch and all("epoch" in r for r in steps):
            ep = np.array([r["epoch"] for r in steps], dtype=float)
            x = np.unique(ep)
            p = np.array([_pair(r)[0] for r in steps], dtype=float)
            q = np.array([_pair(r)[1] for r in steps], dtype=float)
            pos = np.array([p[ep == e].mean() for e in x])
            neg = np.array([q[ep == e].mean() for e in x])
            x_label = "epoch"
        else:
            x = np.array([r.get("step", i) for i, r in enumerate(steps)], dtype=float)
            pos = np.array([_pair(r)[0] for r in steps], dtype=float)
            neg = np.array([_pair(r)[1] for r in steps], dtype=float)
            x_label = "step"
    else:
        raise ValueError(f"no metric records of kind 'train_step' or 'epoch' with "
                         f"{list(_KEYS)} (or 'train_'-prefixed) in {name!r}: only the "
                         f"contrastive defenses (SupCon terms) log them")
    order = np.argsort(x, kind="stable")
    return SelectionStats(x=x[order], pos=pos[order], neg=neg[order], x_label=x_label,
                          source=source, name=str(name))
