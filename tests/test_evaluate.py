"""Tests of robustviz.evaluate (accuracy tables, curves, transfer, gradient-masking report)
and of the ``robustviz evaluate`` command, on small models trained on scikit-learn digits."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import top_k_accuracy_score
from torch import nn

from robustviz import data, models, runs
from robustviz.attacks import FGSM, PGD, DeepFool, Linf
from robustviz.cli import main as cli_main
from robustviz.evaluate import (DEFAULT_EPS, accuracy_vs_eps, accuracy_vs_steps, adversarial_sweep,
                                evaluate, gradient_masking_report, transfer, transfer_matrix)

EPS = 0.1


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: one intra-op thread is faster and avoids oversubscribing the cores
    under pytest-xdist (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def train_digits(seed: int, *, quantise: bool = False, epochs: int = 30):
    """tinycnn on the 8x8 digits (1438 train images), full-batch-ish Adam; about a second."""
    train = data.load("digits", "train")
    model = models.build("tinycnn", num_classes=10, in_channels=1, input_size=8, width=8,
                         hidden=32, mean=train.mean, std=train.std, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(train), generator=g)
        for i in range(0, len(train), 128):
            idx = perm[i:i + 128]
            x = quantised(train.x[idx]) if quantise else train.x[idx]
            loss = F.cross_entropy(model(x), train.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def quantised(x):
    return torch.round(x * 4) / 4


class Quantised(nn.Module):
    """Masks gradients: rounds the input to quarter steps (torch.round has zero gradient)
    before a network trained on rounded inputs."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.num_classes = net.num_classes

    def forward(self, x):
        return self.net(quantised(x))


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "test")


@pytest.fixture(scope="module")
def model():
    return train_digits(0)


@pytest.fixture(scope="module")
def model_b():
    return train_digits(1)


# --------------------------------------------------------------------------- evaluate
def test_evaluate_clean_topk_matches_sklearn(model, digits):
    res = evaluate(model, digits, topk=(1, 3, 5), progress=False)
    with torch.no_grad():
        scores = model(digits.x).numpy()
    for k in (1, 3, 5):
        ref = top_k_accuracy_score(digits.y.numpy(), scores, k=k, labels=list(range(10)))
        assert res.clean[k] == pytest.approx(ref, abs=1e-9)
    assert res.clean[1] > 0.85                                # the model learned something
    assert res.n == len(digits) and res.topk == (1, 3, 5)


def test_evaluate_attacks_properties(model, digits):
    atks = {"fgsm": FGSM(eps=EPS), "pgd10": PGD(eps=EPS, steps=10),
            "pgd10es": PGD(eps=EPS, steps=10, early_stop=True)}
    model.train()                                             # mode must come back
    res = evaluate(model, digits, atks, topk=(1, 3), batch_size=100, progress=False)
    assert model.training
    model.eval()
    for name in ("clean", *atks):
        c = res.correct[name]
        assert c.shape == (len(digits), 2) and c.dtype == torch.bool
        assert res.accuracy[name][1] == pytest.approx(c[:, 0].float().mean().item())
        assert res.accuracy[name][1] <= res.accuracy[name][3]   # top-1 <= top-3
        assert bool((c <= res.correct["clean"]).all())            # robust => clean correct
    assert res.robust("pgd10") <= res.robust("fgsm") < res.clean[1]
    # early stopping changes only the time, example by example (same seed = same starts)
    assert torch.equal(res.correct_top1("pgd10"), res.correct_top1("pgd10es"))
    assert res.perturbation["pgd10"]["linf_max"] <= EPS + 1e-6
    # the table and the dict say the same
    table = res.table()
    for name in ("clean", "fgsm", "pgd10"):
        assert name in table
    assert f"{100 * res.robust('pgd10'):.1f}" in table
    assert f"{100 * res.robust('pgd10es', 3):.1f}*" in table and "lenient" in table
    d = json.loads(json.dumps(res.to_dict()))
    assert d["accuracy"]["pgd10"]["top1"] == res.robust("pgd10")
    assert d["attacks"]["pgd10"]["steps"] == 10 and "correct" not in d
    full = res.to_dict(per_example=True)
    assert full["correct"]["fgsm"] == res.correct["fgsm"].tolist()


