"""Pretrain -> finetune: put a new linear head on a pretrained encoder (loaded from its run
directory by :func:`robustviz.runs.load_encoder`), freeze it (SLF, ALF) or not (AFF, full
finetuning), and evaluate SA, RA (PGD-20) and AutoAttack. Both stages run through
:class:`robustviz.train.Trainer`.

Modes (Fan et al. 2021; paper 003 names them LSF/LAF/FSF/FAF):

- ``"slf"``: standard linear finetuning, frozen encoder, clean CE on the head;
- ``"alf"``: adversarial linear finetuning, frozen encoder, TRADES (or PGD-AT) on the head;
- ``"aff"``: adversarial full finetuning, every weight trained with TRADES;
- ``"full"``: standard full finetuning, clean CE on every weight.

A frozen encoder is kept in evaluation mode by forward pre-hooks (BatchNorm statistics and
dropout never change), and its parameters get no gradient, so its weights and buffers are
bit-identical after finetuning.

References
----------
Fan et al., "When Does Contrastive Learning Preserve Adversarial Robustness from
Pretraining to Finetuning?", NeurIPS 2021.
Paper 003: adversarial supervised contrastive pretraining, Machine Learning 2023.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustviz._validate import check_choice, check_int
from robustviz.runs import load_encoder  # re-exported: robustviz.train.load_encoder

__all__ = ["load_encoder", "prepare_finetune", "freeze_encoder", "evaluate_finetuned", "PretrainConfig",
           "FINETUNE_MODES", "FINETUNE_DEFENSES", "head_input_scale", "check_head_lr"]

FINETUNE_MODES = ("slf", "alf", "aff", "full")
FROZEN_MODES = ("slf", "alf")
# default defense of each mode (eps is filled in from the evaluation's eps)
FINETUNE_DEFENSES = {"slf": {"name": "nat"}, "alf": {"name": "trades", "beta": 6.0},
                     "aff": {"name": "trades", "beta": 6.0}, "full": {"name": "nat"}}


def _force_eval(module, args):
    module.training = False


def freeze_encoder(model: nn.Module, *, head: str = "classifier") -> nn.Module:
    """Freeze everything but ``model.<head>`` (in place): no gradients, and every frozen
    module runs in eval mode whatever ``model.train()`` says. Returns ``model``."""
    if not isinstance(getattr(model, head, None), nn.Module):
        raise ValueError(f"the model has no {head!r} module to keep trainable")
    keep = {id(m) for m in getattr(model, head).modules()}
    hooks = []
    for name, m in model.named_modules():
        if not name or id(m) in keep:
            continue
        for p in m.parameters(recurse=False):
            p.requires_grad_(False)
        hooks.append(m.register_forward_pre_hook(_force_eval))
    model.__dict__["_frozen_hooks"] = hooks
    return model


HEAD_INITS = ("default", "zero")


def prepare_finetune(encoder: nn.Module, mode: str, *, num_classes: int | None = None,
                     head_seed: int = 0, head_init: str = "default") -> nn.Module:
    """A copy of ``encoder`` with a freshly initialised linear head (``num_classes``
    outputs, default the encoder's), frozen for ``"slf"``/``"alf"``.

    ``head_init``: ``"default"`` is PyTorch's ``nn.Linear`` initialisation (Kaiming uniform,
    drawn from ``head_seed``; AdvCL's released finetuning code); ``"zero"`` sets the head's
    weight and bias to 0 (ASCL pretraining, Machine Learning 2023, Sec. 4).

    Shape
    -----
    The model keeps the encoder's input shape; logits ``(N, num_classes)``.
    """
    from robustviz.defenses._supcon import _init_linear

    check_choice(mode, "mode", FINETUNE_MODES)
    check_choice(head_init, "head_init", HEAD_INITS)
    model = copy.deepcopy(encoder)
    old = model.classifier
    k = int(num_classes or old.out_features)
    head = nn.Linear(old.in_features, k).to(device=old.weight.device, dtype=old.weight.dtype)
    _init_linear(head, torch.Generator().manual_seed(head_seed))
    if head_init == "zero":
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
    model.classifier = head
    model.num_classes = k
    if isinstance(getattr(model, "build_kwargs", None), dict):
        model.build_kwargs = {**model.build_kwargs, "num_classes": k}
    for p in model.parameters():
        p.requires_grad_(True)
    if mode in FROZEN_MODES:
        freeze_encoder(model)
    return model.train()


@torch.no_grad()
def head_input_scale(model: nn.Module, x: torch.Tensor, *, head: str = "classifier",
                     batch_size: int = 512) -> float:
    """Mean squared L2 norm of what ``model.<head>`` receives, ``E ||z||^2``, on the
    images ``x`` (the first ``batch_size`` of them), the model in eval mode.

    A linear head trained by SGD on features ``z`` moves its logits by about
    ``lr * ||z||^2`` per unit of gradient, so this is what sets a stable head learning rate:
    robust encoders often have features 20x larger (in ``||z||^2``) than a SimCLR one.
    """
    mod = getattr(model, head, None)
    if not isinstance(mod, nn.Module):
        raise ValueError(f"the model has no {head!r} module")
    seen = []
    handle = mod.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    was = model.training
    try:
        model.eval()
        dev = next(model.parameters()).device
        model(x[:batch_size].to(dev))
    finally:
        handle.remove()
        model.train(was)
    z = seen[0].flatten(1).float()
    return float(z.pow(2).sum(1).mean())


#: ``lr * E||z||^2 / (1 - momentum)`` above this and a linear head overshoots (measured at
#: teaching scale: a SimCLR encoder trains well at about 90, AdvCL's features at lr 0.1 give
#: about 1,900 and a first-epoch loss of 7-50).
HEAD_LR_LIMIT = 400.0


def check_head_lr(scale: float, lr: float, momentum: float = 0.0) -> str | None:
    """A warning text when ``lr`` is too large for a linear head on features of mean squared
    norm ``scale`` (see :func:`head_input_scale`), with a suggested lr; None when it is fine."""
    eff = lr * scale / max(1.0 - momentum, 1e-3)
    if eff <= HEAD_LR_LIMIT:
        return None
    good = 100.0 * max(1.0 - momentum, 1e-3) / scale
    return (f"the linear head's lr {lr:g} is large for these features (mean ||z||^2 = {scale:.0f}; "
            f"lr * ||z||^2 / (1 - momentum) = {eff:.0f} > {HEAD_LR_LIMIT:.0f}): the head will "
            f"overshoot; an lr near {good:.2g} gives the step a well-scaled encoder gets at 0.1 "
            f"(finetune.lr in the config, or --lr)")


def evaluate_finetuned(model: nn.Module, test, *, eps: float, steps: int = 20, step_size: float | None = None,
                       aa_n: int = 0, seed: int = 0, batch_size: int = 500) -> dict:
    """SA, RA (Linf PGD-``steps``, uniform start) and AutoAttack accuracy on ``test``.

    AutoAttack standard (its authors' settings) runs on the first ``aa_n`` images of
    ``test`` (0: skipped; it is slow on a CPU).

    Returns
    -------
    dict
        ``clean_acc``, ``pgd{steps}_acc``, ``n``, ``eps``, and ``aa_acc``, ``aa_n``,
        ``aa_backend`` when AutoAttack ran.
    """
    from robustviz import attacks
    from robustviz.train._trainer import Trainer

    trainer = Trainer(seed=seed, val_batch_size=batch_size, progress=False)
    pgd = attacks.PGD(eps=eps, step_size=step_size or eps / 4, steps=steps, random_start="uniform")
    res = trainer.evaluate(model, test, attack=pgd)
    out = {"clean_acc": res["clean_acc"], f"pgd{steps}_acc": res["robust_acc"], "n": res["n"], "eps": eps}
    if aa_n:
        aa = attacks.AutoAttack(eps=eps)
        sub = test.subset(range(min(int(aa_n), len(test))))
        r = trainer.evaluate(model, sub, attack=aa)
        out.update(aa_acc=r["robust_acc"], aa_n=r["n"], aa_backend=aa.describe().get("backend"))
    return out


# ------------------------------------------------------------------------------ config
_SECTIONS = ("pretrain", "finetune")
_PRETRAIN_KEYS = ("separate_bn", "finetune_branch", "clusterfit")
_CLUSTERFIT_KEYS = ("from", "ks", "n", "seed", "n_init")
_FINETUNE_KEYS = ("mode", "epochs", "lr", "full_lr", "batch_size", "optimizer", "weight_decay", "schedule",
                  "momentum", "milestones", "gamma", "augment", "defense", "head_seed", "head_init", "aa_n",
                  "val_size", "notes")


@dataclasses.dataclass
class PretrainConfig:
    """A pretraining run (a :class:`robustviz.train.TrainConfig`) plus the ``pretrain``
    section (``separate_bn``: true or a list of branch names; ``finetune_branch``;
    ``clusterfit``: ``{from: RUN_DIR, ks: [...], n, seed}``) and the ``finetune`` section
    (defaults of the finetuning runs: ``mode``, ``epochs``, ``lr`` (linear modes),
    ``full_lr`` (AFF and full finetuning, default ``lr / 10``), ``batch_size``,
    ``milestones``/``gamma`` (piecewise schedule), ``augment`` (``[crop, flip]``: the CIFAR
    RandomCrop(padding 4) + flip of the training batches), ``head_init`` (``default`` or
    ``zero``), ``defense`` for ALF/AFF, ``aa_n`` AutoAttack images...)."""

    train: Any
    pretrain: dict
    finetune: dict

    @classmethod
    def from_dict(cls, d: dict) -> "PretrainConfig":
        from robustviz.train._config import TrainConfig

        if not isinstance(d, dict):
            raise TypeError(f"a pretraining config must be a mapping, got {type(d).__name__}")
        d = dict(d)
        pre = dict(d.pop("pretrain", None) or {})
        fin = dict(d.pop("finetune", None) or {})
        for name, sec, keys in (("pretrain", pre, _PRETRAIN_KEYS), ("finetune", fin, _FINETUNE_KEYS)):
            bad = sorted(set(sec) - set(keys))
            if bad:
                raise ValueError(f"unknown key(s) {bad} in config section {name!r}; valid: {list(keys)}")
        if "clusterfit" in pre and pre["clusterfit"] is not None:
            bad = sorted(set(pre["clusterfit"]) - set(_CLUSTERFIT_KEYS))
            if bad:
                raise ValueError(f"unknown key(s) {bad} in pretrain.clusterfit; valid: {list(_CLUSTERFIT_KEYS)}")
        if pre.get("separate_bn") is True:
            from robustviz.models._dual_bn import BRANCHES
            pre["separate_bn"] = list(BRANCHES)
        elif not pre.get("separate_bn"):
            pre["separate_bn"] = []
        if "mode" in fin:
            check_choice(fin["mode"], "finetune.mode", FINETUNE_MODES)
        return cls(train=TrainConfig.from_dict(d), pretrain=pre, finetune=fin)

    @classmethod
    def load(cls, path) -> "PretrainConfig":
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no config file at {path}")
        text = path.read_text()
        d = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        return cls.from_dict(d or {})

    def to_dict(self) -> dict:
        return {**self.train.to_dict(), "pretrain": json.loads(json.dumps(self.pretrain)),
                "finetune": json.loads(json.dumps(self.finetune))}


def finetune_defaults(encoder_run, mode: str | None = None) -> dict:
    """The ``finetune`` section saved in a pretraining run (``{}`` when absent)."""
    from robustviz import runs

    cfg = runs.load_config(encoder_run)
    fin = dict(((cfg.get("pretrain_config") or {}).get("finetune")) or {})
    if mode is not None:
        fin["mode"] = mode
    check_int(int(fin.get("epochs", 1)), "finetune.epochs", minimum=1)
    return fin
