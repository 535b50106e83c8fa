"""AutoAttack at its authors' settings, cross-checked against their package (pyautoattack,
Croce & Hein's code), the worst case over attacks, seed spread and the evaluation card.

The cross-checks run where the authors' package is installed (a dev extra) and skip with
the reason elsewhere. ``benchmarks/autoattack.py`` makes the same comparison on 500
Fashion-MNIST test images of the zoo's models.
"""
import math
import sys

import pytest
import torch
from torch import nn

import robustviz as rv
from robustviz.attacks import FGSM, PGD, Adaptive, AutoAttack, WorstOf
from robustviz.attacks.autoattack import VERSIONS


def gen(seed):
    return torch.Generator().manual_seed(seed)


class TinyNet(nn.Module):
    """A 4-class linear model on 1x4x4 images: cheap enough for every version."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.lin = nn.Linear(16, 4)

    def forward(self, x):
        return self.lin(x.flatten(1)) * 4


# --------------------------------------------------------------------------- settings
def _reference():
    return pytest.importorskip("pyautoattack", reason="the authors' AutoAttack (pip install "
                                                      "pyautoattack) is not installed")


@pytest.mark.parametrize("version", ["standard", "plus", "rand"])
def test_versions_run_the_authors_settings(version):
    """Attacks, order, iterations, restarts, targets, queries, EOT draws and Square's
    schedule of each version equal those the authors' AutoAttack sets, and the torchattacks
    objects robustviz builds carry them."""
    ref_mod = _reference()
    import torchattacks as ta

    model = TinyNet()
    ref = ref_mod.AutoAttack(model, eps=0.1, norm="Linf", version=version, device="cpu", seed=0)
    names = {"apgd-ce": "APGD-CE", "apgd-dlr": "APGD-DLR", "apgd-t": "APGD-T", "fab": "FAB",
             "fab-t": "FAB-T", "square": "Square"}
    ours = VERSIONS[version]
    assert [c.label for c in ours] == [names[a] for a in ref.attacks_to_run]
    for comp in ours:
        built = comp.build(ta, model, eps=0.1, norm="linf", seed=0, k=10)
        if comp.kind == "apgd":
            assert (built.steps, built.n_restarts, built.loss, built.eot_iter, built.thr_decr) == \
                (ref.apgd.n_iter, ref.apgd.n_restarts, comp.loss, ref.apgd.eot_iter, ref.apgd.thr_decr)
        elif comp.kind == "apgdt":
            assert (built.steps, built.n_restarts, built.n_target_classes, built.thr_decr) == \
                (ref.apgd_targeted.n_iter, ref.apgd_targeted.n_restarts,
                 ref.apgd_targeted.n_target_classes, ref.apgd_targeted.thr_decr)
        elif comp.kind == "fab":
            restarts = 1 if comp.targets else ref.fab.n_restarts      # FAB-T: 1 (the authors' loop)
            assert (built.steps, built.n_restarts, built.alpha_max, built.eta, built.beta) == \
                (ref.fab.n_iter, restarts, ref.fab.alpha_max, ref.fab.eta, ref.fab.beta)
            assert built.multi_targeted == bool(comp.targets)
            if comp.targets:
                assert built.n_target_classes == ref.fab.n_target_classes
        else:
            assert (built.n_queries, built.p_init, built.n_restarts, built.rescale_schedule,
                    built.loss) == (ref.square.n_queries, ref.square.p_init, ref.square.n_restarts,
                                    ref.square.rescale_schedule, ref.square.loss)


def test_fast_is_the_first_two_attacks_of_standard_and_named_so():
    assert VERSIONS["fast"] == VERSIONS["standard"][:2]
    atk = AutoAttack(eps=0.1, version="fast")
    assert rv.attacks.attack_label(atk) == "AutoAttack fast"
    assert "Square" not in atk.backend() and "APGD-T (100 it., 9 targets)" in atk.backend()
    std = AutoAttack(eps=0.1).backend()
    assert "APGD-CE (100 it.)" in std and "Square (5000 queries)" in std


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pgd_at"])
def test_standard_matches_the_authors_code_on_the_same_images(name):
    """AutoAttack standard, robustviz vs the authors' package, on the first 30 test images
    of a digits zoo model at eps 0.1: the same robust examples (at most one differs: the two
    draw their random starts differently) and robust accuracy at or below PGD-20's."""
    ref_mod = _reference()
    torch.manual_seed(0)
    model = rv.zoo.load(name, dataset="digits").eval()
    test = rv.zoo.data("digits", "test")
    x, y = test.x[:30], test.y[:30]   # Square's 5,000 queries per robust image dominate the time
    ref = ref_mod.AutoAttack(model, eps=0.1, norm="Linf", version="standard", device="cpu", seed=0)
    ref.verbose = False
    x_ref, _ = ref.run_standard_evaluation(x, y, batch_size=500)
    out = AutoAttack(eps=0.1).run(model, x, y, generator=gen(0))
    with torch.no_grad():
        r_ref = model(x_ref).argmax(1) == y
        r_rv = model(out.x_adv).argmax(1) == y
        r_pgd = model(PGD(eps=0.1, steps=20)(model, x, y)).argmax(1) == y
    assert int((r_ref != r_rv).sum()) <= 1, (r_ref.float().mean(), r_rv.float().mean())
    assert r_rv.float().mean() <= r_pgd.float().mean()
    assert (out.x_adv - x).abs().max() <= 0.1 + 1e-6 and out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    # the breakdown accounts for every broken example that was correct on the clean input
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    assert int((out.by >= 0).sum()) == int((clean & ~r_rv).sum())
    assert out.components == ("APGD-CE", "APGD-T", "FAB-T", "Square")


