"""Epoch checkpoints of a training run, written atomically and read without unpickling.

A checkpoint is two files of the run directory:

``state.safetensors``
    the resume point, written FIRST: epoch, optimisation step, history, the model's and the
    defense's state dicts, the optimizer's state, and the random states (the trainer's
    ``torch.Generator`` and torch's default CPU/CUDA generators). It is complete on its own,
    so a process killed at any instant leaves a consistent resume point.
``weights.safetensors``
    the model's weights (what :func:`robustviz.runs.load_run` reads), written second.

Resuming a run restores that state (:func:`restore`) after checking that the run's config
allows it (:func:`resumed_config`), and repairs the weights and metrics a process stopped
between two writes left behind (:func:`start_run_dir`).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from robustviz import runs
from robustviz.train._options import ADDRESS

__all__ = ["save_checkpoint", "load_checkpoint", "has_checkpoint", "rng_state", "set_rng_state",
           "FORMAT", "resumed_config", "restore", "start_run_dir", "refuse_existing"]

FORMAT = "robustviz.train/1"

# Entries of config.json that may change between a run and its resumption: they change
# neither the maths nor the data (more epochs continue the run; where the data files are
# searched). Everything else in config.json defines the run and must match.
RESUMABLE_CHANGES = ("train.epochs", "train.progress", "train.device", "train_config.train.epochs",
                     "train_config.train.progress", "train_config.train.device", "train_config.out",
                     "train_config.data.root")
# Sections added to config.json by later versions: a run written before them has none, and
# resuming it fills them in.
ADDED_SECTIONS = ("eval",)


def rng_state(generator: torch.Generator, device: torch.device) -> dict:
    """Every random state a training step draws from: the trainer's generator (attack
    starts, defense sampling) and torch's default generators (dropout)."""
    state = {"generator": generator.get_state(), "torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, generator: torch.Generator, device: torch.device) -> None:
    """Inverse of :func:`rng_state`."""
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_cpu"])
    if device.type == "cuda" and "torch_cuda" in state:
        torch.cuda.set_rng_state(state["torch_cuda"], device)


def _state_dict(obj) -> dict:
    return obj.state_dict() if hasattr(obj, "state_dict") and callable(obj.state_dict) else {}


def save_checkpoint(run_dir: str | Path, *, model: nn.Module, defense, optimizer: torch.optim.Optimizer,
                    epoch: int, step: int, history: list[dict], rng: dict, loader_seed: int) -> None:
    """Write the resume point, then the weights, of a finished epoch (1-based ``epoch``)."""
    run_dir = Path(run_dir)
    runs.save_state(run_dir / runs.STATE, {
        "format": FORMAT,
        "epoch": int(epoch),
        "step": int(step),
        "history": list(history),
        "model": dict(model.state_dict()),
        "defense": dict(_state_dict(defense)),
        "optimizer": optimizer.state_dict(),
        "rng": rng,
        # the loader's order for epoch e is a function of (loader_seed, e) alone
        "loader": {"seed": int(loader_seed), "scheme": "set_epoch"},
    })
    runs.save_weights(run_dir / runs.WEIGHTS, model, metadata={"epoch": str(int(epoch))})


def has_checkpoint(run_dir: str | Path) -> bool:
    return (Path(run_dir) / runs.STATE).is_file()


def load_checkpoint(run_dir: str | Path) -> dict:
    """The resume point of a run directory (a :class:`robustviz.runs.CheckpointError` when
    the file is missing, corrupt or not a training state)."""
    path = Path(run_dir) / runs.STATE
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume: {run_dir} holds no training state "
                                f"({runs.STATE}); was it written by robustviz.train?")
    state = runs.load_state(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise runs.CheckpointError(f"{path} is not a robustviz.train checkpoint "
                                   f"(format {state.get('format') if isinstance(state, dict) else None!r})")
    return state


def refuse_existing(run_dir: str | Path) -> None:
    """A new run may not write over another run's checkpoint."""
    if has_checkpoint(run_dir):
        raise ValueError(f"run_dir {run_dir} already holds a training checkpoint; pass "
                         f"resume={str(run_dir)!r} to continue it, or choose a new directory")


def restore(state: dict, resume, *, model: nn.Module, defense, optimizer: torch.optim.Optimizer,
            generator: torch.Generator, device: torch.device, steps_per_epoch: int) -> tuple[int, int, list]:
    """Put the resume point ``state`` back into the model, the defense, the optimizer and
    the random states; return ``(epoch, step, history)`` to continue from."""
    model.load_state_dict({k: v.to(device) for k, v in state["model"].items()})
    if state["defense"]:
        defense.load_state_dict({k: v.to(device) for k, v in state["defense"].items()})
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"], generator, device)
    start_epoch, step, history = int(state["epoch"]), int(state["step"]), list(state["history"])
    if step != start_epoch * steps_per_epoch:
        raise ValueError(f"cannot resume {resume}: it ran {step} steps in {start_epoch} epochs, "
                         f"but the data now gives {steps_per_epoch} batches per epoch "
                         "(different data or batch size?)")
    return start_epoch, step, history


def start_run_dir(run_dir: Path, cfg: dict, files: dict, state: dict | None, history: list) -> None:
    """Write ``config.json`` (unless it already holds ``cfg``) and ``files`` into
    ``run_dir``; on resumption, repair what a process stopped between its checkpoint writes
    left behind."""
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.clean_temp_files(run_dir)   # left by a process killed mid-write
    text = json.dumps(cfg, indent=2, sort_keys=True)
    if not (run_dir / runs.CONFIG).is_file() or (run_dir / runs.CONFIG).read_text() != text:
        runs.atomic_write_text(run_dir / runs.CONFIG, text)
    for name, content in files.items():
        runs.atomic_write_text(run_dir / name, content)
    if state is not None:
        repair_weights(run_dir, state)
        repair_metrics(run_dir, history)


def resumed_config(run_dir: Path, cfg: dict) -> dict:
    """The config.json of a resumed run: its own record, with only the allowed changes
    (``RESUMABLE_CHANGES``) and sections it predates taken from ``cfg``; any other
    difference is refused, listing the keys."""
    try:
        old = runs.load_config(run_dir)
    except FileNotFoundError:   # a state without a config: nothing to compare
        return cfg
    flat_old, flat_new = _flatten(old), _flatten(json.loads(json.dumps(cfg)))
    for key, v in flat_old.items():   # runs written before addresses were dropped
        if isinstance(v, str) and key.startswith("defense."):
            flat_old[key] = ADDRESS.sub(">", v)
    diff = []
    for key in sorted(set(flat_old) | set(flat_new)):
        if key in RESUMABLE_CHANGES or flat_old.get(key, _MISSING) == flat_new.get(key, _MISSING):
            continue
        if key not in flat_old and key.split(".")[0] in ADDED_SECTIONS and \
                key.split(".")[0] not in old:
            continue   # a run written before this section existed: filled in
        diff.append(key)
    if diff:
        def show(v):
            return "(absent)" if v is _MISSING else repr(v)

        changes = "; ".join(f"{k}: run {show(flat_old.get(k, _MISSING))} vs now "
                            f"{show(flat_new.get(k, _MISSING))}" for k in diff)
        raise ValueError(f"cannot resume {run_dir}: the run was trained with another config "
                         f"({len(diff)} differing key(s): {', '.join(diff)}; {changes}). Only "
                         f"{list(RESUMABLE_CHANGES)} may change; start a new run directory "
                         f"for a different setting")
    out = json.loads(json.dumps(old))
    for key in RESUMABLE_CHANGES:
        if key in flat_new:
            _set_dotted(out, key, flat_new[key])
    for section in ADDED_SECTIONS:
        if section not in out and section in cfg:
            out[section] = cfg[section]
    return out


_MISSING = object()


def _flatten(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and scalars are leaves)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _set_dotted(d: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    for p in parents:
        if not isinstance(d.get(p), dict):
            return   # the run has no such section: nothing to update
        d = d[p]
    d[last] = value


def repair_weights(run_dir: Path, state: dict) -> None:
    """A process stopped after writing an epoch's state but before its weights leaves the
    weights of the epoch before (or none): rewrite them from the state, and say so in the
    metrics."""
    epoch = int(state["epoch"])
    path = run_dir / runs.WEIGHTS
    reason = None
    if not path.is_file():
        reason = "missing"
    elif runs.weights_epoch(run_dir) not in (None, epoch):
        reason = f"epoch {runs.weights_epoch(run_dir)} instead of {epoch}"
    else:
        try:
            tensors, _ = runs._read_safetensors(path)
        except runs.CheckpointError:
            tensors = None
        want = state["model"]
        if tensors is None or tensors.keys() != want.keys() or not all(
                torch.equal(tensors[k], want[k].cpu()) for k in want):
            reason = "not the checkpoint's weights"
    if reason is None:
        return
    runs.save_weights(path, {k: v for k, v in state["model"].items()}, metadata={"epoch": str(epoch)})
    runs.append_metrics(run_dir, {"kind": "event", "event": "weights_repaired", "epoch": epoch,
                                  "reason": f"{runs.WEIGHTS} was {reason}; rewritten from {runs.STATE}"})


def repair_metrics(run_dir: Path, history: list[dict]) -> None:
    """After a kill, metrics.jsonl may lack the line of the last checkpointed epoch (written
    after the checkpoint) or hold lines of epochs past it: make its epoch lines the
    checkpoint's history, keeping every other line."""
    records = runs.read_metrics(run_dir)
    last = len(history)
    kept = [r for r in records if r.get("kind") != "epoch" or int(r.get("epoch", 0)) <= last]
    have = {int(r["epoch"]) for r in kept if r.get("kind") == "epoch"}
    kept += [h for h in history if int(h["epoch"]) not in have]
    text = "".join(json.dumps(r) + "\n" for r in kept)
    path = run_dir / runs.METRICS
    if (path.read_text() if path.exists() else "") != text:   # also drops a torn last line
        runs.atomic_write_text(path, text)
