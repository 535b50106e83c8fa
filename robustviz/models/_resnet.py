"""CIFAR-style residual networks (3x3 stem, no max-pool): ResNet-18, ResNet-20, PreActResNet-18."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from robustviz.models._base import RobustModel
from robustviz.models._normalize import Normalize

__all__ = ["BasicBlock", "PreActBlock", "ResNet18", "ResNet20", "PreActResNet18"]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Post-activation residual block: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    The shortcut is the identity, or (``shortcut="conv"``) a 1x1 convolution + BN when the
    stride or width changes (He et al. option B), or (``shortcut="pad"``) parameter-free
    subsampling with zero-padded channels (He et al. option A, used by CIFAR ResNet-20).

    Shape
    -----
    ``(N, cin, H, W) -> (N, cout, ceil(H / stride), ceil(W / stride))``
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, *, shortcut: str = "conv"):
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        self.pad: tuple[int, int] | None = None
        self.stride = stride
        if stride != 1 or cin != cout:
            if shortcut == "conv":
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                                nn.BatchNorm2d(cout))
            else:
                extra = cout - cin
                self.pad = (extra // 2, extra - extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        elif self.pad is not None:
            identity = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, *self.pad))
        else:
            identity = x
        return F.relu(out + identity)


class PreActBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016b): ``conv2(relu(bn2(conv1(a)))) + s``
    with ``a = relu(bn1(x))`` and ``s = x`` or a 1x1 projection of ``a`` when the shape changes.

    Shape
    -----
    ``(N, cin, H, W) -> (N, cout, ceil(H / stride), ceil(W / stride))``
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, *, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = _conv3x3(cout, cout)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(a)
        out = self.conv1(a)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return out + skip


def _init_weights(model: nn.Module) -> None:
    """He (fan-out) initialisation for convolutions, zero bias for the classifier."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


def _stage(block, cin: int, cout: int, n: int, stride: int, **kw) -> nn.Sequential:
    layers = [block(cin, cout, stride, **kw)]
    layers += [block(cout, cout, 1, **kw) for _ in range(n - 1)]
    return nn.Sequential(*layers)