# --------------------------------------------------------------------------- backends
def test_torchattacks_runs_where_it_is_installed():
    """The zoo's AutoAttack numbers were measured with torchattacks: where it is importable
    it stays the backend, so those numbers do not move."""
    pytest.importorskip("torchattacks")
    assert AutoAttack(eps=0.1, version="fast").backend().startswith("torchattacks ")


def test_without_torchattacks_the_authors_code_runs_and_gives_their_result(monkeypatch):
    """``pip install "robustviz[all]"`` has no torchattacks (its pin of an old requests
    cannot be resolved beside JupyterLab): AutoAttack then runs the authors' attack classes
    at their settings, names them in the card, and breaks exactly the examples that the
    authors' own ``AutoAttack`` breaks with the same seed and the same attacks."""
    import dataclasses

    from robustviz.attacks import autoattack

    ref_mod = _reference()
    monkeypatch.setitem(sys.modules, "torchattacks", None)       # import torchattacks fails
    # 10 iterations on both sides instead of 100: the same code path at a tenth of the time
    monkeypatch.setitem(autoattack.VERSIONS, "fast", tuple(
        dataclasses.replace(c, iterations=10) for c in autoattack.VERSIONS["fast"]))
    model = TinyNet().eval()
    x, y = torch.rand(24, 1, 4, 4, generator=gen(2)), torch.arange(24) % 4
    atk = AutoAttack(eps=0.15, version="fast")
    assert atk.backend().startswith("the authors' AutoAttack code (pyautoattack ")
    out = atk.run(model, x, y, generator=gen(0))
    assert out.components == ("APGD-CE", "APGD-T")
    assert (out.x_adv - x).abs().max() <= 0.15 + 1e-6 and 0 <= out.x_adv.min() <= out.x_adv.max() <= 1

    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen(0)))   # the seed run() draws
    ref = ref_mod.AutoAttack(model, eps=0.15, norm="Linf", version="custom", device="cpu",
                             seed=seed, attacks=["apgd-ce", "apgd-t"])
    ref.verbose = False
    ref.apgd.n_restarts, ref.apgd_targeted.n_target_classes = 1, 3     # 4 classes: 3 targets
    ref.apgd.n_iter = ref.apgd_targeted.n_iter = 10
    x_ref, _ = ref.run_standard_evaluation(x, y, batch_size=500)
    with torch.no_grad():
        clean = model(x).argmax(1) == y
        r_rv, r_ref = model(out.x_adv).argmax(1) == y, model(x_ref).argmax(1) == y
    assert 0 < int(r_rv.sum()) < int(clean.sum())                  # some broken, some not
    assert torch.equal(r_rv, r_ref)
    assert torch.allclose(out.x_adv[~r_rv & clean], x_ref[~r_ref & clean], atol=1e-6)

    res = rv.evaluate.evaluate(model, (x, y), {"aa": atk}, topk=(1,), progress=False)
    assert "pyautoattack" in res.card()["attacks"]["aa"]["backend"]
    assert "backend: the authors' AutoAttack code" in res.card_text()


