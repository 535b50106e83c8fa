"""Epoch checkpoints of a training run, written atomically and read without unpickling.

A checkpoint is two files of the run directory:

``state.safetensors``
    the resume point, written FIRST: epoch, optimisation step, history, the model's and the
    defense's state dicts, the optimizer's state, and the random states (the trainer's
    ``torch.Generator`` and torch's default CPU/CUDA generators). It is complete on its own,
    so a process killed at any instant leaves a consistent resume point.
``weights.safetensors``
    the model's weights (what :func:`robustviz.runs.load_run` reads), written second.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from robustviz import runs

__all__ = ["save_checkpoint", "load_checkpoint", "has_checkpoint", "rng_state", "set_rng_state",
           "FORMAT"]

FORMAT = "robustviz.train/1"


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
