"""Robust contrastive pretraining (papers 002 and 003) and finetuning."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import robustviz as rv
from robustviz.data import frequency_split, match_images, simclr_augment
from robustviz.defenses import ClusterFit, NTXent, build, cluster_fit, nt_xent
from robustviz.models import bn_branch, select_branch, separate_bn
from robustviz.train import PretrainConfig, Trainer, load_encoder, prepare_finetune

ROOT = Path(__file__).resolve().parents[1]


def _tiny(seed=0, size=12, channels=1, classes=4):
    return rv.models.build("tinycnn", num_classes=classes, in_channels=channels, input_size=(size, size),
                           width=4, hidden=16, seed=seed)


class _BNNet(nn.Module):
    """A 1-conv BN net with a linear head (taps: penultimate, logits)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.classifier = nn.Linear(3, 2)

    def forward(self, x):
        return self.classifier(self.flat(self.pool(torch.relu(self.bn(self.conv(x))))))


# ------------------------------------------------------------------------------ views
def test_hfc_plus_lfc_reconstructs_the_image():
    x = torch.rand(3, 2, 16, 12, generator=torch.Generator().manual_seed(0))
    lfc, hfc = frequency_split(x, radius=4)
    torch.testing.assert_close(lfc + hfc, x, atol=1e-6, rtol=0)
    assert lfc.shape == x.shape and hfc.dtype == x.dtype
    # radius 0 keeps every frequency in the HFC; a constant image is all DC (LFC)
    _, hfc0 = frequency_split(x, radius=0)
    torch.testing.assert_close(hfc0, x, atol=1e-6, rtol=0)
    const = torch.full((1, 1, 8, 8), 0.3)
    lfc_c, hfc_c = frequency_split(const, radius=1)
    assert hfc_c.abs().max() < 1e-6 and torch.allclose(lfc_c, const, atol=1e-6)
    # the HFC of a smooth ramp is small next to that of a checkerboard
    ramp = torch.linspace(0, 1, 16).expand(1, 1, 16, 16).contiguous()
    checker = ((torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2).float().expand(1, 1, 16, 16)
    assert frequency_split(ramp, 4)[1].pow(2).mean() < 0.1 * frequency_split(checker, 4)[1].pow(2).mean()


def test_simclr_augment_range_determinism_and_gray_images():
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    a = simclr_augment(x, generator=5)
    b = simclr_augment(x, generator=5)
    assert torch.equal(a, b) and a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, simclr_augment(x, generator=6))
    # identity crop, no flip, no jitter, no grayscale: the image itself
    same = simclr_augment(x, generator=0, crop_scale=(1, 1), crop_ratio=(1, 1), flip=0.0, jitter_p=0.0, gray_p=0.0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    # one channel: saturation, hue and grayscale do nothing
    g = torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    colour_only = simclr_augment(g, generator=0, crop_scale=(1, 1), crop_ratio=(1, 1), flip=0.0,
                                 jitter=(0, 0, 0.4, 0.1), jitter_p=1.0, gray_p=1.0)
    torch.testing.assert_close(colour_only, g, atol=1e-5, rtol=0)
    # brightness does act on one channel
    bright = simclr_augment(g, generator=0, crop_scale=(1, 1), crop_ratio=(1, 1), flip=0.0,
                            jitter=(0.4, 0, 0, 0), jitter_p=1.0, gray_p=0.0)
    assert not torch.allclose(bright, g, atol=1e-3)
    # grayscale p 1 on RGB: all three channels equal
    gray = simclr_augment(x, generator=0, jitter_p=0.0, gray_p=1.0)
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    with pytest.raises(ValueError):
        simclr_augment(x, generator=0, crop_scale=(0.5, 0.2))


def test_match_images_for_transfer():
    ds = rv.data.load("digits", "test")
    m = match_images(ds, channels=3, size=(16, 16))
    assert m.x.shape == (len(ds), 3, 16, 16) and torch.equal(m.y, ds.y)
    assert m.x.min() >= 0 and m.x.max() <= 1
    assert match_images(ds, channels=1, size=(8, 8)) is ds


# ------------------------------------------------------------------------------ NT-Xent
def _nt_xent_by_hand(views, tau):
    z = [v / v.norm(dim=1, keepdim=True) for v in views]
    V, B = len(z), z[0].shape[0]
    rows = [(vi, b) for vi in range(V) for b in range(B)]
    total = 0.0
    for (vi, b) in rows:
        zi = z[vi][b]
        denom = sum(math.exp(float(zi @ z[vj][c]) / tau) for (vj, c) in rows if (vj, c) != (vi, b))
        pos = [(vj, b) for vj in range(V) if vj != vi]
        total += -sum(math.log(math.exp(float(zi @ z[vj][b]) / tau) / denom) for vj, b in pos) / len(pos)
    return total / len(rows)


def test_nt_xent_matches_formula_and_is_scale_invariant():
    v1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    v2 = torch.tensor([[0.9, 0.1], [0.2, 1.0], [-1.0, 1.0]])
    v3 = torch.tensor([[1.0, -0.5], [0.0, 2.0], [0.5, 0.5]])
    for views, tau in (([v1, v2], 0.5), ([v1, v2, v3], 0.2)):
        expected = _nt_xent_by_hand(views, tau)
        assert float(nt_xent(views, tau=tau)) == pytest.approx(expected, rel=1e-5)
    # two identical orthogonal views, tau 1: closed form -log(e / (e + 4 * e^0))
    e = torch.eye(3)
    closed = -math.log(math.e / (math.e + 4.0))
    assert float(nt_xent([e, e], tau=1.0)) == pytest.approx(closed, rel=1e-6)
    # invariant to the scale of each embedding
    scale = torch.tensor([[3.0], [0.01], [250.0]])
    assert float(nt_xent([v1 * scale, v2 * 7.0], tau=0.5)) == pytest.approx(float(nt_xent([v1, v2], tau=0.5)),
                                                                            rel=1e-5)
    # base temperature: the released AdvCL code's factor tau / base_tau
    assert float(nt_xent([v1, v2], tau=0.5, base_tau=0.07)) == pytest.approx(
        float(nt_xent([v1, v2], tau=0.5)) * 0.5 / 0.07, rel=1e-6)
    with pytest.raises(ValueError):
        nt_xent([v1], tau=0.5)


def test_class_ids_turn_nt_xent_into_supcon():
    from robustviz.defenses import supcon_loss, supcon_masks

    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 6, 5, generator=g)
    y = torch.tensor([0, 1, 0, 2, 1, 0])
    pos, neg = supcon_masks(torch.cat([y, y]), torch.cat([y, y]), "global")
    ref = supcon_loss(z.reshape(12, 5), pos, neg, tau=0.3)
    assert float(nt_xent(z, tau=0.3, ids=y)) == pytest.approx(float(ref), rel=1e-6)


