"""Transfer (black-box) evaluation: adversarial examples crafted on one model, tested on
another, and the source x target matrix."""
from __future__ import annotations

import dataclasses
from typing import Mapping

import torch
from torch import nn
from robustviz._utils import tqdm

from robustviz._utils import model_device, model_mode
from robustviz._validate import check_int
from robustviz.attacks import Attack
from robustviz.evaluate._common import (as_tensors, batches, check_batch_size, check_model,
                                        fmt_pct, generator, stream_seed)

__all__ = ["TransferResult", "TransferMatrix", "transfer", "transfer_matrix"]


@dataclasses.dataclass(frozen=True)
class TransferResult:
    """Accuracy of a target model on adversarial examples crafted on a source model.

    Attributes
    ----------
    n : int
    source_clean, target_clean : float
        Clean top-1 accuracies.
    white_box : float
        Source accuracy on its own adversarial examples.
    transfer : float
        Target accuracy on the source's adversarial examples (correct on both the
        clean and the adversarial input).
    attack : dict
    """

    n: int
    source_clean: float
    target_clean: float
    white_box: float
    transfer: float
    attack: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def table(self) -> str:
        return (f"transfer on {self.n} examples (accuracy %)\n"
                f"source clean {fmt_pct(self.source_clean)}   source white-box {fmt_pct(self.white_box)}\n"
                f"target clean {fmt_pct(self.target_clean)}   target transfer  {fmt_pct(self.transfer)}")

    def __str__(self) -> str:
        return self.table()


@dataclasses.dataclass(frozen=True)
class TransferMatrix:
    """Accuracy of every target model (columns) on the adversarial examples of every
    source model (rows); the diagonal is white-box accuracy.

    Attributes
    ----------
    names : tuple of str
    accuracy : tuple of tuple of float
        ``accuracy[i][j]``: model j on examples crafted on model i.
    clean : tuple of float
        Clean accuracy of each model.
    n : int
    attack : dict
    """

    names: tuple
    accuracy: tuple
    clean: tuple
    n: int
    attack: dict

    def to_dict(self) -> dict:
        return {"names": list(self.names), "accuracy": [list(r) for r in self.accuracy],
                "clean": list(self.clean), "n": self.n, "attack": self.attack}

    def table(self) -> str:
        w = max(8, *(len(s) for s in self.names))
        lines = [f"transfer accuracy (%) on {self.n} examples: rows = source, columns = target",
                 " " * w + "  " + "  ".join(s.rjust(w) for s in self.names)]
        lines.append("clean".ljust(w) + "  " + "  ".join(fmt_pct(c).rjust(w) for c in self.clean))
        for s, row in zip(self.names, self.accuracy):
            lines.append(s.ljust(w) + "  " + "  ".join(fmt_pct(a).rjust(w) for a in row))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _craft_and_score(sources: dict, targets: dict, x, y, attack, batch_size, seed, progress):
    """acc[s][t] over the data, and the clean accuracies of every model."""
    names_s, names_t = list(sources), list(targets)
    allm = {**targets, **sources}
    ok_clean = {m: [] for m in allm}
    ok = {s: {t: [] for t in names_t} for s in names_s}
    gens = {s: generator(model_device(sources[s]), stream_seed(seed)) for s in names_s}
    n = x.shape[0]
    for sl in tqdm(list(batches(n, batch_size)), disable=not progress, desc="transfer",
                   unit="batch", leave=False):
        xb_cpu, yb_cpu = x[sl], y[sl]
        for m, model in allm.items():
            dev = model_device(model)
            with model_mode(model, "eval"), torch.no_grad():
                ok_clean[m].append((model(xb_cpu.to(dev)).argmax(1).cpu() == yb_cpu))
        for s in names_s:
            src = sources[s]
            dev = model_device(src)
            x_adv = attack(src, xb_cpu.to(dev), yb_cpu.to(dev), generator=gens[s]).cpu()
            for t in names_t:
                tgt = targets[t]
                tdev = model_device(tgt)
                with model_mode(tgt, "eval"), torch.no_grad():
                    ok[s][t].append(tgt(x_adv.to(tdev)).argmax(1).cpu() == yb_cpu)
    clean = {m: torch.cat(v) for m, v in ok_clean.items()}
    acc = {s: {t: (torch.cat(ok[s][t]) & clean[t]).sum().item() / n for t in names_t}
           for s in names_s}
    return acc, {m: c.sum().item() / n for m, c in clean.items()}


def transfer(source: nn.Module, target: nn.Module, data, attack: Attack, *,
             batch_size: int = 256, seed: int = 0, progress: bool = True) -> TransferResult:
    """Craft adversarial examples on ``source`` with ``attack``, evaluate them on ``target``.

    Parameters
    ----------
    source, target : nn.Module
        Classifiers with the same input format (they may live on different devices).
    data : Dataset or (Tensor, Tensor)
    attack : Attack
    batch_size, seed, progress
        As in :func:`evaluate`.

    Returns
    -------
    TransferResult

    References
    ----------
    Papernot et al., "Transferability in Machine Learning", 2016; Athalye et al. 2018
    (a transfer attack that beats the white-box attack signals gradient masking).
    """
    check_model(source, "source")
    check_model(target, "target")
    x, y = as_tensors(data, source)
    as_tensors(data, target)
    if not isinstance(attack, Attack):
        raise TypeError(f"attack must be a robustviz Attack, got {type(attack).__name__}")
    batch_size = check_batch_size(batch_size)
    check_int(seed, "seed", minimum=0)
    acc, clean = _craft_and_score({"source": source}, {"source": source, "target": target},
                                  x, y, attack, batch_size, seed, progress)
    return TransferResult(n=x.shape[0], source_clean=clean["source"], target_clean=clean["target"],
                          white_box=acc["source"]["source"], transfer=acc["source"]["target"],
                          attack=attack.describe())


def transfer_matrix(models: Mapping[str, nn.Module], data, attack: Attack, *,
                    batch_size: int = 256, seed: int = 0, progress: bool = True) -> TransferMatrix:
    """The source x target transfer matrix (paper 003 Table 2, paper 004 Table VII).

    Adversarial examples are crafted once per source model and evaluated on every model;
    the diagonal holds white-box accuracy.

    Parameters
    ----------
    models : dict of str to nn.Module
        At least one model; order gives the rows and columns.
    data : Dataset or (Tensor, Tensor)
    attack : Attack
    batch_size, seed, progress
        As in :func:`evaluate`.

    Returns
    -------
    TransferMatrix

    Shape
    -----
    ``result.accuracy``: (S, S) nested tuples, S = ``len(models)``.
    """
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models must be a non-empty dict name -> nn.Module")
    for name, m in models.items():
        if not isinstance(name, str):
            raise TypeError(f"model names must be strings, got {name!r}")
        check_model(m, f"models[{name!r}]")
    first = next(iter(models.values()))
    x, y = as_tensors(data, first)
    for m in models.values():
        as_tensors(data, m)
    if not isinstance(attack, Attack):
        raise TypeError(f"attack must be a robustviz Attack, got {type(attack).__name__}")
    batch_size = check_batch_size(batch_size)
    check_int(seed, "seed", minimum=0)
    models = dict(models)
    acc, clean = _craft_and_score(models, models, x, y, attack, batch_size, seed, progress)
    names = tuple(models)
    return TransferMatrix(names=names,
                          accuracy=tuple(tuple(acc[s][t] for t in names) for s in names),
                          clean=tuple(clean[m] for m in names), n=x.shape[0],
                          attack=attack.describe())
