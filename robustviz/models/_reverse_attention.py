"""Reverse attention (paper 004, ANCRA) as a model wrapper.

The penultimate features ``z`` of a built model are multiplied channel-wise by the
classifier's weight row of a class ``c`` and classified again by the same linear layer:

``logits = W (z * W[c]) + b``,   ``aux_logits = W z + b`` (the wrapped model's own output),

with ``c`` the true label in training (``forward(x, y)``) and the argmax of the auxiliary
logits at test time (``forward(x)``).

``placement="blocks"`` puts the attention where the paper's ResNet-18 has it: inside
both blocks of the last stage (``layer4``), on feature maps, each with the model's one
linear classifier ``W, b`` (Algorithm 1: ``P <- f^-1(Z)``, "the linear classifier"; the
authors' released ResNet-18 passes its single ``fc`` to both blocks):
``aux_k = W pool(h_k) + b`` and ``h_k <- h_k * W[c_k]`` (channel-wise, broadcast over
positions) before the next block, with ``c_k`` the label in training and ``argmax aux_k``
at test; the classifier on the pooled, weighted output of the last block gives the logits.
Each block's auxiliary logits get the auxiliary loss (taps ``aux_logits_1``,
``aux_logits_2``; see :attr:`ReverseAttention.aux_heads`). No parameter is added: the
state dict is the wrapped model's.

References
----------
Zhou et al., "Robust Representation Learning via Asymmetric Negative Contrast and Reverse
Attention" (ANCRA), arXiv:2310.03358, 2023.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ReverseAttention", "SoftReverseAttention", "PLACEMENTS"]

PLACEMENTS = ("penultimate", "blocks")


def _init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    """PyTorch's default Linear initialisation, drawn from ``generator``."""
    import math
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1 / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.bias.copy_((torch.rand(layer.bias.shape, generator=generator) * 2 - 1) * bound)