# ------------------------------------------------------------------------------ terms
def test_adversarial_views_are_in_the_ball_and_raise_the_loss():
    model = _tiny()
    x = torch.rand(8, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 4, (8,), generator=torch.Generator().manual_seed(1))
    seen = {}
    import robustviz.defenses._pretrain as pre
    orig = pre._feature_attack

    def spy(ctx, model_, x_start, fn, **kw):
        out = orig(ctx, model_, x_start, fn, **kw)
        with torch.no_grad():
            z0 = pre._embed(ctx, x_start, None, kw["layer"], None)
            z1 = pre._embed(ctx, out, None, kw["layer"], None)
        seen.update(x=x_start, adv=out, before=float(fn(z0)), after=float(fn(z1)))
        return out

    pre._feature_attack = spy
    try:
        term = NTXent(views=("aug1", "aug2", "adv"), eps=0.1, step_size=0.05, steps=5, head="none")
        loss, logs = term(model, x, y, generator=torch.Generator().manual_seed(0))
    finally:
        pre._feature_attack = orig
    d = seen["adv"] - seen["x"]
    assert d.abs().max() <= 0.1 + 1e-6 and seen["adv"].min() >= 0 and seen["adv"].max() <= 1
    assert seen["after"] > seen["before"]
    assert torch.isfinite(loss) and loss.requires_grad