class _PooledHead(nn.Module):
    """Global average pooling + flatten: ``(N, C, H, W) -> (N, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class ResNet18(RobustModel):
    """CIFAR ResNet-18: 3x3 stem (stride 1, no max-pool), BasicBlock stages [2, 2, 2, 2] of
    widths ``width * (1, 2, 4, 8)``, global average pooling, one linear classifier.

    Parameters
    ----------
    num_classes, in_channels : int
    mean, std : sequence of float
    width : int
        Channels of the stem and first stage (64 in the paper; smaller for teaching).
    input_size : tuple of int or None
        Recorded for :meth:`check_input`; the network pools adaptively and runs on any size.

    Shape
    -----
    - Input: ``(N, in_channels, H, W)`` pixels in [0, 1].
    - Output: ``(N, num_classes)``.

    Taps: ``stem`` (after conv1-bn1-relu), ``layer1``..``layer4``, ``penultimate``
    (N, 8*width), ``logits``; paper 000's aliases ``embedding1`` = stem, ``embedding2..4`` =
    layer1..3, ``embedding5`` = layer4 + average pool (= penultimate).

    References
    ----------
    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
    """

    def __init__(self, *, num_classes: int, in_channels: int, mean: Sequence[float],
                 std: Sequence[float], width: int = 64,
                 input_size: tuple[int, int] | None = None):
        super().__init__()
        self.num_classes, self.in_channels, self.input_size = num_classes, in_channels, input_size
        w = width
        self.normalize = Normalize(mean, std, channels=in_channels)
        self.conv1 = _conv3x3(in_channels, w)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU()
        self.layer1 = _stage(BasicBlock, w, w, 2, 1)
        self.layer2 = _stage(BasicBlock, w, 2 * w, 2, 2)
        self.layer3 = _stage(BasicBlock, 2 * w, 4 * w, 2, 2)
        self.layer4 = _stage(BasicBlock, 4 * w, 8 * w, 2, 2)
        self.pool = _PooledHead()
        self.classifier = nn.Linear(8 * w, num_classes)
        self._stage_taps = {
            "stem": "relu", "embedding1": "relu",
            "layer1": "layer1", "embedding2": "layer1",
            "layer2": "layer2", "embedding3": "layer2",
            "layer3": "layer3", "embedding4": "layer3",
            "layer4": "layer4", "embedding5": "penultimate",
        }
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.classifier(self.pool(x))


class ResNet20(RobustModel):
    """CIFAR ResNet of depth ``6n + 2`` (default 20): 3x3 stem of ``width`` channels, three
    stages of ``n`` BasicBlocks with widths ``width * (1, 2, 4)`` (16/32/64), parameter-free
    zero-padding shortcuts (option A, as in the paper; 0.27 M parameters for depth 20).

    Parameters
    ----------
    num_classes, in_channels : int
    mean, std : sequence of float
    depth : int
        ``6n + 2``: 20, 32, 44, 56, 110.
    width : int
        Channels of the first stage (16).
    input_size : tuple of int or None

    Shape
    -----
    ``(N, in_channels, H, W) -> (N, num_classes)``

    Taps: ``stem``, ``layer1``..``layer3``, ``penultimate`` (N, 4*width), ``logits``.

    References
    ----------
    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Section 4.2.
    """

    def __init__(self, *, num_classes: int, in_channels: int, mean: Sequence[float],
                 std: Sequence[float], depth: int = 20, width: int = 16,
                 input_size: tuple[int, int] | None = None):
        super().__init__()
        self.num_classes, self.in_channels, self.input_size = num_classes, in_channels, input_size
        n = (depth - 2) // 6
        w = width
        self.normalize = Normalize(mean, std, channels=in_channels)
        self.conv1 = _conv3x3(in_channels, w)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU()
        self.layer1 = _stage(BasicBlock, w, w, n, 1, shortcut="pad")
        self.layer2 = _stage(BasicBlock, w, 2 * w, n, 2, shortcut="pad")
        self.layer3 = _stage(BasicBlock, 2 * w, 4 * w, n, 2, shortcut="pad")
        self.pool = _PooledHead()
        self.classifier = nn.Linear(4 * w, num_classes)
        self._stage_taps = {"stem": "relu", "layer1": "layer1", "layer2": "layer2",
                            "layer3": "layer3"}
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.classifier(self.pool(x))


class PreActResNet18(RobustModel):
    """Pre-activation ResNet-18 for CIFAR (the network of "fast" adversarial training):
    3x3 stem convolution, PreActBlock stages [2, 2, 2, 2] of widths ``width * (1, 2, 4, 8)``,
    a final BN-ReLU, global average pooling, one linear classifier.

    Parameters
    ----------
    num_classes, in_channels : int
    mean, std : sequence of float
    width : int
        Channels of the stem and first stage (64).
    input_size : tuple of int or None

    Shape
    -----
    ``(N, in_channels, H, W) -> (N, num_classes)``

    Taps: ``stem`` (the stem convolution), ``layer1``..``layer4`` (raw block outputs),
    ``penultimate`` (N, 8*width, after the final BN-ReLU and pooling), ``logits``.

    References
    ----------
    He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016.
    Wong et al., "Fast is better than free: Revisiting adversarial training", ICLR 2020.
    """

    def __init__(self, *, num_classes: int, in_channels: int, mean: Sequence[float],
                 std: Sequence[float], width: int = 64,
                 input_size: tuple[int, int] | None = None):
        super().__init__()
        self.num_classes, self.in_channels, self.input_size = num_classes, in_channels, input_size
        w = width
        self.normalize = Normalize(mean, std, channels=in_channels)
        self.conv1 = _conv3x3(in_channels, w)
        self.layer1 = _stage(PreActBlock, w, w, 2, 1)
        self.layer2 = _stage(PreActBlock, w, 2 * w, 2, 2)
        self.layer3 = _stage(PreActBlock, 2 * w, 4 * w, 2, 2)
        self.layer4 = _stage(PreActBlock, 4 * w, 8 * w, 2, 2)
        self.bn = nn.BatchNorm2d(8 * w)
        self.relu = nn.ReLU()
        self.pool = _PooledHead()
        self.classifier = nn.Linear(8 * w, num_classes)
        self._stage_taps = {"stem": "conv1", "layer1": "layer1", "layer2": "layer2",
                            "layer3": "layer3", "layer4": "layer4"}
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.normalize(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.classifier(self.pool(self.relu(self.bn(x))))
