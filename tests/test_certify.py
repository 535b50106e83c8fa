"""Certified robustness: bounds that hold (soundness first), analytic answers, and the
randomized-smoothing certificate against its closed form."""
import math

import pytest
import torch
from torch import nn

import robustviz as rv
from robustviz.certify import crown_bounds, interval_bounds, margin_spec
from robustviz.models import Normalize


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(Normalize(0.4, 0.3), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(6 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 5)).eval()


def _extremes(model, x, eps, steps=30):
    """Logits reached by PGD maximising and minimising each logit inside the box."""
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    reached = []
    for k in range(5):
        for sign in (1.0, -1.0):
            z = ((lo + hi) / 2).clone()
            for _ in range(steps):
                z.requires_grad_(True)
                (g,) = torch.autograd.grad((sign * model(z)[:, k]).sum(), z)
                z = torch.minimum(torch.maximum(z.detach() + eps / 4 * g.sign(), lo), hi)
            with torch.no_grad():
                reached.append(model(z))
    return torch.stack(reached, 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bounds_contain_random_points_and_pgd_and_crown_is_never_looser(seed):
    model = _net(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(6, 1, 8, 8, generator=g)
    eps = 0.05
    li, ui = interval_bounds(model, x, eps)
    lc, uc = crown_bounds(model, x, eps)
    pts = (x.unsqueeze(1) + eps * (2 * torch.rand(6, 1000, 1, 8, 8, generator=g) - 1)).clamp(0, 1)
    with torch.no_grad():
        z = model(pts.flatten(0, 1)).view(6, 1000, 5)
    z = torch.cat([z, _extremes(model, x, eps)], 1)
    for lo, hi in ((li, ui), (lc, uc)):
        assert (z >= lo.unsqueeze(1) - 1e-5).all() and (z <= hi.unsqueeze(1) + 1e-5).all()
    assert (lc >= li - 1e-6).all() and (uc <= ui + 1e-6).all()
    assert (uc - lc).mean() < 0.8 * (ui - li).mean()        # and strictly tighter on average


def test_a_linear_model_gets_exact_bounds_from_both():
    torch.manual_seed(0)
    lin = nn.Linear(16, 3)
    model = nn.Sequential(nn.Flatten(), lin).eval()
    x = 0.25 + 0.5 * torch.rand(4, 1, 4, 4)                       # the box stays inside [0, 1]
    eps = 0.1
    with torch.no_grad():
        centre = model(x)
    exact = eps * lin.weight.abs().sum(1)                          # eps * ||w_k||_1
    for fn in (interval_bounds, crown_bounds):
        lo, hi = fn(model, x, eps)
        torch.testing.assert_close(lo, centre - exact, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(hi, centre + exact, atol=1e-5, rtol=1e-5)


def test_margin_spec_rows():
    y = torch.tensor([2, 0])
    spec = margin_spec(y, 4)
    assert spec.shape == (2, 3, 4)
    assert torch.equal(spec[0], torch.tensor([[-1., 0, 1, 0], [0, -1, 1, 0], [0, 0, 1, -1]]))
    assert (spec.sum(-1) == 0).all()


def test_no_certified_example_is_broken_by_the_attack_on_a_zoo_model():
    model = rv.zoo.load("pgd_at", "digits")
    test = rv.zoo.data("digits", "test", n=32)
    eps = 0.02
    res = rv.certify.certify(model, test, [eps, 0.1], method="crown", progress=False)
    assert res.accuracy(0.1) <= res.accuracy(eps) <= float(res.clean.float().mean())
    x_adv = rv.attacks.PGD(eps=eps, steps=20, restarts=2)(model, test.x, test.y)
    with torch.no_grad():
        robust = model(x_adv).argmax(1) == test.y
    cert = res.certified[eps]
    assert cert.any(), "nothing certified: the test would not test anything"
    assert not (cert & ~robust).any()
    ibp = rv.certify.certify(model, test, eps, method="ibp", progress=False)
    assert not (ibp.certified[eps] & ~cert).any()                  # CROWN certifies all IBP does
    assert set(res.to_dict()) == {"method", "n", "clean", "certified", "seconds"}


def test_a_residual_model_is_refused_with_the_reason():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.ReLU()

        def forward(self, x):
            return x.flatten(1) + self.b(self.a(x.flatten(1)))

    with pytest.raises(ValueError, match="not the chain of its layers"):
        interval_bounds(Res(), torch.rand(2, 1, 2, 2), 0.1)
    with pytest.raises(ValueError, match="supports chains"):
        interval_bounds(nn.Sequential(nn.Flatten(), nn.Tanh()), torch.rand(2, 1, 2, 2), 0.1)
    with pytest.raises(ValueError, match="eps"):
        interval_bounds(_net(0), torch.rand(2, 1, 8, 8), -0.1)


# --------------------------------------------------------------------------- smoothing
class _Constant(nn.Module):
    def forward(self, x):
        out = torch.zeros(x.shape[0], 3)
        out[:, 1] = 1.0
        return out


class _Halfplane(nn.Module):
    """Class 1 where w.x > b: under N(0, s^2 I) noise, P(class 1) = Phi((w.x - b) / (s ||w||))
    and the exact L2 distance to the boundary is |w.x - b| / ||w||."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x):
        s = x.flatten(1) @ self.w - self.b
        return torch.stack([-s, s], 1)


def test_smoothing_radius_is_the_closed_form_on_a_constant_classifier():
    sm = rv.certify.Smooth(sigma=0.5, n0=10, n=200, alpha=0.001)
    res = sm.certify(_Constant(), torch.rand(3, 1, 2, 2))
    p_low = 0.001 ** (1 / 200)                                    # Clopper-Pearson, k = n
    from scipy.stats import norm

    assert (res.prediction == 1).all()
    torch.testing.assert_close(res.p_lower, torch.full((3,), p_low, dtype=res.p_lower.dtype))
    torch.testing.assert_close(res.radius, torch.full((3,), 0.5 * norm.ppf(p_low), dtype=res.radius.dtype))


def test_smoothing_abstains_on_a_coin_and_never_exceeds_the_true_radius():
    w = torch.tensor([1.0, 0.0, 0.0, 0.0])
    sm = rv.certify.Smooth(sigma=0.25, n0=50, n=2000, alpha=0.001, seed=1)
    coin = sm.certify(_Halfplane(w, 0.5), torch.full((2, 1, 2, 2), 0.5))   # on the boundary
    assert (coin.prediction == rv.certify.ABSTAIN).all() and (coin.radius == 0).all()
    assert (coin.p_lower <= 0.5).all()
    assert (sm.predict(_Halfplane(w, 0.5), torch.full((2, 1, 2, 2), 0.5)) == rv.certify.ABSTAIN).all()
    x = torch.zeros(4, 1, 2, 2)
    x[:, 0, 0, 0] = torch.tensor([0.6, 0.7, 0.8, 0.9])
    res = sm.certify(_Halfplane(w, 0.5), x)
    true = x[:, 0, 0, 0] - 0.5
    assert (res.prediction == 1).all()
    assert (res.radius <= true + 1e-6).all()                      # sound
    assert (res.radius >= true - 0.1).all()                       # and not far below
    assert res.certified_accuracy(torch.ones(4, dtype=torch.long), 0.2) == 0.5
    assert (sm.predict(_Halfplane(w, 0.5), x) == 1).all()


def test_smoothing_refuses_bad_parameters():
    for kw in ({"sigma": 0}, {"sigma": 0.1, "alpha": 0.7}, {"sigma": 0.1, "n": 0}):
        with pytest.raises((ValueError, TypeError)):
            rv.certify.Smooth(**kw)


def test_compare_and_the_certified_vs_empirical_figure():
    from matplotlib.figure import Figure

    model = rv.zoo.load("pgd_at", "digits")
    test = rv.zoo.data("digits", "test", n=16)
    res = rv.certify.compare(model, test, [0, 0.02, 0.05], attack_steps=5, progress=False)
    assert res["eps"] == [0.0, 0.02, 0.05] and set(res["certified"]) == {"IBP", "CROWN"}
    pgd = res["empirical"]["PGD-5"]
    for name, acc in res["certified"].items():
        assert all(c <= p + 1e-9 for c, p in zip(acc, pgd)), name   # a certificate never beats the attack
    assert res["certified"]["CROWN"][0] == pgd[0]                     # at eps 0: the clean accuracy
    fig = rv.figures.plot_certified_vs_empirical(res)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.lines) == 3 and len(ax.collections) == 1             # the shaded gap
    with pytest.raises(ValueError, match="eps"):
        rv.figures.plot_certified_vs_empirical({"empirical": {}})
