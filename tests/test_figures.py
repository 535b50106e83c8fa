"""Figures: each returns a Figure with the expected axes, labels and artists for a known
input, never touches pyplot's registry, and saves to PDF."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import StepPatch  # noqa: E402

from robustviz import figures as rvf  # noqa: E402
from robustviz.diagnostics import (EmbeddingResult, divergence, pair_distances,  # noqa: E402
                                   selection_stats)
from robustviz.runs import append_metrics  # noqa: E402


@pytest.fixture(autouse=True)
def _no_pyplot_figures():
    plt.close("all")
    yield
    # figure functions build pyplot-free Figures: nothing is left open in pyplot
    assert plt.get_fignums() == []


def _feats(n=80, c=3, seed=0, spread=0.8):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    centers = torch.randn(c, 6, generator=g) * 2
    zn = centers[y] + torch.randn(n, 6, generator=g)
    za = zn + spread * torch.randn(n, 6, generator=g)
    return zn, za, y


def _rdiv_records(scale=1.0):
    return [{"kind": "rdiv", "epoch": e, "rdiv": 0.9 - 0.1 * e * scale,
             "rdiv_robust_acc": 0.1 * e, "rdiv_ci_low": 0.85 - 0.1 * e * scale,
             "rdiv_ci_high": 0.95 - 0.1 * e * scale} for e in (1, 2, 3)]


def _embedding(entropy=True):
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(40, 2))
    labels = np.array([0, 1, 2, 3] * 10)
    is_adv = np.zeros(40, bool)
    is_adv[-6:] = True
    ent = rng.uniform(0, 2, 40) if entropy else None
    return EmbeddingResult(coords=coords, labels=labels, is_adv=is_adv, entropy=ent,
                           method="tsne", backend="opentsne", params={})


# --------------------------------------------------------------------------- style & save
def test_set_style_contexts_and_palette():
    old = dict(matplotlib.rcParams)
    try:
        rc = rvf.set_style("paper")
        assert matplotlib.rcParams["font.size"] == rc["font.size"] == 8.0
        assert matplotlib.rcParams["pdf.fonttype"] == 42
        rvf.set_style("slides")
        assert matplotlib.rcParams["font.size"] > 8.0
        with pytest.raises(ValueError, match="context"):
            rvf.set_style("poster")
    finally:
        matplotlib.rcParams.update(old)
    before = matplotlib.rcParams["font.size"]
    with rvf.style("notebook"):
        assert matplotlib.rcParams["font.size"] == 11.0
    assert matplotlib.rcParams["font.size"] == before
    # Okabe-Ito: 8 distinct colours, cycled beyond
    assert len(set(rvf.PALETTE)) == 8 and rvf.palette(10)[8] == rvf.PALETTE[0]
    assert rvf.OKABE_ITO["blue"] == "#0072B2"


def test_save_formats(tmp_path):
    fig = rvf.plot_rdiv_training(_rdiv_records())
    (pdf,) = rvf.save(fig, tmp_path / "a.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    paths = rvf.save(fig, tmp_path / "sub" / "b", formats=["svg", "png"])
    assert [p.name for p in paths] == ["b.svg", "b.png"]
    assert b"<svg" in paths[0].read_bytes()[:500]
    assert paths[1].read_bytes()[:4] == b"\x89PNG"
    (default,) = rvf.save(fig, tmp_path / "c")
    assert default.suffix == ".pdf"
    with pytest.raises(ValueError, match="suffix"):
        rvf.save(fig, tmp_path / "d.jpg")
    with pytest.raises(TypeError, match="Figure"):
        rvf.save("not a figure", tmp_path / "e.pdf")
    assert not list(tmp_path.glob(".*.tmp"))                   # atomic writes leave no temp


# --------------------------------------------------------------------------- training
def test_plot_rdiv_training(tmp_path):
    for r in _rdiv_records(scale=0.5):
        append_metrics(tmp_path, r)
    append_metrics(tmp_path, {"kind": "epoch", "epoch": 1, "loss": 1.0})
    fig = rvf.plot_rdiv_training({"NAT": _rdiv_records(), "AT": tmp_path})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax, ax2 = fig.axes
    assert len(ax.get_lines()) == 2 and len(ax2.get_lines()) == 2
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [0.8, 0.7, 0.6])
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [0.85, 0.8, 0.75])   # from disk
    np.testing.assert_allclose(ax2.get_lines()[0].get_ydata(), [10, 20, 30])       # percent
    assert len(ax.collections) == 2                                                 # CI bands
    assert ax.get_xlabel() == "epoch" and "R-DIV" in ax.get_ylabel()
    assert ax2.get_ylabel() == "robust accuracy (%)"
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["NAT", "AT"]
    one = rvf.plot_rdiv_training(_rdiv_records(), accuracy=False, ci=False)
    assert len(one.axes) == 1 and len(one.axes[0].collections) == 0
    # epoch records that carry the callback's metrics work too
    merged = [{"kind": "epoch", "epoch": 1, "rdiv": 0.5, "rdiv_robust_acc": 0.2}]
    assert len(rvf.plot_rdiv_training(merged).axes[0].get_lines()) == 1
    with pytest.raises(ValueError, match="rdiv"):
        rvf.plot_rdiv_training([{"kind": "epoch", "epoch": 1, "loss": 1.0}])
    fig.savefig(tmp_path / "f.pdf")


def test_plot_selection_counts(tmp_path):
    recs = [{"kind": "epoch", "epoch": e, "train_pos_per_anchor": 26.4,
             "train_neg_per_anchor": 228.6} for e in (1, 2)]
    leaked = [{"kind": "epoch", "epoch": e, "pos_per_anchor": 20 - 4 * e,
               "neg_per_anchor": 30 - 7 * e} for e in (1, 2)]
    fig = rvf.plot_selection_counts({"Global": selection_stats(recs),
                                     "Leaked-LS": selection_stats(leaked)})
    assert len(fig.axes) == 2
    pos_ax, neg_ax = fig.axes
    assert len(pos_ax.get_lines()) == 2 and len(neg_ax.get_lines()) == 2
    np.testing.assert_allclose(neg_ax.get_lines()[1].get_ydata(), [23, 16])
    assert pos_ax.get_ylabel() == "positives per anchor" and neg_ax.get_yscale() == "log"
    assert [t.get_text() for t in neg_ax.get_legend().get_texts()] == ["Global", "Leaked-LS"]
    fig.savefig(tmp_path / "f.pdf")


# --------------------------------------------------------------------------- divergence
def test_plot_rdiv_vs_eps(tmp_path):
    sweep = {"eps": [0, 0.05, 0.1], "models": ["NAT", "AT"],
             "rdiv": [[0.5, 0.8, 0.95], [0.4, 0.5, 0.6]],
             "robust_acc": [[0.9, 0.2, 0.0], [0.8, 0.7, 0.6]],
             "rdiv_ci": [[[0.45, 0.55]] * 3, [[0.35, 0.45]] * 3]}
    styles = rvf.model_styles(["AT", "NAT"])          # mapping order differs from the sweep's
    fig = rvf.plot_rdiv_vs_eps(sweep, eps_scale=255, colors=styles, markers=styles)
    ax, ax2 = fig.axes                                   # two panels, no twin axis
    assert ax.get_position().x1 < ax2.get_position().x0   # side by side
    assert len(ax.get_lines()) == 2 and len(ax2.get_lines()) == 2
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [0, 12.75, 25.5])
    np.testing.assert_allclose(ax2.get_lines()[1].get_ydata(), [80, 70, 60])
    assert "1/255" in ax.get_xlabel() and "R-DIV" in ax.get_ylabel()
    assert ax2.get_ylabel() == "robust accuracy (%)" and ax2.get_ylim() == (0, 100)
    # one colour and one marker per model, the mapping's, the same in both panels
    for a in (ax, ax2):
        nat, at = a.get_lines()
        assert matplotlib.colors.to_hex(nat.get_color()) == styles["NAT"]["color"]
        assert matplotlib.colors.to_hex(at.get_color()) == styles["AT"]["color"]
        assert nat.get_marker() == styles["NAT"]["marker"] != at.get_marker()
    assert len(ax.collections) == 2                      # CI bands
    # the legend sits outside the data: right of the second panel
    leg = ax2.get_legend()
    assert [t.get_text() for t in leg.get_texts()] == ["NAT", "AT"]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    r = fig.canvas.get_renderer()
    assert leg.get_window_extent(r).x0 >= ax2.get_window_extent(r).x1 - 1
    one = rvf.plot_rdiv_vs_eps(sweep, accuracy=False, ci=False)
    assert len(one.axes) == 1 and len(one.axes[0].collections) == 0
    fig.savefig(tmp_path / "f.pdf")


def test_plot_divergence_pairs(tmp_path):
    a = divergence(*_feats(spread=0.3), n_boot=100)
    b = divergence(*_feats(spread=3.0), n_boot=100)
    fig = rvf.plot_divergence_pairs({"AT": a, "NAT": b})
    (ax,) = fig.axes
    assert len(ax.containers) >= 2
    bars = [c for c in ax.containers if hasattr(c, "patches")]
    assert len(bars) == 2 and all(len(c.patches) == 2 for c in bars)
    np.testing.assert_allclose([p.get_height() for p in bars[0].patches], [a.d_pos, b.d_pos])
    np.testing.assert_allclose([p.get_height() for p in bars[1].patches], [a.d_neg, b.d_neg])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["AT", "NAT"]
    notes = [t.get_text() for t in ax.texts]
    assert notes == [f"R-DIV {a.rdiv:.3f}", f"R-DIV {b.rdiv:.3f}"]
    assert ax.get_ylabel() == "mean cosine distance"
    fig.savefig(tmp_path / "f.pdf")


def test_plot_class_divergence(tmp_path):
    from matplotlib.collections import QuadMesh

    res = divergence(*_feats(c=4), n_boot=0)
    fig = rvf.plot_class_divergence(res, class_names=["a", "b", "c", "d"])
    ax = fig.axes[0]
    assert len(fig.axes) == 2                                   # heatmap + colourbar
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(4, 4), res.class_matrix)
    assert len(ax.texts) == 16
    v = res.class_matrix[0, 0]
    assert ax.texts[0].get_text() == (f"{v:.2f}"[1:] if v < 1 else f"{v:.2f}")   # ".23"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c", "d"]
    assert ax.get_ylabel() == "anchor class"
    with pytest.raises(ValueError, match="class_names"):
        rvf.plot_class_divergence(res, class_names=["a"])
    fig.savefig(tmp_path / "f.pdf")


def test_plot_class_divergence_facets_share_one_colour_scale():
    from matplotlib.collections import QuadMesh

    a = divergence(*_feats(c=3, spread=0.2), n_boot=0)
    b = divergence(*_feats(c=3, spread=3.0), n_boot=0)
    fig = rvf.plot_class_divergence({"AT": a, "NAT": b})
    assert len(fig.axes) == 3                                   # two panels, one colour bar
    meshes = [[c for c in ax.collections if isinstance(c, QuadMesh)][0] for ax in fig.axes[:2]]
    lo = min(a.class_matrix.min(), b.class_matrix.min())
    hi = max(a.class_matrix.max(), b.class_matrix.max())
    for m in meshes:
        assert m.norm.vmin == pytest.approx(lo) and m.norm.vmax == pytest.approx(hi)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["AT", "NAT"]
    assert fig.axes[2].get_ylabel() == "mean cosine distance"
    assert fig.get_size_inches()[0] == pytest.approx(rvf.WIDTHS["double"])
    with rvf.style("notebook"):                                 # one model: the style's width
        assert rvf.plot_class_divergence(a).get_size_inches()[0] == pytest.approx(6.4)
    assert rvf.plot_class_divergence(a, width="single").get_size_inches()[0] == \
        pytest.approx(3.3)


def test_plot_pair_histograms(tmp_path):
    """Paper 004 (Zhou et al., ANCRA, arXiv:2310.03358) Figs. 1 and 6: 20-bin densities of
    positive pairs (x, x') and negative pairs, methods overlaid. Positive and negative pairs
    sit in separate panels, each with its own bins, so a narrow positive-pair band
    (cosine 0.85-0.99) is resolved instead of vanishing into one to three shared bins."""
    from robustviz.diagnostics import PairDistances

    rng = np.random.default_rng(0)

    def fake(lo, hi):
        n = 400
        return PairDistances(pos_cosine=rng.uniform(lo, hi, n), pos_l2=rng.uniform(0.2, 1.0, n),
                             neg_cosine=rng.uniform(-0.2, 0.6, n), neg_l2=rng.uniform(2.0, 6.0, n),
                             neg_index=np.full(n, -1), negatives="given", seed=0)

    res = {"TRADES": fake(0.85, 0.95), "ANCRA": fake(0.9, 0.99)}
    fig = rvf.plot_pair_histograms(res)
    assert len(fig.axes) == 4                        # (cosine, L2) x (positive, negative)
    assert fig.axes[0].get_title().startswith("positive") and fig.axes[1].get_title().startswith("negative")
    assert fig.axes[0].get_xlabel() == "cosine similarity" and fig.axes[2].get_xlabel() == "L2 distance"
    for i, ax in enumerate(fig.axes):
        kind, metric = ("pos", "neg")[i % 2], ("cosine", "l2")[i // 2]
        patches = [p for p in ax.patches if isinstance(p, StepPatch)]
        assert [p.get_label() for p in patches] == ["TRADES", "ANCRA"]       # methods overlaid
        edges = patches[0].get_data().edges
        assert len(edges) == 21                                              # 20 bins per panel
        vals = [getattr(p, f"{kind}_{metric}") for p in res.values()]
        assert edges[0] == pytest.approx(min(v.min() for v in vals))        # the panel's own range
        assert edges[-1] == pytest.approx(max(v.max() for v in vals))
        for patch, v in zip(patches, vals):
            np.testing.assert_allclose(patch.get_data().edges, edges)        # shared within a panel
            want, _ = np.histogram(v, bins=edges, density=True)
            np.testing.assert_allclose(patch.get_data().values, want)
            assert float((patch.get_data().values * np.diff(edges)).sum()) == pytest.approx(1.0)
    # the positive band spreads over many of its 20 bins (edges shared with the negatives: 2-3)
    pos = [p for p in fig.axes[0].patches if isinstance(p, StepPatch)][0].get_data().values
    assert (pos > 0).sum() >= 10
    # several methods: step outlines, each its own colour and line style, one figure legend
    for ax in fig.axes:
        trades, ancra = [p for p in ax.patches if isinstance(p, StepPatch)]
        assert not trades.get_fill() and not ancra.get_fill()
        assert trades.get_linestyle() != ancra.get_linestyle()
    (leg,) = fig.legends
    assert [t.get_text() for t in leg.get_texts()] == ["TRADES", "ANCRA"]
    styles = rvf.model_styles(["ANCRA", "TRADES"])
    mapped = rvf.plot_pair_histograms(res, colors=styles).axes[0].patches
    assert matplotlib.colors.to_hex(mapped[0].get_edgecolor()) == styles["TRADES"]["color"]
    single = rvf.plot_pair_histograms(res["ANCRA"], metrics=["l2"], bins=10)
    assert single.axes[0].patches[0].get_fill()                 # one method: filled
    assert len(single.axes) == 2 and len(single.axes[0].patches[0].get_data().values) == 10
    real = {"NAT": pair_distances(*_feats(spread=2.0)), "AT": pair_distances(*_feats(spread=0.2, seed=1))}
    rvf.plot_pair_histograms(real).savefig(tmp_path / "f.pdf")
    with pytest.raises(ValueError, match="colors"):
        rvf.plot_pair_histograms(res, colors=["k"])


# --------------------------------------------------------------------------- embeddings
def test_plot_embedding(tmp_path):
    emb = _embedding()
    fig = rvf.plot_embedding(emb, class_names=["t-shirt", "trouser", "pullover", "dress"])
    (ax,) = fig.axes
    cols = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(cols) == 5                                       # 4 classes + adversarial
    np.testing.assert_allclose(cols[-1].get_offsets(), emb.coords[emb.is_adv])
    clean0 = emb.coords[(emb.labels == 0) & ~emb.is_adv]
    np.testing.assert_allclose(cols[0].get_offsets(), clean0)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["t-shirt", "trouser", "pullover", "dress", "adversarial"]
    assert ax.get_xlabel() == "t-SNE 1"
    fig.savefig(tmp_path / "f.pdf")


def test_plot_embedding_marks_misclassified_adversarial_points():
    emb = _embedding()
    correct = np.array([True, False, False, True, False, False])
    fig = rvf.plot_embedding(emb, correct_adv=correct)
    (ax,) = fig.axes
    cols = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(cols) == 6                                       # 4 classes + wrong + right
    adv_xy = emb.coords[emb.is_adv]
    np.testing.assert_allclose(cols[-2].get_offsets(), adv_xy[~correct])
    np.testing.assert_allclose(cols[-1].get_offsets(), adv_xy[correct])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[-2:] == ["adv., misclassified", "adv., still correct"]
    with pytest.raises(ValueError, match="correct_adv"):
        rvf.plot_embedding(emb, correct_adv=[True])
    # ten classes: ten distinct colours, none a light/dark pair of another (no tab20)
    rng = np.random.default_rng(0)
    ten = EmbeddingResult(coords=rng.normal(size=(50, 2)), labels=np.arange(50) % 10,
                          is_adv=np.zeros(50, bool), entropy=None, method="umap",
                          backend="umap-learn", params={})
    f10 = rvf.plot_embedding(ten)
    faces = {matplotlib.colors.to_hex(c.get_facecolor()[0]) for c in f10.axes[0].collections}
    import seaborn as sns

    assert faces == set(sns.color_palette("colorblind", 10).as_hex())


def test_plot_embedding_entropy(tmp_path):
    emb = _embedding()
    fig = rvf.plot_embedding_entropy(emb)
    ax, cbar = fig.axes                                         # 2-D map + colour bar
    assert ax.name != "3d" and cbar.get_ylabel() == "prediction entropy (nats)"
    clean, adv = [c for c in ax.collections if isinstance(c, PathCollection)]
    np.testing.assert_allclose(adv.get_offsets(), emb.coords[emb.is_adv])
    np.testing.assert_allclose(adv.get_array(), emb.entropy[emb.is_adv])   # colour = entropy
    np.testing.assert_allclose(clean.get_array(), emb.entropy[~emb.is_adv])
    assert clean.norm.vmin == 0 and clean.norm.vmax == pytest.approx(np.log(4))  # log C
    three = rvf.plot_embedding_entropy(emb, view="3d")
    ax3 = three.axes[0]
    assert ax3.name == "3d" and ax3.get_zlabel() == "prediction entropy (nats)"
    np.testing.assert_allclose(np.asarray(ax3.collections[-1]._offsets3d[2]),
                               emb.entropy[emb.is_adv])
    with pytest.raises(ValueError, match="entropy"):
        rvf.plot_embedding_entropy(_embedding(entropy=False))
    with pytest.raises(ValueError, match="view"):
        rvf.plot_embedding_entropy(emb, view="side")
    flat = Figure().add_subplot()
    with pytest.raises(ValueError, match="3-D"):
        rvf.plot_embedding_entropy(emb, ax=flat, view="3d")
    fig.savefig(tmp_path / "f.pdf")


# --------------------------------------------------------------------------- examples, curves
def test_plot_adversarial_examples():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 1, 8, 8, generator=g)
    x_adv = (x + 0.1 * torch.sign(torch.randn(5, 1, 8, 8, generator=g))).clamp(0, 1)
    y = torch.tensor([0, 1, 2, 0, 1])
    pred = torch.tensor([0, 1, 2, 0, 0])
    pred_adv = torch.tensor([1, 1, 0, 0, 2])
    fig = rvf.plot_adversarial_examples(x, x_adv, y, pred=pred, pred_adv=pred_adv,
                                        class_names=["a", "b", "c"], n=4, title="NAT")
    assert len(fig.axes) == 12 and fig._suptitle.get_text() == "NAT"
    top, mid, bot = fig.axes[:4], fig.axes[4:8], fig.axes[8:]
    np.testing.assert_allclose(top[1].images[0].get_array(), x[1, 0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(bot[2].images[0].get_array(), x_adv[2, 0].numpy(), rtol=1e-6)
    d = (x_adv - x)[:4]
    np.testing.assert_allclose(mid[0].images[0].get_array(), d[0, 0].numpy(), rtol=1e-5,
                               atol=1e-7)
    assert mid[0].images[0].norm.vmax == pytest.approx(float(d.abs().max()))   # shared scale
    assert top[0].get_title() == "a\n-> a" and bot[0].get_title() == "-> b"
    red = matplotlib.colors.to_hex("#D55E00")
    assert matplotlib.colors.to_hex(bot[0].title.get_color()) == red          # fooled
    assert matplotlib.colors.to_hex(bot[1].title.get_color()) == "#000000"    # still right
    assert matplotlib.colors.to_hex(top[3].title.get_color()) == "#000000"
    rgb = rvf.plot_adversarial_examples(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4))
    assert rgb.axes[0].images[0].get_array().shape == (4, 4, 3)
    with pytest.raises(ValueError, match="same shape"):
        rvf.plot_adversarial_examples(x, x_adv[:, :, :4])


def test_plot_adversarial_examples_one_row_per_model():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 1, 8, 8, generator=g)
    eps = {"m0": 0.05, "m1": 0.1, "m2": 0.2}
    advs = {nm: (x + e * torch.sign(torch.randn(5, 1, 8, 8, generator=g))).clamp(0, 1)
            for nm, e in eps.items()}
    y = torch.tensor([0, 1, 2, 0, 1])
    pred = {nm: y.clone() for nm in eps}
    pred["m2"] = torch.tensor([1, 1, 2, 0, 1])                  # m2 wrong on one clean image
    pred_adv = {"m0": torch.tensor([1, 2, 0, 1, 1]), "m1": torch.tensor([0, 1, 2, 1, 1]),
                "m2": torch.tensor([0, 1, 2, 0, 1])}
    names = ["T-shirt/top", "Trouser", "Ankle boot"]
    fig = rvf.plot_adversarial_examples(x, advs, y, pred=pred, pred_adv=pred_adv,
                                        class_names=names, n=4)
    n = 4
    assert len(fig.axes) == (1 + 3) * n + 1                     # clean row, 3 models, colour bar
    rows = [fig.axes[i * n:(i + 1) * n] for i in range(4)]
    np.testing.assert_allclose(rows[0][2].images[0].get_array(), x[2, 0].numpy(), rtol=1e-6)
    d = {nm: (a - x)[:n] for nm, a in advs.items()}
    scale = max(float(v.abs().max()) for v in d.values())
    for r, nm in zip(rows[1:], eps):
        np.testing.assert_allclose(r[1].images[0].get_array(), d[nm][1, 0].numpy(), rtol=1e-5,
                                   atol=1e-7)
        assert r[0].images[0].norm.vmax == pytest.approx(scale)    # one scale for every row
        assert r[0].images[0].norm.vmin == pytest.approx(-scale)
    assert [a.get_title() for a in rows[0]] == ["T-shirt/top", "Trouser", "Ankle boot",
                                                "T-shirt/top"]
    assert [a.get_title() for a in rows[1]] == ["Trouser", "Ankle boot", "T-shirt/top", "Trouser"]
    red, black = matplotlib.colors.to_hex("#D55E00"), "#000000"
    assert [matplotlib.colors.to_hex(a.title.get_color()) for a in rows[2]] == \
        [black, black, black, red]
    # row labels: the model and its right predictions among the shown, clean -> adversarial
    assert [r[0].get_ylabel() for r in rows[1:]] == ["m0\nright 4/4 -> 0/4",
                                                     "m1\nright 4/4 -> 3/4",
                                                     "m2\nright 3/4 -> 4/4"]
    assert fig.axes[-1].get_ylabel() == "x' - x"
    adv = rvf.plot_adversarial_examples(x, advs, show="adversarial", n=2)
    assert len(adv.axes) == 4 * 2                               # no colour bar, no titles
    np.testing.assert_allclose(adv.axes[2 * 2 + 1].images[0].get_array(),
                               advs["m1"][1, 0].numpy(), rtol=1e-6)
    rgb = rvf.plot_adversarial_examples(torch.rand(2, 3, 4, 4), {"a": torch.rand(2, 3, 4, 4)})
    assert len(rgb.axes) == 4 and rgb.axes[2].images[0].get_array().shape == (4, 4, 3)
    with pytest.raises(TypeError, match="mapping"):
        rvf.plot_adversarial_examples(x, advs, y, pred_adv=pred_adv["m0"])
    with pytest.raises(ValueError, match="m2"):
        rvf.plot_adversarial_examples(x, advs, y, pred_adv={"m0": y, "m1": y})
    with pytest.raises(TypeError, match="x_adv as a mapping"):
        rvf.plot_adversarial_examples(x, advs["m0"], y, pred_adv=pred_adv)
    with pytest.raises(ValueError, match="same shape"):
        rvf.plot_adversarial_examples(x, {"m0": advs["m0"][:, :, :4]})
    with pytest.raises(ValueError, match="show"):
        rvf.plot_adversarial_examples(x, advs, show="both")


def test_plot_training_curves(tmp_path):
    for e in (1, 2, 3):
        append_metrics(tmp_path, {"kind": "epoch", "epoch": e, "loss": 2.0 / e,
                                  "val_clean_acc": 0.5 + 0.1 * e, "val_robust_acc": 0.1 * e})
    nat = [{"kind": "epoch", "epoch": e, "loss": 1.0 / e, "val_clean_acc": 0.8,
            "val_robust_acc": 0.0} for e in (1, 2, 3)] + _rdiv_records()
    styles = rvf.model_styles(["NAT", "AT"])
    fig = rvf.plot_training_curves({"NAT": nat, "AT": tmp_path}, colors=styles,
                                   markers=styles)
    loss, acc, rdiv = fig.axes
    np.testing.assert_allclose(loss.get_lines()[1].get_ydata(), [2.0, 1.0, 2 / 3])
    assert len(acc.get_lines()) == 4                           # clean + robust per run
    np.testing.assert_allclose(acc.get_lines()[3].get_ydata(), [10, 20, 30])
    assert acc.get_lines()[3].get_linestyle() == "--"
    assert len(rdiv.get_lines()) == 1                          # only NAT recorded R-DIV
    np.testing.assert_allclose(rdiv.get_lines()[0].get_ydata(), [0.8, 0.7, 0.6])
    assert matplotlib.colors.to_hex(loss.get_lines()[1].get_color()) == styles["AT"]["color"]
    assert len(rvf.plot_training_curves(tmp_path).axes) == 2   # no R-DIV: two panels
    assert acc.get_ylabel() == "validation accuracy (%)"
    # a run that scored the test set each epoch says so on its axis
    assert rvf.plot_training_curves(tmp_path, val_label="test").axes[1].get_ylabel() == "test accuracy (%)"
    with pytest.raises(ValueError, match="val_label"):
        rvf.plot_training_curves(tmp_path, val_label="")
    with pytest.raises(ValueError, match="epoch"):
        rvf.plot_training_curves([{"kind": "rdiv", "epoch": 1, "rdiv": 0.5}], rdiv=False)


# --------------------------------------------------------------------------- tables, styles
def test_binomial_interval_matches_scipy_and_tables_export(tmp_path):
    stats = pytest.importorskip("scipy.stats")
    for k, n in ((0, 10), (3, 10), (50, 100), (99, 100), (7, 7)):
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert rvf.binomial_ci(k / n, n) == pytest.approx((ci.low, ci.high), abs=1e-9)
    lo, hi = rvf.binomial_ci(0.5, 60)
    assert hi - lo > 0.2                                        # small n: wide
    with pytest.raises(ValueError, match="n must"):
        rvf.binomial_ci(0.5, 0)
    assert rvf.intervals_overlap((0.1, 0.3), (0.3, 0.5)) and not rvf.intervals_overlap(
        (0.1, 0.2), (0.3, 0.5))
    header, rows = ["run", "clean %", "note"], [["nat_1", "91.0", 'a "b", c'], ["at", "80.5", ""]]
    csv_path, tex_path = rvf.save_table(header, rows, tmp_path / "acc")
    import csv

    assert list(csv.reader(csv_path.open())) == [header, *rows]
    tex = tex_path.read_text()
    assert tex.startswith("\\begin{tabular}{lrr}") and "\\toprule" in tex
    assert "\\midrule" in tex and "\\bottomrule" in tex
    assert "run & clean \\% & note \\\\" in tex and "nat\\_1" in tex
    with pytest.raises(ValueError, match="cells"):
        rvf.table_to_csv(header, [["x"]])


def test_topk_table_does_not_highlight_within_noise():
    table = {"A": {"clean": {1: 0.62}}, "B": {"clean": {1: 0.60}}}
    cells = rvf.plot_topk_table(table, k=(1,), n=60).axes[0].tables[0].get_celld()
    assert cells[1, 0].get_text().get_weight() != "bold"       # 62% vs 60% on 60 examples
    cells = rvf.plot_topk_table(table, k=(1,), n=100_000).axes[0].tables[0].get_celld()
    assert cells[1, 0].get_text().get_weight() == "bold"


def test_model_styles_and_widths():
    st = rvf.model_styles(["nat", "pgd_at", "trades"])
    assert len({v["color"] for v in st.values()}) == 3
    assert [v["marker"] for v in st.values()] == list(rvf.MARKERS[:3])
    import seaborn as sns

    assert st["nat"]["color"] == sns.color_palette("colorblind").as_hex()[0]
    assert rvf.model_colors(["nat", "pgd_at"]) == {k: st[k]["color"] for k in ("nat", "pgd_at")}
    with pytest.raises(ValueError, match="distinct"):
        rvf.model_styles(["a", "a"])
    assert rvf.figsize("single") == pytest.approx((3.3, 3.3 * 0.72))
    assert rvf.figsize("double", aspect=0.5) == pytest.approx((6.9, 3.45))
    with pytest.raises(ValueError, match="width"):
        rvf.figsize("triple")


# --------------------------------------------------------------------------- robustness
def test_plot_robustness_curves(tmp_path):
    from robustviz.evaluate import Curve

    nat = Curve(parameter="eps", values=(0.0, 4 / 255, 8 / 255), accuracy=(0.9, 0.3, 0.0),
                n=100, attack={})
    at = {"values": [0.0, 4 / 255, 8 / 255], "accuracy": [0.8, 0.6, 0.45]}
    fig = rvf.plot_robustness_vs_eps({"NAT": nat, "AT": at}, eps_scale=255)
    (ax,) = fig.axes
    assert len(ax.get_lines()) == 2
    np.testing.assert_allclose(ax.get_lines()[1].get_xdata(), [0, 4, 8])
    # the default is the pixel scale, as in every figure
    px = rvf.plot_robustness_vs_eps({"AT": at}).axes[0]
    np.testing.assert_allclose(px.get_lines()[0].get_xdata(), [0, 4 / 255, 8 / 255])
    assert "1/255" not in px.get_xlabel()
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [90, 30, 0])
    assert "1/255" in ax.get_xlabel() and ax.get_ylabel() == "robust accuracy (%)"
    steps = rvf.plot_robustness_vs_steps(
        Curve(parameter="steps", values=(0, 1, 10), accuracy=(0.9, 0.6, 0.5), n=10, attack={}),
        percent=False)
    sax = steps.axes[0]
    assert sax.get_xlabel() == "PGD steps" and sax.get_ylim() == (0.0, 1.0)
    np.testing.assert_allclose(sax.get_lines()[0].get_xdata(), [0, 1, 10])
    with pytest.raises(ValueError, match="length"):
        rvf.plot_robustness_curve({"values": [0, 1], "accuracy": [1.0]})
    with pytest.raises(TypeError):
        rvf.plot_robustness_curve(3.0)
    fig.savefig(tmp_path / "f.pdf")


def test_topk_table_long_headers_stay_inside_their_cells():
    long = {"NAT": {"clean": {1: 0.93}, "PGD-20 (model only)": {1: 0.002},
                    "adaptive (model + surrogate)": {1: 0.1}},
            "TRADES-ANCRA (reverse attention)": {"clean": {1: 0.83}, "PGD-20 (model only)": {1: 0.79},
                                                 "adaptive (model + surrogate)": {1: 0.7}}}
    fig = rvf.plot_topk_table(long, k=(1,))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    for (r, c), cell in fig.axes[0].tables[0].get_celld().items():
        text = cell.get_text()
        assert text.get_window_extent(renderer).width < cell.get_window_extent(renderer).width, \
            (r, c, text.get_text())
    # and the figure is within the canvas: no cell starts left of it or ends right of it
    boxes = [cell.get_window_extent(renderer) for cell in fig.axes[0].tables[0].get_celld().values()]
    assert min(b.x0 for b in boxes) >= 0 and max(b.x1 for b in boxes) <= fig.bbox.width + 1


def test_plot_topk_table(tmp_path):
    table = {"NAT": {"clean": {1: 0.91, 3: 0.98, 5: 0.99}, "pgd20": {1: 0.02, 3: 0.2, 5: 0.4}},
             "AT": {"clean": {1: 0.83, 3: 0.95, 5: 0.98},
                    "pgd20": {1: [0.70, 0.72, 0.71], 3: [0.9, 0.9, 0.9], 5: [0.95, 0.96, 0.97]}}}
    fig = rvf.plot_topk_table(table, k=(1, 5))
    (ax,) = fig.axes
    assert not ax.axison
    (tab,) = ax.tables
    cells = tab.get_celld()
    assert cells[0, 0].get_text().get_text() == "clean top-1"
    assert cells[0, 3].get_text().get_text() == "pgd20 top-5"
    assert cells[1, -1].get_text().get_text() == "NAT"
    assert cells[2, -1].get_text().get_text() == "AT"
    assert cells[1, 0].get_text().get_text() == "91.0"
    assert cells[2, 2].get_text().get_text() == "71.0 (1.0)"      # mean (std) over seeds
    assert cells[2, 2].get_text().get_weight() == "bold"         # best of its column
    assert cells[1, 0].get_text().get_weight() == "bold"
    assert len(cells) == 3 * 4 + 2                                # header + rows x cols + labels
    fig.savefig(tmp_path / "f.pdf")
    # robustviz.evaluate's result objects are accepted as they are
    from robustviz.evaluate import EvalResult

    ev = EvalResult(n=10, topk=(1, 5),
                    accuracy={"clean": {1: 0.9, 5: 1.0}, "fgsm": {1: 0.4, 5: 0.8}},
                    correct={}, perturbation={}, attacks={}, seconds={})
    tab = rvf.plot_topk_table({"m": ev}, k=(1, 3)).axes[0].tables[0].get_celld()
    assert [tab[0, j].get_text().get_text() for j in range(4)] == \
        ["clean top-1", "clean top-3", "fgsm top-1", "fgsm top-3"]
    assert [tab[1, j].get_text().get_text() for j in range(4)] == ["90.0", "-", "40.0", "-"]


def test_every_figure_accepts_an_existing_axis():
    fig, ax = plt.subplots()
    try:
        out = rvf.plot_class_divergence(divergence(*_feats(), n_boot=0), ax=ax, colorbar=False)
        assert out is fig and len(fig.axes) == 1
        with pytest.raises(ValueError, match="ax"):
            rvf.plot_pair_histograms(pair_distances(*_feats()), ax=ax)   # needs 2 axes
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- notebook display
def test_figure_repr_png_is_the_rendered_figure():
    fig = rvf.plot_rdiv_training(_rdiv_records())
    assert isinstance(fig, rvf.Figure) and isinstance(fig, Figure)
    png = fig._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image
    import io

    w, h = Image.open(io.BytesIO(png)).size
    # drawn at the figure's own dpi (the tight bbox trims or adds a little)
    fw, fh = fig.get_size_inches() * fig.dpi
    assert 0.5 * fw < w < 1.5 * fw and 0.5 * fh < h < 1.5 * fh
    assert rvf.Figure()._repr_png_() is None                     # empty: text repr only


@pytest.mark.slow
def test_plot_results_display_once_as_png_in_a_fresh_kernel(tmp_path, monkeypatch):
    """A fresh Jupyter kernel, with no MPLBACKEND override, shows every plot_* result that
    ends a cell as exactly one image/png, before and after pyplot is imported."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    monkeypatch.delenv("MPLBACKEND", raising=False)            # the kernel picks its own
    monkeypatch.setenv("PYTHONPATH", str(root))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    recs = repr(_rdiv_records())
    cells = [
        "from robustviz import figures as rvf\n"
        f"recs = {recs}\n"
        "rvf.plot_rdiv_training(recs)",                       # 0: one png
        "fig = rvf.plot_rdiv_training(recs, accuracy=False)",  # 1: assigned, not shown
        "fig",                                                 # 2: one png
        "from IPython.display import display\ndisplay(fig)",  # 3: one png
        "import matplotlib.pyplot as plt\n"
        "rvf.plot_rdiv_training(recs)",                       # 4: pyplot imported: still one
        "import matplotlib\nmatplotlib.get_backend()",         # 5: the kernel's own backend
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outs = [c.outputs for c in nb.cells]
    errors = [o for out in outs for o in out if o.output_type == "error"]
    assert not errors, errors[0].get("evalue") if errors else ""

    def pngs(out):
        return [o for o in out if "image/png" in o.get("data", {})]

    assert [len(pngs(o)) for o in outs[:5]] == [1, 0, 1, 1, 1]
    for o in outs[:5]:
        for p in pngs(o):
            assert "<Figure size" in p["data"]["text/plain"]       # the text stays as fallback
    assert "inline" in outs[5][0]["data"]["text/plain"]           # no Agg override in force


# --------------------------------------------------------------------------- many models
# The report draws five models (the demo's zoo); these figures are checked the way the page
# shows them: PNG at DISPLAY_DPI, one figure pixel per page pixel.
FIVE = ["nat", "pgd_at", "trades", "ascl", "ancra"]
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]


def _five_model_cases():
    spreads = [3.0, 1.0, 0.8, 0.4, 0.3]
    feats = {nm: _feats(n=200, c=10, seed=i, spread=s)
             for i, (nm, s) in enumerate(zip(FIVE, spreads))}
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 8, 8, generator=g)
    advs = {nm: (x + 0.1 * torch.sign(torch.randn(6, 1, 8, 8, generator=g))).clamp(0, 1)
            for nm in FIVE}
    y = torch.tensor([0, 9, 2, 4, 8, 6])
    preds = {nm: torch.randint(0, 10, (6,), generator=g) for nm in FIVE}
    styles = rvf.model_styles(FIVE)
    return {
        "class_divergence_5": lambda: rvf.plot_class_divergence(
            {nm: divergence(*f, n_boot=0) for nm, f in feats.items()}, class_names=FASHION),
        "pair_histograms_5": lambda: rvf.plot_pair_histograms(
            {nm: pair_distances(*f) for nm, f in feats.items()}, colors=styles),
        "adversarial_examples_5": lambda: rvf.plot_adversarial_examples(
            x, advs, y, pred={nm: y for nm in FIVE}, pred_adv=preds, class_names=FASHION),
    }


