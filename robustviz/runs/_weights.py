"""Weights and training state as safetensors: checkpoints that never unpickle.

``weights.safetensors`` holds a model's state dict (:func:`save_weights`,
:func:`load_weights`); ``state.safetensors`` any nested structure of tensors, arrays and
JSON scalars, such as an optimizer's, a scheduler's and the RNGs' state (:func:`save_state`,
:func:`load_state`), its skeleton in the file's metadata. Both are written atomically; a
truncated, tampered or mismatched file raises :class:`CheckpointError` naming it. The epoch
each file was written at is read from its header alone (:func:`weights_epoch`,
:func:`state_epoch`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from torch import nn

from robustviz.runs._layout import STATE, WEIGHTS


class CheckpointError(ValueError):
    """A weights or state file is truncated, tampered with, or belongs to another model."""


# --------------------------------------------------------------------------- weights
def save_weights(path: str | os.PathLike, model_or_state: nn.Module | dict, *,
                 metadata: dict[str, str] | None = None) -> Path:
    """Save a model's state dict as safetensors (atomically)."""
    from robustviz import runs   # writes go through the package: see atomic_write_text

    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    return runs.atomic_write_bytes(path, _st_save(tensors, metadata=metadata))


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    raw = path.read_bytes()
    try:
        tensors = _st_load(raw)
    except (SafetensorError, Exception) as err:  # noqa: BLE001 - any parse failure is corruption
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or "
                              f"tampered?): {err}") from None
    meta = {}
    try:
        n = int.from_bytes(raw[:8], "little")
        meta = json.loads(raw[8:8 + n]).get("__metadata__", {}) or {}
    except Exception:  # noqa: BLE001
        pass
    return tensors, meta


def load_weights(path: str | os.PathLike, model: nn.Module, *, strict: bool = True) -> nn.Module:
    """Load safetensors weights into ``model``; mismatches raise a ``CheckpointError`` naming
    the file, the missing/unexpected keys and any shape differences."""
    path = Path(path)
    tensors, _ = _read_safetensors(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = [f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(tensors)) if tensors[k].shape != own[k].shape]
    if strict and (missing or unexpected or shapes):
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) e.g. {unexpected[:3]}")
        if shapes:
            parts.append(f"shape mismatch e.g. {shapes[:3]}")
        raise CheckpointError(f"weights in {path} do not fit {type(model).__name__} "
                              f"(another architecture?): " + "; ".join(parts))
    dev = next((t.device for t in own.values()), torch.device("cpu"))
    model.load_state_dict({k: v.to(dev) for k, v in tensors.items() if k in own}, strict=strict)
    return model


# --------------------------------------------------------------------------- nested state
def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = prefix or "_"
        tensors[key] = obj.detach().to("cpu").contiguous()
        return {"__tensor__": key}
    if hasattr(obj, "__array__") and hasattr(obj, "dtype") and not isinstance(obj, (int, float)):
        key = prefix or "_"
        tensors[key] = torch.as_tensor(obj).contiguous()
        return {"__ndarray__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(k, f"{prefix}/k{i}", tensors), _flatten(v, f"{prefix}/{i}", tensors)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_flatten(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_flatten(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint without pickling")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_state(path: str | os.PathLike, state: dict) -> Path:
    """Save a nested structure of tensors, arrays and JSON scalars (an optimizer's or
    scheduler's state dict, RNG states) as one safetensors file, atomically, without pickle.
    Dict keys keep their type (ints stay ints), tuples stay tuples."""
    from robustviz import runs   # writes go through the package: see atomic_write_text

    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, "", tensors)
    return runs.atomic_write_bytes(path, _st_save(tensors, metadata={"robustviz_state": json.dumps(skeleton)}))


def load_state(path: str | os.PathLike) -> dict:
    """Inverse of :func:`save_state`."""
    path = Path(path)
    tensors, meta = _read_safetensors(path)
    if "robustviz_state" not in meta:
        raise CheckpointError(f"{path} holds no robustviz training state")
    try:
        skeleton = json.loads(meta["robustviz_state"])
        return _unflatten(skeleton, tensors)
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: training state is inconsistent ({err})") from None


# --------------------------------------------------------------------------- epochs
def _header(path: Path) -> dict:
    """The JSON header of a safetensors file (reads only the header)."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if not 0 < n < 100_000_000:
            raise CheckpointError(f"{path} is not a safetensors file (header length {n})")
        try:
            return json.loads(fh.read(n))
        except ValueError as err:
            raise CheckpointError(f"{path} has a corrupt header: {err}") from None


def weights_epoch(run_dir: str | os.PathLike) -> int | None:
    """The training epoch recorded in a run's weights file (``None``: not recorded, e.g.
    weights saved by :func:`save_run`, or no weights file)."""
    path = Path(run_dir) / WEIGHTS
    if not path.is_file():
        return None
    value = (_header(path).get("__metadata__") or {}).get("epoch")
    return int(value) if value is not None and str(value).isdigit() else None


def state_epoch(run_dir: str | os.PathLike) -> int | None:
    """The epoch of a run's training state (``None`` when there is no state file)."""
    path = Path(run_dir) / STATE
    if not path.is_file():
        return None
    meta = _header(path).get("__metadata__") or {}
    try:   # the skeleton of save_state: a dict is {"__dict__": [[key, value], ...]}
        pairs = json.loads(meta["robustviz_state"])["__dict__"]
        return int(dict((k, v) for k, v in pairs if isinstance(k, str))["epoch"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path} holds no robustviz training state") from None
