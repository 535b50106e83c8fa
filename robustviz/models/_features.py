"""Feature taps: named intermediate tensors of any model, with or without gradients."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from robustviz._utils import tqdm

from robustviz._utils import autocast, model_device, model_mode
from robustviz._validate import check_images, check_int, check_layers, check_nonempty

__all__ = ["Features", "extract", "tap_points"]


def tap_points(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Tap name -> ``(module, "out" | "in")`` for ``model``.

    robustviz models define their own names (:meth:`RobustModel.tap_points`); a
    ``DataParallel``/``DistributedDataParallel`` wrapper exposes its inner model's names. Any other
    ``nn.Module`` gets the qualified names of its submodules (outputs), ``"penultimate"``
    (the input of ``model.classifier`` or ``model.fc`` when that is an ``nn.Linear``) and
    ``"logits"`` (the model's output).
    """
    if callable(getattr(model, "tap_points", None)):
        return model.tap_points()
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        points = dict(tap_points(model.module))  # hooks on the inner modules fire in its forward
        points["logits"] = (model, "out")
        return points
    points: dict[str, tuple[nn.Module, str]] = {
        name: (mod, "out") for name, mod in model.named_modules() if name}
    head = getattr(model, "classifier", None)
    if not isinstance(head, nn.Linear):
        head = getattr(model, "fc", None)
    if isinstance(head, nn.Linear):
        points["penultimate"] = (head, "in")
    points["logits"] = (model, "out")
    return points


class Features:
    """Tap named layers of a model: ``tap(x)`` runs the model once and returns a dict of the
    tapped tensors, still attached to the autograd graph (usable inside losses).

    Parameters
    ----------
    model : nn.Module
        A :func:`robustviz.models.build` model (names in ``model.layer_names``) or any
        module (qualified submodule names, ``"penultimate"``, ``"logits"``).
    layers : str or sequence of str
        Names to return; an unknown name raises a ``ValueError`` listing the valid ones.

    Notes
    -----
    The model runs in whatever mode it is in (train mode for training losses). Hooks
    record only during ``tap(x)``; other forward passes of the same model are unaffected.
    When a module runs several times in one forward pass, the last call's tensor is
    returned. ``"logits"`` is the model's return value, so it equals ``model(x)``.
    Call :meth:`close` (or use ``with Features(...) as tap:``) to remove the hooks.

    Shape
    -----
    ``x``: ``(N, C, H, W)``; each output has batch dimension ``N`` first
    (``"penultimate"``: ``(N, D)``, ``"logits"``: ``(N, num_classes)``, stages ``(N, C', H', W')``).

    Examples
    --------
    >>> import torch
    >>> from robustviz.models import build
    >>> model = build("tinycnn")
    >>> with Features(model, ["conv2", "penultimate", "logits"]) as tap:
    ...     out = tap(torch.rand(4, 1, 28, 28))
    >>> out["penultimate"].shape
    torch.Size([4, 128])
    """

    def __init__(self, model: nn.Module, layers: Sequence[str] | str):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        points = tap_points(model)
        self.model = model
        self.layers = list(dict.fromkeys(check_layers(layers, list(points), "layers")))
        self._closed = False
        self._store: dict[str, torch.Tensor] = {}
        self._active = False
        self._handles = []
        for name in self.layers:
            module, kind = points[name]
            if module is model and kind == "out":
                continue  # the model's own output: taken from the return value
            if kind == "in":
                self._handles.append(module.register_forward_pre_hook(self._make_pre_hook(name)))
            else:
                self._handles.append(module.register_forward_hook(self._make_hook(name)))
        self._self_output = [n for n in self.layers if points[n] == (model, "out")]

    def _make_hook(self, name: str):
        def hook(module, args, output):
            if self._active:
                self._store[name] = output
        return hook

    def _make_pre_hook(self, name: str):
        def hook(module, args):
            if self._active:
                self._store[name] = args[0]
        return hook

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the model on ``x`` once; return ``{name: tensor}`` in the order of ``layers``."""
        if self._closed:
            raise RuntimeError("this Features object was closed")
        self._store = {}
        self._active = True
        try:
            output = self.model(x)
        finally:
            self._active = False
        store, self._store = self._store, {}
        out = {}
        for name in self.layers:
            if name in self._self_output:
                out[name] = output
            elif name in store:
                out[name] = store[name]
            else:
                raise RuntimeError(f"layer {name!r} did not run in the forward pass of "
                                   f"{type(self.model).__name__}")
        return out

    def close(self) -> None:
        """Remove the hooks from the model."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._closed = True

    def __enter__(self) -> "Features":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Features({type(self.model).__name__}, layers={self.layers})"


def extract(model: nn.Module, data, layers: Sequence[str] | str, *, batch_size: int = 256,
            progress: bool = False, bf16: bool = False) -> dict[str, torch.Tensor]:
    """Batched, no-grad features of a whole dataset, in eval mode, as float32 CPU tensors.

    Parameters
    ----------
    model : nn.Module
    data : Dataset or Tensor
        A :class:`robustviz.data.Dataset` (its ``x`` is used) or a tensor of images in [0, 1].
    layers : str or sequence of str
        Tap names (see :class:`Features`).
    batch_size : int
    progress : bool
        Show a tqdm progress bar.
    bf16 : bool
        Run under bf16 autocast (faster only on GPUs and CPUs with native bf16, AVX512-BF16/AMX; emulated and slower elsewhere; outputs are still float32).

    Returns
    -------
    dict
        ``{name: tensor}`` with the batch results concatenated in data order.

    Shape
    -----
    ``data``: ``(N, C, H, W)``; each output ``(N, ...)`` (``"penultimate"``: ``(N, D)``).

    Notes
    -----
    Batches are moved to the model's device; the model's train/eval flags (of every
    submodule) are restored afterwards, even on error.
    """
    check_nonempty(data, "data")
    x = data.x if hasattr(data, "x") and isinstance(getattr(data, "x"), torch.Tensor) else data
    if callable(getattr(model, "check_input", None)):
        model.check_input(x, "data")
    else:
        check_images(x, "data")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    dev = model_device(model)
    parts: dict[str, list[torch.Tensor]] = {}
    with Features(model, layers) as tap, model_mode(model, "eval"), torch.no_grad():
        starts = range(0, x.shape[0], batch_size)
        for i in tqdm(starts, disable=not progress, desc="extract", unit="batch", leave=False):
            with autocast(dev, enabled=bf16):
                out = tap(x[i:i + batch_size].to(dev, non_blocking=True))
            for name, t in out.items():
                parts.setdefault(name, []).append(t.detach().to("cpu", torch.float32))
    return {name: torch.cat(ts) for name, ts in parts.items()}
