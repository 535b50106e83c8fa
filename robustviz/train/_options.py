"""The :class:`~robustviz.train.Trainer`'s options: their checks, the optimizer they
choose, and how they (and the run they make) are recorded in ``config.json``."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustviz import runs
from robustviz._validate import (check_batch, check_choice, check_int, check_model_dtype, check_nonempty,
                                 check_nonnegative, check_positive)
from robustviz.train._precision import check_bf16
from robustviz.train._schedule import SCHEDULES, resolve_milestones

OPTIMIZERS = ("sgd", "adam", "adamw")
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3}
#: What ``repr`` adds to an instance's name: a memory address, different every run.
ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")


def check_options(t) -> None:
    """Check every option of the :class:`~robustviz.train.Trainer` ``t``: a ``ValueError`` or
    ``TypeError`` naming the first bad one."""
    check_int(t.epochs, "epochs", minimum=1)
    check_choice(t.optimizer, "optimizer", OPTIMIZERS)
    if t.lr is not None:
        check_positive(t.lr, "lr")
    check_nonnegative(t.momentum, "momentum", upper=1.0)
    check_nonnegative(t.weight_decay, "weight_decay")
    check_choice(t.schedule, "schedule", SCHEDULES)
    resolve_milestones(t.milestones, t.epochs)
    check_positive(t.gamma, "gamma")
    check_nonnegative(t.warmup_epochs, "warmup_epochs")
    check_int(t.batch_size, "batch_size", minimum=1)
    check_int(t.seed, "seed", minimum=0)
    check_bf16(t.bf16)
    for name in ("nesterov", "drop_last", "progress"):
        if not isinstance(getattr(t, name), bool):
            raise TypeError(f"{name} must be True or False, got {getattr(t, name)!r}")
    check_choice(t.attack_bn, "attack_bn", ("eval", "train"))
    if t.eps is not None:
        check_positive(t.eps, "eps", upper=1.0)
    if not (t.val_attack is None or t.val_attack == "pgd20" or callable(t.val_attack)):
        raise TypeError(f"val_attack must be 'pgd20', an attack object or None, got {t.val_attack!r}")
    check_int(t.val_size, "val_size", minimum=1)
    check_int(t.val_batch_size, "val_batch_size", minimum=1)
    if not (t.defense is None or isinstance(t.defense, dict) or callable(t.defense)):
        raise TypeError("defense must be a defense object (callable), a spec dict for "
                        f"robustviz.defenses.build, or None, got {type(t.defense).__name__}")
    if t.device is not None:
        try:
            torch.device(t.device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device must name a torch device ('cpu', 'cuda:0'), got {t.device!r}") from None


def build_optimizer(t, params) -> torch.optim.Optimizer:
    """The optimizer the options of ``t`` name, over ``params``."""
    lr = t.lr if t.lr is not None else DEFAULT_LR[t.optimizer]
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=t.momentum, nesterov=t.nesterov,
                               weight_decay=t.weight_decay)
    cls = torch.optim.Adam if t.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=lr, weight_decay=t.weight_decay)


def jsonable(value: Any) -> Any:
    """Options as they go into config.json: attacks and defenses by their fields, callables
    by name."""
    if isinstance(value, torch.device):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"name": type(value).__name__, **fields}
    if hasattr(value, "config") and callable(value.config):
        return jsonable(value.config())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    name = getattr(value, "__qualname__", None)
    if name:
        return name
    # an instance: its class, without the memory address of repr (which differs every run)
    return ADDRESS.sub(">", repr(value))


def run_config(t, model, train, defense, meta: dict) -> dict:
    """What ``config.json`` records of a run: model, data, the options of ``t``, the
    defense, the evaluation radius, and ``meta``."""
    data = {"name": getattr(train, "name", None), "n": len(train),
            "seed": getattr(train, "seed", None), "split": getattr(train, "split", None)}
    data.update(meta.get("data", {}))
    if hasattr(defense, "config") and callable(defense.config):
        defense_cfg = jsonable(defense.config())
    else:  # a plain callable: recorded by name, not rebuildable from the config
        defense_cfg = {"name": None, "callable": jsonable(defense)}
    # the radius the run is evaluated at by default (robustviz.runs.eval_eps reads it)
    ev = {"eps": t.resolve_eps(model, defense, data.get("name"))}
    ev.update(jsonable(meta.get("eval", {})))
    cfg = {"model": jsonable(getattr(model, "build_kwargs", None)), "data": data,
           "train": t.options_config(), "defense": defense_cfg, "eval": ev}
    cfg.update({k: jsonable(v) for k, v in meta.items() if k not in ("data", "eval")})
    return cfg


def check_fit_inputs(model, train, val, callbacks, meta, files) -> tuple[list, dict]:
    """Check what :meth:`~robustviz.train.Trainer.fit` was given (a ``TypeError`` or
    ``ValueError`` naming the bad argument); return ``callbacks`` as a list and ``files``
    as a dict."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_nonempty(train, "train")
    if not hasattr(train, "set_epoch"):
        if not (hasattr(train, "x") and hasattr(train, "y")):
            raise TypeError("train must be a robustviz.data.Dataset (with .x and .y) or a TensorLoader, "
                            f"got {type(train).__name__}")
        check_batch(train.x, train.y, channels=getattr(model, "in_channels", None),
                    size=getattr(model, "input_size", None), num_classes=getattr(model, "num_classes", None))
        if train.x.dtype == torch.float64:   # (a defense may feed the model itself: only the common slip)
            check_model_dtype(train.x, model, "train images")
    if val is not None:
        check_nonempty(val, "val")
    callbacks = list(callbacks)
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables, got {type(cb).__name__}")
    if meta is not None and not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    files = dict(files or {})
    for name, text in files.items():
        if not isinstance(name, str) or Path(name).name != name or name in (
                runs.CONFIG, runs.WEIGHTS, runs.STATE, runs.METRICS, runs.LOCK):
            raise ValueError(f"files must map plain file names (not the run's own files) to text, "
                             f"got {name!r}")
        if not isinstance(text, str):
            raise TypeError(f"files[{name!r}] must be a str, got {type(text).__name__}")
    return callbacks, files
