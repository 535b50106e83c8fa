"""Small shared helpers: model-mode context, device/dtype helpers, seeding, autocast,
progress bars.

Private module; the public names are re-exported where they belong.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import random
import sys
import time
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn

__all__ = ["model_mode", "model_device", "autocast", "seed_everything", "frozen_params", "bf16_is_fast",
           "progress_mode", "tqdm"]


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
    or AMX, e.g. Intel Sapphire Rapids) that PyTorch's kernels may use; elsewhere PyTorch
    emulates bf16 and it is several times *slower* than fp32. Kernels held below AVX512
    (``ATEN_CPU_CAPABILITY=avx2``, or oneDNN's ``ONEDNN_MAX_CPU_ISA`` / ``DNNL_MAX_CPU_ISA``
    below ``AVX512_CORE_BF16``) emulate it too, whatever the CPU has.
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
    if not ("avx512_bf16" in flags or "amx_bf16" in flags):
        return False
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")()
    if "AVX512" not in capability.upper():
        return False
    isa = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    return isa in ("ALL", "DEFAULT") or isa.startswith(("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10", "AVX512_CORE_AMX"))


def device_name(device: torch.device | str = "cpu") -> str:
    """The machine an evaluation ran on, in words: ``"GPU NVIDIA H100"`` or ``"CPU AMD
    EPYC (AVX2), 2 threads"`` (the CPU's bf16 capability decides which precision is fast)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(dev)}"
    if dev.type != "cpu":
        return dev.type
    name, flags = "", []
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and not name:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1].split()
    except OSError:
        import platform
        name = platform.processor() or platform.machine()
    isa = ("AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else
           "AVX512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "")
    return f"CPU {name or '?'}" + (f" ({isa})" if isa else "") + \
        f", {torch.get_num_threads()} thread(s)"


# --------------------------------------------------------------------------- progress
_PROGRESS_MODES = ("bar", "lines", "off")


def progress_mode() -> str:
    """How progress is shown: ``"bar"``, ``"lines"`` or ``"off"``.

    ``ROBUSTVIZ_PROGRESS`` (one of those words) decides when set. Otherwise: tqdm bars in
    a Jupyter kernel (tqdm's widget) or when stderr is a terminal; plain lines when it is
    redirected to a file or a pipe, where bar frames would fill the log with carriage
    returns.
    """
    env = os.environ.get("ROBUSTVIZ_PROGRESS", "").strip().lower()
    if env:
        if env not in _PROGRESS_MODES:
            raise ValueError(f"ROBUSTVIZ_PROGRESS must be one of {_PROGRESS_MODES}, got {env!r}")
        return env
    if "ipykernel" in sys.modules:
        try:
            from IPython import get_ipython

            if getattr(get_ipython(), "kernel", None) is not None:
                return "bar"
        except Exception:  # noqa: BLE001 - IPython half-installed: fall through
            pass
    try:
        return "bar" if sys.stderr.isatty() else "lines"
    except (AttributeError, ValueError):  # no stderr, or closed
        return "lines"


class _Lines:
    """The part of tqdm's interface robustviz uses, printing plain lines instead of frames.

    A bar left on screen (``leave=True``: a top-level stage such as the report) prints one
    line when its stage changes (``set_description``/``set_postfix_str``) and one when it
    closes, with the count and the time taken. A transient bar (``leave=False``: batches of
    an epoch, of one evaluation) prints nothing; its caller reports the outcome (the trainer
    writes one summary line per epoch).
    """

    def __init__(self, iterable: Iterable | None = None, desc: str | None = None,
                 total: float | None = None, leave: bool = True, disable: bool | None = False,
                 unit: str = "it", **_ignored):
        self.iterable = iterable
        self.desc = desc or ""
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.total = total
        self.leave = leave
        self.disable = bool(disable)
        self.unit = unit
        self.n = 0
        self.postfix = ""
        self.numbers = ""
        self._t0 = time.perf_counter()
        self._closed = False

    # iteration and counting
    def __iter__(self):
        if self.iterable is None:
            raise TypeError("this progress object was made without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.n += 1
        finally:
            self.close()

    def __len__(self):
        return int(self.total or 0)

    def update(self, n: float = 1) -> None:
        self.n += n

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # stages
    def _count(self) -> str:
        n = int(self.n) if float(self.n).is_integer() else self.n
        return f"{n}/{int(self.total)}" if self.total else f"{n}"

    def _emit(self, text: str) -> None:
        if self.disable or not self.leave:
            return
        sys.stdout.flush()                      # keep the order of print()ed lines in a log
        print(text, file=sys.stderr, flush=True)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        desc = desc or ""
        if desc != self.desc:
            self.desc = desc
            self._emit(f"{self.desc} [{self._count()}]")

    set_description_str = set_description

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        s = str(s)
        if s != self.postfix:
            self.postfix = s
            self._emit(f"{self.desc} [{self._count()}] {s}".strip())

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        # per-batch numbers (loss, lr): kept, never printed (the caller reports the outcome)
        items = dict(ordered_dict or {}, **kwargs)
        self.numbers = ", ".join(f"{k}={v}" for k, v in items.items())

    def refresh(self, *args, **kwargs) -> None:
        pass

    def clear(self, *args, **kwargs) -> None:
        pass

    def reset(self, total: float | None = None) -> None:
        self.n = 0
        if total is not None:
            self.total = total
        self._t0 = time.perf_counter()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._emit(f"{self.desc}: {self._count()} {self.unit} in "
                   f"{time.perf_counter() - self._t0:.1f} s".lstrip(": "))

    @staticmethod
    def write(s: str, file=None, end: str = "\n", nolock: bool = False) -> None:
        fp = sys.stdout if file is None else file
        fp.write(s + end)
        fp.flush()


_INNER_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("robustviz_inner_progress",
                                                                     default=False)


@contextlib.contextmanager
def inner_progress(enabled: bool) -> Iterator[None]:
    """Within the block, long attacks (an ensemble's stages) show their own progress when
    ``enabled``: :func:`robustviz.evaluate.evaluate` turns it on with its own bar, so a
    500-image AutoAttack says which stage runs instead of sitting on one batch for minutes."""
    token = _INNER_PROGRESS.set(bool(enabled))
    try:
        yield
    finally:
        _INNER_PROGRESS.reset(token)


def inner_progress_enabled() -> bool:
    return _INNER_PROGRESS.get()


def with_inner_progress(iterable: Iterable, enabled: bool) -> Iterator:
    """Iterate ``iterable`` with :func:`inner_progress` on while the loop body runs."""
    token = _INNER_PROGRESS.set(bool(enabled))
    try:
        yield from iterable
    finally:
        try:
            _INNER_PROGRESS.reset(token)
        except ValueError:      # closed from another context (garbage collection)
            pass


def tqdm(iterable: Iterable | None = None, *args, **kwargs):
    """``tqdm.auto.tqdm`` when :func:`progress_mode` is ``"bar"``, plain lines otherwise.

    A drop-in for ``from tqdm.auto import tqdm`` (same arguments; ``tqdm.write`` too), so a
    log redirected to a file holds one line per stage or epoch instead of bar frames
    joined by carriage returns (a demo log was 40 kB of them).
    """
    mode = progress_mode()
    if mode == "bar":
        from tqdm.auto import tqdm as _tqdm

        return _tqdm(iterable, *args, **kwargs)
    if mode == "off":
        kwargs["disable"] = True
    if args:                                    # tqdm's second positional argument is desc
        kwargs.setdefault("desc", args[0])
    return _Lines(iterable, **kwargs)


def _write(s: str, file=None, end: str = "\n", nolock: bool = False) -> None:
    if progress_mode() == "bar":
        from tqdm.auto import tqdm as _tqdm

        _tqdm.write(s, file=file, end=end, nolock=nolock)
    else:
        _Lines.write(s, file=file, end=end)


tqdm.write = _write  # type: ignore[attr-defined]