class ReverseAttention(nn.Module):
    """Wrap a classifier with reverse attention on its penultimate features.

    Parameters
    ----------
    model : nn.Module
        A :func:`robustviz.models.build` model (any module whose final layer is an
        ``nn.Linear`` named ``classifier`` applied once to the penultimate features works).
    placement : {"penultimate", "blocks"}
        ``"penultimate"`` (default): once, on the penultimate features, with the classifier's
        own rows. ``"blocks"``: in every block of ``model.layer4`` (the paper's ResNet-18
        placement), every block with the model's classifier. Needs a model with a
        ``layer4`` ``nn.Sequential`` of blocks (``resnet18``, ``preactresnet18``,
        ``resnet18_imagenet``).
    head_seed : int
        Unused (kept for configs written when each block had a head of its own).

    Attributes
    ----------
    needs_labels : bool
        ``True``: defenses pass the labels in training (``forward(x, y)``).
    aux_heads : tuple of str
        Tap names of the auxiliary logits, one auxiliary loss each: ``("aux_logits",)``, or
        ``("aux_logits_1", "aux_logits_2")`` for the blocks of ResNet-18's ``layer4``
        (``"aux_logits"`` is then the last block's).
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
    maps, before pooling): ``placement="blocks"``. The default applies it once, on the
    penultimate features right before the classifier, so it works for every model of the
    registry. The weighting keeps its gradient into the (classifier or head) weights.

    At test time the class comes from an argmax over the auxiliary logits, which is not
    differentiable: gradient-based attacks see ``c`` as a constant, and PGD on ``forward(x)``
    reports robustness that is masked gradients. :meth:`surrogate` gives the differentiable
    stand-in an adaptive attack differentiates instead
    (:class:`robustviz.attacks.Adaptive` uses it).
    """

    needs_labels = True

    def __init__(self, model: nn.Module, placement: str = "penultimate", head_seed: int = 0):
        super().__init__()
        from robustviz._validate import check_choice, check_int
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(model, ReverseAttention):
            raise TypeError("model already has reverse attention")
        if not isinstance(getattr(model, "classifier", None), nn.Linear):
            raise TypeError(f"ReverseAttention needs a model whose final layer is an nn.Linear named "
                            f"'classifier' (its input is the penultimate feature); "
                            f"{type(model).__name__} has none")
        self.placement = check_choice(placement, "placement", PLACEMENTS)
        self.head_seed = check_int(head_seed, "head_seed", minimum=0)
        self.model = model
        # one parameter-free tap per block: the shared classifier runs three times per forward
        # pass, so each block's auxiliary logits get their own module to hook (Features taps)
        self.block_taps = nn.ModuleList()
        if self.placement == "blocks":
            stage = getattr(model, "layer4", None)
            if not isinstance(stage, nn.Sequential) or len(stage) == 0:
                raise TypeError(f"placement='blocks' needs a model with a 'layer4' nn.Sequential of blocks "
                                f"(ResNet-18); {type(model).__name__} has none")
            for k, block in enumerate(stage):
                convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
                if not convs or convs[-1].out_channels != model.classifier.in_features:
                    raise TypeError(f"layer4[{k}] must output the classifier's {model.classifier.in_features} "
                                    f"channels for the reverse attention to use its rows")
                self.block_taps.append(nn.Identity())
                # plain attributes (not submodules): a deep copy of this wrapper maps them to the
                # copied modules and keeps the hook valid
                block.__dict__["_ra_classifier"] = model.classifier
                block.__dict__["_ra_tap"] = self.block_taps[k]
                block.__dict__["_ra_index"] = k
                block.__dict__["_ra_state"] = None
                block.register_forward_hook(_attend)

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
        ra = True if self.placement == "penultimate" else self.placement
        return {**getattr(self.model, "build_kwargs", {}), "reverse_attention": ra}

    @property
    def aux_heads(self) -> tuple[str, ...]:
        if self.placement == "blocks":
            return tuple(f"aux_logits_{k + 1}" for k in range(len(self.block_taps)))
        return ("aux_logits",)

    def check_input(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        if callable(getattr(self.model, "check_input", None)):
            return self.model.check_input(x, name)
        from robustviz._validate import check_images
        return check_images(x, name, channels=self.in_channels, size=self.input_size)

    def tap_points(self) -> dict:
        from robustviz.models._features import tap_points
        points = dict(tap_points(self.model))
        if self.placement == "blocks":
            for k, tap in enumerate(self.block_taps):
                points[f"aux_logits_{k + 1}"] = (tap, "out")
            points["aux_logits"] = (self.block_taps[-1], "out")
        else:
            points["aux_logits"] = (self.model, "out")
        points["logits"] = (self, "out")
        return points

    def surrogate(self, temperature: float = 1.0) -> "SoftReverseAttention":
        """The same model with the test-time argmax replaced by the softmax of the auxiliary
        logits (differentiable): what an adaptive attack differentiates."""
        return SoftReverseAttention(self, temperature=temperature)

    # ---- forward ----
    def _blocks_forward(self, x, y, soft=None):
        state = {"labels": y, "soft": soft, "aux": {}}
        blocks = list(self.model.layer4)
        for b in blocks:
            b.__dict__["_ra_state"] = state
        try:
            logits = self.model(x)
        finally:
            for b in blocks:
                b.__dict__["_ra_state"] = None
        return logits, state["aux"][len(blocks) - 1]

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, aux_logits)``: the unweighted penultimate features and ``W z + b``
        (``placement="penultimate"`` only)."""
        if self.placement != "penultimate":
            raise ValueError("features() is the penultimate placement's; with placement='blocks' "
                             "the attention acts inside layer4")
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
        ``None``: of the auxiliary prediction (test). With ``placement="blocks"`` the
        returned auxiliary logits are the last block's."""
        if y is not None and y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
        if self.placement == "blocks":
            logits, aux = self._blocks_forward(x, y)
            return (logits, aux) if return_aux else logits
        z, aux = self.features(x)
        c = aux.detach().argmax(1) if y is None else y
        clf = self.model.classifier
        # functional call: the classifier module itself runs once (for the auxiliary logits),
        # so taps on its input stay the unweighted penultimate features
        logits = F.linear(z * clf.weight[c], clf.weight, clf.bias)
        return (logits, aux) if return_aux else logits

    def extra_repr(self) -> str:
        if self.placement == "blocks":
            return f"reverse attention in the {len(self.block_taps)} blocks of layer4 (shared classifier)"
        return "reverse attention on the penultimate features"


def _attend(block: nn.Module, args, out: torch.Tensor) -> torch.Tensor:
    """Forward hook of a ``layer4`` block (``placement="blocks"``): the model's classifier on
    the pooled output (the block's auxiliary logits), then the channel-wise weighting by the
    classifier's row of the class (label in training, argmax of the auxiliary logits at test,
    softmax mixture for the surrogate)."""
    head = block.__dict__["_ra_classifier"]
    aux = block.__dict__["_ra_tap"](F.linear(out.mean(dim=(2, 3)), head.weight, head.bias))
    st = block.__dict__.get("_ra_state")
    if st is not None:
        st["aux"][block.__dict__["_ra_index"]] = aux
    labels = None if st is None else st["labels"]
    soft = None if st is None else st["soft"]
    if labels is not None and labels.shape[0] == out.shape[0]:
        w = head.weight[labels]
    elif soft is not None:
        w = F.softmax(aux / soft, dim=1) @ head.weight
    else:
        w = head.weight[aux.detach().argmax(1)]
    return out * w[:, :, None, None].to(out.dtype)


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
        if self.ra.placement == "blocks":
            return self.ra._blocks_forward(x, None, soft=self.temperature)[0]
        z, aux = self.ra.features(x)
        clf = self.ra.model.classifier
        mix = F.softmax(aux / self.temperature, dim=1) @ clf.weight
        return F.linear(z * mix, clf.weight, clf.bias)

    def extra_repr(self) -> str:
        return f"soft reverse attention, temperature {self.temperature:g}"
