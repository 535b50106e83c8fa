"""Shared helpers: mode context restores every module's flag, even on error."""
import pytest
import torch
from torch import nn

from robustviz._utils import autocast, frozen_params, model_device, model_mode, seed_everything


def _net():
    return nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Dropout(0.5))


def test_model_mode_restores_mixed_flags_after_exception():
    net = _net().train()
    net[1].eval()  # mixed modes
    before = [m.training for m in net.modules()]
    with pytest.raises(RuntimeError):
        with model_mode(net, "eval"):
            assert not any(m.training for m in net.modules())
            raise RuntimeError("boom")
    assert [m.training for m in net.modules()] == before
    with model_mode(net, "train"):
        assert all(m.training for m in net.modules())
    assert [m.training for m in net.modules()] == before
    with pytest.raises(ValueError, match="mode"):
        with model_mode(net, "test"):
            pass


def test_frozen_params_restores_own_flags():
    net = _net()
    net[0].bias.requires_grad_(False)
    with frozen_params(net):
        assert not any(p.requires_grad for p in net.parameters())
    assert net[0].weight.requires_grad and not net[0].bias.requires_grad


def test_device_and_autocast_and_seed():
    assert model_device(_net()) == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")
    with autocast("cpu", enabled=True):
        out = nn.Linear(4, 4)(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    with autocast("cpu", enabled=False):
        assert nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.float32
    g1, g2 = seed_everything(5), seed_everything(5)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))
