"""Feature and representation inversion: closed-form optimum on a linear model, batched ==
one pair at a time, images in [0, 1], model state restored."""
import numpy as np
import pytest
import torch
from torch import nn

import robustviz as rv
from robustviz.diagnostics import feature_inversion, representation_inversion


def _linear(d=16, k=3, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, k))
    return model


def test_linear_model_reaches_closed_form_optimum_monotonically():
    # activation_k(x) = w_k . x + b_k over the box [0, 1]^D is maximised by x* = 1[w_k > 0]
    model = _linear()
    w, b = model[1].weight.detach(), model[1].bias.detach()
    seeds = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    res = feature_inversion(model, "logits", [0, 2], seeds, steps=12, step_size=0.1, norm="linf")
    assert res.images.shape == (2, 2, 1, 4, 4)
    tr = res.objective  # (steps + 1, S, K)
    assert (tr[1:] - tr[:-1] >= -1e-6).all(), "target activation must never fall"
    assert (tr[-1] > tr[0]).all()
    for j, k in enumerate([0, 2]):
        best = (w[k] > 0).float()
        opt = float(w[k] @ best + b[k])
        for s in range(2):
            assert torch.equal(res.images[s, j].flatten(), best)
            assert tr[-1, s, j].item() == pytest.approx(opt, abs=1e-5)


def test_l2_steps_on_linear_model_rise_monotonically():
    model = _linear(seed=3)
    res = feature_inversion(model, "logits", [1], torch.rand(3, 1, 4, 4), steps=20, step_size=0.05, norm="l2")
    tr = res.objective[:, :, 0]
    assert (tr[1:] - tr[:-1] >= -1e-6).all()


def _tiny():
    return rv.models.build("tinycnn", num_classes=10, in_channels=1, input_size=(12, 12),
                           mean=(0.5,), std=(0.25,), seed=0)


@pytest.mark.parametrize("norm,jitter,penalty", [("l2", 0, "none"), ("l2", 2, "tv"),
                                                  ("none", 1, "l2")])
def test_batched_equals_one_pair_at_a_time(norm, jitter, penalty):
    model = _tiny()
    kw = dict(steps=8, step_size=0.05 if norm == "l2" else 0.5, norm=norm, jitter=jitter,
              penalty=penalty, penalty_weight=0.1, seed=4)
    batched = feature_inversion(model, "conv2", [0, 5, 9], 2, **kw)
    looped = feature_inversion(model, "conv2", [0, 5, 9], 2, batch_size=1, **kw)
    assert torch.allclose(batched.images, looped.images, atol=1e-5)
    assert torch.allclose(batched.objective, looped.objective, atol=1e-4)
    # a pair run on its own (given the same seed image) gives the same image too
    one = feature_inversion(model, "conv2", [5], batched.start[1:2], **kw)
    assert torch.allclose(one.images[0, 0], batched.images[1, 1], atol=1e-5)


def test_outputs_in_unit_box_and_state_restored():
    model = _tiny()
    model.train()
    model.conv1[0].weight.requires_grad_(False)
    flags = [(m, m.training) for m in model.modules()]
    req = [p.requires_grad for p in model.parameters()]
    before = [p.detach().clone() for p in model.parameters()]
    res = feature_inversion(model, "penultimate", [0, 1, 2, 3], 3, steps=10, step_size=0.2,
                            norm="none", eps=0.3)
    assert res.images.min() >= 0 and res.images.max() <= 1
    assert (res.images - res.start[:, None]).abs().max() <= 0.3 + 1e-6
    assert all(m.training == f for m, f in flags)
    assert [p.requires_grad for p in model.parameters()] == req
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    rep = representation_inversion(model, torch.rand(2, 1, 12, 12), steps=5)
    assert rep.images.min() >= 0 and rep.images.max() <= 1
    assert all(m.training == f for m, f in flags)
    assert [p.requires_grad for p in model.parameters()] == req


def test_representation_inversion_reduces_distance_and_matches_linear_target():
    # identity representation: the minimiser is the target itself
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 16, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(16))
    target = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    res = representation_inversion(model, target, layer="logits", steps=150, step_size=0.02)
    tr = res.objective
    assert tr[-1].max() < 0.05 and (tr[-1] < tr[0]).all()
    assert torch.allclose(res.images, target, atol=0.05)


def test_bad_inputs_raise_clearly():
    model = _tiny()
    with pytest.raises(ValueError, match="out of range"):
        feature_inversion(model, "penultimate", [999], 1, steps=1)
    with pytest.raises(ValueError, match="layers"):
        feature_inversion(model, "nope", [0], 1, steps=1)
    with pytest.raises(ValueError, match="norm"):
        feature_inversion(model, "conv2", [0], 1, norm="l3")
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        feature_inversion(model, "conv2", [0], torch.full((1, 1, 12, 12), 2.0))


def test_to_dict_is_savez_ready(tmp_path):
    res = feature_inversion(_linear(), "logits", [0], torch.rand(1, 1, 4, 4), steps=2, step_size=0.1)
    np.savez(tmp_path / "a.npz", **{k: v for k, v in res.to_dict().items()
                                    if isinstance(v, np.ndarray)})
    assert (tmp_path / "a.npz").stat().st_size > 0


def test_inversion_figure_layout():
    from robustviz import figures as rvf

    model = _tiny()
    a = feature_inversion(model, "conv2", [0, 1, 2], 2, steps=2)
    b = feature_inversion(model, "conv2", [0, 1, 2], 2, steps=2, seed=1)
    fig = rvf.plot_inversion({"NAT": a, "AT": b})
    assert len(fig.axes) == 2 * 2 * (3 + 1)          # models x seeds x (start + neurons)
    assert [sf._suptitle.get_text() for sf in fig.subfigs] == ["NAT", "AT"]
    c = feature_inversion(model, "conv2", [0, 1], 2, steps=2)
    with pytest.raises(ValueError, match="layout"):
        rvf.plot_inversion({"a": a, "c": c})