def test_presets_round_trip_and_one_step():
    model = _tiny()
    x = torch.rand(6, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    for spec in ({"name": "ntxent"}, {"name": "ntxent", "views": ["adv1", "adv2"], "eps": 0.1, "steps": 1},
                 {"name": "advcl", "hfc": False, "eps": 0.1, "steps": 1},
                 {"name": "ascl_pretrain", "eps": 0.1, "steps": 1}):
        d = build(spec)
        assert build(d.config()).config() == d.config()
        d.prepare(model, x)
        loss, logs = d(model, x, y, attack_bn="train", generator=torch.Generator().manual_seed(0))
        loss.backward()
        assert math.isfinite(logs["loss"])
        assert any(p.grad is not None for p in d.parameters())    # the projection head is trained
    with pytest.raises(ValueError):
        build({"name": "ntxent", "views": ["aug1"]})
    with pytest.raises(ValueError):
        build({"name": "advcl", "lambda": 1.0})


def test_label_free_terms_ignore_labels():
    model = _tiny()
    x = torch.rand(6, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    d = build({"name": "advcl", "eps": 0.1, "steps": 2})
    d.prepare(model, x)
    a, _ = d(model, x, torch.zeros(6, dtype=torch.long), generator=torch.Generator().manual_seed(3))
    b, _ = d(model, x, torch.tensor([3, 1, 2, 0, 1, 2]), generator=torch.Generator().manual_seed(3))
    assert float(a.detach()) == float(b.detach())


# ------------------------------------------------------------------------------ ClusterFit
def test_kmeans_pseudo_labels_reproducible_and_assigned(tmp_path):
    model = _tiny()
    x = torch.rand(60, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    a = cluster_fit(model, x, ks=(2, 5), seed=3)
    b = cluster_fit(model, x, ks=(2, 5), seed=3)
    for k in (2, 5):
        assert torch.equal(a.labels[k], b.labels[k])
        assert a.labels[k].shape == (60,) and int(a.labels[k].max()) < k
        # the pseudo-label of a training image is its K-means label (nearest centre)
        assert (a.assign(x)[k] == a.labels[k]).float().mean() == 1.0
    # cached in a run directory and read back (the encoder is reloaded from its run)
    run = tmp_path / "enc"
    rv.runs.save_run(run, model, {"model": model.build_kwargs})
    a.source = str(run)
    path = a.save(run / "clusterfit.safetensors")
    c = ClusterFit.load(path)
    assert c.ks == (2, 5) and torch.equal(c.labels[5], a.labels[5])
    assert torch.equal(c.assign(x)[5], a.labels[5])


# ------------------------------------------------------------------------------ separate BN
def test_separate_bn_branches_keep_separate_running_statistics():
    net = separate_bn(_BNNet(), ("clean", "adv_cl", "adv_ce"))
    ref = _BNNet()
    ref.load_state_dict({k.replace("bns.clean.", ""): v for k, v in net.state_dict().items()
                         if "adv_" not in k})
    xa = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    xb = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(1)) * 3 + 1
    net.train()
    ref.train()
    with bn_branch(net, "clean"):
        net(xa)
    with bn_branch(net, "adv_cl"):
        net(xb)
    ref(xa)
    bns = net.bn.bns
    assert torch.allclose(bns["clean"].running_mean, ref.bn.running_mean)
    assert not torch.allclose(bns["clean"].running_mean, bns["adv_cl"].running_mean)
    assert torch.equal(bns["adv_ce"].running_mean, torch.zeros(3))      # never used
    assert net.bn.active == "adv_ce"                                     # restored default
    folded = select_branch(net, "adv_cl")
    assert isinstance(folded.bn, nn.BatchNorm2d)
    assert torch.equal(folded.bn.running_mean, bns["adv_cl"].running_mean)
    with pytest.raises(ValueError):
        with bn_branch(separate_bn(_BNNet()), "nope"):
            pass


# ------------------------------------------------------------------------------ finetuning
def _bn_encoder():
    return rv.models.build("resnet20", num_classes=3, in_channels=1, input_size=(8, 8), depth=8, width=4, seed=0)


def test_frozen_encoder_is_bit_identical_after_slf():
    enc = _bn_encoder()
    model = prepare_finetune(enc, "slf", num_classes=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    data = rv.data.Dataset(torch.rand(48, 1, 8, 8, generator=g), torch.randint(0, 3, (48,), generator=g),
                           ["a", "b", "c"])
    Trainer(epochs=2, batch_size=16, lr=0.5, val_attack=None, progress=False).fit(model, data)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"classifier.weight", "classifier.bias"}


def test_full_finetune_changes_encoder_and_alf_keeps_it():
    enc = _bn_encoder()
    g = torch.Generator().manual_seed(0)
    data = rv.data.Dataset(torch.rand(32, 1, 8, 8, generator=g), torch.randint(0, 3, (32,), generator=g),
                           ["a", "b", "c"])
    full = prepare_finetune(enc, "full")
    before = {k: v.clone() for k, v in full.state_dict().items()}
    Trainer(epochs=1, batch_size=16, lr=0.1, val_attack=None, progress=False).fit(full, data)
    assert sum(not torch.equal(before[k], v) for k, v in full.state_dict().items()) > 2
    alf = prepare_finetune(enc, "alf")
    before = {k: v.clone() for k, v in alf.state_dict().items()}
    Trainer(defense={"name": "trades", "eps": 0.1, "step_size": 0.05, "steps": 2}, epochs=1, batch_size=16,
            lr=0.1, val_attack=None, progress=False).fit(alf, data)
    changed = {k for k, v in alf.state_dict().items() if not torch.equal(before[k], v)}
    assert changed == {"classifier.weight", "classifier.bias"}


class _ScaledHead(nn.Module):
    """The head sees ``c * x.flatten(1)``: E||z||^2 = c^2 E||x||^2 exactly."""

    def __init__(self, c, d):
        super().__init__()
        self.c = c
        self.classifier = nn.Linear(d, 2)

    def forward(self, x):
        return self.classifier(self.c * x.flatten(1))


def test_head_input_scale_and_lr_check():
    from robustviz.train import check_head_lr, head_input_scale

    x = torch.rand(40, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    model = _ScaledHead(3.0, 9).train()
    want = float((3 * x.flatten(1)).pow(2).sum(1).mean())
    assert head_input_scale(model, x) == pytest.approx(want, rel=1e-6)
    assert model.training                                  # the mode is restored
    assert head_input_scale(model, x, batch_size=10) == pytest.approx(
        float((3 * x[:10].flatten(1)).pow(2).sum(1).mean()), rel=1e-6)
    # a SimCLR-like scale at the paper's lr 0.1, momentum 0.9 is fine; 20x larger features
    # (the robust encoders at teaching scale) are flagged with an lr that restores the step
    assert check_head_lr(92.0, 0.1, 0.9) is None
    msg = check_head_lr(1862.0, 0.1, 0.9)
    assert msg and "1862" in msg and "0.0054" in msg
    assert check_head_lr(1862.0, 0.0054, 0.9) is None
    with pytest.raises(ValueError, match="no 'head'"):
        head_input_scale(model, x, head="head")


# ------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("name", ["paper002_resnet18_advcl.yaml", "paper002_resnet18_simclr.yaml",
                                  "paper003_resnet18_ascl_pretrain.yaml"])
def test_paper_config_runs_one_step_on_cpu(name, tmp_path):
    cfg = PretrainConfig.load(ROOT / "configs" / name)
    tc = cfg.train
    assert tc.paper in ("002", "003") and tc.model["name"] == "resnet18"
    model = rv.models.build(**{"num_classes": 10, "in_channels": 3, **tc.model})
    if cfg.pretrain["separate_bn"]:
        separate_bn(model, cfg.pretrain["separate_bn"])
    spec = dict(tc.defense)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g)
    y = torch.tensor([0, 1, 2, 3])
    if spec["name"] == "advcl":       # a tiny ClusterFit cache stands in for the SimCLR run's
        src = tmp_path / "simclr"
        enc = _tiny(size=32, channels=3)
        rv.runs.save_run(src, enc, {"model": enc.build_kwargs})
        fit = cluster_fit(enc, torch.rand(8, 3, 32, 32, generator=g), ks=(2, 3), source=str(src))
        spec["clusterfit"] = str(fit.save(tmp_path / "clusterfit.safetensors"))
    defense = build(spec)
    trainer = tc.trainer(defense=defense, epochs=1, progress=False)
    trainer._check_options()
    defense.prepare(model, x)
    opt = torch.optim.SGD(list(model.parameters()) + list(defense.parameters()), lr=0.01)
    model.train()
    loss, logs = defense(model, x, y, attack_bn=trainer.attack_bn, bf16=False, generator=g)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert math.isfinite(logs["loss"])