def test_evaluate_is_reproducible_and_batch_size_free_for_deterministic_attacks(model, digits):
    atks = {"pgd": PGD(eps=EPS, steps=3), "df": DeepFool(steps=10)}
    a = evaluate(model, digits, atks, topk=1, seed=3, progress=False)
    b = evaluate(model, digits, atks, topk=1, seed=3, progress=False)
    assert a.accuracy == b.accuracy and torch.equal(a.correct["pgd"], b.correct["pgd"])
    c = evaluate(model, digits, {"df": DeepFool(steps=10)}, topk=1, batch_size=37, progress=False)
    assert torch.equal(c.correct["df"], a.correct["df"])
    assert c.correct["df"].float().mean() < 0.05              # minimal attack: nearly all broken


def test_evaluate_keeps_adversarial_images_that_give_its_numbers(model, digits):
    from robustviz.diagnostics import attacked_features

    atks = {"fgsm": FGSM(eps=EPS), "pgd": PGD(eps=EPS, steps=5)}
    res = evaluate(model, digits, atks, topk=1, keep_adv="pgd", progress=False)
    assert set(res.adv) == {"pgd"} and "adv" not in res.to_dict()
    xa = res.adv["pgd"]
    assert xa.shape == digits.x.shape and xa.device.type == "cpu"
    assert float((xa - digits.x).abs().max()) <= EPS + 1e-6
    assert 0 <= float(xa.min()) and float(xa.max()) <= 1
    with torch.no_grad():
        ok = (model(xa).argmax(1) == digits.y) & res.correct_top1("clean")
    assert torch.equal(ok, res.correct_top1("pgd"))            # these images made the number
    # the same images through the diagnostics: no second attack, same adversarial logits
    f = attacked_features(model, digits, x_adv=xa)
    with torch.no_grad():
        assert torch.allclose(f.logits_adv, model(xa), atol=1e-5)
    assert f.robust_acc == pytest.approx(res.robust("pgd"))
    assert set(evaluate(model, digits, atks, topk=1, keep_adv=True, progress=False).adv) == set(atks)
    with pytest.raises(ValueError, match="keep_adv"):
        evaluate(model, digits, atks, keep_adv=["cw"], progress=False)
    with pytest.raises(ValueError, match="not both"):
        attacked_features(model, digits, atks["pgd"], x_adv=xa)
    with pytest.raises(ValueError, match="shape"):
        attacked_features(model, digits, x_adv=xa[:5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attacked_features(model, digits, x_adv=xa + 2)


def test_evaluate_accepts_tensor_pairs_and_rejects_bad_input(model, digits):
    res = evaluate(model, (digits.x[:50], digits.y[:50]), topk=(1,), progress=False)
    assert res.n == 50
    with pytest.raises(ValueError, match="topk"):
        evaluate(model, digits, topk=(1, 11), progress=False)
    with pytest.raises(TypeError, match="Attack"):
        evaluate(model, digits, {"x": lambda m, x, y: x}, progress=False)
    with pytest.raises(ValueError, match="clean"):
        evaluate(model, digits, {"clean": FGSM(eps=0.1)}, progress=False)
    with pytest.raises(TypeError, match="data"):
        evaluate(model, digits.x, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate(model, (digits.x * 2, digits.y), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(model, digits, batch_size=0, progress=False)


# --------------------------------------------------------------------------- curves
def test_adversarial_sweep_yields_points_in_the_ball(model, digits):
    sub = digits.subset(torch.arange(120))
    values = [0.0, 0.05, 0.2]
    points = list(adversarial_sweep(model, sub, lambda e: None if e == 0 else PGD(eps=e, steps=5),
                                    values, batch_size=50, progress=False))
    assert [p.value for p in points] == values
    assert points[0].attack is None and torch.equal(points[0].x_adv, sub.x)
    for p in points:
        assert p.x_adv.shape == sub.x.shape and p.correct.shape == (120,)
        assert bool(Linf(p.value).contains(p.x_adv, sub.x).all())
        assert p.accuracy == pytest.approx(p.correct.float().mean().item())
        with torch.no_grad():
            direct = (model(p.x_adv).argmax(1) == sub.y) & points[0].correct
        assert torch.equal(direct, p.correct)
    assert points[0].accuracy > points[1].accuracy > points[2].accuracy
    with pytest.raises(TypeError, match="Attack"):
        next(adversarial_sweep(model, sub, lambda e: "pgd", [0.1], progress=False))


def test_accuracy_vs_eps_and_steps_curves(model, digits):
    sub = digits.subset(torch.arange(150))
    curve = accuracy_vs_eps(model, sub, eps=[0, 0.05, 0.1, 0.2, 0.4], steps=5, progress=False)
    clean = evaluate(model, sub, topk=1, progress=False).clean[1]
    assert curve.parameter == "eps" and curve.values == (0, 0.05, 0.1, 0.2, 0.4)
    assert curve.accuracy[0] == pytest.approx(clean)
    assert all(b <= a + 1e-9 for a, b in zip(curve.accuracy, curve.accuracy[1:]))
    assert curve.accuracy[-1] < 0.05
    assert json.loads(json.dumps(curve.to_dict()))["accuracy"] == list(curve.accuracy)
    assert "eps" in curve.table()
    # steps: same step size and starts, so the curve can only go down, exactly
    steps = accuracy_vs_steps(model, sub, steps=(0, 1, 3, 10), eps=EPS, progress=False)
    assert steps.accuracy[0] == pytest.approx(clean)
    assert all(b <= a for a, b in zip(steps.accuracy, steps.accuracy[1:]))
    assert steps.accuracy[-1] < steps.accuracy[1]
    assert len(DEFAULT_EPS) == 9 and DEFAULT_EPS[-1] == pytest.approx(32 / 255)


# --------------------------------------------------------------------------- transfer
def test_transfer_and_matrix(model, model_b, digits):
    sub = digits.subset(torch.arange(150))
    atk = PGD(eps=EPS, steps=5)
    self_tr = transfer(model, model, sub, atk, progress=False)
    assert self_tr.transfer == self_tr.white_box                # same examples, same model
    tr = transfer(model, model_b, sub, atk, progress=False)
    white_b = evaluate(model_b, sub, {"a": atk}, topk=1, progress=False)
    assert tr.white_box == pytest.approx(self_tr.white_box)
    assert tr.target_clean == pytest.approx(white_b.clean[1])
    assert white_b.robust("a") <= tr.transfer <= tr.target_clean  # white-box is stronger
    mat = transfer_matrix({"a": model, "b": model_b}, sub, atk, progress=False)
    assert mat.names == ("a", "b")
    assert mat.accuracy[0][1] == pytest.approx(tr.transfer)
    assert mat.accuracy[1][1] == pytest.approx(white_b.robust("a"))   # diagonal = white-box
    assert mat.accuracy[0][0] == pytest.approx(tr.white_box)
    assert mat.clean[1] == pytest.approx(tr.target_clean)
    d = json.loads(json.dumps(mat.to_dict()))
    assert d["accuracy"] == [list(r) for r in mat.accuracy]
    assert "source" in mat.table()
    with pytest.raises(TypeError, match="models"):
        transfer_matrix({}, sub, atk)


# --------------------------------------------------------------------------- masking
@pytest.mark.slow
def test_gradient_masking_report_flags_a_masked_model_and_not_a_normal_one(model, digits):
    sub = digits.subset(torch.arange(200))
    kw = dict(eps=EPS, steps=10, more_steps=30, progress=False)
    normal = gradient_masking_report(model, sub, surrogate=train_digits(2, epochs=15), **kw)
    assert not normal.flagged, normal.table()
    assert set(c.name for c in normal.checks) == {"eps_curve", "more_steps", "fgsm_vs_pgd", "transfer",
                                                  "randomized", "probabilities", "zero_gradients",
                                                  "square_vs_whitebox", "dynamic"}

    net = train_digits(3, quantise=True)
    masked = Quantised(net).eval()
    rep = gradient_masking_report(masked, sub, surrogate=net, **kw)
    assert rep.flagged, rep.table()
    assert "eps_curve" in rep.flags and "transfer" in rep.flags
    assert rep["eps_curve"].values["accuracy"][-1] > 0.1
    assert "FLAG" in rep.table() and json.loads(json.dumps(rep.to_dict()))["flagged"] is True
    with pytest.raises(ValueError, match="more_steps"):
        gradient_masking_report(model, sub, eps=EPS, steps=10, more_steps=10)


# --------------------------------------------------------------------------- CLI
def test_cli_evaluate_prints_and_appends_to_metrics(model, digits, tmp_path, capsys):
    run_dir = tmp_path / "run"
    runs.save_run(run_dir, model, {"model": model.build_kwargs, "data": {"name": "digits"}})
    rc = cli_main(["evaluate", str(run_dir), "--attack", "pgd", "fgsm", "--eps", "0.1",
                   "--steps", "5", "--n", "100", "--topk", "1", "3", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "pgd5" in out and "fgsm" in out and "top-3" in out
    recs = runs.read_metrics(run_dir, kind="evaluation")
    assert len(recs) == 1
    rec = recs[0]
    test = digits.subset(data.stratified_indices(digits.y, 100, seed=0))
    ref = evaluate(model, test, {"pgd5": PGD(eps=0.1, steps=5),
                                 "fgsm": FGSM(eps=0.1)}, topk=(1, 3), progress=False)
    assert rec["n"] == 100 and rec["eps"] == 0.1
    assert rec["accuracy"]["pgd5"]["top1"] == pytest.approx(ref.robust("pgd5"))
    assert rec["accuracy"]["clean"]["top3"] == pytest.approx(ref.clean[3])
    assert rec["table"].splitlines()[0].startswith("accuracy")
    # a bad option is one clear error, before any work
    rc = cli_main(["evaluate", str(run_dir), "--attack", "fgsm", "--norm", "l2", "--no-progress"])
    assert rc == 2 and "fgsm" in capsys.readouterr().err
    assert cli_main(["evaluate", str(tmp_path / "missing"), "--no-progress"]) == 2


def test_cli_compare_tables_finished_runs_and_checks_the_gain(model, tmp_path, capsys):
    """compare reads the records only: gains are differences of the stored accuracies."""
    cfg = {"model": model.build_kwargs, "data": {"name": "digits"}}

    def make(name, defense, clean, robust, minutes):
        d = tmp_path / name
        runs.save_run(d, model, {**cfg, "defense": {"name": defense}})
        for e in (1, 2):
            runs.append_metrics(d, {"kind": "epoch", "epoch": e, "time_s": 30.0 * minutes})
        runs.append_metrics(d, {"kind": "final", "clean_acc": clean, "pgd20_acc": robust,
                                "eps": 0.1, "n": 2000})
        return str(d)

    nat = make("nat", "nat", 0.90, 0.05, 1.0)
    at = make("at", "pgd_at", 0.80, 0.60, 4.0)
    weak = make("weak", "trades", 0.85, 0.30, 2.0)
    ev = tmp_path / "evaluated"               # only a `robustviz evaluate` record
    runs.save_run(ev, model, {**cfg, "defense": {"name": "mart"}})
    runs.append_metrics(ev, {"kind": "evaluation", "n": 500, "eps": 0.1,
                             "accuracy": {"clean": {"top1": 0.7}, "pgd20": {"top1": 0.5}}})
    assert cli_main(["compare", nat, at, str(ev)]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln.split() for ln in out.splitlines()[2:] if ln.strip()}
    assert lines["at"][-1] == "+55.0" and lines["at"][-4] == "80.0" and lines["at"][3] == "4.0"
    assert lines["evaluated"][-1] == "+45.0" and lines["evaluated"][-3] == "pgd20"
    assert lines["nat"][-1] == "+0.0"
    assert cli_main(["compare", nat, at, weak, "--min-gain", "40"]) == 1
    assert "below the 40-point robust gain: weak" in capsys.readouterr().out
    assert cli_main(["compare", nat, at, "--min-gain", "40"]) == 0
    assert "every adversarial defense gains at least 40" in capsys.readouterr().out
    assert cli_main(["compare", at, "--reference", weak, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows["reference"] == "weak" and rows["rows"][0]["robust"] == 0.60
    ra = make("ra", "ancra", 0.75, 0.45, 6.0)         # an adaptive final record
    runs.append_metrics(ra, {"kind": "final", "clean_acc": 0.75, "pgd20_acc": 0.44, "eps": 0.1,
                             "n": 2000, "adaptive": True, "pgd20_model_only_acc": 0.73})
    assert cli_main(["compare", nat, ra]) == 0
    out = capsys.readouterr().out
    assert "pgd20 adaptive" in out and "+39.0" in out and "73.0% (masked gradients)" in out
    assert cli_main(["compare", str(tmp_path / "missing")]) == 2
    assert cli_main(["compare", at, "--min-gain", "40"]) == 2     # no nat run to compare with


def test_cli_evaluate_attacks_a_reverse_attention_model_through_its_surrogate(model, tmp_path, capsys):
    """A reverse-attention model (test-time class = argmax of the auxiliary head) masks
    PGD's gradient; the CLI attacks its surrogate too unless --no-adaptive."""
    ra = models.build(**{**model.build_kwargs, "reverse_attention": True})
    ra.model.load_state_dict(model.state_dict())
    run_dir = tmp_path / "ra"
    runs.save_run(run_dir, ra.eval(), {"model": ra.build_kwargs, "data": {"name": "digits"}})
    args = ["evaluate", str(run_dir), "--attack", "pgd", "--eps", "0.1", "--steps", "10",
            "--n", "200", "--topk", "1", "--no-progress"]
    assert cli_main(args + ["--no-adaptive"]) == 0
    assert cli_main(args) == 0
    assert "differentiable surrogate" in capsys.readouterr().out
    plain, adaptive = runs.read_metrics(run_dir, kind="evaluation")
    assert plain["adaptive"] is False and adaptive["adaptive"] is True
    assert adaptive["attacks"]["pgd10"]["attack"] == "Adaptive(PGD)"
    p, a = plain["accuracy"]["pgd10"]["top1"], adaptive["accuracy"]["pgd10"]["top1"]
    assert a < p, (a, p)
    assert plain["accuracy"]["clean"] == adaptive["accuracy"]["clean"]


def test_minimal_perturbation_attacks_are_reported_apart():
    """DeepFool (no eps) is scored by success rate and median norm, and by accuracy when only
    flips within the threat model's eps count, not in the eps-bounded accuracy column."""
    from torch import nn as _nn

    from robustviz.attacks import PGD, DeepFool
    from robustviz.evaluate import evaluate as _evaluate

    torch.manual_seed(0)
    model = _nn.Sequential(_nn.Flatten(), _nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 1.0, 0.0, 0.0], [-1.0, -1.0, 0.0, 0.0]]))
        model[1].bias.copy_(torch.tensor([-1.0, 1.0]))    # boundary: x0 + x1 = 1
    x = torch.rand(64, 1, 2, 2) * 0.5 + 0.25
    y = model(x).argmax(1)                         # every clean prediction is right
    assert 0 < int(y.sum()) < 64
    res = _evaluate(model, (x, y), {"pgd": PGD(eps=0.05, steps=10), "deepfool": DeepFool()},
                    topk=(1,), progress=False)
    m = res.minimal["deepfool"]
    assert set(res.minimal) == {"deepfool"} and m["eps"] == 0.05 and m["norm"] == "linf"
    assert m["success_rate"] == pytest.approx(1.0)
    # linear model: the minimal L2 flip is |f0 - f1| / ||w0 - w1|| (times 1 + overshoot)
    logit_gap = 2 * (x.reshape(64, -1)[:, :2].sum(1) - 1)    # f0 - f1 = 2 (x0 + x1 - 1)
    dist = logit_gap.abs() / torch.tensor(8.0).sqrt()        # ||w0 - w1|| = sqrt(8)
    assert m["l2_median"] == pytest.approx(float(dist.median()) * 1.02, rel=0.05)
    # accuracy at eps: examples whose flip needs an Linf step above eps stay correct
    linf_needed = dist / (2 ** 0.5) * 1.02                   # L2 step spread over 2 pixels
    expected = float((linf_needed > 0.05).float().mean())
    assert m["acc_at_eps"] == pytest.approx(expected, abs=2 / 64)
    assert m["acc_at_eps"] >= res.accuracy["pgd"][1] - 2 / 64   # PGD finds the in-ball flips
    table = res.table()
    main, extra = table.split("minimal-perturbation attacks")
    assert "deepfool" not in main and "pgd" in main
    assert "deepfool" in extra and "acc at eps %" in extra and "(linf 0.05)" in extra
    assert res.to_dict()["minimal"]["deepfool"]["success_rate"] == pytest.approx(1.0)
    # without a bounded attack and no eps, accuracy at eps is unknown
    alone = _evaluate(model, (x, y), {"deepfool": DeepFool()}, topk=(1,), progress=False)
    assert alone.minimal["deepfool"]["acc_at_eps"] is None
    given = _evaluate(model, (x, y), {"deepfool": DeepFool()}, topk=(1,), eps=10.0,
                      norm="l2", progress=False)
    assert given.minimal["deepfool"]["acc_at_eps"] == 0.0     # every flip is within 10