# --------------------------------------------------------------------------- bad input
class Probabilities(TinyNet):
    def forward(self, x):
        return torch.softmax(super().forward(x), dim=1)


class Noisy(TinyNet):
    def forward(self, x):
        return super().forward(x + 0.05 * torch.randn_like(x))


def test_a_model_returning_probabilities_is_refused():
    x, y = torch.rand(8, 1, 4, 4, generator=gen(0)), torch.arange(8) % 4
    with pytest.raises(ValueError, match="probabilities"):
        AutoAttack(eps=0.1, version="fast")(Probabilities(), x, y)


def test_a_randomized_model_is_refused_by_the_deterministic_versions(monkeypatch):
    import dataclasses

    from robustviz.attacks import autoattack

    x, y = torch.rand(8, 1, 4, 4, generator=gen(0)), torch.arange(8) % 4
    for version in ("standard", "plus", "fast"):
        with pytest.raises(ValueError, match="version='rand'"):
            AutoAttack(eps=0.1, version=version)(Noisy(), x, y)
    # the EOT version runs (5 iterations instead of 100 here: the plumbing, not the budget)
    monkeypatch.setitem(autoattack.VERSIONS, "rand", tuple(
        dataclasses.replace(c, iterations=5) for c in autoattack.VERSIONS["rand"]))
    assert all(c.eot == 20 for c in autoattack.VERSIONS["rand"])
    out = AutoAttack(eps=0.1, version="rand").run(Noisy(), x, y)
    assert out.components == ("APGD-CE", "APGD-DLR")
    assert (out.x_adv - x).abs().max() <= 0.1 + 1e-6


def test_too_few_classes_for_the_dlr_loss_is_a_clear_error():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with pytest.raises(ValueError, match="at least 4 classes"):
        AutoAttack(eps=0.1)(model, torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0]))


def test_worst_of_refuses_mixed_threat_models_and_targets():
    with pytest.raises(ValueError, match="one threat model"):
        WorstOf(attacks=[PGD(eps=0.1), PGD(eps=0.2)])
    with pytest.raises(ValueError, match="one threat model"):
        WorstOf(attacks=[PGD(eps=0.1), PGD(eps=0.1, norm="l2")])
    with pytest.raises(ValueError, match="targeted"):
        WorstOf(attacks=[PGD(eps=0.1), PGD(eps=0.1, targeted=True)])
    with pytest.raises(ValueError, match="eps-bounded"):
        WorstOf(attacks=[PGD(eps=0.1), rv.attacks.CW(steps=5)])
    with pytest.raises(ValueError, match="at least one"):
        WorstOf(attacks=[])


# --------------------------------------------------------------------------- worst case
def _linear_binary():
    """Two classes separated by the hyperplane w.x = 0.5 on 1x2x2 images: an example at
    Linf distance d = |w.x - 0.5| / ||w||_1 from it is broken exactly when eps >= d."""
    w = torch.tensor([1.0, 1.0, 0.0, 0.0])
    lin = nn.Linear(4, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.stack([-w, w]))
        lin.bias.copy_(torch.tensor([0.5, -0.5]))
    model = nn.Sequential(nn.Flatten(), lin)
    s = torch.linspace(0.02, 0.22, 9)            # w.x = 2 s < 0.5: all of class 0
    x = torch.stack([torch.stack([s, s, torch.zeros(9), torch.zeros(9)], 1)]).reshape(9, 1, 2, 2)
    y = torch.zeros(9, dtype=torch.long)
    return model, x, y, (0.5 - 2 * s) / 2     # 0.23 down to 0.03, none at 0.1