@pytest.mark.parametrize("name", sorted(_five_model_cases()))
def test_five_model_figures_are_legible_at_report_size(name):
    """At the report's size no text is under MIN_TEXT_PX and no two texts overlap: the class
    names of neighbouring heatmap panels, their axis titles, the values in the cells, the
    titles of the example grid."""
    with rvf.style("paper"):
        fig = _five_model_cases()[name]()
        assert rvf.legibility_problems(fig) == []
        assert fig.get_size_inches()[0] * rvf.DISPLAY_DPI <= 1100   # shown one to one


def test_legibility_check_finds_small_and_overlapping_text():
    fig = rvf.Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.set_xticks(range(40), [f"label {i}" for i in range(40)])     # crowded tick labels
    ax.text(0.5, 0.5, "tiny", fontsize=4)
    problems = rvf.legibility_problems(fig)
    assert any("'tiny' is" in p and "px high" in p for p in problems)
    assert any("'label 0' and 'label 1' overlap" in p for p in problems)
    ok = rvf.Figure(figsize=(3, 2))
    ok.add_subplot().set_title("fine", fontsize=8)
    assert rvf.legibility_problems(ok) == []
    assert ok.get_dpi() == 100                                  # the figure is left as it was
    # 8 pt is 12.2 px at 110 dpi, but a 20 in figure shrinks to the 1100 px column: ~6 px
    wide = rvf.Figure(figsize=(20, 2))
    ax = wide.add_axes((0, 0, 1, 1))                            # the image is 20 in = 2200 px
    ax.set_axis_off()
    ax.set_title("fine", fontsize=8)
    (p,) = rvf.legibility_problems(wide)
    assert p == "text 'fine' is 6.1 px high at display size (minimum 9)"   # 12.2 px / 2


