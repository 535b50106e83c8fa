"""Widgets driven as plain objects: set controls, check the numbers they show."""
import types

import numpy as np
import pytest
import torch

import robustviz as rv

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")
EPS = 0.1


@pytest.fixture(scope="module")
def explorer(nat_model, fmnist_test):
    # fp32 attacks, so the numbers equal an independent fp32 computation exactly
    return rv.widgets.LatentExplorer(nat_model, fmnist_test, n_map=300, n_adv=60, eps=EPS,
                                     steps=5, tsne_iter=200, bf16=False)


def test_explorer_rdiv_and_accuracy_match_the_diagnostics(explorer, nat_model):
    v = explorer.set(attack="PGD", eps=EPS, steps=5)
    sub = (explorer.x[:explorer.n_adv], explorer.y[:explorer.n_adv])
    f = rv.diagnostics.attacked_features(nat_model, sub, rv.attacks.PGD(eps=EPS, steps=5), seed=0)
    d = rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y)
    assert v.rdiv == pytest.approx(d.rdiv, rel=1e-5)
    assert v.robust_acc == pytest.approx(f.robust_acc)
    assert v.clean_acc == pytest.approx(f.clean_acc)
    assert v.robust_acc <= v.clean_acc
    assert v.adv_coords.shape == (explorer.n_adv, 2)
    assert v.clean_coords.shape == (300, 2)


def test_explorer_eps_moves_the_points_but_not_the_map(explorer):
    v0 = explorer.set(eps=0.0)
    # no attack: R-DIV is the clean-only one and the points land next to themselves
    assert v0.robust_acc == v0.clean_acc
    spread = np.linalg.norm(v0.clean_coords - v0.clean_coords.mean(0), axis=1).mean()
    moved0 = np.linalg.norm(v0.adv_coords - v0.clean_coords[:explorer.n_adv], axis=1)
    assert np.median(moved0) < 0.25 * spread
    v2 = explorer.set(eps=2 * EPS)
    np.testing.assert_array_equal(v2.clean_coords, v0.clean_coords)  # fitted once
    moved2 = np.linalg.norm(v2.adv_coords - v2.clean_coords[:explorer.n_adv], axis=1)
    assert np.median(moved2) > np.median(moved0)
    assert v2.rdiv > v0.rdiv
    assert v2.robust_acc < v0.robust_acc
    # a revisited setting comes from the cache, unchanged
    first = explorer.latency_s
    assert explorer.set(eps=0.0) is v0
    assert explorer.latency_s < first


def test_explorer_selection_shows_the_attacked_image_and_predictions(explorer, nat_model):
    explorer.set(eps=EPS, attack="FGSM")
    explorer.selected = 4
    sel = explorer.selection
    x, x_adv = sel["x"], sel["x_adv"]
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    with torch.no_grad():
        p = nat_model(torch.stack([x, x_adv])).softmax(-1)
    assert sel["pred_nat"] == explorer.class_names[int(p[0].argmax())]
    assert sel["pred_adv"] == explorer.class_names[int(p[1].argmax())]
    assert sel["conf_adv"] == pytest.approx(float(p[1].max()), abs=1e-5)
    assert explorer.selection_png()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="selected"):
        explorer.selected = explorer.n_adv
    explorer.selected = None
    assert explorer.selection is None


def test_explorer_controls_follow_the_state_both_ways(explorer):
    explorer.set(attack="PGD", eps=EPS, selected=None)
    ui = explorer.ui
    parts = explorer._ui
    before_text = parts["readout"].value
    before_x = tuple(parts["figure"].data[-2].x)
    parts["eps"].value = 0.2  # as the slider would
    assert explorer.eps == pytest.approx(0.2)
    assert parts["readout"].value != before_text and "eps 0.200" in parts["readout"].value
    assert tuple(parts["figure"].data[-2].x) != before_x
    explorer.eps = 0.0  # from code: the slider follows
    assert parts["eps"].value == 0.0
    # a click on a clean point of the map selects it
    trace = parts["figure"].data[0]
    target = int(trace.customdata[0])
    explorer._on_click(trace, types.SimpleNamespace(point_inds=[0]))
    assert explorer.selected == (target if target < explorer.n_adv else None)
    adv = parts["figure"].data[-2]
    explorer._on_click(adv, types.SimpleNamespace(point_inds=[7]))
    assert explorer.selected == 7
    assert list(parts["figure"].data[-1].x) == [explorer.view.clean_coords[7, 0],
                                                explorer.view.adv_coords[7, 0]]
    assert ui is explorer.ui


