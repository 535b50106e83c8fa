"""torchvision's ResNet-18 with the ImageNet stem (7x7 stride-2 conv + max-pool), paper 000's model."""
from __future__ import annotations

import os
import urllib.error
from typing import Sequence

import torch
from torch import nn

from robustviz.models._base import RobustModel
from robustviz.models._normalize import Normalize

__all__ = ["ImageNetResNet18", "IMAGENET_MEAN", "IMAGENET_STD", "load_imagenet_weights"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNetResNet18(RobustModel):
    """torchvision ``resnet18`` behind a :class:`Normalize` layer, with tap names.

    The ImageNet stem (7x7 stride-2 convolution, BN, ReLU, 3x3 stride-2 max-pool) shrinks the
    input 4x before ``layer1``; on 32x32 CIFAR images the last stage is 1x1. All ReLUs are made
    non-inplace so tapped tensors are never overwritten.

    Parameters
    ----------
    num_classes, in_channels : int
    mean, std : sequence of float
    input_size : tuple of int or None

    Shape
    -----
    ``(N, in_channels, H, W) -> (N, num_classes)``

    Taps (paper 000's names): ``embedding1`` (= ``stem``: after conv1-bn1-relu-maxpool),
    ``embedding2``..``embedding4`` (= ``layer1``..``layer3``), ``layer4``, ``embedding5``
    (after layer4 + average pool, flattened; = ``penultimate``, N x 512), ``logits``.

    References
    ----------
    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016; Zhang, contrastive
    loss in embedding space (paper 000).
    """

    def __init__(self, *, num_classes: int, in_channels: int, mean: Sequence[float],
                 std: Sequence[float], input_size: tuple[int, int] | None = None):
        super().__init__()
        from torchvision.models import resnet18

        self.num_classes, self.in_channels, self.input_size = num_classes, in_channels, input_size
        net = resnet18(weights=None, num_classes=num_classes)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        for m in net.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False
        self.normalize = Normalize(mean, std, channels=in_channels)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.avgpool = net.avgpool
        self.classifier = net.fc
        self._stage_taps = {
            "stem": "maxpool", "embedding1": "maxpool",
            "layer1": "layer1", "embedding2": "layer1",
            "layer2": "layer2", "embedding3": "layer2",
            "layer3": "layer3", "embedding4": "layer3",
            "layer4": "layer4", "embedding5": "penultimate",
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(x)))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def _hub_file() -> tuple[str, str]:
    from torchvision.models import ResNet18_Weights

    url = ResNet18_Weights.IMAGENET1K_V1.url
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    return url, path


def load_imagenet_weights(model: ImageNetResNet18, *, progress: bool = False) -> ImageNetResNet18:
    """Copy torchvision's ImageNet-1k ResNet-18 weights into ``model``.

    Downloaded once into torch hub's cache (``$TORCH_HOME/hub/checkpoints``) and read with
    ``weights_only=True``. The classifier is copied only for ``num_classes == 1000``
    (otherwise it keeps its fresh initialisation); for one input channel the first
    convolution's RGB filters are summed (a gray image replicated to RGB gives the same
    response).

    Raises
    ------
    RuntimeError
        When the file is not cached and cannot be downloaded (offline); the message says
        where to put it.
    """
    url, path = _hub_file()
    try:
        state = torch.hub.load_state_dict_from_url(url, progress=progress, check_hash=True,
                                                   map_location="cpu", weights_only=True)
    except (urllib.error.URLError, OSError, ConnectionError, TimeoutError) as err:
        raise RuntimeError(
            f"could not load torchvision's ImageNet ResNet-18 weights ({err}). They are cached "
            f"by torch hub at {path}; on a machine without internet, download {url} elsewhere "
            f"and copy it to that path (set TORCH_HOME to change the cache folder), or build "
            f"with weights=None.") from None
    state = {("classifier." + k[3:] if k.startswith("fc.") else k): v for k, v in state.items()}
    if model.num_classes != 1000:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    if model.in_channels == 1:
        state["conv1.weight"] = state["conv1.weight"].sum(dim=1, keepdim=True)
    own = model.state_dict()
    bad = [k for k in state if k not in own or own[k].shape != state[k].shape]
    if bad:
        raise RuntimeError(f"torchvision ResNet-18 weights in {path} do not fit: keys {bad[:5]}")
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v.to(own[k].dtype))
    return model
