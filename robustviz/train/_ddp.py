"""torch.distributed helpers for the trainer (DDP launched by ``torchrun``).

Nothing here starts processes: ``torchrun --nproc_per_node N script.py`` (or any launcher
that sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``) does. The trainer then

- joins the process group (``gloo`` on CPU, ``nccl`` on CUDA) unless the caller already did;
- wraps the model in :class:`~torch.nn.parallel.DistributedDataParallel`, which averages
  gradients across ranks during ``backward``;
- iterates the SAME global batches on every rank (same loader seed) and gives each rank a
  contiguous shard of each batch (the equivalent of a ``DistributedSampler`` for a
  tensor-resident loader, with batch augmentation applied before sharding so the global
  batch is the one a single process would see);
- writes the run directory from rank 0 only.
"""
from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["DistInfo", "setup", "teardown", "wrap", "shard", "all_reduce_sum", "any_rank",
           "average_gradients"]


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` (``1`` without DDP)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def setup(device: torch.device | None) -> tuple[DistInfo, torch.device | None]:
    """Detect or join a process group.

    Uses an initialised ``torch.distributed`` group when there is one; otherwise joins one
    when ``WORLD_SIZE`` > 1 in the environment (``torchrun``), with ``nccl`` when the
    training device is CUDA (``device`` given as CUDA, or not given and CUDA available: then
    ``cuda:LOCAL_RANK``) and ``gloo`` otherwise. Returns the info and the device to train on
    (``device`` unchanged outside DDP).
    """
    if dist.is_available() and dist.is_initialized():
        info = DistInfo(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0), False)
    else:
        world = _env_int("WORLD_SIZE", 1)
        if world <= 1:
            return DistInfo(), device
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
        rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
        cuda = (device.type == "cuda") if device is not None else torch.cuda.is_available()
        dist.init_process_group(backend="nccl" if cuda else "gloo", rank=rank, world_size=world)
        info = DistInfo(rank, world, local, True)
    if (device is None and torch.cuda.is_available() and dist.get_backend() == "nccl") or \
            (device is not None and device.type == "cuda" and device.index is None):
        device = torch.device("cuda", info.local_rank)  # one GPU per local rank
    if device is not None and device.type == "cuda":
        torch.cuda.set_device(device)
    return info, device


def teardown(info: DistInfo, *, synchronize: bool = True) -> None:
    """Leave the process group if :func:`setup` joined it.

    With ``synchronize`` (a run that ended normally) every rank first waits at a barrier, so
    that no rank tears its group down while another still talks to it: gloo then aborts the
    early rank ("terminate called without an active exception"). After an error there is no
    barrier: the other ranks may never reach it."""
    if info.initialized_here and dist.is_initialized():
        try:
            if synchronize:
                dist.barrier()
        finally:
            dist.destroy_process_group()


class _DDP(DistributedDataParallel):
    """DDP whose missing attributes fall through to the wrapped model, so defenses see the
    model's ``needs_labels``, ``layer_names``, ``tap_points()`` ... while their forward passes
    go through DDP (and their gradients are averaged across ranks)."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
            return getattr(self.module, name)


def wrap(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """``model`` wrapped in DDP when ``info.active``, else ``model`` itself."""
    if not info.active:
        return model
    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return _DDP(model, device_ids=ids)


def shard(x: torch.Tensor, y: torch.Tensor, info: DistInfo) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's contiguous part of a global batch (sizes differ by at most one)."""
    if not info.active:
        return x, y
    return x.tensor_split(info.world_size)[info.rank], y.tensor_split(info.world_size)[info.rank]


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum of ``t`` over ranks (``t`` itself outside DDP)."""
    if info.active:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True when ``flag`` is true on at least one rank (every rank gets the same answer)."""
    if not info.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    return bool(all_reduce_sum(t, info).item() > 0)


def average_gradients(params, info: DistInfo) -> None:
    """Average the gradients of parameters that live outside the DDP model (a defense's
    projection head) across ranks, as DDP does for the model's own."""
    if not info.active:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(info.world_size)
