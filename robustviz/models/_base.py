"""Common base of every robustviz model: metadata, tap points, input checking."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustviz._validate import check_images

__all__ = ["RobustModel"]


class RobustModel(nn.Module):
    """Base class: a classifier whose first layer is :class:`Normalize`.

    Subclasses set, in ``__init__``:

    - ``self.normalize`` (a :class:`Normalize`) and ``self.classifier`` (the final
      ``nn.Linear``; its input is the ``"penultimate"`` feature);
    - ``self._stage_taps``: an ordered dict mapping a tap name to the qualified name of
      the submodule whose *output* it is (aliases allowed: two names may share a module;
      the special target ``"penultimate"`` makes a name an alias of the classifier input).

    Attributes
    ----------
    num_classes : int
    in_channels : int
    input_size : tuple of int or None
        ``(H, W)`` the model needs, or ``None`` when it pools adaptively and takes any
        size from ``min_input_size`` up.
    min_input_size : int
        Smallest side length the forward pass works on.
    layer_names : tuple of str
        Every tap name, in forward order, ending with ``"penultimate"`` and ``"logits"``.
    build_kwargs : dict
        JSON-serialisable keyword arguments of :func:`robustviz.models.build` that rebuild
        this architecture (put it in a run's config as ``config["model"]``).
    """

    num_classes: int
    in_channels: int
    input_size: tuple[int, int] | None = None
    min_input_size: int = 1
    build_kwargs: dict[str, Any]
    classifier: nn.Linear
    _stage_taps: dict[str, str]

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(self._stage_taps) + ("penultimate", "logits")

    def tap_points(self) -> dict[str, tuple[nn.Module, str]]:
        """Map each tap name to ``(module, "out" | "in")``: the tensor is that module's
        output, or (``"in"``) its first positional input. ``"logits"`` maps to the model
        itself (its output)."""
        points: dict[str, tuple[nn.Module, str]] = {}
        for name, target in self._stage_taps.items():
            if target == "penultimate":
                points[name] = (self.classifier, "in")
            else:
                points[name] = (self.get_submodule(target), "out")
        points["penultimate"] = (self.classifier, "in")
        points["logits"] = (self, "out")
        return points

    def check_input(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        """Validate a batch of images for this model (finite floats in [0, 1], the right
        channel count and size) with one clear error; returns ``x``. The forward pass does
        not check (speed); call this in public entry points."""
        check_images(x, name, channels=self.in_channels, size=self.input_size)
        if self.input_size is None:
            h, w = x.shape[-2:]
            if min(h, w) < self.min_input_size:
                raise ValueError(f"{name} must be at least {self.min_input_size}x{self.min_input_size} "
                                 f"images for {type(self).__name__}, got {h}x{w}")
        return x

    def extra_repr(self) -> str:
        size = "any" if self.input_size is None else f"{self.input_size[0]}x{self.input_size[1]}"
        return f"num_classes={self.num_classes}, in_channels={self.in_channels}, input_size={size}"