def test_worst_of_is_the_pointwise_minimum_and_says_who_broke_what():
    model, x, y, dist = _linear_binary()
    eps = 0.1
    # FGSM reaches the boundary exactly for a linear model; PGD too. A zero-step PGD does
    # nothing; the worst case is the analytic answer: broken iff distance <= eps
    atk = WorstOf(attacks=[PGD(eps=eps, steps=0, random_start="none"), FGSM(eps=eps),
                           PGD(eps=eps, steps=10)])
    out = atk.run(model, x, y)
    with torch.no_grad():
        robust = model(out.x_adv).argmax(1) == y
    assert torch.equal(robust, dist > eps + 1e-6)
    assert torch.equal(out.by >= 0, ~robust)
    assert set(out.by[~robust].tolist()) == {1}                # FGSM first, PGD-0 never
    res = rv.evaluate.evaluate(model, (x, y), {"pgd0": PGD(eps=eps, steps=0, random_start="none"),
                                                "fgsm": FGSM(eps=eps), "worst": atk},
                               topk=(1,), progress=False)
    assert res.breakdown["worst"] == {"PGD-0": 0, "FGSM": int((~robust).sum()), "PGD-10": 0}
    wc = res.worst_case()
    assert wc.accuracy == int(robust.sum()) / 9
    assert wc.breakdown == {"pgd0": 0, "fgsm": int((~robust).sum()), "worst": 0}
    assert "worst case per example" in res.table()
    with pytest.raises(ValueError, match="unknown"):
        res.worst_case(["nope"])


def test_an_ensemble_inside_evaluate_reports_its_stages(monkeypatch, capsys):
    """evaluate(progress=True) lets an ensemble (WorstOf, AutoAttack) say which stage runs on
    how many still-robust examples; progress=False and a direct call stay silent."""
    model, x, y, dist = _linear_binary()
    atk = WorstOf(attacks=[FGSM(eps=0.1), PGD(eps=0.1, steps=5)])
    monkeypatch.setenv("ROBUSTVIZ_PROGRESS", "lines")
    rv.evaluate.evaluate(model, (x, y), {"worst": atk}, topk=(1,), progress=True)
    err = capsys.readouterr().err
    assert "FGSM on 9 of 9 still robust" in err
    assert f"PGD-5 on {int((dist > 0.1 + 1e-6).sum())} of 9 still robust" in err
    rv.evaluate.evaluate(model, (x, y), {"worst": atk}, topk=(1,), progress=False)
    atk.run(model, x, y)
    assert "stage" not in capsys.readouterr().err


def test_worst_case_refuses_attacks_of_different_radii():
    model, x, y, _ = _linear_binary()
    res = rv.evaluate.evaluate(model, (x, y), {"a": FGSM(eps=0.1), "b": FGSM(eps=0.2)},
                               topk=(1,), progress=False)
    with pytest.raises(ValueError, match="different threat models"):
        res.worst_case()
    assert "worst case" not in res.table()


def test_adaptive_inside_worst_of_keeps_the_threat_model():
    atk = WorstOf(attacks=[Adaptive(attack=PGD(eps=0.1, steps=2)), FGSM(eps=0.1)])
    assert atk.eps == 0.1 and atk.norm == "linf"


# --------------------------------------------------------------------------- seeds, card
def test_seed_spread_reports_mean_range_and_any_seed_worst():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    x, y = torch.rand(64, 1, 4, 4, generator=gen(1)), torch.arange(64) % 4
    atk = {"pgd": PGD(eps=0.15, steps=2, step_size=0.05)}
    res = rv.evaluate.evaluate(model, (x, y), atk, topk=(1,), seeds=3, progress=False)
    sp = res.spread["pgd"]
    singles = [rv.evaluate.evaluate(model, (x, y), atk, topk=(1,), seed=s, progress=False)
               for s in (0, 1, 2)]
    assert sp["seeds"] == [0, 1, 2]
    assert sp["accuracy"] == [r.robust("pgd") for r in singles]
    assert math.isclose(sp["mean"], sum(sp["accuracy"]) / 3)
    assert sp["min"] == min(sp["accuracy"]) and sp["max"] == max(sp["accuracy"])
    both = torch.stack([r.correct_top1("pgd") for r in singles]).all(0).float().mean()
    assert math.isclose(sp["worst"], float(both), rel_tol=1e-6) and sp["worst"] <= sp["min"]
    assert res.robust("pgd") == singles[0].robust("pgd")         # the first seed's run
    assert "over 3 attack seeds" in res.table()
    with pytest.raises(ValueError, match="seeds"):
        rv.evaluate.evaluate(model, (x, y), atk, seeds=0, progress=False)


