"""Model registry: ``build(name, ...)`` and ``list_models()``."""
from __future__ import annotations

import contextlib
import dataclasses
from numbers import Integral
from typing import Any

import torch
from torch import nn

from robustviz._validate import check_choice, check_int, check_nonnegative
from robustviz.models._base import RobustModel
from robustviz.models._external import EXTERNAL_SOURCES
from robustviz.models._imagenet import IMAGENET_MEAN, IMAGENET_STD, ImageNetResNet18, load_imagenet_weights
from robustviz.models._normalize import channel_stats
from robustviz.models._resnet import PreActResNet18, ResNet18, ResNet20
from robustviz.models._small import SmallCNN, TinyCNN
from robustviz.models._wrn import WideResNet

__all__ = ["build", "list_models", "model_info", "ModelInfo", "count_parameters"]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one architecture before building it.

    ``fixed_size``: the model needs exactly ``input_size`` (default below) and the flatten
    size depends on it; otherwise it pools adaptively and runs on any size from
    ``min_input_size`` up. ``options``: extra build keyword arguments with their defaults.
    """

    name: str
    cls: type
    default_in_channels: int
    fixed_size: bool
    min_input_size: int
    options: dict[str, Any]
    description: str

    def default_input_size(self, in_channels: int) -> tuple[int, int] | None:
        if not self.fixed_size:
            return None
        return (28, 28) if in_channels == 1 else (32, 32)

    def sizes_text(self) -> str:
        if self.fixed_size:
            return f"fixed, set by input_size (default 28 for 1 ch, 32 for 3 ch; min {self.min_input_size})"
        return f"any >= {self.min_input_size}x{self.min_input_size} (adaptive pooling)"


_MODELS: dict[str, ModelInfo] = {m.name: m for m in [
    ModelInfo("tinycnn", TinyCNN, 1, True, 4, {"width": 32, "hidden": 128, "pool": "max"},
              "2-conv teaching CNN (32/64 ch, FC 128)"),
    ModelInfo("smallcnn", SmallCNN, 1, True, 16, {"dropout": 0.5},
              "TRADES / C&W 4-conv + 3-FC MNIST net"),
    ModelInfo("resnet18", ResNet18, 3, False, 1, {"width": 64},
              "CIFAR ResNet-18 (3x3 stem, no max-pool)"),
    ModelInfo("resnet20", ResNet20, 3, False, 1, {"depth": 20, "width": 16},
              "CIFAR ResNet-20 (3 stages x 3 blocks, 16/32/64)"),
    ModelInfo("preactresnet18", PreActResNet18, 3, False, 1, {"width": 64},
              "pre-activation ResNet-18 (fast AT)"),
    ModelInfo("wrn34_10", WideResNet, 3, False, 1, {"depth": 34, "widen_factor": 10, "dropout": 0.0},
              "WideResNet-34-10 (TRADES/MART/ANCRA)"),
    ModelInfo("resnet18_imagenet", ImageNetResNet18, 3, False, 1, {"weights": None},
              "torchvision ResNet-18, ImageNet stem (paper 000)"),
]}


def list_models() -> list[str]:
    """Names accepted by :func:`build`."""
    return list(_MODELS)


def model_info(name: str) -> ModelInfo:
    """Registry entry of ``name`` (raises a ``ValueError`` listing the valid names)."""
    check_choice(name, "name", list(_MODELS))
    return _MODELS[name]


def _size_pair(value, name: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, Integral) and not isinstance(value, bool):
        value = (value, value)
    if isinstance(value, torch.Size):
        value = tuple(value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be an int or a pair (H, W), got {value!r}")
    return (check_int(value[0], f"{name}[0]", minimum=minimum),
            check_int(value[1], f"{name}[1]", minimum=minimum))


def _check_options(info: ModelInfo, kw: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(kw) - set(info.options))
    if unknown:
        accepted = ["num_classes", "in_channels", "input_size", "mean", "std", "seed"] + list(info.options)
        raise TypeError(f"build({info.name!r}) got unexpected keyword argument(s) {unknown}; "
                        f"accepted: {accepted}")
    opts = {**info.options, **kw}
    if "width" in opts:
        check_int(opts["width"], "width", minimum=1)
    if "hidden" in opts:
        check_int(opts["hidden"], "hidden", minimum=1)
    if "pool" in opts:
        check_choice(opts["pool"], "pool", ["max", "stride"])
    if "dropout" in opts:
        opts["dropout"] = check_nonnegative(opts["dropout"], "dropout", upper=0.999)
    if "widen_factor" in opts:
        check_int(opts["widen_factor"], "widen_factor", minimum=1)
    if info.name == "resnet20":
        depth = check_int(opts["depth"], "depth", minimum=8)
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 for a CIFAR ResNet (20, 32, 44, 56, 110), got {depth}")
    if info.name == "wrn34_10":
        depth = check_int(opts["depth"], "depth", minimum=10)
        if (depth - 4) % 6:
            raise ValueError(f"depth must be 6n + 4 for a WideResNet (10, 16, 22, 28, 34, 40), got {depth}")
    if "weights" in opts:
        check_choice(opts["weights"], "weights", [None, "imagenet"])
    return opts


def build(name: str, *, num_classes: int = 10, in_channels: int | None = None,
          mean=None, std=None, input_size=None, seed: int | None = 0,
          reverse_attention: bool = False, **kw) -> RobustModel:
    """Build a classifier by name, with :class:`Normalize` as its first layer.

    Parameters
    ----------
    name : str
        One of :func:`list_models`: ``"tinycnn"``, ``"smallcnn"``, ``"resnet18"``,
        ``"resnet20"``, ``"preactresnet18"``, ``"wrn34_10"``, ``"resnet18_imagenet"``.
    num_classes : int
        At least 2.
    in_channels : int, optional
        1 or 3; default 1 for ``tinycnn``/``smallcnn``, 3 for the residual networks.
    mean, std : float or sequence of float, optional
        Normalisation statistics (a Dataset's ``mean``/``std``). Default: identity
        (mean 0, std 1), or the ImageNet statistics for ``weights="imagenet"``.
    input_size : int or (H, W), optional
        For ``tinycnn``/``smallcnn`` the flatten size depends on it (default 28x28 for one
        channel, 32x32 for three). The residual networks pool adaptively and run on any size;
        there it is only recorded for :meth:`RobustModel.check_input`.
    seed : int or None
        Seed of the weight initialisation (the global RNG is left untouched); ``None`` uses
        the global RNG.
    **kw
        Architecture options: ``width``/``hidden``/``pool`` (tinycnn), ``dropout`` (smallcnn),
        ``width`` (resnet18, preactresnet18, resnet20), ``depth`` (resnet20: 6n+2;
        wrn34_10: 6n+4), ``widen_factor``/``dropout`` (wrn34_10), ``weights`` (None or
        ``"imagenet"``, resnet18_imagenet: torchvision's pretrained weights).
        For ``name`` in ``("robustbench", "timm", "torchvision")`` (the ``build_kwargs`` of
        :func:`from_robustbench`, :func:`from_timm`, :func:`from_torchvision`): ``model``
        (the architecture's name there) and ``dataset``/``threat_model`` (RobustBench); the
        architecture is rebuilt without weights.
    reverse_attention : bool or {"penultimate", "blocks"}
        Wrap the model in :class:`ReverseAttention` (paper 004, ANCRA): penultimate
        features re-weighted by the classifier row of the label (training) or of the
        auxiliary prediction (test); ``"blocks"``: in both blocks of ResNet-18's layer4, as
        the paper.

    Returns
    -------
    RobustModel
        With ``num_classes``, ``in_channels``, ``input_size``, ``layer_names``,
        ``classifier`` (the final ``nn.Linear``), ``check_input(x)`` and ``build_kwargs``
        (JSON-serialisable arguments that rebuild the architecture; pretrained weights are
        not re-fetched from it, they live in the checkpoint).

    Shape
    -----
    The model maps ``(N, in_channels, H, W)`` pixels in [0, 1] to ``(N, num_classes)`` logits.

    Examples
    --------
    >>> model = build("resnet18", num_classes=10, in_channels=3, width=16)
    >>> model.layer_names[:3]
    ('stem', 'embedding1', 'layer1')
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a model name (str), got {type(name).__name__}")
    if name in EXTERNAL_SOURCES:   # a saved model of another library: its architecture, no weights
        from robustviz.models._external import rebuild

        return rebuild(name, num_classes=num_classes, in_channels=in_channels or 3,
                       input_size=input_size, **kw)
    info = model_info(name)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    if in_channels is None:
        in_channels = info.default_in_channels
    if isinstance(in_channels, bool) or not isinstance(in_channels, Integral):
        raise TypeError(f"in_channels must be an integer (1 or 3), got {in_channels!r}")
    in_channels = int(check_choice(int(in_channels), "in_channels", [1, 3]))
    opts = _check_options(info, kw)
    if seed is not None:
        seed = check_int(seed, "seed", minimum=0)

    if input_size is None:
        size = info.default_input_size(in_channels)
    else:
        size = _size_pair(input_size, "input_size", info.min_input_size)

    pretrained = opts.get("weights") == "imagenet"
    if mean is None:
        mean = IMAGENET_MEAN if pretrained else 0.0
        if pretrained and in_channels == 1:
            mean = sum(IMAGENET_MEAN) / 3
    if std is None:
        std = IMAGENET_STD if pretrained else 1.0
        if pretrained and in_channels == 1:
            std = sum(IMAGENET_STD) / 3
    mean = channel_stats(mean, "mean", in_channels)
    std = channel_stats(std, "std", in_channels, positive=True)

    ctor_kw = {k: v for k, v in opts.items() if k != "weights"}
    rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    with rng:
        if seed is not None:
            torch.manual_seed(seed)
        model = info.cls(num_classes=num_classes, in_channels=in_channels, mean=mean, std=std,
                         input_size=size, **ctor_kw)
    model.min_input_size = info.min_input_size
    if pretrained:
        load_imagenet_weights(model)

    model.build_kwargs = {
        "name": name, "num_classes": num_classes, "in_channels": in_channels,
        "input_size": None if size is None else list(size), "mean": list(mean), "std": list(std),
        "seed": seed, **{k: v for k, v in opts.items() if k != "weights"},
    }
    if reverse_attention:
        from robustviz.models._reverse_attention import ReverseAttention

        return ReverseAttention(model, placement="penultimate" if reverse_attention is True else reverse_attention)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (buffers such as BN statistics and Normalize excluded)."""
    return sum(p.numel() for p in model.parameters())

