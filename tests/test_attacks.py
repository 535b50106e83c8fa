"""Tests of robustviz.attacks: threat-model geometry, properties of every attack, closed-form
answers on linear classifiers, and cross-checks against torchattacks on a trained model."""
from __future__ import annotations

import dataclasses
import json
import math
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustviz import data, models
from robustviz.attacks import (CW, FGSM, FGSMRS, L2, MIM, PGD, Adaptive, AutoAttack, DeepFool, FeatureLoss,
                               Linf, MultiTargetedPGD, cross_entropy, cw_margin, kl_to_clean,
                               threat_model)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: one intra-op thread is faster, and avoids oversubscribing the cores
    when pytest-xdist runs several workers (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def ce_callable(logits, y):
    return F.cross_entropy(logits, y, reduction="none")


# --------------------------------------------------------------------------- small models
class Linear2(nn.Module):
    """Linear classifier on flattened images: logits = x.flatten() @ W.T + b (float64)."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.lin = nn.Linear(w.shape[1], w.shape[0], dtype=w.dtype)
        with torch.no_grad():
            self.lin.weight.copy_(w)
            self.lin.bias.copy_(b)

    def forward(self, x):
        return self.lin(x.flatten(1))


@pytest.fixture(scope="module")
def linear_binary():
    """A 2-class linear model on 1x4x4 images and interior points (away from 0 and 1)."""
    g = gen(3)
    w = torch.randn(2, 16, generator=g, dtype=torch.float64)
    b = torch.randn(2, generator=g, dtype=torch.float64) * 0.1
    model = Linear2(w, b).eval()
    x = 0.3 + 0.4 * torch.rand(64, 1, 4, 4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)          # correctly classified by construction
    return model, x, y


def margin_and_w(model, x, y):
    """Margin f_y - f_other and the weight difference w_y - w_other, per example."""
    W, b = model.lin.weight.detach(), model.lin.bias.detach()
    other = 1 - y
    w = W[y] - W[other]                                       # (N, d)
    m = (x.flatten(1) * w).sum(1) + b[y] - b[other]
    return m, w


class BNNet(nn.Module):
    """Conv + BatchNorm + Dropout: the attack must switch both to eval and back."""

    num_classes = 4
    in_channels = 1

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.Dropout(0.5), nn.Flatten(), nn.Linear(4 * 6 * 6, 4))
        self.modes: list[bool] = []
        self.body[1].register_forward_hook(lambda m, i, o: self.modes.append(m.training))

    def forward(self, x):
        return self.body(x)


def all_attacks(eps=0.1):
    return [
        PGD(eps=eps, steps=3),
        PGD(eps=eps * 5, steps=3, norm="l2", restarts=2),
        PGD(eps=eps, steps=3, loss="kl", random_start="normal_small"),
        PGD(eps=eps, steps=3, loss="cw", early_stop=True),
        PGD(eps=eps, steps=3, targeted=True),
        PGD(eps=eps, steps=3, keep="last", restarts=2),
        FGSM(eps=eps),
        FGSMRS(eps=eps),
        MIM(eps=eps, steps=3),
        MultiTargetedPGD(eps=eps, steps=2, num_targets=2),
        CW(steps=5),
        DeepFool(steps=5),
        AutoAttack(eps=eps, version="fast"),
        Adaptive(attack=PGD(eps=eps, steps=3)),
    ]


BALL_ATTACKS = (PGD, FGSM, FGSMRS, MIM, MultiTargetedPGD, AutoAttack, Adaptive)


# --------------------------------------------------------------------------- threat models
@pytest.mark.parametrize("threat", [Linf(0.1), L2(0.5)])
@pytest.mark.parametrize("kind", ["uniform", "normal_small", "none"])
def test_random_start_in_ball_and_box(threat, kind):
    x = torch.rand(32, 1, 6, 6, generator=gen(1))
    x[:, :, 0] = 0.0
    x[:, :, 1] = 1.0                                          # pixels at the box edges
    x0 = threat.random_start(x, kind, generator=gen(2))
    assert x0.shape == x.shape and x0.dtype == x.dtype
    assert bool(threat.contains(x0, x).all())
    if kind == "none":
        assert torch.equal(x0, x)
    elif kind == "normal_small":
        interior = (x > 0.01) & (x < 0.99)
        assert (x0 - x)[interior].std().item() == pytest.approx(0.001, rel=0.1)
    else:
        d = threat.norm(x0 - x)
        assert d.max() > 0.5 * threat.eps                   # it does spread out in the ball
    again = threat.random_start(x, kind, generator=gen(2))
    assert torch.equal(x0, again)                             # same generator, same start


def test_linf_projection_is_the_closest_point():
    x = torch.rand(16, 3, 4, 4, generator=gen(0))
    far = x + 2 * torch.randn(x.shape, generator=gen(1))
    p = Linf(0.05).project(far, x)
    expected = torch.min(torch.max(far, x - 0.05), x + 0.05).clamp(0, 1)
    assert torch.allclose(p, expected)
    assert torch.equal(Linf(0.05).project(p, x), p)           # idempotent


def test_l2_projection_rescales_radially_and_keeps_points_inside():
    x = torch.full((8, 1, 5, 5), 0.5, dtype=torch.float64)
    delta = torch.randn(x.shape, generator=gen(0), dtype=torch.float64) * 0.01
    delta[:4] *= 100                                          # outside the ball (norm >> 0.2)
    p = L2(0.2).project(x + delta, x)
    n = L2(0.2).norm(p - x)
    assert torch.allclose(n[:4], torch.full((4,), 0.2, dtype=torch.float64))
    assert torch.allclose(p[4:], x[4:] + delta[4:])           # inside: untouched
    cos = F.cosine_similarity((p - x).flatten(1)[:4], delta.flatten(1)[:4])
    assert torch.allclose(cos, torch.ones(4, dtype=torch.float64))


def test_l2_step_unit_length_and_random_direction_for_zero_gradients():
    x = torch.rand(6, 1, 3, 3, generator=gen(0))
    g = torch.randn(x.shape, generator=gen(1))
    g[2] = 0.0
    out = L2(1.0).step(x, g, 0.3, generator=gen(5))
    assert torch.allclose(L2(1.0).norm(out - x), torch.full((6,), 0.3), atol=1e-6)
    lin = Linf(1.0).step(x, g, 0.3)
    assert torch.equal(lin[2], x[2])                          # sign(0) = 0 under Linf
    assert torch.allclose((lin - x).abs()[0], torch.full_like(x[0], 0.3))


def test_threat_model_validation():
    with pytest.raises(ValueError, match="norm"):
        threat_model("l1", 0.1)
    with pytest.raises(ValueError, match="eps"):
        threat_model("linf", -0.1)
    with pytest.raises(ValueError, match="random_start"):
        Linf(0.1).random_start(torch.rand(2, 1, 2, 2), "gaussian")


# --------------------------------------------------------------------------- properties
@pytest.mark.parametrize("atk", all_attacks(), ids=lambda a: a.name)
def test_attack_properties(atk):
    """In the ball, in [0, 1], shape and dtype kept, modes and requires_grad restored, no
    parameter gradients, global RNG untouched, deterministic under a fixed generator."""
    model = BNNet()
    model.train()
    model.body[4].train(False)                                # a mixed-mode model
    model.body[0].bias.requires_grad_(False)                  # a frozen parameter
    flags = [m.training for m in model.modules()]
    x = torch.rand(12, 1, 6, 6, generator=gen(0))
    x[:, :, 0] = 0.0
    y = torch.randint(0, 4, (12,), generator=gen(1))
    rng = torch.get_rng_state()
    model.modes.clear()
    out = atk(model, x, y, generator=gen(7))
    assert model.modes and not any(model.modes)               # BN in eval during the attack
    assert [m.training for m in model.modules()] == flags
    assert model.body[0].bias.requires_grad is False
    assert all(p.requires_grad for n, p in model.named_parameters() if n != "body.0.bias")
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    assert out.shape == x.shape and out.dtype == x.dtype and not out.requires_grad
    assert out.min() >= 0 and out.max() <= 1
    if isinstance(atk, BALL_ATTACKS):
        tm = threat_model(getattr(atk, "norm", "linf"), atk.eps)
        assert bool(tm.contains(out, x, atol=1e-6).all())
    assert torch.equal(out, atk(model, x, y, generator=gen(7)))
    assert torch.equal(atk(model, x, y), atk(model, x, y))   # default: seeded by atk.seed


@pytest.mark.parametrize("atk", [a for a in all_attacks() if not isinstance(a, AutoAttack)],
                         ids=lambda a: a.name)
def test_float64_in_float64_out(atk, linear_binary):
    model, x, y = linear_binary
    out = atk(model, x, y)
    assert out.dtype == torch.float64 and out.shape == x.shape


def test_bn_mode_train_keeps_train_mode_during_attack_and_restores():
    model = BNNet().eval()
    x = torch.rand(8, 1, 6, 6, generator=gen(0))
    y = torch.randint(0, 4, (8,), generator=gen(1))
    atk = dataclasses.replace(PGD(eps=0.1, steps=2), bn_mode="train")
    model.modes.clear()
    atk(model, x, y)
    assert model.modes and all(model.modes)
    assert not any(m.training for m in model.modules())


def test_generator_matters_for_random_starts():
    model = BNNet().eval()
    x = torch.rand(8, 1, 6, 6, generator=gen(0))
    y = torch.randint(0, 4, (8,), generator=gen(1))
    atk = PGD(eps=0.1, steps=1)
    assert not torch.equal(atk(model, x, y, generator=gen(1)), atk(model, x, y, generator=gen(2)))
    assert not torch.equal(atk(model, x, y), dataclasses.replace(atk, seed=1)(model, x, y))


def test_mode_restored_when_the_attack_raises():
    model = BNNet().train()

    def bad_loss(logits, y):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        PGD(eps=0.1, steps=2, loss=bad_loss)(model, torch.rand(2, 1, 6, 6), torch.tensor([0, 1]))
    assert all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("bad, match", [
    (dict(eps=-0.1), "eps"), (dict(eps=0.1, steps=-1), "steps"), (dict(eps=0.1, norm="l1"), "norm"),
    (dict(eps=0.1, loss="mse"), "loss"), (dict(eps=0.1, random_start="gauss"), "random_start"),
    (dict(eps=0.1, restarts=0), "restarts"), (dict(eps=0.1, step_size=0), "step_size"),
    (dict(eps=0.1, loss="kl", targeted=True), "targeted"),
    (dict(eps=0.1, loss="kl", early_stop=True), "early_stop"),
    (dict(eps=0.1, loss=ce_callable, early_stop=True), "early_stop"),
    (dict(eps=0.1, early_stop=True, bn_mode="train"), "bn_mode"),
    (dict(eps=0.1, bn_mode="test"), "bn_mode"),
    (dict(eps=0.1, restarts=2, random_start="none"), "random start"),
])
def test_pgd_rejects_bad_options(bad, match):
    with pytest.raises(ValueError, match=match):
        PGD(**bad)


def test_options_are_keyword_only_and_type_checked():
    with pytest.raises(TypeError):
        PGD(0.1)                                              # positional
    with pytest.raises(TypeError, match="targeted"):
        PGD(eps=0.1, targeted=1)
    with pytest.raises(TypeError, match="loss"):
        PGD(eps=0.1, loss=3)
    with pytest.raises(ValueError, match="bn_mode"):
        AutoAttack(eps=0.1, bn_mode="train")


def test_call_validates_inputs_before_work():
    model = BNNet()
    atk = PGD(eps=0.1, steps=1)
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        atk(model, torch.rand(2, 1, 6, 6) * 2, y)
    with pytest.raises(ValueError, match="y"):
        atk(model, torch.rand(2, 1, 6, 6), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="classes"):
        atk(model, torch.rand(2, 1, 6, 6), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="channel"):
        atk(model, torch.rand(2, 3, 6, 6), y)
    with pytest.raises(TypeError, match="generator"):
        atk(model, torch.rand(2, 1, 6, 6), y, generator=0)
    with pytest.raises(TypeError, match="model"):
        atk(lambda t: t, torch.rand(2, 1, 6, 6), y)


# --------------------------------------------------------------------------- analytic answers
@pytest.mark.parametrize("make", [
    lambda e: FGSM(eps=e),
    lambda e: PGD(eps=e, steps=10),
    lambda e: PGD(eps=e, steps=3, loss="cw", random_start="none"),
    lambda e: MIM(eps=e, steps=5),
], ids=["fgsm", "pgd", "pgd-cw", "mim"])
def test_linf_attacks_reach_the_closed_form_optimum(make, linear_binary):
    """min over the Linf ball of the margin (w.x + b) is margin - eps * ||w||_1, reached at
    the vertex x - eps * sign(w)."""
    model, x, y = linear_binary
    eps = 0.05
    m0, w = margin_and_w(model, x, y)
    x_adv = make(eps)(model, x, y)
    m1, _ = margin_and_w(model, x_adv, y)
    assert torch.allclose(m1, m0 - eps * w.abs().sum(1), atol=1e-10)
    assert torch.allclose(x_adv.flatten(1), x.flatten(1) - eps * w.sign(), atol=1e-12)


def test_l2_pgd_reaches_the_closed_form_optimum(linear_binary):
    model, x, y = linear_binary
    eps = 0.1
    m0, w = margin_and_w(model, x, y)
    x_adv = PGD(eps=eps, steps=10, norm="l2", random_start="none")(model, x, y)
    m1, _ = margin_and_w(model, x_adv, y)
    assert torch.allclose(m1, m0 - eps * w.norm(dim=1), atol=1e-10)


def test_deepfool_finds_the_exact_distance_to_a_linear_boundary():
    # boundary through the grey image; points within 0.2 of it, so [0, 1] never clips
    g = gen(5)
    W = torch.randn(2, 16, generator=g, dtype=torch.float64)
    model = Linear2(W, -W.sum(1) * 0.5).eval()
    x = 0.45 + 0.1 * torch.rand(64, 1, 4, 4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    m0, w = margin_and_w(model, x, y)
    dist = m0.abs() / w.norm(dim=1)                           # |w.x + b| / ||w||
    atk = DeepFool()
    x_adv = atk(model, x, y)
    r = (x_adv - x).flatten(1)
    assert torch.allclose(r.norm(dim=1) / (1 + atk.overshoot), dist, atol=1e-4, rtol=0)
    assert torch.allclose(F.cosine_similarity(r, -w), torch.ones_like(dist), atol=1e-8)
    with torch.no_grad():
        assert (model(x_adv).argmax(1) != y).all()            # overshoot crosses the boundary
    on_boundary = x + (x_adv - x) / (1 + atk.overshoot)
    assert margin_and_w(model, on_boundary, y)[0].abs().max() < 1e-8


def test_box_aware_deepfool_finds_the_distance_along_the_free_pixels():
    """Pixels at 0 whose gradient points below 0 cannot move: the minimal perturbation of a
    linear classifier is then |m| / ||w_free||, which box-aware DeepFool finds in one step;
    the clamped reference algorithm only creeps towards it."""
    g = gen(6)
    W = torch.randn(2, 16, generator=g, dtype=torch.float64)
    x0 = torch.full((16,), 0.5, dtype=torch.float64)
    x0[:5] = 0.0                                              # five black pixels
    model = Linear2(W, -W @ x0).eval()                        # boundary through x0
    x = (x0 + 0.1 * torch.rand(32, 16, generator=g, dtype=torch.float64) - 0.05).clamp(0, 1)
    x[:, :5] = 0.0
    x = x.reshape(32, 1, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)
    m0, w = margin_and_w(model, x, y)                        # the step moves along -w
    free = ~((x.flatten(1) <= 0) & (-w < 0))
    dist = m0.abs() / (w * free).norm(dim=1)
    atk = DeepFool()
    x_adv = atk(model, x, y)
    with torch.no_grad():
        assert (model(x_adv).argmax(1) != y).all()
    r = (x_adv - x).flatten(1)
    assert torch.allclose(r.norm(dim=1) / (1 + atk.overshoot), dist, atol=1e-4, rtol=0)
    assert (r[~free] == 0).all()
    blocked = (~free).any(1)
    assert blocked.sum() > 10
    clamped = DeepFool(box_aware=False, steps=1, overshoot=0.0)(model, x, y)
    with torch.no_grad():                                     # the clamp cut the step short
        assert (model(clamped).argmax(1) == y)[blocked].all()


def test_deepfool_batched_equals_one_example_at_a_time():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 4)).double()
    x = torch.rand(10, 1, 4, 4, generator=gen(0), dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[0] = (y[0] + 1) % 4                                     # one misclassified at the start
    atk = DeepFool(candidates=2)
    batched = atk(model, x, y)
    single = torch.cat([atk(model, x[i:i + 1], y[i:i + 1]) for i in range(10)])
    assert torch.allclose(batched, single, atol=1e-10)
    assert torch.equal(batched[0], x[0])                      # misclassified: unchanged


def test_cw_never_goes_below_the_minimal_distance(linear_binary):
    model, x, y = linear_binary
    m0, w = margin_and_w(model, x, y)
    dist = m0.abs() / w.norm(dim=1)
    x_adv = CW(c=10.0, steps=100, lr=0.05, binary_search_steps=3)(model, x, y)
    with torch.no_grad():
        fooled = model(x_adv).argmax(1) != y
    assert fooled.float().mean() > 0.9
    l2 = (x_adv - x).flatten(1).norm(dim=1)
    assert (l2[fooled] >= dist[fooled] - 1e-9).all()
    assert (l2[fooled] <= 1.2 * dist[fooled] + 1e-3).all()   # and close to it
    assert torch.equal(x_adv[~fooled], x[~fooled])            # failures return x


def test_targeted_pgd_reaches_targets_on_a_linear_model():
    g = gen(4)
    model = Linear2(torch.randn(3, 16, generator=g, dtype=torch.float64),
                    torch.zeros(3, dtype=torch.float64))
    x = 0.3 + 0.4 * torch.rand(40, 1, 4, 4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        pred = model(x).argmax(1)
    target = (pred + 1) % 3
    x_adv = PGD(eps=0.3, steps=20, targeted=True)(model, x, target)
    with torch.no_grad():
        assert (model(x_adv).argmax(1) == target).float().mean() > 0.9
        assert (cross_entropy(model(x_adv), target) < cross_entropy(model(x), target)).all()


def test_multitargeted_is_at_least_as_strong_as_each_target():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 5))
    x = torch.rand(64, 1, 4, 4, generator=gen(0))
    with torch.no_grad():
        y = model(x).argmax(1)
    eps, steps = 0.08, 5
    mt = MultiTargetedPGD(eps=eps, steps=steps, random_start="none")(model, x, y)
    with torch.no_grad():
        fooled_mt = model(mt).argmax(1) != y
        order = model(x).scatter(1, y[:, None], -math.inf).argsort(1, descending=True)
        for j in range(4):
            t = order[:, j]
            single = PGD(eps=eps, steps=steps, targeted=True, random_start="none",
                         step_size=2.5 * eps / steps)(model, x, t)
            fooled_t = model(single).argmax(1) != y
            assert bool((fooled_t <= fooled_mt).all())       # fooled by target j => by mPGD


# --------------------------------------------------------------------------- losses
def test_cw_margin_and_kl_values():
    logits = torch.tensor([[2.0, 1.0, -1.0], [0.0, 3.0, 1.0]])
    y = torch.tensor([0, 2])
    assert torch.allclose(cw_margin(logits, y), torch.tensor([-1.0, 2.0]))
    assert torch.allclose(cw_margin(logits, y, kappa=1.5), torch.tensor([-1.0, 1.5]))
    p = torch.softmax(logits, 1)
    assert torch.allclose(kl_to_clean(logits, p), torch.zeros(2), atol=1e-7)
    q = torch.softmax(logits.flip(1), 1)
    expected = (p * (p.log() - q.log())).sum(1)
    assert torch.allclose(kl_to_clean(logits.flip(1), p), expected, atol=1e-6)


def test_callable_loss_equals_named_loss_and_sign_matters():
    model = BNNet().eval()
    x = torch.rand(16, 1, 6, 6, generator=gen(0))
    with torch.no_grad():
        y = model(x).argmax(1)
    a = PGD(eps=0.002, steps=3)(model, x, y)
    b = PGD(eps=0.002, steps=3, loss=ce_callable)(model, x, y)
    with torch.no_grad():
        assert (model(a).argmax(1) == y).all()              # nothing fooled: no tracking swap
    assert torch.equal(a, b)
    y = torch.randint(0, 4, (16,), generator=gen(1))
    helpful = PGD(eps=0.1, steps=3, random_start="none",
                  loss=lambda lo, t: -F.cross_entropy(lo, t, reduction="none"))(model, x, y)
    with torch.no_grad():
        assert (cross_entropy(model(helpful), y) < cross_entropy(model(x), y)).all()


def test_kl_loss_moves_away_from_the_clean_prediction():
    model = BNNet().eval()
    x = torch.rand(32, 1, 6, 6, generator=gen(0))
    y = torch.zeros(32, dtype=torch.long)                    # unused by the KL loss
    with torch.no_grad():
        p = torch.softmax(model(x), 1)
    start = Linf(0.1).random_start(x, "normal_small", generator=gen(1))
    x_adv = PGD(eps=0.1, steps=5, loss="kl", random_start="normal_small")(model, x, y)
    noise = Linf(0.1).random_start(x, "uniform", generator=gen(2))
    with torch.no_grad():
        kl_adv = kl_to_clean(model(x_adv), p)
        assert (kl_adv > kl_to_clean(model(start), p)).all()
        assert kl_adv.mean() > 5 * kl_to_clean(model(noise), p).mean()


def test_feature_loss_on_logits_equals_ce_and_with_clean_features():
    model = models.build("tinycnn", num_classes=10, in_channels=1, input_size=8, width=4,
                         hidden=16, seed=0).eval()
    x = torch.rand(8, 1, 8, 8, generator=gen(0))
    y = torch.randint(0, 10, (8,), generator=gen(1))
    ref = PGD(eps=0.1, steps=3, loss=ce_callable)(model, x, y)
    fl = FeatureLoss(lambda f, t: F.cross_entropy(f["logits"], t, reduction="none"), layers="logits")
    assert torch.equal(PGD(eps=0.1, steps=3, loss=fl)(model, x, y), ref)

    def away(f, t, clean):
        return (f["penultimate"] - clean["penultimate"]).pow(2).sum(1)

    atk = PGD(eps=0.1, steps=5, loss=FeatureLoss(away, with_clean=True), random_start="normal_small")
    x_adv = atk(model, x, y)
    noise = Linf(0.1).random_start(x, "uniform", generator=gen(2))
    with models.Features(model, ["penultimate"]) as tap, torch.no_grad():
        z0, za, zn = (tap(t)["penultimate"] for t in (x, x_adv, noise))
    assert ((za - z0).norm(dim=1) > (zn - z0).norm(dim=1)).all()
    assert not model._forward_hooks and not model.classifier._forward_pre_hooks  # tap closed
    desc = json.loads(json.dumps(atk.describe()))
    assert desc["loss"]["type"] == "FeatureLoss" and desc["loss"]["fn"].endswith("away")
    assert desc["loss"]["layers"] == ["penultimate"] and desc["random_start"] == "normal_small"
    with pytest.raises(ValueError, match="early_stop"):
        PGD(eps=0.1, loss=fl, early_stop=True)
    with pytest.raises(ValueError, match="shape"):
        PGD(eps=0.1, steps=1, loss=lambda lo, t: lo)(model, x, y)


def test_restarts_keep_the_worst_point_per_example():
    model = BNNet().eval()
    x = torch.rand(64, 1, 6, 6, generator=gen(0))
    with torch.no_grad():
        y = model(x).argmax(1)
    one = PGD(eps=0.03, steps=3)(model, x, y, generator=gen(5))
    three = PGD(eps=0.03, steps=3, restarts=3)(model, x, y, generator=gen(5))
    with torch.no_grad():
        f1, f3 = model(one).argmax(1) != y, model(three).argmax(1) != y
        l1, l3 = cross_entropy(model(one), y), cross_entropy(model(three), y)
    assert bool((f1 <= f3).all()) and f3.sum() >= f1.sum()
    both_robust = ~f1 & ~f3
    assert (l3[both_robust] >= l1[both_robust] - 1e-6).all()


def test_keep_last_is_the_plain_madry_loop_and_fooling_never_loses_a_fooled_example():
    """keep="last" returns exactly the hand-written Madry iteration; keep="fooling" returns
    every example that some iterate fooled as fooled, and differs from "last" only there."""
    model = BNNet().eval()
    x = torch.rand(128, 1, 6, 6, generator=gen(0))
    with torch.no_grad():
        y = model(x).argmax(1)
    eps, step, k = 0.08, 0.05, 6          # a large step: iterates hop across the boundary
    last = PGD(eps=eps, step_size=step, steps=k, keep="last")(model, x, y, generator=gen(4))
    fooling = PGD(eps=eps, step_size=step, steps=k)(model, x, y, generator=gen(4))

    xa = Linf(eps).random_start(x, "uniform", generator=gen(4))
    ever = torch.zeros(len(y), dtype=torch.bool)
    for _ in range(k):
        xa.requires_grad_(True)
        logits = model(xa)
        (g,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), xa)
        ever |= logits.argmax(1) != y
        xa = torch.min(torch.max(xa.detach() + step * g.sign(), x - eps), x + eps).clamp(0, 1)
    with torch.no_grad():
        ever |= model(xa).argmax(1) != y
        f_last, f_fooling = model(last).argmax(1) != y, model(fooling).argmax(1) != y
    assert torch.allclose(last, xa, atol=1e-6)
    assert torch.equal(f_fooling, ever)
    assert bool((f_last <= f_fooling).all())
    same = (fooling == last).flatten(1).all(1)
    assert bool(same[~ever].all())        # unfooled examples: both return the last iterate
    assert (ever & ~f_last).any()         # the case the option exists for occurs here
    with pytest.raises(ValueError, match="keep='fooling'"):
        PGD(eps=eps, early_stop=True, keep="last")
    with pytest.raises(ValueError, match="keep"):
        PGD(eps=eps, keep="best")


def test_adaptive_is_the_attack_without_surrogate_and_the_worst_case_with_one():
    from robustviz.models import build

    x = torch.rand(96, 1, 8, 8, generator=gen(0))
    plain = build("tinycnn", num_classes=10, in_channels=1, input_size=8, width=4, hidden=16, seed=1).eval()
    with torch.no_grad():
        y = plain(x).argmax(1)
    atk = PGD(eps=0.05, steps=4)
    assert torch.equal(Adaptive(attack=atk)(plain, x, y), atk(plain, x, y))
    ra = build("tinycnn", num_classes=10, in_channels=1, input_size=8, width=4, hidden=16, seed=1,
               reverse_attention=True).train()
    with torch.no_grad():
        y = ra.eval()(x).argmax(1)
    ra.train()
    x_direct = atk(ra, x, y, generator=gen(2))
    x_sur = atk(ra.surrogate(), x, y, generator=gen(2))
    out = Adaptive(attack=atk)(ra, x, y, generator=gen(2))
    assert ra.training                                      # mode restored
    assert bool(Linf(0.05).contains(out, x).all())
    with torch.no_grad():
        fd, fs, fo = (ra.eval()(v).argmax(1) != y for v in (x_direct, x_sur, out))
    assert torch.equal(fo, fd | fs)                         # fooled by either, per example
    rows = fo & ~fd
    assert torch.equal(out[rows], x_sur[rows]) and torch.equal(out[~rows], x_direct[~rows])
    assert Adaptive(attack=atk).name == "Adaptive(PGD)"
    with pytest.raises(TypeError, match="robustviz attack"):
        Adaptive(attack=lambda m, a, b: a)
    with pytest.raises(TypeError, match="already"):
        Adaptive(attack=Adaptive(attack=atk))


def test_steps_zero_returns_the_random_start():
    model = BNNet().eval()
    x = torch.rand(4, 1, 6, 6, generator=gen(0))
    out = PGD(eps=0.1, steps=0)(model, x, torch.zeros(4, dtype=torch.long), generator=gen(3))
    assert torch.equal(out, Linf(0.1).random_start(x, "uniform", generator=gen(3)))


def test_autoattack_reports_its_backend_and_explains_a_missing_install(monkeypatch):
    import torchattacks

    atk = AutoAttack(eps=0.1)
    assert torchattacks.__version__ in atk.backend() and "APGD-T" in atk.backend()
    assert atk.describe()["backend"] == atk.backend()
    monkeypatch.setitem(sys.modules, "torchattacks", None)
    monkeypatch.setitem(sys.modules, "pyautoattack", None)
    with pytest.raises(ImportError, match="pip install \"robustviz\\[autoattack\\]\""):
        atk(BNNet(), torch.rand(2, 1, 6, 6), torch.tensor([0, 1]))
    assert "not installed" in atk.describe()["backend"]


# --------------------------------------------------------------------------- trained model
@pytest.fixture(scope="module")
def fmnist():
    """The teaching zoo's NAT TinyCNN (92.5% on these 1,000 test images) and the first
    1,000 stratified Fashion-MNIST test images: a shipped model, since training is not what
    these tests check (a fixture trained here cost 15-23 s of every test run)."""
    if not data.available("fashion-mnist"):
        pytest.skip("Fashion-MNIST files not found (run scripts/get_data.sh)")
    from robustviz import zoo

    test = data.load("fashion-mnist", "test", n=1000, seed=0)
    return zoo.load("nat", dataset="fashion-mnist").eval(), test.x, test.y


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


EPS = 0.03           # accuracies of the fixture model stay in a range where attacks differ


@pytest.mark.slow
def test_fixture_model_learned(fmnist):
    model, x, y = fmnist
    assert accuracy(model, x, y) > 0.9


@pytest.mark.slow
def test_pgd_and_fgsm_agree_with_torchattacks(fmnist):
    import torchattacks

    model, x, y = fmnist
    ours_pgd = accuracy(model, PGD(eps=EPS, step_size=EPS / 4, steps=5)(model, x, y), y)
    torch.manual_seed(0)                                      # torchattacks draws from the global RNG
    ta_pgd = accuracy(model, torchattacks.PGD(model, eps=EPS, alpha=EPS / 4, steps=5,
                                              random_start=True)(x, y), y)
    ours_fgsm = accuracy(model, FGSM(eps=EPS)(model, x, y), y)
    ta_fgsm = accuracy(model, torchattacks.FGSM(model, eps=EPS)(x, y), y)
    clean = accuracy(model, x, y)
    assert ours_pgd < clean - 0.05                            # the attack does something
    assert abs(ours_pgd - ta_pgd) <= 0.015, (ours_pgd, ta_pgd)
    assert abs(ours_fgsm - ta_fgsm) <= 0.015, (ours_fgsm, ta_fgsm)


@pytest.mark.slow
def test_mim_agrees_with_torchattacks(fmnist):
    import torchattacks

    model, x, y = fmnist
    ours = accuracy(model, MIM(eps=EPS, steps=5, step_size=EPS / 5, decay=1.0)(model, x, y), y)
    ta = accuracy(model, torchattacks.MIFGSM(model, eps=EPS, alpha=EPS / 5, steps=5,
                                             decay=1.0)(x, y), y)
    assert abs(ours - ta) <= 0.015, (ours, ta)


@pytest.mark.slow
def test_deepfool_agrees_with_torchattacks(fmnist):
    """On the first 400 images contrast-reduced to [0.25, 0.75] (torchattacks' DeepFool loops
    over examples, so it is the slow part of this test): where pixels sit at 0 the clamp to [0, 1] eats part of
    every DeepFool step and both implementations stall near the boundary, so whether an
    example ends up across it is decided by float noise. Away from the box the algorithm
    is deterministic and the two must agree example by example."""
    import torchattacks

    model, x, y = fmnist
    x, y = 0.25 + 0.5 * x[:400], y[:400]
    ours = DeepFool(steps=50, overshoot=0.02, variant="torchattacks", box_aware=False)(model, x, y)
    paper = DeepFool(steps=50, overshoot=0.02)(model, x, y)
    ta = torchattacks.DeepFool(model, steps=50, overshoot=0.02)(x, y)
    with torch.no_grad():
        ok = model(x).argmax(1) == y
        flipped = ok & (model(ours).argmax(1) != y) & (model(ta).argmax(1) != y)
    assert ok.sum() > 250 and flipped.sum() > 0.9 * ok.sum()
    assert abs(accuracy(model, ours, y) - accuracy(model, ta, y)) <= 0.015
    assert accuracy(model, paper, y) <= accuracy(model, ours, y)
    d_ours = (ours - x).flatten(1).norm(dim=1)[flipped]
    d_ta = (ta - x).flatten(1).norm(dim=1)[flipped]
    rel = (d_ours - d_ta).abs() / d_ta
    assert rel.median() < 1e-4 and rel.max() < 1e-2


@pytest.mark.slow
def test_strength_ordering_and_early_stop_changes_nothing(fmnist):
    model, x, y = fmnist
    eps = 0.1                                                 # the project's Fashion-MNIST default
    clean = accuracy(model, x, y)
    fgsm = accuracy(model, FGSM(eps=eps)(model, x, y), y)
    pgd20 = accuracy(model, PGD(eps=eps, steps=20, early_stop=True)(model, x, y), y)
    assert pgd20 <= fgsm <= clean
    assert pgd20 < 0.5
    x, y = x[:200], y[:200]
    pgd = PGD(eps=EPS, steps=5, restarts=2)
    plain = pgd(model, x, y, generator=gen(1))
    early = dataclasses.replace(pgd, early_stop=True)(model, x, y, generator=gen(1))
    with torch.no_grad():
        ok_plain, ok_early = model(plain).argmax(1) == y, model(early).argmax(1) == y
    assert torch.equal(ok_plain, ok_early)                    # per example, not just on average
    mt = MultiTargetedPGD(eps=EPS, steps=5, num_targets=3)
    a = mt(model, x[:100], y[:100], generator=gen(2))
    b = dataclasses.replace(mt, early_stop=True)(model, x[:100], y[:100], generator=gen(2))
    with torch.no_grad():
        assert torch.equal(model(a).argmax(1) == y[:100], model(b).argmax(1) == y[:100])


@pytest.mark.slow
def test_bf16_pgd_stays_close_to_fp32(fmnist):
    model, x, y = fmnist
    atk = PGD(eps=EPS, steps=5, early_stop=True)
    x, y = x[:100], y[:100]
    fp32 = accuracy(model, atk(model, x, y), y)
    adv16 = dataclasses.replace(atk, bf16=True)(model, x, y)
    assert adv16.dtype == torch.float32 and bool(Linf(EPS).contains(adv16, x).all())
    assert abs(accuracy(model, adv16, y) - fp32) <= 0.03      # 3 of 100 images


@pytest.mark.slow
def test_autoattack_is_at_least_as_strong_as_pgd(fmnist):
    """On the first 300 cross-check images at eps 0.07, where PGD-20 leaves 5% standing
    (AutoAttack "fast" leaves 3%): APGD-CE, then APGD-T on the survivors. The standard
    version is cross-checked against the authors' code in tests/test_autoattack.py."""
    model, x, y = fmnist
    x, y = x[:300], y[:300]
    eps = 0.07
    pgd = accuracy(model, PGD(eps=eps, steps=20)(model, x, y), y)
    aa = accuracy(model, AutoAttack(eps=eps, version="fast")(model, x, y), y)
    assert 0 < pgd < 0.2
    assert aa <= pgd, (aa, pgd)