def test_teach_configs_load():
    for path in sorted((ROOT / "configs" / "teach").glob("pretrain_*.yaml")):
        cfg = PretrainConfig.load(path)
        assert cfg.train.data["name"] == "fashion-mnist"
        d = build(dict(cfg.train.defense))
        assert build(d.config()).config() == d.config()
    with pytest.raises(ValueError):
        PretrainConfig.from_dict({"data": {"name": "digits"}, "pretrain": {"bogus": 1}})


# ------------------------------------------------------------------------------ CLI
def test_cli_pretrain_then_finetune_with_lineage(tmp_path, capsys):
    from robustviz.cli import main

    cfgs = ROOT / "configs" / "teach"
    simclr, advcl, slf = tmp_path / "simclr", tmp_path / "advcl", tmp_path / "advcl_slf"
    common = ["--dataset", "digits", "--n-train", "120", "--epochs", "1", "--no-progress", "--device", "cpu"]
    assert main(["pretrain", "--config", str(cfgs / "pretrain_simclr.yaml"), "--out", str(simclr), *common]) == 0
    assert main(["pretrain", "--config", str(cfgs / "pretrain_advcl.yaml"), "--out", str(advcl),
                 "--clusterfit-from", str(simclr), *common]) == 0
    assert (advcl / "clusterfit.safetensors").is_file()
    assert main(["finetune", "--encoder", str(advcl), "--mode", "slf", "--out", str(slf), "--epochs", "1",
                 "--n-test", "60", "--no-progress", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "finetune: slf" in out and "PGD-20" in out
    cfg = json.loads((slf / "config.json").read_text())
    assert cfg["finetune"]["encoder"] == str(advcl) and cfg["finetune"]["mode"] == "slf"
    final = [r for r in rv.runs.read_metrics(slf) if r.get("kind") == "final"][-1]
    assert 0 <= final["pgd20_acc"] <= final["clean_acc"] <= 1
    # the finetuned model is a plain run: load_run rebuilds it
    run = rv.runs.load_run(slf)
    assert run.model.num_classes == 10
    # the encoder's weights are untouched by SLF
    enc = load_encoder(advcl)
    for k, v in enc.state_dict().items():
        if not k.startswith("classifier"):
            assert torch.equal(v, run.model.state_dict()[k])
    # ALF on the same encoder, then the report section: lineage, SLF/ALF table, separability
    alf = tmp_path / "advcl_alf"
    assert main(["finetune", "--encoder", str(advcl), "--mode", "alf", "--out", str(alf), "--epochs", "1",
                 "--n-test", "60", "--no-progress", "--device", "cpu"]) == 0
    from robustviz._report_pretrain import pretrain_section

    sec = pretrain_section([slf, alf, advcl, tmp_path / "missing"])
    assert set(sec) == {"title", "text", "tables", "figures"}
    assert str(simclr) in sec["text"] and "AdvCL" in sec["text"]
    main_rows = sec["tables"][0]["rows"]
    assert [r[2] for r in main_rows] == ["SLF", "ALF"]
    assert main_rows[0][4] == f"{100 * final['clean_acc']:.1f}"
    assert len(sec["tables"]) == 2 and sec["tables"][1]["rows"][0][0] == "AdvCL"
    assert len(sec["figures"]) == 1


def test_cli_cross_dataset_transfer(tmp_path, capsys):
    """Pretrain on digits (8x8), finetune on Fashion-MNIST resized to the encoder's 8x8."""
    from robustviz.cli import main

    if not rv.data.available("fashion-mnist"):
        pytest.skip("Fashion-MNIST is not installed")
    enc = tmp_path / "simclr_digits"
    assert main(["pretrain", "--config", str(ROOT / "configs" / "teach" / "pretrain_simclr.yaml"), "--out", str(enc),
                 "--dataset", "digits", "--n-train", "100", "--epochs", "1", "--no-progress", "--device", "cpu"]) == 0
    out = tmp_path / "slf_fashion"
    assert main(["finetune", "--encoder", str(enc), "--mode", "slf", "--dataset", "fashion-mnist", "--n-train", "200",
                 "--n-test", "50", "--epochs", "1", "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["finetune"]["transfer"] is True and cfg["data"]["name"] == "fashion-mnist"
    assert cfg["model"]["input_size"] in ([8, 8], (8, 8))
    assert "finetune: slf" in capsys.readouterr().out


def test_load_encoder_folds_the_finetune_branch(tmp_path):
    enc = separate_bn(_bn_encoder())
    with torch.no_grad():                     # make the branches differ
        for m in enc.modules():
            if isinstance(m, rv.models.BranchBatchNorm):
                m.bns["adv_cl"].running_mean.fill_(0.5)
    rv.runs.save_run(tmp_path, enc, {"model": enc.build_kwargs,
                                     "pretrain": {"separate_bn": ["clean", "adv_cl", "adv_ce"],
                                                  "finetune_branch": "adv_cl"}})
    plain = load_encoder(tmp_path)
    bns = [m for m in plain.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(torch.all(m.running_mean == 0.5) for m in bns)
    assert not any(isinstance(m, rv.models.BranchBatchNorm) for m in plain.modules())
    other = load_encoder(tmp_path, branch="clean")
    assert all(torch.all(m.running_mean == 0) for m in other.modules() if isinstance(m, nn.BatchNorm2d))


# ------------------------------------------------------------------- issue 24: paper fidelity
def _supcon_released(views, tau, base_tau):
    """SupCon of Khosla et al. with instance ids (SimCLR), the form AdvCL's released code
    calls: -(tau / base_tau) * mean over the V*B anchors of log(exp(s_ip/tau) / sum_{a!=i}
    exp(s_ia/tau)), one positive set per anchor (the other views of its image)."""
    z = torch.nn.functional.normalize(torch.cat(views), dim=1)
    v, b = len(views), views[0].shape[0]
    logits = z @ z.t() / tau
    ids = torch.arange(b).repeat(v)
    eye = torch.eye(v * b, dtype=torch.bool)
    pos = (ids[:, None] == ids[None, :]) & ~eye
    logits = logits.masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    mean_pos = (log_prob.masked_fill(~pos, 0.0)).sum(1) / pos.sum(1)
    return -(tau / base_tau) * mean_pos.mean()


def test_advcl_base_tau_reproduces_released_supcon_and_docstring_factor():
    """Items 2 and 11: base_tau=0.07 is the released code's SupConLoss(temperature=0.5)
    (base temperature 0.07), 7.1 times the paper's NT-Xent; the docstring says 7.1, not 36."""
    from robustviz.defenses import AdvCL

    g = torch.Generator().manual_seed(0)
    views = [torch.randn(5, 8, generator=g) for _ in range(4)]
    released = _supcon_released(views, 0.5, 0.07)
    assert float(nt_xent(views, tau=0.5, base_tau=0.07)) == pytest.approx(float(released), rel=1e-5)
    assert float(nt_xent(views, tau=0.5)) == pytest.approx(float(released) * 0.07 / 0.5, rel=1e-5)
    doc = " ".join(AdvCL.__doc__.split())
    assert "36 times" not in doc and "7.1 times" in doc and round(0.5 / 0.07, 1) == 7.1
    assert "crafts ``delta_ce`` on the joint loss" not in doc and "inside the CE term" in doc
    cfg = PretrainConfig.load(ROOT / "configs" / "paper002_resnet18_advcl.yaml")
    assert cfg.train.defense["base_tau"] is None and "base_tau 0.07" in cfg.train.notes


def test_paper002_slf_recipe_is_the_released_code():
    """Item 1: AdvCL's released SLF: lr 0.01, 25 epochs, lr / 10 after epochs 15 and 20
    (adjust_lr on epoch - 1 >= 15, >= 20), RandomCrop(32, 4) + flip, SGD momentum 0.9, wd 2e-4,
    batch 512."""
    from robustviz.train import Schedule

    released = [0.01 * (0.1 if e - 1 >= 15 else 1) * (0.1 if e - 1 >= 20 else 1) for e in range(1, 26)]
    for name in ("paper002_resnet18_advcl.yaml", "paper002_resnet18_simclr.yaml",
                 "paper002_transfer_cifar100.yaml", "paper002_transfer_stl10.yaml"):
        import yaml
        fin = yaml.safe_load((ROOT / "configs" / name).read_text())["finetune"]
        assert (fin["lr"], fin["epochs"], fin["momentum"], fin["weight_decay"], fin["batch_size"]) == \
            (0.01, 25, 0.9, 2e-4, 512), name
        assert fin["augment"] == ["crop", "flip"] and fin["schedule"] == "piecewise"
        sched = Schedule("piecewise", fin["lr"], fin["epochs"], 3, tuple(fin["milestones"]), fin.get("gamma", 0.1))
        got = [sched(3 * (e - 1) + 1) for e in range(1, 26)]
        assert got == pytest.approx(released, rel=1e-9), name


def test_finetune_cli_passes_augment_and_head_init(tmp_path, monkeypatch):
    """Items 6 and 8: finetune.augment reaches the Trainer; finetune.head_init reaches the head."""
    from robustviz.cli import pretrain_cmd
    from robustviz.train import _finetune

    seen = {}
    real = _finetune.prepare_finetune

    def spy_prepare(*a, **k):
        seen["head_init"] = k.get("head_init")
        return real(*a, **k)

    class Stop(Exception):
        pass

    def spy_fit(self, *a, **k):
        seen["augment"] = self.augment
        raise Stop

    enc = _tiny(size=8)
    rv.runs.save_run(tmp_path / "enc", enc, {"model": enc.build_kwargs, "data": {"name": "digits", "n": 40}})
    cfg = tmp_path / "ft.yaml"
    cfg.write_text("finetune: {mode: slf, epochs: 1, augment: [crop, flip], head_init: zero}\n")
    monkeypatch.setattr("robustviz.train.prepare_finetune", spy_prepare)
    monkeypatch.setattr(Trainer, "fit", spy_fit)
    args = type("A", (), dict(encoder=str(tmp_path / "enc"), mode=None, out=str(tmp_path / "out"), config=str(cfg),
                              dataset=None, n_train=40, n_test=None, aa_n=None, branch=None, epochs=None, lr=None,
                              device="cpu", no_progress=True))()
    with pytest.raises(Stop):
        pretrain_cmd.run_finetune(args)
    assert seen == {"head_init": "zero", "augment": ("crop", "flip")}


def test_paper002_pretraining_epochs_and_finetuning_losses():
    """Items 3 and 4: 1,000 pretraining epochs (released code; the paper is silent); paper
    002's ALF/AFF minimise the worst-case CE (PGD-AT); paper 003 keeps TRADES."""
    cfg = PretrainConfig.load(ROOT / "configs" / "paper002_resnet18_advcl.yaml")
    t = cfg.train.train
    assert (t["epochs"], t["lr"], t["weight_decay"], t["batch_size"], t["schedule"], t["warmup_epochs"]) == \
        (1000, 0.5, 1e-4, 512, "cosine", 10)
    assert cfg.finetune["defense"]["name"] == "pgd_at"
    for name in ("paper002_resnet18_simclr.yaml", "paper002_transfer_cifar100.yaml", "paper002_transfer_stl10.yaml"):
        import yaml
        assert yaml.safe_load((ROOT / "configs" / name).read_text())["finetune"]["defense"]["name"] == "pgd_at"
    c3 = PretrainConfig.load(ROOT / "configs" / "paper003_resnet18_ascl_pretrain.yaml")
    assert c3.finetune["defense"]["name"] == "trades"


def _record_attacks(monkeypatch):
    from robustviz.defenses import _pretrain as pre   # where NTXent and ViewSupCon look it up

    starts = []
    real = pre._feature_attack

    def spy(ctx, model, x_start, fn, **kw):
        starts.append(x_start.detach().clone())
        return real(ctx, model, x_start, fn, **kw)

    monkeypatch.setattr(pre, "_feature_attack", spy)
    return starts


def test_ascl_pretrain_cl_perturbs_both_views(monkeypatch):
    """Item 5: paper 003's eq. 5 attacks both augmented views of L_CL (x~_i + delta_i,
    x~_j + delta_j); cl_adv_views=1 keeps the one-view form."""
    from robustviz.defenses import ASCLPretrain

    model, b = _tiny(), 4
    x = torch.rand(b, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3])
    d = ASCLPretrain(eps=0.1, steps=1)
    assert d.terms[1].views == ("adv1", "adv2") and d.config()["cl_adv_views"] == 2
    d.prepare(model, x)
    starts = _record_attacks(monkeypatch)
    d(model, x, y, generator=torch.Generator().manual_seed(0))
    assert [s.shape[0] for s in starts] == [2 * b, b]      # L_CL: both views; L_ASCL: x
    one = ASCLPretrain(eps=0.1, steps=1, cl_adv_views=1)
    assert one.terms[1].views == ("aug1", "adv2")
    assert build(d.config()).config() == d.config()
    with pytest.raises(ValueError):
        ASCLPretrain(cl_adv_views=3)


def test_advcl_crop_flip_x_shared_by_both_attacks_and_hfc(monkeypatch):
    """Item 6: with x_crop_flip the contrastive and the ClusterFit attacks start from the same
    RandomCrop(padding 4) + flip of x (the released code's images_org) and x_HFC is its HFC."""
    from types import SimpleNamespace

    from robustviz.defenses import _pretrain_views as pv

    x = torch.rand(6, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    ctx = SimpleNamespace(x=x, cache={}, generator=torch.Generator().manual_seed(5))
    v = pv.step_views(ctx, ["hfc_cf", "x_cf", "hfc"])
    want = pv.crop_flip(x, torch.Generator().manual_seed(5))
    assert torch.equal(v["x_cf"], want) and not torch.equal(v["x_cf"], x)
    assert torch.allclose(v["hfc_cf"], frequency_split(want, 8.0)[1])
    assert torch.allclose(v["hfc"], frequency_split(x, 8.0)[1])
    starts = _record_attacks(monkeypatch)
    model = _tiny()
    for flag in (True, False):
        t = NTXent(views=("aug1", "adv"), head="none", eps=0.1, steps=1, x_crop_flip=flag)
        t(model, x, torch.zeros(6, dtype=torch.long), generator=torch.Generator().manual_seed(2))
    assert not torch.equal(starts[0], x) and torch.equal(starts[1], x)
    assert ((starts[0] == 0).float().mean() > (x == 0).float().mean())   # the crop's zero border


def test_advcl_clean_views_get_their_own_batch_statistics(monkeypatch):
    """Item 7: AdvCL's released code runs t1(x), t2(x) and x_HFC through the model one view
    at a time (own BatchNorm batch statistics); view_batches='joint' keeps one batch."""
    from robustviz.defenses import AdvCL
    from robustviz.defenses import _pretrain as pre   # NTXent looks _embed up there
    from robustviz.defenses import _pretrain_views as pv

    model = _BNNet()
    x = torch.rand(5, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    rows = []
    real = pre._embed
    monkeypatch.setattr(pre, "_embed", lambda ctx, xi, *a: (rows.append(xi.shape[0]), real(ctx, xi, *a))[1])
    d = AdvCL(eps=0.0, head="none")
    assert d.view_batches == "per_view" and d.terms[0].view_batches == "per_view"
    model.train()
    loss, _ = d(model, x, torch.zeros(5, dtype=torch.long), attack_bn="train", generator=torch.Generator().manual_seed(1))
    assert rows == [5, 5, 5, 5]                 # aug1, aug2, hfc, then the adversarial view
    # the per-view loss is NT-Xent of features each normalised with its own batch statistics
    views = pv.step_views(type("C", (), {"x": x, "cache": {}, "generator": torch.Generator().manual_seed(1)})(),
                           ["aug1", "aug2", "hfc"])
    feats = {}
    handle = model.pool.register_forward_hook(lambda m, i, o: feats.__setitem__("z", o.flatten(1)))
    z = {}
    for k in ("aug1", "aug2", "hfc", "x"):
        model(views[k] if k != "x" else x)
        z[k] = feats["z"]
    handle.remove()
    want = nt_xent([z["aug1"], z["aug2"], z["x"], z["hfc"]], tau=0.5)
    assert float(loss) == pytest.approx(float(want), rel=1e-4)
    rows.clear()
    AdvCL(eps=0.0, head="none", view_batches="joint")(model, x, torch.zeros(5, dtype=torch.long),
                                                       generator=torch.Generator().manual_seed(1))
    assert rows == [15, 5]


def test_paper003_linear_head_zero_init_constant_lr():
    """Item 8: paper 003 (Sec. 4): the linear head starts at zero and trains 10 epochs at a
    constant lr 0.1."""
    enc = _bn_encoder()
    m = prepare_finetune(enc, "alf", num_classes=3, head_init="zero")
    assert m.classifier.weight.abs().sum() == 0 and m.classifier.bias.abs().sum() == 0
    d = prepare_finetune(enc, "alf", num_classes=3)
    assert d.classifier.weight.abs().sum() > 0
    with pytest.raises(ValueError):
        prepare_finetune(enc, "alf", head_init="kaiming")
    c3 = PretrainConfig.load(ROOT / "configs" / "paper003_resnet18_ascl_pretrain.yaml")
    f = c3.finetune
    assert (f["head_init"], f["schedule"], f["lr"], f["epochs"]) == ("zero", "constant", 0.1, 10)
    assert c3.train.train["augment"] == ["crop", "flip"] and c3.train.defense["cl_adv_views"] == 2


def test_paper002_clusterfit_source_and_projection_head():
    """Items 9 and 10: the config says the pseudo-labels come from a CIFAR-10 SimCLR where the
    paper's Table 1 used an ImageNet SimCLR ensemble; the projection head is the released
    Linear - BN - ReLU - Linear(128)."""
    cfg = PretrainConfig.load(ROOT / "configs" / "paper002_resnet18_advcl.yaml")
    notes = " ".join(cfg.train.notes.split())
    assert "ImageNet" in notes and "Table 5" in notes
    spec = cfg.train.defense
    assert (spec["head"], spec["view_batches"], spec["x_crop_flip"]) == ("mlp_bn", "per_view", True)
    term = NTXent(head="mlp_bn", head_dim=128)
    term.prepare(_tiny(), torch.rand(2, 1, 12, 12))
    kinds = [type(m).__name__ for m in term.projection]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear"] and term.projection[-1].out_features == 128


def test_paper_tables_script_dry_run_and_table(tmp_path, capsys):
    """scripts/paper_tables.py: --dry-run checks every config and command of the paper rows
    and prints the paper's numbers; a finished run's final record lands beside them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("paper_tables", ROOT / "scripts" / "paper_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "80.85 / -" in out and "50.45 / -" in out and "42.57 / -" in out and "53.09 / -" in out
    run = tmp_path / "paper002_advcl_slf"
    run.mkdir()
    rv.runs.append_metrics(run, {"kind": "final", "clean_acc": 0.8, "pgd20_acc": 0.5, "aa_acc": 0.42})
    assert mod.measured(run) == pytest.approx({"clean_acc": 80.0, "pgd20_acc": 50.0, "aa_acc": 42.0})
    assert "80.85 / 80.00" in mod.table({"advcl_slf": (mod.ROWS["advcl_slf"]["paper"], mod.measured(run))})
