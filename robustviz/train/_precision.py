"""Which precision a run computes in: the ``bf16`` option (``True``, ``False`` or
``"auto"``), with ``"auto"`` turned on only where bf16 is faster than fp32."""
from __future__ import annotations


def check_bf16(option) -> None:
    if not (isinstance(option, bool) or option == "auto"):
        raise TypeError(f"bf16 must be True, False or 'auto', got {option!r}")


def use_bf16(option, device) -> bool:
    """Whether bf16 autocast runs on ``device``: ``option``, with ``"auto"`` resolved by
    :func:`robustviz._utils.bf16_is_fast` (CUDA GPUs with bf16 and CPUs with native bf16
    units; PyTorch emulates bf16 elsewhere, several times slower than fp32)."""
    if option == "auto":
        from robustviz import _utils
        return _utils.bf16_is_fast(device)
    return bool(option)