def test_explorer_rejects_bad_controls(explorer):
    with pytest.raises(ValueError):
        explorer.set(eps=-0.1)
    with pytest.raises(ValueError, match="attack"):
        explorer.set(attack="nope")
    with pytest.raises(ValueError, match="layer"):
        explorer.set(layer="nope")
    with pytest.raises(TypeError, match="unknown control"):
        explorer.set(colour="red")


def test_explorer_other_layer_and_model(nat_model, fmnist_test, tmp_path):
    run = rv.runs.save_run(tmp_path / "run", nat_model,
                           {"model": {"name": "tinycnn", **nat_model.build_kwargs}})
    ex = rv.widgets.LatentExplorer({"a": nat_model, "b": str(run)}, fmnist_test, n_map=100,
                                   n_adv=30, eps=EPS, steps=3, tsne_iter=100)
    va = ex.view
    vb = ex.set(model="b")  # the same weights from a run directory: the same numbers
    assert vb.rdiv == pytest.approx(va.rdiv, rel=1e-5)
    conv = [n for n in ex.layer_names() if n not in ("penultimate", "logits")][0]
    vc = ex.set(layer=conv)
    assert vc.clean_coords.shape == (100, 2) and np.isfinite(vc.rdiv)
    with pytest.raises(FileNotFoundError):
        rv.widgets.LatentExplorer(str(tmp_path / "missing"), fmnist_test)


def test_playground_perturbation_and_top5(nat_model, fmnist_test):
    pg = rv.widgets.AttackPlayground(nat_model, fmnist_test, index=3, eps=EPS, steps=5)
    for attack in ("PGD", "FGSM", "MIM", "PGD-CW"):
        v = pg.set(attack=attack)
        assert v.linf <= EPS + 1e-6
        assert float(v.x_adv.min()) >= 0 and float(v.x_adv.max()) <= 1
        torch.testing.assert_close(v.delta, v.x_adv - v.x)
        probs = [p for _, p in v.top5_adv]
        assert probs == sorted(probs, reverse=True) and len(probs) == 5
        with torch.no_grad():
            ref = nat_model(v.x_adv[None]).softmax(-1)[0]
        assert probs[0] == pytest.approx(float(ref.max()), abs=1e-5)
        assert v.top5_adv[0][0] == pg.class_names[int(ref.argmax())]
    v = pg.set(attack="FGSM", eps=EPS)
    # FGSM moves every pixel by eps unless [0, 1] clips it
    inside = (v.x > EPS) & (v.x < 1 - EPS)
    assert torch.allclose(v.delta[inside].abs(), torch.tensor(EPS), atol=1e-6)
    v0 = pg.set(eps=0.0)
    assert torch.equal(v0.x_adv, v0.x) and v0.top5_adv == v0.top5_clean
    pg.ui
    pg._ui["index"].value = 5
    assert pg.index == 5 and pg.view.label == pg.class_names[int(fmnist_test.y[5])]
    assert pg._ui["image"].value[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="index"):
        pg.index = len(fmnist_test.y)
    # bf16 autocast in the attack (where native it is the default): still in the ball
    v16 = rv.widgets.AttackPlayground(nat_model, fmnist_test, index=3, eps=EPS, steps=5,
                                      bf16=True).view
    assert v16.linf <= EPS + 1e-6 and float(v16.x_adv.min()) >= 0
    with pytest.raises(ValueError, match="bf16"):
        rv.widgets.AttackPlayground(nat_model, fmnist_test, bf16="yes")


