"""Reverse attention (paper 004, ANCRA) as a model wrapper.

The penultimate features ``z`` of a built model are multiplied channel-wise by the
classifier's weight row of a class ``c`` and classified again by the same linear layer:

``logits = W (z * W[c]) + b``,   ``aux_logits = W z + b`` (the wrapped model's own output),

with ``c`` the true label in training (``forward(x, y)``) and the argmax of the auxiliary
logits at test time (``forward(x)``).

References
----------
Zhou et al., "Robust Representation Learning via Asymmetric Negative Contrast and Reverse
Attention" (ANCRA), arXiv:2310.03358, 2023.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ReverseAttention", "SoftReverseAttention"]


class ReverseAttention(nn.Module):
    """Wrap a classifier with reverse attention on its penultimate features.

    Parameters
    ----------
    model : nn.Module
        A :func:`robustviz.models.build` model (any module whose final layer is an
        ``nn.Linear`` named ``classifier`` applied once to the penultimate features works).

    Attributes
    ----------
    needs_labels : bool
        ``True``: defenses pass the labels in training (``forward(x, y)``).
    num_classes, in_channels, input_size, layer_names, classifier
        Those of the wrapped model. The tap ``"penultimate"`` is the unweighted ``z``;
        ``"aux_logits"`` (an extra tap, not in ``layer_names``) is ``W z + b``; ``"logits"``
        the reverse-attention output.

    Shape
    -----
    - ``x``: ``(N, C, H, W)`` pixels in [0, 1]; ``y``: ``(N,)`` or ``None``.
    - Output: ``(N, num_classes)`` logits, or ``(logits, aux_logits)`` with ``return_aux=True``.

    Notes
    -----
    The paper applies the attention inside both blocks of ResNet-18's layer4 (on feature
    maps, before pooling); this generic version applies it once, on the penultimate
    features right before the classifier, so it works for every model of the registry. The
    weighting keeps its gradient into the classifier weights.

    At test time the class comes from an argmax over the auxiliary logits, which is not
    differentiable: gradient-based attacks see ``c`` as a constant, and PGD on ``forward(x)``
    reports robustness that is masked gradients. :meth:`surrogate` gives the differentiable
    stand-in an adaptive attack differentiates instead
    (:class:`robustviz.attacks.Adaptive` uses it).
    """

    needs_labels = True

    def __init__(self, model: nn.Module):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(model, ReverseAttention):
            raise TypeError("model already has reverse attention")
        if not isinstance(getattr(model, "classifier", None), nn.Linear):
            raise TypeError(f"ReverseAttention needs a model whose final layer is an nn.Linear named "
                            f"'classifier' (its input is the penultimate feature); "
                            f"{type(model).__name__} has none")
        self.model = model

    # ---- metadata of the wrapped model ----
    @property
    def classifier(self) -> nn.Linear:
        return self.model.classifier

    @property
    def num_classes(self) -> int:
        return getattr(self.model, "num_classes", self.model.classifier.out_features)

    @property
    def in_channels(self):
        return getattr(self.model, "in_channels", None)

    @property
    def input_size(self):
        return getattr(self.model, "input_size", None)

    @property
    def min_input_size(self):
        return getattr(self.model, "min_input_size", 1)

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(getattr(self.model, "layer_names", ("penultimate", "logits")))

    @property
    def build_kwargs(self) -> dict:
        return {**getattr(self.model, "build_kwargs", {}), "reverse_attention": True}

    def check_input(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        if callable(getattr(self.model, "check_input", None)):
            return self.model.check_input(x, name)
        from robustviz._validate import check_images
        return check_images(x, name, channels=self.in_channels, size=self.input_size)

    def tap_points(self) -> dict:
        from robustviz.models._features import tap_points
        points = dict(tap_points(self.model))
        points["aux_logits"] = (self.model, "out")
        points["logits"] = (self, "out")
        return points

    def surrogate(self, temperature: float = 1.0) -> "SoftReverseAttention":
        """The same model with the test-time argmax replaced by the softmax of the auxiliary
        logits (differentiable): what an adaptive attack differentiates."""
        return SoftReverseAttention(self, temperature=temperature)

    # ---- forward ----
    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, aux_logits)``: the unweighted penultimate features and ``W z + b``."""
        store: list[torch.Tensor] = []
        handle = self.model.classifier.register_forward_pre_hook(lambda m, args: store.append(args[0]))
        try:
            aux = self.model(x)
        finally:
            handle.remove()
        if len(store) != 1:
            raise RuntimeError(f"ReverseAttention expects the classifier to run once per forward pass, "
                               f"it ran {len(store)} times")
        return store[0], aux

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, return_aux: bool = False):
        """Reverse-attention logits (and the auxiliary logits with ``return_aux=True``).

        ``y`` given: the attention uses the weight rows of the labels ``y`` (training);
        ``None``: of the auxiliary prediction (test)."""
        z, aux = self.features(x)
        if y is None:
            c = aux.detach().argmax(1)
        else:
            if y.shape != (x.shape[0],):
                raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
            c = y
        clf = self.model.classifier
        # functional call: the classifier module itself runs once (for the auxiliary logits),
        # so taps on its input stay the unweighted penultimate features
        logits = F.linear(z * clf.weight[c], clf.weight, clf.bias)
        return (logits, aux) if return_aux else logits

    def extra_repr(self) -> str:
        return "reverse attention on the penultimate features"


class SoftReverseAttention(nn.Module):
    """Differentiable surrogate of a :class:`ReverseAttention` model at test time.

    ``logits = W (z * (softmax(aux_logits / T) @ W)) + b``: the weight row of the argmax
    class becomes the probability-weighted mixture of all rows, so the gradient also flows
    through the auxiliary prediction. It shares the wrapped model's parameters (it holds
    the model as a submodule); it is meant for crafting attacks, not for prediction.

    Parameters
    ----------
    model : ReverseAttention
    temperature : float
        Softmax temperature ``T`` (> 0); small ``T`` approaches the hard argmax.
    """

    def __init__(self, model: ReverseAttention, temperature: float = 1.0):
        super().__init__()
        if not isinstance(model, ReverseAttention):
            raise TypeError(f"model must be a ReverseAttention model, got {type(model).__name__}")
        from robustviz._validate import check_positive
        self.temperature = check_positive(temperature, "temperature")
        self.ra = model

    num_classes = property(lambda self: self.ra.num_classes)
    in_channels = property(lambda self: self.ra.in_channels)
    input_size = property(lambda self: self.ra.input_size)

    def check_input(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        return self.ra.check_input(x, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, aux = self.ra.features(x)
        clf = self.ra.model.classifier
        mix = F.softmax(aux / self.temperature, dim=1) @ clf.weight
        return F.linear(z * mix, clf.weight, clf.bias)

    def extra_repr(self) -> str:
        return f"soft reverse attention, temperature {self.temperature:g}"
