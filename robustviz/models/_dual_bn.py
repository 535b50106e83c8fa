"""Separate BatchNorm per input kind ("branch"), the branch chosen at finetuning.

Contrastive adversarial pretraining feeds a network clean/augmented images and adversarial
ones whose statistics differ; AdvCL (Fan et al. 2021) and the ASCL pretraining of paper 003
keep one BatchNorm per kind of input (clean/augmented, contrastive-adversarial,
CE-adversarial) and share every other weight. :func:`separate_bn` converts a model in place;
:func:`bn_branch` selects the branch for a block; :func:`select_branch` folds the model back
to plain BatchNorm layers holding one branch's parameters and statistics, for finetuning and
deployment (the result loads and saves like the original architecture).

References
----------
Fan et al., "When Does Contrastive Learning Preserve Adversarial Robustness from
Pretraining to Finetuning?", NeurIPS 2021.
Xie et al., "Adversarial Examples Improve Image Recognition" (auxiliary BN), CVPR 2020.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Iterator, Sequence

from torch import nn

__all__ = ["BranchBatchNorm", "separate_bn", "bn_branch", "select_branch", "bn_branches",
           "BRANCHES"]

BRANCHES = ("clean", "adv_cl", "adv_ce")
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class BranchBatchNorm(nn.Module):
    """One BatchNorm per branch; ``active`` names the one the forward pass uses.

    Parameters
    ----------
    bn : BatchNorm module
        Copied once per branch (parameters and running statistics start equal).
    branches : sequence of str
    default : str
        The branch used outside :func:`bn_branch` blocks.

    Shape
    -----
    As the wrapped BatchNorm.
    """

    def __init__(self, bn: nn.Module, branches: Sequence[str], default: str):
        super().__init__()
        self.bns = nn.ModuleDict({b: copy.deepcopy(bn) for b in branches})
        self.default = default
        self.active = default

    def forward(self, x):
        return self.bns[self.active](x)

    def extra_repr(self) -> str:
        return f"branches={list(self.bns)}, active={self.active!r}"


def bn_branches(model: nn.Module) -> tuple[str, ...]:
    """The branch names of a converted model (``()`` for a plain one)."""
    for m in model.modules():
        if isinstance(m, BranchBatchNorm):
            return tuple(m.bns)
    return ()


def separate_bn(model: nn.Module, branches: Sequence[str] = BRANCHES, *,
                default: str | None = None) -> nn.Module:
    """Replace every BatchNorm of ``model`` (in place) by a :class:`BranchBatchNorm`.

    Parameters
    ----------
    model : nn.Module
    branches : sequence of str
        Branch names (default ``("clean", "adv_cl", "adv_ce")``).
    default : str, optional
        Branch used outside :func:`bn_branch` blocks (default: the last one, the
        CE-adversarial branch that supervised terms and evaluations use).

    Returns
    -------
    nn.Module
        ``model`` itself. A model without BatchNorm is returned unchanged (its branches
        would all be the same network).
    """
    branches = tuple(branches)
    if len(branches) < 1 or len(set(branches)) != len(branches) or not all(isinstance(b, str) for b in branches):
        raise ValueError(f"branches must be distinct names, got {branches!r}")
    if bn_branches(model):
        raise ValueError("the model already has separate BatchNorm branches")
    default = branches[-1] if default is None else default
    if default not in branches:
        raise ValueError(f"default must be one of {list(branches)}, got {default!r}")
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, _BN):
                setattr(module, child_name, BranchBatchNorm(child, branches, default))
    return model


@contextlib.contextmanager
def bn_branch(model: nn.Module, branch: str | None) -> Iterator[nn.Module]:
    """Use BatchNorm branch ``branch`` for a block (no-op for a plain model or ``None``);
    the previous branch is restored in ``finally``."""
    layers = [m for m in model.modules() if isinstance(m, BranchBatchNorm)]
    if branch is None or not layers:
        yield model
        return
    if branch not in layers[0].bns:
        raise ValueError(f"unknown BatchNorm branch {branch!r}; the model has {list(layers[0].bns)}")
    saved = [m.active for m in layers]
    try:
        for m in layers:
            m.active = branch
        yield model
    finally:
        for m, b in zip(layers, saved):
            m.active = b


def select_branch(model: nn.Module, branch: str) -> nn.Module:
    """Fold a converted model back to plain BatchNorm layers holding ``branch``'s
    parameters and running statistics (in place; returns ``model``). A plain model is
    returned unchanged. AdvCL finetunes the adversarial branch (``"adv_cl"``)."""
    names = bn_branches(model)
    if not names:
        return model
    if branch not in names:
        raise ValueError(f"unknown BatchNorm branch {branch!r}; the model has {list(names)}")
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, BranchBatchNorm):
                setattr(module, child_name, child.bns[branch])
    return model