def test_align_recovers_a_rotation_scale_and_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 2))
    theta = 0.7
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    moved = (ref @ rot) * 3.0 + np.array([5.0, -2.0])
    np.testing.assert_allclose(rv.widgets.align(moved, ref), ref, atol=1e-10)
    mirrored = ref * np.array([-1.0, 1.0])
    np.testing.assert_allclose(rv.widgets.align(mirrored, ref), ref, atol=1e-10)
    with pytest.raises(ValueError):
        rv.widgets.align(ref[:10], ref)


def test_callback_keeps_features_and_the_replay_plays_them(tmp_path):
    data = rv.data.load("digits", "train")
    test = rv.data.load("digits", "test")
    model = rv.models.build("tinycnn", num_classes=10, in_channels=1, input_size=(8, 8),
                            mean=data.mean, std=data.std, seed=0)
    cb = rv.diagnostics.RDivCallback(test, rv.attacks.PGD(eps=0.1, steps=3), n=120,
                                     keep_features=True)
    rv.train.Trainer(defense={"name": "nat"}, epochs=3, optimizer="adam", lr=3e-3,
                     weight_decay=0.0, schedule="constant", batch_size=128, eps=0.1,
                     progress=False, seed=0).fit(model, data, run_dir=tmp_path, callbacks=[cb])
    assert len(cb.features_) == 3
    files = sorted((tmp_path / "features").glob("epoch_*.safetensors"))
    assert len(files) == 3
    stored = rv.runs.load_state(files[-1])
    last = cb.features_[max(cb.features_)]
    torch.testing.assert_close(stored["z_adv"], last["z_adv"])
    records = rv.runs.read_metrics(tmp_path, kind="rdiv")
    replay = rv.widgets.TrainingReplay(tmp_path, class_names=test.classes, n_iter=100)
    assert replay.epochs == sorted(cb.features_)
    h = replay.history
    assert h["rdiv"] == pytest.approx([r["rdiv"] for r in records], rel=1e-5)
    assert h["clean_acc"] == pytest.approx([r["rdiv_clean_acc"] for r in records])
    assert h["robust_acc"] == pytest.approx([r["rdiv_robust_acc"] for r in records])
    first = replay.set(epoch=replay.epochs[0])
    assert first.coords.shape == (240, 2) and first.is_adv.sum() == 120
    replay.ui
    replay._ui["epoch"].value = replay.epochs[-1]
    assert replay.epoch == replay.epochs[-1]
    assert f"epoch {replay.epochs[-1]}" in replay._ui["readout"].value
    with pytest.raises(ValueError, match="recorded epochs"):
        replay.epoch = 99
    # the in-memory callback replays the same numbers
    assert rv.widgets.TrainingReplay(cb, n_iter=100).history["rdiv"] == pytest.approx(h["rdiv"])
    with pytest.raises(FileNotFoundError, match="keep_features"):
        rv.widgets.TrainingReplay(tmp_path / "nothing")


