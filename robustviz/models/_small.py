"""Small CNNs: TinyCNN (teaching scale on CPU) and SmallCNN (TRADES / Carlini-Wagner MNIST net)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from robustviz.models._base import RobustModel
from robustviz.models._normalize import Normalize

__all__ = ["TinyCNN", "SmallCNN", "smallcnn_flat_features", "tinycnn_flat_features"]


def _side_after(size: int, ops: Sequence[tuple[str, int]]) -> int:
    """Side length after a chain of ('conv', kernel) valid convolutions and ('pool', 2) pools."""
    for op, k in ops:
        size = size - k + 1 if op == "conv" else size // k
    return size


def tinycnn_flat_features(input_size: tuple[int, int], width: int = 32, pool: str = "max") -> int:
    """Flattened size after TinyCNN's two (padded conv, 2x2 max-pool) blocks:
    ``2 * width * (H // 4) * (W // 4)`` (3136 for 28x28, 4096 for 32x32, 256 for 8x8); with
    ``pool="stride"`` (padded stride-2 convolutions) each block maps a side ``s`` to
    ``(s + 1) // 2`` (the same for sides divisible by 4)."""
    if pool == "stride":
        h, w = (((s + 1) // 2 + 1) // 2 for s in input_size)
    else:
        h, w = (_side_after(s, [("pool", 2), ("pool", 2)]) for s in input_size)  # padded convs keep the size
    return 2 * width * h * w


def smallcnn_flat_features(input_size: tuple[int, int]) -> int:
    """Flattened size after SmallCNN's convolutions: two valid 3x3 convs, a 2x2 pool, twice.

    28x28 -> 26 -> 24 -> 12 -> 10 -> 8 -> 4, so 64*4*4 = 1024 (MNIST);
    32x32 -> 30 -> 28 -> 14 -> 12 -> 10 -> 5, so 64*5*5 = 1600 (CIFAR twin).
    """
    ops = [("conv", 3), ("conv", 3), ("pool", 2), ("conv", 3), ("conv", 3), ("pool", 2)]
    h, w = (_side_after(s, ops) for s in input_size)
    return 64 * h * w


class TinyCNN(RobustModel):
    """Fast two-block CNN for teaching-scale experiments on a CPU.

    ``Normalize -> [conv3x3(32, pad 1) - ReLU - maxpool2] -> [conv3x3(64, pad 1) - ReLU -
    maxpool2] -> flatten -> FC 128 - ReLU ("penultimate") -> FC num_classes ("logits")``.

    Parameters
    ----------
    num_classes : int
    in_channels : int
    input_size : tuple of int
        ``(H, W)``; the flatten size ``64 * (H // 4) * (W // 4)`` depends on it
        (28x28 Fashion-MNIST, 32x32 CIFAR, 8x8 scikit-learn digits all work).
    mean, std : sequence of float
        Normalisation statistics, one per channel.
    width : int
        Channels of the first block (the second has ``2 * width``); default 32.
    hidden : int
        Size of the penultimate layer; default 128.
    pool : {"max", "stride"}
        How each block halves the resolution: a 2x2 max-pool after the convolution (default),
        or the convolution itself with stride 2 (no pooling: about 4x fewer multiply-adds in
        the convolutions and no max-pool, several times faster on a CPU; used by the speedrun
        recipe ``configs/fast/fashion_mnist.yaml``).

    Shape
    -----
    - Input: ``(N, in_channels, H, W)`` pixels in [0, 1].
    - Output: ``(N, num_classes)`` logits.

    Taps: ``conv1`` (N, width, H/2, W/2), ``conv2`` (N, 2*width, H/4, W/4),
    ``penultimate`` (N, hidden), ``logits``.
    """

    def __init__(self, *, num_classes: int, in_channels: int, input_size: tuple[int, int],
                 mean: Sequence[float], std: Sequence[float], width: int = 32, hidden: int = 128,
                 pool: str = "max"):
        super().__init__()
        if pool not in ("max", "stride"):
            raise ValueError(f"pool must be 'max' or 'stride', got {pool!r}")
        self.num_classes, self.in_channels = num_classes, in_channels
        self.input_size = tuple(input_size)
        self.min_input_size = 4
        self.normalize = Normalize(mean, std, channels=in_channels)

        def block(c_in, c_out):
            if pool == "stride":
                return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU())
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))

        self.conv1 = block(in_channels, width)
        self.conv2 = block(width, 2 * width)
        self.flat_features = tinycnn_flat_features(self.input_size, width, pool)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(self.flat_features, hidden), nn.ReLU())
        self.classifier = nn.Linear(hidden, num_classes)
        self._stage_taps = {"conv1": "conv1", "conv2": "conv2"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        x = self.conv2(self.conv1(x))
        return self.classifier(self.fc(x))


class SmallCNN(RobustModel):
    """The 4-conv + 3-FC network of Carlini & Wagner (2017) used by TRADES for MNIST.

    ``Normalize -> conv3x3(32)-ReLU -> conv3x3(32)-ReLU-maxpool2 -> conv3x3(64)-ReLU ->
    conv3x3(64)-ReLU-maxpool2 -> flatten -> FC 200-ReLU -> dropout 0.5 -> FC 200-ReLU
    ("penultimate") -> FC num_classes``. Convolutions are unpadded, so the flatten size is
    64*4*4 for 28x28 inputs and 64*5*5 for the 3-channel 32x32 CIFAR twin.

    Parameters
    ----------
    num_classes, in_channels : int
    input_size : tuple of int
        ``(H, W)``, at least 16x16.
    mean, std : sequence of float
    dropout : float
        Dropout probability after the first FC layer; default 0.5.

    Shape
    -----
    - Input: ``(N, in_channels, H, W)`` pixels in [0, 1].
    - Output: ``(N, num_classes)``.

    Taps: ``conv1``..``conv4`` (after ReLU; conv2/conv4 after pooling), ``fc1``,
    ``penultimate`` (N, 200), ``logits``.

    References
    ----------
    Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", S&P 2017.
    Zhang et al., "Theoretically Principled Trade-off between Robustness and Accuracy"
    (TRADES), ICML 2019.
    """

    def __init__(self, *, num_classes: int, in_channels: int, input_size: tuple[int, int],
                 mean: Sequence[float], std: Sequence[float], dropout: float = 0.5):
        super().__init__()
        self.num_classes, self.in_channels = num_classes, in_channels
        self.input_size = tuple(input_size)
        self.min_input_size = 16
        self.normalize = Normalize(mean, std, channels=in_channels)
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, 32, 3), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.conv3 = nn.Sequential(nn.Conv2d(32, 64, 3), nn.ReLU())
        self.conv4 = nn.Sequential(nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.flat_features = smallcnn_flat_features(self.input_size)
        self.fc1 = nn.Sequential(nn.Flatten(), nn.Linear(self.flat_features, 200), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Sequential(nn.Linear(200, 200), nn.ReLU())
        self.classifier = nn.Linear(200, num_classes)
        self._stage_taps = {"conv1": "conv1", "conv2": "conv2", "conv3": "conv3",
                            "conv4": "conv4", "fc1": "fc1"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        x = self.conv4(self.conv3(self.conv2(self.conv1(x))))
        x = self.fc2(self.dropout(self.fc1(x)))
        return self.classifier(x)
