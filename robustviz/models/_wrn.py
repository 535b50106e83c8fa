"""Wide residual networks (WRN-depth-k), the CIFAR model of TRADES, MART and ANCRA."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from robustviz.models._base import RobustModel
from robustviz.models._normalize import Normalize
from robustviz.models._resnet import PreActBlock, _PooledHead, _conv3x3, _init_weights, _stage

__all__ = ["WideResNet"]


class WideResNet(RobustModel):
    """WRN-``depth``-``widen_factor``: a 3x3 stem of 16 channels, three stages of
    ``n = (depth - 4) / 6`` pre-activation blocks of widths ``(16, 32, 64) * widen_factor``
    (strides 1, 2, 2), a final BN-ReLU, global average pooling and a linear classifier.
    WRN-34-10 (the default) has about 46.2 M parameters; WRN-10-1 is a tiny test model.

    Parameters
    ----------
    num_classes, in_channels : int
    mean, std : sequence of float
    depth : int
        ``6n + 4`` (10, 16, 22, 28, 34, 40).
    widen_factor : int
        Width multiplier ``k``.
    dropout : float
        Dropout between the two convolutions of each block (0 by default, as in TRADES).
    input_size : tuple of int or None

    Shape
    -----
    ``(N, in_channels, H, W) -> (N, num_classes)``

    Taps: ``stem``, ``layer1``..``layer3``, ``penultimate`` (N, 64 * widen_factor), ``logits``.

    References
    ----------
    Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016.
    """

    def __init__(self, *, num_classes: int, in_channels: int, mean: Sequence[float],
                 std: Sequence[float], depth: int = 34, widen_factor: int = 10,
                 dropout: float = 0.0, input_size: tuple[int, int] | None = None):
        super().__init__()
        self.num_classes, self.in_channels, self.input_size = num_classes, in_channels, input_size
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.normalize = Normalize(mean, std, channels=in_channels)
        self.conv1 = _conv3x3(in_channels, widths[0])
        self.layer1 = _stage(PreActBlock, widths[0], widths[1], n, 1, dropout=dropout)
        self.layer2 = _stage(PreActBlock, widths[1], widths[2], n, 2, dropout=dropout)
        self.layer3 = _stage(PreActBlock, widths[2], widths[3], n, 2, dropout=dropout)
        self.bn = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU()
        self.pool = _PooledHead()
        self.classifier = nn.Linear(widths[3], num_classes)
        self._stage_taps = {"stem": "conv1", "layer1": "layer1", "layer2": "layer2",
                            "layer3": "layer3"}
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.normalize(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.classifier(self.pool(self.relu(self.bn(x))))