def test_inversion_explorer_matches_feature_inversion(nat_model, pgd_at_model, fmnist_test):
    if not hasattr(rv.diagnostics, "feature_inversion"):
        pytest.skip("feature inversion (issue 11) has not landed on this branch")
    seeds = fmnist_test.x[:4]
    # two units the robust model uses on seed 1 (a ReLU unit that is off has no gradient)
    z = rv.models.extract(pgd_at_model, seeds[1:2], ["penultimate"])["penultimate"][0]
    first, second = z.topk(2).indices.tolist()
    ex = rv.widgets.InversionExplorer({"NAT": nat_model, "PGD-AT": pgd_at_model}, seeds,
                                      layer="penultimate", neuron=first, seed=1, steps=10)
    assert set(ex.view) == {"NAT", "PGD-AT"} and "conv1" in ex.layer_names()
    ref = rv.diagnostics.feature_inversion(nat_model, "penultimate", [first], seeds=seeds[1:2],
                                           steps=10, step_size=0.02, seed=0)
    torch.testing.assert_close(ex.view["NAT"].images, ref.images)
    for name, res in ex.view.items():
        img = res.images[0, 0]
        assert float(img.min()) >= 0 and float(img.max()) <= 1
        # sign-gradient ascent on the unit: its activation does not fall
        assert float(res.objective[-1].mean()) >= float(res.objective[0].mean()) - 1e-5
        assert ex.gains[name] == pytest.approx(float(res.objective[-1].mean() - res.objective[0].mean()))
    before = ex.view["PGD-AT"].images.clone()
    ex.ui
    assert ex.gains["PGD-AT"] > 0
    ex._ui["neuron"].value = second  # as the slider would
    assert ex.neuron == second and not torch.equal(ex.view["PGD-AT"].images, before)
    assert f"unit {second}" in ex._ui["readout"].value
    ex.set(layer="conv2", neuron=5)  # a spatial layer: its channels are the units
    assert ex.units() == 64 and ex.neuron == 5 and ex._ui["neuron"].max == 63
    with pytest.raises(ValueError, match="neuron"):
        ex.neuron = 64
    with pytest.raises(ValueError, match="seed"):
        ex.seed = 4
    with pytest.raises(ValueError, match="layer"):
        ex.layer = "nope"


def test_explorer_static_figure_is_the_current_map(explorer):
    """The static fallback (a matplotlib Figure, no pyplot): the clean map and the
    adversarial points placed into it, as the view holds them for the current eps."""
    from matplotlib.figure import Figure

    v = explorer.set(attack="PGD", eps=EPS, steps=5)
    fig = explorer.static_figure()
    assert isinstance(fig, Figure)
    clean, adv = fig.axes[0].collections[:2]
    np.testing.assert_allclose(clean.get_offsets(), v.clean_coords)
    np.testing.assert_allclose(adv.get_offsets(), v.adv_coords)
    assert len(adv.get_offsets()) == explorer.n_adv
    assert "R-DIV" in fig.axes[0].get_title()
    v0 = explorer.set(eps=0.0)
    np.testing.assert_allclose(explorer.static_figure().axes[0].collections[1].get_offsets(),
                               v0.adv_coords)
    explorer.set(eps=EPS)


def test_replay_static_figure_shows_the_current_epoch():
    from matplotlib.figure import Figure

    g = torch.Generator().manual_seed(0)
    n, d = 40, 8
    y = torch.arange(n) % 4
    feats = {}
    for epoch in (1, 2):
        z = torch.randn(n, d, generator=g) + 3 * torch.nn.functional.one_hot(y, d).float()
        feats[epoch] = {"z_nat": z, "z_adv": z + 0.3 * torch.randn(n, d, generator=g), "y": y,
                        "logits_nat": torch.randn(n, 4, generator=g),
                        "logits_adv": torch.randn(n, 4, generator=g)}
    replay = rv.widgets.TrainingReplay(feats, class_names=list("abcd"), n_iter=60)
    for epoch in replay.epochs:
        frame = replay.set(epoch=epoch)
        fig = replay.static_figure()
        assert isinstance(fig, Figure) and len(fig.axes) == 3
        clean, adv = fig.axes[0].collections[:2]
        np.testing.assert_allclose(clean.get_offsets(), frame.coords[~frame.is_adv])
        np.testing.assert_allclose(adv.get_offsets(), frame.coords[frame.is_adv])
        assert f"epoch {epoch}" in fig.axes[0].get_title()
        rdiv_line = fig.axes[1].lines[0]
        np.testing.assert_allclose(rdiv_line.get_ydata(), replay.history["rdiv"])
        marker = fig.axes[1].lines[-1]
        assert marker.get_xdata()[0] == epoch
