"""Small shared helpers: model-mode context, device/dtype helpers, seeding, autocast.

Private module; the public names are re-exported where they belong.
"""
from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch
from torch import nn

__all__ = ["model_mode", "model_device", "autocast", "seed_everything", "frozen_params", "bf16_is_fast"]


@contextlib.contextmanager
def model_mode(model: nn.Module, mode: str = "eval") -> Iterator[nn.Module]:
    """Set ``model`` to ``"eval"`` or ``"train"`` for a block, restore every module's flag after.

    The flags of all submodules are saved (not just the root's), so a model whose parts
    were in mixed modes comes back exactly as it was, even when the block raises.
    """
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    saved = [(m, m.training) for m in model.modules()]
    try:
        model.train(mode == "train")
        yield model
    finally:
        for m, flag in saved:
            m.training = flag


@contextlib.contextmanager
def frozen_params(model: nn.Module) -> Iterator[nn.Module]:
    """Turn off ``requires_grad`` on every parameter for a block (attacks need only input
    gradients), restoring each parameter's own flag afterwards."""
    saved = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in saved:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU for a parameter-free model)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def autocast(device: torch.device | str, enabled: bool = True):
    """bf16 autocast on ``device`` (CPU or CUDA) when ``enabled``, else a no-op context."""
    dev = torch.device(device)
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU ``torch.Generator`` seeded the same."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def bf16_is_fast(device: torch.device | str = "cpu") -> bool:
    """Whether bf16 autocast speeds training up on ``device``.

    CUDA: when the GPU supports bf16. CPU: only with native bf16 matrix units (AVX512-BF16
    or AMX, e.g. Intel Sapphire Rapids); elsewhere PyTorch emulates bf16 and it is several
    times *slower* than fp32.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if dev.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