def test_facet_shape_and_font_fitting():
    from robustviz.figures._layout import facet_shape, fit_font, text_size

    assert facet_shape(5, 4) == (2, 3) and facet_shape(5, 5) == (1, 5)
    assert facet_shape(5, 1) == (5, 1) and facet_shape(7, 3) == (3, 3)
    assert facet_shape(4, 3) == (2, 2) and facet_shape(1, 9) == (1, 1)
    # width-limited: the fitted size fills the box but for its margin
    size = fit_font([".23", ".5"], 0.5, 5.0, max_pt=100, pad=0.2)
    assert text_size(".23", size)[0] == pytest.approx(0.8 * 0.5 * 72, rel=1e-3)
    assert fit_font(["x"], 9.0, 9.0, max_pt=7.0) == 7.0        # never above the style's size


def test_class_divergence_writes_values_only_where_they_fit():
    """Five 10 x 10 panels in a double column: cells about 0.15 in, too small for ".23" at
    6 pt with room around it, so no values; the panels wrap 2 x 3 (the empty slot ends the
    first row, so every column ends in a labelled panel). Asking for values lays out fewer
    columns so that they fit, at no less than MIN_FONT_PT, each inside its own cell."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import QuadMesh

    divs = {nm: divergence(*_feats(n=200, c=10, seed=i), n_boot=0) for i, nm in enumerate(FIVE)}
    with rvf.style("paper"):
        fig = rvf.plot_class_divergence(divs, class_names=FASHION)
        panels, cbar = fig.axes[:5], fig.axes[5]
        assert len(fig.axes) == 6 and cbar.get_ylabel() == "mean cosine distance"
        assert all(len(a.texts) == 0 for a in panels)
        spans = [a.get_subplotspec() for a in panels]
        assert [(b.rowspan.start, b.colspan.start) for b in spans] == \
            [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
        norms = {(m.norm.vmin, m.norm.vmax) for a in panels for m in a.collections
                 if isinstance(m, QuadMesh)}
        assert len(norms) == 1                                      # one shared scale
        # class names on the outer panels only; axis titles once, for the figure
        assert [bool(a.get_yticklabels()[0].get_text()) for a in panels] == \
            [True, False, True, False, False]
        assert [bool(a.get_xticklabels()[0].get_text()) for a in panels] == \
            [False, False, True, True, True]
        assert fig.get_supylabel() == "anchor class" and panels[0].get_ylabel() == ""
        big = rvf.plot_class_divergence(divs, class_names=FASHION, annotate=True)
        ps = big.axes[:5]
        assert max(a.get_subplotspec().colspan.start for a in ps) < 2      # fewer columns
        assert all(len(a.texts) == 100 for a in ps)
        v = divs["nat"].class_matrix[3, 7]
        assert ps[0].texts[3 * 10 + 7].get_text() == f"{v:.2f}".removeprefix("0")
        size = ps[0].texts[0].get_fontsize()
        assert rvf.MIN_FONT_PT <= size <= 7.0
        big.set_dpi(rvf.DISPLAY_DPI)
        FigureCanvasAgg(big).draw()
        r = big.canvas.get_renderer()
        for a in ps:
            ext = a.get_window_extent(r)
            cw, ch = ext.width / 10, ext.height / 10
            for k, t in enumerate(a.texts):
                row, col = divmod(k, 10)
                bb = t.get_window_extent(r)
                x0, y1 = ext.x0 + col * cw, ext.y1 - row * ch
                assert x0 <= bb.x0 and bb.x1 <= x0 + cw and y1 - ch <= bb.y0 and bb.y1 <= y1


# --------------------------------------------------------------------------- image regression
# Each figure function drawn on fixed synthetic data and compared with a stored small PNG
# (matplotlib.testing.compare.compare_images, RMS tolerance on 0-255 grey levels), so layout
# breaks (a legend over the data, a lost colour bar, clipped labels) are caught.
# Regenerate after an intended change, then look at the images before committing them:
#     ROBUSTVIZ_UPDATE_BASELINES=1 python -m pytest tests/test_figures.py -k baseline
from pathlib import Path  # noqa: E402

BASELINES = Path(__file__).resolve().parent / "baseline_images"
_TOL = 6.0


def _baseline_cases():
    sweep = {"eps": [0, 0.05, 0.1, 0.15], "models": ["NAT", "AT"],
             "rdiv": [[0.3, 0.6, 0.8, 0.9], [0.3, 0.35, 0.4, 0.5]],
             "robust_acc": [[0.9, 0.2, 0.05, 0.0], [0.8, 0.7, 0.6, 0.45]],
             "rdiv_ci": [[[v - 0.04, v + 0.04] for v in r] for r in
                         [[0.3, 0.6, 0.8, 0.9], [0.3, 0.35, 0.4, 0.5]]]}
    styles = rvf.model_styles(["NAT", "AT"])
    a = divergence(*_feats(c=4, spread=0.3), n_boot=50, seed=0)
    b = divergence(*_feats(c=4, spread=3.0), n_boot=50, seed=0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 8, 8, generator=g)
    xa = (x + 0.1 * torch.sign(torch.randn(4, 1, 8, 8, generator=g))).clamp(0, 1)
    epochs = [{"kind": "epoch", "epoch": e, "loss": 2.0 / e, "val_clean_acc": 0.5 + 0.1 * e,
               "val_robust_acc": 0.1 * e} for e in (1, 2, 3)]
    recs = [{"kind": "epoch", "epoch": e, "train_pos_per_anchor": 30 - 5 * e,
             "train_neg_per_anchor": 200 - 40 * e} for e in (1, 2, 3)]
    topk = {"NAT": {"clean": {1: 0.91, 5: 0.99}, "pgd20": {1: 0.02, 5: 0.4}},
            "AT": {"clean": {1: 0.83, 5: 0.98}, "pgd20": {1: 0.70, 5: 0.95}}}
    return {
        "rdiv_training": lambda: rvf.plot_rdiv_training({"NAT": _rdiv_records(),
                                                         "AT": _rdiv_records(0.5)}),
        "selection_counts": lambda: rvf.plot_selection_counts(selection_stats(recs, name="g")),
        "rdiv_vs_eps": lambda: rvf.plot_rdiv_vs_eps(sweep, colors=styles, markers=styles),
        "divergence_pairs": lambda: rvf.plot_divergence_pairs({"AT": a, "NAT": b}),
        "pair_histograms": lambda: rvf.plot_pair_histograms(
            {"NAT": pair_distances(*_feats(spread=2.0)), "AT": pair_distances(*_feats(spread=0.2, seed=1))}),
        "class_divergence": lambda: rvf.plot_class_divergence(
            {"AT": a, "NAT": b}, class_names=["shirt", "coat", "bag", "boot"]),
        "embedding": lambda: rvf.plot_embedding(
            _embedding(), class_names=list("abcd"),
            correct_adv=[True, False, False, True, False, False]),
        "embedding_entropy": lambda: rvf.plot_embedding_entropy(_embedding()),
        "robustness_vs_eps": lambda: rvf.plot_robustness_vs_eps(
            {"NAT": {"values": [0, 0.02, 0.04], "accuracy": [0.9, 0.3, 0.0]},
             "AT": {"values": [0, 0.02, 0.04], "accuracy": [0.8, 0.6, 0.45]}},
            colors=styles, markers=styles),
        "topk_table": lambda: rvf.plot_topk_table(topk, k=(1, 5), n=1000),
        "adversarial_examples": lambda: rvf.plot_adversarial_examples(
            x, xa, [0, 1, 2, 0], pred=[0, 1, 2, 1], pred_adv=[1, 1, 0, 2],
            class_names=["a", "b", "c"], title="NAT"),
        "training_curves": lambda: rvf.plot_training_curves(
            {"NAT": epochs + _rdiv_records(), "AT": epochs}, colors=styles, markers=styles),
        **_five_model_cases(),
    }


@pytest.mark.parametrize("name", sorted(_baseline_cases()))
def test_figure_matches_baseline_image(name, tmp_path):
    import os

    from matplotlib.testing.compare import compare_images

    with rvf.style("paper"):
        fig = _baseline_cases()[name]()
        (actual,) = rvf.save(fig, tmp_path / f"{name}.png", dpi=60)
    expected = BASELINES / f"{name}.png"
    if os.environ.get("ROBUSTVIZ_UPDATE_BASELINES"):
        BASELINES.mkdir(exist_ok=True)
        expected.write_bytes(actual.read_bytes())
        pytest.skip(f"wrote {expected}")
    assert expected.is_file(), (f"no baseline {expected.name}; create it with "
                                f"ROBUSTVIZ_UPDATE_BASELINES=1")
    err = compare_images(str(expected), str(actual), tol=_TOL)
    assert err is None, err
