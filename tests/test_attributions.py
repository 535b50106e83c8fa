"""Attributions through captum: shapes, integrated gradients' completeness, saliency against
autograd, the linear model's closed forms, the alignment metric on constructed maps, errors."""
import numpy as np
import pytest
import torch
from torch import nn

import robustviz as rv
from robustviz.diagnostics import (attribution_alignment, attribution_maps, attributions,
                                   edge_map, object_mask)

pytest.importorskip("captum")

METHODS = ("saliency", "integrated_gradients", "smoothgrad")


def _tiny(seed=0):
    return rv.models.build("tinycnn", num_classes=10, in_channels=1, input_size=(12, 12),
                           mean=(0.5,), std=(0.25,), seed=seed)


def _images(n=6, c=1, size=12, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def _logit(model, x, y):
    with torch.no_grad():
        return model(x).gather(1, y[:, None])[:, 0]


@pytest.mark.parametrize("method", METHODS)
def test_maps_have_the_input_shape_and_do_not_depend_on_the_batch_size(method):
    model, x = _tiny(), _images()
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    kw = dict(method=method, steps=8, samples=4, progress=False)
    a = attributions(model, x, y, **kw)
    assert a.shape == x.shape and a.dtype == x.dtype and a.device == x.device
    assert torch.isfinite(a).all() and a.abs().sum() > 0
    if method != "smoothgrad":          # SmoothGrad's noise is drawn per chunk
        # chunks of one image (integrated gradients: its 8 path points in one pass), or two
        small = attributions(model, x, y, batch_size=8 if method == "integrated_gradients" else 2,
                             **kw)
        assert torch.allclose(a, small, atol=1e-6)


def _smooth_net():
    """A small tanh/softplus network with large weights: smooth along every path, so
    Gauss-Legendre quadrature converges fast, and far from linear, so 2 points do not."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 10 * 10, 16),
                        nn.Softplus(), nn.Linear(16, 5))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(4)
    return net


def _completeness_gap(model, x, y, steps, baseline):
    b = baseline if isinstance(baseline, torch.Tensor) else torch.full_like(x[:1], baseline)
    diff = _logit(model, x, y) - _logit(model, b.expand_as(x), y)
    a = attributions(model, x, y, method="integrated_gradients", steps=steps, baseline=baseline,
                     progress=False)
    return (a.flatten(1).sum(1) - diff).abs(), diff.abs()


@pytest.mark.parametrize("baseline", [0.0, torch.full((1, 1, 12, 12), 0.5)], ids=["black", "grey"])
def test_integrated_gradients_completeness(baseline):
    # Sundararajan et al.'s completeness: sum_i IG_i = f_y(x) - f_y(baseline). On a smooth
    # network 32 Gauss-Legendre points give it within 1e-5 * (1 + |f(x) - f(baseline)|);
    # 2 points do not (so the test can fail).
    model, x, y = _smooth_net(), _images(8, seed=1), torch.arange(8) % 5
    gap, diff = _completeness_gap(model, x, y, 32, baseline)
    assert (gap <= 1e-5 * (1 + diff)).all()
    gap2, _ = _completeness_gap(model, x, y, 2, baseline)
    assert (gap2 > 1e-3 * (1 + diff)).any()


def test_integrated_gradients_completeness_on_a_relu_net_improves_with_steps():
    # a ReLU/max-pool network's gradient jumps along the path, so the quadrature converges
    # slowly: 256 points leave a mean gap under 3% of the mean |f(x) - f(0)|, 10x below 4
    model, x, y = _tiny(seed=3), _images(4, seed=1), torch.arange(4)
    fine, diff = _completeness_gap(model, x, y, 256, 0.0)
    coarse, _ = _completeness_gap(model, x, y, 4, 0.0)
    assert fine.mean() < 0.03 * diff.mean() and fine.mean() < coarse.mean() / 10


def test_saliency_is_the_autograd_input_gradient_of_the_logit():
    model, x = _tiny(seed=1), _images(5, seed=2)
    y = torch.tensor([9, 0, 3, 3, 7])
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xg).gather(1, y[:, None]).sum(), xg)
    assert torch.allclose(attributions(model, x, y, progress=False), g, atol=1e-6)
    assert torch.allclose(attributions(model, x, y, absolute=True, progress=False), g.abs(), atol=1e-6)
    # y=None explains the predicted class
    with torch.no_grad():
        pred = model.eval()(x).argmax(1)
    assert torch.allclose(attributions(model, x, None, progress=False),
                          attributions(model, x, pred, progress=False))
    # SmoothGrad without noise is saliency
    assert torch.allclose(attributions(model, x, y, method="smoothgrad", noise=0.0, samples=3,
                                       progress=False), g, atol=1e-6)


def test_linear_model_closed_forms():
    # f(x) = W vec(x) + b: saliency of class k is W_k (for every x, so SmoothGrad too), and
    # integrated gradients is W_k * (x - baseline) exactly.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    w = model[1].weight.detach()
    x = _images(4, size=4, seed=5)
    y = torch.tensor([2, 0, 1, 2])
    rows = w[y].view(4, 1, 4, 4)
    assert torch.allclose(attributions(model, x, y, progress=False), rows, atol=1e-6)
    assert torch.allclose(attributions(model, x, y, method="smoothgrad", noise=0.3, samples=5,
                                       progress=False), rows, atol=1e-5)
    ig = attributions(model, x, y, method="integrated_gradients", steps=2, baseline=0.25,
                      progress=False)
    assert torch.allclose(ig, rows * (x - 0.25), atol=1e-6)


def test_model_state_and_global_generator_are_left_as_they_were():
    model, x = _tiny(), _images(3)
    model.train()
    next(model.parameters()).requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a1 = attributions(model, x, torch.tensor([1, 2, 3]), method="smoothgrad", samples=3,
                      seed=7, progress=False)
    assert torch.equal(torch.rand(1), expected)
    a2 = attributions(model, x, torch.tensor([1, 2, 3]), method="smoothgrad", samples=3,
                      seed=7, progress=False)
    a3 = attributions(model, x, torch.tensor([1, 2, 3]), method="smoothgrad", samples=3,
                      seed=8, progress=False)
    assert torch.equal(a1, a2) and not torch.equal(a1, a3)
    assert model.training and [p.requires_grad for p in model.parameters()] == flags


def test_bad_input_is_refused_with_a_clear_error():
    model, x = _tiny(), _images(2)
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="method must be one of"):
        attributions(model, x, y, method="gradcam")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        attributions(model, x[0], y)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attributions(model, x * 3, y)
    with pytest.raises(ValueError, match="shape \\(2,\\)"):
        attributions(model, x, torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="nn.Module"):
        attributions(lambda t: t, x, y)
    with pytest.raises(ValueError, match="does not broadcast"):
        attributions(model, x, y, method="integrated_gradients", baseline=torch.zeros(3, 5))
    with pytest.raises(ValueError, match="steps"):
        attributions(model, x, y, method="integrated_gradients", steps=1)
    with pytest.raises(ValueError, match="images' shape"):
        attribution_alignment(torch.zeros(2, 1, 5, 5), x)
    with pytest.raises(ValueError, match="reference must be one of"):
        attribution_alignment(torch.zeros_like(x), x, reference="saliency")
    with pytest.raises(ValueError, match="methods must name at least one"):
        attribution_maps({"m": model}, x, y, methods=())


def test_edge_map_matches_scipy_sobel():
    ndimage = pytest.importorskip("scipy.ndimage")
    x = _images(3, c=3, size=9, seed=4)
    ref = [np.hypot(ndimage.sobel(g, axis=0, mode="constant"), ndimage.sobel(g, axis=1, mode="constant"))
           for g in x.mean(1).double().numpy()]
    assert np.allclose(edge_map(x).double().numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("correlation", ["spearman", "pearson"])
def test_alignment_is_one_for_the_reference_itself_and_near_zero_for_noise(correlation):
    x = _images(40, size=16, seed=6) * (torch.rand(40, 1, 16, 16) > 0.5)   # some black background
    edges = edge_map(x)[:, None]
    for attr in (edges, -edges, 2 * edges):       # |attr| is compared: sign and scale do not matter
        res = attribution_alignment(attr, x, reference="edges", correlation=correlation, n_boot=200)
        assert res.mean == pytest.approx(1.0, abs=1e-9) and res.n == 40
        assert np.allclose(res.per_image, 1.0)
    mask = object_mask(x, 0.1)[:, None].to(x.dtype)
    res = attribution_alignment(mask, x, reference="mask", correlation=correlation)
    assert res.mean == pytest.approx(1.0, abs=1e-9)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
    res = attribution_alignment(noise, x, correlation=correlation, n_boot=500, seed=1)
    assert abs(res.mean) < 0.1 and res.ci[0] < res.mean < res.ci[1] and res.ci[1] - res.ci[0] < 0.2
    # a constant map has no correlation: NaN for that image, left out of the mean
    noise[0] = 0.0
    res = attribution_alignment(noise, x, correlation=correlation)
    assert np.isnan(res.per_image[0]) and res.n == 39
    assert set(res.to_dict()) >= {"per_image", "mean", "ci", "n", "reference", "correlation"}


def test_robust_models_saliency_follows_the_object_more_than_the_natural_ones(
        nat_model, pgd_at_model, fmnist_test):
    # Tsipras et al. (ICLR 2019): the zoo's PGD-AT input gradients follow the edges of the
    # object; the NAT model's look like noise. On 32 test images the intervals are apart.
    x, y = fmnist_test.x[:32], fmnist_test.y[:32]
    res = {name: attribution_alignment(attributions(m, x, y, progress=False), x)
           for name, m in (("nat", nat_model), ("pgd_at", pgd_at_model))}
    assert res["pgd_at"].ci[0] > res["nat"].ci[1] + 0.1


def test_attribution_maps_and_the_figure():
    models = {"a": _tiny(0), "b": _tiny(1)}
    x, y = _images(3), torch.tensor([0, 1, 2])
    maps = attribution_maps(models, x, y, attack=rv.attacks.FGSM(eps=0.1),
                            methods=("saliency", "integrated_gradients"), steps=4)
    assert maps.kinds == ("clean", "adv") and maps.models == ("a", "b")
    assert maps.get("b", "saliency", "adv").shape == x.shape
    assert (maps.x_adv["a"] - x).abs().max() <= 0.1 + 1e-6
    # the adversarial map is the map of the adversarial image for the label
    assert torch.allclose(maps.get("a", "saliency", "adv"),
                          attributions(models["a"], maps.x_adv["a"], y, progress=False))
    assert maps.alignment("a", "saliency").n == 3
    fig = rv.figures.plot_attributions(maps, images=[0, 2], classes=[str(i) for i in range(10)])
    assert len(fig.axes) == 2 * 2 * (1 + 2 * 2)
    fig = rv.figures.plot_attributions(maps, methods=["integrated_gradients"], absolute=True)
    assert len(fig.axes) == 2 * (1 + 2)
    with pytest.raises(ValueError, match="was not computed"):
        rv.figures.plot_attributions(maps, methods=["smoothgrad"])
    with pytest.raises(ValueError, match="indices"):
        rv.figures.plot_attributions(maps, images=5)
