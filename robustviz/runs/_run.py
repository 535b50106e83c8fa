"""A run: its model rebuilt from ``config.json`` with the weights loaded, and its metrics.

:func:`save_run` writes a run from a model and its build arguments; :func:`load_run` checks
the weights file against what the config asks for before building anything, then rebuilds
and loads the model; :func:`load_encoder` does the same for a pretraining run, folding
separate BatchNorm branches to one.
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustviz.runs._layout import CONFIG, WEIGHTS
from robustviz.runs._metrics import _jsonable, read_metrics
from robustviz.runs._weights import CheckpointError, _header, load_weights, state_epoch, weights_epoch


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
    # writes go through the package: whoever replaces robustviz.runs.atomic_write_bytes or
    # append_metrics (the fault injection of tests/test_faults.py) sees each of them
    from robustviz import runs

    run_dir = Path(run_dir)
    cfg = _jsonable(config)
    if not isinstance(cfg, dict) or "model" not in cfg or "name" not in cfg["model"]:
        raise ValueError("config must be a dict with a 'model' entry holding build() arguments "
                         "(at least 'name')")
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.atomic_write_text(run_dir / CONFIG, json.dumps(cfg, indent=2, sort_keys=True))
    runs.save_weights(run_dir / WEIGHTS, model, metadata={"model": cfg["model"]["name"]})
    for rec in metrics or []:
        runs.append_metrics(run_dir, rec)
    return run_dir


def load_config(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {CONFIG})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from None


def _check_declared_sizes(run_dir: Path, spec: dict, models) -> None:
    """Compare the model ``config.json`` asks for with the weights file's header before any
    memory is taken: the header's data must fit the file, and the model, built on the
    ``meta`` device (no memory), must have the file's tensor names and shapes. A config
    asking for a model of any width is refused here, not after allocating it."""
    path = run_dir / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    head = _header(path)
    with open(path, "rb") as fh:
        n_head = int.from_bytes(fh.read(8), "little")
    size = path.stat().st_size
    try:
        ends = [int(v["data_offsets"][1]) for k, v in head.items() if k != "__metadata__"]
        shapes = {k: [int(d) for d in v["shape"]] for k, v in head.items() if k != "__metadata__"}
    except (TypeError, KeyError, ValueError, IndexError):
        raise CheckpointError(f"{path} has a malformed safetensors header") from None
    if 8 + n_head + max(ends, default=0) != size:
        raise CheckpointError(f"{path}: its header declares {8 + n_head + max(ends, default=0)} "
                              f"bytes but the file has {size} (truncated or tampered?)")
    try:
        with torch.device("meta"):
            probe = models.build(**spec)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{run_dir / CONFIG}: the 'model' entry cannot be built: {err}") from None
    except Exception:  # noqa: BLE001 - a model that cannot be built on meta: load_weights checks
        return
    own = {k: list(v.shape) for k, v in probe.state_dict().items()}
    wrong = [f"{k}: config {own[k]} vs file {shapes.get(k)}" for k in own if shapes.get(k) != own[k]]
    extra = sorted(set(shapes) - set(own))
    if wrong or extra:
        raise CheckpointError(
            f"{run_dir / CONFIG} asks for a model that {path.name} does not hold (refused before "
            f"building it): " + "; ".join(wrong[:3] + [f"unexpected {k}" for k in extra[:3]]))


def load_run(run_dir: str | os.PathLike, *, device: str | torch.device = "cpu") -> Run:
    """Rebuild a run's model from its config and load its weights (never unpickles).

    Warns when the weights file and the training state disagree on the epoch (a process
    stopped between writing the two): resuming the run repairs it.
    """
    from robustviz import models  # runs sit above models in the layering

    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    spec = cfg.get("model")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValueError(f"{run_dir / CONFIG} has no 'model' entry with the build() arguments "
                         f"(at least 'name'), so the model cannot be rebuilt; got {spec!r}. Runs of "
                         "models not built by robustviz.models.build cannot be loaded by name")
    _check_declared_sizes(run_dir, spec, models)
    model = models.build(**spec).to(device)
    load_weights(run_dir / WEIGHTS, model)
    bad = [k for k, v in model.state_dict().items()
           if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        warnings.warn(f"{run_dir / WEIGHTS} holds NaN or infinite values in {len(bad)} tensor(s), "
                      f"e.g. {bad[:3]} (training diverged?): this model's outputs are not results",
                      stacklevel=2)
    w_epoch, s_epoch = weights_epoch(run_dir), state_epoch(run_dir)
    if w_epoch is not None and s_epoch is not None and w_epoch != s_epoch:
        warnings.warn(f"{run_dir}: {WEIGHTS} holds epoch {w_epoch} but the training state is at "
                      f"epoch {s_epoch} (the process stopped between the two writes); resume the "
                      f"run to rewrite the weights from the state", stacklevel=2)
    model.eval()
    return Run(path=run_dir, model=model, config=cfg, metrics=read_metrics(run_dir))


def load_encoder(run_dir, *, branch: str | None = None, device="cpu") -> nn.Module:
    """The model of a pretraining (or any training) run, in eval mode, as an encoder to
    finetune (:func:`robustviz.train.prepare_finetune`) or to cluster with.

    A run trained with separate BatchNorm (``config["pretrain"]["separate_bn"]``) is rebuilt
    with its branches, loaded, and folded to ``branch`` (default: the run's
    ``finetune_branch``, AdvCL's adversarial one) so the result is the plain architecture.
    Loads ``weights.safetensors`` without unpickling.
    """
    from robustviz import models  # runs sit above models in the layering
    from robustviz.models._dual_bn import select_branch, separate_bn

    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    if not isinstance(cfg.get("model"), dict):
        raise ValueError(f"{run_dir}/config.json has no 'model' entry to rebuild the encoder from")
    model = models.build(**cfg["model"])
    pre = cfg.get("pretrain") or {}
    branches = pre.get("separate_bn") or []
    if branches:
        separate_bn(model, branches)
    load_weights(run_dir / WEIGHTS, model)
    if branches:
        select_branch(model, branch or pre.get("finetune_branch") or branches[-1])
    return model.to(device).eval()
