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
             "robust_acc": [[0.9, 0.2, 0.0], [0.8, 0.7, 0.6]], "rdiv_ci": None}
    fig = rvf.plot_rdiv_vs_eps(sweep, eps_scale=255)
    ax, ax2 = fig.axes
    assert len(ax.get_lines()) == 2 and len(ax2.get_lines()) == 2
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [0, 12.75, 25.5])
    np.testing.assert_allclose(ax2.get_lines()[1].get_ydata(), [80, 70, 60])
    assert "1/255" in ax.get_xlabel() and "R-DIV" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["NAT", "AT"]
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
    res = divergence(*_feats(c=4), n_boot=0)
    fig = rvf.plot_class_divergence(res, class_names=["a", "b", "c", "d"])
    ax = fig.axes[0]
    assert len(fig.axes) == 2                                   # heatmap + colourbar
    np.testing.assert_allclose(ax.images[0].get_array(), res.class_matrix)
    assert len(ax.texts) == 16
    assert ax.texts[0].get_text() == f"{res.class_matrix[0, 0]:.2f}"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c", "d"]
    assert ax.get_ylabel() == "anchor class"
    with pytest.raises(ValueError, match="class_names"):
        rvf.plot_class_divergence(res, class_names=["a"])
    fig.savefig(tmp_path / "f.pdf")


def test_plot_pair_histograms(tmp_path):
    res = {"NAT": pair_distances(*_feats(spread=2.0)),
           "AT": pair_distances(*_feats(spread=0.2, seed=1))}
    fig = rvf.plot_pair_histograms(res, bins=10, shared_range=True)
    assert len(fig.axes) == 4
    for ax in fig.axes:
        patches = [p for p in ax.patches if isinstance(p, StepPatch)]
        assert len(patches) == 2
        assert len(patches[0].get_data().values) == 10
    assert [fig.axes[0].get_title(), fig.axes[1].get_title()] == ["NAT", "AT"]
    assert fig.axes[0].get_xlabel() == "cosine similarity"
    assert fig.axes[2].get_xlabel() == "L2 distance"
    # shared bins across models of a row
    e0 = fig.axes[0].patches[0].get_data().edges
    e1 = fig.axes[1].patches[0].get_data().edges
    np.testing.assert_allclose(e0, e1)
    # the drawn densities are the result's histogram
    h = res["NAT"].histogram("cosine", bins=10, range=(e0[0], e0[-1]))
    np.testing.assert_allclose(fig.axes[0].patches[0].get_data().values, h.pos)
    own = rvf.plot_pair_histograms(res, bins=10)              # default: each panel's own range
    ends = [own.axes[i].patches[0].get_data().edges[-1] for i in (2, 3)]
    assert ends[0] != ends[1]
    single = rvf.plot_pair_histograms(res["AT"], metrics=["l2"])
    assert len(single.axes) == 1
    fig.savefig(tmp_path / "f.pdf")


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


def test_plot_embedding_entropy(tmp_path):
    emb = _embedding()
    fig = rvf.plot_embedding_entropy(emb)
    (ax,) = fig.axes
    assert ax.name == "3d" and ax.get_zlabel() == "prediction entropy (nats)"
    assert len(ax.collections) == 5
    z_adv = np.asarray(ax.collections[-1]._offsets3d[2])
    np.testing.assert_allclose(z_adv, emb.entropy[emb.is_adv])
    with pytest.raises(ValueError, match="entropy"):
        rvf.plot_embedding_entropy(_embedding(entropy=False))
    flat = Figure().add_subplot()
    with pytest.raises(ValueError, match="3-D"):
        rvf.plot_embedding_entropy(emb, ax=flat)
    fig.savefig(tmp_path / "f.pdf")


# --------------------------------------------------------------------------- robustness
def test_plot_robustness_curves(tmp_path):
    from robustviz.evaluate import Curve

    nat = Curve(parameter="eps", values=(0.0, 4 / 255, 8 / 255), accuracy=(0.9, 0.3, 0.0),
                n=100, attack={})
    at = {"values": [0.0, 4 / 255, 8 / 255], "accuracy": [0.8, 0.6, 0.45]}
    fig = rvf.plot_robustness_vs_eps({"NAT": nat, "AT": at})
    (ax,) = fig.axes
    assert len(ax.get_lines()) == 2
    np.testing.assert_allclose(ax.get_lines()[1].get_xdata(), [0, 4, 8])
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