def test_the_evaluation_card_holds_what_a_reviewer_asks():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    x, y = torch.rand(16, 1, 4, 4, generator=gen(1)), torch.arange(16) % 4
    res = rv.evaluate.evaluate(model, (x, y), {"pgd": PGD(eps=8 / 255, steps=3, restarts=2),
                                               "aa": AutoAttack(eps=8 / 255, version="fast")},
                               topk=(1,), seeds=1, selection="the first 16, unshuffled",
                               progress=False)
    card = res.card()
    assert card["threat_model"] == [{"norm": "linf", "eps": 8 / 255, "eps_x255": 8.0}]
    assert card["attacks"]["pgd"]["steps"] == 3 and card["attacks"]["pgd"]["restarts"] == 2
    assert card["attacks"]["aa"]["version"] == "fast"
    assert "torchattacks" in card["attacks"]["aa"]["backend"]
    assert card["attacks"]["pgd"]["precision"] == "fp32"
    assert card["n"] == 16 and card["selection"] == "the first 16, unshuffled"
    assert card["seeds"] == [0] and "Wilson" in card["interval"]
    assert card["device"].startswith("CPU") and card["versions"]["torch"] == torch.__version__
    text = res.card_text()
    assert "8/255" in text and "AutoAttack fast" in text and "seeds: [0]" in text
    assert res.to_dict()["card"] == card


# --------------------------------------------------------------------------- masking flags
class Quantised(TinyNet):
    """Rounds the pixels to {0, 0.5, 1} first: zero input gradients everywhere, while a
    perturbation of 0.25 still moves pixels across a rounding threshold."""

    def forward(self, x):
        return super().forward(torch.round(x * 2) / 2)


class OptimisesAtInference(TinyNet):
    """Takes one gradient step on its own input inside the forward pass."""

    def forward(self, x):
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            energy = self.lin(z.flatten(1)).logsumexp(1).sum()
            (g,) = torch.autograd.grad(energy, z)
        return super().forward(x + 0.01 * g.sign())


NEW_FLAGS = {"randomized", "probabilities", "zero_gradients", "square_vs_whitebox", "dynamic"}


@pytest.mark.parametrize("model, flag", [(Noisy(), "randomized"), (Probabilities(), "probabilities"),
                                         (Quantised(), "zero_gradients"),
                                         (Quantised(), "square_vs_whitebox"),
                                         (OptimisesAtInference(), "dynamic")],
                         ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_each_autoattack_flag_is_raised_on_the_model_built_to_raise_it(model, flag):
    x = torch.rand(64, 1, 4, 4, generator=gen(2))
    with torch.no_grad():
        y = TinyNet()(x).argmax(1)                       # labels the models get right
    rep = rv.evaluate.gradient_masking_report(model.eval(), (x, y), eps=0.25, steps=5,
                                              more_steps=10, square_queries=300, progress=False)
    assert flag in rep.flags, rep.table()
    assert {c.name for c in rep.checks} >= NEW_FLAGS
    if flag in ("randomized", "probabilities", "dynamic"):
        assert not ({"zero_gradients", "square_vs_whitebox"} & set(rep.flags)) or flag != "dynamic"


def test_no_autoattack_flag_on_a_plain_model():
    model = TinyNet().eval()
    x = torch.rand(64, 1, 4, 4, generator=gen(2))
    with torch.no_grad():
        y = model(x).argmax(1)
    rep = rv.evaluate.gradient_masking_report(model, (x, y), eps=0.25, steps=5, more_steps=10,
                                              square_queries=300, progress=False)
    assert not (NEW_FLAGS & set(rep.flags)), rep.table()


@pytest.mark.slow
def test_no_autoattack_flag_on_the_zoo_pgd_at():
    model = rv.zoo.load("pgd_at")
    test = rv.zoo.eval_subset("fashion-mnist", 100, seed=0)
    rep = rv.evaluate.gradient_masking_report(model, test, eps=0.1, steps=10, more_steps=20,
                                              square_queries=500, progress=False)
    assert not (NEW_FLAGS & set(rep.flags)), rep.table()
    assert rep["square_vs_whitebox"].values["square"] >= rep["square_vs_whitebox"].values["pgd"] - 0.02
