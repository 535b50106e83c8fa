"""A model as the chain of its layers, the form bound propagation walks."""
from __future__ import annotations

import torch
from torch import nn

from robustviz.models import Normalize

#: Layers whose map is affine in eval mode (bounds pass through them exactly).
AFFINE = (nn.Linear, nn.Conv2d, nn.Flatten, nn.AvgPool2d, nn.BatchNorm1d, nn.BatchNorm2d,
          nn.Dropout, nn.Identity, Normalize)
SUPPORTED = AFFINE + (nn.ReLU, nn.MaxPool2d)


def _leaves(module: nn.Module) -> list[nn.Module]:
    kids = list(module.children())
    if not kids:
        return [module]
    out = []
    for k in kids:
        out += _leaves(k)
    return out


def chain(model: nn.Module, x: torch.Tensor | None = None) -> list[nn.Module]:
    """The layers of ``model`` in the order its forward applies them, checked.

    A model qualifies when its forward is the composition of its leaf modules in
    registration order (TinyCNN, SmallCNN, any ``nn.Sequential`` of supported layers) and
    every leaf is affine in eval mode (linear, convolution, normalisation, flatten, average
    pooling, eval-mode batch norm or dropout), a ReLU or a max pooling. The composition is
    compared with ``model(x)`` (random images when ``x`` is None); a model it does not
    reproduce (residual connections, attention) is refused with the reason.

    Raises
    ------
    ValueError
        Unsupported layer types, pooling with padding or overlapping windows, or a forward
        that is not the chain of its layers.
    """
    layers = _leaves(model)
    bad = sorted({type(m).__name__ for m in layers if not isinstance(m, SUPPORTED)})
    if bad:
        raise ValueError(f"bound propagation supports chains of {', '.join(t.__name__ for t in SUPPORTED)}; "
                         f"{type(model).__name__} has {', '.join(bad)}")
    for m in layers:
        if isinstance(m, nn.MaxPool2d):
            k, s = m.kernel_size, m.stride
            if m.padding not in (0, (0, 0)) or k != s or m.dilation not in (1, (1, 1)) or m.ceil_mode:
                raise ValueError(f"max pooling must have stride = kernel, no padding, no dilation: {m}")
    if x is None:
        shape = getattr(model, "input_size", None)
        c = getattr(model, "in_channels", None)
        if shape is None or c is None:
            raise ValueError("pass example images x to check the chain against the model")
        x = torch.rand(4, c, *shape, generator=torch.Generator().manual_seed(0))
    x = x[:8]
    with torch.no_grad():
        ref = model(x)
        try:
            z = x
            for m in layers:
                z = m(z)
        except RuntimeError:          # shapes that only fit with the model's own wiring
            z = None
    if z is None or z.shape != ref.shape or not torch.allclose(z, ref, rtol=1e-4, atol=1e-5):
        raise ValueError(f"{type(model).__name__}'s forward is not the chain of its layers in "
                         f"registration order (a residual or branching model): bound propagation "
                         f"supports sequential models such as TinyCNN and SmallCNN")
    return layers
