"""Models with :class:`Normalize` as first layer and one feature-tap API.

::

    model = build("resnet18", num_classes=10, in_channels=3)
    with Features(model, layers=["layer3", "penultimate", "logits"]) as tap:
        out = tap(x)                      # dict of tensors, gradients available
    feats = extract(model, dataset, ["penultimate"], batch_size=256)   # no grad, CPU

Every built model has ``num_classes``, ``in_channels``, ``input_size``, ``layer_names``
(always including ``"penultimate"`` and ``"logits"``), ``classifier`` (the final
``nn.Linear``), ``check_input(x)`` and ``build_kwargs``. Models of other libraries join
them through :func:`wrap`, :func:`from_robustbench`, :func:`from_timm` and
:func:`from_torchvision`.
"""
from robustviz.models._base import RobustModel
from robustviz.models._checks import check_finite_logits
from robustviz.models._external import (ExternalModel, from_robustbench, from_timm,
                                        from_torchvision, wrap)
from robustviz.models._features import Features, extract, tap_points
from robustviz.models._imagenet import IMAGENET_MEAN, IMAGENET_STD, ImageNetResNet18, load_imagenet_weights
from robustviz.models._normalize import Normalize
from robustviz.models._registry import ModelInfo, build, count_parameters, list_models, model_info
from robustviz.models._reverse_attention import ReverseAttention
from robustviz.models._resnet import BasicBlock, PreActBlock, PreActResNet18, ResNet18, ResNet20
from robustviz.models._small import SmallCNN, TinyCNN, smallcnn_flat_features, tinycnn_flat_features
from robustviz.models._wrn import WideResNet
from robustviz.models._dual_bn import BranchBatchNorm, bn_branch, bn_branches, select_branch, separate_bn

__all__ = [
    "separate_bn", "bn_branch", "select_branch", "bn_branches", "BranchBatchNorm",
    "check_finite_logits", "build", "list_models", "model_info", "ModelInfo", "count_parameters",
    "Features", "extract", "tap_points",
    "Normalize", "RobustModel", "ReverseAttention",
    "TinyCNN", "SmallCNN", "ResNet18", "ResNet20", "PreActResNet18", "WideResNet",
    "ImageNetResNet18", "BasicBlock", "PreActBlock",
    "smallcnn_flat_features", "tinycnn_flat_features",
    "load_imagenet_weights", "IMAGENET_MEAN", "IMAGENET_STD",
    "ExternalModel", "wrap", "from_robustbench", "from_timm", "from_torchvision",
]
