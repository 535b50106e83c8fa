"""Attacks leave the model as they found it: every BatchNorm buffer (also when they run in
train mode) and every submodule's train/eval flag (also through ``Adaptive``)."""
import pytest
import torch

from robustviz import attacks, models
from robustviz.evaluate import evaluate


def _buffers(model):
    return {k: v.clone() for k, v in model.named_buffers()}


def _flags(model):
    return [(name, m.training) for name, m in model.named_modules()]


@pytest.fixture(scope="module")
def resnet():
    """A ResNet-20 whose BatchNorm statistics are not at their initial values."""
    torch.manual_seed(0)
    model = models.build("resnet20", num_classes=10, in_channels=3, seed=0)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(16, 3, 32, 32))
    return model.eval()


@pytest.mark.parametrize("make", [
    lambda: attacks.PGD(eps=8 / 255, steps=2, bn_mode="train"),
    lambda: attacks.FGSM(eps=8 / 255, bn_mode="train"),
    lambda: attacks.MIM(eps=8 / 255, steps=2, bn_mode="train"),
    lambda: attacks.Adaptive(attack=attacks.PGD(eps=8 / 255, steps=2, bn_mode="train")),
])
def test_train_mode_attack_leaves_every_buffer(resnet, make):
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    before, flags = _buffers(resnet), _flags(resnet)
    n_bn = sum(1 for k in before if k.endswith("running_mean"))
    assert n_bn >= 19                       # ResNet-20: 19 BatchNorm layers and more
    x_adv = make()(resnet, x, y)
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6
    after = _buffers(resnet)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == []
    assert _flags(resnet) == flags


def test_evaluate_with_a_train_mode_attack_keeps_the_clean_accuracy(resnet):
    """The issue's symptom: one evaluate with bn_mode='train' changed 57 buffers and the
    clean accuracy of every later evaluation."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g)
    with torch.no_grad():
        logits = resnet(x)
    before = _buffers(resnet)
    evaluate(resnet, (x, y), {"pgd": attacks.PGD(eps=8 / 255, steps=2, bn_mode="train")}, topk=(1, 5),
             batch_size=32, progress=False)
    assert all(torch.equal(before[k], v) for k, v in _buffers(resnet).items())
    with torch.no_grad():
        assert torch.equal(resnet(x), logits)


def test_adaptive_restores_each_submodules_mode():
    model = models.build("tinycnn", num_classes=10, in_channels=1, input_size=28, reverse_attention=True, seed=0)
    model.train()
    frozen = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    for m in frozen:       # mixed modes: some parts frozen in eval mode while the rest trains
        m.eval()
    flags = _flags(model)
    assert {f for _, f in flags} == {True, False}
    x, y = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6,))
    attacks.Adaptive(attack=attacks.PGD(eps=0.1, steps=2))(model, x, y)
    assert _flags(model) == flags
