"""Run directories and checkpoints that never unpickle.

A run directory holds::

    config.json            everything needed to rebuild the model and the data
    weights.safetensors    the model's state dict
    state.safetensors      optional training state (optimizer, scheduler, RNG), see save_state
    metrics.jsonl          one JSON object per line (epochs, evaluations, events)
    figures/               optional

Every write goes to a temporary file in the same folder, is flushed to disk, then renamed
over the target, so a killed process leaves either the old file or the new one.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from torch import nn

__all__ = [
    "Run", "save_run", "load_run", "load_config", "save_weights", "load_weights",
    "save_state", "load_state", "append_metrics", "read_metrics", "atomic_write_bytes",
    "atomic_write_text", "CheckpointError",
]

CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
STATE = "state.safetensors"
METRICS = "metrics.jsonl"


class CheckpointError(ValueError):
    """A weights or state file is truncated, tampered with, or belongs to another model."""


# --------------------------------------------------------------------------- atomic I/O
def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file + fsync + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        return obj.item()  # numpy scalars
    return obj


# --------------------------------------------------------------------------- weights
def save_weights(path: str | os.PathLike, model_or_state: nn.Module | dict, *,
                 metadata: dict[str, str] | None = None) -> Path:
    """Save a model's state dict as safetensors (atomically)."""
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    return atomic_write_bytes(path, _st_save(tensors, metadata=metadata))


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
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, "", tensors)
    return atomic_write_bytes(path, _st_save(tensors, metadata={"robustviz_state": json.dumps(skeleton)}))


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


# --------------------------------------------------------------------------- metrics
def append_metrics(run_dir: str | os.PathLike, record: dict) -> None:
    """Append one JSON line to ``metrics.jsonl`` (rewritten atomically so a crash never
    leaves half a line)."""
    path = Path(run_dir) / METRICS
    old = path.read_text() if path.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + json.dumps(_jsonable(record)) + "\n")


def read_metrics(run_dir: str | os.PathLike, *, kind: str | None = None) -> list[dict]:
    """All metric records of a run (optionally only those whose ``"kind"`` matches)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    out = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in out if kind is None or r.get("kind") == kind]


# --------------------------------------------------------------------------- runs
@dataclasses.dataclass
class Run:
    """A loaded run: the rebuilt model with its weights, its config and its metrics."""

    path: Path
    model: nn.Module
    config: dict
    metrics: list[dict]


def save_run(run_dir: str | os.PathLike, model: nn.Module, config: dict | Any, *,
             metrics: list[dict] | None = None) -> Path:
    """Write ``config.json`` and ``weights.safetensors`` (and metric lines if given).

    ``config`` must hold a ``"model"`` entry with the keyword arguments of
    :func:`robustviz.models.build` (``name``, ``num_classes``, ``in_channels``, ...), so
    :func:`load_run` can rebuild the model.
    """
    run_dir = Path(run_dir)
    cfg = _jsonable(config)
    if not isinstance(cfg, dict) or "model" not in cfg or "name" not in cfg["model"]:
        raise ValueError("config must be a dict with a 'model' entry holding build() arguments "
                         "(at least 'name')")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG, json.dumps(cfg, indent=2, sort_keys=True))
    save_weights(run_dir / WEIGHTS, model, metadata={"model": cfg["model"]["name"]})
    for rec in metrics or []:
        append_metrics(run_dir, rec)
    return run_dir


def load_config(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {CONFIG})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from None


def load_run(run_dir: str | os.PathLike, *, device: str | torch.device = "cpu") -> Run:
    """Rebuild a run's model from its config and load its weights (never unpickles)."""
    from robustviz import models  # runs sit above models in the layering

    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    model = models.build(**cfg["model"]).to(device)
    load_weights(run_dir / WEIGHTS, model)
    model.eval()
    return Run(path=run_dir, model=model, config=cfg, metrics=read_metrics(run_dir))
