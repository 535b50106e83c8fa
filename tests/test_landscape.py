"""Loss landscapes: closed-form quadratic surfaces, centres and endpoints equal the models'
losses, filter normalisation, weights untouched."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robustviz as rv
from robustviz.attacks import PGD
from robustviz.diagnostics import (input_landscape, interpolation_landscape, random_directions,
                                   weight_landscape)


def _quadratic(d=12, seed=0):
    """f(x) = w . x; with loss 0.5 (f(x) - t)^2 the loss is an exact quadratic in w and x."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, 1, bias=False))
    return model


def _qloss(out, y):
    return 0.5 * (out[:, 0] - y.to(out.dtype)) ** 2


def _qdata(n=40, d=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.4 * torch.rand(n, 1, 3, d // 3, generator=g)
    y = torch.zeros(n, dtype=torch.long)   # regression target 0 (a valid class label)
    return x, y


def test_weight_surface_equals_closed_form_quadratic():
    model = _quadratic()
    x, y = _qdata()
    dirs = random_directions(model, 2, seed=3)
    a, b = np.linspace(-1, 1, 7), np.linspace(-0.5, 1.5, 5)
    land = weight_landscape(model, (x, y), alphas=a, betas=b, directions=dirs, loss_fn=_qloss,
                            progress=False)
    w = model[1].weight.detach().double()[0]
    d1, d2 = (d["1.weight"].double()[0] for d in dirs)
    X = x.flatten(1).double()
    want = np.array([[float((0.5 * (X @ (w + ai * d1 + bj * d2)) ** 2).mean()) for bj in b]
                     for ai in a])
    assert land.loss.shape == (7, 5)
    np.testing.assert_allclose(land.loss, want, rtol=1e-5, atol=1e-7)
    one = weight_landscape(model, (x, y), dims=1, alphas=a, directions=dirs[:1],
                           loss_fn=_qloss, progress=False)
    np.testing.assert_allclose(one.loss, [float((0.5 * (X @ (w + ai * d1)) ** 2).mean())
                                          for ai in a], rtol=1e-5, atol=1e-7)


def test_input_surface_equals_closed_form_quadratic():
    model = _quadratic(seed=2)
    x, y = _qdata()
    a = b = np.linspace(-0.1, 0.1, 5)   # small: no pixel leaves [0, 1], the clip is inactive
    land = input_landscape(model, (x, y), alphas=a, betas=b, loss_fn=_qloss, seed=5,
                           progress=False)
    w = model[1].weight.detach().double()[0]
    X = x.flatten(1).double()
    s = torch.sign((X @ w)[:, None] * w[None, :])          # sign of grad_x 0.5 (w.x)^2
    r = (torch.randint(0, 2, tuple(x.shape), generator=torch.Generator().manual_seed(5)) * 2 - 1)
    r = r.flatten(1).double()
    want = np.array([[float((0.5 * ((X + ai * s + bj * r) @ w) ** 2).mean()) for bj in b]
                     for ai in a])
    np.testing.assert_allclose(land.loss, want, rtol=1e-5, atol=1e-7)
    assert land.loss[-1, 2] > land.loss[2, 2] > land.loss[0, 2]  # uphill along sign(grad)


def _bn_model():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                      nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.rand(16, 1, 6, 6))          # non-trivial running statistics
    return m.eval()


def test_directions_are_filter_normalised_and_skip_bias_bn():
    model = _bn_model()
    d1, d2 = random_directions(model, 2, seed=0)
    for name, p in model.named_parameters():
        if p.dim() > 1:
            got = d1[name].flatten(1).norm(dim=1)
            np.testing.assert_allclose(got.numpy(), p.detach().flatten(1).norm(dim=1).numpy(),
                                       rtol=1e-5)
            assert not torch.allclose(d1[name], d2[name])
        else:
            assert torch.count_nonzero(d1[name]) == 0       # biases and BN zeroed by default
    full = random_directions(model, 1, seed=0, ignore="none")[0]
    assert float(full["1.weight"].norm()) == pytest.approx(float(model[1].weight.detach().norm()), rel=1e-5)
    again = random_directions(model, 2, seed=0)
    assert all(torch.equal(d1[k], again[0][k]) for k in d1)


def test_centre_equals_model_loss_and_weights_untouched():
    model = _bn_model()
    x = torch.rand(30, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 3, (30,), generator=torch.Generator().manual_seed(3))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()   # the landscape must still use eval mode, then restore train
    atk = PGD(eps=0.05, steps=3)
    land = weight_landscape(model, (x, y), alphas=np.linspace(-1, 1, 5),
                            betas=np.linspace(-1, 1, 5), attack=atk, batch_size=7, progress=False)
    assert model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    model.eval()
    with torch.no_grad():
        out = model(x)
        want = F.cross_entropy(out, y).item()
        acc = (out.argmax(1) == y).float().mean().item()
    assert land.loss[2, 2] == pytest.approx(want, abs=1e-6)
    assert land.center() == pytest.approx(want, abs=1e-6)
    assert land.accuracy[2, 2] == pytest.approx(acc)
    x_adv = atk(model, x[:7], y[:7], generator=torch.Generator().manual_seed(0))
    # the adversarial loss at the centre is PGD's on the model itself (first batch here)
    sub = weight_landscape(model, (x[:7], y[:7]), alphas=[-1, 0, 1], betas=[-1, 0, 1],
                           attack=atk, progress=False)
    with torch.no_grad():
        assert sub.adv_loss[1, 1] == pytest.approx(F.cross_entropy(model(x_adv), y[:7]).item(),
                                                   abs=1e-5)
    assert (land.adv_loss >= land.loss - 1e-6).all()
    assert (land.adv_accuracy <= land.accuracy + 1e-9).all()
    il = input_landscape(model, (x, y), progress=False)
    assert il.center() == pytest.approx(want, abs=1e-6)


def test_interpolation_endpoints_equal_each_model():
    a, b = _bn_model(), _bn_model()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.1 * torch.randn_like(p))
        b[1].running_mean.add_(0.3)
    x = torch.rand(25, 1, 6, 6, generator=torch.Generator().manual_seed(4))
    y = torch.randint(0, 3, (25,), generator=torch.Generator().manual_seed(5))
    land = interpolation_landscape(a, b, (x, y), alphas=[-0.5, 0.0, 0.5, 1.0], progress=False,
                                   attack=PGD(eps=0.03, steps=2))
    with torch.no_grad():
        la, lb = F.cross_entropy(a(x), y).item(), F.cross_entropy(b(x), y).item()
    assert land.loss[1] == pytest.approx(la, abs=1e-6)
    assert land.loss[3] == pytest.approx(lb, abs=1e-6)
    assert land.loss[2] != pytest.approx(la, abs=1e-4)


def test_rise_is_zero_on_a_flat_surface_and_positive_on_a_bowl():
    from robustviz.diagnostics import Landscape

    g = np.linspace(-1, 1, 21)
    bowl = Landscape(kind="weights", coords=(g, g), loss=np.add.outer(g ** 2, g ** 2),
                     accuracy=np.ones((21, 21)), n=1, options={})
    assert bowl.rise(0.5) == pytest.approx(0.25, abs=0.01)
    flat = Landscape(kind="weights", coords=(g, g), loss=np.ones((21, 21)),
                     accuracy=np.ones((21, 21)), n=1, options={})
    assert flat.rise(0.5) == pytest.approx(0.0)


def test_tinycnn_landscape_bad_inputs():
    model = rv.models.build("tinycnn", num_classes=10, in_channels=1, input_size=(8, 8),
                            mean=(0.5,), std=(0.25,), seed=0)
    x, y = torch.rand(4, 1, 8, 8), torch.randint(0, 10, (4,))
    with pytest.raises(ValueError, match="increasing"):
        weight_landscape(model, (x, y), alphas=[1, 0], progress=False)
    with pytest.raises(ValueError, match="bn_mode"):
        weight_landscape(model, (x, y), attack=PGD(eps=0.1, steps=1, bn_mode="train"),
                         alphas=[0, 1], betas=[0, 1], progress=False)
    with pytest.raises(ValueError, match="architecture"):
        interpolation_landscape(model, _bn_model(), (x, y), progress=False)


def test_landscape_figures_share_one_colour_scale():
    from matplotlib.figure import Figure

    from robustviz import figures as rvf
    from robustviz.diagnostics import Landscape

    g = np.linspace(-1, 1, 5)
    a = Landscape(kind="weights", coords=(g, g), loss=np.add.outer(g ** 2, g ** 2),
                  accuracy=np.ones((5, 5)), n=1, options={})
    b = Landscape(kind="weights", coords=(g, g), loss=3 + np.add.outer(g ** 2, g ** 2),
                  accuracy=np.ones((5, 5)), n=1, options={})
    fig = rvf.plot_landscape_contour({"A": a, "B": b}, radius=0.5)
    assert isinstance(fig, Figure)
    sets = [c for ax in fig.axes for c in ax.collections if getattr(c, "filled", False)]
    norms = {(round(c.norm.vmin, 6), round(c.norm.vmax, 6)) for c in sets}
    assert norms == {(0.0, 5.0)}          # both panels on the range of both surfaces
    fig3 = rvf.plot_landscape_surface({"A": a, "B": b})
    zl = {ax.get_zlim() for ax in fig3.axes if hasattr(ax, "get_zlim")}
    assert zl == {(0.0, 5.0)}
    line = Landscape(kind="interpolation", coords=(g,), loss=g ** 2, accuracy=np.ones(5), n=1,
                     options={}, adv_loss=g ** 2 + 1, adv_accuracy=np.zeros(5))
    fig1 = rvf.plot_landscape_1d({"NAT->AT": line}, metrics=("loss", "adv_loss", "accuracy"))
    assert len(fig1.axes[0].lines) >= 2
    with pytest.raises(ValueError, match="1-D"):
        rvf.plot_landscape_contour(line)
